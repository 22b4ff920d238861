"""Issue 8.4: a pushed name that is a symbolic ref on the server moves its target; protection, change sets and
approvals apply to the ref that really moves."""

from __future__ import annotations

from gitserver import Server

from attacks.attacklib import assert_refused, bare_git


def test_push_through_a_server_side_symref_to_main_is_gated_as_main(server: Server) -> None:
    """Before the fix: allowed, and refs/heads/main moved to the unreviewed commit."""
    bare_git(server, "symbolic-ref", "refs/heads/stable", "refs/heads/main")
    before = server.ref("refs/heads/main")
    c = server.clone()
    c.write("models/llama/modeling.py", "class Llama:\n    sabotage = True\n")
    c.commit("through the alias")
    result = c.push("HEAD:refs/heads/stable")
    decision = assert_refused(server, result, "refs/heads/main", before,
                              "refs/heads/stable -> refs/heads/main", "rule model-code")
    update = decision["updates"][0]
    assert update["ref"] == "refs/heads/main" and update["pushed_as"] == "refs/heads/stable"
    assert update["protected"] is True


def test_chained_symrefs_are_followed(server: Server) -> None:
    bare_git(server, "symbolic-ref", "refs/heads/a", "refs/heads/b")
    bare_git(server, "symbolic-ref", "refs/heads/b", "refs/heads/main")
    before = server.ref("refs/heads/main")
    c = server.clone()
    c.write("configs/train.yaml", "lr: 99\n")
    c.commit("via two hops")
    result = c.push("HEAD:refs/heads/a")
    assert_refused(server, result, "refs/heads/main", before, "refs/heads/a -> refs/heads/main")


def test_symref_to_an_unprotected_branch_stays_unprotected(server: Server) -> None:
    bare_git(server, "symbolic-ref", "refs/heads/wip", "refs/heads/feature")
    c = server.clone()
    c.write("models/llama/modeling.py", "experiment\n")
    sha = c.commit("wip")
    result = c.push("HEAD:refs/heads/wip")
    assert result.ok, result.output
    assert server.ref("refs/heads/feature") == sha
