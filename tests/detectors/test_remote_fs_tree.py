"""The on-disk TreeView used by `gatekeeper scan`: never reads through symlinks or outside its root."""

from __future__ import annotations

import os
from pathlib import Path

from gatekeeper.detectors.scan import FsTree
from gatekeeper.model import MODE_BLOB, MODE_EXEC, MODE_LINK


def test_fs_tree_paths_modes_and_confinement(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "a.py").write_text("x")
    (root / "sub" / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(root / "sub" / "run.sh", 0o755)
    (tmp_path / "secret.txt").write_text("secret")
    (root / "link.txt").symlink_to(tmp_path / "secret.txt")
    (root / "dirlink").symlink_to(tmp_path)
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("")
    tree = FsTree(root)
    assert sorted(tree.paths()) == [b"a.py", b"dirlink", b"link.txt", b"sub/run.sh"]
    assert tree.read(b"a.py") == b"x"
    assert tree.read(b"link.txt") is None  # symlinks are not followed
    assert tree.read(b"dirlink/secret.txt") is None  # nor symlinked folders
    assert tree.read(b"../secret.txt") is None and tree.read(b"/etc/passwd") is None
    assert (tree.mode(b"a.py"), tree.mode(b"sub/run.sh"), tree.mode(b"link.txt")) == (MODE_BLOB, MODE_EXEC, MODE_LINK)
    assert tree.mode(b"missing") is None and tree.mode(b"sub") is None
