"""Second round: ref names that take over what readers mean by a commit id.

git resolves a name through refs *before* it tries it as an abbreviated object id (``get_oid_basic`` then
``get_short_oid``; only a full 40-digit id wins over a ref, and then with a warning). A branch named ``654994e``, the
abbreviation a release note, a CI job or a reviewer quotes for the reviewed commit, makes ``git checkout 654994e``
and ``git rev-parse 654994e`` on the server, in CI and on every clone return the pusher's commit instead. ``git
describe`` names (``v1.2-3-g654994e``) go through refs first too. Such names are refused on every ref.
"""

from __future__ import annotations

import pytest
from gitserver import Server

from attacks.attacklib import Crafter, assert_refused, bare_git


def _sabotage(x: Crafter, base: str) -> str:
    return x.commit_with(b"models/llama/modeling.py", "100644", x.blob(b"class Llama:\n    sabotage = True\n"),
                         parent=base)


def test_branch_named_like_the_reviewed_commit_abbreviation_is_refused(server: Server) -> None:
    """Before the fix: allowed (an unprotected branch); the server's `git rev-parse <abbrev>` then gave the
    sabotaged commit."""
    x = Crafter(server.clone())
    main = server.ref("refs/heads/main")
    short = main[:7]
    result = x.push(_sabotage(x, main), f"refs/heads/{short}")
    assert_refused(server, result, f"refs/heads/{short}", None, f"refs/heads/{short}", "abbreviated object id")
    assert bare_git(server, "rev-parse", short) == main


@pytest.mark.parametrize("name", [
    "refs/{short}",                     # top-level refs come first in git's lookup
    "refs/heads/{upper}",               # git reads hex case-insensitively
    "refs/remotes/{short}",
    "refs/remotes/{short}/HEAD",
    "refs/heads/{full}",                # 40 digits: git prefers the object, with a warning; forges refuse these
])
def test_object_id_like_ref_name_variants_are_refused(server: Server, name: str) -> None:
    x = Crafter(server.clone())
    main = server.ref("refs/heads/main")
    ref = name.format(short=main[:9], upper=main[:8].upper(), full=main)
    result = x.push(_sabotage(x, main), ref)
    assert_refused(server, result, ref, None, "abbreviated object id")


def test_git_describe_name_as_a_branch_is_refused(server: Server) -> None:
    """`git rev-parse v1.0-3-g<abbrev>` reads the abbreviation when no ref has the name, a ref of that name wins."""
    x = Crafter(server.clone())
    main = server.ref("refs/heads/main")
    ref = f"refs/heads/v1.0-3-g{main[:9]}"
    assert server.ref(ref) == main  # what readers get today: the reviewed commit, through the describe name
    result = x.push(_sabotage(x, main), ref)
    assert_refused(server, result, ref, main, "abbreviated object id")
    assert bare_git(server, "for-each-ref", "refs/heads/v1.0-3-g*") == ""


def test_hex_words_inside_a_longer_branch_name_are_fine(server: Server) -> None:
    x = Crafter(server.clone())
    main = server.ref("refs/heads/main")
    result = x.push(_sabotage(x, main), f"refs/heads/fix/{main[:7]}-followup")
    assert result.ok, result.output


def test_break_glass_does_not_lift_an_object_id_like_ref_name(server: Server) -> None:
    x = Crafter(server.clone())
    main = server.ref("refs/heads/main")
    ref = f"refs/heads/{main[:7]}"
    result = x.clone.push(f"{_sabotage(x, main)}:{ref}", options=["gatekeeper.break-glass=hotfix"],
                          env={"GATEKEEPER_USER": "dave"})
    assert_refused(server, result, ref, None, "abbreviated object id")
