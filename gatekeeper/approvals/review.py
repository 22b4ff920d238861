"""What a clone can know about a change before it reaches the server: the ref update as the hook will analyse it, and
the content detectors' findings (shown to reviewers by ``approve``, and turned into requirements by ``check``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from gatekeeper.push.analysis import RefAnalysis
from gatekeeper.push.gitrepo import Repo
from gatekeeper.model import ObjectId, RefUpdate, UpdateKind

if TYPE_CHECKING:
    from gatekeeper.policy.config import Policy
    from gatekeeper.push.content_gate import ContentReport
    from gatekeeper.push.gate import Requirement
    from gatekeeper.review.build import Review
    from gatekeeper.trust.allowed_signers import AllowedSigners

__all__ = ["client_analysis", "remote_base", "requirements", "review_change", "scan", "signing_warnings"]


class RefProtection(Protocol):
    """What :func:`client_analysis` asks of a policy (a clone without one reviews every ref as protected)."""

    def is_protected_ref(self, ref: str) -> bool: ...


def client_analysis(repo: Repo, policy: RefProtection, *, base: ObjectId | None, head: ObjectId | None, ref: str,
                    note: str, protected: bool | None = None) -> RefAnalysis:
    """``base..head`` as the hook sees a push of ``head`` to ``ref`` whose current tip (or merge-base) is ``base``.

    ``protected`` overrides the policy's answer (``approve`` of a ref pattern reviews as if protected)."""
    null = ObjectId(repo.null_id)
    if head is None:
        kind = UpdateKind.DELETE  # `approve --delete`: every path of base removed
    elif base is None:
        kind = UpdateKind.CREATE
    elif base == head:
        kind = UpdateKind.NOOP
    else:
        kind = UpdateKind.FAST_FORWARD if repo.is_ancestor(base, head) else UpdateKind.FORCE
    changes = tuple(repo.diff_trees(repo.commit_tree(base) if base else None,
                                    repo.commit_tree(head) if head else None))
    return RefAnalysis(
        update=RefUpdate(base or null, head or null, ref), kind=kind,
        protected=policy.is_protected_ref(ref) if protected is None else protected,
        base=base, base_note=note, new_target=head, changes=changes,
    )


def scan(repo: Repo, policy: Policy, analysis: RefAnalysis) -> ContentReport:
    """The content report for one analysed update (no verdict cache: a clone is not the server)."""
    from gatekeeper.push.content_gate import scan_push

    return scan_push(repo, policy, [analysis], cache_dir=None)


def requirements(policy: Policy, analysis: RefAnalysis, report: ContentReport) -> list[Requirement]:
    """Every requirement the server will impose on this update: the policy's rules, then the built-in ones
    (``protected-ref-history``, ``remote-code``, ``repository-plumbing``, ``ml-artifacts``), computed by the same
    functions the hook calls, so ``check``, ``approve`` and the server cannot disagree."""
    from gatekeeper.push.content_gate import content_requirements
    from gatekeeper.push.gate import requirements_for

    out = list(requirements_for(policy, analysis))
    out.extend(content_requirements(policy, report, analysis))
    return out


def remote_base(repo: Repo, workdir: Path, remote: str, ref: str, head: ObjectId, *,
                default_branch: str, is_protected: Callable[[str], bool] | None = None) -> ObjectId | None:
    """The base the server will diff against: the remote's current tip of ``ref``; for a ref that does not exist
    there yet, what the hook picks for a new protected ref (``push.analysis._creation_base``): ``head`` itself when
    it is the tip of a protected ref there (``is_protected``; without a policy, never), else the default branch's tip;
    without a default branch there either (an empty repository), None: the empty tree, as the hook uses."""
    from gatekeeper.approvals.create import ApproveError, git

    listed = git(workdir, "ls-remote", "--refs", remote, ref, default_branch).split()
    if ref.encode() in listed:
        git(workdir, "fetch", "--quiet", remote, ref)
        return repo.resolve("FETCH_HEAD")
    if default_branch.encode() not in listed:
        print(f"{ref} is new on {remote} and {default_branch} does not exist there: comparing with the empty tree, "
              "as the server will")
        return None
    git(workdir, "fetch", "--quiet", remote, default_branch)
    tip = repo.resolve("FETCH_HEAD")
    if head != tip and is_protected is not None:
        same = _remote_protected_ref_at(workdir, remote, head, is_protected)
        if same is not None:
            print(f"{ref} is new on {remote} and points at the tip of {same}: nothing changes, as the server sees it")
            return head
    if repo.merge_base(head, tip) is None:
        raise ApproveError(f"{ref} is new and shares no history with {default_branch}", hint="pass --base REV")
    note = "" if repo.is_ancestor(tip, head) else " (it is not built on that tip: older commits are not all reviewed)"
    print(f"{ref} is new on {remote}: comparing with the tip of {default_branch} ({tip[:12]}){note}, "
          "as the server will")
    return tip


def _remote_protected_ref_at(workdir: Path, remote: str, commit: ObjectId,
                             is_protected: Callable[[str], bool]) -> str | None:
    """A protected ref on ``remote`` whose tip (tags peeled: ls-remote's ``^{}`` lines) is ``commit``, or None."""
    from gatekeeper.approvals.create import git

    peeled: dict[str, str] = {}
    for line in git(workdir, "ls-remote", remote).decode("utf-8", "replace").splitlines():
        oid, _, name = line.partition("\t")
        if name.endswith("^{}"):
            peeled[name[:-3]] = oid  # the tag's peeled commit wins over the tag object listed before it
        else:
            peeled.setdefault(name, oid)
    return next((name for name, oid in sorted(peeled.items()) if oid == commit and is_protected(name)), None)


class _AnyRefProtected:
    """Without a copy of the policy a clone cannot tell protected refs from others: review as protected."""

    def is_protected_ref(self, ref: str) -> bool:
        return True


def review_change(repo: Repo, policy: Policy | None, *, base: ObjectId | None, head: ObjectId | None, ref: str,
                  note: str, protected: bool | None = None,
                  ) -> tuple[RefAnalysis, list[Requirement], ContentReport | None, Review]:
    """The analysis, requirements, content report and review of ``base..head`` on ``ref``.

    With a policy: exactly what the hook computes (rules and built-in requirements). Without one (``approve`` with no
    ``--config``): every changed file is reviewed, no requirement is known and no content report is made.
    """
    from gatekeeper.push.gate import Requirement
    from gatekeeper.review.build import build_review

    if policy is None:
        analysis = client_analysis(repo, _AnyRefProtected(), base=base, head=head, ref=ref, note=note, protected=True)
        everything = Requirement(rule="", approvals=1, reviewers=frozenset(), reviewer_spec=(),
                                 changes=analysis.changes)
        review = build_review(repo, analysis, [everything], None)
        review.policy_known = False
        for file in review.files:
            file.rules = []
        return analysis, [], None, review
    analysis = client_analysis(repo, policy, base=base, head=head, ref=ref, note=note, protected=protected)
    report = scan(repo, policy, analysis)
    reqs = requirements(policy, analysis, report)
    return analysis, reqs, report, build_review(repo, analysis, reqs, report)


def signing_warnings(
    repo: Repo, policy: Policy | None, analysis: RefAnalysis, reqs: list[Requirement], *, approver: str,
    pusher: str | None, repository: str, key: str | None, trust: AllowedSigners | None, namespace: str, now: datetime,
) -> list[str]:
    """Why an approval about to be signed would not count on the server, as far as a clone can know.

    The server rejects an approval by the pusher, by an author or committer of a pushed commit that changes a
    protected path, by someone who is not a reviewer of the rule, for another repository, or under a key the trust
    store does not trust for the person now. Signing one anyway only produces a ref that the gate ignores, while the
    reviewer believes they approved: so ``approve`` refuses unless told ``--sign-anyway``.
    """
    out: list[str] = []
    if pusher is not None and pusher == approver:
        out.append(f"you ({approver}) are the pusher: the server never counts the pusher's own approval")
    protected = {c.path for r in reqs for c in r.changes}
    for commit, people in _commit_people(repo, policy, analysis, protected):
        if approver in people:
            out.append(f"you ({approver}) authored or committed {commit[:12]}, which changes a protected path: "
                       "the server does not count an author's approval")
            break
    if policy is not None and reqs:
        eligible = set().union(*(r.reviewers for r in reqs))
        if approver not in eligible:
            rules = ", ".join(dict.fromkeys(r.rule for r in reqs))
            out.append(f"{approver} is not a reviewer for any rule this change triggers ({rules})")
    expected = getattr(policy, "repository", None) if policy is not None else None
    if expected and repository != expected:
        out.append(f"repository id {repository!r} is not the policy's {expected!r}: the server would not count it")
    out.extend(_key_warnings(key, trust, approver, namespace, now))
    return out


def _commit_people(repo: Repo, policy: Policy | None, analysis: RefAnalysis,
                   protected: set[bytes]) -> list[tuple[str, set[str]]]:
    """Each commit of base..head that changes a protected path itself, with its author's and committer's persons
    (the policy's mapping of e-mails; without a policy, the e-mail's local part)."""
    from gatekeeper.approvals.evaluate import MAX_AUTHOR_COMMITS

    if analysis.new_target is None:
        return []
    hide = [analysis.base] if analysis.base else []
    out: list[tuple[str, set[str]]] = []
    for commit in repo.walk_new_commits(analysis.new_target, hide, limit=MAX_AUTHOR_COMMITS):
        info = repo.commit_info(commit)
        tree = repo.commit_tree(commit)
        parents: list[str | None] = [repo.commit_tree(p) for p in info.parents] or [None]
        changed = set.intersection(*({c.path for c in repo.diff_trees(p, tree)} for p in parents))
        if protected and changed.isdisjoint(protected):
            continue
        people = set()
        for email in (info.author_email, info.committer_email):
            person = policy.person_for_email(email) if policy is not None else None
            people.add(person or email.split("@", 1)[0])
        out.append((commit, people))
    return out


def _public_key_text(key: str | None) -> str | None:
    if not key:
        return None
    if key.startswith("key::"):
        return key[len("key::"):].strip()
    path = Path(key).expanduser()
    pub = path if path.suffix == ".pub" else path.with_name(path.name + ".pub")
    try:
        return pub.read_text(encoding="utf-8").strip()
    except OSError:
        return None


def _key_warnings(key: str | None, trust: AllowedSigners | None, approver: str, namespace: str,
                  now: datetime) -> list[str]:
    from gatekeeper.trust.allowed_signers import match_pattern_list
    from gatekeeper.errors import GatekeeperError
    from gatekeeper.trust.sshsig import PublicKey, parse_public_key_line

    text = _public_key_text(key)
    if trust is None or text is None:
        return []
    try:
        public = parse_public_key_line(text)
    except GatekeeperError:
        return []
    if not isinstance(public, PublicKey):
        return []  # a certificate: trust goes through its CA and principals; the server decides
    entries = [e for e in trust.entries
               if e.key == public and match_pattern_list(approver, e.principals) == 1
               and (e.namespaces is None or match_pattern_list(namespace, e.namespaces) == 1)]
    if trust.is_revoked(public):
        return [f"your signing key {public.fingerprint} is revoked in the trust store"]
    if not entries:
        return [f"the trust store has no entry for {approver} with your key {public.fingerprint} in namespace "
                f"{namespace}: the server would not count the approval"]
    live = [e for e in entries if (e.valid_before is None or e.valid_before > now)
            and (e.valid_after is None or e.valid_after <= now)]
    if not live:
        ends = max((e.valid_before for e in entries if e.valid_before), default=None)
        when = f" (valid-before {ends:%Y-%m-%dT%H:%M:%SZ})" if ends else ""
        return [f"your signing key {public.fingerprint} is expired or not yet valid in the trust store{when}"]
    return []
