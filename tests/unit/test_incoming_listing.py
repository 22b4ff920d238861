"""The quarantine's trees listed from loose object files (small pushes) are exactly those ``git cat-file
--batch-all-objects`` lists (gatekeeper/push/gitrepo.py ``_incoming_trees``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from gitserver import run_git

from gatekeeper.errors import GitAccessError
from gatekeeper.push import gitrepo


def _quarantine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, n_trees: int) -> gitrepo.Repo:
    bare = tmp_path / "repo.git"
    run_git("init", "-q", "--bare", str(bare))
    incoming = bare / "objects" / "incoming-test"
    incoming.mkdir()
    env = {"GIT_OBJECT_DIRECTORY": str(incoming), "GIT_ALTERNATE_OBJECT_DIRECTORIES": str(bare / "objects"),
           "GIT_QUARANTINE_PATH": str(incoming)}
    for i in range(n_trees):
        blob = run_git("hash-object", "-w", "--stdin", cwd=bare, input=f"blob {i}\n".encode(),
                       env={**os.environ, **env}).stdout.decode().strip()
        run_git("mktree", cwd=bare, input=f"100644 blob {blob}\tf{i}.txt\n".encode(), env={**os.environ, **env})
    # What else git leaves in an object directory: a temporary object, an info folder, a non-hex name.
    fanout = next(p for p in incoming.iterdir() if len(p.name) == 2)
    (fanout / "tmp_obj_AbCdEf").write_bytes(b"partial")
    (incoming / "info").mkdir(exist_ok=True)
    (incoming / "zz").mkdir()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return gitrepo.Repo.open_for_hook({**env, "GIT_DIR": str(bare)})


def _by_git(repo: gitrepo.Repo, monkeypatch: pytest.MonkeyPatch, limit: int) -> list[str]:
    with monkeypatch.context() as patch:
        patch.setattr(gitrepo, "_loose_only_objects", lambda objects, limit: None)
        return sorted(repo._incoming_trees(limit=limit))


def test_loose_listing_equals_gits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = _quarantine(tmp_path, monkeypatch, 5)
    assert repo._incoming is not None
    loose = gitrepo._loose_only_objects(repo._incoming, limit=1000)
    assert loose is not None and len(loose) == 10  # 5 blobs, 5 trees
    fast = sorted(repo._incoming_trees(limit=1000))
    assert len(fast) == 5 and fast == _by_git(repo, monkeypatch, 1000)


def test_the_object_limit_holds_either_way(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = _quarantine(tmp_path, monkeypatch, 3)
    with pytest.raises(GitAccessError, match="more than 5 objects"):
        repo._incoming_trees(limit=5)
    with pytest.raises(GitAccessError, match="more than 5 objects"):
        _by_git(repo, monkeypatch, 5)


def test_a_pack_or_many_loose_objects_go_to_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = _quarantine(tmp_path, monkeypatch, 3)
    assert repo._incoming is not None
    assert gitrepo._loose_only_objects(repo._incoming, limit=5) is None  # six objects
    (Path(repo._incoming) / "pack").mkdir()
    (Path(repo._incoming) / "pack" / "pack-0.pack").write_bytes(b"")
    assert gitrepo._loose_only_objects(repo._incoming, limit=1000) is None
