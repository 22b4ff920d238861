"""Authenticated, owner-only JSON entries derived from one policy file, keyed by the digest of its bytes.

The hooks keep two things here so they need not redo work for a policy they have already loaded and validated: what
post-receive needs (:mod:`gatekeeper.policy.outcome_cache`) and pre-receive's parsed policy document and pattern
translations (:mod:`gatekeeper.policy.compiled_cache`). Both are only ever *derived from* a policy that passed the full
load; this module decides whether an entry may be believed.

Never trusted blindly:
- keyed by the SHA-256 of the policy file's bytes, the policy's absolute path, the gatekeeper version and the
  ``baked`` strings the caller names (the versions of whatever the stored form depends on), all re-checked against
  the entry on every read;
- JSON only (never pickle/marshal), size bounded; callers check the exact types of what they get back;
- authenticated with HMAC-SHA256 under a random key kept in the same owner-only directory, so a corrupt, torn or
  edited entry is ignored;
- the directory, the key and the entry must belong to the hook user and not be writable by anyone else (the key not
  readable either); entries are opened without following symlinks;
- any doubt is a miss, and a miss is the full policy load. Nothing here raises.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
from collections.abc import Sequence
from pathlib import Path

from gatekeeper import __version__
from gatekeeper.fsutil import read_regular

FORMAT = 2
MAX_POLICY_BYTES = 1 << 20  # larger policies are refused by the loader anyway: hashing a prefix can only miss
_KEY_NAME = "key"
_KEY_BYTES = 32
_BODY_KEYS = {"format", "kind", "gate_version", "config", "policy_sha256", "baked", "payload"}


def cache_dir_for(fallback_log: Path | None) -> Path | None:
    """The cache lives beside the install's fallback audit log (known to both hooks before any policy is read)."""
    return None if fallback_log is None else Path(os.path.abspath(fallback_log)).parent / "policy-cache"


def policy_digest(config: Path) -> str:
    """SHA-256 of the policy file as it is now (raises OSError)."""
    return hashlib.sha256(read_regular(config, MAX_POLICY_BYTES + 1)).hexdigest()


def recall(cache_dir: Path | None, kind: str, config: Path, policy_sha256: str, *, baked: Sequence[str] = (),
           max_bytes: int) -> object | None:
    """The payload stored for this exact policy (file, bytes) and ``baked`` versions, or None on any doubt."""
    if cache_dir is None:
        return None
    try:
        key = _key(cache_dir, create=False)
        if key is None:
            return None
        raw = _read_owned(cache_dir / _entry_name(kind, config, policy_sha256, baked), max_bytes)
        entry = json.loads(raw)
        if not isinstance(entry, dict) or set(entry) != {"body", "mac"} or type(entry["mac"]) is not str:
            return None
        body = entry["body"]
        if not hmac.compare_digest(entry["mac"], _mac(key, body)):
            return None
        if not isinstance(body, dict) or set(body) != _BODY_KEYS:
            return None
        payload: object = body["payload"]
        if body != _body(kind, config, policy_sha256, baked, payload):
            return None
        return payload
    except (OSError, ValueError, TypeError, RecursionError):
        return None


def remember(cache_dir: Path | None, kind: str, config: Path, policy_sha256: str, payload: object, *,
             baked: Sequence[str] = ()) -> None:
    """Store ``payload`` for the policy whose bytes hash to ``policy_sha256`` (the loader's own digest). Best effort:
    a failure only means the next hook does the full work again."""
    if cache_dir is None:
        return
    try:
        target = cache_dir / _entry_name(kind, config, policy_sha256, baked)
        if target.exists():
            return  # written by an earlier push; recall() checks it
        cache_dir.mkdir(mode=0o700, exist_ok=True)
        key = _key(cache_dir, create=True)
        if key is None:
            return
        body = _body(kind, config, policy_sha256, baked, payload)
        from gatekeeper.fsutil import replace_file

        replace_file(target, json.dumps({"body": body, "mac": _mac(key, body)}, allow_nan=False).encode(), mode=0o600)
    except (OSError, ValueError, TypeError, RecursionError):
        return


def _body(kind: str, config: Path, policy_sha256: str, baked: Sequence[str], payload: object) -> dict[str, object]:
    return {"format": FORMAT, "kind": kind, "gate_version": __version__, "config": os.path.abspath(config),
            "policy_sha256": policy_sha256, "baked": list(baked), "payload": payload}


def _entry_name(kind: str, config: Path, policy_sha256: str, baked: Sequence[str]) -> str:
    ident = "\0".join((str(FORMAT), kind, __version__, os.path.abspath(config), policy_sha256, *baked))
    return f"{kind}-" + hashlib.sha256(ident.encode("utf-8", "surrogateescape")).hexdigest() + ".json"


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
        chunks = []
        remaining = limit + 1
        while remaining > 0:
            chunk = os.read(fd, remaining)
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        data = b"".join(chunks)
        if len(data) > limit:
            raise ValueError(f"{path} is too large")
        return data
    finally:
        os.close(fd)
