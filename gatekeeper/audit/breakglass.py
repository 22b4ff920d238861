"""Break-glass changes and their after-the-fact review (issue 3 item 8).

A break-glass record is a ``push.decision`` with ``decision: "break-glass"``: a member of the policy's ``break_glass``
group pushed with ``-o gatekeeper.break-glass="reason"`` and the gate let through updates it would have denied (their
``updates[].decision`` is ``"deny"``). Each such update is *reviewed* once a matching approval is recorded after the
fact, i.e. a later ``push.decision`` that was not blocked (the push landed) created an approval ref
(``refs/gatekeeper/approvals/...``) whose recorded evidence (``updates[].approval``, written by the hook) holds a
statement that

* is for the same repository, and its ``ref`` is the updated ref (or a pattern covering it);
* has ``head`` equal to the update's ``new`` commit (the exact content that landed, whatever base it was diffed from)
  and a non-empty change set (an approval of ``base == head`` approves nothing);
* is signed by someone other than the break-glass pusher (the hook verified the signature against the trust store in
  force before it let the approval ref in; ``audit verify --approvals`` re-checks the evidence offline).

Without a policy, one such approval per update suffices. With the auditor's policy, the approvers must be eligible:
for every rule the update lists, as many distinct eligible approvers as the rule needs (built-in requirements: the
strictest rule's count from anyone who may approve), the way the gate would have judged the push.

Stateful over the whole log, so it wraps :func:`gatekeeper.audit.query.query` rather than being a per-record filter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gatekeeper.audit.policyview import pusher_person, read_evidence, ref_matches, rule_need
from gatekeeper.errors import AuditError

if TYPE_CHECKING:
    from gatekeeper.audit.query import Filters
    from gatekeeper.policy.config import Policy

__all__ = ["BreakGlassStatus", "BreakGlassTracker", "Review", "is_break_glass", "track_break_glass",
           "unreviewed_break_glass"]

Record = dict[str, Any]


@dataclass(frozen=True)
class Review:
    """One approval recorded after a break-glass change, counted towards its review."""

    seq: int | None  # the record that created the approval ref
    person: str
    approval_ref: str
    ref: str  # the break-glass update it reviews
    node: str | None = None  # the node whose log holds that record (``fleet_node``: logs of several nodes merged)


@dataclass
class _Pending:
    ref: str
    new: str
    rules: tuple[str, ...]
    approvers: set[str] = field(default_factory=set)
    done: bool = False


@dataclass
class BreakGlassStatus:
    """A break-glass record and how far its review got."""

    record: Record
    by: str
    reason: str
    updates: list[_Pending]
    reviews: list[Review] = field(default_factory=list)

    @property
    def seq(self) -> int | None:
        seq = self.record.get("seq")
        return seq if isinstance(seq, int) else None

    @property
    def reviewed(self) -> bool:
        return all(u.done for u in self.updates)

    @property
    def unreviewed_refs(self) -> tuple[str, ...]:
        return tuple(u.ref for u in self.updates if not u.done)


def _event(record: Record) -> dict[str, Any]:
    event = record.get("event")
    return event if isinstance(event, dict) else {}


def _updates(event: dict[str, Any]) -> list[dict[str, Any]]:
    updates = event.get("updates")
    return [u for u in updates if isinstance(u, dict)] if isinstance(updates, list) else []


def is_break_glass(record: Record) -> bool:
    event = _event(record)
    return event.get("type") == "push.decision" and event.get("decision") == "break-glass"


def _new_status(record: Record) -> BreakGlassStatus:
    event = _event(record)
    info = event.get("break_glass")
    info = info if isinstance(info, dict) else {}
    pusher = event.get("pusher")
    user = pusher.get("user") if isinstance(pusher, dict) else None
    recorded_by = info.get("by")
    by: str = recorded_by if isinstance(recorded_by, str) else user if isinstance(user, str) else "?"
    reason = info.get("reason") if isinstance(info.get("reason"), str) else ""
    pending = []
    for upd in _updates(event):
        # Only the updates the gate would have refused need a review; the rest were allowed on their own merits.
        if upd.get("decision") != "deny":
            continue
        rules = upd.get("rules")
        pending.append(_Pending(
            ref=str(upd.get("ref")), new=str(upd.get("new")),
            rules=tuple(r for r in rules if isinstance(r, str)) if isinstance(rules, list) else (),
        ))
    return BreakGlassStatus(record, by, str(reason), pending)


def _satisfied(pending: _Pending, policy: Policy | None) -> bool:
    if policy is None or not pending.rules:
        return bool(pending.approvers)
    for name in pending.rules:
        need = rule_need(policy, name)
        if len(pending.approvers & need.reviewers) < need.needed:
            return False
    return True


def _eligible(policy: Policy | None, person: str, rules: tuple[str, ...]) -> bool:
    if policy is None:
        return True
    if person not in policy.people:
        return False
    if not rules:
        return any(person in policy.reviewers_of(rule) for rule in policy.rules)
    return any(person in rule_need(policy, name).reviewers for name in rules)


def _apply_reviews(record: Record, open_items: list[BreakGlassStatus],
                   policy_for: Callable[[Record], Policy | None],
                   accept: Callable[[Record, dict[str, Any]], bool] | None) -> None:
    event = _event(record)
    if event.get("type") != "push.decision" or event.get("blocked") is not False:
        return  # a refused push stored nothing
    for upd in _updates(event):
        evidence = upd.get("approval")
        if evidence is None or (accept is not None and not accept(record, upd)):
            continue
        try:
            approval = read_evidence(evidence)
        except AuditError:
            continue  # malformed evidence never reviews anything (verify --approvals reports it)
        st = approval.statement
        if not st.changes:
            continue  # approving an empty change set (base == head) reviews nothing
        for status in open_items:
            policy = policy_for(status.record)
            if _event(status.record).get("repo") != st.repository or event.get("repo") != st.repository:
                continue
            # The break-glass pusher cannot review their own change: neither by account name nor as the person
            # the policy maps that account to.
            names = {status.by.casefold()}
            person = pusher_person(policy, {"user": status.by})
            if person is not None:
                names.add(person.casefold())
            if st.approver.casefold() in names:
                continue
            for pending in status.updates:
                if pending.done or st.head != pending.new or not ref_matches(policy, st.ref, pending.ref):
                    continue
                if not _eligible(policy, st.approver, pending.rules):
                    continue
                if st.approver in pending.approvers:
                    continue
                pending.approvers.add(st.approver)
                seq, node = record.get("seq"), record.get("fleet_node")
                status.reviews.append(Review(seq if isinstance(seq, int) else None, st.approver,
                                             str(upd.get("ref")), pending.ref, node if isinstance(node, str) else None))
                pending.done = _satisfied(pending, policy)


class BreakGlassTracker:
    """Streaming form of :func:`track_break_glass`: :meth:`feed` every record in log order, then read
    :attr:`statuses`. Holds only the break-glass records, never the whole log."""

    def __init__(
        self, *, policy: Policy | None = None, policy_for: Callable[[Record], Policy | None] | None = None,
        accept: Callable[[Record, dict[str, Any]], bool] | None = None,
    ) -> None:
        self.statuses: list[BreakGlassStatus] = []
        self._open: list[BreakGlassStatus] = []
        self._pick: Callable[[Record], Policy | None] = policy_for if policy_for is not None else (lambda r: policy)
        self._accept = accept

    def feed(self, record: Record) -> None:
        if self._open:
            _apply_reviews(record, self._open, self._pick, self._accept)
            self._open = [s for s in self._open if not s.reviewed]
        if is_break_glass(record):
            status = _new_status(record)
            self.statuses.append(status)
            if not status.reviewed:
                self._open.append(status)


def track_break_glass(
    records: Iterable[Record], *, policy: Policy | None = None,
    policy_for: Callable[[Record], Policy | None] | None = None,
    accept: Callable[[Record, dict[str, Any]], bool] | None = None,
) -> list[BreakGlassStatus]:
    """Every break-glass record of ``records`` (in log order) with its review status.

    Eligibility is judged under ``policy`` (or ``policy_for(break_glass_record)``, e.g. the policy the record names
    by ``config_sha256``); without one, any approval by another person reviews an update. ``accept(record,
    update)`` may veto approval evidence (``verify --approvals`` passes only what re-verified offline).

    ``records`` must be the whole log (or at least every ``push.decision`` after the first break-glass record):
    reviews are found in later records.
    """
    tracker = BreakGlassTracker(policy=policy, policy_for=policy_for, accept=accept)
    for record in records:
        tracker.feed(record)
    return tracker.statuses


def unreviewed_break_glass(log: Any, flt: Filters, *, policy: Policy | None = None, index: bool = True,
                           ) -> Iterator[Record]:
    """The break-glass records matching ``flt`` that are not (fully) reviewed yet, in log order.

    Reviews are searched in the whole log, whatever ``flt`` says (a ``--since`` must not hide a review).
    """
    from gatekeeper.audit.query import Filters as _Filters
    from gatekeeper.audit.query import query_filters

    decisions = query_filters(log, _Filters(type="push.decision"), index=index)
    for status in track_break_glass(decisions, policy=policy):
        if not status.reviewed and flt.matches(status.record):
            yield status.record
