"""An entry's mode says what git expects at a path; the object it names says what it is. Where the two disagree,
readers split: ``git checkout`` refuses to write a tree-typed object as a file, but ``git archive`` (forges' "Download
ZIP", release tarballs, deploy scripts) writes the object's bytes whatever its type, and ``git cat-file -p`` shows
them. receive-pack's connectivity check never reads an object named by a file mode, and stock ``git push`` sends such
a tree, so an insider can ship a pickle as a "tree" (or commit, or tag) object at ``weights.pkl``."""

from __future__ import annotations

import io
import subprocess
import tarfile

import pytest

from gitserver import Server

from attacks.attacklib import MALICIOUS_PICKLE, Crafter, assert_refused, bare_git


def _typed(x: Crafter, kind: str, data: bytes) -> str:
    return x._git("hash-object", "-w", "--literally", "-t", kind, "--stdin", input=data)


@pytest.mark.parametrize("kind", ["commit", "tag"])
def test_pickle_stored_as_another_type_at_a_file_path_is_refused(server: Server, kind: str) -> None:
    """Before the fix: refused, but as "blob is missing from the repository" (commit, tag) or a malformed tree with
    no path, which sends the pusher looking for the wrong problem."""
    x = Crafter(server.clone())
    commit = x.commit_with(b"weights.pkl", "100644", _typed(x, kind, MALICIOUS_PICKLE))
    result = x.push(commit, "refs/heads/feature/typed")
    decision = assert_refused(server, result, "refs/heads/feature/typed", None,
                              f"weights.pkl: a {kind} object where the tree says a file")
    assert [(f["verdict"], f["detector"]) for f in decision["findings"]] == [("refused", "object-type")]


def test_pickle_stored_as_a_tree_object_is_refused_as_a_crafted_tree(server: Server) -> None:
    x = Crafter(server.clone())
    commit = x.commit_with(b"weights.pkl", "100644", _typed(x, "tree", MALICIOUS_PICKLE))
    result = x.push(commit, "refs/heads/feature/typed")
    assert_refused(server, result, "refs/heads/feature/typed", None, "crafted tree", "its bytes are not tree entries")


@pytest.mark.parametrize("mode", ["100644", "100755", "120000"])
def test_well_formed_tree_at_a_file_or_link_entry_is_refused(server: Server, mode: str) -> None:
    """A valid tree object named by a file or symlink mode passes git's connectivity check and every tree check;
    ``git archive`` writes its raw entries as the file (or the link target). No git client writes this."""
    x = Crafter(server.clone())
    inner = x.tree([("100644", b"model.py", x.blob(b"print('hi')\n"))])
    commit = x.commit_with(b"src/data.bin", mode, inner)
    result = x.push(commit, "refs/heads/feature/typed")
    entry = "symlink" if mode == "120000" else "file"
    assert_refused(server, result, "refs/heads/feature/typed", None,
                   f"src/data.bin: a tree object where the tree says a {entry}", "git fast-export")


def test_archive_really_writes_the_bytes(server: Server) -> None:
    """The premise, against git itself: the bytes of a tree-typed object at a 100644 entry land in ``git archive``."""
    x = Crafter(server.clone())
    obj = _typed(x, "tree", MALICIOUS_PICKLE)
    commit = x.commit_with(b"weights.pkl", "100644", obj)
    archive = subprocess.run(["git", "archive", commit], cwd=x.clone.path, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        member = tar.extractfile("weights.pkl")
        assert member is not None and member.read() == MALICIOUS_PICKLE


def test_symlink_entry_naming_a_tree_object_is_refused_on_a_protected_path(server: Server) -> None:
    x = Crafter(server.clone())
    before = bare_git(server, "rev-parse", "refs/heads/main")
    target = _typed(x, "tree", b"../../etc/passwd")
    commit = x.commit_with(b"models/llama/link.py", "120000", target)
    result = x.push(commit, "refs/heads/main")
    assert_refused(server, result, "refs/heads/main", before)
