"""Second round: content that is protected by name must not live somewhere else.

A symlink *into* a protected path was already plumbing (needs approval). The other direction was not: a symlink
*at* a protected path, or at a plumbing file, whose target lies outside every rule. A reviewer approves the link
once; from then on its content is the target's, and the target is an unprotected file anyone edits without review:
``models/llama/modeling.py -> ../../scratch/impl.py`` makes the model code whatever ``scratch/impl.py`` says, and
``.lfsconfig -> docs/lfs.txt`` lets an edit of a text file redirect every client's LFS downloads (git-lfs and git
before 2.32 follow such links; git since 2.32 ignores a symlinked ``.gitattributes`` and fsck calls a symlinked
``.gitmodules`` an error: readers disagree). Such links are refused on protected refs, approvals or not.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from gitserver import Clone, run_git

from approvals.approvals_testlib import Trust, approve, as_person, keygen, make_server
from attacks.attacklib import Crafter, assert_refused

if shutil.which("ssh-keygen") is None:  # pragma: no cover
    pytest.skip("ssh-keygen is required", allow_module_level=True)


@pytest.fixture(scope="module")
def alice_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return keygen(tmp_path_factory.mktemp("keys"), "alice")


class Approved:
    """A gated server where alice (ml-leads) approves whatever dave publishes on refs/heads/feature."""

    def __init__(self, root: Path, alice_key: Path) -> None:
        self.server = make_server(root / "srv")
        Trust(self.server).add("alice", alice_key)
        self.alice_key = alice_key
        self.dave = self.server.clone("dave")
        as_person(self.dave, "dave")

    def approved_push(self, commit: str) -> object:
        """Publish ``commit`` as refs/heads/feature (setup, no hook), have alice approve it for main, push it."""
        run_git("fetch", "-q", str(self.dave.path), f"{commit}:refs/heads/feature", cwd=self.server.bare)
        alice = self.server.clone("alice")
        as_person(alice, "alice")
        alice.git("fetch", "-q", "origin")
        approve(alice, "origin/feature", self.alice_key, "alice")
        return self.dave.push(f"{commit}:refs/heads/main", env={"REMOTE_USER": "dave"})


@pytest.fixture
def approved(tmp_path: Path, clean_env: Path, alice_key: Path) -> Approved:
    return Approved(tmp_path, alice_key)


def _link_commit(clone: Clone, *links: tuple[bytes, bytes]) -> str:
    x = Crafter(clone)
    base = clone.head()
    tree = x._git("rev-parse", f"{base}^{{tree}}")
    for path, target in links:
        tree = x._set(tree, path.split(b"/"), "120000", x.blob(target))
    return x.commit(tree, base)


def test_approved_symlink_from_model_code_to_an_unprotected_file_is_refused(approved: Approved) -> None:
    """Before the fix: allowed with alice's approval; every later edit of scratch/impl.py changed the model code."""
    before = approved.server.ref("refs/heads/main")
    commit = _link_commit(approved.dave, (b"models/llama/modeling.py", b"../../scratch/impl.py"))
    result = approved.approved_push(commit)
    decision = assert_refused(approved.server, result, "refs/heads/main", before,
                              "models/llama/modeling.py", "symlink to ../../scratch/impl.py",
                              "outside every protected path")
    assert any(f["detector"] == "symlink-escape" and f["verdict"] == "refused" for f in decision["findings"])


def test_approved_symlinked_lfsconfig_is_refused(approved: Approved) -> None:
    """Before the fix: allowed with an approval; docs/lfs.txt (unprotected) then decided every client's lfs.url."""
    before = approved.server.ref("refs/heads/main")
    commit = _link_commit(approved.dave, (b".lfsconfig", b"docs/lfs.txt"))
    result = approved.approved_push(commit)
    assert_refused(approved.server, result, "refs/heads/main", before, ".lfsconfig", "plumbing file as a symlink")


def test_symlinked_gitattributes_in_a_subfolder_is_refused_without_asking_for_approval(approved: Approved) -> None:
    before = approved.server.ref("refs/heads/main")
    commit = _link_commit(approved.dave, (b"src/.GitAttributes", b"../models/llama/modeling.py"))
    result = approved.dave.push(f"{commit}:refs/heads/main", env={"REMOTE_USER": "dave"})
    out = assert_refused(approved.server, result, "refs/heads/main", before, "src/.GitAttributes",
                         "plumbing file as a symlink")
    assert out["updates"][0]["decision"] == "deny"


def test_symlink_at_a_protected_path_to_protected_code_still_passes_with_approval(approved: Approved) -> None:
    """The rule is about content escaping review, not about symlinks: an alias inside models/ is fine once approved."""
    commit = _link_commit(approved.dave, (b"models/llama/current.py", b"modeling.py"))
    result = approved.approved_push(commit)
    assert result.ok, result.output
    assert approved.server.ref("refs/heads/main") == commit


def test_symlink_at_a_protected_path_on_an_unprotected_branch_is_not_refused(approved: Approved) -> None:
    commit = _link_commit(approved.dave, (b"models/llama/modeling.py", b"../../scratch/impl.py"))
    result = approved.dave.push(f"{commit}:refs/heads/experiment")
    assert result.ok, result.output


@pytest.mark.parametrize(("link", "target", "needle"), [
    (b"models/llama", b"../scratch", "points outside every protected path"),            # a folder becomes a link
    (b"pkg/modeling_gpt.py", b"../scratch/gpt.py", "points outside every protected path"),  # protected by name
    (b"configs/train.yaml", b"/etc/gatekeeper/train.yaml", "leaves the protected paths"),  # out of the repository
    (b"configs/eval.yaml", b"../configs/../docs/eval.yaml", "points outside every protected path"),
    (b".gitmodules", b"models/llama/modeling.py", "plumbing file as a symlink"),  # even into protected content
    # a Windows checkout (core.symlinks) reads '\\' in a target as a separator; on Linux it names a file in models/
    (b"models/llama/modeling.py", b"..\\..\\scratch\\impl.py", "points outside every protected path"),
    (b"models/llama/modeling.py", b"C:\\ml\\impl.py", "leaves the protected paths"),  # a Windows drive path
])
def test_approved_escaping_symlink_variants_are_refused(approved: Approved, link: bytes, target: bytes,
                                                          needle: str) -> None:
    before = approved.server.ref("refs/heads/main")
    result = approved.approved_push(_link_commit(approved.dave, (link, target)))
    assert_refused(approved.server, result, "refs/heads/main", before, link.decode(), needle)


def test_break_glass_does_not_lift_an_escaping_symlink(approved: Approved) -> None:
    """Break-glass lifts missing approvals, not refusals: an admin in a hurry cannot move model code out of review."""
    before = approved.server.ref("refs/heads/main")
    commit = _link_commit(approved.dave, (b"models/llama/modeling.py", b"../../scratch/impl.py"))
    result = approved.dave.push(f"{commit}:refs/heads/main", options=["gatekeeper.break-glass=prod down, INC-7"],
                                env={"GATEKEEPER_USER": "dave"})
    decision = assert_refused(approved.server, result, "refs/heads/main", before, "points outside every protected")
    assert decision["decision"] != "break-glass"


@pytest.mark.parametrize("ref", ["refs/heads/release/9", "refs/tags/v9"])
def test_escaping_symlink_on_a_new_protected_ref_is_refused(approved: Approved, ref: str) -> None:
    """A new protected ref is diffed against main's merge-base (or the empty tree): the link is in its change set."""
    commit = _link_commit(approved.dave, (b"models/llama/modeling.py", b"../../scratch/impl.py"))
    result = approved.dave.push(f"{commit}:{ref}")
    assert_refused(approved.server, result, ref, None, "points outside every protected path")
