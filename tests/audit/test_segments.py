"""Rotation at the library level: AuditLog.rotate, segments found by --segment anywhere, forged links caught."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gatekeeper.audit.segments import resolve_chain
from gatekeeper.audit.verify import verify_log
from gatekeeper.errors import AuditError

from .helpers import Env, decision


def test_rotate_links_and_verify_takes_segments_from_anywhere(env: Env, tmp_path: Path) -> None:
    log = env.fill(5)
    moved, record = log.rotate(tmp_path / "archive.jsonl")
    assert moved == tmp_path / "archive.jsonl" and record["seq"] == 5
    log.append(decision(9))
    elsewhere = tmp_path / "cold-storage"
    elsewhere.mkdir()
    (tmp_path / "archive.jsonl").rename(elsewhere / "old.jsonl")
    alone = verify_log(env.log_path, vkeys=[env.vkey])
    assert [e.code for e in alone.errors] == ["missing-segment"]
    report = verify_log(env.log_path, vkeys=[env.vkey], segments=[elsewhere / "old.jsonl"])
    assert report.ok, report.errors
    assert report.records == 7 and len(report.segments) == 2
    assert any(info.source == "segment link" and info.size == 5 for info in report.checkpoints)


def test_rotate_refuses_an_empty_log_and_an_existing_target(env: Env, tmp_path: Path) -> None:
    with pytest.raises(AuditError, match="nothing to rotate"):
        env.writer().rotate()
    env.fill(2)
    (tmp_path / "taken").write_text("")
    with pytest.raises(AuditError, match="existing file"):
        env.writer().rotate(tmp_path / "taken")


def test_a_forged_link_is_caught(env: Env, tmp_path: Path) -> None:
    env.fill(4)
    env.writer().rotate(tmp_path / "audit.jsonl.1")
    lines = env.log_path.read_bytes().splitlines()
    first = json.loads(lines[0])
    first["event"]["previous"]["compact"] = ["00" * 32]  # a different tree history (records 0..3 rewritten)
    from gatekeeper.audit import canonical

    env.log_path.write_bytes(canonical.encode(first) + b"\n")
    report = verify_log(env.log_path, vkeys=[env.vkey])
    codes = {e.code for e in report.errors}
    assert "segment-link" in codes or "root-mismatch" in codes, codes


def test_chain_resolution_prefers_the_file_whose_last_record_matches(env: Env, tmp_path: Path) -> None:
    env.fill(3)
    writer = env.writer()
    writer.rotate(env.log_path.with_name("audit.jsonl.2"))
    writer.append(decision(4))
    writer.rotate(env.log_path.with_name("audit.jsonl.1"))
    (env.log_path.with_name("audit.jsonl.decoy")).write_bytes(env.log_path.with_name("audit.jsonl.2").read_bytes()[:-1])
    chain = resolve_chain(env.log_path)
    assert [p.name for p in chain.files] == ["audit.jsonl.2", "audit.jsonl.1", "audit.jsonl"]
    assert verify_log(env.log_path, vkeys=[env.vkey]).ok


def test_the_first_line_is_read_only_up_to_its_newline(tmp_path: Path) -> None:
    """``first_link`` reads the first line in 64 KiB steps: a long first line spans several, a file without a
    newline has no first line, and what follows the newline is never needed."""
    from gatekeeper.audit import segments

    link = {"event": {"type": segments.SEGMENT_EVENT, "pad": "x" * 200_000,
                      "previous": {"records": 3, "last_leaf": "ab" * 32, "compact": ["cd" * 32, "ef" * 32]}}}
    path = tmp_path / "audit.jsonl.1"
    path.write_bytes(json.dumps(link).encode() + b"\n" + b"{not json\n")
    found = segments.first_link(path)
    assert found is not None and (found.records, found.last_leaf) == (3, "ab" * 32)
    path.write_bytes(json.dumps(link).encode())  # torn: no complete first line
    assert segments.first_link(path) is None
    path.write_bytes(b"")
    assert segments.first_link(path) is None
