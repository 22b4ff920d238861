"""What post-receive needs from the policy, remembered per policy digest so it need not load the policy again.

post-receive only appends the outcome record: it needs the repository id, the platform and the audit log's target
(log, signing key, origin) and nothing else the policy compiles (rules, patterns, detectors, trust). Loading the whole
policy (YAML, pathspec, ~90 regular expressions, the validation) was most of its cost. Whenever a hook has loaded and
validated the policy, it stores those five values here; the next post-receive reads them back instead.

Never trusted blindly:
- keyed by the SHA-256 of the policy file's bytes, the policy's absolute path and the gatekeeper version, all three
  re-checked against the entry on every load (the policy file is read and hashed every time);
- JSON only (never pickle/marshal), exact types checked, size bounded;
- authenticated with HMAC-SHA256 under a random key kept in the same owner-only directory, so a corrupt, torn or
  edited entry is ignored;
- the directory, the key and the entry must belong to the hook user and not be writable by anyone else;
- any doubt is a miss, and a miss is the full policy load. Nothing here raises.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
from pathlib import Path

from gatekeeper import __version__
from gatekeeper.fsutil import read_regular

FORMAT = 1
MAX_POLICY_BYTES = 1 << 20  # larger policies are refused by the loader anyway: hashing a prefix can only miss
_MAX_ENTRY_BYTES = 64 * 1024
_KEY_NAME = "key"
_KEY_BYTES = 32


class AuditTarget:
    """Where outcome records go: the same three attributes as the policy's ``audit`` section."""

    __slots__ = ("log", "signing_key", "origin")

    def __init__(self, log: Path, signing_key: Path, origin: str | None) -> None:
        self.log, self.signing_key, self.origin = log, signing_key, origin


class OutcomeSettings:
    """The part of a validated policy post-receive uses (``repository``, ``platform``, ``audit``), by the same names."""

    __slots__ = ("repository", "platform", "audit")

    def __init__(self, repository: str | None, platform: str, audit: AuditTarget) -> None:
        self.repository, self.platform, self.audit = repository, platform, audit

    def to_json(self) -> dict[str, object]:
        return {"repository": self.repository, "platform": self.platform, "audit_log": str(self.audit.log),
                "signing_key": str(self.audit.signing_key), "origin": self.audit.origin}

    @classmethod
    def from_json(cls, data: object) -> OutcomeSettings | None:
        if not isinstance(data, dict) or set(data) != {"repository", "platform", "audit_log", "signing_key", "origin"}:
            return None
        repository, platform, log, key, origin = (data["repository"], data["platform"], data["audit_log"],
                                                  data["signing_key"], data["origin"])
        if not (_optional_str(repository) and _optional_str(origin) and type(platform) is str
                and _absolute(log) and _absolute(key)):
            return None
        return cls(repository, platform, AuditTarget(Path(log), Path(key), origin))


def settings_of(policy: object) -> OutcomeSettings:
    """The settings of a loaded, validated :class:`~gatekeeper.policy.config.Policy`."""
    audit = policy.audit  # type: ignore[attr-defined]
    return OutcomeSettings(policy.repository, policy.platform,  # type: ignore[attr-defined]
                           AuditTarget(Path(os.path.abspath(audit.log)), Path(os.path.abspath(audit.signing_key)),
                                       audit.origin))


def cache_dir_for(fallback_log: Path | None) -> Path | None:
    """The cache lives beside the install's fallback audit log (known to both hooks before any policy is read)."""
    return None if fallback_log is None else Path(os.path.abspath(fallback_log)).parent / "policy-cache"


def recall(config: Path, cache_dir: Path | None) -> OutcomeSettings | None:
    """The settings stored for the policy file as it is now, or None (no entry, or any doubt about it)."""
    if cache_dir is None:
        return None
    try:
        digest = _policy_digest(config)
        key = _key(cache_dir, create=False)
        if key is None:
            return None
        raw = _read_owned(cache_dir / _entry_name(config, digest), _MAX_ENTRY_BYTES)
        entry = json.loads(raw)
        if not isinstance(entry, dict) or set(entry) != {"body", "mac"} or type(entry["mac"]) is not str:
            return None
        body = entry["body"]
        if not hmac.compare_digest(entry["mac"], _mac(key, body)):
            return None
        if not isinstance(body, dict) or set(body) != {"format", "gate_version", "config", "policy_sha256",
                                                       "settings"}:
            return None
        if (body["format"] != FORMAT or body["gate_version"] != __version__
                or body["config"] != os.path.abspath(config) or body["policy_sha256"] != digest):
            return None
        return OutcomeSettings.from_json(body["settings"])
    except (OSError, ValueError, TypeError):
        return None


def remember(config: Path, policy_sha256: str, settings: OutcomeSettings, cache_dir: Path | None) -> None:
    """Store the settings of the policy whose bytes hash to ``policy_sha256`` (the loader's own digest). Best effort:
    a failure only means the next post-receive loads the policy in full."""
    if cache_dir is None:
        return
    try:
        target = cache_dir / _entry_name(config, policy_sha256)
        if target.exists():
            return  # written by an earlier push; recall() checks it
        cache_dir.mkdir(mode=0o700, exist_ok=True)
        key = _key(cache_dir, create=True)
        if key is None:
            return
        body = {"format": FORMAT, "gate_version": __version__, "config": os.path.abspath(config),
                "policy_sha256": policy_sha256, "settings": settings.to_json()}
        from gatekeeper.fsutil import replace_file

        replace_file(target, json.dumps({"body": body, "mac": _mac(key, body)}).encode(), mode=0o600)
    except (OSError, ValueError, TypeError):
        return


def _policy_digest(config: Path) -> str:
    return hashlib.sha256(read_regular(config, MAX_POLICY_BYTES + 1)).hexdigest()


def _entry_name(config: Path, policy_sha256: str) -> str:
    ident = "\0".join((str(FORMAT), __version__, os.path.abspath(config), policy_sha256))
    return hashlib.sha256(ident.encode("utf-8", "surrogateescape")).hexdigest() + ".json"


def _mac(key: bytes, body: object) -> str:
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def _key(cache_dir: Path, *, create: bool) -> bytes | None:
    """The directory's MAC key; None when the directory or key is not the hook user's alone."""
    st = os.stat(cache_dir, follow_symlinks=False)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
        return None
    path = cache_dir / _KEY_NAME
    if create and not path.exists():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            pass  # another hook made it first: use theirs
        else:
            try:
                os.write(fd, os.urandom(_KEY_BYTES))
                os.fsync(fd)
            finally:
                os.close(fd)
    key = _read_owned(path, _KEY_BYTES + 1, private=True)
    return key if len(key) == _KEY_BYTES else None


def _read_owned(path: Path, limit: int, *, private: bool = False) -> bytes:
    """A regular file of the hook user's that nobody else may write (or, ``private``, read). Raises OSError/ValueError
    otherwise."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & (0o077 if private else 0o022):
            raise ValueError(f"{path} is not the hook user's own file")
        data = os.read(fd, limit + 1)
        if len(data) > limit:
            raise ValueError(f"{path} is too large")
        return data
    finally:
        os.close(fd)


def _optional_str(value: object) -> bool:
    return value is None or type(value) is str


def _absolute(value: object) -> bool:
    return type(value) is str and os.path.isabs(value) and "\0" not in value
