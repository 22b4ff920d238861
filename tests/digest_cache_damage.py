"""Damage done to an entry of the hooks' policy cache (gatekeeper/policy/digest_cache.py), shared by the tests of
every kind of entry: each must be ignored (a miss, then the full policy load)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from gatekeeper.policy import digest_cache

DAMAGES = ("edited", "truncated", "not-json", "empty", "forged-group-writable", "forged-key-readable-by-others",
           "symlink")


def tamper(entry: Path, change: Callable[[dict[str, object]], None], *, key: bytes | None) -> None:
    """Apply ``change`` to the entry's payload; with ``key`` (the cache's real one), re-sign it, so that only the
    permissions can give it away."""
    data = json.loads(entry.read_text())
    change(data["body"]["payload"])
    if key is not None:
        data["mac"] = digest_cache._mac(key, data["body"])
    entry.write_text(json.dumps(data))


def damage_entry(entry: Path, damage: str, change: Callable[[dict[str, object]], None], elsewhere: Path) -> None:
    """Do ``damage`` (one of :data:`DAMAGES`) to ``entry``; ``change`` is what an attacker would like the payload to
    say; ``elsewhere`` is where a symlinked entry's target is put."""
    cache = entry.parent
    key = (cache / "key").read_bytes()
    if damage == "edited":
        tamper(entry, change, key=None)
    elif damage == "truncated":
        entry.write_bytes(entry.read_bytes()[:-20])
    elif damage == "not-json":
        entry.write_bytes(b"\x80\x04K\x01.")  # a pickle: never read as one
    elif damage == "empty":
        entry.write_bytes(b"")
    elif damage == "forged-group-writable":
        tamper(entry, change, key=key)
        entry.chmod(0o620)
    elif damage == "forged-key-readable-by-others":
        tamper(entry, change, key=key)
        (cache / "key").chmod(0o644)  # a key others could read authenticates nothing
    elif damage == "symlink":
        entry.rename(elsewhere)
        tamper(elsewhere, change, key=key)
        entry.symlink_to(elsewhere)
    else:  # pragma: no cover - a typo in a test
        raise ValueError(damage)
