"""The per-path work of a big push done per change set or per tree (issue 13, "Per-path work of a big push"): each
batched form answers exactly what the per-path form answers, over the shared corpus, the project's samples and fuzzed
names, and over real trees (crafted ones included) written by git.

* ``checkout.flagged_paths``: one search over all paths flags a superset of what each per-path prefilter flags;
* ``Repo.tree_paths_where`` / ``RepoTreeView.paths_where``: the listing the remote-code analysis needs (configs
  only) is the full listing filtered, and every later lookup answers as after a full listing;
* the change-set consumers (content scan, plumbing rule, Windows names, remote-code analysis) give the same results
  with the batched prefilters as with the per-path checks (the prefilters forced off).
"""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import pytest

from gatekeeper.checkout import (
    DOTFILE_NEEDLES,
    NTFS_ALIAS_NEEDLES,
    WINDOWS_NAME_NEEDLES,
    could_be_git_dotfile,
    flagged_paths,
    may_have_ntfs_alias,
    may_have_windows_name_problem,
)
from gatekeeper.detectors import plumbing
from gatekeeper.detectors.plumbing import dotfile_kind
from gatekeeper.detectors.scan import RepoTreeView, _configs_to_read, _CachedTree, _may_be_config, analyse_remote_code
from gatekeeper.model import MODE_ABSENT, MODE_BLOB, MODE_GITLINK, MODE_LINK, Change
from gatekeeper.push.gitrepo import Repo
from gatekeeper.push.tree_listings import TreeListings
from test_path_prefilters import _names


def _last(path: bytes) -> bytes:
    return path.replace(b"\\", b"/").rsplit(b"/", 1)[-1]


PREFILTERS = [
    (DOTFILE_NEEDLES, True, lambda p: could_be_git_dotfile(_last(p)) or dotfile_kind(p) is not None),
    (WINDOWS_NAME_NEEDLES, False, may_have_windows_name_problem),
    (NTFS_ALIAS_NEEDLES, False, may_have_ntfs_alias),
]


@pytest.mark.parametrize("needles,non_ascii,per_path", PREFILTERS)
def test_flagged_paths_cover_the_per_path_prefilters(needles: tuple[bytes, ...], non_ascii: bool,
                                                     per_path: object) -> None:
    names = [n for n in _names() if b"\0" not in n]
    names += [b".x", b" x", b"a/ x", b"a/.x", b"x.", b"x ", b"a./b", b"a /b", b"a\\.b", b"a~1", b"\xc3\xa9", b""]
    rng = random.Random(7)
    flagged_total = 0
    for size in (1, 2, 3, 17, 500, len(names)):
        for start in range(0, len(names), max(size, len(names) // 40)):
            batch = names[start:start + size]
            rng.shuffle(batch)
            flagged = flagged_paths(batch, needles, non_ascii=non_ascii)
            assert flagged is not None
            for path in batch:
                if per_path(path):  # type: ignore[operator]
                    assert path in flagged, path
                if path in flagged:  # and nothing is flagged that none of the tests names
                    assert any(n.strip(b"\0") in path for n in needles) or (non_ascii and not path.isascii()) or (
                        path[:1] in (b".", b" ") or path[-1:] in (b".", b" ")), path
            flagged_total += len(flagged)
    assert flagged_total > 1000


def test_flagged_paths_give_up_on_a_nul() -> None:
    assert flagged_paths([b"a", b"b\0.c"], DOTFILE_NEEDLES, non_ascii=True) is None
    assert flagged_paths([], DOTFILE_NEEDLES, non_ascii=True) == set()
    assert flagged_paths([b"a/b", b"c/.d", b"e"], DOTFILE_NEEDLES, non_ascii=True) == {b"c/.d"}
    assert flagged_paths([b"x.", b"a. /b", b"ok"], NTFS_ALIAS_NEEDLES, non_ascii=False) == {b"x.", b"a. /b"}


# -- trees ---------------------------------------------------------------------------------------------------------

def _git(cwd: Path, *args: str, data: bytes | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, input=data, check=True, capture_output=True,
                          timeout=120).stdout.decode().strip()


def _object(cwd: Path, kind: str, data: bytes) -> str:
    return _git(cwd, "hash-object", "-w", "--literally", "-t", kind, "--stdin", data=data)


def _tree(cwd: Path, entries: list[tuple[str, bytes, str]]) -> str:
    """A tree object written as given (no sorting, no checks): crafted modes and names allowed."""
    return _object(cwd, "tree", b"".join(mode.encode() + b" " + name + b"\0" + bytes.fromhex(oid)
                                         for mode, name, oid in entries))


@pytest.fixture(scope="module")
def crafted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A repository of trees: the fuzzed names as files, configs among them, and crafted entries (odd modes, a tree
    entry naming a blob, a file entry naming a tree, duplicates, symlinks and submodules)."""
    root = tmp_path_factory.mktemp("batch") / "repo"
    _git(root.parent, "init", "-q", "--bare", str(root))
    rng = random.Random(11)
    blob = _object(root, "blob", b"x: 1\n")
    other = _object(root, "blob", b"{}")
    names = sorted({n for n in _names() if b"\0" not in n and b"/" not in n and n not in (b"", b".", b"..")})
    rng.shuffle(names)
    leaves = []
    for i in range(0, 1200, 60):
        chunk = sorted(set(names[i:i + 60] + [b"config.json", b"a.yaml", b"hubconf.py", b"x.py"]))
        leaves.append(_tree(root, [("100644", n, blob if j % 2 else other) for j, n in enumerate(chunk)]))
    odd = _tree(root, [("100600", b"odd.yaml", blob), ("120755", b"link.json", blob), ("160000", b"sub.yml", blob),
                       ("120000", b"l.yaml", blob), ("40000", b"notatree.yaml", blob), ("100644", b"dup.json", blob),
                       ("100644", b"dup.json", other), ("100644", b"file-is-tree.yaml", leaves[0])])
    tops = [("40000", f"d{i:02d}".encode(), t) for i, t in enumerate(leaves)]
    tops += [("40755", b"oddmode", leaves[1]), ("40000", b"odd", odd), ("40000", b"same", leaves[2]),
             ("40000", b"same2", leaves[2]), ("100644", b"generate.py", blob), ("100644", b"ROOT.JSON", other)]
    trees = [_tree(root, sorted(tops, key=lambda e: e[1])), leaves[3], odd]
    return root, trees


KEEPS = [_may_be_config, lambda p: True, lambda p: p.endswith(b".py"), lambda p: False]


@pytest.mark.parametrize("keep", KEEPS)
def test_tree_paths_where_is_the_full_listing_filtered(crafted: tuple[Path, list[str]], keep: object) -> None:
    root, trees = crafted
    repo = Repo.open(root)
    for tree in trees:
        full = {p: (m, str(o)) for p, m, o in repo.iter_tree(tree)}
        assert len(full) > 5
        assert repo.tree_paths_where(tree, keep) == {p: v for p, v in full.items() if keep(p)}  # type: ignore[operator]


@pytest.mark.parametrize("keep", KEEPS)
def test_remembered_listings_answer_as_the_walk(crafted: tuple[Path, list[str]], keep: object,
                                                tmp_path: Path) -> None:
    """Tree listings remembered across pushes (push/tree_listings.py): the same answers read cold, from what this
    walk remembered, and from the file a later hook reads; malformed trees (duplicate names, a tree entry naming a
    blob) and every tree above them are never remembered; where a malformed tree repeats a folder, the same entry
    wins as in the plain walk."""
    root, trees = crafted
    repo = Repo.open(root)
    a = _tree(root, [("100644", b"config.json", _object(root, "blob", b'{"a": 1}'))])
    b = _tree(root, [("100644", b"config.json", _object(root, "blob", b'{"b": 2}'))])
    repeated = _tree(root, [("40000", b"dup", a), ("40000", b"dup", b), ("40000", b"ok", a)])
    for tree in [*trees, repeated]:
        expected = repo.tree_paths_where(tree, keep)  # type: ignore[arg-type]
        listings = TreeListings(tmp_path, keep, "test")  # type: ignore[arg-type]
        assert repo.tree_paths_where(tree, keep, listings=listings) == expected  # type: ignore[arg-type]
        assert repo.tree_paths_where(tree, keep, listings=listings) == expected  # type: ignore[arg-type]
        listings.flush()
        again = TreeListings(tmp_path, keep, "test")  # type: ignore[arg-type]
        assert Repo.open(root).tree_paths_where(tree, keep, listings=again) == expected  # type: ignore[arg-type]
        other = TreeListings(tmp_path, lambda p: True, "test")  # another test: the listings are not used
        assert repo.tree_paths_where(tree, keep, listings=other) == expected  # type: ignore[arg-type]
    remembered = TreeListings(tmp_path, keep, "test")  # type: ignore[arg-type]
    odd_tree = trees[2]
    assert remembered.get(odd_tree) is None and remembered.get(trees[0]) is None and remembered.get(repeated) is None
    assert remembered.get(trees[1]) is not None and remembered.get(a) is not None


def test_partial_listing_answers_every_lookup_as_the_full_one(crafted: tuple[Path, list[str]]) -> None:
    root, trees = crafted
    repo = Repo.open(root)
    for tree in trees:
        listed = RepoTreeView(repo, tree)
        everything = listed.paths()
        lookups = everything + [p.rsplit(b"/", 1)[0] for p in everything] + [b"odd", b"oddmode", b"d00/config.json",
                                                                             b"missing.yaml", b"d01/", b"/a.yaml"]
        partial = RepoTreeView(repo, tree)
        assert sorted(partial.paths_where(_may_be_config)) == sorted(p for p in everything if _may_be_config(p))
        for path in lookups:
            assert partial.mode(path) == listed.mode(path), path
            assert _read(partial, path) == _read(listed, path), path


def _read(view: RepoTreeView, path: bytes) -> object:
    try:
        return view.read(path)
    except Exception as exc:  # noqa: BLE001 -- the same error either way
        return type(exc), str(exc)


class _ListOnly:
    """The same tree view without ``paths_where``: _configs_to_read lists it whole."""

    def __init__(self, view: RepoTreeView) -> None:
        self.view = view

    def paths(self) -> list[bytes]:
        return self.view.paths()

    def read(self, path: bytes) -> bytes | None:
        return self.view.read(path)

    def mode(self, path: bytes) -> int | None:
        return self.view.mode(path)


def test_remote_code_configs_are_the_same_with_the_partial_listing(crafted: tuple[Path, list[str]]) -> None:
    root, trees = crafted
    repo = Repo.open(root)
    rng = random.Random(5)
    configs = 0
    for tree in trees:
        everything = RepoTreeView(repo, tree).paths()
        for _ in range(20):
            changed = sorted(rng.sample(everything, rng.randint(1, len(everything))))
            changed += [b"new/dir/model.py", b"top.py"][: rng.randint(0, 2)]
            fast = _configs_to_read(_CachedTree(RepoTreeView(repo, tree)), changed)
            slow = _configs_to_read(_CachedTree(_ListOnly(RepoTreeView(repo, tree))), changed)  # type: ignore[arg-type]
            assert fast == slow
            configs += len(fast)
            assert _remote(RepoTreeView(repo, tree), changed) == _remote(_ListOnly(RepoTreeView(repo, tree)), changed)
    assert configs > 100


def _remote(view: object, changed: list[bytes]) -> object:
    try:
        report = analyse_remote_code(view, changed, hints=False)  # type: ignore[arg-type]
    except Exception as exc:  # noqa: BLE001 -- the same error either way (the hook refuses on it)
        return type(exc), str(exc)
    return report.findings, report.protected


# -- the change-set consumers, batched and per path ---------------------------------------------------------------

def _fuzzed_changes() -> list[Change]:
    rng = random.Random(3)
    names = sorted({n for n in _names() if b"\0" not in n})
    modes = [MODE_BLOB, MODE_BLOB, MODE_BLOB, MODE_LINK, MODE_GITLINK, MODE_ABSENT]
    null = "0" * 40
    out = []
    for name in names:
        old, new = rng.choice(modes), rng.choice(modes)
        out.append(Change(name, old, null if old == MODE_ABSENT else "a" * 40, new, null if new == MODE_ABSENT
                          else "b" * 40))
    return out


def test_plumbing_rule_is_the_same_without_the_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    changes = _fuzzed_changes()

    def is_protected(path: bytes) -> bool:
        return path.startswith((b"models", b"."))

    def read_blob(oid: str) -> bytes | None:
        return {"a" * 40: b"../models/x", "b" * 40: b"docs/readme"}.get(oid)

    fast = plumbing.implicit_protected_paths(changes, is_protected, read_blob=read_blob)
    monkeypatch.setattr(plumbing, "flagged_paths", lambda *a, **k: None)
    slow = plumbing.implicit_protected_paths(changes, is_protected, read_blob=read_blob)
    assert fast == slow
    assert len(fast) > 100


def test_windows_names_and_dotfiles_are_the_same_without_the_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    from gatekeeper.push import content_gate
    from gatekeeper.push.content_gate import RefContent

    changes = tuple(_fuzzed_changes())

    class Analysis:
        def __init__(self) -> None:
            self.changes = changes

    def run() -> tuple[list[object], dict[str, bytes]]:
        content = RefContent()
        content_gate._windows_names(content, Analysis())  # type: ignore[arg-type]
        attributes: dict[str, bytes] = {}
        blobs: dict[tuple[str, str], bytes] = {}
        suspects = content_gate._dotfile_suspects(changes)
        for change in changes:
            content_gate._collect(blobs, change, {}, {}, attributes, set(), suspects)
        return content.blocking, attributes

    fast = run()
    monkeypatch.setattr(content_gate, "flagged_paths", lambda *a, **k: None)
    assert run() == fast
    assert len(fast[0]) > 50 and fast[1]
