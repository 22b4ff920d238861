"""Files a checkout passes through a filter driver (``.gitattributes`` ``filter=<driver>``, other than LFS) are not
what the gate scanned: the driver's smudge program writes the working-tree file.

The stand-in driver here decodes base64, as git-crypt decrypts: the blob is harmless text, and every checkout that
has the driver configured (the team's clones) writes a pickle that runs ``os.system`` when loaded. Before the fix
each push below was allowed (the first test also proves the checkout writes the pickle).
"""

from __future__ import annotations

import base64
import sys
from pathlib import Path

from gitserver import Server, run_git

from attacks.attacklib import MALICIOUS_PICKLE, Crafter, assert_refused, lands_then_refused

ENCODED = base64.b64encode(MALICIOUS_PICKLE) + b"\n"
SMUDGE = f"{sys.executable} -c 'import base64, sys; sys.stdout.buffer.write(base64.b64decode(sys.stdin.buffer.read()))'"


def test_a_pickle_behind_a_smudge_filter_is_unscannable(server: Server, tmp_path: Path) -> None:
    clone = server.clone()
    clone.write(".gitattributes", "*.pkl filter=crypt\n")
    clone.write("weights/model.pkl", ENCODED)
    clone.commit("weights, encrypted at rest")
    result = clone.push("HEAD:refs/heads/feature/weights")
    assert_refused(server, result, "refs/heads/feature/weights", None,
                   "weights/model.pkl", "filter=crypt", ".gitattributes: *.pkl")
    # What the gate cannot see, shown with the same commit pushed where no gate runs.
    plain = tmp_path / "plain.git"
    run_git("init", "-q", "--bare", str(plain))
    run_git("push", "-q", str(plain), "HEAD:refs/heads/main", cwd=clone.path)
    run_git("clone", "-q", "-c", f"filter.crypt.smudge={SMUDGE}", "-c", "filter.crypt.clean=cat",
            plain.as_uri(), str(tmp_path / "victim"))
    assert (tmp_path / "victim" / "weights" / "model.pkl").read_bytes() == MALICIOUS_PICKLE


def test_a_driver_set_through_a_macro_in_another_file_is_seen(server: Server) -> None:
    clone = server.clone()
    clone.write(".gitattributes", "[attr]secret filter=crypt diff=crypt\n")
    clone.write("weights/.gitattributes", "*.PKL secret\n")  # case: Windows and macOS checkouts fold it
    clone.write("weights/model.pkl", ENCODED)
    clone.commit("macro")
    result = clone.push("HEAD:refs/heads/feature/macro")
    assert_refused(server, result, "refs/heads/feature/macro", None, "weights/model.pkl", "filter=crypt")


def test_a_later_unset_does_not_hide_the_driver(server: Server) -> None:
    """Read as a superset: which of two lines wins is not believed (a pattern subtlety must never hide a driver)."""
    clone = server.clone()
    clone.write(".gitattributes", "*.pkl filter=crypt\nweights/*.pkl -filter\n")
    clone.write("weights/model.pkl", ENCODED)
    clone.commit("unset")
    result = clone.push("HEAD:refs/heads/feature/unset")
    assert_refused(server, result, "refs/heads/feature/unset", None, "filter=crypt")


def test_a_driver_added_later_for_files_already_on_the_branch_is_refused(server: Server) -> None:
    """The blob landed as harmless text; the .gitattributes that makes checkouts decode it comes in a later push."""
    lands_then_refused(server, "refs/heads/feature/later", {"weights/model.pkl": ENCODED},
                       {"weights/.gitattributes": "model.pkl filter=crypt\n"}, "weights/model.pkl", "filter=crypt")


def test_files_the_driver_does_not_apply_to_and_lfs_are_judged_as_before(server: Server) -> None:
    clone = server.clone()
    clone.write("docs/.gitattributes", "*.pkl filter=crypt\n")  # only below docs/
    clone.write(".gitattributes", "*.bin filter=lfs diff=lfs merge=lfs -text\n")
    clone.write("weights/notes.pkl.txt", ENCODED)
    clone.write("src/encoded.txt", ENCODED)
    clone.commit("unrelated")
    result = clone.push("HEAD:refs/heads/feature/unrelated")
    assert result.ok, result.output
    # Editing the .gitattributes without adding a driver line does not re-judge the files below it.
    clone.write("docs/guide.pkl", ENCODED)
    clone.commit("a filtered file")
    assert not clone.push("HEAD:refs/heads/feature/unrelated").ok


def test_a_driver_in_a_gitattributes_alias_arms_the_files_already_there(server: Server) -> None:
    """Windows reads GI7D29~1 as .gitattributes: the seeded Python files would pass through the driver."""
    x = Crafter(server.clone())
    before = server.ref("refs/heads/main")
    result = x.push(x.commit_with(b"GI7D29~1", "100644", x.blob(b"*.py filter=evil\n")), "refs/heads/main")
    assert_refused(server, result, "refs/heads/main", before, "src/train.py", "filter=evil (GI7D29~1: *.py)",
                   "already on the branch")


def test_a_driver_set_where_later_pushes_would_not_look_is_refused(server: Server) -> None:
    """Later pushes look for a folder's .gitattributes at its exact, lowercase spelling. A driver set from an alias
    name (GI7D29~1, read by Windows) or a folder spelled otherwise (MODELS/, merged with models/ by Windows and
    macOS) would apply to files those pushes add unseen, so the file is refused when it comes, even with no file to
    filter yet, and also when the driver comes through a macro of the root file."""
    x = Crafter(server.clone())
    before = server.ref("refs/heads/main")
    result = x.push(x.commit_with(b"weights/GI7D29~1", "100644", x.blob(b"*.pkl filter=crypt\n")),
                    "refs/heads/feature/alias")
    assert_refused(server, result, "refs/heads/feature/alias", None, "weights/GI7D29~1", "filter=crypt")
    clone = server.clone()
    clone.write(".gitattributes", "[attr]secret filter=crypt\n")
    clone.write("MODELS/.gitattributes", "*.pkl secret\n")
    clone.commit("case variant")
    result = clone.push("HEAD:refs/heads/main")
    assert_refused(server, result, "refs/heads/main", before, "MODELS/.gitattributes", "filter=crypt")


def test_a_macro_that_comes_to_set_a_driver_later_is_unscannable(server: Server) -> None:
    """``*.pkl secret`` set nothing while ``secret`` was no macro; a later root ``[attr]secret filter=crypt`` arms the
    file without touching its folder."""
    lands_then_refused(server, "refs/heads/feature/macro-later",
                       {"weights/.gitattributes": "*.pkl secret\n", "weights/model.pkl": ENCODED},
                       {".gitattributes": "[attr]secret filter=crypt\n"}, ".gitattributes",
                       "defines macro secret to set filter=crypt")
