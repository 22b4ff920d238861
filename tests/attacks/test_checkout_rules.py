"""The checkout rules the gate applies (gatekeeper/checkout.py), tested against git itself: ``canon_mode`` against
what real ``git ls-tree`` prints for crafted trees, the dotfile name rules against the vectors of git's own
``t/t0060-path-utils.sh`` (``is_dotgitmodules`` and friends), and the NTFS case fold against Python's one-to-one
upper-casing over all of Unicode."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from gatekeeper.checkout import canon_mode, git_dotfiles, is_odd_mode, ntfs_alias, windows_name_problem
from gatekeeper.policy.pathmatch import MatchOptions, normalise_path

U200C = "\u200c"

# git t/t0060-path-utils.sh 'match .gitmodules': names git treats as .gitmodules ...
GITMODULES_MATCH = [
    ".gitmodules", f".git{U200C}modules", ".Gitmodules", ".gitmoduleS",
    ".gitmodules ", ".gitmodules.", ".gitmodules  ", ".gitmodules. ", ".gitmodules .", ".gitmodules..",
    ".gitmodules   ", ".gitmodules.  ", ".gitmodules . ", ".gitmodules  .",
    ".Gitmodules ", ".Gitmodules.", ".Gitmodules  ", ".Gitmodules. ", ".Gitmodules .", ".Gitmodules..",
    ".Gitmodules   ", ".Gitmodules.  ", ".Gitmodules . ", ".Gitmodules  .",
    "GITMOD~1", "gitmod~1", "GITMOD~2", "gitmod~3", "GITMOD~4",
    "GITMOD~1 ", "gitmod~2.", "GITMOD~3  ", "gitmod~4. ", "GITMOD~1 .", "gitmod~2   ", "GITMOD~3.  ", "gitmod~4 . ",
    "GI7EBA~1", "gi7eba~9",
    "GI7EB~10", "GI7EB~11", "GI7EB~99", "GI7EB~10", "GI7E~100", "GI7E~101", "GI7E~999", "~1000000", "~9999999",
    ".gitmodules:$DATA", "gitmod~4 . :$DATA",
]
# ... and names it does not
GITMODULES_NO_MATCH = [
    ".gitmodules x", ".gitmodules .x", " .gitmodules", "..gitmodules", "gitmodules", ".gitmodule",
    ".gitmodules x ", ".gitmodules .x",
    "GI7EBA~", "GI7EBA~0", "GI7EBA~~1", "GI7EBA~X", "Gx7EBA~1", "GI7EBX~1",
    "GI7EB~1", "GI7EB~01", "GI7EB~1X",
    ".gitmodules,:$DATA",
]
OTHERS = {
    ".gitattributes": [".gitattributes", f".git{U200C}attributes", ".Gitattributes", ".gitattributeS", "GITATT~1",
                       "GI7D29~1"],
    ".gitignore": [".gitignore", f".git{U200C}ignore", ".Gitignore", ".gitignorE", "GITIGN~1", "GI250A~1"],
    ".mailmap": [".mailmap", f".mail{U200C}map", ".Mailmap", ".mailmaP", "MAILMA~1", "MABA30~1"],
}


@pytest.mark.parametrize("name", GITMODULES_MATCH)
def test_gitmodules_names_git_matches(name: str) -> None:
    assert ".gitmodules" in git_dotfiles(name.encode())


@pytest.mark.parametrize("name", GITMODULES_NO_MATCH)
def test_gitmodules_names_git_does_not_match(name: str) -> None:
    assert ".gitmodules" not in git_dotfiles(name.encode())


@pytest.mark.parametrize(("dotfile", "name"), [(d, n) for d, names in OTHERS.items() for n in names])
def test_other_dotfile_names_git_matches(dotfile: str, name: str) -> None:
    assert dotfile in git_dotfiles(name.encode())


RAW_MODES = ["100644", "100755", "100664", "100600", "100100", "100010", "100000", "120000", "120755", "120644",
             "160000", "160755", "170000", "020000", "040000", "040755", "000000"]


def test_canon_mode_agrees_with_git_ls_tree(tmp_path: Path) -> None:
    """The oracle is git: ls-tree prints the canonical mode tree-walk.c's decode_tree_entry gives each entry."""
    repo = tmp_path / "r.git"
    subprocess.run(["git", "init", "-q", "--bare", str(repo)], check=True)
    blob = subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=repo, input=b"x", capture_output=True,
                          check=True).stdout.decode().strip()
    for raw in RAW_MODES:
        tree_bytes = raw.encode() + b" entry\x00" + bytes.fromhex(blob)
        tree = subprocess.run(["git", "hash-object", "-w", "--literally", "-t", "tree", "--stdin"], cwd=repo,
                              input=tree_bytes, capture_output=True, check=True).stdout.decode().strip()
        listed = subprocess.run(["git", "ls-tree", tree], cwd=repo, capture_output=True, check=True).stdout.decode()
        git_mode = int(listed.split(" ", 1)[0], 8)
        assert canon_mode(int(raw, 8)) == git_mode, raw
        assert is_odd_mode(int(raw, 8)) == (raw not in ("100644", "100755", "120000", "160000", "040000")), raw


def test_ntfs_case_fold_covers_every_one_to_one_upper_case_mapping() -> None:
    """NTFS compares names through an upcase table: every letter that upper-cases to one other letter must normalise
    like it (str.casefold alone misses the dotless i)."""
    options = MatchOptions()
    for cp in range(0x80, 0x30000):
        ch = chr(cp)
        if 0xD800 <= cp <= 0xDFFF:
            continue
        upper = ch.upper()
        if len(upper) == 1 and upper != ch:
            assert normalise_path(ch.encode(), options) == normalise_path(upper.encode(), options), hex(cp)


@pytest.mark.parametrize(("path", "alias"), [
    (b"models./x.py", b"models/x.py"),
    (b"models . ./x.py", b"models/x.py"),
    (b"models\\x.py", b"models/x.py"),
    (b"models::$INDEX_ALLOCATION/x.py", b"models/x.py"),
    (b"models/x.py:Zone.Identifier", b"models/x.py"),
    (b"models/x.py", None),
    (b"models/.hidden", None),
    (b"a b/c.d", None),
])
def test_ntfs_alias(path: bytes, alias: bytes | None) -> None:
    assert ntfs_alias(path) == alias


@pytest.mark.parametrize(("path", "problem"), [
    (b"src/MODELI~1.PY", "8.3 short name"),
    (b"TRAINI~1/x", "8.3 short name"),
    (b"a/b~12/c", "8.3 short name"),
    (b"a/ . /b", "dots and spaces only"),
    (b"a/.../b", "dots and spaces only"),
    (b"GI7D29~1", None),  # git's .gitattributes: the plumbing rule's business
    (b"notes~draft.md", None),
    (b"backup~", None),
    (b"models/modeling_x.py", None),
])
def test_windows_name_problem(path: bytes, problem: str | None) -> None:
    found = windows_name_problem(path)
    assert (found is None) if problem is None else (found is not None and problem in found)


@pytest.mark.parametrize(("path", "kind"), [
    (b"sub\\.gitattributes", ".gitattributes"),   # a Windows tool's separator
    (b"a/GI7D29~1", ".gitattributes"),
    (b"GITMOD~1 .", ".gitmodules"),
    (b".lfsconfig.", ".lfsconfig"),
    (b"docs/gitattributes.md", None),
])
def test_plumbing_dotfiles_under_checkout_names(path: bytes, kind: str | None) -> None:
    from gatekeeper.detectors.plumbing import dotfile_kind

    assert dotfile_kind(path) == kind
