"""The public API against a real git repository: a pygit2 TreeView, a canonical change set, the plumbing rule."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pygit2
import pytest

from gatekeeper.detectors.scan import analyse_remote_code, implicit_protected_paths
from gatekeeper.model import MODE_ABSENT, Change, Verdict


class GitTree:
    """What the hook's git module is expected to hand over (test-only adapter)."""

    def __init__(self, repo: pygit2.Repository, tree: pygit2.Tree) -> None:
        self.repo = repo
        self.entries: dict[bytes, tuple[int, str]] = dict(self._walk(tree, b""))

    def _walk(self, tree: pygit2.Tree, prefix: bytes) -> Iterator[tuple[bytes, tuple[int, str]]]:
        for entry in tree:
            path = prefix + entry.raw_name
            if entry.filemode == pygit2.enums.FileMode.TREE:
                yield from self._walk(self.repo[entry.id], path + b"/")
            else:
                yield path, (int(entry.filemode), str(entry.id))

    def paths(self) -> list[bytes]:
        return list(self.entries)

    def read(self, path: bytes) -> bytes | None:
        found = self.entries.get(path)
        return None if found is None else bytes(self.repo[found[1]].data)

    def mode(self, path: bytes) -> int | None:
        found = self.entries.get(path)
        return None if found is None else found[0]


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True, timeout=60).stdout


def changes(old: GitTree, new: GitTree) -> list[Change]:
    null = "0" * 40
    out = []
    for path in sorted(set(old.entries) | set(new.entries)):
        a, b = old.entries.get(path, (MODE_ABSENT, null)), new.entries.get(path, (MODE_ABSENT, null))
        if a != b:
            out.append(Change(path, a[0], a[1], b[0], b[1]))
    return out


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    git(work, "init", "-q")
    (work / "models").mkdir()
    (work / "models" / "config.json").write_text(json.dumps({"auto_map": {"AutoModel": "modeling_x.M"}}))
    (work / "models" / "modeling_x.py").write_text("from .utils import f\n")
    (work / "models" / "utils.py").write_text("def f(): pass\n")
    (work / "README.md").write_text("hi\n")
    git(work, "add", "-A")
    git(work, "commit", "-qm", "base")
    return work


def test_api_on_a_real_push(repo: Path) -> None:
    (repo / "models" / "utils.py").write_text("import os\ndef f(): os.system('id')\n")
    (repo / ".gitattributes").write_text("*.bin filter=lfs diff=lfs merge=lfs -text\n")
    os.symlink("models/modeling_x.py", repo / "shortcut.py")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "change")
    r = pygit2.Repository(str(repo))
    head = r.revparse_single("HEAD")
    old, new = GitTree(r, head.parents[0].tree), GitTree(r, head.tree)
    change_set = changes(old, new)
    assert [c.path for c in change_set] == [b".gitattributes", b"models/utils.py", b"shortcut.py"]

    report = analyse_remote_code(new, [c.path for c in change_set], old=old)
    (finding,) = [f for f in report.findings if f.verdict == Verdict.REVIEW]
    assert (finding.path, finding.evidence[0]) == (
        "models/utils.py", "pulled in by models/config.json auto_map.AutoModel -> models/modeling_x.py -> "
                           "models/utils.py")

    def read_blob(oid: str) -> bytes | None:
        return bytes(r[oid].data)

    plumbing = implicit_protected_paths(change_set, lambda p: p.startswith(b"models/"), read_blob=read_blob)
    assert plumbing == {b".gitattributes": "plumbing: .gitattributes",
                        b"shortcut.py": "plumbing: symlink into protected path models/modeling_x.py"}


class FakeRepo:
    """The methods of gatekeeper.push.gitrepo.Repo that RepoTreeView uses, over a real pygit2 repository."""

    def __init__(self, path: Path) -> None:
        self.r = pygit2.Repository(str(path))
        self.lookups = 0

    def iter_tree(self, tree: str) -> Iterator[tuple[bytes, int, str]]:
        view = GitTree(self.r, self.r[tree])
        for path, (mode, oid) in view.entries.items():
            yield path, mode, oid

    def tree_entry(self, tree: str, path: bytes) -> tuple[int, str] | None:
        self.lookups += 1
        return GitTree(self.r, self.r[tree]).entries.get(path)

    def read_blob(self, oid: str, *, max_bytes: int | None = None) -> bytes:
        return bytes(self.r[oid].data)

    def tree_entries(self, tree: str) -> list[tuple[bytes, int, str]]:
        return [(e.name.encode(), e.filemode, str(e.id)) for e in self.r[tree]]

    def folders_spelled_alike(self, root: str, folder: bytes) -> list[tuple[bytes, str]]:
        from gatekeeper.push.gitrepo import Repo

        return Repo(self.r).folders_spelled_alike(root, folder)


def test_repo_tree_view_adapter(repo: Path) -> None:
    from gatekeeper.detectors.scan import RepoTreeView

    os.symlink("models/utils.py", repo / "link.py")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "link")
    fake = FakeRepo(repo)
    view = RepoTreeView(fake, str(fake.r.revparse_single("HEAD").tree.id))
    assert view.read(b"models/utils.py") == b"def f(): pass\n" and fake.lookups == 1
    assert view.read(b"link.py") is None and view.mode(b"link.py") == 0o120000  # a symlink is not read through
    assert sorted(view.paths()) == [b"README.md", b"link.py", b"models/config.json", b"models/modeling_x.py",
                                    b"models/utils.py"]
    report = analyse_remote_code(view, [b"models/utils.py"])
    assert [f.path for f in report.findings] == ["models/utils.py"]
