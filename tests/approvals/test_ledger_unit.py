"""The approvals ledger alone: what a push reads, what consumption, withdrawal and expiry leave behind."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from gatekeeper.approvals.ledger import COMPACT_AFTER, Ledger, LedgerError, LedgerUpdate
from gatekeeper.approvals.statement import Statement
from gatekeeper.approvals.store import StoredApproval, approval_ref
from gatekeeper.model import MODE_BLOB, Change

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=timezone.utc)
A, B = "a" * 40, "b" * 40


def stored(n: int, *, ref: str = "refs/heads/main", person: str = "alice", path: bytes = b"models/x.py",
           expires: timedelta = timedelta(days=1)) -> StoredApproval:
    nonce = f"{n:032x}"
    st = Statement(repository="r", ref=ref, approver=person, base=A, head=B, created=NOW, expires=NOW + expires,
                   nonce=nonce, note="", changes=(Change(path, MODE_BLOB, A, MODE_BLOB, B),))
    return StoredApproval(ref=approval_ref(person, nonce), commit=f"{n:040x}", statement_bytes=st.to_bytes(),
                          signature=b"", statement=st)


def exact(pattern: str, ref: str) -> bool:
    return pattern.rstrip("*") and ref.startswith(pattern.rstrip("*"))  # type: ignore[return-value]


def test_a_push_reads_only_approvals_for_its_ref_and_paths(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    spam = [(stored(i, ref=f"refs/heads/release/{i}"), None) for i in range(200)]
    ledger.build([(stored(1000), None), (stored(1001, path=b"other.py"), None), *spam])
    live, dead = ledger.live_for_paths("refs/heads/main", [b"models/x.py"], exact)
    assert [e.commit for e in live] == [f"{1000:040x}"] and dead == []
    ledger.apply(LedgerUpdate(add=[(stored(2000, ref="refs/heads/release/*"), None)]), seq=1)
    live, _ = ledger.live_for_paths("refs/heads/release/7", [b"models/x.py"], exact)
    assert sorted(e.approval_ref.rsplit("/", 1)[1] for e in live) == [f"{7:032x}", f"{2000:032x}"]


def test_consumed_withdrawn_and_expired_stop_counting_with_a_reason(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    a, b, c, p = stored(1), stored(2, person="bob"), stored(3, person="carol"), stored(4, ref="refs/heads/r/*")
    ledger.build([(a, None), (b, None), (c, None), (p, None)])
    ledger.apply(LedgerUpdate(consume=[(a.commit, "refs/heads/main"), (p.commit, "refs/heads/r/1")],
                              withdraw=[(b.commit, "bob")], expired={c.commit}), seq=7)
    live, dead = ledger.live_for_paths("refs/heads/main", [b"models/x.py"], exact)
    assert live == []
    assert sorted(dead) == [("alice", "already used on refs/heads/main (audit record #7)"),
                            ("bob", "withdrawn by bob (audit record #7)"),
                            ("carol", "expired at 2026-12-05T12:00:00Z")]
    # A pattern approval is used up per ref: still live for the refs it was not used on.
    (entry,) = ledger.live_for_paths("refs/heads/r/2", [b"models/x.py"], exact)[0]
    assert entry.consumed_on == {"refs/heads/r/1": 7}
    assert [e.target for e in ledger.live_of("alice")] == ["refs/heads/r/*"]  # main's one is gone


def test_dead_index_lines_are_compacted_away(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    approvals = [stored(i) for i in range(COMPACT_AFTER + 2)]
    ledger.build([(a, None) for a in approvals])
    ledger.apply(LedgerUpdate(consume=[(a.commit, "refs/heads/main") for a in approvals]), seq=1)
    _, dead = ledger.live_for_paths("refs/heads/main", [b"models/x.py"], exact)
    assert len(dead) == COMPACT_AFTER + 2
    ledger.apply(LedgerUpdate(), seq=2)  # the next write drops the lines the read found stale
    assert ledger.live_for_paths("refs/heads/main", [b"models/x.py"], exact) == ([], [])


def test_a_corrupt_entry_fails_closed(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    a = stored(1)
    ledger.build([(a, None)])
    (tmp_path / "live" / "alice" / f"{a.commit}.json").write_text("{not json")
    with pytest.raises(LedgerError, match="unreadable"):
        ledger.live_for_paths("refs/heads/main", [b"models/x.py"], exact)


def test_a_big_lookup_lists_index_folders_and_finds_what_probing_finds(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A push of many paths answers "which have an index file" by listing folders (``_indexed``); the live and dead
    approvals found are exactly those that probing every path's file finds, in the same order."""
    import gatekeeper.approvals.ledger as ledger_module

    ledger = Ledger(tmp_path)
    approvals = [stored(i, path=f"models/m{i}.py".encode(), person=("alice", "bob")[i % 2]) for i in range(60)]
    ledger.build([(a, None) for a in approvals])
    ledger.apply(LedgerUpdate(consume=[(approvals[3].commit, "refs/heads/main")]), seq=1)
    paths = [f"models/m{i}.py".encode() for i in range(4000)]  # ~16 keys per index folder; many misses, some hits
    listings: list[str] = []
    real_listdir = os.listdir
    monkeypatch.setattr(os, "listdir", lambda p: listings.append(str(p)) or real_listdir(p))
    listed = ledger.live_for_paths("refs/heads/main", paths, exact)
    monkeypatch.setattr(os, "listdir", real_listdir)
    assert len(listings) > 10  # the index folders the approvals made were listed, not probed key by key
    assert listed[0] and listed[1]  # live and dead approvals are both found
    monkeypatch.setattr(ledger_module, "_LIST_FOLDER_FROM", 10**9)  # every key probed by opening its file
    assert Ledger(tmp_path).live_for_paths("refs/heads/main", paths, exact) == listed
    (tmp_path / "paths").rename(tmp_path / "gone")  # no index at all: nothing found, nothing raised
    assert Ledger(tmp_path).live_for_paths("refs/heads/main", paths, exact) == ([], [])
