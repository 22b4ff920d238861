"""Turn raw ref updates into what the gate decides on: the kind of each update and, for protected refs, the net
change set (DESIGN.md "Net diff of each protected ref, not a walk of new commits").

The change set of a protected ref is ``diff(old tree, new tree)``. That sees everything a walk of new commits misses:
a commit first pushed to a feature branch and then to ``main`` brings no new objects, and an "evil merge" that edits a
file only in the merge commit is invisible to per-commit diffs. For a new protected ref the base is its merge-base
with the default branch (so creating ``release/1`` from ``main`` is not a rewrite of every file), else the empty tree.
A deletion is the removal of every path of the old tree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gatekeeper.errors import GatekeeperError, GitAccessError
from gatekeeper.push.gitrepo import Repo
from gatekeeper.model import Change, ObjectId, RefUpdate, UpdateKind, is_null


class LimitExceeded(GatekeeperError):
    """A resource cap tripped: the gate refuses rather than deciding on a partial view."""

    default_hint = "split the push into smaller pushes, or ask an admin to raise the limit in the policy"


@dataclass(frozen=True)
class RefAnalysis:
    update: RefUpdate
    kind: UpdateKind
    protected: bool
    base: ObjectId | None  # the commit (or tree) the change set was computed from; None = empty tree
    base_note: str  # how the base was chosen, for messages and the record
    new_target: ObjectId | None  # the commit (or tree) the ref will point at, peeled
    changes: tuple[Change, ...]  # net change set; computed for protected refs only


def classify(repo: Repo, update: RefUpdate) -> UpdateKind:
    old_null, new_null = is_null(update.old), is_null(update.new)
    if old_null and new_null:
        return UpdateKind.NOOP  # deleting a ref that does not exist
    if old_null:
        return UpdateKind.CREATE
    if new_null:
        return UpdateKind.DELETE
    if update.old == update.new:
        return UpdateKind.NOOP
    old_kind, old_id = repo.peel(update.old)
    new_kind, new_id = repo.peel(update.new)
    if old_kind == "commit" and new_kind == "commit" and old_id and new_id and repo.is_ancestor(old_id, new_id):
        return UpdateKind.FAST_FORWARD
    return UpdateKind.FORCE


def analyse_updates(
    repo: Repo,
    updates: Sequence[RefUpdate],
    *,
    is_protected: Callable[[str], bool],
    default_branch: str,
    max_changed_paths: int,
) -> list[RefAnalysis]:
    out: list[RefAnalysis] = []
    total = 0
    for update in updates:
        analysis = analyse_update(
            repo, update, protected=bool(is_protected(update.ref)), default_branch=default_branch,
        )
        total += len(analysis.changes)
        if total > max_changed_paths:
            raise LimitExceeded(
                f"this push changes more than {max_changed_paths} paths on protected refs (limits.max_changed_paths)"
            )
        out.append(analysis)
    return out


def analyse_update(repo: Repo, update: RefUpdate, *, protected: bool, default_branch: str) -> RefAnalysis:
    kind = classify(repo, update)
    new_target = _target(repo, update.new) if kind not in (UpdateKind.DELETE, UpdateKind.NOOP) else None
    if not protected or kind == UpdateKind.NOOP:
        return RefAnalysis(update, kind, protected, None, "", new_target, ())
    if kind == UpdateKind.DELETE:
        old_tree = _tree_of(repo, update.old, side="old")
        changes = repo.diff_trees(old_tree, None) if old_tree else []
        return RefAnalysis(update, kind, protected, None, "deletion: every path of the old tip", None, tuple(changes))
    new_tree = _tree_of(repo, update.new, side="new")
    if kind == UpdateKind.CREATE:
        base, note = _creation_base(repo, update, default_branch)
    else:
        base, note = _target(repo, update.old), f"previous tip {update.old[:12]}"
    base_tree = _tree_of(repo, base, side="base") if base else None
    changes = repo.diff_trees(base_tree, new_tree)
    return RefAnalysis(update, kind, protected, base, note, new_target, tuple(changes))


def _creation_base(repo: Repo, update: RefUpdate, default_branch: str) -> tuple[ObjectId | None, str]:
    if update.ref == default_branch:
        return None, "new default branch: diffed against the empty tree"
    default_tip = repo.ref_target(default_branch)
    kind, new_commit = repo.peel(update.new)
    if default_tip is None or kind != "commit" or new_commit is None:
        return None, f"new ref and no {default_branch} to compare with: diffed against the empty tree"
    _, default_commit = repo.peel(default_tip)
    base = repo.merge_base(new_commit, default_commit) if default_commit else None
    if base is None:
        return None, f"new ref with no history in common with {default_branch}: diffed against the empty tree"
    return base, f"new ref: diffed against its merge-base with {default_branch} ({base[:12]})"


def _target(repo: Repo, oid: str) -> ObjectId | None:
    kind, peeled = repo.peel(oid)
    return peeled if kind in ("commit", "tree") else None


def _tree_of(repo: Repo, oid: str, *, side: str) -> ObjectId:
    kind, peeled = repo.peel(oid)
    if kind == "commit" and peeled:
        return repo.commit_tree(peeled)
    if kind == "tree" and peeled:
        return peeled
    if kind == "missing":
        raise GitAccessError(f"the {side} object {oid} is not in the repository")
    raise GitAccessError(
        f"the {side} object {oid} is a {kind}; a protected ref must point at a commit (or a tag of one)",
        hint="push a commit or an annotated tag of a commit to this ref",
    )
