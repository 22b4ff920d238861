"""The trust store: OpenSSH ``allowed_signers`` (``ssh-keygen(1)``, ALLOWED SIGNERS) plus a revoked-keys list.

Line format: ``principals [options] keytype base64 [comment]``; blank and ``#`` lines are ignored. Principals are a
comma-separated ``ssh_config`` pattern list (``*``, ``?``, ``!`` negation), optionally double-quoted (then it may
contain spaces). Options (case-insensitive names): ``cert-authority``, ``namespaces="pattern-list"``,
``valid-after="TIME"``, ``valid-before="TIME"`` with TIME ``YYYYMMDD[HHMM[SS]]Z``.

Semantics follow OpenSSH's ``sshsig.c`` (``check_allowed_keys_line``), with the gaps of reference A4 closed:

* Times must end in ``Z``: OpenSSH reads a time without it as *local* time, so one file means different things on
  different servers. Both line bounds are inclusive; certificate ``valid_before`` is exclusive.
* Lines are tried in order and the first line whose key, namespace and time window all fit wins (several windows per
  key are several lines). OpenSSH skips malformed lines; here any problem rejects the whole file, since a skipped line
  could be a revocation-by-edit that silently did not happen, or a key that silently vanished.
* A plain key names exactly one person, literally (patterns only on ``cert-authority`` lines), and one plain key
  listed for different people is rejected: one key is one person, or two-person approval fails.
* Verification time is the server's time passed in by the caller, never a time from the signed content.

Revocation (:mod:`gatekeeper.trust.sshkrl`): a plain list of public keys (one ``type base64 [comment]`` per line) or an
OpenSSH KRL from ``ssh-keygen -k``. A revoked key revokes every certificate for it, and a revoked CA every certificate
it signed (``sshkey_in_file(..., check_ca=1)``, ``ssh_krl_check_key``).
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from datetime import datetime
from datetime import timezone
from pathlib import Path

from gatekeeper.errors import BadSignature
from gatekeeper.errors import ConfigError
from gatekeeper.errors import UntrustedSignature
from gatekeeper.trust.sshkrl import KRL_MAGIC
from gatekeeper.trust.sshkrl import Revocations
from gatekeeper.trust.sshkrl import parse_krl
from gatekeeper.trust.sshsig import CERT_KEY_TYPES
from gatekeeper.trust.sshsig import Certificate
from gatekeeper.trust.sshsig import PLAIN_KEY_TYPES
from gatekeeper.trust.sshsig import PublicKey
from gatekeeper.trust.sshsig import parse_armored
from gatekeeper.trust.sshsig import parse_public_key_line
from gatekeeper.trust.sshsig import verify_signature

__all__ = [
    "AllowedSigners",
    "SignerEntry",
    "Verified",
    "lint_allowed_signers",
    "match_pattern",
    "match_pattern_list",
    "parse_allowed_signers",
    "parse_revoked_keys",
]

MAX_FILE_BYTES = 4 * 1024 * 1024
OPTION_NAMES = ("cert-authority", "namespaces", "valid-after", "valid-before")
_TIME_RE = re.compile(r"(\d{8}|\d{12}|\d{14})([Zz]?)")
_WS = " \t"
_OPTION_NAME_RE = re.compile(r"[A-Za-z0-9-]*")

Problem = tuple[int, str]


@dataclass(frozen=True)
class SignerEntry:
    """One ``allowed_signers`` line. ``principals`` are the raw patterns (negations keep their ``!``)."""

    principals: tuple[str, ...]
    key: PublicKey
    cert_authority: bool
    namespaces: tuple[str, ...] | None
    valid_after: datetime | None
    valid_before: datetime | None
    line: int


@dataclass(frozen=True)
class Verified:
    """A signature that verified under a trusted key at the given time.

    ``principals``: for a plain key, the line's one principal (a person's name); for a certificate, the
    certificate's principals that match the line's patterns (never the pattern text itself).
    ``key_fingerprint``/``key_type`` describe the signing key (for certificates the certified key and the
    ``*-cert-v01`` type; ``ca_fingerprint`` then names the CA).
    """

    principals: tuple[str, ...]
    key_fingerprint: str
    key_type: str
    sk_flags: int | None
    sk_counter: int | None
    line: int
    namespace: str = ""
    hash_alg: str = ""
    ca_fingerprint: str | None = None
    cert_key_id: str | None = None
    cert_serial: int | None = None


# --- ssh_config PATTERNS (OpenSSH match.c) ----------------------------------------------------------------------


def match_pattern(s: str, pattern: str) -> bool:
    """``*`` matches any sequence, ``?`` one character; everything else literally (case-sensitive)."""
    # Iterative wildcard match, backtracking only to the last '*': O(len(s) * len(pattern)) at worst, no regex.
    si = pi = 0
    star_pi, star_si = -1, 0
    while si < len(s):
        if pi < len(pattern) and (pattern[pi] == "?" or pattern[pi] == s[si]):
            si += 1
            pi += 1
        elif pi < len(pattern) and pattern[pi] == "*":
            star_pi, star_si = pi, si
            pi += 1
        elif star_pi >= 0:
            star_si += 1
            si = star_si
            pi = star_pi + 1
        else:
            return False
    while pi < len(pattern) and pattern[pi] == "*":
        pi += 1
    return pi == len(pattern)


def match_pattern_list(s: str, patterns: tuple[str, ...]) -> int:
    """OpenSSH ``match_pattern_list``: -1 if a negated pattern matches, 1 if a positive one does, else 0."""
    positive = 0
    for pattern in patterns:
        if pattern.startswith("!"):
            if match_pattern(s, pattern[1:]):
                return -1
        elif match_pattern(s, pattern):
            positive = 1
    return positive


# --- parsing ----------------------------------------------------------------------------------------------------


def _fmt_time(value: datetime | int) -> str:
    if isinstance(value, int):
        try:
            value = datetime.fromtimestamp(value, timezone.utc)
        except (OverflowError, ValueError, OSError):  # certificate times are uint64 (2**64-1 = forever)
            return "forever" if value == 2**64 - 1 else f"@{value}"
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(name: str, value: str) -> datetime:
    """``YYYYMMDD[HHMM[SS]]Z`` (OpenSSH ``parse_absolute_time``, minus the local-time reading)."""
    m = _TIME_RE.fullmatch(value)
    if m is None:
        if value.upper().endswith("UTC"):
            raise ValueError(f"{name} time {value!r}: write the UTC suffix as 'Z'")
        raise ValueError(f"{name} time {value!r} is not YYYYMMDD[HHMM[SS]]Z")
    if not m.group(2):
        raise ValueError(f"{name} time {value!r} has no 'Z': OpenSSH would read it as local time; append Z")
    digits = m.group(1).ljust(14, "0")
    try:
        when = datetime(int(digits[0:4]), int(digits[4:6]), int(digits[6:8]), int(digits[8:10]), int(digits[10:12]),
                        int(digits[12:14]), tzinfo=timezone.utc)
    except ValueError as exc:
        raise ValueError(f"{name} time {value!r} is not a valid date ({exc})") from None
    if when.timestamp() <= 0:  # OpenSSH treats 0 as "unset" and mktime < 0 as invalid
        raise ValueError(f"{name} time {value!r} is not after 1970-01-01")
    return when


class _LineError(ValueError):
    pass


def _split_principals(text: str) -> tuple[str, str]:
    """Take the principals field (quoted or not) off the front of ``text``; return (field, rest)."""
    if text.startswith('"'):
        close = text.find('"', 1)
        if close < 0:
            raise _LineError("principals: missing closing quote")
        value, rest = text[1:close], text[close + 1:]
        if rest and rest[0] not in _WS:
            raise _LineError("principals: text directly after the closing quote")
        return value, rest.lstrip(_WS)
    end = len(text)
    for i, ch in enumerate(text):
        if ch in _WS:
            end = i
            break
    value, rest = text[:end], text[end:].lstrip(_WS)
    if '"' in value:
        raise _LineError("principals: a quote inside an unquoted principal list")
    return value, rest


def _split_options(text: str) -> tuple[str, str]:
    """The options field ends at the first blank outside double quotes (OpenSSH ``sshkey_advance_past_options``)."""
    quoted = False
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and quoted and i + 1 < len(text) and text[i + 1] == '"':
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        elif ch in _WS and not quoted:
            return text[:i], text[i:].lstrip(_WS)
        i += 1
    if quoted:
        raise _LineError("options: missing closing quote")
    return text, ""


def _dequote(text: str, pos: int, name: str) -> tuple[str, int]:
    """OpenSSH ``opt_dequote``: a double-quoted value, ``\\"`` for a literal quote."""
    if pos >= len(text) or text[pos] != '"':
        raise _LineError(f'option {name}: value must be double-quoted ({name}="...")')
    out: list[str] = []
    pos += 1
    while pos < len(text) and text[pos] != '"':
        if text[pos] == "\\" and pos + 1 < len(text) and text[pos + 1] == '"':
            pos += 1
        out.append(text[pos])
        pos += 1
    if pos >= len(text):  # pragma: no cover - _split_options rejects unbalanced quotes first
        raise _LineError(f"option {name}: missing closing quote")
    return "".join(out), pos + 1


def _parse_options(text: str) -> tuple[bool, tuple[str, ...] | None, datetime | None, datetime | None]:
    seen: set[str] = set()
    ca = False
    namespaces: tuple[str, ...] | None = None
    after: datetime | None = None
    before: datetime | None = None
    pos = 0
    while True:
        m = _OPTION_NAME_RE.match(text, pos)
        assert m is not None
        name = m.group(0).lower()
        pos = m.end()
        if name not in OPTION_NAMES:
            shown = text[m.start():].split(",")[0].split("=")[0]
            raise _LineError(f"unknown option {shown!r}" if shown else "empty option")
        if name in seen:
            raise _LineError(f"duplicate option {name!r}")
        seen.add(name)
        if name == "cert-authority":
            ca = True
        else:
            if pos >= len(text) or text[pos] != "=":
                raise _LineError(f'option {name} needs a value: {name}="..."')
            value, pos = _dequote(text, pos + 1, name)
            if name == "namespaces":
                patterns = tuple(value.split(","))
                if not value or any(not p or p == "!" for p in patterns):
                    raise _LineError(f"option namespaces: empty pattern in {value!r}")
                namespaces = patterns
            else:
                try:
                    when = _parse_time(name, value)
                except ValueError as exc:
                    raise _LineError(str(exc)) from None
                if name == "valid-after":
                    after = when
                else:
                    before = when
        if pos == len(text):
            break
        if text[pos] != ",":
            raise _LineError(f"unexpected {text[pos:pos + 20]!r} after option {name}")
        pos += 1
        if pos == len(text):
            raise _LineError("options end with a comma")
    if after is not None and before is not None and before <= after:
        raise _LineError(f"valid-before {_fmt_time(before)} is not after valid-after {_fmt_time(after)}")
    return ca, namespaces, after, before


def _looks_like_key(tokens: list[str]) -> bool:
    # A key is "TYPE BASE64"; every SSH key blob starts with a uint32 length < 2**24, i.e. base64 "AAAA".
    if tokens and (tokens[0] in PLAIN_KEY_TYPES or tokens[0] in CERT_KEY_TYPES):
        return True
    return len(tokens) >= 2 and tokens[1].startswith("AAAA") and "=" not in tokens[0] and '"' not in tokens[0]


def _parse_line(text: str, lineno: int) -> SignerEntry:
    principals_text, rest = _split_principals(text)
    if not principals_text:
        raise _LineError("empty principals")
    principals = tuple(principals_text.split(","))
    for p in principals:
        if not p or p == "!":
            raise _LineError(f"empty principal in {principals_text!r}")
        if any(not ch.isprintable() for ch in p):
            raise _LineError(f"principal {p!r} contains control characters")
        if p != p.strip():
            raise _LineError(f"principal {p!r} has leading or trailing blanks")
    if not rest:
        raise _LineError("missing key")
    ca, namespaces, after, before = False, None, None, None
    if not _looks_like_key(rest.split(None, 2)):
        options_text, rest = _split_options(rest)
        ca, namespaces, after, before = _parse_options(options_text)
        if not rest:
            raise _LineError("missing key after the options")
        following = rest.split(None, 1)[0]
        if "=" in following or following.lower() in OPTION_NAMES:
            raise _LineError("options must be separated by commas, without spaces")
    try:
        key = parse_public_key_line(rest, what="key")
    except BadSignature as exc:
        raise _LineError(str(exc)) from None
    if isinstance(key, Certificate):
        raise _LineError("a certificate cannot be listed; list its CA key with cert-authority")
    if all(p.startswith("!") for p in principals):
        raise _LineError(f"principals {principals_text!r} only negate, so they match nobody")
    if not ca:
        # The gate counts people: a plain key names exactly one person, literally (reference A7: "exact principals,
        # wildcards only on cert-authority lines"). OpenSSH would accept these lines.
        if len(principals) != 1:
            raise _LineError(f"a plain key must name exactly one person, not {principals_text!r} "
                             "(one line per person, or a CA with cert-authority)")
        if any(ch in principals[0] for ch in "*?!"):
            raise _LineError(f"principal {principals[0]!r}: wildcards and negation are allowed only on "
                             "cert-authority lines")
    return SignerEntry(principals, key, ca, namespaces, after, before, lineno)


def _decode(data: bytes, what: str) -> tuple[list[str], list[Problem]]:
    if len(data) > MAX_FILE_BYTES:
        return [], [(0, f"{what} is larger than {MAX_FILE_BYTES} bytes")]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [], [(_line_of(data, exc.start), f"{what} is not valid UTF-8")]
    if "\0" in text:
        return [], [(_line_of(data, data.index(b"\0")), f"{what} contains a NUL byte")]
    return [line[:-1] if line.endswith("\r") else line for line in text.split("\n")], []


def _line_of(data: bytes, offset: int) -> int:
    """1-based line number of a byte offset."""
    return data.count(b"\n", 0, offset) + 1


def parse_allowed_signers(data: bytes) -> tuple[list[SignerEntry], list[Problem]]:
    """Parse an ``allowed_signers`` file; returns the entries and every problem as ``(line, message)``."""
    lines, problems = _decode(data, "allowed_signers")
    entries: list[SignerEntry] = []
    for lineno, line in enumerate(lines, 1):
        stripped = line.strip(_WS)
        if not stripped or stripped.startswith("#"):
            continue
        try:
            entries.append(_parse_line(stripped, lineno))
        except _LineError as exc:
            problems.append((lineno, str(exc)))
    # One plain key, one person: the same key under different principals would let one holder count twice.
    owners: dict[bytes, SignerEntry] = {}
    for entry in entries:
        if entry.cert_authority:
            continue
        first = owners.setdefault(entry.key.blob, entry)
        if first is not entry and set(first.principals) != set(entry.principals):
            problems.append((entry.line, f"key {entry.key.fingerprint} is also listed for other principals on "
                                         f"line {first.line}; one key must belong to one person"))
    if not entries and not problems:
        problems.append((0, "no signers: the file lists no keys"))
    problems.sort()
    return entries, problems


def parse_revoked_keys(data: bytes) -> tuple[Revocations, list[Problem]]:
    """Parse a revocation file: an OpenSSH KRL (detected by its magic) or a list of ``type base64 [comment]`` lines
    (a listed certificate revokes its key)."""
    if data.startswith(KRL_MAGIC):
        try:
            return parse_krl(data), []
        except BadSignature as exc:
            return Revocations(), [(0, f"invalid OpenSSH KRL: {exc}")]
    lines, problems = _decode(data, "revoked keys file")
    blobs: set[bytes] = set()
    for lineno, line in enumerate(lines, 1):
        stripped = line.strip(_WS)
        if not stripped or stripped.startswith("#"):
            continue
        try:
            key = parse_public_key_line(stripped, what="revoked key")
        except BadSignature as exc:
            problems.append((lineno, str(exc)))
            continue
        blobs.add(key.key.blob if isinstance(key, Certificate) else key.blob)
    return Revocations(keys=frozenset(blobs)), problems


def _read(path: Path, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}",
                          hint="check the trust settings in the policy and the file's permissions") from None
    return data


def lint_allowed_signers(path: Path, *, revoked: Path | None = None) -> list[tuple[int, str]]:
    """Every problem in an ``allowed_signers`` file (and optionally a revoked-keys file) as ``(line, message)``.

    Line 0 means the whole file. Problems of the revoked file are prefixed with its name.
    """
    try:
        _, problems = parse_allowed_signers(_read(path, "allowed signers"))
    except ConfigError as exc:
        return [(0, exc.message)]
    if revoked is not None:
        try:
            _, rproblems = parse_revoked_keys(_read(revoked, "revoked keys"))
        except ConfigError as exc:
            rproblems = [(0, exc.message)]
        problems += [(line, f"{revoked.name}: {msg}") for line, msg in rproblems]
    return problems


# --- verification -----------------------------------------------------------------------------------------------


def _epoch_seconds(now: datetime) -> int:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("`now` must be timezone-aware (the server's current time in UTC)")
    # OpenSSH compares whole seconds (time(NULL)); floor so that a bound at second T still holds during T.
    return math.floor(now.timestamp())


class AllowedSigners:
    """A loaded, linted trust store. Build it with :meth:`load` (or :meth:`from_bytes` in tests)."""

    def __init__(self, entries: tuple[SignerEntry, ...], revoked: Revocations, digest: str) -> None:
        self._entries = entries
        self._revoked = revoked
        self._digest = digest

    @classmethod
    def from_bytes(cls, data: bytes, *, revoked: bytes | None = None, source: str = "allowed_signers",
                   revoked_source: str = "revoked keys") -> AllowedSigners:
        """Parse trust-store contents; any problem raises :class:`ConfigError` listing all of them."""
        entries, problems = parse_allowed_signers(data)
        messages = [f"{source}:{line}: {msg}" for line, msg in problems]
        revocations = Revocations()
        if revoked is not None:
            revocations, rproblems = parse_revoked_keys(revoked)
            messages += [f"{revoked_source}:{line}: {msg}" for line, msg in rproblems]
        if messages:
            raise ConfigError(
                f"the trust store has {len(messages)} problem{'s' if len(messages) != 1 else ''}; "
                f"no approval is accepted until it is fixed: " + "; ".join(messages),
                problems=messages,
                hint="fix the listed lines (run: gatekeeper policy lint); times need a Z suffix, e.g. "
                     'valid-before="20270101Z"',
            )
        return cls(tuple(entries), revocations, _digest(data, revoked))

    @classmethod
    def load(cls, path: Path, *, revoked: Path | None = None) -> AllowedSigners:
        """Read and lint ``path`` (and the revoked-keys file); fail closed on any problem.

        Raises:
            ConfigError: unreadable file, malformed KRL, or any lint problem (all listed, with line numbers).
        """
        data = _read(path, "allowed signers")
        rdata = _read(revoked, "revoked keys") if revoked is not None else None
        return cls.from_bytes(data, revoked=rdata, source=str(path),
                              revoked_source=str(revoked) if revoked is not None else "revoked keys")

    @property
    def entries(self) -> tuple[SignerEntry, ...]:
        return self._entries

    def sha256(self) -> str:
        """Hex SHA-256 identifying the trust store for the audit record.

        Without a revoked file: the SHA-256 of the ``allowed_signers`` bytes (what ``sha256sum`` prints). With one:
        the SHA-256 of ``"<hex(allowed)>  allowed_signers\\n<hex(revoked)>  revoked\\n"``.
        """
        return self._digest

    def is_revoked(self, key: PublicKey) -> bool:
        return self._revoked.revokes_key(key)

    def verify(self, armored_sig: str | bytes, message: bytes, *, namespace: str, now: datetime,
               require_user_presence: bool = True, webauthn_origin: str | None = None,
               require_user_verification: bool = False) -> Verified:
        """Parse, verify and trust-check a signature at the server time ``now``.

        Raises:
            BadSignature: malformed, wrong namespace, or the cryptography fails.
            UntrustedSignature: valid, but revoked, or no line trusts this key (or CA) for this namespace and time.
        """
        t = _epoch_seconds(now)
        sig = parse_armored(armored_sig)
        verify_signature(sig, message, namespace=namespace, require_user_presence=require_user_presence,
                         webauthn_origin=webauthn_origin, require_user_verification=require_user_verification)
        key, cert = sig.public_key, sig.cert
        revoked = self._revoked.reason(key, cert)
        if revoked is not None:
            raise UntrustedSignature(revoked, hint="the signer needs a new key (or certificate) that an admin trusts")
        reasons: list[str] = []
        for entry in self._entries:
            principals = self._match_entry(entry, key, cert, t, reasons)
            if principals is None:
                continue
            if entry.namespaces is not None and match_pattern_list(sig.namespace, entry.namespaces) != 1:
                reasons.append(f"namespace {sig.namespace!r} not allowed for this key (line {entry.line})")
                continue
            if entry.valid_after is not None and t < entry.valid_after.timestamp():
                reasons.append(f"key valid only from {_fmt_time(entry.valid_after)} (line {entry.line})")
                continue
            if entry.valid_before is not None and t > entry.valid_before.timestamp():
                reasons.append(f"key valid only until {_fmt_time(entry.valid_before)} (line {entry.line})")
                continue
            return Verified(
                principals=principals, key_fingerprint=key.fingerprint, key_type=sig.key_type,
                sk_flags=sig.sk_flags, sk_counter=sig.sk_counter, line=entry.line, namespace=sig.namespace,
                hash_alg=sig.hash_alg, ca_fingerprint=cert.ca_key.fingerprint if cert is not None else None,
                cert_key_id=cert.key_id if cert is not None else None,
                cert_serial=cert.serial if cert is not None else None,
            )
        who = f"key {key.fingerprint}"
        if not reasons:
            if cert is not None:
                raise UntrustedSignature(
                    f"{who} signed with a certificate from CA {cert.ca_key.fingerprint}, which is not a "
                    "cert-authority in allowed_signers",
                    hint="an admin must add the CA key with the cert-authority option")
            raise UntrustedSignature(f"{who} is not in allowed_signers",
                                     hint="an admin must add this key to allowed_signers for its owner")
        raise UntrustedSignature(f"{who} is not trusted here: " + "; ".join(reasons),
                                 hint="ask an admin to check allowed_signers for this key")

    @staticmethod
    def _match_entry(entry: SignerEntry, key: PublicKey, cert: Certificate | None, t: int,
                     reasons: list[str]) -> tuple[str, ...] | None:
        """The principals this line grants to the signature, or None (with a reason when the key was relevant)."""
        if not entry.cert_authority:
            if entry.key.blob != key.blob:
                if cert is not None and entry.key.blob == cert.ca_key.blob:
                    reasons.append(f"line {entry.line} lists the certificate's CA without cert-authority")
                return None
            if cert is not None:
                # sshkey_equal: a certificate is not its plain key (reference A3, observed).
                reasons.append(f"line {entry.line} lists the key itself, but the signature carries a certificate")
                return None
            return entry.principals  # exactly one literal name (checked when the file was parsed)
        if cert is None:
            if entry.key.blob == key.blob:
                reasons.append(f"line {entry.line} lists this key as a cert-authority, but the signature carries "
                               "no certificate")
            return None
        if entry.key.blob != cert.ca_key.blob:
            return None
        # sshkey_cert_check_authority(want_host=0, require_principal=1): user cert, time, principals.
        if not cert.is_user:
            reasons.append(f"certificate {cert.key_id!r} is a host certificate (line {entry.line})")
            return None
        if t < cert.valid_after:
            reasons.append(f"certificate {cert.key_id!r} valid only from {_fmt_time(cert.valid_after)}")
            return None
        if t >= cert.valid_before:
            reasons.append(f"certificate {cert.key_id!r} expired at {_fmt_time(cert.valid_before)}")
            return None
        if not cert.principals:
            # CVE-2024-7594 class: an empty principal list must never mean "anyone".
            reasons.append(f"certificate {cert.key_id!r} has no principals")
            return None
        matched = tuple(dict.fromkeys(p for p in cert.principals if match_pattern_list(p, entry.principals) == 1))
        if not matched:
            reasons.append(f"certificate principals {', '.join(cert.principals)} do not match line {entry.line}")
            return None
        return matched


def _digest(allowed: bytes, revoked: bytes | None) -> str:
    first = hashlib.sha256(allowed).hexdigest()
    if revoked is None:
        return first
    manifest = f"{first}  allowed_signers\n{hashlib.sha256(revoked).hexdigest()}  revoked\n"
    return hashlib.sha256(manifest.encode()).hexdigest()
