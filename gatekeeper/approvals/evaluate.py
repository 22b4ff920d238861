"""The approval side of the gate: which stored and pushed approvals count for a requirement, and which approval refs a
push may create (DESIGN.md invariant 2; reference A7).

An approval counts for a requirement (one rule on one ref update) only if all of these hold, checked cheapest first:

1. its statement is for this repository and this ref (or a ref pattern matching it);
2. it has not expired at the server's current time (and was not made in the future);
3. its change set projected onto the rule's paths equals the pushed change set projected onto them, entry by entry
   (path, both modes, both ids): so it survives a rebase, squash or web merge exactly when the protected content is
   identical, and dies on a one-byte difference;
4. its signature verifies in-process, in the gate's namespace, under a key that ``allowed_signers`` trusts *now* and
   that is not revoked; the key's principal is the statement's ``approver`` (identity comes from the key);
5. that person is among the rule's reviewers, is not the pusher, and did not author, commit or sign any pushed commit
   that changes one of the rule's changed paths (commit emails mapped to people through the policy, plus the people
   whose trusted keys signed the commit: :mod:`gatekeeper.approvals.authorship`);
6. each person counts once, however many keys or approvals they used;
7. it was not used up on this ref by an earlier push that landed, nor withdrawn (the hook's ledger,
   :mod:`gatekeeper.approvals.ledger`, is where the hook finds candidates at all: only live approvals for this ref and
   these paths are read).

Approvals that fail are explained in ``ApprovalResult.notes`` ("approval by alice (is the pusher)") when they are
relevant to the change (they touch one of its protected paths, or name its new tip), so old approvals for other
changes do not drown the message.

The approvals namespace is append-only: a push that deletes or rewrites an approval ref, or creates one that is
malformed, for another repository, or not signed by a trusted key of its approver, is refused as a whole
(:attr:`Approvals.refusal`), in monitor mode and with break-glass too: the store of evidence is not part of a
rollout; withdrawals (``refs/gatekeeper/withdrawals/``) likewise. Only people who review under some rule may store
approvals, only for protected refs, a bounded number per person and ref (``approvals.max_live_per_person``). Expired,
used and withdrawn approvals stay as refs (they are the record) but are no longer read. Stored approvals that are
malformed, or that did not pass the gate (written on the server), never count.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from gatekeeper.push.analysis import LimitExceeded, RefAnalysis, is_withdrawal_ref
from gatekeeper.approvals.ledger import Ledger, LedgerUpdate
from gatekeeper.approvals.statement import MAX_STATEMENT_BYTES, MalformedApproval, format_time, project
from gatekeeper.approvals.store import StoredApproval, is_approval_ref, read_approval, stored_approval_refs
from gatekeeper.errors import GitAccessError, SignatureError
from gatekeeper.push.gate import HISTORY_RULE, ApprovalResult, Requirement
from gatekeeper.model import MODE_ABSENT, Change, Identity, ObjectId, RefUpdate, UpdateKind, display_path, is_null

if TYPE_CHECKING:
    from gatekeeper.trust.allowed_signers import AllowedSigners
    from gatekeeper.push.gitrepo import Repo
    from gatekeeper.policy.config import Policy

__all__ = ["Approvals", "load_evaluator"]

CLOCK_SKEW = timedelta(minutes=5)  # a statement "created" this far ahead of the server clock is still accepted
MAX_AUTHOR_COMMITS = 10_000  # commits walked to find authors of protected changes; more -> approvals do not count
MAX_STATEMENT_IN_RECORD = MAX_STATEMENT_BYTES  # every statement is recorded whole: offline re-verification needs it
MAX_PATHS_IN_NOTE = 2
# Without a ledger (`gatekeeper check` in a clone) every fetched approval is read. Past this many statement bytes it
# refuses rather than judging on a partial view.
MAX_STORED_STATEMENT_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class _Checked:
    """The signature check of one approval, done once per push."""

    person: str | None
    problem: str | None
    evidence: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class _Authorship:
    # (commit, people, paths it changes, whether a trusted key signed it)
    commits: tuple[tuple[ObjectId, frozenset[str], frozenset[bytes], bool], ...]
    overflow: bool


class Approvals:
    """The gate's :class:`~gatekeeper.push.gate.ApprovalEvaluator` for one push; build it with :func:`load_evaluator`.
    """

    def __init__(
        self,
        *,
        repo: Repo,
        policy: Policy,
        repository: str,
        pusher: Identity,
        now: datetime,
        pending: Sequence[StoredApproval] = (),
        refusals: Sequence[str] = (),
        trust: AllowedSigners | None = None,
        verify_signatures: bool = True,
        ledger: Ledger | None = None,
    ) -> None:
        self._repo = repo
        self._policy = policy
        self._repository = repository
        self._pusher_person = None if pusher.is_deploy_key else policy.person_for_account(pusher.user)
        self._now = now
        self._pending = list(pending)
        self._refusals = list(refusals)
        self._trust = trust
        # Only `gatekeeper check` in a clone without the trust store turns this off; the hook never does.
        self._verify = verify_signatures
        self._stored: list[StoredApproval] | None = None
        self._unreadable: list[str] = []
        self._checked: dict[str, _Checked] = {}
        self._authorship: dict[str, _Authorship] = {}
        # The hook's ledger of live approvals (None in a clone: `gatekeeper check` reads the fetched refs instead).
        self._ledger = ledger
        self._consumed_on: dict[str, dict[str, int | None]] = {}  # commit -> refs it is used up on (pattern approvals)
        self.ledger_update = LedgerUpdate()
        self.withdrawn: dict[str, dict[str, object]] = {}  # withdrawal ref -> audit evidence
        self.consumed: dict[str, set[str]] = {}  # ref -> approval refs this push uses up there if it lands

    # -- what the hook reads ---------------------------------------------------------------------------------------

    @property
    def refusal(self) -> str | None:
        """Why this push is refused regardless of the decision (bad or rewritten approval refs), else None."""
        if not self._refusals:
            return None
        return "; ".join(self._refusals)

    @property
    def trust_store_sha256(self) -> str | None:
        """SHA-256 of the trust store in force, once it was needed (None when no signature was checked)."""
        return self._trust.sha256() if self._trust is not None else None

    def pushed_evidence(self) -> list[dict[str, object]]:
        """Audit evidence (as in ``updates[].approvals``) of each approval this push creates; all were verified."""
        return [self._check(a).evidence for a in self._pending]

    # -- the ApprovalEvaluator protocol ----------------------------------------------------------------------------

    def evaluate(self, requirement: Requirement, analysis: RefAnalysis) -> ApprovalResult:
        keep = self._keeper(requirement)
        pushed = {c.path: c for c in requirement.changes}
        approvers: set[str] = set()
        used: list[dict[str, object]] = []
        notes: list[tuple[str, str]] = []  # (person named in the approval, note)
        unsigned = self._unsigned(pushed.keys(), analysis)
        if unsigned is not None:
            return ApprovalResult(notes=(unsigned,))
        candidates, dead = self._candidates(analysis.update.ref, pushed.keys())
        notes.extend((person, f"approval by {person} ({why})") for person, why in dead)
        for approval in candidates:
            st = approval.statement
            approved = project(st.changes, keep)
            if st.approver in approvers:
                # A person counts once; their other approvals of this same content are used up with it, or a
                # second copy would let the content land again after a revert.
                if approved == pushed and self._ref_matches(st.ref, analysis.update.ref):
                    self._consume(approval, analysis.update.ref)
                continue
            if not (approved.keys() & pushed.keys()) and st.head != analysis.new_target:
                continue  # about something else entirely: not worth a note
            why = self._why_not(approval, approved, pushed, requirement, analysis)
            if why is not None:
                notes.append((st.approver, f"approval by {st.approver} ({why})"))
                continue
            checked = self._check(approval)
            approvers.add(st.approver)
            used.append(checked.evidence)
            self._consume(approval, analysis.update.ref)
        shown = tuple(text for person, text in notes if person not in approvers)
        return ApprovalResult(approvers=frozenset(approvers), notes=tuple(dict.fromkeys(shown)), used=tuple(used))

    def _consume(self, approval: StoredApproval, ref: str) -> None:
        """Used up on ``ref`` if this push lands (the hook records and applies it only then)."""
        self.ledger_update.consume.append((approval.commit, ref))
        self.consumed.setdefault(ref, set()).add(approval.ref)

    def _why_not(
        self,
        approval: StoredApproval,
        approved: dict[bytes, Change],
        pushed: dict[bytes, Change],
        requirement: Requirement,
        analysis: RefAnalysis,
    ) -> str | None:
        st = approval.statement
        if st.repository != self._repository:
            return f"for repository {st.repository}, not {self._repository}"
        if not self._ref_matches(st.ref, analysis.update.ref):
            return f"for {st.ref}, not {analysis.update.ref}"
        if self._now >= st.expires:
            self.ledger_update.expired.add(approval.commit)
            return f"expired at {format_time(st.expires)}"
        used_on = self._consumed_on.get(approval.commit, {})
        if analysis.update.ref in used_on:
            seq = used_on[analysis.update.ref]
            return f"already used on {analysis.update.ref}" + (f" (audit record #{seq})" if seq is not None else "")
        if st.created > self._now + CLOCK_SKEW:
            return f"created in the future, at {format_time(st.created)}"
        difference = content_difference(approved, pushed)
        if difference:
            return f"covers different content: {difference}"
        checked = self._check(approval)
        if checked.problem is not None:
            return checked.problem
        person = checked.person
        assert person is not None
        if person not in requirement.reviewers:
            return f"is not among {', '.join(requirement.reviewer_spec) or 'the reviewers'}"
        if person == self._pusher_person:
            return "is the pusher"
        authored = self._authored(person, pushed.keys(), analysis)
        if authored:
            return authored
        return None

    # -- pieces ----------------------------------------------------------------------------------------------------

    def _keeper(self, requirement: Requirement) -> Callable[[bytes], bool]:
        """What "protected paths" means for this requirement: the rule's patterns, every path for the history rule,
        else (requirements added by other checks) exactly the paths that made it apply."""
        if requirement.rule == HISTORY_RULE:
            return lambda path: True
        try:
            rule = self._policy.rule(requirement.rule)
        except KeyError:
            paths = frozenset(c.path for c in requirement.changes)
            return paths.__contains__
        return rule.matches

    def _ref_matches(self, approved: str, ref: str) -> bool:
        if not any(ch in approved for ch in "*?["):
            return approved == ref
        from gatekeeper.policy.pathmatch import RefMatcher

        return RefMatcher([approved], case_insensitive=self._policy.matching.case_insensitive).match(ref)

    def _candidates(self, ref: str, paths: Collection[bytes]) -> tuple[list[StoredApproval], list[tuple[str, str]]]:
        """The approvals that may be about ``paths`` (stored and pushed now), and (person, why) for indexed ones that
        stopped counting. The hook asks its ledger (cost independent of how many approvals are stored); a clone
        reads every fetched approval ref."""
        pending = list(self._pending)
        if self._ledger is None:
            return self._all_stored() + pending, []
        live, dead = self._ledger.live_for_paths(ref, paths, self._ref_matches)
        stored: list[StoredApproval] = []
        for entry in sorted(live, key=lambda e: e.approval_ref):
            try:
                stored.append(read_approval(self._repo, entry.approval_ref, entry.commit))
            except MalformedApproval:
                self.ledger_update.gone.add(entry.commit)
                continue
            if entry.consumed_on:
                self._consumed_on[entry.commit] = entry.consumed_on
        return stored + pending, dead

    def _all_stored(self) -> list[StoredApproval]:
        if self._stored is None:
            stored: list[StoredApproval] = []
            total = 0
            for ref, target in stored_approval_refs(self._repo):
                try:
                    approval = read_approval(self._repo, ref, target)
                except MalformedApproval as exc:
                    # Stored before the gate was installed, or written on the server: it never counts.
                    self._unreadable.append(exc.message)
                    continue
                total += len(approval.statement_bytes)
                if total > MAX_STORED_STATEMENT_BYTES:
                    raise LimitExceeded(
                        f"the stored approvals exceed {MAX_STORED_STATEMENT_BYTES >> 20} MiB of statements",
                        hint="an admin should archive expired approvals on the server (delete their refs there)",
                    )
                stored.append(approval)
            self._stored = stored
        return self._stored

    @property
    def ledger(self) -> Ledger | None:
        return self._ledger

    def trust(self) -> AllowedSigners:
        if self._trust is None:
            from gatekeeper.trust.allowed_signers import AllowedSigners

            self._trust = AllowedSigners.load(self._policy.trust.allowed_signers,
                                              revoked=self._policy.trust.revoked_keys)
        return self._trust

    def _check(self, approval: StoredApproval) -> _Checked:
        cached = self._checked.get(approval.commit)
        if cached is None and not self._verify:
            cached = self._checked[approval.commit] = _Checked(
                approval.statement.approver, None, {"ref": approval.ref, "person": approval.statement.approver,
                                                    "signature_verified": False})
        if cached is None:
            cached = self._checked[approval.commit] = check_signature(
                approval, self.trust(), namespace=self._policy.trust.namespace, now=self._now,
                people=frozenset(self._policy.people),
            )
        return cached

    def _authorship_of(self, analysis: RefAnalysis) -> _Authorship:
        info = self._authorship.get(analysis.update.ref)
        if info is None:
            info = self._authorship[analysis.update.ref] = self._walk(analysis)
        return info

    def _authored(self, person: str, protected: Collection[bytes], analysis: RefAnalysis) -> str | None:
        info = self._authorship_of(analysis)
        if info.overflow:
            return f"the push has over {MAX_AUTHOR_COMMITS} new commits; their authors could not be checked"
        for commit, people, paths, _ in info.commits:
            if person in people and not paths.isdisjoint(protected):
                return f"authored, committed or signed {commit[:12]}, which changes a protected path"
        return None

    def _unsigned(self, protected: Collection[bytes], analysis: RefAnalysis) -> str | None:
        """With ``approvals.require_signed_commits``: why no approval can count (a pushed commit that changes a
        protected path carries no signature by a trusted key), else None."""
        if not self._policy.approvals.require_signed_commits or not self._verify:
            return None
        info = self._authorship_of(analysis)
        if info.overflow:
            return f"the push has over {MAX_AUTHOR_COMMITS} new commits; their signatures could not be checked"
        for commit, _, paths, signed in info.commits:
            if not signed and not paths.isdisjoint(protected):
                return (f"commit {commit[:12]} changes a protected path but is not signed by a key in the trust "
                        "store (approvals.require_signed_commits): sign it with git commit -S (gpg.format=ssh)")
        return None

    def _walk(self, analysis: RefAnalysis) -> _Authorship:
        """Every pushed commit (new tip, not reachable from the old tip or the base) with its people and the paths it
        changes itself: against its parent; for a merge, only what differs from every parent (the merger's own
        content, not the merged branch's)."""
        new = analysis.new_target
        if new is None or self._repo.object_type(new) != "commit":
            return _Authorship((), False)
        hide = [oid for oid in (analysis.update.old, analysis.base) if oid and not is_null(oid)]
        try:
            commits = self._repo.walk_new_commits(new, hide, limit=MAX_AUTHOR_COMMITS)
        except GitAccessError:
            return _Authorship((), True)
        base = analysis.base
        if base and analysis.kind == UpdateKind.CREATE and not self._repo.is_ancestor(base, new):
            # A new ref not built on its base (a tag of an older commit of main): its content came from commits the
            # walk above hides, since they are in the base's history too. Whoever wrote that content is its author.
            try:
                commits = [*commits, *self._introducers(new, analysis.changes, skip=set(commits))]
            except GitAccessError:
                return _Authorship((), True)
        out = []
        for commit in commits:
            info = self._repo.commit_info(commit)
            tree = self._repo.commit_tree(commit)
            people = {self._policy.person_for_email(e) for e in (info.author_email, info.committer_email)}
            people.discard(None)
            # Signers are authors too (authorship.py): what the emails say is the pusher's to write, a signature
            # by a trusted key is not.
            signers = self._signers(commit)
            people |= signers
            if not info.parents or any(self._repo.object_type(p) != "commit" for p in info.parents):
                # A root commit, or a shallow/grafted parent whose tree is unknown: it counts as changing everything.
                paths = {c.path for c in self._repo.diff_trees(None, tree)}
            else:
                sets = [{c.path for c in self._repo.diff_trees(self._repo.commit_tree(p), tree)} for p in info.parents]
                paths = set.intersection(*sets)
            out.append((commit, frozenset(p for p in people if p), frozenset(paths), bool(signers)))
        return _Authorship(tuple(out), False)

    def _introducers(self, new: ObjectId, changes: Sequence[Change], *, skip: set[ObjectId]) -> list[ObjectId]:
        """The newest commit in ``new``'s history that brought each changed path's content at ``new`` (path and blob
        id both; a deletion has no content to attribute), walking newest first. GitAccessError past
        MAX_AUTHOR_COMMITS commits walked: their authors could not be found, so approvals do not count."""
        wanted = {(c.path, c.new_id) for c in changes if c.new_mode != MODE_ABSENT}
        found: list[ObjectId] = []
        if not wanted:
            return found
        repo = self._repo
        for commit in repo.iter_new_commits(new, (), limit=MAX_AUTHOR_COMMITS):
            tree, parents = repo.commit_tree(commit), repo.commit_info(commit).parents
            brought = set(wanted)
            # New relative to every parent: content a merge took from one side was brought in that side's history.
            for parent in parents if all(repo.object_type(p) == "commit" for p in parents) else ():
                brought &= {(c.path, c.new_id) for c in repo.diff_trees(repo.commit_tree(parent), tree)}
            if brought:
                wanted -= brought
                if commit not in skip:
                    found.append(commit)
                if not wanted:
                    return found
        return found

    def _signers(self, commit: ObjectId) -> frozenset[str]:
        if not self._verify:
            return frozenset()  # a clone without the trust store cannot tell
        from gatekeeper.approvals.authorship import commit_signers

        try:
            raw = self._repo.commit_raw(commit)
        except GitAccessError:
            return frozenset()
        return commit_signers(raw, self.trust(), now=self._now)


def content_difference(approved: dict[bytes, Change], pushed: dict[bytes, Change]) -> str:
    """'' when both projections are equal, else a short description of the first differing paths."""
    if approved == pushed:
        return ""
    parts: list[str] = []
    for path in sorted(approved.keys() | pushed.keys()):
        a, p = approved.get(path), pushed.get(path)
        if a == p:
            continue
        shown = display_path(path)
        if a is None:
            parts.append(f"{shown} is not in the approval")
        elif p is None:
            parts.append(f"{shown} was approved but is not changed by this push")
        else:
            parts.append(f"{shown} differs")
    extra = len(parts) - MAX_PATHS_IN_NOTE
    return ", ".join(parts[:MAX_PATHS_IN_NOTE]) + (f" and {extra} more" if extra > 0 else "")


def check_signature(
    approval: StoredApproval, trust: AllowedSigners, *, namespace: str, now: datetime, people: Collection[str],
) -> _Checked:
    """Verify one approval's signature and bind it to a person; never raises for a bad or untrusted signature."""
    st = approval.statement
    try:
        verified = trust.verify(approval.signature, approval.statement_bytes, namespace=namespace, now=now)
    except SignatureError as exc:
        return _Checked(None, f"signature not accepted: {exc.message}")
    if st.approver not in verified.principals:
        keys_of = ", ".join(verified.principals) or "nobody"
        return _Checked(None, f"signed with a key of {keys_of}, not of {st.approver}")
    if st.approver not in people:
        return _Checked(None, f"{st.approver} is not a person in the policy")
    text = approval.statement_bytes.decode("ascii")
    evidence: dict[str, object] = {
        "ref": approval.ref,
        "commit": approval.commit,
        "person": st.approver,
        "key_fingerprint": verified.key_fingerprint,
        "key_type": verified.key_type,
        "statement_sha256": hashlib.sha256(approval.statement_bytes).hexdigest(),
        "signature": approval.signature.decode("ascii", "replace"),
        "created": format_time(st.created),
        "expires": format_time(st.expires),
        "nonce": st.nonce,
    }
    if len(text) <= MAX_STATEMENT_IN_RECORD:
        evidence["statement"] = text
    else:
        evidence["statement_omitted"] = f"{len(text)} bytes; see commit {approval.commit}"
    if verified.sk_flags is not None:
        evidence["sk_flags"] = verified.sk_flags
        evidence["sk_counter"] = verified.sk_counter
    if verified.ca_fingerprint is not None:
        evidence["ca_fingerprint"] = verified.ca_fingerprint
    return _Checked(st.approver, None, evidence)


def load_evaluator(
    repo: Repo,
    policy: Policy,
    updates: Sequence[RefUpdate],
    *,
    pusher: Identity,
    repository: str,
    now: datetime | None = None,
    ledger: Ledger | None = None,
) -> Approvals:
    """The evaluator for one push, with the approval and withdrawal refs this push creates validated (append-only
    namespaces; only people who may review something store approvals, each a bounded number per ref).

    Cheap when nothing needs it: approvals are looked up and the trust store loaded only when a protected
    requirement is evaluated or an approval ref is pushed.

    Raises:
        ConfigError: the trust store is invalid (only when an approval ref is pushed; otherwise on first use).
        LedgerError: the approvals ledger cannot be read or built.
    """
    now = now or datetime.now(timezone.utc)
    approvals = Approvals(repo=repo, policy=policy, repository=repository, pusher=pusher, now=now, ledger=ledger)
    if ledger is not None and not ledger.built:
        ledger.build(_existing_approvals(repo, now))
    pending: list[StoredApproval] = []
    refusals: list[str] = []
    for update in updates:
        namespace = "approval" if is_approval_ref(update.ref) else "withdrawal" if is_withdrawal_ref(update.ref) \
            else None
        if namespace is None or update.old == update.new:
            continue
        one = "an approval" if namespace == "approval" else "a withdrawal"
        if is_null(update.new):
            refusals.append(f"{update.ref}: deleting {one} is not allowed ({namespace}s are append-only)")
            continue
        if not is_null(update.old):
            refusals.append(f"{update.ref}: rewriting {one} is not allowed ({namespace}s are append-only; "
                            "sign a new one)")
            continue
        problem = (_check_withdrawal(approvals, update) if namespace == "withdrawal"
                   else _check_new_approval(approvals, update, pending))
        if problem is not None:
            refusals.append(problem if problem.startswith(update.ref) else f"{update.ref}: {problem}")
    approvals._pending = pending
    approvals._refusals = refusals
    return approvals


def _check_new_approval(approvals: Approvals, update: RefUpdate, pending: list[StoredApproval]) -> str | None:
    """Why the approval ``update`` creates may not be stored, else None (and it joins ``pending``)."""
    policy, ledger = approvals._policy, approvals._ledger
    try:
        approval = read_approval(approvals._repo, update.ref, update.new)
    except MalformedApproval as exc:
        return exc.message
    st = approval.statement
    if st.repository != approvals._repository:
        return f"the approval is for repository {st.repository}, not {approvals._repository}"
    checked = approvals._check(approval)
    if checked.problem is not None:
        return checked.problem
    # Storing approvals costs every later push a look-up: only people who may review something can store them.
    if st.approver not in frozenset().union(*(policy.reviewers_of(r) for r in policy.rules)):
        return f"{st.approver} may not review anything under this policy, so cannot store approvals"
    if not st.is_pattern() and not policy.is_protected_ref(st.ref):
        return (f"it approves changes to {st.ref}, which the policy does not protect "
                "(an approval there counts for nothing)")
    if ledger is not None:
        # Per ref; all ref patterns of one person count as one "ref", so patterns cannot multiply the look-ups.
        cap = policy.approvals.max_live_per_person

        def same(target: str) -> bool:
            return target == st.ref or (st.is_pattern() and any(ch in target for ch in "*?["))

        live = [e for e in ledger.live_of(st.approver) if same(e.target) and approvals._now < e.expires]
        live_count = len(live) + sum(1 for a in pending if a.statement.approver == st.approver
                                     and same(a.statement.ref))
        if live_count >= cap:
            what = "ref patterns" if st.is_pattern() else st.ref
            return (f"{st.approver} already holds {live_count} unused approvals for {what} (the policy allows "
                    f"{cap}: approvals.max_live_per_person); withdraw one with 'gatekeeper approvals withdraw REF', "
                    "or wait until they are used or expire")
    pending.append(approval)
    approvals.ledger_update.add.append((approval, _approves_the_past(approvals._repo, approval)))
    return None


def _approves_the_past(repo: Repo, approval: StoredApproval) -> str | None:
    """An approval whose head is already on its ref reviews a change that landed (a break-glass push reviewed after
    the fact): it is recorded, and used up at once, so it can never let the same content land again."""
    st = approval.statement
    if st.is_pattern() or is_null(st.head) or repo.object_type(st.head) != "commit":
        return None
    tip = repo.ref_target(st.ref)
    if tip is None or repo.object_type(tip) != "commit" or not (tip == st.head or repo.is_ancestor(st.head, tip)):
        return None
    return f"already used on {st.ref}: it approves {st.head[:12]}, which was already there when it was stored"


def _existing_approvals(repo: Repo, now: datetime) -> list[tuple[StoredApproval, str | None]]:
    """The approvals already in the repository when the ledger is first built, with why each no longer counts
    (expired; its change already on its ref), else None. Malformed ones never count and are left out."""
    out: list[tuple[StoredApproval, str | None]] = []
    for ref, target in stored_approval_refs(repo):
        try:
            approval = read_approval(repo, ref, target)
        except MalformedApproval:
            continue
        if now >= approval.statement.expires:
            out.append((approval, f"expired at {format_time(approval.statement.expires)}"))
        else:
            out.append((approval, _approves_the_past(repo, approval)))
    return out


def _check_withdrawal(approvals: Approvals, update: RefUpdate) -> str | None:
    """Why the withdrawal ``update`` creates is refused, else None (and the ledger will drop the approval)."""
    from gatekeeper.approvals.withdraw import read_withdrawal

    repo, policy = approvals._repo, approvals._policy
    try:
        withdrawal, data, signature = read_withdrawal(repo, update.ref, update.new)
    except MalformedApproval as exc:
        return exc.message
    if withdrawal.repository != approvals._repository:
        return f"the withdrawal is for repository {withdrawal.repository}, not {approvals._repository}"
    if repo.ref_target(withdrawal.approval_ref) != withdrawal.approval_commit:
        return f"it withdraws {withdrawal.approval_ref} at {withdrawal.approval_commit[:12]}, which is not stored here"
    try:
        approval = read_approval(repo, withdrawal.approval_ref, withdrawal.approval_commit)
        verified = approvals.trust().verify(signature, data, namespace=policy.trust.namespace, now=approvals._now)
    except (MalformedApproval, SignatureError) as exc:
        return f"the withdrawal is not accepted: {exc.message}"
    by = withdrawal.withdrawn_by
    if by not in verified.principals:
        return f"signed with a key of {', '.join(verified.principals) or 'nobody'}, not of {by}"
    if by != approval.statement.approver and by not in policy.members(policy.approvals.admins):
        return (f"{by} may not withdraw {approval.statement.approver}'s approval (only the approver or one of "
                "approvals.admins)")
    approvals.ledger_update.withdraw.append((withdrawal.approval_commit, by))
    approvals.withdrawn[update.ref] = {
        "ref": update.ref, "commit": update.new, "withdrawn_by": by, "approval_ref": withdrawal.approval_ref,
        "approval_commit": withdrawal.approval_commit, "key_fingerprint": verified.key_fingerprint,
        "statement": data.decode("ascii"), "signature": signature.decode("ascii", "replace"),
    }
    return None
