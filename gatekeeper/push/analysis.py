"""Turn raw ref updates into what the gate decides on: the kind of each update and, for protected refs, the net
change set (DESIGN.md "Net diff of each protected ref, not a walk of new commits").

The change set of a protected ref is ``diff(old tree, new tree)``. That sees everything a walk of new commits misses:
a commit first pushed to a feature branch and then to ``main`` brings no new objects, and an "evil merge" that edits a
file only in the merge commit is invisible to per-commit diffs. A new protected ref is diffed against a tree that was
reviewed: the current tip of the default branch (so creating ``release/1`` from ``main`` is not a rewrite of every
file) when the default branch is protected (the same rules apply to every protected ref), or the tip of a protected
ref it points at exactly (a tag of ``release/1``'s tip); otherwise the empty tree, since "nothing changed since main"
says nothing about review when ``main`` takes anything. Not the merge-base: because ``main`` is gated on its net
change, its history holds commits nobody reviewed (an edit and its revert in one push, the side of a
``merge -s ours``), and a ref created at one of them had an empty change set against itself. A deletion is the
removal of every path of the old tree.

Which ref an update really changes, and whether it is protected, is decided here too:

* a pushed name that is a symbolic ref in the server repository moves its target (receive-pack dereferences it), so
  the update is judged as an update of the target (:func:`resolve_server_symrefs`);
* a ref that a server-side reader would pick instead of a protected ref when resolving a short name (``refs/main``
  and ``refs/tags/main`` come before ``refs/heads/main`` in git's lookup order, ``refs.c`` ``ref_rev_parse_rules``)
  is protected like the ref it shadows (:func:`shadowed_protected_ref`);
* updates no approval can justify are refused whatever the ref: object substitution under ``refs/replace/`` (it
  changes what ``git show``, ``git archive``, web UIs and mirrors read for an object id, so no branch diff shows it),
  and anything but an approval in the gate's own ``refs/gatekeeper/`` namespace (:func:`ref_refusal`);
* git's namespaces: a clone served with ``GIT_NAMESPACE=team`` reads ``refs/namespaces/team/refs/heads/main`` as its
  ``main``, so a namespaced ref is protected (and refused) like the ref it serves (:func:`outside_namespaces`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from gatekeeper.errors import GatekeeperError, GitAccessError
from gatekeeper.push.gitrepo import Repo
from gatekeeper.model import Change, ObjectId, OddMode, RefUpdate, UpdateKind, is_null

# git's order for resolving a short name (refs.c ref_rev_parse_rules), without "%s" itself ($GIT_DIR/<name> is not
# pushable): a ref earlier in this list wins over a later one with the same short name.
_SHORT_NAME_RULES = ("refs/{}", "refs/tags/{}", "refs/heads/{}", "refs/remotes/{}", "refs/remotes/{}/HEAD")
MAX_SYMREF_HOPS = 5  # git's own limit for symbolic refs is 5 (SYMREF_MAXDEPTH)
GATE_NAMESPACE = "refs/gatekeeper/"
REPLACE_NAMESPACE = "refs/replace/"
APPROVALS_NAMESPACE = GATE_NAMESPACE + "approvals/"  # = approvals.store.APPROVALS_PREFIX (validated there)
WITHDRAWALS_NAMESPACE = GATE_NAMESPACE + "withdrawals/"  # = approvals.withdraw.WITHDRAWALS_PREFIX (defined from it)


def is_withdrawal_ref(ref: str) -> bool:
    """Whether ``ref`` is in the withdrawals namespace (here, not in approvals.withdraw: every push asks, and only a
    push that brings a withdrawal needs that module)."""
    return ref.startswith(WITHDRAWALS_NAMESPACE) or ref == WITHDRAWALS_NAMESPACE.rstrip("/")


# Short names git would try as an object id if no ref had them: 4+ hex digits (git's minimum abbreviation; 64 for
# SHA-256 repositories) and `git describe` output, which resolves to the abbreviation after "-g".
_OBJECT_NAME = re.compile(r"(?:.+-g)?[0-9a-fA-F]{4,64}")


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
    odd_modes: tuple[OddMode, ...] = ()  # non-canonical modes on the new side of the change set
    pushed_as: str | None = None  # the name pushed, when it is a server-side symbolic ref to update.ref
    shadows: str | None = None  # the protected ref this one shadows for short-name readers
    refusal: str | None = None  # why no approval can let this update through (object substitution, ...)


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
    pushed_as: Mapping[str, str] | None = None,
) -> list[RefAnalysis]:
    out: list[RefAnalysis] = []
    total = 0
    default_protected = bool(is_protected(default_branch))
    pushed = {u.ref for u in updates if not is_null(u.new)}

    def protected(ref: str) -> bool:  # a namespaced ref is protected like the ref it serves
        seen = outside_namespaces(ref)
        return bool(is_protected(ref)) or (seen != ref and bool(is_protected(seen)))

    def exists(ref: str) -> bool:
        return ref in pushed or repo.ref_target(ref) is not None

    for update in updates:
        shadows = None if protected(update.ref) else shadowed_protected_ref(update.ref, protected, exists)
        analysis = analyse_update(
            repo, update, protected=bool(protected(update.ref)) or shadows is not None,
            default_branch=default_branch if default_protected else None, is_protected=protected,
        )
        refusal = ref_refusal(repo, update)
        if refusal is None and analysis.protected and analysis.kind == UpdateKind.CREATE:
            # The other order of the shadowing attack: the unprotected name was pushed first, before this protected
            # ref existed; short-name readers would keep reading it.
            shadow = next((r for r in shadowing_refs(update.ref) if not protected(r) and exists(r)), None)
            if shadow is not None:
                refusal = (f"{shadow} exists and would be read instead of {update.ref} by anything that resolves "
                           "the short name; ask an admin to delete it first")
        analysis = replace(analysis, pushed_as=(pushed_as or {}).get(update.ref), shadows=shadows, refusal=refusal)
        total += len(analysis.changes)
        if total > max_changed_paths:
            raise LimitExceeded(
                f"this push changes more than {max_changed_paths} paths on protected refs (limits.max_changed_paths)"
            )
        out.append(analysis)
    return out


def analyse_update(repo: Repo, update: RefUpdate, *, protected: bool, default_branch: str | None,
                   is_protected: Callable[[str], bool] | None = None) -> RefAnalysis:
    """``default_branch`` is None when it may not serve as the base of new protected refs (it is not protected);
    ``is_protected`` finds the protected refs whose tips a new protected ref may be diffed against."""
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
        base, note = _creation_base(repo, update, default_branch, is_protected)
    else:
        base, note = _target(repo, update.old), f"previous tip {update.old[:12]}"
    base_tree = _tree_of(repo, base, side="base") if base else None
    odd: list[OddMode] = []
    changes = repo.diff_trees(base_tree, new_tree, odd=odd)
    return RefAnalysis(update, kind, protected, base, note, new_target, tuple(changes), tuple(odd))


def _creation_base(repo: Repo, update: RefUpdate, default_branch: str | None,
                   is_protected: Callable[[str], bool] | None = None) -> tuple[ObjectId | None, str]:
    """The reviewed commit a new protected ref is diffed against, and how it was chosen (module docstring).

    Only tips of protected refs count as reviewed. The tip of a protected ref the new one points at exactly (nothing
    changes), the default branch's tip when the new ref builds on it (its change set is then exactly its own
    commits), else the default branch's tip all the same: the change set then also undoes what the default branch
    changed since, which is what the new ref would serve instead of the reviewed content."""
    if default_branch is None:
        return None, "new ref, and the default branch is not protected: diffed against the empty tree"
    if update.ref == default_branch:
        return None, "new default branch: diffed against the empty tree"
    default_tip = repo.ref_target(default_branch)
    kind, new_commit = repo.peel(update.new)
    if default_tip is None or kind != "commit" or new_commit is None:
        return None, f"new ref and no {default_branch} to compare with: diffed against the empty tree"
    _, default_commit = repo.peel(default_tip)
    if new_commit != default_commit and is_protected is not None:
        same = _protected_ref_at(repo, new_commit, is_protected)
        if same is not None:
            return new_commit, f"new ref at the tip of {same} ({new_commit[:12]}), which was reviewed there"
    if default_commit is None or repo.merge_base(new_commit, default_commit) is None:
        return None, f"new ref with no history in common with {default_branch}: diffed against the empty tree"
    if repo.is_ancestor(default_commit, new_commit):
        return default_commit, f"new ref: diffed against the tip of {default_branch} ({default_commit[:12]})"
    return default_commit, (f"new ref not built on the tip of {default_branch}: diffed against that tip "
                            f"({default_commit[:12]}), the reviewed content it would serve instead; older commits "
                            f"of {default_branch} are not all reviewed (only its net changes are)")


def _protected_ref_at(repo: Repo, commit: ObjectId, is_protected: Callable[[str], bool]) -> str | None:
    """A protected ref whose current tip (tags peeled) is ``commit``, or None. The names are filtered first: a forge
    keeps many refs no policy protects, and only protected ones are read."""
    for name in repo.ref_names():
        if not is_protected(name):
            continue
        target = repo.ref_target(name)
        if target is not None and repo.peel(target) == ("commit", commit):
            return name
    return None


def resolve_server_symrefs(repo: Repo, updates: Sequence[RefUpdate]) -> tuple[list[RefUpdate], dict[str, str]]:
    """The updates with each pushed name that is a symbolic ref in the server repository replaced by the ref it
    (transitively) points to, which is what receive-pack really moves; and target -> pushed name for the record.

    git refuses a push that updates a symref and its target inconsistently; a consistent pair stays two updates of
    the same ref here, judged alike."""
    out: list[RefUpdate] = []
    pushed_as: dict[str, str] = {}
    for update in updates:
        target = update.ref
        for _ in range(MAX_SYMREF_HOPS + 1):
            nxt = repo.symbolic_target(target)
            if nxt is None:
                break
            target = nxt
        else:
            raise GitAccessError(f"{update.ref} is a chain of symbolic refs deeper than {MAX_SYMREF_HOPS}")
        if target != update.ref:
            pushed_as[target] = update.ref
            update = RefUpdate(update.old, update.new, target)
        out.append(update)
    return out, pushed_as


def shadowed_protected_ref(ref: str, is_protected: Callable[[str], bool],
                           exists: Callable[[str], bool] = lambda _ref: True) -> str | None:
    """The existing protected ref that ``ref`` would win over when a reader resolves ``ref``'s own short name
    (``main`` for ``refs/main`` and ``refs/tags/main``), or None. Only refs that exist (or are pushed now) count:
    ``refs/notes/x`` must not become protected because ``refs/tags/**`` would protect a tag ``notes/x``."""
    for index, rule in enumerate(_SHORT_NAME_RULES[:3]):  # refs/remotes/* shadow nothing a policy protects
        prefix = rule[:-2]
        short = ref[len(prefix):]
        if index == 0 and short.startswith(("heads/", "tags/", "remotes/")):
            continue  # refs/heads/x is named "x", not "heads/x"
        if ref.startswith(prefix) and short:
            for later in _SHORT_NAME_RULES[index + 1:]:
                candidate = later.format(short)
                if is_protected(candidate) and exists(candidate):
                    return candidate
            return None
    return None


def shadowing_refs(ref: str) -> list[str]:
    """Refs that would win over ``ref`` when a reader resolves its own short name (``refs/main`` and
    ``refs/tags/main`` for ``refs/heads/main``)."""
    for index, rule in enumerate(_SHORT_NAME_RULES[:3]):
        prefix = rule[:-2]
        short = ref[len(prefix):]
        if index == 0 and short.startswith(("heads/", "tags/", "remotes/")):
            continue
        if ref.startswith(prefix) and short:
            return [earlier.format(short) for earlier in _SHORT_NAME_RULES[:index]]
    return []


def object_name_mimic(ref: str) -> str | None:
    """The short name of ``ref`` that git would otherwise read as an object id (``654994e``, ``v1.2-3-g654994e``),
    or None. git's lookup (``get_oid_basic``) tries refs before abbreviated ids, so such a ref takes over every
    ``git checkout``/``rev-parse`` of the commit a release note or CI job names; only a full id wins, with a warning,
    and forges refuse those names too."""
    for rule in _SHORT_NAME_RULES:
        prefix, _, suffix = rule.partition("{}")
        if ref.startswith(prefix) and ref.endswith(suffix) and len(ref) > len(prefix) + len(suffix):
            short = ref[len(prefix):len(ref) - len(suffix)]
            if _OBJECT_NAME.fullmatch(short):
                return short
    return None


_NAMESPACES = "refs/namespaces/"


def outside_namespaces(ref: str) -> str:
    """The name under which a reader served through git's namespaces (``GIT_NAMESPACE``, gitnamespaces(7)) sees
    ``ref``: ``refs/namespaces/a/refs/namespaces/b/refs/heads/main`` is ``refs/heads/main`` (and
    ``refs/namespaces/a/HEAD`` is ``HEAD``) to a clone with ``GIT_NAMESPACE=a/b``. Other refs are themselves. Letter
    case is ignored, as a case-insensitive disk ignores it for loose refs."""
    while ref[:len(_NAMESPACES)].casefold() == _NAMESPACES:
        name, sep, inner = ref[len(_NAMESPACES):].partition("/")
        if not (name and sep and inner):
            break
        ref = inner
    return ref


def ref_refusal(repo: Repo, update: RefUpdate) -> str | None:
    """Why no approval can let this update through, or None.

    Object substitution is refused outright, not put behind an approval: a replace ref changes what every reader
    sees for one object id in every tree and commit that contains it, on every branch at once, so no change set of a
    branch describes it and no approval statement can bind it. An admin who truly needs one writes it on the server.
    Letter case is ignored: on a case-insensitive disk ``refs/REPLACE/x`` is the same loose ref file.
    """
    if is_null(update.old) and is_null(update.new):
        return None  # deleting a ref that does not exist changes nothing
    inner = outside_namespaces(update.ref)
    folded = inner.casefold()
    if inner != update.ref and (folded == "head" or folded.startswith(GATE_NAMESPACE)):
        what = ("HEAD decides what the namespace's clones check out" if folded == "head" else
                "the gate reads approvals from refs/gatekeeper/ outside any namespace")
        return f"{update.ref}: {what}; such refs are managed on the server only"
    if folded.startswith(REPLACE_NAMESPACE):
        replaced = inner[len(REPLACE_NAMESPACE):]
        what = f"{replaced[:12]} ({repo.object_type(replaced) or 'not in this repository'})"
        if is_null(update.new):
            return (f"object substitution: deleting {update.ref} changes what every reader sees for {what}; "
                    "replace refs are managed on the server only")
        by = f"{update.new[:12]} ({repo.object_type(update.new) or 'missing'})"
        return (f"object substitution: {update.ref} would make git show, git archive, web UIs and mirrors replace "
                f"{what} by {by}; replace refs are refused")
    if not is_null(update.new):
        mimic = object_name_mimic(inner)
        if mimic is not None:
            return (f"{update.ref}: its short name {mimic} reads as an abbreviated object id, and git resolves refs "
                    f"first, so `git checkout {mimic}` would give this ref instead of that commit; choose a name "
                    "that is not hex digits")
    if folded.startswith(GATE_NAMESPACE) and not update.ref.startswith((APPROVALS_NAMESPACE, WITHDRAWALS_NAMESPACE)):
        return (f"{update.ref}: refs/gatekeeper/ holds only approvals ({APPROVALS_NAMESPACE}<person>/<nonce>) and "
                f"their withdrawals ({WITHDRAWALS_NAMESPACE}<person>/<nonce>)")
    return None


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
