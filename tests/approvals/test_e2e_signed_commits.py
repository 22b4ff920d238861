"""End-to-end: authorship proven by git's SSH commit signatures (issue 9 item 3). Real `git commit -S` with
ssh-keygen keys, real pushes."""

from __future__ import annotations

from pathlib import Path

from gitserver import Clone

from approvals.approvals_testlib import approve, as_person
from approvals.conftest import World
from approvals.lifecycle_testlib import policy_text
from approvals.test_e2e_basic import publish, reviewer

DAVE = {"REMOTE_USER": "dave"}
BOTH = 'namespaces="gatekeeper-approval@gatekeeper.dev,git"'


def trust_commit_signatures(world: World, *people: str) -> None:
    """The trust store lists these people's keys for git's commit-signature namespace too."""
    world.trust.lines = []
    for name, key in world.keys.items():
        world.trust.add(name, key, BOTH if name in people else "")


def signed_commit(c: Clone, message: str, key: Path, *, author: str) -> str:
    env = {"GIT_AUTHOR_NAME": author, "GIT_AUTHOR_EMAIL": f"{author}@example.com",
           "GIT_COMMITTER_NAME": author, "GIT_COMMITTER_EMAIL": f"{author}@example.com"}
    c.git("-c", "gpg.format=ssh", "-c", f"user.signingkey={key}", "commit", "-q", "-S", "-m", message, env=env)
    return c.head()


def resign(c: Clone, key: Path) -> None:
    c.git("-c", "gpg.format=ssh", "-c", f"user.signingkey={key}", "commit", "-q", "--amend", "--no-edit", "-S")


def test_a_reviewer_who_signed_one_of_the_commits_cannot_approve(world: World) -> None:
    trust_commit_signatures(world, "bob", "dave")
    dave = world.server.clone("dave")
    as_person(dave, "dave")
    dave.write("models/llama/modeling.py", "class Llama:\n    layers = 33\n")
    # bob wrote and signed this one; its emails say dave (the pusher writes commit metadata).
    signed = signed_commit(dave, "bob's part", world.keys["bob"], author="dave")
    dave.write("models/llama/config.json", '{"hidden_size": 8192}\n')
    dave.commit("dave's part", author="dave")
    publish(world, dave, "refs/heads/feature")
    approve(reviewer(world, "bob"), "origin/feature", world.keys["bob"], "bob")
    result = dave.push(env=DAVE)
    assert not result.ok
    assert f"approval by bob (authored, committed or signed {signed[:12]}, which changes a protected path)" \
        in result.remote
    approve(reviewer(world, "alice"), "origin/feature", world.keys["alice"], "alice")
    assert dave.push(env=DAVE).ok


def test_required_signatures_make_the_rule_cryptographic(world: World) -> None:
    trust_commit_signatures(world, "dave")
    world.server.write_policy(policy_text(extra="approvals:\n  require_signed_commits: true\n"))
    dave = world.server.clone("dave")
    as_person(dave, "dave")
    dave.write("models/llama/modeling.py", "class Llama:\n    layers = 34\n")
    unsigned = dave.commit("unsigned", author="dave")
    publish(world, dave, "refs/heads/feature")
    approve(reviewer(world, "alice"), "origin/feature", world.keys["alice"], "alice")
    result = dave.push(env=DAVE)
    assert not result.ok
    assert f"commit {unsigned[:12]} changes a protected path but is not signed by a key in the trust store" \
        in result.remote
    # A signature by a key the trust store does not list for `git` proves nothing either.
    resign(dave, world.keys["carol"])
    assert "is not signed by a key in the trust store" in dave.push(env=DAVE).remote
    # Signed by dave's trusted key: same content, so alice's content-bound approval counts.
    resign(dave, world.keys["dave"])
    result = dave.push(env=DAVE)
    assert result.ok, result.output
