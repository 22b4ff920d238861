"""End-to-end: approvals that must count. Real `git push` into a gated bare repository, real `ssh-keygen` signing,
approvals made by the real `gatekeeper approve` command."""

from __future__ import annotations

import hashlib
import json
import subprocess

import pytest
from gitserver import Clone, run_git

from approvals.approvals_testlib import approve, as_person, gatekeeper
from approvals.conftest import World


def feature(world: World, *, author: str = "dave", content: str = "class Llama:\n    layers = 32\n") -> Clone:
    """``author`` changes a protected file on refs/heads/feature and pushes it (allowed: not a protected ref)."""
    c = world.server.clone(author)
    as_person(c, author)
    c.write("models/llama/modeling.py", content)
    c.commit("more layers", author=author)
    publish(world, c, "refs/heads/feature")
    return c


def publish(world: World, c: Clone, ref: str) -> None:
    """Put ``c``'s HEAD on the server's unprotected ``ref`` without running the hooks (setup only: saves two hook runs
    per test; pushes to unprotected refs are covered by tests/e2e)."""
    run_git("fetch", "-q", str(c.path), f"HEAD:{ref}", cwd=world.server.bare)
    c.git("fetch", "-q", "origin")


def reviewer(world: World, person: str) -> Clone:
    c = world.server.clone()
    as_person(c, person)
    c.git("fetch", "-q", "origin")
    return c


def test_approval_pushed_earlier_lets_the_author_push_and_is_recorded(world: World) -> None:
    srv = world.server
    dave = feature(world)
    alice = reviewer(world, "alice")
    proc = approve(alice, "origin/feature", world.keys["alice"], "alice", "--note", "looks right")
    assert "Approval for ml/llama-train refs/heads/main" in proc.stdout
    assert "modified models/llama/modeling.py" in proc.stdout
    assert "gatekeeper: approval refs/gatekeeper/approvals/alice/" in proc.stdout
    # Readable with `git show`, verifiable with stock `ssh-keygen -Y verify` (the README commands).
    ref = alice.git("for-each-ref", "--format=%(refname)", "refs/gatekeeper/approvals/alice/").strip()
    shown = alice.git("show", f"{ref}:approval.json")
    assert '"approver": "alice"' in shown
    (alice.path.parent / "approval.json.sig").write_text(alice.git("show", f"{ref}:approval.json.sig"))
    verify = subprocess.run(
        ["ssh-keygen", "-Y", "verify", "-f", str(srv.etc / "allowed_signers"), "-I", "alice",
         "-n", "gatekeeper-approval@gatekeeper.dev", "-s", str(alice.path.parent / "approval.json.sig")],
        input=shown.encode(), capture_output=True, check=False)
    assert verify.returncode == 0, verify.stderr
    assert b'Good "gatekeeper-approval@gatekeeper.dev" signature for alice' in verify.stdout
    result = dave.push(env={"REMOTE_USER": "dave"})
    assert result.ok, result.output
    assert srv.ref("refs/heads/main") == dave.head()
    decision = srv.decisions()[-1]
    assert decision["decision"] == "allow"
    assert decision["trust_store_sha256"] == hashlib.sha256((srv.etc / "allowed_signers").read_bytes()).hexdigest()
    used = decision["updates"][0]["approvals"]
    assert [u["person"] for u in used] == ["alice"]
    statement = json.loads(used[0]["statement"])
    assert statement["note"] == "looks right" and statement["approver"] == "alice"
    assert used[0]["signature"].startswith("-----BEGIN SSH SIGNATURE-----")
    assert used[0]["key_fingerprint"].startswith("SHA256:")


def test_approval_in_the_same_push_via_file_and_import(world: World) -> None:
    srv = world.server
    dave = feature(world)
    alice = reviewer(world, "alice")
    approve(alice, "origin/feature", world.keys["alice"], "alice", "--no-push", "--output", "a.txt")
    assert srv.ref("refs/heads/main") != dave.head()
    proc = gatekeeper("approvals", "import", str(alice.path / "a.txt"), cwd=dave.path)
    assert proc.returncode == 0, proc.stderr
    assert "stored refs/gatekeeper/approvals/alice/" in proc.stdout
    result = dave.push("HEAD:refs/heads/main", "refs/gatekeeper/approvals/*:refs/gatekeeper/approvals/*",
                       env={"REMOTE_USER": "dave"})
    assert result.ok, result.output
    assert srv.ref("refs/heads/main") == dave.head()
    listed = gatekeeper("approvals", "list", cwd=dave.path)
    assert "by alice, 1 paths" in listed.stdout


@pytest.mark.slow  # several pushes and approvals: ~5 s on a busy 2-core machine
def test_rebase_with_identical_protected_content_keeps_the_approval(world: World) -> None:
    srv = world.server
    dave = feature(world)
    approve(reviewer(world, "alice"), "origin/feature", world.keys["alice"], "alice")
    carol = srv.clone("carol")
    carol.write("README.md", "# moved on\n")
    carol.commit("docs")
    assert carol.push().ok  # main moves on (unprotected path)
    dave.git("pull", "-q", "--rebase", "origin", "main")
    result = dave.push(env={"REMOTE_USER": "dave"})
    assert result.ok, result.output
    assert srv.ref("refs/heads/main") == dave.head()


@pytest.mark.slow  # several pushes and approvals: ~5 s on a busy 2-core machine
def test_squash_and_extra_unprotected_changes_keep_the_approval(world: World) -> None:
    srv = world.server
    dave = srv.clone("dave")
    as_person(dave, "dave")
    base = dave.head()
    dave.write("models/llama/modeling.py", "class Llama:\n    layers = 32\n")
    dave.commit("one")
    dave.write("configs/train.yaml", "lr: 0.002\n")
    dave.commit("two")
    publish(world, dave, "refs/heads/feature")
    alice = reviewer(world, "alice")
    approve(alice, "origin/feature", world.keys["alice"], "alice")
    dave.git("reset", "-q", "--soft", base)
    dave.write("src/train.py", "print('faster')\n")  # unprotected, after the approval
    dave.commit("squashed")
    result = dave.push(env={"REMOTE_USER": "dave"})
    assert result.ok, result.output
    assert srv.ref("refs/heads/main") == dave.head()
    decision = srv.decisions()[-1]
    assert sorted(o for u in decision["updates"] for o in u["rules"]) == ["model-code", "training-configs"]


@pytest.mark.slow  # several pushes and approvals: ~5 s on a busy 2-core machine
def test_merge_performed_by_someone_else(world: World) -> None:
    srv = world.server
    feature(world)
    approve(reviewer(world, "alice"), "origin/feature", world.keys["alice"], "alice")
    carol = srv.clone("carol")
    as_person(carol, "carol")
    carol.write("README.md", "# main moved\n")
    carol.commit("docs")
    assert carol.push(env={"REMOTE_USER": "carol"}).ok
    carol.git("fetch", "-q", "origin")
    carol.git("merge", "-q", "--no-ff", "-m", "merge feature", "origin/feature")
    result = carol.push(env={"REMOTE_USER": "carol"})
    assert result.ok, result.output
    assert srv.ref("refs/heads/main") == carol.head()


def test_check_shows_requirements_and_matching_approvals(world: World) -> None:
    srv = world.server
    dave = feature(world)
    args = ("check", "HEAD", "--ref", "refs/heads/main", "--config", str(srv.config), "--as", "dave")
    proc = gatekeeper(*args, cwd=dave.path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "gatekeeper: this push would be REFUSED" in proc.stdout
    assert "rule model-code needs 1 approval from ml-leads" in proc.stdout
    assert "gatekeeper approve " in proc.stdout
    approve(reviewer(world, "alice"), "origin/feature", world.keys["alice"], "alice")
    proc = gatekeeper(*args, cwd=dave.path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "gatekeeper: this push would be allowed" in proc.stdout
    assert "model-code approved by alice" in proc.stdout


def test_approval_for_a_ref_pattern_covers_a_new_release_branch(world: World) -> None:
    srv = world.server
    dave = feature(world)
    alice = reviewer(world, "alice")
    approve(alice, "origin/feature", world.keys["alice"], "alice", "--base", "origin/main",
            ref="refs/heads/release/**")
    result = dave.push("HEAD:refs/heads/release/1", env={"REMOTE_USER": "dave"})
    assert result.ok, result.output
    assert srv.ref("refs/heads/release/1") == dave.head()
    assert "model-code approved by alice" in result.remote


def test_approval_for_a_new_protected_ref_uses_the_default_tip_like_the_server(world: World) -> None:
    dave = feature(world)
    alice = reviewer(world, "alice")
    proc = approve(alice, "origin/feature", world.keys["alice"], "alice", ref="refs/heads/release/2")
    assert "refs/heads/release/2 is new on origin: comparing with the tip of refs/heads/main" in proc.stdout
    result = dave.push("HEAD:refs/heads/release/2", env={"REMOTE_USER": "dave"})
    assert result.ok, result.output


def test_new_protected_ref_at_an_older_commit_of_main_is_approved_against_main_s_tip(world: World) -> None:
    """Round 4: a new protected ref is diffed against the default branch's tip, not its merge-base (main's history
    holds commits nobody reviewed). A ref cut from an older commit of main needs approval of what it would serve
    instead of main's reviewed tip; ``approve`` without --base computes the same change set as the server."""
    srv = world.server
    dave = srv.clone("dave")
    as_person(dave, "dave")
    dave.write("models/llama/modeling.py", "class Llama:\n    sabotage = True\n")
    evil = dave.commit("edit", author="dave")
    dave.git("revert", "--no-edit", "HEAD")
    assert dave.push(env={"REMOTE_USER": "dave"}).ok  # main's net change is empty: nothing to approve
    refused = dave.push(f"{evil}:refs/heads/release/9", env={"REMOTE_USER": "dave"})
    assert not refused.ok and "compared with: new ref not built on the tip of refs/heads/main" in refused.remote
    alice = reviewer(world, "alice")
    proc = approve(alice, evil, world.keys["alice"], "alice", ref="refs/heads/release/9")
    assert "comparing with the tip of refs/heads/main" in proc.stdout and "not built on that tip" in proc.stdout
    result = dave.push(f"{evil}:refs/heads/release/9", env={"REMOTE_USER": "dave"})
    assert result.ok, result.output
    assert "model-code approved by alice" in result.remote


def test_approve_with_the_policy_shows_rules_and_content_findings(world: World) -> None:
    srv = world.server
    dave = srv.clone("dave")
    as_person(dave, "dave")
    # A pickle whose only global is os.system: written as bytes, never loaded.
    dave.write("models/llama/weights.pkl", b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00lsq\x01\x85q\x02Rq\x03.")
    dave.write("src/train.py", "print('x')\n")
    dave.commit("weights", author="dave")
    publish(world, dave, "refs/heads/feature")
    alice = reviewer(world, "alice")
    proc = approve(alice, "origin/feature", world.keys["alice"], "alice", "--config", str(srv.config), "--no-push",
                   "--output", "a.txt")
    assert "added models/llama/weights.pkl  [model-code]" in proc.stdout
    assert "Not protected (1): src/train.py" in proc.stdout
    assert "2 changed paths" in proc.stdout
    assert "Findings in this change set (the server's detectors, run here)" in proc.stdout
    assert "malicious: models/llama/weights.pkl:" in proc.stdout
    check = gatekeeper("check", "HEAD", "--ref", "refs/heads/main", "--config", str(srv.config), cwd=dave.path)
    assert check.returncode == 1
    assert "malicious: models/llama/weights.pkl" in check.stdout


def test_non_utf8_protected_path_round_trips_through_an_approval(world: World) -> None:
    srv = world.server
    dave = srv.clone("dave")
    as_person(dave, "dave")
    dave.write(b"models/llama/w\xff\xfe.py", "x = 1\n")
    dave.commit("odd name", author="dave")
    publish(world, dave, "refs/heads/feature")
    alice = reviewer(world, "alice")
    proc = approve(alice, "origin/feature", world.keys["alice"], "alice")
    assert "added models/llama/w\\xff\\xfe.py" in proc.stdout
    ref = alice.git("for-each-ref", "--format=%(refname)", "refs/gatekeeper/approvals/").strip()
    assert '{"base64": "bW9kZWxzL2xsYW1hL3f//i5weQ=="}' in alice.git("show", f"{ref}:approval.json")
    result = dave.push(env={"REMOTE_USER": "dave"})
    assert result.ok, result.output


def test_check_without_the_trust_store_says_signatures_were_not_verified(world: World, tmp_path) -> None:
    srv = world.server
    dave = feature(world)
    approve(reviewer(world, "alice"), "origin/feature", world.keys["alice"], "alice")
    copy = tmp_path / "laptop" / "policy.yaml"  # a copy of the server's policy; its trust store path is not here
    copy.parent.mkdir()
    copy.write_text(srv.config.read_text())
    proc = gatekeeper("check", "--ref", "refs/heads/main", "--config", str(copy), "--as", "dave", cwd=dave.path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "model-code approved by alice" in proc.stdout
    assert "note: signatures were not verified (no trust store here; pass --allowed-signers FILE)" in proc.stderr


@pytest.mark.parametrize("how", ["reverted", "merged-ours"])
def test_author_of_content_laundered_through_main_cannot_approve_a_ref_cut_at_it(world: World, how: str) -> None:
    """Round 4: alice (a reviewer) writes the sabotage, lands it in main's history with a net change of nothing (an
    edit and its revert, or the side of a merge -s ours), and approves dave's release branch at her own commit. The
    author walk hid everything reachable from the base (main's tip), her commit included. Before the fix: allowed,
    approved by alice."""
    srv = world.server
    alice = srv.clone("alice-writes")
    as_person(alice, "alice")
    main = alice.head()
    alice.write("models/llama/modeling.py", "class Llama:\n    sabotage = True\n")
    evil = alice.commit("edit", author="alice")
    if how == "reverted":
        alice.git("revert", "--no-edit", "HEAD")
    else:
        alice.git("checkout", "-q", main)
        alice.git("merge", "-q", "-s", "ours", "--no-edit", evil)
    assert alice.push(env={"REMOTE_USER": "alice"}).ok  # main's net change is empty
    approve(reviewer(world, "alice"), evil, world.keys["alice"], "alice", ref="refs/heads/release/9")
    dave = srv.clone("dave")
    result = dave.push(f"{evil}:refs/heads/release/9", env={"REMOTE_USER": "dave"})
    assert not result.ok, result.output
    assert "approval by alice (authored, committed or signed" in result.remote
    assert srv.ref("refs/heads/release/9") is None
