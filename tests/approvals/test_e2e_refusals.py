"""End-to-end: every way an approval must fail to count, or must be refused when pushed."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from gitserver import Clone, run_git

from approvals.approvals_testlib import approve, as_person, craft, gatekeeper, keygen, store_raw
from approvals.conftest import World
from approvals.test_e2e_basic import feature, publish, reviewer

PUSH_AS_DAVE = {"REMOTE_USER": "dave"}


def refused(c: Clone, *refspecs: str, env: dict[str, str] | None = None, force: bool = False) -> str:
    result = c.push(*refspecs, env=env, force=force)
    assert not result.ok, result.output
    assert "push REFUSED" in result.remote, result.output
    return result.remote


def test_self_approval_does_not_count(world: World) -> None:
    alice = feature(world, author="dave")
    approve(reviewer(world, "alice"), "origin/feature", world.keys["alice"], "alice")
    out = refused(alice, env={"REMOTE_USER": "alice"})  # alice pushes dave's change with her own approval
    assert "rule model-code needs 1 approval from ml-leads" in out
    assert "found: approval by alice (is the pusher)" in out


def test_approval_by_an_author_of_the_change_does_not_count(world: World) -> None:
    bob = feature(world, author="bob")
    approve(reviewer(world, "bob"), "origin/feature", world.keys["bob"], "bob")
    out = refused(bob, env={"REMOTE_USER": "carol"})
    expected = (f"found: approval by bob (authored, committed or signed {bob.head()[:12]}, "
                "which changes a protected path)")
    assert expected in out


def test_different_content_does_not_count(world: World) -> None:
    dave = feature(world)
    approve(reviewer(world, "alice"), "origin/feature", world.keys["alice"], "alice")
    dave.write("models/llama/modeling.py", "class Llama:\n    layers = 33\n")  # one byte
    dave.commit("sneak")
    out = refused(dave, env=PUSH_AS_DAVE)
    assert "found: approval by alice (covers different content: models/llama/modeling.py differs)" in out


def test_approval_for_another_ref_does_not_count(world: World) -> None:
    dave = feature(world)
    alice = reviewer(world, "alice")
    approve(alice, "origin/feature", world.keys["alice"], "alice", "--base", "origin/main",
            ref="refs/heads/release/1")
    out = refused(dave, env=PUSH_AS_DAVE)
    # The server looks approvals up by the ref it updates (so approvals for other refs cost a push nothing): an
    # approval for release/1 is not even a candidate for main.
    assert "rule model-code needs 1 approval from ml-leads\n    found: no approvals" in out
    # `gatekeeper check`, which reads every fetched approval, still says why it does not count.
    check = gatekeeper("check", "HEAD", "--ref", "refs/heads/main", "--config", str(world.server.config),
                       "--as", "dave", "--repository", "ml/llama-train", cwd=dave.path)
    assert "found: approval by alice (for refs/heads/release/1, not refs/heads/main)" in check.stdout, check.stdout


def test_approval_from_another_repository_is_refused(world: World) -> None:
    dave = feature(world)
    base, head = dave.head("origin/main"), dave.head()
    craft(dave, person="alice", key=world.keys["alice"], base=base, head=head, repository="ml/other")
    out = refused(dave, "HEAD:refs/heads/main", "refs/gatekeeper/approvals/*:refs/gatekeeper/approvals/*",
                  env=PUSH_AS_DAVE)
    assert "the approval is for repository ml/other, not ml/llama-train" in out


def test_expired_approval_does_not_count(world: World) -> None:
    dave = feature(world)
    base, head = dave.head("origin/main"), dave.head()
    two_days_ago = datetime.now(timezone.utc) - timedelta(days=2)
    craft(dave, person="alice", key=world.keys["alice"], base=base, head=head, created=two_days_ago,
          expires_in=timedelta(days=1))
    assert dave.push("refs/gatekeeper/approvals/*:refs/gatekeeper/approvals/*").ok  # genuine, just stale
    out = refused(dave, env=PUSH_AS_DAVE)
    expired = (two_days_ago.replace(microsecond=0) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert f"found: approval by alice (expired at {expired})" in out


def test_key_outside_its_validity_window(world: World) -> None:
    dave = feature(world)
    approve(reviewer(world, "alice"), "origin/feature", world.keys["alice"], "alice")
    world.trust.lines[0] = world.trust.lines[0].replace(
        'namespaces="', 'valid-before="20200101Z",namespaces="')
    world.trust.write()
    out = refused(dave, env=PUSH_AS_DAVE)
    assert "found: approval by alice (signature not accepted: key SHA256:" in out
    assert "key valid only until 2020-01-01" in out
    # and a new approval signed with that key is refused when pushed
    alice = reviewer(world, "alice")
    proc = approve(alice, "origin/feature", world.keys["alice"], "alice", ok=False)
    assert proc.returncode != 0
    assert "the server refused the approval" in proc.stderr and "signature not accepted" in proc.stderr
    assert not alice.git("for-each-ref", "refs/gatekeeper/")


def test_revoked_key_does_not_count(world: World) -> None:
    dave = feature(world)
    approve(reviewer(world, "alice"), "origin/feature", world.keys["alice"], "alice")
    world.trust.revoke(world.keys["alice"])
    out = refused(dave, env=PUSH_AS_DAVE)
    assert "found: approval by alice (signature not accepted: key SHA256:" in out and "is revoked" in out


def test_git_namespace_signature_is_not_an_approval(world: World) -> None:
    dave = feature(world)
    craft(dave, person="alice", key=world.keys["alice"], base=dave.head("origin/main"), head=dave.head(),
          namespace="git")
    out = refused(dave, "HEAD:refs/heads/main", "refs/gatekeeper/approvals/*:refs/gatekeeper/approvals/*",
                  env=PUSH_AS_DAVE)
    assert "signature not accepted" in out and "namespace" in out


def test_tampered_statement_is_refused(world: World) -> None:
    dave = feature(world)
    base, head = dave.head("origin/main"), dave.head()

    def retarget(data: bytes) -> bytes:
        return data.replace(b'"ref": "refs/heads/release/1"', b'"ref": "refs/heads/main"')

    craft(dave, person="alice", key=world.keys["alice"], base=base, head=head, ref="refs/heads/release/1",
          statement_edit=retarget)
    out = refused(dave, "HEAD:refs/heads/main", "refs/gatekeeper/approvals/*:refs/gatekeeper/approvals/*",
                  env=PUSH_AS_DAVE)
    assert "signature not accepted" in out

    dave.git("update-ref", "-d", *[r for r in dave.git("for-each-ref", "--format=%(refname)",
                                                     "refs/gatekeeper/").split()])
    craft(dave, person="alice", key=world.keys["alice"], base=base, head=head,
          statement_edit=lambda d: d.replace(b'  "note": ""', b'  "note" : ""'))
    out = refused(dave, "HEAD:refs/heads/main", "refs/gatekeeper/approvals/*:refs/gatekeeper/approvals/*",
                  env=PUSH_AS_DAVE)
    assert "the statement is not in canonical form" in out


@pytest.mark.slow  # several pushes and approvals: ~5 s on a busy 2-core machine
def test_two_keys_of_one_person_count_once(world: World, tmp_path) -> None:
    srv = world.server
    srv.config.write_text(srv.config.read_text().replace("    approvals: 1\n    reviewers: [ml-leads]\n",
                                                         "    approvals: 2\n    reviewers: [ml-leads]\n"))
    second = keygen(tmp_path / "keys2", "bob2")
    world.trust.add("bob", second)
    dave = feature(world)
    bob = reviewer(world, "bob")
    approve(bob, "origin/feature", world.keys["bob"], "bob")
    approve(bob, "origin/feature", second, "bob")
    out = refused(dave, env=PUSH_AS_DAVE)
    assert "rule model-code needs 2 approvals from ml-leads; 1 valid so far (bob)" in out
    approve(reviewer(world, "alice"), "origin/feature", world.keys["alice"], "alice")
    result = dave.push(env=PUSH_AS_DAVE)
    assert result.ok, result.output


def test_approval_refs_cannot_be_deleted_or_overwritten(world: World) -> None:
    srv = world.server
    feature(world)
    alice = reviewer(world, "alice")
    approve(alice, "origin/feature", world.keys["alice"], "alice")
    ref = alice.git("for-each-ref", "--format=%(refname)", "refs/gatekeeper/approvals/").strip()
    before = srv.ref(ref)
    out = refused(alice, f":{ref}")
    assert f"{ref}: deleting an approval is not allowed (approvals are append-only)" in out
    other = craft(alice, person="alice", key=world.keys["alice"], base=alice.head("origin/main"),
                  head=alice.head("origin/feature"))
    out = refused(alice, f"{other}:{ref}", force=True)
    assert f"{ref}: rewriting an approval is not allowed" in out
    assert srv.ref(ref) == before


def test_malformed_approval_ref_is_refused(world: World) -> None:
    alice = reviewer(world, "alice")
    store_raw(alice, "refs/gatekeeper/approvals/alice/" + "0" * 32, {"approval.json": b"{}\n", "extra": b"x"})
    out = refused(alice, "refs/gatekeeper/approvals/*:refs/gatekeeper/approvals/*")
    assert "an approval commit holds exactly approval.json and approval.json.sig as regular files" in out
    alice.git("update-ref", "-d", "refs/gatekeeper/approvals/alice/" + "0" * 32)
    store_raw(alice, "refs/gatekeeper/approvals/alice/bad-name", {"approval.json": b"{}\n"})
    out = refused(alice, "refs/gatekeeper/approvals/*:refs/gatekeeper/approvals/*")
    assert "refs/gatekeeper/approvals/alice/bad-name is not a valid approval ref name" in out
    # One that got onto the server without the hook (written there, or before install) never counts nor breaks.
    bad = "refs/gatekeeper/approvals/alice/" + "1" * 32
    store_raw(alice, bad, {"approval.json": b"{}\n", "approval.json.sig": b"x"})
    run_git("fetch", "-q", str(alice.path), f"{bad}:{bad}", cwd=world.server.bare)
    dave = feature(world)
    approve(reviewer(world, "bob"), "origin/feature", world.keys["bob"], "bob")
    result = dave.push(env=PUSH_AS_DAVE)
    assert result.ok, result.output




def test_identity_comes_from_the_key_not_the_statement(world: World) -> None:
    dave = feature(world)
    # carol (infra, not a model-code reviewer) signs a statement claiming to be bob
    ref = craft(dave, person="bob", key=world.keys["carol"], base=dave.head("origin/main"), head=dave.head())
    out = refused(dave, "HEAD:refs/heads/main", f"{ref}:{ref}", env=PUSH_AS_DAVE)
    assert f"{ref}: signed with a key of carol, not of bob" in out


def test_approve_refuses_to_sign_without_confirmation(world: World) -> None:
    feature(world)
    alice = reviewer(world, "alice")
    from approvals.approvals_testlib import REPOSITORY, gatekeeper

    proc = gatekeeper("approve", "origin/feature", "--ref", "refs/heads/main", "--key", str(world.keys["alice"]),
                      "--as", "alice", "--repository", REPOSITORY, cwd=alice.path, input="")
    assert proc.returncode == 1
    assert "gatekeeper: error: not asking for confirmation without a terminal" in proc.stderr
    assert "hint: pass --yes in scripts" in proc.stderr
    assert not alice.git("for-each-ref", "refs/gatekeeper/")


def test_each_rule_counts_its_own_reviewers(world: World) -> None:
    dave = world.server.clone("dave")
    as_person(dave, "dave")
    dave.write("models/llama/modeling.py", "class Llama:\n    layers = 32\n")
    dave.write("configs/train.yaml", "lr: 0.002\n")
    dave.commit("both", author="dave")
    publish(world, dave, "refs/heads/feature")
    approve(reviewer(world, "carol"), "origin/feature", world.keys["carol"], "carol")
    out = refused(dave, env=PUSH_AS_DAVE)
    assert "rule model-code needs 1 approval from ml-leads\n    found: approval by carol (is not among ml-leads)" in out
    assert "training-configs" not in out.split("next:")[0].split("model-code")[0]  # satisfied: not listed as missing
    decision = world.server.decisions()[-1]
    assert [m["rule"] for m in decision["updates"][0]["missing"]] == ["model-code"]


def test_unrelated_approvals_are_not_listed_and_unknown_signers_are_refused(world: World, tmp_path) -> None:
    dave = feature(world)
    other = world.server.clone("other")
    other.write("models/llama/config.json", '{"hidden_size": 8192}\n')
    other.commit("other change")
    craft(other, person="alice", key=world.keys["alice"], base=other.head("origin/main"), head=other.head())
    assert other.push("refs/gatekeeper/approvals/*:refs/gatekeeper/approvals/*").ok
    out = refused(dave, env=PUSH_AS_DAVE)
    assert "found: no approvals" in out  # alice's approval is about another file: not noise in this message
    mallory = keygen(tmp_path / "keys3", "mallory")
    world.trust.add("mallory", mallory)
    ref = craft(dave, person="mallory", key=mallory, base=dave.head("origin/main"), head=dave.head())
    out = refused(dave, f"{ref}:{ref}")
    assert f"{ref}: mallory is not a person in the policy" in out
