"""Issue 12.3, end to end: two gate nodes (two server repositories whose hooks run under different host names) append
to one shared log with one configured origin; an auditor's kept checkpoints verify across both nodes' appends and
across a host rename."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from gitserver import DEFAULT_POLICY, REPO_ROOT, Clone, Server, seed_content
from machine import need

ORIGIN = "fleet.example/gatekeeper-audit"


def _can_set_hostname() -> bool:
    if shutil.which("unshare") is None:
        return False
    proc = subprocess.run(["unshare", "--uts", "sh", "-c", "hostname probe-host"], capture_output=True, check=False)
    return proc.returncode == 0


def push_as_host(clone: Clone, host: str, refspec: str = "HEAD:refs/heads/main") -> subprocess.CompletedProcess[str]:
    """``git push`` in a UTS namespace named ``host``: the local transport runs receive-pack (so the hooks) there."""
    return subprocess.run(["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec git push origin "$1"', host, refspec],
                          cwd=clone.path, capture_output=True, text=True, check=False)


def verify(log: Path, *args: str) -> dict[str, object]:
    proc = subprocess.run([sys.executable, "-m", "gatekeeper", "audit", "verify", "--log", str(log), "--format",
                           "json", *args], capture_output=True, text=True, cwd=REPO_ROOT, check=False)
    return json.loads(proc.stdout)


def test_two_nodes_one_log_verify_against_kept_checkpoints(tmp_path: Path) -> None:
    need(_can_set_hostname(), "unshare --uts (root, or user namespaces)", "util-linux")
    shared = tmp_path / "shared-audit"
    shared.mkdir()
    log = shared / "audit.jsonl"
    policy = DEFAULT_POLICY.format(mode="enforce").replace(
        "audit:\n  log: audit/audit.jsonl\n", f"audit:\n  log: {log}\n  origin: {ORIGIN}\n")
    nodes = []
    for name in ("node-a", "node-b"):
        srv = Server(tmp_path / name)
        seed_content(srv.clone("seeder"))
        srv.write_policy(policy)
        srv.install()  # the first install creates the shared key, the second finds it
        nodes.append(srv)
    assert (shared / "audit-signing.key.pub").read_text().startswith(ORIGIN + "+")

    def change(srv: Server, path: str) -> Clone:
        clone = srv.clone()
        clone.write(path, path + "\n")
        clone.commit(path)
        return clone

    kept = tmp_path / "kept.checkpoint"
    assert push_as_host(change(nodes[0], "src/a1.py"), "git-node-a").returncode == 0
    first = verify(log, "--trusted-checkpoint", str(kept), "--update-trusted")
    assert first["ok"], first["errors"]
    assert push_as_host(change(nodes[1], "src/b1.py"), "git-node-b").returncode == 0
    assert push_as_host(change(nodes[0], "src/a2.py"), "git-node-a-renamed").returncode == 0
    report = verify(log, "--trusted-checkpoint", str(kept), "--update-trusted")
    assert report["ok"], report["errors"]
    assert report["trusted_checkpoint_updated"] is True
    assert report["checkpoints"][0]["origin"] == ORIGIN  # type: ignore[index]
    nodes_seen = [json.loads(line)["node"] for line in log.read_text().splitlines()]
    assert {"git-node-a", "git-node-b", "git-node-a-renamed"} <= set(nodes_seen)
    # A node whose policy names another origin breaks the auditor's pin, and verify says so.
    pushes = push_as_host(change(nodes[1], "src/b2.py"), "git-node-b")
    assert pushes.returncode == 0
    nodes[1].write_policy(policy.replace(ORIGIN, "other.example/audit"))
    assert push_as_host(change(nodes[1], "src/b3.py"), "git-node-b").returncode == 0
    bad = verify(log, "--trusted-checkpoint", str(kept))
    assert not bad["ok"] and any(e["code"] == "origin-mismatch" for e in bad["errors"])  # type: ignore[union-attr]
