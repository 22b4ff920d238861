"""Insider attack round 4: the gate's view of git (objects, refs, history) against what git, a checkout and a
server-side reader get."""

from __future__ import annotations

import pytest

from gitserver import Server, run_git

from attacks.attacklib import Crafter, assert_refused

EVIL = b"class Llama:\n    def forward(self, x):\n        return x * 0  # sabotage\n"


def _launder_through_main(server: Server, how: str) -> str:
    """Puts a commit with unreviewed model code into main's history while main's net change stays empty; returns it."""
    x = Crafter(server.clone())
    main = x._git("rev-parse", "origin/main")
    evil = x.commit_with(b"models/llama/modeling.py", "100644", x.blob(EVIL), parent=main)
    if how == "reverted":  # the edit, then its revert, in one push: main's net diff is empty
        tip = x.commit(x._git("rev-parse", f"{main}^{{tree}}"), evil, message="revert")
    else:  # a merge that keeps main's tree (git merge -s ours): the side branch joins main's history
        tip = x.commit(x._git("rev-parse", f"{main}^{{tree}}"), main, evil, message="merge -s ours")
    result = x.push(tip, "refs/heads/main")
    assert result.ok, result.output  # nothing changed on main: no approval is needed, rightly
    return evil


@pytest.mark.parametrize("how", ["reverted", "merged-ours"])
@pytest.mark.parametrize("ref", ["refs/tags/v9", "refs/heads/release/9"])
def test_new_protected_ref_at_an_unreviewed_commit_of_main_history(server: Server, how: str, ref: str) -> None:
    """main's history holds commits no one reviewed: a push whose net change is empty (an edit and its revert, or
    a merge that keeps main's tree) passes, rightly. A new protected ref was diffed against its merge-base with
    main, and the merge-base of a commit in main's history is that commit: the empty change set let a tag or a
    release branch point at the unreviewed model code. Before the fix: allowed."""
    evil = _launder_through_main(server, how)
    x = Crafter(server.clone())
    result = x.push(evil, ref)
    assert_refused(server, result, ref, None, "rule model-code", "models/llama/modeling.py")


@pytest.mark.parametrize("annotated", [False, True], ids=["lightweight", "annotated"])
def test_tag_of_a_protected_release_tip_needs_nothing(server: Server, annotated: bool) -> None:
    """The control: the tip of a protected ref is reviewed content, so tagging release/1's tip (which differs from
    main in a protected file) asks for nothing, though it is not built on main's tip."""
    x = Crafter(server.clone())
    hotfix = x.commit_with(b"models/llama/modeling.py", "100644", x.blob(b"class Llama:\n    fixed = True\n"),
                           parent="origin/main")
    run_git("fetch", "-q", str(x.clone.path), f"{hotfix}:refs/heads/release/1", cwd=server.bare)  # reviewed earlier
    target = x.tag(hotfix, "commit", "v1.0.1") if annotated else hotfix
    result = x.push(target, "refs/tags/v1.0.1")
    assert result.ok, result.output
    assert "the tip of refs/heads/release/1" in server.decisions()[-1]["updates"][0]["base_note"]


def test_tag_built_on_a_protected_release_tip_is_diffed_against_main(server: Server) -> None:
    """Only the exact tip counts: a commit on top of release/1 is diffed against main's tip, so the protected file
    needs approval (fail closed: which protected tip it builds on is not searched for)."""
    x = Crafter(server.clone())
    hotfix = x.commit_with(b"models/llama/modeling.py", "100644", x.blob(b"class Llama:\n    fixed = True\n"),
                           parent="origin/main")
    run_git("fetch", "-q", str(x.clone.path), f"{hotfix}:refs/heads/release/1", cwd=server.bare)
    on_top = x.commit_with(b"models/llama/modeling.py", "100644", x.blob(EVIL), parent=hotfix)
    result = x.push(on_top, "refs/tags/v1.0.2")
    assert_refused(server, result, "refs/tags/v1.0.2", None, "rule model-code",
                   "compared with: new ref: diffed against the tip of refs/heads/main")
