"""The decision: pure and typed. Analysed ref updates and a policy in, a decision with reasons out; no I/O, no git.

Rules (DESIGN.md "All matching rules must hold"):

* An update of an unprotected ref is allowed here (content detectors may still refuse it elsewhere).
* For a protected ref, every rule matching any changed path (old or new side: a change set entry has one path, and
  a move is a delete plus an add, so both paths are checked) must have enough approvals from distinct eligible
  people. A loose rule never overrides a strict one.
* Deleting or rewriting (non-fast-forward) a protected ref is itself a protected change: the built-in requirement
  ``protected-ref-history`` needs as many approvals as the strictest rule, from the union of all rules' reviewers.
* ``mode: monitor`` decides the same way but never blocks. Break-glass lets a member of the ``break_glass`` group
  through, always loudly recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from gatekeeper.push.analysis import RefAnalysis
from gatekeeper.model import Change, Finding, Identity, UpdateKind, Verdict

HISTORY_RULE = "protected-ref-history"
REF_RULES_DETECTOR = "ref-rules"


@dataclass(frozen=True)
class Requirement:
    """What one rule demands of one ref update."""

    rule: str
    approvals: int
    reviewers: frozenset[str]  # eligible people (groups expanded)
    reviewer_spec: tuple[str, ...]  # as written in the policy (group or people names), for messages
    changes: tuple[Change, ...]  # the changed paths that made the rule match
    why: str = ""  # for built-in requirements: why it applies
    reasons: tuple[tuple[bytes, str], ...] = ()  # for built-in requirements: path -> what the detector found there


@dataclass(frozen=True)
class ApprovalResult:
    approvers: frozenset[str] = frozenset()  # distinct eligible people whose approval covers the requirement
    notes: tuple[str, ...] = ()  # why other approvals did not count ("approval by alice (is the pusher)")
    used: tuple[dict[str, object], ...] = ()  # evidence for the audit record


class ApprovalEvaluator(Protocol):
    def evaluate(self, requirement: Requirement, analysis: RefAnalysis) -> ApprovalResult: ...


@dataclass(frozen=True)
class RequirementOutcome:
    requirement: Requirement
    result: ApprovalResult

    @property
    def satisfied(self) -> bool:
        return len(self.result.approvers) >= self.requirement.approvals

    @property
    def missing(self) -> int:
        return max(0, self.requirement.approvals - len(self.result.approvers))


@dataclass(frozen=True)
class RefDecision:
    analysis: RefAnalysis
    allowed: bool
    outcomes: tuple[RequirementOutcome, ...]
    reasons: tuple[str, ...]
    blocking: tuple[Finding, ...] = ()  # content that refuses the ref whatever the approvals


@dataclass(frozen=True)
class Decision:
    verdict: str  # allow | deny | break-glass
    blocked: bool  # whether the push is refused (False in monitor mode and on break-glass)
    refs: tuple[RefDecision, ...]
    reasons: tuple[str, ...]
    mode: str
    break_glass: dict[str, str] = field(default_factory=dict)


class RuleView(Protocol):
    """The part of a policy rule (:class:`gatekeeper.policy.config.Rule`) the gate reads."""

    @property
    def name(self) -> str: ...

    @property
    def approvals(self) -> int: ...

    @property
    def reviewers(self) -> tuple[str, ...]: ...


class PolicyView(Protocol):
    """The part of :class:`gatekeeper.policy.config.Policy` the gate needs (narrow, so the gate is testable alone)."""

    @property
    def mode(self) -> str: ...

    @property
    def break_glass(self) -> tuple[str, ...]: ...

    @property
    def rules(self) -> Sequence[RuleView]: ...

    def rules_for(self, path: bytes) -> Sequence[RuleView]: ...

    def rules_for_paths(self, paths: Iterable[bytes]) -> Mapping[bytes, Sequence[RuleView]]:
        """:meth:`rules_for` of each of ``paths``, each distinct path once."""
        ...

    def members(self, names: Iterable[str]) -> frozenset[str]: ...

    def person_for_account(self, account: str) -> str | None: ...

    def may_break_glass(self, person: str) -> bool: ...


def requirements_for(policy: PolicyView, analysis: RefAnalysis) -> list[Requirement]:
    """Every requirement one protected ref update must meet, in policy order."""
    if not analysis.protected or analysis.kind == UpdateKind.NOOP:
        return []
    matched: dict[str, list[Change]] = {}
    changes = analysis.changes
    cache = policy.rules_for_paths([change.path for change in changes])  # a change set at once: less work per path
    for change in changes:
        for rule in cache[change.path]:
            name = rule.name
            matched.setdefault(name, []).append(change)
    out: list[Requirement] = []
    for rule in policy.rules:
        name = rule.name
        if name in matched:
            out.append(
                Requirement(
                    rule=name,
                    approvals=int(rule.approvals),
                    reviewers=policy.members(rule.reviewers),
                    reviewer_spec=tuple(rule.reviewers),
                    changes=tuple(matched[name]),
                )
            )
    if analysis.kind in (UpdateKind.DELETE, UpdateKind.FORCE):
        out.append(_history_requirement(policy, analysis))
    return out


def _history_requirement(policy: PolicyView, analysis: RefAnalysis) -> Requirement:
    why = "deleting a protected ref" if analysis.kind == UpdateKind.DELETE else "rewriting a protected ref's history"
    return builtin_requirement(policy, HISTORY_RULE, analysis.changes, why)


def builtin_requirement(policy: PolicyView, name: str, changes: Sequence[Change], why: str,
                        reasons: Mapping[bytes, str] | None = None) -> Requirement:
    """A requirement no rule names but the gate imposes (history rewrites, remote code, plumbing, ML artifacts):
    as many approvals as the strictest rule, from anyone who may approve under some rule."""
    rules = list(policy.rules)
    reviewers: set[str] = set()
    spec: list[str] = []
    for rule in rules:
        reviewers |= policy.members(rule.reviewers)
        for reviewer in rule.reviewers:
            if reviewer not in spec:
                spec.append(reviewer)
    needed = max([int(r.approvals) for r in rules] or [1])
    return Requirement(
        rule=name,
        approvals=max(1, needed),
        reviewers=frozenset(reviewers),
        reviewer_spec=tuple(spec),
        changes=tuple(changes),
        why=why,
        reasons=tuple((c.path, reasons[c.path]) for c in changes if reasons and c.path in reasons),
    )


def decide(
    policy: PolicyView,
    analyses: Sequence[RefAnalysis],
    *,
    pusher: Identity,
    approvals: ApprovalEvaluator | None = None,
    break_glass_reason: str | None = None,
    extra_requirements: Callable[[RefAnalysis], list[Requirement]] | None = None,
    blocking: Mapping[str, Sequence[Finding]] | None = None,
) -> Decision:
    """Decide on a whole push. Pure: the same inputs always give the same decision.

    ``blocking`` maps a ref to content findings (malicious, or unscannable under the default policy) that refuse it
    whatever the approvals; break-glass does not lift them either: known-bad content never lands.
    """
    refs: list[RefDecision] = []
    for analysis in analyses:
        ref_blocking = tuple(blocking.get(analysis.update.ref, ())) if blocking else ()
        refs.append(_decide_ref(policy, analysis, approvals, extra_requirements, ref_blocking))
    allowed = all(r.allowed for r in refs)
    mode = policy.mode
    if allowed:
        return Decision("allow", False, tuple(refs), (), mode)
    reasons: list[str] = []
    if any(r.blocking for r in refs):
        if break_glass_reason is not None:
            reasons.append("break-glass cannot override content that runs code when loaded")
        return Decision("deny", mode != "monitor", tuple(refs), tuple(reasons), mode)
    if break_glass_reason is not None:
        # The group lists people; the pusher is a platform account, mapped to its person exactly as for approvals.
        person = policy.person_for_account(pusher.user)
        eligible = person is not None and policy.may_break_glass(person)
        if eligible and not pusher.is_deploy_key and break_glass_reason.strip():
            return Decision(
                "break-glass", False, tuple(refs), ("break-glass by " + pusher.user,), mode,
                {"by": pusher.user, "reason": break_glass_reason.strip()},
            )
        if not break_glass_reason.strip():
            reasons.append("break-glass needs a reason: -o gatekeeper.break-glass=\"why\"")
        else:
            reasons.append(f"break-glass refused: {pusher.user} is not in the policy's break_glass list")
    return Decision("deny", mode != "monitor", tuple(refs), tuple(reasons), mode)


def _decide_ref(
    policy: PolicyView,
    analysis: RefAnalysis,
    approvals: ApprovalEvaluator | None,
    extra: Callable[[RefAnalysis], list[Requirement]] | None,
    blocking: tuple[Finding, ...] = (),
) -> RefDecision:
    if analysis.refusal:
        # Object substitution and the gate's own namespace: no approval can justify them (analysis.ref_refusal).
        blocking = (Finding(Verdict.REFUSED, analysis.update.ref, REF_RULES_DETECTOR, analysis.refusal), *blocking)
    if blocking:
        reasons = tuple(f"{f.verdict.value}: {f.path}: {f.message}" for f in blocking)
        return RefDecision(analysis, False, (), reasons, blocking)
    if not analysis.protected:
        return RefDecision(analysis, True, (), ("not a protected ref",))
    if analysis.kind == UpdateKind.NOOP:
        return RefDecision(analysis, True, (), ("no change",))
    requirements = requirements_for(policy, analysis)
    if extra is not None:
        requirements.extend(extra(analysis))
    if not requirements:
        return RefDecision(analysis, True, (), ("no protected paths changed",))
    outcomes = []
    for requirement in requirements:
        result = approvals.evaluate(requirement, analysis) if approvals is not None else ApprovalResult()
        outcomes.append(RequirementOutcome(requirement, result))
    allowed = all(o.satisfied for o in outcomes)
    reasons = tuple(
        f"rule {o.requirement.rule}: {len(o.result.approvers)}/{o.requirement.approvals} approvals"
        for o in outcomes
    )
    return RefDecision(analysis, allowed, tuple(outcomes), reasons)
