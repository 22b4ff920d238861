"""Insider attack round 3 (issue 13): the performance machinery (verdict cache, clean-verdict index, policy caches,
prefilters, quarantine listing) and places where the gate's view differs from git's, a checkout's or a loader's."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitserver import Server, run_git, seed_content

from attacks.attacklib import PRINTABLE_PICKLE as PICKLE, Crafter, assert_refused, printable_tar
from attacks.test_checkout_conversions import LATIN1_PICKLE, CRLF_SPLIT_BINARY


@pytest.mark.parametrize("ref", ["refs/heads/feature/attr-later", "refs/heads/main"])
@pytest.mark.parametrize("undone", [False, True], ids=["kept", "undone-in-the-push"])
def test_attributes_added_after_the_blob(server: Server, ref: str, undone: bool) -> None:
    """The blob lands first, clean as stored; a later push adds only the .gitattributes that makes a checkout write
    it as a pickle running os.system (kept, or removed again by the push's next commit: a checkout of the first one
    still writes it). Refused as malicious on every ref. Before the fix: allowed on feature branches (on main only
    the plumbing approval stood between it and the branch)."""
    x = Crafter(server.clone())
    first = x.commit_with(b"data/w.pkl", "100644", x.blob(LATIN1_PICKLE))
    if ref == "refs/heads/main":
        first = x.commit_with(b"data/w.pkl", "100644", x.blob(LATIN1_PICKLE), parent="origin/main")
    assert x.push(first, ref).ok
    second = x.commit_with(b"data/.gitattributes", "100644", x.blob(b"*.pkl working-tree-encoding=latin1\n"),
                           parent=first)
    if undone:
        second = x.commit(x._git("rev-parse", f"{first}^{{tree}}"), second)
    result = x.push(second, ref)
    assert_refused(server, result, ref, first, "working-tree-encoding=latin1", "os.system")


def test_attributes_edited_to_ask_for_more(server: Server) -> None:
    """An existing .gitattributes asking for ident is edited to add eol=crlf: the binary pickle already there is
    written in its CRLF form from then on."""
    x = Crafter(server.clone())
    first = x.commit_with(b"m/.gitattributes", "100644", x.blob(b"*.txt ident\n"))
    first = x.commit_with(b"m/sub/w.bin", "100644", x.blob(CRLF_SPLIT_BINARY), parent=first)
    assert x.push(first, "refs/heads/feature/more").ok
    second = x.commit_with(b"m/.gitattributes", "100644", x.blob(b"*.txt ident\n*.bin text eol=crlf\n"),
                           parent=first)
    result = x.push(second, "refs/heads/feature/more")
    assert_refused(server, result, "refs/heads/feature/more", first, "eol=crlf", "os.system")


PROTOCOL0_PICKLE = b"cos\nsystem\n(S'id'\ntR."  # no magic: only the pickle reading from byte 0 sees it


def _tar_with(name: str, data: bytes) -> bytes:
    import io
    import tarfile

    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


@pytest.mark.parametrize(("path", "data"), [
    (b"export/SAVED_MODEL.PB", PROTOCOL0_PICKLE),
    (b"ckpt/model.nemo", _tar_with("model_config.yaml", PROTOCOL0_PICKLE)),
], ids=["saved_model.pb", "archived-yaml"])
def test_pickle_under_a_name_read_otherwise(server: Server, path: bytes, data: bytes) -> None:
    """A protocol-0 pickle has no magic. At a path TensorFlow opens as saved_model.pb, or as a .yaml member of an
    archive, the scanner read only graph ops or Hydra targets and skipped the pickle reading, which pickle.load and
    torch.load apply whatever the name. Before the fix: allowed."""
    x = Crafter(server.clone())
    commit = x.commit_with(path, "100644", x.blob(data))
    result = x.push(commit, "refs/heads/feature/named")
    assert_refused(server, result, "refs/heads/feature/named", None, "os.system")


def test_peft_auto_mapping_imports_a_module(server: Server) -> None:
    """peft's AutoPeftModel.from_pretrained reads adapter_config.json and, with no task_type, runs
    importlib.import_module(auto_mapping["parent_library"]): a module of the repository runs on load, with no
    trust_remote_code. The key contains "auto_map" but is not it, so it passed as plain data. Before the fix:
    allowed on main without approval."""
    x = Crafter(server.clone())
    config = (b'{"peft_type": "LORA", "task_type": null, "base_model_name_or_path": "base",\n'
              b' "auto_mapping": {"base_model_class": "Model", "parent_library": "adapters_util"}}\n')
    commit = x.commit_with(b"adapters/lora/adapter_config.json", "100644", x.blob(config), parent="origin/main")
    commit = x.commit_with(b"adapters_util.py", "100644", x.blob(b"def setup():\n    return 1\n"), parent=commit)
    before = server.ref("refs/heads/main")
    result = x.push(commit, "refs/heads/main")
    assert_refused(server, result, "refs/heads/main", before, "remote-code", "adapters_util.py")


# -- namespaces: a server that serves GIT_NAMESPACE=team shows refs/namespaces/team/refs/... as refs/... -------------


def _namespaced_main(server: Server) -> str | None:
    out = run_git("ls-remote", server.bare.as_uri(), "refs/heads/main",
                  env={"GIT_NAMESPACE": "team"}).stdout.decode().split()
    return out[0] if out else None


def test_namespaced_protected_ref(server: Server) -> None:
    """git's namespaces (GIT_NAMESPACE, gitnamespaces(7)): whoever fetches with GIT_NAMESPACE=team gets
    refs/namespaces/team/refs/heads/main as its main. Pushed through the plain view it was no protected ref. Before
    the fix: allowed, and the namespace's main served the unreviewed model code."""
    clone = server.clone()
    clone.write("models/llama/modeling.py", "class Llama:\n    evil = True\n")
    clone.commit("unreviewed")
    result = clone.push("HEAD:refs/namespaces/team/refs/heads/main")
    assert_refused(server, result, "refs/namespaces/team/refs/heads/main", None, "rule model-code")
    assert _namespaced_main(server) is None


@pytest.mark.parametrize("ref", ["refs/namespaces/team/refs/replace/{id}", "refs/namespaces/team/HEAD",
                                 "refs/namespaces/a/refs/namespaces/b/refs/gatekeeper/x"])
def test_namespaced_refs_no_approval_can_justify(server: Server, ref: str) -> None:
    """Inside a namespace, replace refs (copied by a namespaced mirror), the namespace's HEAD (what its clones check
    out) and the gate's own refs are what they are outside one."""
    x = Crafter(server.clone())
    main = server.ref("refs/heads/main")
    assert main is not None
    other = x.commit(x._git("rev-parse", "HEAD^{tree}"), main, message="replacement")
    name = ref.format(id=main)
    result = x.push(other, name)
    assert_refused(server, result, name, None)


# -- folders a case-insensitive checkout merges -------------------------------------------------------------------
# git reads a folder's .gitattributes from the index and, when the index has none at that exact path, from the
# working tree (attr.c read_attr, GIT_ATTR_CHECKOUT). On Windows and macOS MODELS/ and models/ are one folder: the
# MODELS/.gitattributes a checkout wrote first (index order) is read for models/w.pkl.


def test_attributes_in_a_case_variant_folder_first(server: Server) -> None:
    """Before the fix: both pushes allowed (the gate looked for models/.gitattributes only)."""
    x = Crafter(server.clone())
    first = x.commit_with(b"MODELS/.gitattributes", "100644", x.blob(b"* working-tree-encoding=latin1\n"))
    result = x.push(first, "refs/heads/feature/case1")
    assert_refused(server, result, "refs/heads/feature/case1", None, "MODELS/.gitattributes",
                   "case-insensitive checkouts")


def test_blob_in_a_case_variant_folder_later(server: Server) -> None:
    """The conversion sits in a lowercase folder (allowed); the pickle comes later in MODELS/. Before the fix:
    allowed."""
    x = Crafter(server.clone())
    first = x.commit_with(b"models/.gitattributes", "100644", x.blob(b"* working-tree-encoding=latin1\n"))
    assert x.push(first, "refs/heads/feature/case2").ok
    second = x.commit_with(b"MODELS/w.pkl", "100644", x.blob(LATIN1_PICKLE), parent=first)
    result = x.push(second, "refs/heads/feature/case2")
    assert_refused(server, result, "refs/heads/feature/case2", first, "working-tree-encoding=latin1", "os.system")


def test_attributes_later_over_a_case_variant_folder(server: Server) -> None:
    """The pickle sits in Models/; a later push adds models/.gitattributes. Before the fix: allowed."""
    x = Crafter(server.clone())
    first = x.commit_with(b"Models/sub/w.pkl", "100644", x.blob(LATIN1_PICKLE))
    assert x.push(first, "refs/heads/feature/case3").ok
    second = x.commit_with(b"models/.gitattributes", "100644", x.blob(b"* working-tree-encoding=latin1\n"),
                           parent=first)
    result = x.push(second, "refs/heads/feature/case3")
    assert_refused(server, result, "refs/heads/feature/case3", first, "working-tree-encoding=latin1", "os.system")


def test_remote_code_module_in_another_letter_case(tmp_path: Path) -> None:
    """config.json's auto_map names mymodel.py; the tree holds MyModel.py. transformers copies the module with
    open("mymodel.py"), which Windows and macOS checkouts resolve to MyModel.py: an edit of MyModel.py is an edit of
    code that runs on load. Refused before this round: every .py under a Hugging Face config's folder is protected,
    whatever its letter case (ml-artifacts.md §5.1 rule 3)."""
    srv = Server(tmp_path / "srv")
    seeder = srv.clone("seeder")
    seed_content(seeder)
    seeder.write("hub/config.json", '{"auto_map": {"AutoModel": "mymodel.Net"}}\n')
    seeder.write("hub/MyModel.py", "class Net:\n    pass\n")
    seeder.commit("model with remote code")
    assert seeder.push("HEAD:refs/heads/main").ok
    srv.write_policy()
    srv.install()
    clone = srv.clone()
    clone.write("hub/MyModel.py", "class Net:\n    evil = True\n")
    clone.commit("edit the module")
    before = srv.ref("refs/heads/main")
    result = clone.push("HEAD:refs/heads/main")
    assert_refused(srv, result, "refs/heads/main", before, "remote-code", "hub/MyModel.py")


@pytest.mark.parametrize("path", [b"src/notes.txt", b"ckpt/model.pt"])
def test_printable_tar_holding_a_pickle_is_not_waved_through_as_text(server: Server, path: bytes) -> None:
    """The short-text lane skips the scanner for printable text; a v7 tar can be printable from end to end (octal
    fields padded with spaces), and torch.load reads a legacy tar checkpoint whatever its name. Pushed to a feature
    branch, a tar whose one member is a protocol-0 pickle running os.system is refused like any other."""
    x = Crafter(server.clone())
    before = server.ref("refs/heads/feature/tar-text")
    commit = x.commit_with(path, "100644", x.blob(printable_tar(PICKLE)))
    assert_refused(server, x.push(commit, "refs/heads/feature/tar-text"), "refs/heads/feature/tar-text", before,
                   "os.system")


def test_a_trigger_in_a_subtree_taken_from_remembered_listings_still_protects_its_module(tmp_path: Path) -> None:
    """Protected pushes remember which config-named files each tree holds (push/tree_listings.py), so the next push
    reads only the trees it changed. The Hydra config naming mylib/layers.py sits in deep/, which the second push
    does not touch: its listing comes from the first push's record, and the edit of the module is still code that
    runs on load."""
    from gatekeeper.detectors.scan import CONFIG_NAME_TEST, CONFIG_NAME_TEST_VERSION
    from gatekeeper.push.tree_listings import TreeListings

    srv = Server(tmp_path / "srv")
    seeder = srv.clone("seeder")
    seed_content(seeder)
    seeder.write("deep/a/b/conf/model.yaml", "model:\n  _target_: mylib.layers.Block\n  width: 8\n")
    seeder.write("mylib/layers.py", "class Block:\n    pass\n")
    for i in range(30):
        seeder.write(f"deep/a/other{i}/notes.txt", f"{i}\n")
    seeder.commit("a model built by Hydra")
    assert seeder.push("HEAD:refs/heads/main").ok
    srv.write_policy()
    srv.install()
    clone = srv.clone()
    clone.write("src/train.py", "print('train, faster')\n")  # Python changes: the whole tree is listed
    clone.commit("unrelated")
    assert clone.push("HEAD:refs/heads/main").ok
    deep = run_git("rev-parse", "HEAD:deep", cwd=clone.path).stdout.decode().strip()
    remembered = TreeListings(srv.log.parent / "scan-cache", CONFIG_NAME_TEST, CONFIG_NAME_TEST_VERSION)
    assert remembered.get(deep) == ((b"a/b/conf/model.yaml", 0o100644,
                                     run_git("rev-parse", "HEAD:deep/a/b/conf/model.yaml",
                                             cwd=clone.path).stdout.decode().strip()),)
    clone.write("mylib/layers.py", "class Block:\n    import os; os.system('id')\n")
    clone.commit("edit the module")
    before = srv.ref("refs/heads/main")
    result = clone.push("HEAD:refs/heads/main")
    assert_refused(srv, result, "refs/heads/main", before, "remote-code", "mylib/layers.py")
