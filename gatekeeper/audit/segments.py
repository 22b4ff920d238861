"""Rotated logs: one global chain and Merkle tree over several files, linked by ``log.segment`` records.

When the log file is renamed away (``gatekeeper audit rotate``, or logrotate without ``copytruncate``), the writer finds
an empty or missing file where its state says records were, and starts a *segment*: the new file's first record is a
``log.segment`` event that continues the chain (its ``seq`` and ``prev`` follow the old file's last record) and carries
what the old file ended with: record count, last leaf hash, the Merkle compact range and the signed checkpoint of that
size. The tree and the checkpoints stay global, so a checkpoint an auditor kept before the rotation is still a prefix of
every later one (rollback and fork detection survive rotation).

``verify`` follows the links backwards: the previous segment is the file (given with ``--segment``, or found next to
the log as ``<log>.*``, gzip-compressed or not) whose last record's leaf hash is the link's ``last_leaf``. Whole files
are read in order, oldest first, as one stream; a missing previous segment is an error naming the records it held.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

from gatekeeper.audit.merkle import leaf_hash

SEGMENT_EVENT = "log.segment"
SIDECAR_SUFFIXES = (".checkpoint", ".state.json", ".lock", ".tmp", ".index.sqlite", ".index.sqlite-wal",
                    ".index.sqlite-shm", ".index.sqlite-journal", ".index.lock")
_BLOCK = 4 * 1024 * 1024


def segment_event(size: int, last_leaf: str, compact: Sequence[str], checkpoint: bytes | None,
                  reason: str) -> dict[str, Any]:
    """The first event of a new segment (written by :class:`~gatekeeper.audit.log.AuditLog`)."""
    return {
        "type": SEGMENT_EVENT,
        "reason": reason,
        "previous": {
            "records": size,
            "last_leaf": last_leaf,
            "compact": list(compact),
            "checkpoint": None if checkpoint is None else checkpoint.decode("utf-8", "replace"),
        },
    }


def open_segment(path: Path) -> IO[bytes]:
    # GzipFile reads like a binary file; typeshed does not make it an IO[bytes].
    return cast(IO[bytes], gzip.open(path, "rb")) if path.name.endswith(".gz") else open(path, "rb")


def complete_lines(fh: IO[bytes], check_tail: Callable[[bytes], None] | None = None) -> Iterator[bytes]:
    """The newline-terminated lines of ``fh`` (without newlines), read in blocks; a last fragment without newline is
    not a line. ``check_tail`` sees each pending fragment (to refuse absurdly long lines before buffering more)."""
    tail = b""
    while True:
        chunk = fh.read(_BLOCK)
        if not chunk:
            return
        parts = (tail + chunk).split(b"\n")
        tail = parts.pop()
        if check_tail is not None:
            check_tail(tail)
        yield from parts


def _lines(path: Path) -> Iterator[bytes]:
    with open_segment(path) as fh:
        yield from complete_lines(fh)


def _first_line(path: Path) -> bytes | None:
    """The first complete line of ``path`` (``next(_lines(path), None)``), reading only as far as its newline:
    verify asks for it several times per file, and splitting a whole 4 MiB block into lines each time cost more than
    a tenth of verifying a 300,000-record log."""
    pending: list[bytes] = []
    with open_segment(path) as fh:
        while True:
            chunk = fh.read(64 * 1024)
            if not chunk:
                return None
            end = chunk.find(b"\n")
            if end >= 0:
                pending.append(chunk[:end])
                return b"".join(pending)
            pending.append(chunk)


@dataclass(frozen=True)
class Link:
    """What a segment's first record says about the file before it."""

    records: int
    last_leaf: str
    compact: tuple[str, ...]
    checkpoint: str | None


def first_link(path: Path) -> Link | None:
    """The link in ``path``'s first record, or None if the file starts the log (or is not a segment)."""
    try:
        first = _first_line(path)
    except (OSError, EOFError, gzip.BadGzipFile):
        return None
    if first is None:
        return None
    try:
        record = json.loads(first)
        event = record["event"]
        if event.get("type") != SEGMENT_EVENT:
            return None
        prev = event["previous"]
        return Link(int(prev["records"]), str(prev["last_leaf"]), tuple(map(str, prev["compact"])),
                    prev.get("checkpoint"))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def last_leaf(path: Path) -> str | None:
    last = None
    try:
        for line in _lines(path):
            last = line
    except (OSError, EOFError, gzip.BadGzipFile):
        return None
    return None if last is None else leaf_hash(last).hex()


def candidates(log: Path, extra: Sequence[Path]) -> list[Path]:
    """Files that may hold earlier segments: the ones given, then ``<log>.*`` next to it (sidecars excluded)."""
    found = [Path(p) for p in extra]
    for path in sorted(log.parent.glob(log.name + ".*")):
        rest = path.name[len(log.name):]
        if path.is_file() and not rest.endswith(SIDECAR_SUFFIXES) and path not in found:
            found.append(path)
    return found


@dataclass(frozen=True)
class Chain:
    """The files of one log, oldest first, and where the chain could not be followed further back."""

    files: tuple[Path, ...]
    missing: Link | None  # the link of the oldest file found, when its previous segment was not found


def resolve_chain(log: Path, extra: Sequence[Path] = ()) -> Chain:
    files = [log]
    pool = [p for p in candidates(log, extra) if p != log]
    leaves: dict[Path, str | None] = {}
    while True:
        link = first_link(files[0])
        if link is None:
            return Chain(tuple(files), None)
        previous = None
        for path in pool:
            if path not in leaves:
                leaves[path] = last_leaf(path)
            if leaves[path] == link.last_leaf and path not in files:
                previous = path
                break
        if previous is None:
            return Chain(tuple(files), link)
        files.insert(0, previous)
