"""Issue 8.5: a new protected ref is diffed against the default branch's tip only when the default branch is protected
at least as strictly; otherwise against the empty tree (round 4: the tip, not the merge-base; see
test_attack_round4_git.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from gitserver import DEFAULT_POLICY, REPO_ROOT, Server, seed_content

from attacks.attacklib import assert_refused

RELEASES_ONLY = DEFAULT_POLICY.format(mode="enforce").replace(
    'protected_refs: [refs/heads/main, "refs/heads/release/**", "refs/tags/**"]',
    'protected_refs: ["refs/heads/release/**"]')


def _server(root: Path, policy: str) -> Server:
    srv = Server(root)
    seed_content(srv.clone("seeder"))
    srv.write_policy(policy)
    srv.install()
    return srv


def test_release_cut_from_an_unprotected_default_branch_needs_approval(tmp_path: Path, clean_env: Path) -> None:
    """Before the fix: allowed. main takes anything unreviewed, so "no change since the merge-base with main" says
    nothing about review."""
    srv = _server(tmp_path / "srv", RELEASES_ONLY)
    c = srv.clone()
    c.write("models/llama/modeling.py", "class Llama:\n    sabotage = True\n")
    c.commit("unreviewed on an unprotected main")
    assert c.push("HEAD:refs/heads/main").ok
    result = c.push("HEAD:refs/heads/release/1")
    decision = assert_refused(srv, result, "refs/heads/release/1", None, "rule model-code",
                              "models/llama/modeling.py")
    assert "empty tree" in decision["updates"][0]["base_note"]


def test_release_cut_from_a_protected_default_branch_uses_its_tip(server: Server) -> None:
    c = server.clone()
    result = c.push("HEAD:refs/heads/release/1")
    assert result.ok, result.output
    assert "the tip of refs/heads/main" in server.decisions()[-1]["updates"][0]["base_note"]


def test_policy_lint_warns_when_the_default_branch_is_not_protected(tmp_path: Path, clean_env: Path) -> None:
    srv = _server(tmp_path / "srv", RELEASES_ONLY)
    proc = subprocess.run([sys.executable, "-m", "gatekeeper", "policy", "lint", "--config", str(srv.config)],
                          capture_output=True, text=True, check=False, cwd=REPO_ROOT)
    assert "the default branch refs/heads/main is not protected" in proc.stdout + proc.stderr
