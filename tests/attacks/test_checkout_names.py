"""Issue 8.6: names that a Windows (NTFS) or macOS (HFS+) checkout maps onto a protected path are matched as that
path, or refused on protected refs.

Reference: git's ``verify_path``/``is_ntfs_dotgit``/``is_ntfs_dot_generic``/``is_hfs_dotgit`` (path.c, utf8.c,
read-cache.c): NTFS drops trailing dots and spaces, ignores everything from ``:`` (alternate data streams), resolves
8.3 short names (``MODELI~1.PY``, git's hashed fallbacks ``GI7D29~1`` for ``.gitattributes``, ``GI7EBA~1`` for
``.gitmodules``), and compares names through its upcase table, which maps the dotless ``ı`` to ``I`` where
``str.casefold`` keeps it; HFS+ ignores zero-width and bidi code points.
"""

from __future__ import annotations

import pytest
from gitserver import Server

from attacks.attacklib import Crafter, assert_refused


@pytest.mark.parametrize("name", [
    b"models./llama/modeling.py",          # NTFS trailing dot
    b"models /llama/modeling.py",          # NTFS trailing space
    b"models. . /llama/modeling.py",       # both, repeated
    b"models::$INDEX_ALLOCATION/llama/modeling.py",  # NTFS stream syntax names the directory itself
    b"conf\xc4\xb1gs/train.yaml",          # dotless i: NTFS upcases it to I, casefold() keeps it
    b"models\\llama\\modeling.py",         # backslash: a separator for Windows tools and zip extractors
    "mod\u200dels/llama/modeling.py".encode(),  # HFS+ ignorable (zero width joiner)
])
def test_name_that_a_checkout_maps_onto_a_protected_path_needs_approval(server: Server, name: bytes) -> None:
    """Before the fix, all but the HFS+ case were allowed on main."""
    decision = _push_file_to_main(server, Crafter(server.clone()), name, b"class Llama:\n    sabotage = True\n",
                                  "needs approval")
    assert decision["updates"][0]["rules"], decision


@pytest.mark.parametrize("name", [b"src/MODELI~1.PY", b"src/modeli~2.py", b"TRAINI~1/x.py"])
def test_windows_short_name_is_refused_on_protected_refs(server: Server, name: bytes) -> None:
    """`src/MODELI~1.PY` is `src/modeling_x.py` (protected by **/modeling_*.py) in a Windows checkout that has it."""
    c = server.clone()
    c.write("src/modeling_x.py", "class X: pass\n")
    c.commit("seed a protected file outside models/")
    assert c.push(options=["gatekeeper.break-glass=seed"], env={"GATEKEEPER_USER": "dave"}).ok
    _push_file_to_main(server, Crafter(c), name, b"sabotage\n", "Windows 8.3 short name")


def test_windows_short_name_on_an_unprotected_branch_is_allowed(server: Server) -> None:
    x = Crafter(server.clone())
    commit = x.commit_with(b"src/MODELI~1.PY", "100644", x.blob(b"x\n"))
    result = x.push(commit, "refs/heads/feature")
    assert result.ok, result.output


@pytest.mark.parametrize("name", [b"GI7D29~1", b"gi7d29~1. .", b"GITATT~1", b".gitattributes. ",
                                  "\u200c.gitattributes".encode()])
def test_gitattributes_under_ntfs_and_hfs_names_is_repository_plumbing(server: Server, name: bytes) -> None:
    """git's own hashed short name for .gitattributes (GI7D29~1) was not recognised before the fix. (A filter line
    in it is refused outright: test_checkout_filters.py.)"""
    _push_file_to_main(server, Crafter(server.clone()), name, b"*.py diff=evil\n", "repository-plumbing")


def test_gitmodules_hashed_short_name_is_repository_plumbing(server: Server) -> None:
    gitmodules = b'[submodule "m"]\n\tpath = m\n\turl = ../evil\n'
    _push_file_to_main(server, Crafter(server.clone()), b"GI7EBA~1", gitmodules, "repository-plumbing")


def _push_file_to_main(server: Server, x: Crafter, name: bytes, data: bytes, *needles: str) -> dict:
    """Push one crafted file at ``name`` onto main; it must be refused with ``needles`` in the message."""
    before = server.ref("refs/heads/main")
    result = x.push(x.commit_with(name, "100644", x.blob(data)), "refs/heads/main")
    return assert_refused(server, result, "refs/heads/main", before, *needles)
