"""What the auditor's policy says about one recorded rule, and approval evidence read back from a record.

Shared by ``audit query --break-glass --unreviewed`` (:mod:`gatekeeper.audit.breakglass`) and ``audit verify
--approvals`` (:mod:`gatekeeper.audit.semantic`): both judge recorded approvals against a policy the auditor supplies,
never against what the record claims about itself.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gatekeeper.errors import AuditError

if TYPE_CHECKING:
    from gatekeeper.approvals.statement import Statement
    from gatekeeper.policy.config import Policy

__all__ = ["RecordedApproval", "RuleNeed", "pusher_person", "read_evidence", "ref_matches", "rule_need"]


@dataclass(frozen=True)
class RuleNeed:
    """How many approvals a rule needs and from whom, per the auditor's policy."""

    rule: str
    needed: int
    reviewers: frozenset[str]
    builtin: bool  # a gate-imposed requirement (history rewrite, remote code, ...), not a policy rule


@functools.lru_cache(maxsize=4096)  # policies hash by identity; a log repeats the same few rules
def rule_need(policy: Policy, name: str) -> RuleNeed:
    """The policy's rule ``name``; any other name is a built-in requirement (as in gate.builtin_requirement: the
    strictest rule's count, from anyone who may approve under some rule)."""
    try:
        rule = policy.rule(name)
    except KeyError:
        from gatekeeper.push.gate import builtin_requirement

        req = builtin_requirement(policy, name, (), "")
        return RuleNeed(name, req.approvals, req.reviewers, True)
    return RuleNeed(name, int(rule.approvals), policy.reviewers_of(rule), False)


def pusher_person(policy: Policy | None, pusher: object) -> str | None:
    """The person who pushed (None for deploy keys and unmapped accounts; without a policy: the account name)."""
    if not isinstance(pusher, dict) or pusher.get("deploy_key") is True:
        return None
    user = pusher.get("user")
    if not isinstance(user, str):
        return None
    if policy is None:
        return user
    return policy.person_for_account(user)


def ref_matches(policy: Policy | None, approved: str, ref: str) -> bool:
    """Whether a statement's ``ref`` (a ref or a pattern) covers ``ref`` (as the gate's evaluator decides)."""
    if not any(ch in approved for ch in "*?["):
        return approved == ref
    from gatekeeper.policy.pathmatch import RefMatcher

    case_insensitive = policy.matching.case_insensitive if policy is not None else False
    return RefMatcher([approved], case_insensitive=case_insensitive).match(ref)


@dataclass(frozen=True)
class RecordedApproval:
    """One approval's evidence as stored in a record: statement bytes (hash-checked), parsed statement, signature."""

    person: str
    rule: str | None
    statement_bytes: bytes
    statement: Statement
    signature: str


def read_evidence(evidence: object) -> RecordedApproval:
    """Parse one ``updates[].approvals[]`` (or ``updates[].approval``) entry strictly.

    Raises:
        AuditError: not an object, no statement (too big to record, or omitted), hash mismatch, malformed statement,
            no signature.
    """
    from gatekeeper.approvals.statement import MalformedApproval, parse_statement

    if not isinstance(evidence, Mapping):
        raise AuditError("the approval evidence is not an object")
    ev: Mapping[str, Any] = evidence
    text = ev.get("statement")
    if not isinstance(text, str):
        omitted = ev.get("statement_omitted")
        raise AuditError("the statement is not in the record" + (f" ({omitted})" if isinstance(omitted, str) else "")
                         + "; it cannot be re-verified offline")
    try:
        data = text.encode("ascii")
    except UnicodeEncodeError:
        raise AuditError("the recorded statement is not ASCII") from None
    digest = ev.get("statement_sha256")
    if digest is not None and digest != hashlib.sha256(data).hexdigest():
        raise AuditError("the recorded statement does not match its recorded statement_sha256")
    try:
        statement = parse_statement(data)
    except MalformedApproval as exc:
        raise AuditError(f"the recorded statement is malformed: {exc.message}") from None
    signature = ev.get("signature")
    if not isinstance(signature, str) or not signature:
        raise AuditError("the approval evidence has no signature")
    person = ev.get("person")
    if person != statement.approver:
        raise AuditError(f"the evidence names {person!r} but the statement's approver is {statement.approver}")
    rule = ev.get("rule")
    return RecordedApproval(statement.approver, rule if isinstance(rule, str) else None, data, statement, signature)
