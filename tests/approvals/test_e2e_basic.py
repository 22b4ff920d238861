from __future__ import annotations

from approvals.approvals_testlib import approve, as_person
from approvals.conftest import World


def test_approval_pushed_earlier_lets_the_author_push(world: World) -> None:
    srv = world.server
    dave = srv.clone("dave")
    as_person(dave, "dave")
    dave.write("models/llama/modeling.py", "class Llama:\n    layers = 32\n")
    sha = dave.commit("more layers")
    assert dave.push("HEAD:refs/heads/feature").ok
    alice = srv.clone("alice")
    as_person(alice, "alice")
    alice.git("fetch", "-q", "origin")
    proc = approve(alice, "origin/feature", world.keys["alice"], "alice")
    assert "modified models/llama/modeling.py" in proc.stdout
    result = dave.push()
    assert result.ok, result.output
    assert srv.ref("refs/heads/main") == sha
