"""Insider attack round 4: the gate's view of git (objects, refs, history) against what git, a checkout and a
server-side reader get."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from gitserver import Server, run_git

from attacks.attacklib import Crafter, assert_refused
from attacks.test_symlink_escape import Approved, alice_key  # noqa: F401  (alice_key: the fixture Approved needs)

EVIL = b"class Llama:\n    def forward(self, x):\n        return x * 0  # sabotage\n"


def _launder_through_main(server: Server, how: str) -> str:
    """Puts a commit with unreviewed model code into main's history while main's net change stays empty; returns it."""
    x = Crafter(server.clone())
    main = x._git("rev-parse", "origin/main")
    evil = x.commit_with(b"models/llama/modeling.py", "100644", x.blob(EVIL), parent=main)
    if how == "reverted":  # the edit, then its revert, in one push: main's net diff is empty
        tip = x.commit(x._git("rev-parse", f"{main}^{{tree}}"), evil, message="revert")
    else:  # a merge that keeps main's tree (git merge -s ours): the side branch joins main's history
        tip = x.commit(x._git("rev-parse", f"{main}^{{tree}}"), main, evil, message="merge -s ours")
    result = x.push(tip, "refs/heads/main")
    assert result.ok, result.output  # nothing changed on main: no approval is needed, rightly
    return evil


@pytest.mark.parametrize("how", ["reverted", "merged-ours"])
@pytest.mark.parametrize("ref", ["refs/tags/v9", "refs/heads/release/9"])
def test_new_protected_ref_at_an_unreviewed_commit_of_main_history(server: Server, how: str, ref: str) -> None:
    """main's history holds commits no one reviewed: a push whose net change is empty (an edit and its revert, or
    a merge that keeps main's tree) passes, rightly. A new protected ref was diffed against its merge-base with
    main, and the merge-base of a commit in main's history is that commit: the empty change set let a tag or a
    release branch point at the unreviewed model code. Before the fix: allowed."""
    evil = _launder_through_main(server, how)
    x = Crafter(server.clone())
    result = x.push(evil, ref)
    assert_refused(server, result, ref, None, "rule model-code", "models/llama/modeling.py")


@pytest.mark.parametrize("annotated", [False, True], ids=["lightweight", "annotated"])
def test_tag_of_a_protected_release_tip_needs_nothing(server: Server, annotated: bool) -> None:
    """The control: the tip of a protected ref is reviewed content, so tagging release/1's tip (which differs from
    main in a protected file) asks for nothing, though it is not built on main's tip."""
    x = Crafter(server.clone())
    hotfix = x.commit_with(b"models/llama/modeling.py", "100644", x.blob(b"class Llama:\n    fixed = True\n"),
                           parent="origin/main")
    run_git("fetch", "-q", str(x.clone.path), f"{hotfix}:refs/heads/release/1", cwd=server.bare)  # reviewed earlier
    target = x.tag(hotfix, "commit", "v1.0.1") if annotated else hotfix
    result = x.push(target, "refs/tags/v1.0.1")
    assert result.ok, result.output
    assert "the tip of refs/heads/release/1" in server.decisions()[-1]["updates"][0]["base_note"]


def test_tag_built_on_a_protected_release_tip_is_diffed_against_main(server: Server) -> None:
    """Only the exact tip counts: a commit on top of release/1 is diffed against main's tip, so the protected file
    needs approval (fail closed: which protected tip it builds on is not searched for)."""
    x = Crafter(server.clone())
    hotfix = x.commit_with(b"models/llama/modeling.py", "100644", x.blob(b"class Llama:\n    fixed = True\n"),
                           parent="origin/main")
    run_git("fetch", "-q", str(x.clone.path), f"{hotfix}:refs/heads/release/1", cwd=server.bare)
    on_top = x.commit_with(b"models/llama/modeling.py", "100644", x.blob(EVIL), parent=hotfix)
    result = x.push(on_top, "refs/tags/v1.0.2")
    assert_refused(server, result, "refs/tags/v1.0.2", None, "rule model-code",
                   "compared with: new ref: diffed against the tip of refs/heads/main")


# -- export-subst: git archive writes commit text into reviewed files ------------------------------------------------

SUBST_CODE = b'class Llama:\n    pass\n\nBUILD = """$Format:%B$"""\n'
INJECTION = 'release notes"""\nimport os; os.system("id")\n"""'


def _archived(repo: Path, rev: str, path: str) -> bytes:
    data = run_git("archive", "--format=tar", rev, path, cwd=repo).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = tar.extractfile(path)
        assert member is not None
        return member.read()


def test_archive_really_writes_the_commit_message_into_the_file(server: Server) -> None:
    """The premise, against git itself: under export-subst, git archive (what forges serve as downloads) writes the
    commit message of the archived commit into the file, where it is Python code."""
    x = Crafter(server.clone())
    tree = x.tree_with(x._git("rev-parse", "HEAD"), b".gitattributes", "100644", x.blob(b"models/** export-subst\n"))
    commit = x.commit(tree, "HEAD", message="attributes")
    commit = x.commit(x.tree_with(commit, b"models/llama/modeling.py", "100644", x.blob(SUBST_CODE)), commit,
                      message="reviewed")
    later = x.commit(x._git("rev-parse", f"{commit}^{{tree}}"), commit, message=INJECTION)
    assert b'import os; os.system("id")' in _archived(x.clone.path, later, "models/llama/modeling.py")


@pytest.fixture
def approved(tmp_path: Path, clean_env: Path, alice_key: Path) -> Approved:  # noqa: F811
    return Approved(tmp_path, alice_key)


def test_approved_file_that_archives_the_commit_message_is_refused(approved: Approved) -> None:
    """alice approves model code holding ``$Format:%B$`` under ``export-subst``: a build stamp, to a reviewer. From
    then on every commit message on main (no approval needed: the tree does not change) is written into
    models/llama/modeling.py in every tarball a forge serves. Before the fix: allowed with alice's approval."""
    x = Crafter(approved.dave)
    commit = x.commit_with(b".gitattributes", "100644", x.blob(b"models/** export-subst\n"))
    commit = x.commit_with(b"models/llama/modeling.py", "100644", x.blob(SUBST_CODE), parent=commit)
    before = approved.server.ref("refs/heads/main")
    result = approved.approved_push(commit)
    assert_refused(approved.server, result, "refs/heads/main", before, "export-subst", "$Format:%B$",
                   "models/llama/modeling.py")


def test_export_subst_added_over_a_reviewed_placeholder_is_refused(approved: Approved) -> None:
    """The other order: the placeholder landed harmless (no export-subst); the approved push adds only the
    .gitattributes that makes git archive expand it. Before the fix: allowed with alice's approval."""
    x = Crafter(approved.dave)
    earlier = x.commit_with(b"models/llama/modeling.py", "100644",
                            x.blob(b'class Llama:\n    """Built from $Format:%s$."""\n'))
    run_git("fetch", "-q", str(approved.dave.path), f"{earlier}:refs/heads/main", cwd=approved.server.bare)
    commit = x.commit_with(b"models/.gitattributes", "100644", x.blob(b"*.py export-subst\n"), parent=earlier)
    result = approved.approved_push(commit)
    assert_refused(approved.server, result, "refs/heads/main", earlier, "export-subst", "$Format:%s$")


def test_hash_and_date_placeholders_under_export_subst_land_with_approval(approved: Approved) -> None:
    """The control: a version stamp of the commit id and date is a fact of the commit, not pusher text."""
    x = Crafter(approved.dave)
    commit = x.commit_with(b".gitattributes", "100644", x.blob(b"models/** export-subst\n"))
    code = b'class Llama:\n    pass\n\nVERSION = "$Format:%H %h %cs %ad%n$"\n'
    commit = x.commit_with(b"models/llama/modeling.py", "100644", x.blob(code), parent=commit)
    result = approved.approved_push(commit)
    assert result.ok, result.output  # type: ignore[attr-defined]


@pytest.mark.parametrize(("text", "risky"), [
    (b"$Format:%H$", False), (b"$Format:%h %cs %ad %aI %ct%n%%B %x41$", False), (b"$Format:%+H$", False),
    (b"$Format:%B$", True), (b"$Format:%s$", True), (b"$Format:%an <%ae>$", True), (b"$Format:%D$", True),
    (b"$Format:%(describe)$", True), (b"$Format:%aN$", True), (b"$Format:%d$", True), (b"no format here %B", False),
])
def test_placeholders_that_expand_to_pusher_text(text: bytes, risky: bool) -> None:
    from gatekeeper.detectors.export_subst import pusher_text_placeholders

    assert bool(pusher_text_placeholders(b"x = '" + text + b"'\n")) is risky


@pytest.mark.parametrize(("attributes", "asks"), [
    (b"*.py export-subst\n", True), (b"[attr]stamp export-subst\n*.py stamp\n", True),
    (b"*.py -export-subst\n", False), (b"*.py !export-subst text\n", False), (b"*.py export-substx\n", False),
])
def test_attributes_that_set_export_subst(attributes: bytes, asks: bool) -> None:
    from gatekeeper.detectors.export_subst import asks_export_subst

    assert asks_export_subst(attributes) is asks
