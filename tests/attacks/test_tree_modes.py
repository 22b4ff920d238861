"""Issue 8.1: tree entries mean what git's checkout makes of them.

receive-pack stores entries with non-canonical modes (fsck only warns), and git's checkout canonicalises them
(``canon_mode``): ``100xxx`` is a regular file (executable when the owner x bit is set), ``120xxx`` a symlink,
``040xxx`` a tree, anything else a gitlink. libgit2 reports the raw mode in diffs, so a gate that compares modes with
``== 0o120000`` sees no symlink and one that scans only ``100644``/``100755`` blobs sees no file.
"""

from __future__ import annotations

from gitserver import Server

from attacks.attacklib import MALICIOUS_PICKLE, Crafter, assert_refused


def test_symlink_written_with_mode_120755_into_a_protected_path_is_refused(server: Server) -> None:
    """Before the fix: allowed (the gate saw a regular file at src/model_link, git checks out a symlink)."""
    x = Crafter(server.clone())
    before = server.ref("refs/heads/main")
    target = x.blob(b"../models/llama/modeling.py")
    commit = x.commit_with(b"src/model_link", "120755", target)
    result = x.push(commit, "refs/heads/main")
    decision = assert_refused(server, result, "refs/heads/main", before,
                              "src/model_link", "mode 120755", "git checks it out as a symlink")
    assert any(f["detector"] == "tree-mode" for f in decision["findings"])


def test_malicious_pickle_behind_mode_100600_is_scanned_on_any_branch(server: Server) -> None:
    """Before the fix: allowed (only 100644/100755 blobs were scanned; git checks 100600 out as a regular file)."""
    x = Crafter(server.clone())
    commit = x.commit_with(b"weights/model.bin", "100600", x.blob(MALICIOUS_PICKLE))
    result = x.push(commit, "refs/heads/feature")
    assert_refused(server, result, "refs/heads/feature", None, "malicious: weights/model.bin", "os.system")


def test_gitlink_with_odd_mode_under_a_protected_path_is_refused(server: Server) -> None:
    x = Crafter(server.clone())
    before = server.ref("refs/heads/main")
    commit = x.commit_with(b"models/vendor", "160755", "1" * 40)
    result = x.push(commit, "refs/heads/main")
    assert_refused(server, result, "refs/heads/main", before, "models/vendor")


def test_odd_mode_on_an_unprotected_path_of_a_protected_ref_is_refused(server: Server) -> None:
    """A mode-only flip to a non-canonical mode: git sees no change at all, but the tree differs from what a reviewer
    could approve; only crafted objects carry such modes."""
    x = Crafter(server.clone())
    before = server.ref("refs/heads/main")
    blob = x.blob(b"print('train')\n")
    commit = x.commit_with(b"src/train.py", "100664", blob)
    result = x.push(commit, "refs/heads/main")
    decision = assert_refused(server, result, "refs/heads/main", before, "src/train.py", "mode 100664")
    assert decision["updates"][0]["decision"] == "deny"


def test_odd_mode_on_an_unprotected_branch_is_recorded_not_refused(server: Server) -> None:
    x = Crafter(server.clone())
    commit = x.commit_with(b"src/tool.py", "100664", x.blob(b"print(1)\n"))
    result = x.push(commit, "refs/heads/feature")
    assert result.ok, result.output
    findings = server.decisions()[-1]["findings"]
    assert any(f["detector"] == "tree-mode" and f["path"] == "src/tool.py" for f in findings)


def test_directory_written_with_mode_040755_cannot_hide_a_protected_change(server: Server) -> None:
    """git reads 040755 as a tree; libgit2's diff cannot. Either way the change to models/ must not land."""
    x = Crafter(server.clone())
    before = server.ref("refs/heads/main")
    new_model = x.blob(b"class Llama:\n    sabotage = True\n")
    llama = x.tree([("100644", b"modeling.py", new_model)])
    models = x.tree([("40000", b"llama", llama)])
    commit = x.commit_with(b"models", "40755", models)
    result = x.push(commit, "refs/heads/main")
    assert_refused(server, result, "refs/heads/main", before, "models")
