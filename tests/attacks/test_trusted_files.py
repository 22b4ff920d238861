"""The files the gate trusts (policy, allowed_signers, revoked keys, audit log and key, LFS store) must be out of
reach of the pushes they judge.

A non-bare repository with ``receive.denyCurrentBranch=updateInstead`` (a "deploy by push" checkout) writes every
push to its checked-out branch into its work tree. With the policy kept in that work tree, a push that changes only
unprotected paths (the policy file itself, unless a rule names it) rewrites the rules the next push is judged by:
the insider drops the model-code rule, then pushes model code unreviewed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from gitserver import DEFAULT_POLICY, REPO_ROOT, Clone, run_git



def _policy(root: Path) -> str:
    return DEFAULT_POLICY.format(mode="enforce").replace("log: audit/audit.jsonl", f"log: {root}/audit/audit.jsonl")


def _without_rules(policy: str) -> str:
    return policy.split("rules:")[0] + "rules: []\npeople:" + policy.split("people:")[1]


def _install(repo: Path, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gatekeeper", "install", str(repo), "--config", str(config)],
                          capture_output=True, text=True, check=False, cwd=REPO_ROOT)


def _deploy_checkout(root: Path) -> Path:
    """A non-bare server repository whose checked-out main a push updates, with the gate's policy and trust store
    tracked in it (the audit log outside)."""
    srv = root / "srv"
    run_git("init", "-q", "-b", "main", str(srv))
    (srv / "gate").mkdir()
    (root / "audit").mkdir()
    (srv / "gate" / "policy.yaml").write_text(_policy(root))
    (srv / "gate" / "allowed_signers").write_text("")
    (srv / "models").mkdir()
    (srv / "models" / "modeling.py").write_text("class Llama:\n    pass\n")
    run_git("add", "-A", cwd=srv)
    run_git("-c", "user.name=ops", "-c", "user.email=ops@example.com", "commit", "-q", "-m", "seed", cwd=srv)
    run_git("config", "receive.denyCurrentBranch", "updateInstead", cwd=srv)
    return srv


def test_install_refuses_a_policy_inside_the_work_tree_pushes_update(tmp_path: Path) -> None:
    """Before the fix: installed, and the two pushes below both landed (the rule was gone by the second)."""
    srv = _deploy_checkout(tmp_path)
    proc = _install(srv, srv / "gate" / "policy.yaml")
    assert proc.returncode != 0
    out = proc.stderr + proc.stdout
    assert "gate/policy.yaml" in out and "work tree" in out and "Traceback" not in out
    assert not (srv / ".git" / "hooks" / "pre-receive").exists()


def test_install_refuses_a_trust_store_inside_the_work_tree(tmp_path: Path) -> None:
    srv = _deploy_checkout(tmp_path)
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "policy.yaml").write_text(_policy(tmp_path).replace("allowed_signers: allowed_signers",
                                                   f"allowed_signers: {srv / 'gate' / 'allowed_signers'}"))
    proc = _install(srv, etc / "policy.yaml")
    assert proc.returncode != 0
    assert "allowed_signers" in proc.stderr and "work tree" in proc.stderr


def test_a_policy_moved_into_the_work_tree_after_install_refuses_every_push(tmp_path: Path) -> None:
    """The install-time check alone is undone by repointing the configured path (here a symlink) into the work tree
    later: the hook checks the real paths on every push, and refuses before judging anything (the policy it would
    apply may already be the insider's)."""
    srv = _deploy_checkout(tmp_path)
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "policy-v1.yaml").write_text(_policy(tmp_path))
    (etc / "allowed_signers").write_text("")
    (etc / "policy.yaml").symlink_to(etc / "policy-v1.yaml")
    proc = _install(srv, etc / "policy.yaml")
    assert proc.returncode == 0, proc.stderr
    (etc / "policy.yaml").unlink()
    (etc / "policy.yaml").symlink_to(srv / "gate" / "policy.yaml")  # "one copy of the config, in the checkout"
    clone_dir = tmp_path / "clone"
    run_git("clone", "-q", srv.as_uri(), str(clone_dir))
    clone = Clone(clone_dir, srv.as_uri())
    run_git("config", "user.name", "Mallory", cwd=clone_dir)
    run_git("config", "user.email", "mallory@example.com", cwd=clone_dir)
    clone.write("gate/policy.yaml", _without_rules(_policy(tmp_path)))
    clone.commit("tidy the gate config")
    result = clone.push("HEAD:refs/heads/main")
    assert not result.ok, result.output
    assert "work tree" in result.remote and "gate/policy.yaml" in result.remote
    assert (srv / "gate" / "policy.yaml").read_text() == _policy(tmp_path)


def test_install_refuses_a_policy_in_a_linked_worktree_of_a_bare_repository(tmp_path: Path) -> None:
    """Bare repositories have work trees too (``git worktree add``); a push to the branch one has checked out with
    updateInstead writes there."""
    srv = _deploy_checkout(tmp_path)
    bare = tmp_path / "bare.git"
    run_git("clone", "-q", "--bare", str(srv), str(bare))
    run_git("worktree", "add", "-q", str(tmp_path / "deployed"), "main", cwd=bare)
    proc = _install(bare, tmp_path / "deployed" / "gate" / "policy.yaml")
    assert proc.returncode != 0
    assert "work tree" in proc.stderr and str(tmp_path / "deployed") in proc.stderr


def test_a_bare_repository_with_the_policy_beside_it_installs_and_judges(tmp_path: Path) -> None:
    """The check costs the usual layout nothing: a bare repository, the policy outside it."""
    srv = _deploy_checkout(tmp_path)
    bare = tmp_path / "bare.git"
    run_git("clone", "-q", "--bare", str(srv), str(bare))
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "policy.yaml").write_text(_policy(tmp_path))
    (etc / "allowed_signers").write_text("")
    assert _install(bare, etc / "policy.yaml").returncode == 0
    clone_dir = tmp_path / "clone"
    run_git("clone", "-q", bare.as_uri(), str(clone_dir))
    clone = Clone(clone_dir, bare.as_uri())
    run_git("config", "user.name", "Ops", cwd=clone_dir)
    run_git("config", "user.email", "ops@example.com", cwd=clone_dir)
    clone.write("gate/notes.txt", "moved\n")
    clone.commit("notes")
    assert clone.push("HEAD:refs/heads/main").ok
