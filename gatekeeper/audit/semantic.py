"""``audit verify --approvals``: re-verify offline that every recorded allow was justified (reference B5 item 8).

For every ``push.decision`` with ``decision: "allow"``, each allowed update of a protected ref is judged again from
the record alone plus what the auditor supplies:

* the policy in force, picked by the record's ``config_sha256`` among the policies given (a missing one is an error);
* the trust store in force, picked by the record's ``trust_store_sha256`` among the stores given (a missing one is an
  error, never a skip).

Then each recorded approval (``updates[].approvals[]``: statement and signature, written by the hook) must re-verify:
statement bytes match their hash and parse strictly; the SSH signature verifies in the policy's namespace under the
trust store, *at the record's ``ts``* (keys since expired or removed still count for the past, keys not yet valid do
not); the key's principal is the approver and a person of the policy; repository and ref match the update; not
expired and not created in the future at ``ts`` (the hook judges approvals when it starts and writes the record when
it ends, so expiry of the statement or of the key's ``valid-before`` is allowed up to the policy's
``limits.timeout_seconds`` before ``ts``); the approver is not the pusher; the approver is eligible for the
rule the approval was counted for; the statement covers the recorded paths of that rule. Each rule the update lists
then needs as many distinct valid eligible approvers as the policy demands, and every recorded path's matching
rules must be among the listed ones (the gate cannot have skipped one).

What cannot be re-checked offline: blob ids of the pushed content (the record keeps paths, not ids; the content
comparison relied on the repository at push time) and commit authorship (authors are excluded by the hook from
approving; the record does not keep the commit walk). Paths beyond the recorded 1000 per update are not checked.

Break-glass records are listed separately with their review status (:mod:`gatekeeper.audit.breakglass`); an
unreviewed one is a warning. Outcomes: a ``push.outcome`` update without a preceding non-blocked decision for the same
(repo, ref, old, new) is an error (a ref moved without the gate's consent); a landed decision without an outcome is a
warning ("not applied": the push failed after the hook, or post-receive is not installed).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gatekeeper.audit.breakglass import BreakGlassStatus, BreakGlassTracker
from gatekeeper.audit.consumption import Lifecycle
from gatekeeper.audit.policyview import RecordedApproval, pusher_person, read_evidence, ref_matches, rule_need
from gatekeeper.audit.verify import Issue
from gatekeeper.errors import AuditError, ConfigError, SignatureError

if TYPE_CHECKING:
    from gatekeeper.trust.allowed_signers import AllowedSigners
    from gatekeeper.policy.config import Policy

__all__ = ["ApprovalsReport", "BreakGlassEntry", "load_policies", "load_trust_stores", "verify_approvals",
           "verify_approvals_fleet"]

CLOCK_SKEW = timedelta(minutes=5)  # as the gate: approvals/evaluate.py CLOCK_SKEW
MAX_ISSUES = 1000  # per kind (errors, warnings): a hostile log must not flood the report
MAX_TRUST_DIR_FILES = 10_000


@dataclass(frozen=True)
class BreakGlassEntry:
    seq: int | None
    ts: str
    repo: str
    by: str
    reason: str
    reviewed: bool
    unreviewed_refs: tuple[str, ...]
    reviews: tuple[tuple[int | None, str, str], ...]  # (seq of the approval's record, person, approval ref)
    review_nodes: tuple[str | None, ...] = ()  # with --db: the node whose log holds each review's record


@dataclass(frozen=True)
class ApprovalsReport:
    """The result of :func:`verify_approvals`. ``ok`` is False iff there is an error."""

    records: int
    allows_checked: int
    errors: tuple[Issue, ...]
    warnings: tuple[Issue, ...]
    break_glass: tuple[BreakGlassEntry, ...]
    omitted: dict[str, int] = field(default_factory=dict)  # issues beyond MAX_ISSUES

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "ok": self.ok, "records": self.records, "allows_checked": self.allows_checked,
            "errors": [asdict(i) for i in self.errors], "warnings": [asdict(i) for i in self.warnings],
            "break_glass": [asdict(b) for b in self.break_glass], "omitted": dict(self.omitted),
        }
        return doc


# -- inputs -----------------------------------------------------------------------------------------------------------

def load_policies(paths: Sequence[Path]) -> dict[str, Policy]:
    """Each policy keyed by its SHA-256 (what the hook records as ``config_sha256``).

    Raises:
        ConfigError: a policy does not load (it names the trust store and log directory; they must exist).
    """
    from gatekeeper.policy.config import load_policy

    return {p.source_sha256: p for p in (load_policy(Path(path)) for path in paths)}


def load_trust_stores(
    files: Sequence[Path] = (), dirs: Sequence[Path] = (), policies: Iterable[Policy] = (),
) -> dict[str, AllowedSigners]:
    """Trust stores keyed by :meth:`AllowedSigners.sha256` (what the hook records as ``trust_store_sha256``).

    ``files`` are allowed_signers files. Each directory holds historical stores: every regular file is an
    allowed_signers file, every subdirectory with an ``allowed_signers`` (and optionally ``revoked_keys``) file is
    one store with revocations. Keys are computed from the contents, never taken from file names. The policies'
    current stores are added when they load (on the server, ``--config`` alone is enough for recent records).

    Raises:
        AuditError: a given file or directory is unreadable, or a store in it is invalid (the hook would have
            refused every approval under it, so it cannot be the store of an allowed push).
    """
    from gatekeeper.trust.allowed_signers import AllowedSigners

    stores: dict[str, AllowedSigners] = {}

    def add(path: Path, revoked: Path | None = None) -> None:
        try:
            store = AllowedSigners.load(path, revoked=revoked)
        except ConfigError as exc:
            raise AuditError(f"trust store {path}: {exc.message}",
                             hint="pass only trust stores that were in force") from None
        stores[store.sha256()] = store

    for path in files:
        add(Path(path))
    for directory in dirs:
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            raise AuditError(f"cannot read the trust-store directory {directory}: {exc.strerror or exc}") from None
        if len(entries) > MAX_TRUST_DIR_FILES:
            raise AuditError(f"{directory} holds over {MAX_TRUST_DIR_FILES} entries; is it the right directory?")
        for entry in entries:
            if entry.is_file(follow_symlinks=False):
                add(Path(entry.path))
            elif entry.is_dir(follow_symlinks=False) and os.path.isfile(os.path.join(entry.path, "allowed_signers")):
                revoked = Path(entry.path) / "revoked_keys"
                add(Path(entry.path) / "allowed_signers", revoked if revoked.is_file() else None)
    for policy in policies:
        try:
            store = AllowedSigners.load(policy.trust.allowed_signers, revoked=policy.trust.revoked_keys)
        except ConfigError:
            continue  # not usable now; records that name it report it as missing
        stores.setdefault(store.sha256(), store)
    return stores


# -- the check --------------------------------------------------------------------------------------------------------

class _Collector:
    def __init__(self) -> None:
        self.errors: list[Issue] = []
        self.warnings: list[Issue] = []
        self.omitted: dict[str, int] = defaultdict(int)

    def _add(self, bucket: list[Issue], kind: str, issue: Issue) -> None:
        if len(bucket) >= MAX_ISSUES:
            self.omitted[kind] += 1
        else:
            bucket.append(issue)

    def error(self, code: str, message: str, seq: int | None) -> None:
        self._add(self.errors, "errors", Issue(code, message, None, seq))

    def warn(self, code: str, message: str, seq: int | None) -> None:
        self._add(self.warnings, "warnings", Issue(code, message, None, seq))


def _seq(record: Mapping[str, Any]) -> int | None:
    seq = record.get("seq")
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else None


def _updates(event: Mapping[str, Any]) -> list[dict[str, Any]]:
    updates = event.get("updates")
    return [u for u in updates if isinstance(u, dict)] if isinstance(updates, list) else []


def _strs(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _parse_ts(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


class _Checker:
    def __init__(self, policies: Mapping[str, Policy], stores: Mapping[str, AllowedSigners]) -> None:
        self.policies = policies
        self.stores = stores
        self.out = _Collector()
        self.allows = 0
        self.bad_pushed: set[tuple[int | None, str]] = set()  # approval refs whose evidence did not re-verify
        self.lifecycle = Lifecycle()  # approvals consumed or withdrawn by earlier landed pushes

    # -- one allow ---------------------------------------------------------------------------------------------------

    def decision(self, record: Mapping[str, Any], event: Mapping[str, Any]) -> None:
        self._decision(record, event)
        if event.get("blocked") is False:
            self.lifecycle.landed(_seq(record), event)

    def _decision(self, record: Mapping[str, Any], event: Mapping[str, Any]) -> None:
        seq = _seq(record)
        verdict = event.get("decision")
        updates = _updates(event)
        if verdict == "deny" and event.get("blocked") is False and any(u.get("decision") == "deny" for u in updates):
            self.out.warn("monitor-deny", "denied updates landed (monitor mode): "
                          + ", ".join(str(u.get("ref")) for u in updates if u.get("decision") == "deny"), seq)
        if event.get("blocked") is False:
            for upd in updates:
                if "approval" in upd:
                    self.pushed_approval(record, event, upd)
        if verdict not in ("allow", "break-glass"):
            return
        sha = event.get("config_sha256")
        policy = self.policies.get(sha) if isinstance(sha, str) else None
        if policy is None:
            self.out.error("policy-missing", f"{verdict} under policy {sha}, which was not given: cannot re-verify",
                           seq)
            return
        if verdict == "break-glass":
            # Justified by break-glass for the updates the gate denied; those it allowed must stand on their own.
            self.break_glass(record, event, policy)
        else:
            self.allows += 1
            denied = [str(u.get("ref")) for u in updates if u.get("decision") != "allow"]
            if denied:
                self.out.error("unjustified", f"the decision is allow but updates are not: {', '.join(denied)}", seq)
        ts = _parse_ts(record.get("ts"))
        if ts is None:
            self.out.error("unjustified", f"the record's ts {record.get('ts')!r} is not a time", seq)
            return
        for upd in updates:
            self.update(seq, ts, event, upd, policy)

    def pushed_approval(self, record: Mapping[str, Any], event: Mapping[str, Any], upd: Mapping[str, Any]) -> None:
        """An approval ref this landed push created (what reviews break-glass changes): its evidence must re-verify
        like a used approval's, minus the push-specific checks (it approves a future or past push, not this one)."""
        seq = _seq(record)
        ref = str(upd.get("ref"))
        why = self._pushed_why_not(record, event, upd)
        if why is not None:
            self.bad_pushed.add((seq, ref))
            self.out.error("bad-approval", f"{ref}: stored approval: {why}", seq)

    def _pushed_why_not(self, record: Mapping[str, Any], event: Mapping[str, Any], upd: Mapping[str, Any],
                        ) -> str | None:
        sha = event.get("config_sha256")
        policy = self.policies.get(sha) if isinstance(sha, str) else None
        if policy is None:
            return f"recorded under policy {sha}, which was not given: cannot re-verify"
        tsha = event.get("trust_store_sha256")
        store = self.stores.get(tsha) if isinstance(tsha, str) else None
        if store is None:
            return f"recorded under trust store {tsha}, which was not given: cannot re-verify"
        ts = _parse_ts(record.get("ts"))
        if ts is None:
            return f"the record's ts {record.get('ts')!r} is not a time"
        try:
            approval = read_evidence(upd.get("approval"))
        except AuditError as exc:
            return exc.message
        st = approval.statement
        if not str(upd.get("ref")).endswith(f"/{st.approver}/{st.nonce}"):
            return f"the ref does not name the statement's approver and nonce ({st.approver}/{st.nonce})"
        if st.repository != event.get("repo"):
            return f"for repository {st.repository}, not {event.get('repo')}"
        try:
            verified = _verify_during(store, approval, policy, ts)
        except SignatureError as exc:
            return f"signature not accepted at {record_time(ts)}: {exc.message}"
        if st.approver not in verified.principals:
            return f"signed with a key of {', '.join(verified.principals) or 'nobody'}, not of {st.approver}"
        if st.approver not in policy.people:
            return f"{st.approver} is not a person in the policy"
        return None

    def break_glass(self, record: Mapping[str, Any], event: Mapping[str, Any], policy: Policy) -> None:
        """Justified by break-glass only if the pusher was in the policy's break_glass group, with a reason."""
        seq = _seq(record)
        info = event.get("break_glass")
        pusher = event.get("pusher")
        user = pusher.get("user") if isinstance(pusher, dict) else None
        if not isinstance(info, dict) or not str(info.get("reason", "")).strip():
            self.out.error("unjustified", "break-glass without a recorded reason", seq)
        elif info.get("by") != user:
            self.out.error("unjustified", f"break-glass recorded as by {info.get('by')!r}, pushed by {user!r}", seq)
        if (not isinstance(user, str) or (isinstance(pusher, dict) and pusher.get("deploy_key") is not False)
                or not policy.may_break_glass(policy.person_for_account(user) or "")):
            self.out.error("unjustified", f"break-glass by {user!r}, who is not in the policy's break_glass list "
                           "(or is a deploy key)", seq)

    def update(self, seq: int | None, ts: datetime, event: Mapping[str, Any], upd: Mapping[str, Any],
               policy: Policy) -> None:
        ref = str(upd.get("ref"))
        if upd.get("decision") != "allow":
            return
        if upd.get("protected") is not True:
            if policy.is_protected_ref(ref) and upd.get("kind") != "noop":
                self.out.error("unjustified", f"{ref}: recorded as unprotected, but the policy protects it", seq)
            return
        rules = _strs(upd.get("rules"))
        paths = _strs(upd.get("paths"))
        # Every rule matching a recorded path must have been applied.
        for path in paths:
            for rule in policy.rules_for(path.encode("utf-8", "surrogateescape")):
                if rule.name not in rules:
                    self.out.error("unjustified", f"{ref}: {path} matches rule {rule.name}, which the record does "
                                   "not list", seq)
                    rules.append(rule.name)  # report once, and demand its approvals below
        from gatekeeper.push.gate import HISTORY_RULE

        if upd.get("kind") in ("delete", "force") and HISTORY_RULE not in rules:
            self.out.error("unjustified", f"{ref}: a {upd.get('kind')} of a protected ref without the "
                           f"{HISTORY_RULE} requirement", seq)
            rules.append(HISTORY_RULE)
        if not rules:
            return
        evidence = upd.get("approvals")
        evidence_list = evidence if isinstance(evidence, list) else []
        store: AllowedSigners | None = None
        if evidence_list:
            tsha = event.get("trust_store_sha256")
            store = self.stores.get(tsha) if isinstance(tsha, str) else None
            if store is None:
                if not isinstance(tsha, str):
                    self.out.error("unjustified", f"{ref}: approvals recorded without trust_store_sha256", seq)
                else:
                    self.out.error("trust-store-missing", f"{ref}: approvals under trust store {tsha}, which was "
                                   "not given: cannot re-verify", seq)
                return
        pusher = pusher_person(policy, event.get("pusher"))
        truncated = not isinstance(upd.get("paths_total"), int) or upd["paths_total"] > len(paths)
        valid: list[tuple[str, str | None]] = []
        for item in evidence_list:
            try:
                approval = read_evidence(item)
            except AuditError as exc:
                self.out.error("bad-approval", f"{ref}: recorded approval: {exc.message}", seq)
                continue
            assert store is not None
            why = self._why_not(approval, ts, event, ref, rules, paths, truncated, policy, store, pusher) \
                or self.lifecycle.why_not(item, ref, seq)
            if why is not None:
                self.out.error("bad-approval", f"{ref}: approval by {approval.person} does not count: {why}", seq)
                continue
            valid.append((approval.person, approval.rule))
        for name in rules:
            need = rule_need(policy, name)
            people = {p for p, r in valid if (r is None or r == name) and p in need.reviewers}
            if len(people) < need.needed:
                who = ", ".join(sorted(people)) or "none"
                self.out.error("unjustified", f"{ref}: rule {name} needs {need.needed} approval(s), "
                               f"{len(people)} re-verified ({who})", seq)

    def _why_not(
        self, approval: RecordedApproval, ts: datetime, event: Mapping[str, Any], ref: str, rules: list[str],
        paths: list[str], truncated: bool, policy: Policy, store: AllowedSigners, pusher: str | None,
    ) -> str | None:
        from gatekeeper.approvals.statement import format_time

        st = approval.statement
        if st.repository != event.get("repo"):
            return f"for repository {st.repository}, not {event.get('repo')}"
        if not ref_matches(policy, st.ref, ref):
            return f"for {st.ref}, not {ref}"
        if ts - _decision_window(policy) >= st.expires:
            return f"expired at {format_time(st.expires)}, before the push"
        if st.created > ts + CLOCK_SKEW:
            return f"created at {format_time(st.created)}, after the push"
        try:
            verified = _verify_during(store, approval, policy, ts)
        except SignatureError as exc:
            return f"signature not accepted at {record_time(ts)}: {exc.message}"
        if st.approver not in verified.principals:
            return f"signed with a key of {', '.join(verified.principals) or 'nobody'}, not of {st.approver}"
        if st.approver not in policy.people:
            return f"{st.approver} is not a person in the policy"
        if pusher is not None and st.approver == pusher:
            return "is the pusher"
        counted = [approval.rule] if approval.rule is not None else rules
        if approval.rule is not None and approval.rule not in rules:
            return f"counted for rule {approval.rule}, which the update does not list"
        eligible = [name for name in counted if st.approver in rule_need(policy, name).reviewers]
        if not eligible:
            return f"{st.approver} may not approve under {', '.join(counted)}"
        for name in eligible:
            gap = _coverage_gap(policy, name, st, paths, truncated)
            if gap:
                return gap
        return None


def _decision_window(policy: Policy) -> timedelta:
    """How long before its ``ts`` a record's decision may have been taken: the hook judges approvals at its start and
    appends the record at its end, at most ``limits.timeout_seconds`` later (the hook's deadline)."""
    return timedelta(seconds=float(policy.limits.timeout_seconds))


def _verify_during(store: AllowedSigners, approval: RecordedApproval, policy: Policy, ts: datetime) -> Any:
    """Verify at ``ts``; if the key was not trusted then, at the start of the decision window (a key whose
    ``valid-before`` passed while the hook ran was trusted when the hook checked it)."""
    from gatekeeper.errors import UntrustedSignature

    try:
        return store.verify(approval.signature, approval.statement_bytes, namespace=policy.trust.namespace, now=ts)
    except UntrustedSignature:
        try:
            return store.verify(approval.signature, approval.statement_bytes, namespace=policy.trust.namespace,
                                now=ts - _decision_window(policy))
        except SignatureError:
            pass
        raise


def record_time(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def _coverage_gap(policy: Policy, rule_name: str, st: Any, paths: list[str], truncated: bool) -> str:
    """Compare the statement's paths with the recorded paths under one rule (paths only: ids are not recorded)."""
    from gatekeeper.push.gate import HISTORY_RULE
    from gatekeeper.model import display_path

    if rule_name == HISTORY_RULE:
        def keep(path: str) -> bool:
            return True
    else:
        try:
            rule = policy.rule(rule_name)
        except KeyError:
            return ""  # a content requirement: its paths are not recorded per rule

        def keep(path: str) -> bool:
            return rule.matches(path.encode("utf-8", "surrogateescape"))
    approved = {display_path(c.path) for c in st.changes}
    recorded = {p for p in paths if keep(p)}
    missing = sorted(recorded - approved)
    if missing:
        return f"does not cover {missing[0]}" + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")
    if not truncated:
        extra = sorted(p for p in approved - set(paths) if keep(p))
        if extra:
            return f"approves {extra[0]}, which the push did not change under rule {rule_name}"
    return ""


# -- outcomes ---------------------------------------------------------------------------------------------------------

class _Outcomes:
    """Pair each ``push.outcome`` update with an earlier landed decision's update (by repo, ref, old, new)."""

    def __init__(self, out: _Collector) -> None:
        self.out = out
        self.landed: dict[tuple[object, ...], list[int | None]] = defaultdict(list)
        self.blocked: set[tuple[object, ...]] = set()

    def decision(self, record: Mapping[str, Any], event: Mapping[str, Any]) -> None:
        seq = _seq(record)
        for upd in _updates(event):
            key = (event.get("repo"), upd.get("ref"), upd.get("old"), upd.get("new"))
            if upd.get("old") == upd.get("new"):
                continue  # post-receive does not list no-op updates
            if event.get("blocked") is False:
                self.landed[key].append(seq)
            else:
                self.blocked.add(key)

    def outcome(self, record: Mapping[str, Any], event: Mapping[str, Any]) -> None:
        seq = _seq(record)
        if "error" in event:
            self.out.warn("outcome-error", "post-receive could not record the updates: "
                          + str(event.get("error"))[:200], seq)
        for upd in _updates(event):
            key = (event.get("repo"), upd.get("ref"), upd.get("old"), upd.get("new"))
            pending = self.landed.get(key)
            if pending:
                pending.pop(0)
                if not pending:
                    del self.landed[key]  # memory stays bounded by the decisions still waiting for an outcome
                continue
            how = " (only a refused decision matches)" if key in self.blocked else ""
            self.out.error("outcome-without-decision", f"{upd.get('ref')} {upd.get('old')}..{upd.get('new')} was "
                           f"updated without a decision that allowed it{how}", seq)

    def finish(self) -> None:
        for key, seqs in self.landed.items():
            for seq in seqs:
                self.out.warn("not-applied", f"{key[1]} {key[2]}..{key[3]}: no push.outcome recorded (not applied, "
                              "or post-receive is not installed)", seq)


# -- public -----------------------------------------------------------------------------------------------------------

def verify_approvals(
    records: Iterable[Mapping[str, Any]], *, policies: Mapping[str, Policy], stores: Mapping[str, AllowedSigners],
) -> ApprovalsReport:
    """Judge every allow, pair outcomes with decisions and list break-glass records (module docstring).

    ``records`` is the whole log in order (``query()`` without filters); structural checks are ``verify_log``'s job.
    """
    checker = _Checker(policies, stores)

    def accept(record: Mapping[str, Any], upd: Mapping[str, Any]) -> bool:
        return (_seq(record), str(upd.get("ref"))) not in checker.bad_pushed

    tracker = BreakGlassTracker(policy_for=_policy_picker(policies), accept=accept)
    count = _judge(records, checker, tracker.feed)
    return _report(checker, count, tracker.statuses)


def verify_approvals_fleet(
    nodes: Mapping[str, Callable[[], Iterable[Mapping[str, Any]]]], *, policies: Mapping[str, Policy],
    stores: Mapping[str, AllowedSigners],
) -> dict[str, ApprovalsReport]:
    """:func:`verify_approvals` for the logs of several nodes serving the same repositories (``--db``).

    Each node's allows and outcomes are judged on its own log, but a break-glass push on one node is reviewed by an
    approval pushed through any node (as ``audit query --break-glass --unreviewed --db`` finds it): the nodes'
    decisions are merged by time and fed to one tracker, with the approvals a node's own pass found bad left out.
    ``nodes`` maps a node to a function that streams its records in log order (called twice: the log is never held).
    """
    import heapq

    checkers: dict[str, _Checker] = {}
    counts: dict[str, int] = {}
    for node, stream in nodes.items():
        checkers[node] = _Checker(policies, stores)
        counts[node] = _judge(stream(), checkers[node], lambda record: None)

    current = [""]  # the node of the record being fed: bad evidence is judged per node

    def accept(record: Mapping[str, Any], upd: Mapping[str, Any]) -> bool:
        return (_seq(record), str(upd.get("ref"))) not in checkers[current[0]].bad_pushed

    def decisions(node: str) -> Iterator[tuple[tuple[str, str, int], Mapping[str, Any]]]:
        for i, record in enumerate(nodes[node]()):
            event = record.get("event")
            if isinstance(event, dict) and event.get("type") == "push.decision":
                ts = record.get("ts")
                yield (ts if isinstance(ts, str) else "", node, i), record

    tracker = BreakGlassTracker(policy_for=_policy_picker(policies), accept=accept)
    origin: list[str] = []  # the node of each tracked break-glass record, in tracker.statuses order
    for (_, node, _), record in heapq.merge(*(decisions(n) for n in nodes), key=lambda item: item[0]):
        current[0] = node
        tracker.feed({**record, "fleet_node": node})
        origin.extend(node for _ in range(len(tracker.statuses) - len(origin)))
    by_node: dict[str, list[BreakGlassStatus]] = {node: [] for node in nodes}
    for node, status in zip(origin, tracker.statuses):
        by_node[node].append(status)
    return {node: _report(checkers[node], counts[node], by_node[node]) for node in nodes}


def _policy_picker(policies: Mapping[str, Policy]) -> Callable[[Mapping[str, Any]], Policy | None]:
    def policy_for(record: Mapping[str, Any]) -> Policy | None:
        sha = record.get("event", {}).get("config_sha256")
        return policies.get(sha) if isinstance(sha, str) else None

    return policy_for


def _judge(records: Iterable[Mapping[str, Any]], checker: _Checker,
           on_decision: Callable[[dict[str, Any]], None]) -> int:
    """One pass over a node's log: allows re-judged, outcomes paired; every decision also goes to ``on_decision``
    (after the checker, which decides which stored approvals re-verified). Returns the number of records."""
    outcomes = _Outcomes(checker.out)
    count = 0
    for record in records:
        count += 1
        event = record.get("event")
        if not isinstance(event, dict):
            continue
        kind = event.get("type")
        if kind == "push.decision":
            checker.decision(record, event)
            outcomes.decision(record, event)
            on_decision(dict(record))
        elif kind == "push.outcome":
            outcomes.outcome(record, event)
    outcomes.finish()
    return count


def _report(checker: _Checker, count: int, statuses: Iterable[BreakGlassStatus]) -> ApprovalsReport:
    entries = tuple(_entry(s) for s in statuses)
    for entry in entries:
        if not entry.reviewed:
            checker.out.warn("break-glass-unreviewed", f"break-glass by {entry.by} ({entry.reason!r}) on "
                             f"{', '.join(entry.unreviewed_refs)} has no approval recorded after the fact", entry.seq)
    out = checker.out
    return ApprovalsReport(count, checker.allows, tuple(out.errors), tuple(out.warnings), entries, dict(out.omitted))


def _entry(status: BreakGlassStatus) -> BreakGlassEntry:
    event = status.record.get("event")
    event = event if isinstance(event, dict) else {}
    return BreakGlassEntry(
        seq=status.seq, ts=str(status.record.get("ts")), repo=str(event.get("repo")), by=status.by,
        reason=status.reason, reviewed=status.reviewed, unreviewed_refs=status.unreviewed_refs,
        reviews=tuple((r.seq, r.person, r.approval_ref) for r in status.reviews),
        review_nodes=tuple(r.node for r in status.reviews) if any(r.node for r in status.reviews) else (),
    )
