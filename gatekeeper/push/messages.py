"""What the pusher reads: a short verdict per ref, and for a refusal the rule, the paths (first few, then a count),
the approvals still needed and from whom, and the command to ask for them.

Written as one contiguous block of lines (Gitea's web UI shows only the first block of ``remote:`` lines) with an
optional per-line prefix (GitLab's web UI shows only lines starting ``GL-HOOK-ERR:``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from gatekeeper.push.gate import Decision, RefDecision, RequirementOutcome
from gatekeeper.model import MODE_ABSENT, MODE_GITLINK, MODE_LINK, Change, Finding, UpdateKind, Verdict, display_path

MAX_PATHS_SHOWN = 5
MAX_NOTES_SHOWN = 4


def render_decision(decision: Decision, *, audit_seq: int | None, pusher: str,
                    is_protected: Callable[[str], bool] | None = None) -> list[str]:
    """``is_protected`` (the policy's) picks a review ref the pusher may push to; without it ``refs/heads/review/``."""
    lines: list[str] = []
    record = f" (audit record #{audit_seq})" if audit_seq is not None else ""
    if decision.verdict == "allow":
        lines.append(f"gatekeeper: push allowed{record}")
    elif decision.verdict == "break-glass":
        lines.append(f"gatekeeper: BREAK-GLASS push by {pusher} let through and flagged for review{record}")
        lines.append(f"  reason: {decision.break_glass.get('reason', '')}")
        lines.append("  it stays listed by 'gatekeeper audit query --break-glass --unreviewed' until approved")
        for ref in decision.refs:
            if not ref.allowed and not ref.blocking:
                a = ref.analysis
                target = a.update.new if a.kind != UpdateKind.DELETE else a.update.old
                base = a.base or a.update.old  # the null id stands for the empty tree
                delete = " --delete" if a.kind == UpdateKind.DELETE else ""
                lines.append(f"  review {a.update.ref} after the fact: git fetch origin && gatekeeper approve "
                             f"{target} --base {base}{delete} --ref {a.update.ref}")
    elif decision.blocked:
        lines.append(f"gatekeeper: push REFUSED{record}")
    else:
        lines.append(f"gatekeeper: MONITOR MODE: this push would be refused; it is let through and recorded{record}")
    for reason in decision.reasons:
        lines.append(f"  {reason}")
    for ref in decision.refs:
        lines.extend(_render_ref(ref, is_protected))
    return lines


def _render_ref(ref: RefDecision, is_protected: Callable[[str], bool] | None = None) -> list[str]:
    a = ref.analysis
    name = f"{a.pushed_as} -> {a.update.ref}" if a.pushed_as else a.update.ref
    head = f"gatekeeper: {name}: {'allowed' if ref.allowed else 'needs approval'} ({_describe_update(ref)})"
    if ref.allowed:
        if ref.outcomes:
            why = "; ".join(
                f"{o.requirement.rule} approved by {', '.join(sorted(o.result.approvers))}" for o in ref.outcomes
            )
        else:
            why = ref.reasons[0] if ref.reasons else ""
        return [head[:-1] + (f"; {why})" if why else ")")]
    if ref.blocking:
        return [head.replace("needs approval", "REFUSED", 1), *_render_blocking(ref.blocking)]
    lines = [head]
    if a.kind == UpdateKind.CREATE and a.base_note:
        lines.append(f"  compared with: {a.base_note}")  # what "modified" below is relative to
    if a.shadows:
        lines.append(f"  protected: {a.update.ref} shadows {a.shadows} for readers that resolve the short name "
                     "(git rev-parse, git archive, git log)")
    missing = [o for o in ref.outcomes if not o.satisfied]
    for outcome in missing:
        lines.extend(_render_outcome(outcome))
    people = sorted(set().union(*(o.requirement.reviewers for o in missing))) if missing else []
    if people:
        lines.append(f"  next: ask {_people(people)} to review and approve exactly this change:")
        lines.extend(_approval_steps(ref, is_protected))
    else:
        lines.append("  next: no eligible reviewer exists for this rule; ask an admin to fix the policy")
    return lines


def _approval_steps(ref: RefDecision, is_protected: Callable[[str], bool] | None) -> list[str]:
    """Commands that work as printed. A refused push leaves nothing on the server, so the reviewer could not fetch
    the commit: the pusher first publishes it on an unprotected review ref, and the reviewer approves from there."""
    a = ref.analysis
    if a.kind == UpdateKind.DELETE:
        return [f"    reviewer: git fetch origin && gatekeeper approve {a.update.old} --delete --ref {a.update.ref}",
                "    then push again"]
    short = a.update.new[:12]
    review = next((r for r in (f"refs/heads/review/{short}", f"refs/review/{short}")
                   if is_protected is None or not is_protected(r)), None)
    if review is None:
        return ["    (no unprotected review ref exists under this policy: ask an admin how to publish changes "
                "for review)"]
    return [f"    you:      git push origin {short}:{review}",
            f"    reviewer: git fetch origin {review} && gatekeeper approve FETCH_HEAD --ref {a.update.ref}",
            "    then push again"]


def _render_blocking(findings: Sequence[Finding]) -> list[str]:
    refused = [f for f in findings if f.verdict == Verdict.REFUSED]
    content = [f for f in findings if f.verdict != Verdict.REFUSED]
    lines: list[str] = []
    if refused:
        lines.append("  what git, a checkout or a server-side reader would make of this push (no approval can "
                     "override this):")
        lines.extend(_finding_lines(refused))
        lines.append("  next: " + _NEXT_STEP.get(refused[0].detector, "push ordinary objects under ordinary names"))
    if content:
        lines.append("  content that runs code when loaded (no approval can override this):")
        lines.extend(_finding_lines(content))
        lines.append("  next: remove the file from every commit of this push (e.g. git rebase -i), or convert it to")
        lines.append("        safetensors; check locally with: gatekeeper scan PATH")
    return lines


# What to do about a refusal no approval lifts, by the detector that made it.
_NEXT_STEP = {
    "tree-mode": "recreate the commits with ordinary git (e.g. git fast-export | git fast-import), which writes "
                 "canonical modes",
    "checkout-name": "rename the path to its long name without trailing dots or spaces",
    "ref-rules": "replace refs and refs/gatekeeper/ are written by server admins only; push to another ref",
    "checkout-conversion": "name the file .gitattributes, the name every checkout reads alike",
    "object-type": "recreate the commits with ordinary git (e.g. git fast-export | git fast-import), which names "
                   "only blobs from file entries",
}


def _finding_lines(findings: Sequence[Finding]) -> list[str]:
    lines = []
    for finding in findings[:MAX_PATHS_SHOWN]:
        lines.append(f"    {finding.verdict.value}: {finding.path}: {finding.message}")
        lines.extend(f"      {e}" for e in finding.evidence[:2])
    if len(findings) > MAX_PATHS_SHOWN:
        lines.append(f"    ... and {len(findings) - MAX_PATHS_SHOWN} more findings")
    return lines


def _render_outcome(outcome: RequirementOutcome) -> list[str]:
    req, result = outcome.requirement, outcome.result
    who = ", ".join(req.reviewer_spec) or "nobody (no reviewers configured)"
    plural = "approval" if req.approvals == 1 else "approvals"
    have = len(result.approvers)
    found = f"; {have} valid so far ({', '.join(sorted(result.approvers))})" if have else ""
    what = f" ({req.why})" if req.why else ""
    lines = [f"  rule {req.rule}{what} needs {req.approvals} {plural} from {who}{found}"]
    if result.notes:
        shown = list(result.notes[:MAX_NOTES_SHOWN])
        extra = len(result.notes) - len(shown)
        lines.append("    found: " + "; ".join(shown) + (f"; and {extra} more" if extra > 0 else ""))
    elif not have:
        lines.append("    found: no approvals")
    lines.extend(_render_paths(req.changes, dict(req.reasons)))
    return lines


def _render_paths(changes: Sequence[Change], reasons: dict[bytes, str] | None = None) -> list[str]:
    lines: list[str] = []
    for c in changes[:MAX_PATHS_SHOWN]:
        lines.append(f"    {_status(c)} {display_path(c.path)}")
        if reasons and c.path in reasons:  # what a detector found there: the pusher sees what actually changed
            lines.append(f"             {reasons[c.path][:300]}")
    if len(changes) > MAX_PATHS_SHOWN:
        lines.append(f"    ... and {len(changes) - MAX_PATHS_SHOWN} more protected paths")
    return lines


def _status(change: Change) -> str:
    if change.old_mode == MODE_ABSENT:
        kind = "added"
    elif change.new_mode == MODE_ABSENT:
        kind = "deleted"
    elif change.old_mode != change.new_mode and change.old_id == change.new_id:
        kind = "mode"
    elif (change.old_mode in (MODE_LINK, MODE_GITLINK)) != (change.new_mode in (MODE_LINK, MODE_GITLINK)):
        kind = "type"
    else:
        kind = "modified"
    suffix = " (symlink)" if MODE_LINK in (change.old_mode, change.new_mode) else ""
    suffix = " (submodule)" if MODE_GITLINK in (change.old_mode, change.new_mode) else suffix
    return f"{kind:<8}" + suffix


def _describe_update(ref: RefDecision) -> str:
    a = ref.analysis
    old, new = a.update.old[:7], a.update.new[:7]
    if a.kind == UpdateKind.CREATE:
        return f"new ref at {new}"
    if a.kind == UpdateKind.DELETE:
        return f"deletion of {old}"
    if a.kind == UpdateKind.FORCE:
        return f"forced update {old}...{new}"
    if a.kind == UpdateKind.NOOP:
        return "no change"
    return f"{old}..{new}"


def _people(names: Sequence[str]) -> str:
    if len(names) <= 4:
        return " or ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
    return ", ".join(names[:4]) + f" (or {len(names) - 4} others)"


def render_error(summary: str, *, hint: str, audit_seq: int | None) -> list[str]:
    record = f" (audit record #{audit_seq})" if audit_seq is not None else " (could not be recorded)"
    lines = [f"gatekeeper: push REFUSED{record}: {summary}"]
    if hint:
        lines.append(f"  hint: {hint}")
    return lines
