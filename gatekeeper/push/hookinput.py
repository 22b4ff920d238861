"""Parse and validate what git gives pre-receive and post-receive on stdin: ``<old> SP <new> SP <ref> LF`` per ref.

Strict on purpose: the gate refuses a push whose input it does not fully understand. Object ids are 40 (SHA-1) or
64 (SHA-256) lowercase hex digits, both ids of a line have the same length, and the null id is all zeros of that
length (never a hard-coded 40 zeros). Ref names must satisfy git's ``check-ref-format`` rules and be UTF-8.
"""

from __future__ import annotations

import re

from gatekeeper.errors import InputError
from gatekeeper.model import ObjectId, RefUpdate

# 100,000 updates of ~160 bytes; the CLI reads at most one byte more than this, so a huge stdin never sits in memory.
MAX_STDIN_BYTES = 16 * 1024 * 1024
MAX_UPDATES = 100_000

_OID = re.compile(rb"\A(?:[0-9a-f]{40}|[0-9a-f]{64})\Z")
# check-ref-format: no control characters, space, ~ ^ : ? * [ \ or DEL anywhere.
_BAD_REF_CHARS = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


def parse_updates(data: bytes) -> list[RefUpdate]:
    """Parse hook stdin. Raises InputError naming the first bad line."""
    if len(data) > MAX_STDIN_BYTES:
        raise InputError(f"hook input is over the {MAX_STDIN_BYTES}-byte limit")
    if not data:
        return []
    if data.endswith(b"\n"):
        data = data[:-1]
    lines = data.split(b"\n")
    if len(lines) > MAX_UPDATES:
        raise InputError(f"{len(lines)} ref updates in one push, over the limit of {MAX_UPDATES}")
    updates: list[RefUpdate] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, 1):
        update = _parse_line(line, number)
        if update.ref in seen:
            raise InputError(f"hook input line {number}: ref {update.ref} appears twice")
        seen.add(update.ref)
        updates.append(update)
    return updates


def _parse_line(line: bytes, number: int) -> RefUpdate:
    parts = line.split(b" ")
    if len(parts) != 3:
        raise InputError(f"hook input line {number}: expected '<old> <new> <ref>', got {_show(line)}")
    old, new, ref_raw = parts
    for oid in (old, new):
        if not _OID.match(oid):
            raise InputError(f"hook input line {number}: {_show(oid)} is not an object id")
    if len(old) != len(new):
        raise InputError(f"hook input line {number}: old and new object ids differ in length")
    try:
        ref = ref_raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"hook input line {number}: ref name {_show(ref_raw)} is not UTF-8") from None
    problem = ref_name_problem(ref)
    if problem:
        raise InputError(f"hook input line {number}: bad ref name {_show(ref_raw)}: {problem}")
    return RefUpdate(old=ObjectId(old.decode()), new=ObjectId(new.decode()), ref=ref)


def ref_name_problem(ref: str) -> str | None:
    """Why ``ref`` is not a valid full ref name (git check-ref-format), or None."""
    if not ref.startswith("refs/"):
        return "does not start with refs/"
    if _BAD_REF_CHARS.search(ref):
        return "contains a control character, space or one of ~^:?*[\\"
    if ".." in ref or "@{" in ref or "//" in ref:
        return "contains '..', '@{' or '//'"
    if ref.endswith(("/", ".")) or ref.endswith(".lock"):
        return "ends with '/', '.' or '.lock'"
    for component in ref.split("/"):
        if not component or component.startswith(".") or component.endswith(".lock"):
            return f"component {component!r} is empty, starts with '.' or ends with '.lock'"
    if ref == "@":
        return "is '@'"
    return None


def _show(raw: bytes, limit: int = 80) -> str:
    text = raw[:limit].decode("utf-8", "backslashreplace")
    text = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)
    return repr(text) + ("..." if len(raw) > limit else "")
