"""Pairing an outcome with its decision: the ``push_id`` of the newest decision that explains the refs that moved.

git runs pre-receive and post-receive as separate processes and gives them no value in common that a pusher cannot
choose (push options are the pusher's), so post-receive looks the decision up in the log itself: the newest
``push.decision`` for the same repository and pusher that let the push through (not ``blocked``) and whose updates
contain every ``(ref, old, new)`` that moved. Two pushes with identical triples cannot both land (the second one's
``old`` no longer matches), so the newest match is the one. Only the log's last :data:`TAIL_BYTES` are read, backwards:
the hooks of one push run seconds apart. Read-only and lock-free (the log only grows; a partial last line is skipped).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

TAIL_BYTES = 8 * 1024 * 1024
_BLOCK = 256 * 1024


def _lines_backwards(path: Path, limit: int) -> Iterator[bytes]:
    """Complete lines from the end of the file, newest first, within the last ``limit`` bytes."""
    with open(path, "rb") as fh:
        end = os.fstat(fh.fileno()).st_size
        floor = max(0, end - limit)
        pos = end
        carry = b""
        tail_done = False  # bytes after the last newline are a torn fragment, never a record
        while pos > floor:
            step = min(_BLOCK, pos - floor)
            pos -= step
            fh.seek(pos)
            parts = (fh.read(step) + carry).split(b"\n")
            carry = b""
            if not tail_done:
                if len(parts) == 1:
                    continue  # still inside the fragment
                parts.pop()
                tail_done = True
            if pos > 0:
                carry = parts.pop(0)  # may continue before this block
            yield from reversed(parts)


def _triples(updates: object) -> set[tuple[Any, Any, Any]]:
    if not isinstance(updates, list):
        return set()
    return {(u.get("ref"), u.get("old"), u.get("new")) for u in updates if isinstance(u, dict)}


def find_decision(
    log: Path, *, repo: object, user: object, updates: Sequence[dict[str, Any]] | None, limit: int = TAIL_BYTES,
) -> str | None:
    """The ``push_id`` of the decision that let these ``updates`` through, or None (never raises)."""
    wanted = _triples(updates)
    if not wanted:
        return None
    try:
        for line in _lines_backwards(Path(log), limit):
            if b'"push.decision"' not in line:
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            event = record.get("event") if isinstance(record, dict) else None
            if not isinstance(event, dict) or event.get("type") != "push.decision" or event.get("blocked") is not False:
                continue
            pusher = event.get("pusher")
            other_user = isinstance(pusher, dict) and pusher.get("user") != user
            if event.get("repo") != repo or (user is not None and other_user):
                continue
            if wanted <= _triples(event.get("updates")):
                push_id = event.get("push_id")
                return push_id if isinstance(push_id, str) else None
    except OSError:
        return None
    return None
