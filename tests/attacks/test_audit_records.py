"""Issue 8.8 attacks: every decision has a record and every record verifies, whatever the push contains.

Real pushes with the real git client into a bare repository with the hook installed (this checkout's code, through
the venv's editable install); the pusher's view, the refs, the record and ``gatekeeper audit verify`` (the real CLI)
are asserted after each attack.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from gitserver import REPO_ROOT, Server, run_git


def audit_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gatekeeper", "audit", *args], capture_output=True, text=True,
                          cwd=REPO_ROOT, check=False)


def assert_verifies(log: Path, *extra: str) -> dict[str, object]:
    proc = audit_cli("verify", "--log", str(log), "--format", "json", *extra)
    report = json.loads(proc.stdout)
    assert proc.returncode == 0 and report["ok"], report["errors"]
    return report


def last_decision(server: Server) -> dict[str, object]:
    return server.decisions()[-1]


def test_push_refused_by_a_broken_policy_leaves_a_record_that_verifies(server: Server) -> None:
    before = server.ref("refs/heads/main")
    server.config.write_text(server.config.read_text() + "\n  bogus: [\n")
    clone = server.clone("mallory")
    clone.write("src/x.py")
    clone.commit()
    result = clone.push()
    assert not result.ok and "invalid policy" in result.output
    assert server.ref("refs/heads/main") == before
    event = last_decision(server)
    assert event["decision"] == "error" and event["blocked"] is True
    # What the gate could still learn without a policy is recorded: which ref updates were attempted.
    assert [u["ref"] for u in event["updates"]] == ["refs/heads/main"]  # type: ignore[index]
    assert_verifies(server.log)


def test_ref_name_with_invalid_utf8_is_recorded_escaped(server: Server) -> None:
    clone = server.clone("mallory")
    clone.write("src/y.py")
    clone.commit()
    name = b"refs/heads/bad\xff\xfename"
    run_git("update-ref", name.decode("utf-8", "surrogateescape"), "HEAD", cwd=clone.path)
    proc = run_git("push", "origin", name.decode("utf-8", "surrogateescape"), cwd=clone.path, check=False)
    assert proc.returncode != 0  # refused (an undecodable ref name), and told why
    assert b"gatekeeper" in proc.stderr
    event = last_decision(server)
    assert event["decision"] in ("deny", "error")
    assert "record_notes" in event or "\\xff" in json.dumps(event)
    assert_verifies(server.log)


def test_lone_surrogate_in_pushed_config_is_recorded_escaped(server: Server) -> None:
    clone = server.clone("mallory")
    # A JSON escape for a lone surrogate is valid JSON to Python's parser; the finding's text then holds a surrogate
    # that UTF-8 cannot encode.
    clone.write("models/llama/config.json",
                '{"auto_map": {"AutoModel": "evil\\ud800mod.Model", "AutoConfig\\udcff": "x.Y"}}\n')
    clone.commit()
    result = clone.push()
    assert not result.ok
    assert "could not be written" not in result.output
    event = last_decision(server)
    assert event["decision"] in ("deny", "error")  # an error if a detector trips over it: refused and recorded
    assert_verifies(server.log)


def test_pickle_with_undecodable_global_name_is_recorded(server: Server) -> None:
    clone = server.clone("mallory")
    payload = b"cos\nsyst\xffem\n(S'id'\ntR."  # protocol 0 GLOBAL with a non-UTF-8 name
    clone.write("models/llama/weights.pkl", payload)
    clone.commit()
    result = clone.push()
    assert not result.ok
    assert "could not be written" not in result.output
    assert last_decision(server)["decision"] in ("deny", "error")
    assert_verifies(server.log)


def test_huge_path_names_are_truncated_not_lost(server: Server) -> None:
    """git stores tree entry names of up to 64 KiB that libgit2 still reads, and the record lists up to 1,000 paths
    per update: 300 names of 60,000 bytes under protected folders make an 18 MB event, over the record limit."""
    clone = server.clone("mallory")
    blob = run_git("hash-object", "-w", "--stdin", cwd=clone.path, input=b"x\n").stdout.decode().strip()
    # Two folders of 150 names each: every tree stays under the gate's 16 MiB cap for one tree (which refuses a
    # bigger one before any diff), while the event that lists all 300 paths is still over the record limit.
    halves = []
    for folder, first in ((b"configs", 0), (b"models", 150)):
        entries = b"".join(b"100644 blob %s\t%s\n" % (blob.encode(), (b"%03d" % i) + b"A" * 60_000)
                           for i in range(first, first + 150))
        sub = run_git("mktree", cwd=clone.path, input=entries).stdout.decode().strip()
        halves.append(b"040000 tree %s\t%s\n" % (sub.encode(), folder))
    root = run_git("mktree", cwd=clone.path, input=b"".join(halves)).stdout.decode().strip()
    commit = run_git("commit-tree", root, "-p", "HEAD", "-m", "long names", cwd=clone.path).stdout.decode().strip()
    result = clone.push(f"{commit}:refs/heads/main")
    assert not result.ok
    assert "could not be written" not in result.output
    event = last_decision(server)
    assert event["decision"] in ("deny", "error")
    notes = event["record_notes"]
    assert isinstance(notes, list) and any("truncated" in n or "summary" in n for n in notes), notes
    assert server.log.stat().st_size < 17 * 1024 * 1024
    assert_verifies(server.log)
