"""The approval statement: what a reviewer signs, in one canonical byte form, and its strict parser.

A statement binds (DESIGN.md "Approvals bind content, not commits"; reference A7):

* ``type``: the statement version, ``gatekeeper-approval/v1``;
* ``repository``: the repository id the gate binds approvals to (policy ``repository``, else the platform's);
* ``ref``: the target ref (``refs/heads/main``) or a ref pattern (``refs/heads/release/**``);
* ``approver``: the person the reviewer claims to be; the gate only accepts it when it equals the principal of the
  trusted key that verified the signature (identity comes from the key, never from the statement);
* ``base``/``head``: the commits the reviewer compared (for the record; the gate matches content, not commits);
* ``created``/``expires``: UTC times, whole seconds;
* ``nonce``: 128 random bits (hex), also the last component of the approval's ref name;
* ``note``: free text (one line);
* ``changes``: the full change set base..head, one ``[path, old_mode, old_id, new_mode, new_id]`` per differing
  path, sorted by the path's bytes. A path that is valid UTF-8 is a JSON string; any other path is
  ``{"base64": "..."}``, so non-UTF-8 paths survive byte for byte. Modes are git's six octal digits
  (``000000`` = absent on that side); ids are lowercase hex (all zeros = absent).

The canonical form is pretty-printed ASCII JSON (readable with ``git show``), one change per line, produced by
:func:`Statement.to_bytes`. :func:`parse_statement` accepts exactly that form and nothing else: it parses, validates
every field, re-serialises and requires the bytes to be identical. So there is one byte string per statement, and
no whitespace, key order, duplicate key, escape or number-format variant can carry a different meaning past the
signature check.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from gatekeeper.errors import GatekeeperError
from gatekeeper.model import MODE_ABSENT, MODE_BLOB, MODE_EXEC, MODE_GITLINK, MODE_LINK, MODE_TREE, Change

__all__ = [
    "STATEMENT_TYPE",
    "MalformedApproval",
    "Statement",
    "format_time",
    "parse_statement",
    "parse_time",
    "project",
]

STATEMENT_TYPE = "gatekeeper-approval/v1"
# A statement is what one person reviewed: about 150 bytes per changed path, so 512 KiB holds some 3,000 paths. Every
# stored statement is read by pushes that touch its paths, so a small cap keeps one approver from making pushes slow
# or exhausting the hook's memory; a change bigger than this is split into reviewable parts (or lands by break-glass).
MAX_STATEMENT_BYTES = 512 * 1024
MAX_NOTE_CHARS = 1000
MAX_REF_CHARS = 1024
MAX_REPOSITORY_CHARS = 200

_KEYS = ("type", "repository", "ref", "approver", "base", "head", "created", "expires", "nonce", "note", "changes")
_OID_RE = re.compile(r"(?:[0-9a-f]{40}|[0-9a-f]{64})\Z")
_NONCE_RE = re.compile(r"[0-9a-f]{32}\Z")
# People names are allowed_signers principals (policy._NAME_RE): no pattern characters, no white space.
PERSON_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,99}\Z")
_TIME_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z\Z")
_MODES = frozenset({MODE_ABSENT, MODE_BLOB, MODE_EXEC, MODE_LINK, MODE_GITLINK, MODE_TREE})


class MalformedApproval(GatekeeperError):
    """An approval (statement, signature or its storage) is not well-formed."""

    default_hint = "create the approval again with: gatekeeper approve REV --ref REF"


@dataclass(frozen=True)
class Statement:
    repository: str
    ref: str
    approver: str
    base: str
    head: str
    created: datetime
    expires: datetime
    nonce: str
    note: str
    changes: tuple[Change, ...]

    def to_bytes(self) -> bytes:
        """The canonical form: the exact bytes that are signed and stored as ``approval.json``."""
        head_fields = (
            ("type", STATEMENT_TYPE),
            ("repository", self.repository),
            ("ref", self.ref),
            ("approver", self.approver),
            ("base", self.base),
            ("head", self.head),
            ("created", format_time(self.created)),
            ("expires", format_time(self.expires)),
            ("nonce", self.nonce),
            ("note", self.note),
        )
        lines = ["{"]
        lines.extend(f"  {_json(key)}: {_json(value)}," for key, value in head_fields)
        if not self.changes:
            lines.append('  "changes": []')
        else:
            lines.append('  "changes": [')
            rows = [f"    [{_json_path(c.path)}, {_json(_mode(c.old_mode))}, {_json(c.old_id)}, "
                    f"{_json(_mode(c.new_mode))}, {_json(c.new_id)}]" for c in self.changes]
            lines.append(",\n".join(rows))
            lines.append("  ]")
        lines.append("}")
        return ("\n".join(lines) + "\n").encode("ascii")

    def is_pattern(self) -> bool:
        """Whether ``ref`` is a ref pattern rather than one ref."""
        return any(ch in self.ref for ch in "*?[")


def _json(value: str) -> str:
    return json.dumps(value, ensure_ascii=True)


def _json_path(path: bytes) -> str:
    try:
        return _json(path.decode("utf-8", "strict"))
    except UnicodeDecodeError:
        return '{"base64": ' + _json(base64.b64encode(path).decode("ascii")) + "}"


def _mode(mode: int) -> str:
    return f"{mode:06o}"


def format_time(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str, field_: str = "time") -> datetime:
    if not isinstance(text, str) or not _TIME_RE.match(text):
        raise MalformedApproval(f"{field_} must be a UTC time like 2026-01-31T12:00:00Z, not {text!r}")
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except ValueError as exc:
        raise MalformedApproval(f"{field_} {text!r} is not a valid time") from exc


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in pairs:
        if key in out:
            raise MalformedApproval(f"the statement repeats the key {key!r}")
        out[key] = value
    return out


def _reject_constant(name: str) -> object:
    raise MalformedApproval(f"the statement contains the non-JSON number {name}")


def parse_statement(data: bytes) -> Statement:
    """Parse and validate a statement in canonical form.

    Raises:
        MalformedApproval: too big, not ASCII JSON, a missing, extra or invalid field, or not canonical.
    """
    if len(data) > MAX_STATEMENT_BYTES:
        raise MalformedApproval(f"the statement is {len(data)} bytes, over the {MAX_STATEMENT_BYTES}-byte cap")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as exc:
        raise MalformedApproval("the statement is not ASCII (the canonical form escapes everything else)") from exc
    try:
        doc = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except MalformedApproval:
        raise
    except (ValueError, RecursionError) as exc:
        raise MalformedApproval(f"the statement is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise MalformedApproval("the statement must be a JSON object")
    missing = [k for k in _KEYS if k not in doc]
    extra = sorted(k for k in doc if k not in _KEYS)
    if missing or extra:
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + ([f"unknown {', '.join(extra)}"] if extra
                                                                          else [])
        raise MalformedApproval(f"the statement has the wrong fields ({'; '.join(parts)})")
    if doc["type"] != STATEMENT_TYPE:
        raise MalformedApproval(f"unsupported statement type {doc['type']!r}; this gate reads {STATEMENT_TYPE}")
    statement = Statement(
        repository=_text(doc, "repository", MAX_REPOSITORY_CHARS),
        ref=_ref(doc),
        approver=_person(doc),
        base=_oid(doc, "base"),
        head=_oid(doc, "head"),
        created=parse_time(doc["created"], "created"),
        expires=parse_time(doc["expires"], "expires"),
        nonce=_nonce(doc),
        note=_note(doc),
        changes=_changes(doc["changes"]),
    )
    if statement.expires <= statement.created:
        raise MalformedApproval("the statement expires before it was created")
    if len(statement.base) != len(statement.head):
        raise MalformedApproval("base and head ids have different lengths")
    if statement.to_bytes() != data:
        raise MalformedApproval("the statement is not in canonical form (it was edited after it was made)")
    return statement


def _text(doc: dict[str, object], key: str, limit: int) -> str:
    value = doc[key]
    if not isinstance(value, str) or not value or len(value) > limit:
        raise MalformedApproval(f"{key} must be a non-empty string of at most {limit} characters")
    if any(ch.isspace() or not ch.isprintable() for ch in value):
        raise MalformedApproval(f"{key} {value!r} must be printable, without white space")
    return value


def _ref(doc: dict[str, object]) -> str:
    ref = _text(doc, "ref", MAX_REF_CHARS)
    if not ref.startswith("refs/") or "//" in ref or ref.endswith("/") or ".." in ref:
        raise MalformedApproval(f"ref {ref!r} must be a full ref name or pattern such as refs/heads/main")
    return ref


def _person(doc: dict[str, object]) -> str:
    value = doc["approver"]
    if not isinstance(value, str) or not PERSON_RE.match(value):
        raise MalformedApproval(f"approver {value!r} is not a valid person name")
    return value


def _oid(doc: dict[str, object], key: str) -> str:
    value = doc[key]
    if not isinstance(value, str) or not _OID_RE.match(value):
        raise MalformedApproval(f"{key} must be a lowercase hex object id")
    return value


def _nonce(doc: dict[str, object]) -> str:
    value = doc["nonce"]
    if not isinstance(value, str) or not _NONCE_RE.match(value):
        raise MalformedApproval("nonce must be 32 lowercase hex digits (128 random bits)")
    return value


def _note(doc: dict[str, object]) -> str:
    value = doc["note"]
    if not isinstance(value, str) or len(value) > MAX_NOTE_CHARS:
        raise MalformedApproval(f"note must be a string of at most {MAX_NOTE_CHARS} characters")
    if any(not ch.isprintable() for ch in value):
        raise MalformedApproval("note must be one line of printable text")
    return value


def _changes(value: object) -> tuple[Change, ...]:
    if not isinstance(value, list):
        raise MalformedApproval("changes must be a list")
    out: list[Change] = []
    previous: bytes | None = None
    for index, row in enumerate(value):
        where = f"changes[{index}]"
        if not isinstance(row, list) or len(row) != 5:
            raise MalformedApproval(f"{where} must be [path, old_mode, old_id, new_mode, new_id]")
        path = _change_path(row[0], where)
        old_mode, new_mode = _change_mode(row[1], where), _change_mode(row[3], where)
        old_id, new_id = row[2], row[4]
        for oid in (old_id, new_id):
            if not isinstance(oid, str) or not _OID_RE.match(oid):
                raise MalformedApproval(f"{where} has an invalid object id")
        if previous is not None and path <= previous:
            raise MalformedApproval(f"{where}: changes must be sorted by path, each path once")
        if (old_mode, old_id) == (new_mode, new_id):
            raise MalformedApproval(f"{where} does not change anything")
        previous = path
        out.append(Change(path, old_mode, old_id, new_mode, new_id))
    return tuple(out)


def _change_path(value: object, where: str) -> bytes:
    if isinstance(value, str):
        raw = value.encode("utf-8", "strict") if _encodable(value) else b""
    elif isinstance(value, dict) and list(value) == ["base64"] and isinstance(value["base64"], str):
        try:
            raw = base64.b64decode(value["base64"], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise MalformedApproval(f"{where} has an invalid base64 path") from exc
    else:
        raise MalformedApproval(f"{where}: the path must be a string or {{\"base64\": ...}}")
    if not raw or b"\0" in raw or raw.startswith(b"/") or raw.endswith(b"/"):
        raise MalformedApproval(f"{where} has an invalid path")
    return raw


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8", "strict")
    except UnicodeEncodeError:
        return False  # lone surrogates from \\ud800 escapes
    return True


def _change_mode(value: object, where: str) -> int:
    if not isinstance(value, str) or len(value) != 6 or any(ch not in "01234567" for ch in value):
        raise MalformedApproval(f"{where} has an invalid mode {value!r}")
    mode = int(value, 8)
    if mode not in _MODES:
        raise MalformedApproval(f"{where} has an unknown mode {value}")
    return mode


def project(changes: Sequence[Change], keep: Callable[[bytes], bool]) -> dict[bytes, Change]:
    """The change set restricted to the paths for which ``keep(path)`` is true, keyed by path."""
    return {c.path: c for c in changes if keep(c.path)}
