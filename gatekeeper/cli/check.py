"""``gatekeeper check [REV] --ref REF --config FILE``: before pushing, what the server will require, which stored
approvals already match, and the review of the protected change set.

The policy lives on the server, so check needs a copy (--config FILE; admins publish it, e.g. in a docs
repository or next to the install instructions). With the trust store too (--allowed-signers FILE, or the policy's
path if it exists here) signatures are verified exactly as the hook does; without it, approvals are matched on
everything else and shown as unverified. The base is the remote's current tip of REF (fetched), as the server will
see it for a fast-forward; approvals are fetched from refs/gatekeeper/approvals/* first.

Exit status: 0 the push would be allowed; 1 it would be refused (or an error); 2 usage error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from gatekeeper.cli._output import add_format, full_ref, plain

if TYPE_CHECKING:
    from gatekeeper.model import ObjectId


def configure(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.description = plain(__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("rev", metavar="REV", nargs="?", default="HEAD", help="the commit to push (default HEAD)")
    parser.add_argument("--ref", required=True, type=full_ref,
                        help="the ref you will push to: main means refs/heads/main")
    parser.add_argument("--config", type=Path, required=True, help="a copy of the server's policy")
    parser.add_argument("--allowed-signers", type=Path, help="a copy of the server's trust store")
    parser.add_argument("--remote", default="origin")
    parser.add_argument("--base", help="compare with this commit instead of the remote's current REF")
    parser.add_argument("--as", dest="pusher", help="your login on the server, mapped to a person by the policy's "
                        "accounts: (default: from user.email)")
    parser.add_argument("--repository", help="repository id (default: the policy's, else git config or remote URL)")
    parser.add_argument("--no-fetch", action="store_true", help="use the local refs only")
    parser.add_argument("--full-diff", action="store_true", help="also show the text diff of configs")
    add_format(parser)


def run(args: argparse.Namespace, verb: str) -> int:
    return check(rev=args.rev, ref=args.ref, config=args.config, allowed_signers=args.allowed_signers,
                 remote=args.remote, base=args.base, pusher=args.pusher, repository=args.repository,
                 fetch=not args.no_fetch, fmt=args.format, full_diff=args.full_diff)


def check(*, rev: str, ref: str, config: Path, allowed_signers: Path | None, remote: str, base: str | None,
          pusher: str | None, repository: str | None, fetch: bool, fmt: str = "text", full_diff: bool = False) -> int:
    from datetime import datetime, timezone

    from gatekeeper.approvals.clientpolicy import load_client_policy
    from gatekeeper.approvals.create import ApproveError, default_repository, git
    from gatekeeper.approvals.evaluate import Approvals
    from gatekeeper.approvals.review import remote_base, review_change
    from gatekeeper.cli._output import emit_json, page, progress, use_color
    from gatekeeper.push.content_gate import content_requirements
    from gatekeeper.errors import GatekeeperError
    from gatekeeper.push.gate import decide
    from gatekeeper.push.gitrepo import Repo
    from gatekeeper.push.messages import render_decision
    from gatekeeper.model import Identity
    from gatekeeper.review.render import render_json, render_text

    policy = load_client_policy(config)
    repo = Repo.open(Path.cwd())
    workdir = Path(repo.workdir or repo.path)
    if fetch:
        git(workdir, "fetch", "--quiet", remote, "refs/gatekeeper/approvals/*:refs/gatekeeper/approvals/*")
    head = repo.resolve(rev)
    base_id: ObjectId | None
    if base is not None:
        base_id = repo.resolve(base)
    elif fetch:
        base_id = remote_base(repo, workdir, remote, ref, head, default_branch=policy.default_branch,
                              is_protected=policy.is_protected_ref)
    else:
        try:
            base_id = repo.resolve(f"refs/remotes/{remote}/{ref.removeprefix('refs/heads/')}")
        except GatekeeperError as exc:
            raise ApproveError(f"no local copy of {remote}'s {ref}", hint="fetch, or pass --base REV") from exc
    repository = repository or policy.repository or default_repository(repo, remote)
    if not repository:
        raise ApproveError("cannot tell the repository id", hint="pass --repository ID")
    user = pusher or _default_login(policy, repo.config_value("user.email") or "")
    with progress("scanning the change"):
        analysis, _, report, review = review_change(repo, policy, base=base_id, head=head, ref=ref,
                                                    note=f"{remote}'s {ref}")
    trust_path = allowed_signers or policy.trust.allowed_signers
    trust = None
    if trust_path.is_file():
        from gatekeeper.trust.allowed_signers import AllowedSigners

        trust = AllowedSigners.load(trust_path, revoked=policy.trust.revoked_keys if allowed_signers is None
                                    else None)
    approvals = Approvals(repo=repo, policy=policy, repository=repository, pusher=Identity(user, "check:--as"),
                          now=datetime.now(timezone.utc), trust=trust, verify_signatures=trust is not None)
    assert report is not None  # with a policy, review_change always scans
    ref_content = report.refs.get(ref)
    decision = decide(
        policy,
        [analysis], pusher=Identity(user, "check:--as"), approvals=approvals,
        extra_requirements=lambda a: content_requirements(policy, report, a),
        blocking={ref: ref_content.blocking} if ref_content is not None and ref_content.blocking else None,
    )
    if fmt == "json":
        emit_json({
            "rev": rev, "head": head, "ref": ref, "pusher": user, "base": base_id, "repository": repository,
            "verdict": decision.verdict, "allowed": not decision.blocked, "mode": decision.mode,
            "signatures_verified": trust is not None,
            "requirements": [
                {"rule": o.requirement.rule, "approvals": o.requirement.approvals,
                 "approved_by": sorted(o.result.approvers), "missing": o.missing, "notes": list(o.result.notes),
                 "why": o.requirement.why}
                for r in decision.refs for o in r.outcomes],
            "blocking": [{"verdict": f.verdict.value, "path": f.path, "message": f.message}
                         for r in decision.refs for f in r.blocking],
            "review": render_json(review),
        }, "gatekeeper.check/1")
        return 0 if not decision.blocked else 1
    lines = render_decision(decision, audit_seq=None, pusher=user)
    lines[0] = lines[0].replace("push allowed", "this push would be allowed").replace(
        "push REFUSED", "this push would be REFUSED")
    head_line = (f"gatekeeper check: {rev} -> {ref} as {user} (base {(base_id or 'empty tree')[:12]}, "
                 f"repository {repository})")
    page([head_line, *lines, "", *render_text(review, color=use_color(sys.stdout), full_diff=full_diff)])
    if trust is None:
        print("note: signatures were not verified (no trust store here; pass --allowed-signers FILE)",
              file=sys.stderr)
    return 0 if not decision.blocked else 1


def _default_login(policy: object, email: str) -> str:
    """Without ``--as``: the platform login of the person whose commit email this is (the evaluator maps logins to
    people through the policy's ``accounts:``, as the hook does), else the email's local part."""
    person = policy.person_for_email(email) if email else None  # type: ignore[attr-defined]
    if person is not None:
        return policy.people[person].accounts[0]  # type: ignore[attr-defined,no-any-return]
    return email.split("@", 1)[0] or "unknown"
