"""The remembered tree listings file (push/tree_listings.py): what one hook writes the next reads back exactly, odd
paths included; a torn, damaged, foreign or loosely-permissioned file is a miss, never a wrong listing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gatekeeper.push import tree_listings
from gatekeeper.push.tree_listings import TreeListings


def keep(name: bytes) -> bool:
    return name.endswith(b".yaml")


T1, T2, T3 = "1" * 40, "2" * 40, "3" * 40
ENTRIES = ((b"a b/c\nd.yaml", 0o100644, "a" * 40), (b"\xff\xfe.yaml", 0o100755, "b" * 40),
           (b"x.yaml", 0o120000, "c" * 40))


def _written(tmp_path: Path) -> Path:
    listings = TreeListings(tmp_path, keep, "t")
    listings.add(T1, ENTRIES)
    listings.add(T2, ())
    listings.flush()
    listings.add(T3, ENTRIES[:1])
    listings.flush()
    return Path(listings.path)


def test_round_trip_with_odd_paths(tmp_path: Path) -> None:
    _written(tmp_path)
    again = TreeListings(tmp_path, keep, "t")
    assert again.get(T1) == ENTRIES and again.get(T2) == () and again.get(T3) == ENTRIES[:1]
    assert again.get("4" * 40) is None
    assert TreeListings(tmp_path, keep, "other-version").get(T1) is None


def test_a_torn_last_batch_loses_only_itself(tmp_path: Path) -> None:
    path = _written(tmp_path)
    path.write_bytes(path.read_bytes()[:-5])
    again = TreeListings(tmp_path, keep, "t")
    assert again.get(T1) == ENTRIES and again.get(T3) is None


@pytest.mark.parametrize("offset", [0, 3, 60, 75, 90, -3])
def test_a_changed_byte_is_never_believed(tmp_path: Path, offset: int) -> None:
    path = _written(tmp_path)
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    again = TreeListings(tmp_path, keep, "t")
    for tree, entries in ((T1, ENTRIES), (T2, ()), (T3, ENTRIES[:1])):
        assert again.get(tree) in (None, entries)


def test_a_symlinked_or_loosely_permissioned_file_is_ignored(tmp_path: Path) -> None:
    path = _written(tmp_path)
    path.chmod(0o666)
    assert TreeListings(tmp_path, keep, "t").get(T1) is None
    path.chmod(0o600)
    real = tmp_path / "elsewhere"
    path.rename(real)
    os.symlink(real, path)
    assert TreeListings(tmp_path, keep, "t").get(T1) is None


def test_the_file_starts_over_past_its_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _written(tmp_path)
    monkeypatch.setattr(tree_listings, "MAX_FILE_BYTES", path.stat().st_size + 10)
    listings = TreeListings(tmp_path, keep, "t")
    listings.add("5" * 40, ENTRIES)
    listings.flush()
    again = TreeListings(tmp_path, keep, "t")
    assert again.get("5" * 40) == ENTRIES and again.get(T1) is None


def test_only_sha1_ids_are_remembered(tmp_path: Path) -> None:
    listings = TreeListings(tmp_path, keep, "t")
    listings.add("6" * 64, ENTRIES)
    listings.flush()
    assert TreeListings(tmp_path, keep, "t").get("6" * 64) is None
