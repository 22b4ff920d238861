"""End-to-end: an approval's lifecycle (issue 9). Real pushes into a gated bare repository, real ssh-keygen signatures,
approvals made and withdrawn by the real commands, refusals followed literally from their own message."""

from __future__ import annotations

from gitserver import Clone, Server, run_git

from approvals.approvals_testlib import approve, as_person, craft, gatekeeper, use_this_checkout
from approvals.conftest import World
from approvals.lifecycle_testlib import policy_text, printed, run_printed
from approvals.test_e2e_basic import feature, publish, reviewer

DAVE = {"REMOTE_USER": "dave"}


def approval_ref_of(c: Clone, person: str) -> list[str]:
    c.git("fetch", "-q", "origin", "+refs/gatekeeper/approvals/*:refs/gatekeeper/approvals/*")
    return c.git("for-each-ref", "--format=%(refname)", f"refs/gatekeeper/approvals/{person}/").split()


# -- 1. used once per ref ---------------------------------------------------------------------------------------------

def test_landed_approval_is_consumed_and_re_landing_the_same_content_needs_a_fresh_one(world: World) -> None:
    srv = world.server
    dave = feature(world)
    alice = reviewer(world, "alice")
    approve(alice, "origin/feature", world.keys["alice"], "alice")
    approve(alice, "origin/feature", world.keys["alice"], "alice")  # a second copy is used up with the first
    copies = sorted(approval_ref_of(dave, "alice"))
    assert dave.push(env=DAVE).ok
    landed = srv.records()[-1]
    assert landed["event"]["updates"][0]["consumed"] == copies
    # Revert it (a protected change too: bob approves the revert) ...
    dave.git("revert", "--no-edit", "HEAD")
    publish(world, dave, "refs/heads/feature")
    approve(reviewer(world, "bob"), "origin/feature", world.keys["bob"], "bob")
    assert dave.push(env=DAVE).ok
    # ... then re-apply exactly the content alice approved: her approval was used up when it first landed.
    dave.git("revert", "--no-edit", "HEAD")
    result = dave.push(env=DAVE)
    assert not result.ok
    assert (f"found: approval by alice (already used on refs/heads/main (audit record #{landed['seq']}))"
            in result.remote)
    assert srv.ref("refs/heads/main") != dave.head()


def test_a_retry_after_a_refusal_for_another_reason_still_uses_the_approval(world: World) -> None:
    srv = world.server
    dave = feature(world)
    approve(reviewer(world, "alice"), "origin/feature", world.keys["alice"], "alice")
    # The same push also creates release/9 with the change, which alice did not approve: the whole push is refused.
    refused = dave.push("HEAD:refs/heads/main", "HEAD:refs/heads/release/9", env=DAVE)
    assert not refused.ok and "refs/heads/release/9: needs approval" in refused.remote
    assert "consumed" not in srv.records()[-1]["event"]["updates"][0]
    retry = dave.push(env=DAVE)
    assert retry.ok, retry.output
    assert srv.ref("refs/heads/main") == dave.head()


def test_an_approval_of_a_change_already_on_its_ref_is_used_up_when_stored(world: World) -> None:
    dave = feature(world)
    base = dave.head("origin/main")
    run_git("fetch", "-q", str(dave.path), "HEAD:refs/heads/main", cwd=world.server.bare)  # landed (setup only)
    alice = reviewer(world, "alice")
    approve(alice, "origin/feature", world.keys["alice"], "alice", "--base", base)
    (ref,) = approval_ref_of(dave, "alice")
    # Reset back and re-land: the approval reviewed the past and never lets the content land again.
    run_git("update-ref", "refs/heads/main", base, cwd=world.server.bare)
    dave.git("fetch", "-q", "origin")
    result = dave.push(env=DAVE)
    assert not result.ok, result.remote
    assert "approval by alice (already used on refs/heads/main: it approves" in result.remote, result.remote


# -- 2. withdrawing ---------------------------------------------------------------------------------------------------

def test_withdrawn_approval_stops_counting_from_the_next_push_and_is_logged(world: World) -> None:
    srv = world.server
    dave = feature(world)
    alice = reviewer(world, "alice")
    approve(alice, "origin/feature", world.keys["alice"], "alice")
    (ref,) = approval_ref_of(alice, "alice")
    bob = reviewer(world, "bob")
    denied = gatekeeper("approvals", "withdraw", ref, "--key", str(world.keys["bob"]), "--as", "bob", cwd=bob.path)
    assert denied.returncode != 0 and "bob may not withdraw alice's approval" in denied.stderr
    proc = gatekeeper("approvals", "withdraw", ref, "--key", str(world.keys["alice"]), "--note", "found a bug",
                      cwd=alice.path)
    assert proc.returncode == 0, proc.stderr
    record = srv.records()[-1]
    withdrawal = record["event"]["updates"][0]["withdrawal"]
    assert withdrawal["withdrawn_by"] == "alice" and withdrawal["approval_ref"] == ref
    assert '"note": "found a bug"' in withdrawal["statement"]
    result = dave.push(env=DAVE)
    assert not result.ok
    assert f"approval by alice (withdrawn by alice (audit record #{record['seq']}))" in result.remote
    # The withdrawals namespace is append-only too.
    wref = withdrawal["ref"]
    alice.git("fetch", "-q", "origin", f"{wref}:{wref}")
    gone = alice.push(f":{wref}")
    assert not gone.ok and "deleting a withdrawal is not allowed" in gone.remote
    # Anything else under the withdrawals namespace is refused, not stored.
    junk = alice.push("origin/main:refs/gatekeeper/withdrawals/alice/" + "0" * 32)
    assert not junk.ok
    assert "a withdrawal commit holds exactly withdrawal.json and withdrawal.json.sig" in junk.remote, junk.remote


def test_an_admin_may_withdraw_anyones_approval(world: World) -> None:
    world.server.write_policy(policy_text(extra="approvals:\n  admins: [admins]\n"))
    dave = feature(world)
    approve(reviewer(world, "alice"), "origin/feature", world.keys["alice"], "alice")
    (ref,) = approval_ref_of(dave, "alice")
    proc = gatekeeper("approvals", "withdraw", ref, "--key", str(world.keys["dave"]), "--as", "dave", cwd=dave.path)
    assert proc.returncode == 0, proc.stderr
    assert "withdrawn by dave" in dave.push(env={"REMOTE_USER": "carol"}).remote


# -- 5. stored approvals cannot be abused -----------------------------------------------------------------------------

def test_approval_spam_is_bounded_per_person_and_ref_and_non_reviewers_store_nothing(world: World) -> None:
    world.server.write_policy(policy_text(extra="approvals:\n  max_live_per_person: 2\n"))
    dave = feature(world)
    base, head = dave.head("origin/main"), dave.head()
    for _ in range(2):
        craft(dave, person="alice", key=world.keys["alice"], base=base, head=head)
    assert dave.push("refs/gatekeeper/approvals/*:refs/gatekeeper/approvals/*").ok
    craft(dave, person="alice", key=world.keys["alice"], base=base, head=head)
    third = dave.push("refs/gatekeeper/approvals/*:refs/gatekeeper/approvals/*")
    assert not third.ok
    assert "alice already holds 2 unused approvals for refs/heads/main (the policy allows 2" in third.remote
    # dave is a trusted key holder but reviews nothing: he cannot store approvals at all.
    c = reviewer(world, "dave")
    craft(c, person="dave", key=world.keys["dave"], base=base, head=head)
    spam = c.push("refs/gatekeeper/approvals/dave/*:refs/gatekeeper/approvals/dave/*")
    assert not spam.ok and "dave may not review anything under this policy" in spam.remote


# -- 4. one owner for identity ----------------------------------------------------------------------------------------

def test_identity_is_the_login_mapped_through_accounts_everywhere(world: World) -> None:
    srv = world.server
    srv.write_policy(policy_text(mapped=True))
    dave = feature(world)
    # Break-glass: dave's login is dave-gl. The login "dave" maps to nobody, whatever its spelling.
    unmapped = dave.push(options=["gatekeeper.break-glass=INC-1"], env={"REMOTE_USER": "dave"})
    assert not unmapped.ok
    assert "break-glass refused: dave is not in the policy's break_glass list" in unmapped.remote
    mapped = dave.push(options=["gatekeeper.break-glass=INC-1"], env={"REMOTE_USER": "dave-gl"})
    assert mapped.ok, mapped.output
    assert srv.decisions()[-1]["break_glass"] == {"by": "dave-gl", "reason": "INC-1"}
    # The pusher is excluded from approving by person, whatever login they pushed with.
    dave.write("models/llama/modeling.py", "class Llama:\n    layers = 48\n")
    dave.commit("wider", author="dave")
    publish(world, dave, "refs/heads/feature")
    approve(reviewer(world, "alice"), "origin/feature", world.keys["alice"], "alice")
    self_approved = dave.push(env={"REMOTE_USER": "alice-gl"})
    assert not self_approved.ok and "approval by alice (is the pusher)" in self_approved.remote
    # check --as takes the login too, and says what the server says.
    check = gatekeeper("check", "HEAD", "--ref", "refs/heads/main", "--config", str(srv.config), "--as", "alice-gl",
                       "--repository", "ml/llama-train", cwd=dave.path)
    assert check.returncode == 1 and "approval by alice (is the pusher)" in check.stdout, check.stdout
    report = gatekeeper("audit", "verify", "--log", str(srv.log), "--approvals", "--policy", str(srv.config),
                        "--format", "json", cwd=srv.root)
    assert "not in the policy's break_glass list" not in report.stdout, report.stdout


# -- 7. every refusal can be approved by following its own message ------------------------------------------------

def test_a_refused_push_is_approved_by_following_the_printed_commands(world: World) -> None:
    srv = world.server
    dave = world.server.clone("dave")
    as_person(dave, "dave")
    dave.write("models/llama/modeling.py", "class Llama:\n    layers = 40\n")
    dave.commit("deeper", author="dave")
    result = dave.push(env=DAVE)  # the commit was never on the server
    assert not result.ok
    (you,) = printed(result.remote, "you:")
    (review,) = printed(result.remote, "reviewer:")
    run_printed(dave, you)
    run_printed(reviewer(world, "alice"), review, key=world.keys["alice"], person="alice")
    again = dave.push(env=DAVE)
    assert again.ok, again.output
    assert srv.ref("refs/heads/main") == dave.head()


def test_the_first_push_to_an_empty_repository_can_be_approved(world: World, tmp_path) -> None:
    srv = Server(tmp_path / "empty")
    (srv.etc / "allowed_signers").write_text((world.server.etc / "allowed_signers").read_text())
    srv.write_policy()
    srv.install()
    use_this_checkout(srv)
    dave = srv.clone("dave")
    as_person(dave, "dave")
    dave.write("models/llama/modeling.py", "class Llama:\n    pass\n")
    dave.commit("initial import", author="dave")
    result = dave.push(env=DAVE)
    assert not result.ok and "new ref at" in result.remote
    (you,) = printed(result.remote, "you:")
    (review,) = printed(result.remote, "reviewer:")
    run_printed(dave, you)
    bob = srv.clone("bob")
    as_person(bob, "bob")
    out = run_printed(bob, review, key=world.keys["bob"], person="bob")
    assert "comparing with the empty tree" in out
    again = dave.push(env=DAVE)
    assert again.ok, again.output


def test_a_break_glass_push_is_reviewed_after_the_fact_by_following_its_banner(world: World) -> None:
    srv = world.server
    dave = feature(world)
    result = dave.push(options=["gatekeeper.break-glass=INC-9"], env=DAVE)
    assert result.ok and "BREAK-GLASS" in result.remote
    (command,) = printed(result.remote, r"review refs/heads/main after the fact:")
    listed = gatekeeper("audit", "query", "--log", str(srv.log), "--break-glass", "--unreviewed", cwd=srv.root)
    assert "break-glass" in listed.stdout
    run_printed(reviewer(world, "alice"), command, key=world.keys["alice"], person="alice")
    listed = gatekeeper("audit", "query", "--log", str(srv.log), "--break-glass", "--unreviewed",
                        "--format", "json", cwd=srv.root)
    assert listed.returncode == 0 and listed.stdout.strip() in ("", "[]"), listed.stdout


def test_deleting_a_protected_ref_is_approved_by_following_the_message(world: World) -> None:
    srv = world.server
    dave = feature(world)
    run_git("fetch", "-q", str(dave.path), "origin/main:refs/heads/release/1", cwd=srv.bare)
    dave.git("fetch", "-q", "origin")
    result = dave.push(":refs/heads/release/1", env=DAVE)
    assert not result.ok and "deletion of" in result.remote
    (review,) = printed(result.remote, "reviewer:")
    run_printed(reviewer(world, "bob"), review, key=world.keys["bob"], person="bob")
    again = dave.push(":refs/heads/release/1", env=DAVE)
    assert again.ok, again.output
    assert srv.ref("refs/heads/release/1") is None


# -- 6. every allow stays re-verifiable -------------------------------------------------------------------------------

def test_verify_after_the_approvers_key_was_removed_and_revoked_uses_the_archive(world: World, tmp_path) -> None:
    srv = world.server
    dave = feature(world)
    approve(reviewer(world, "alice"), "origin/feature", world.keys["alice"], "alice")
    assert dave.push(env=DAVE).ok
    # alice leaves: her key is removed and revoked, and the policy is edited. No admin kept the old files.
    world.trust.lines = [line for line in world.trust.lines if not line.startswith("alice ")]
    world.trust.write()
    world.trust.revoke(world.keys["alice"])
    srv.config.write_text(srv.config.read_text() + "# alice left\n")
    verify = gatekeeper("audit", "verify", "--log", str(srv.log), "--approvals", cwd=srv.root)
    assert verify.returncode == 0 and "APPROVALS OK: 2 allow(s) re-verified" in verify.stdout, verify.stdout
    export = tmp_path / "evidence"
    assert gatekeeper("audit", "export", "--log", str(srv.log), "--out", str(export), cwd=srv.root).returncode == 0
    srv.log.with_name("audit.jsonl.archive").rename(tmp_path / "moved-away")
    again = gatekeeper("audit", "verify", "--log", str(export / "audit.jsonl"), "--approvals", cwd=tmp_path)
    assert again.returncode == 0 and "APPROVALS OK: 2 allow(s) re-verified" in again.stdout, again.stdout


def test_verify_flags_an_allow_that_reused_a_consumed_approval(world: World) -> None:
    from gatekeeper.audit.log import AuditLog

    srv = world.server
    dave = feature(world)
    approve(reviewer(world, "alice"), "origin/feature", world.keys["alice"], "alice")
    assert dave.push(env=DAVE).ok
    landed = srv.records()[-1]
    # A server that skipped its ledger would let the same approval count again on the same ref.
    replay = dict(landed["event"])
    replay["push_id"] = "replayed"
    AuditLog(srv.log, signing_key=srv.log.parent / "audit-signing.key", origin="test").append(replay)
    verify = gatekeeper("audit", "verify", "--log", str(srv.log), "--approvals", cwd=srv.root)
    assert verify.returncode == 1
    assert f"it was already used on refs/heads/main in record #{landed['seq']}" in verify.stdout, verify.stdout
