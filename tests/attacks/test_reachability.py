"""Issue 8.2: every object a push makes reachable from any pushed ref is scanned, whatever points at it: a ref to a
blob, to a tree, to tags of tags of either, in any namespace under refs/. Malicious content, and configs that are
malicious in themselves (a Hydra ``_target_`` that is a shell call), refuse the push on every ref."""

from __future__ import annotations

from gitserver import Server, run_git

from attacks.attacklib import HYDRA_SHELL, MALICIOUS_PICKLE, Crafter, assert_refused


def test_blob_pushed_straight_to_a_ref_is_scanned(server: Server) -> None:
    """Before the fix: allowed (only commits were walked)."""
    x = Crafter(server.clone())
    result = x.push(x.blob(MALICIOUS_PICKLE), "refs/payloads/p")
    decision = assert_refused(server, result, "refs/payloads/p", None, "malicious", "os.system")
    assert decision["findings"][0]["verdict"] == "malicious"


def test_tree_pushed_to_a_notes_ref_is_scanned(server: Server) -> None:
    """Before the fix: allowed."""
    x = Crafter(server.clone())
    inner = x.tree([("100644", b"model.bin", x.blob(MALICIOUS_PICKLE))])
    tree = x.tree([("40000", b"weights", inner)])
    result = x.push(tree, "refs/notes/evil")
    assert_refused(server, result, "refs/notes/evil", None, "malicious: weights/model.bin")


def test_tag_of_a_tag_of_a_tree_is_scanned(server: Server) -> None:
    """Before the fix: allowed."""
    x = Crafter(server.clone())
    tree = x.tree([("100644", b"ckpt.pt", x.blob(MALICIOUS_PICKLE))])
    outer = x.tag(x.tag(x.tag(tree, "tree", "inner"), "tag", "middle"), "tag", "outer")
    result = x.push(outer, "refs/custom/nested")
    assert_refused(server, result, "refs/custom/nested", None, "malicious: ckpt.pt")


def test_tag_of_a_blob_is_scanned_and_refused_on_a_protected_tag_too(server: Server) -> None:
    x = Crafter(server.clone())
    tag = x.tag(x.blob(MALICIOUS_PICKLE), "blob", "v9")
    result = x.push(tag, "refs/blobs/v9")
    assert_refused(server, result, "refs/blobs/v9", None, "malicious")
    # a protected ref must name a commit: its change set cannot be computed otherwise
    result = x.push(tag, "refs/tags/v9")
    assert_refused(server, result, "refs/tags/v9", None, "is a blob; a protected ref must point at a commit")


def test_tag_of_a_commit_in_an_odd_namespace_is_scanned(server: Server) -> None:
    x = Crafter(server.clone())
    commit = x.commit_with(b"weights/w.bin", "100644", x.blob(MALICIOUS_PICKLE))
    result = x.push(x.tag(x.tag(commit, "commit", "a"), "tag", "b"), "refs/anything/deep/name")
    assert_refused(server, result, "refs/anything/deep/name", None, "malicious: weights/w.bin")


def test_note_carrying_a_pickle_is_scanned(server: Server) -> None:
    c = server.clone()
    (c.path / "note.bin").write_bytes(MALICIOUS_PICKLE)
    c.git("notes", "add", "-F", "note.bin", "HEAD")
    result = c.push("refs/notes/commits:refs/notes/commits")
    assert_refused(server, result, "refs/notes/commits", None, "malicious")


def test_hydra_shell_target_is_refused_on_an_unprotected_branch(server: Server) -> None:
    """Before the fix: allowed (config-is-code was analysed on protected refs only)."""
    c = server.clone()
    c.write("experiments/exp1.yaml", HYDRA_SHELL)
    c.commit("experiment")
    result = c.push("HEAD:refs/heads/feature")
    decision = assert_refused(server, result, "refs/heads/feature", None, "malicious: experiments/exp1.yaml",
                              "os.system")
    assert any(f["verdict"] == "malicious" for f in decision["findings"])


def test_hydra_shell_target_in_a_pushed_tree_is_refused(server: Server) -> None:
    x = Crafter(server.clone())
    tree = x.tree([("100644", b"config.yaml", x.blob(HYDRA_SHELL))])
    result = x.push(tree, "refs/stash-like/x")
    assert_refused(server, result, "refs/stash-like/x", None, "malicious: config.yaml")


def test_commit_already_on_the_server_brings_nothing_new_to_scan(server: Server) -> None:
    """The benign control: a tree ref to content already scanned on main is allowed."""
    x = Crafter(server.clone())
    main_tree = run_git("rev-parse", "HEAD^{tree}", cwd=x.clone.path).stdout.decode().strip()
    result = x.push(main_tree, "refs/trees/main")
    assert result.ok, result.output


def test_tree_bomb_pushed_to_a_ref_is_scanned_without_walking_every_path(server: Server) -> None:
    """10 levels of 10 folders sharing one subtree each, 10 files at the bottom: 10^11 paths to a naive walk,
    11 trees to the gate."""
    x = Crafter(server.clone())
    node = x.tree([("100644", f"f{i}.bin".encode(), x.blob(MALICIOUS_PICKLE)) for i in range(10)])
    for _ in range(10):
        node = x.tree([("40000", f"d{i}".encode(), node) for i in range(10)])
    result = x.push(node, "refs/bombs/b")
    assert_refused(server, result, "refs/bombs/b", None, "malicious: d0/d0/d0/d0/d0/d0/d0/d0/d0/d0/f0.bin")
