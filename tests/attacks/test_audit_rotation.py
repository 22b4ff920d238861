"""Issue 8.8: a rotated log keeps every decision verifiable. Real pushes; logrotate's rename (and compression), and
``gatekeeper audit rotate``; verify follows the chain across files, a checkpoint kept before the rotation still
verifies, and deleting an old segment is an error, not a silently shorter history."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from gitserver import REPO_ROOT, Server


def audit_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gatekeeper", "audit", *args], capture_output=True, text=True,
                          cwd=REPO_ROOT, check=False)


def verify(log: Path, *args: str) -> dict[str, object]:
    return json.loads(audit_cli("verify", "--log", str(log), "--format", "json", *args).stdout)


def push_change(server: Server, path: str) -> None:
    clone = server.clone()
    clone.write(path, path + "\n")
    clone.commit(path)
    result = clone.push()
    assert result.ok, result.output


def test_logrotate_rename_then_pushes_keep_working_and_verify_follows(server: Server, tmp_path: Path) -> None:
    push_change(server, "src/one.py")
    kept = tmp_path / "kept.checkpoint"
    assert verify(server.log, "--trusted-checkpoint", str(kept), "--update-trusted")["ok"]
    records_before = len(server.records())

    # logrotate: rename (no copytruncate), then compress the old file.
    rotated = server.log.with_name("audit.jsonl.1")
    os.rename(server.log, rotated)
    push_change(server, "src/two.py")  # the hook starts a new segment instead of refusing
    with open(rotated, "rb") as src, gzip.open(str(rotated) + ".gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    rotated.unlink()

    first = json.loads(server.log.read_text().splitlines()[0])
    assert first["event"]["type"] == "log.segment" and first["seq"] == records_before
    report = verify(server.log, "--trusted-checkpoint", str(kept), "--update-trusted")
    assert report["ok"], report["errors"]
    assert len(report["segments"]) == 2  # type: ignore[arg-type]

    # audit rotate (the CLI) moves the file itself and links the new one at once.
    proc = audit_cli("rotate", "--config", str(server.config))
    assert proc.returncode == 0, proc.stderr
    push_change(server, "src/three.py")
    report = verify(server.log, "--trusted-checkpoint", str(kept))
    assert report["ok"], report["errors"]
    assert len(report["segments"]) == 3  # type: ignore[arg-type]

    # Deleting the oldest segment is not a shorter, clean history.
    (server.log.parent / "audit.jsonl.1.gz").unlink()
    broken = verify(server.log)
    assert not broken["ok"]
    assert any(e["code"] == "missing-segment" for e in broken["errors"])  # type: ignore[union-attr]


def test_emptied_log_cannot_hide_its_past(server: Server) -> None:
    """An attacker who empties the log gets a new segment from the next push, but verify names what is missing."""
    push_change(server, "src/one.py")
    server.log.write_bytes(b"")
    push_change(server, "src/two.py")
    report = verify(server.log)
    assert not report["ok"]
    assert [e["code"] for e in report["errors"]] == ["missing-segment"]  # type: ignore[union-attr]


def test_edited_old_segment_is_caught_through_the_link(server: Server) -> None:
    push_change(server, "src/one.py")
    push_change(server, "src/two.py")
    assert audit_cli("rotate", "--config", str(server.config), "--to", str(server.log) + ".old").returncode == 0
    old = Path(str(server.log) + ".old")
    lines = old.read_bytes().splitlines(keepends=True)
    lines[0] = lines[0].replace(b'"protocol":"local"', b'"protocol":"ssh"')
    old.write_bytes(b"".join(lines))
    report = verify(server.log)
    assert not report["ok"]
    codes = {e["code"] for e in report["errors"]}  # type: ignore[union-attr]
    assert "chain-break" in codes, codes
