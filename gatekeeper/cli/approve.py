"""``gatekeeper approve REV --ref REF`` and ``gatekeeper approvals list|import|withdraw``: the reviewer's side.

``approve`` computes the change set from the remote's current tip of REF (fetched) to REV, shows it (grouped by the
policy's rules when ``--config`` names a copy of the server's policy; otherwise a plain list, since the rules live on
the server), asks for confirmation, signs the canonical statement with ``ssh-keygen -Y sign`` in the gate's namespace
and pushes it as ``refs/gatekeeper/approvals/<person>/<nonce>``. ``--no-push`` writes the approval to a file instead;
``gatekeeper approvals import FILE`` stores such a file as the ref in a clone (then push the ref).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from gatekeeper.cli._output import add_format, full_ref

if TYPE_CHECKING:  # each verb imports what it needs when it runs
    from gatekeeper.model import ObjectId
    from gatekeeper.approvals.statement import Statement
    from gatekeeper.policy.config import Policy
    from gatekeeper.push.gitrepo import Repo
    from gatekeeper.trust.allowed_signers import AllowedSigners

DEFAULT_EXPIRY = "14d"


def configure(parser: argparse.ArgumentParser, verb: str) -> None:
    if verb == "approve":
        parser.add_argument("rev", metavar="REV", help="the reviewed commit, e.g. origin/feature")
        parser.add_argument("--ref", required=True, type=full_ref,
                            help="the target ref (or ref pattern): main means refs/heads/main")
        parser.add_argument("--remote", default="origin", help="the remote to fetch the base from and push to")
        parser.add_argument("--base", help="compare with this commit instead of the remote's current REF (all "
                            "zeros: the empty tree; break-glass banners print it for after-the-fact reviews)")
        parser.add_argument("--delete", action="store_true", help="approve deleting REF, whose tip is REV")
        parser.add_argument("--config", type=Path, help="a copy of the server's policy: show the review by rule")
        parser.add_argument("--allowed-signers", type=Path,
                            help="a copy of the server's trust store (default: the policy's, if present here)")
        parser.add_argument("--key", help="the signing key (default: git config user.signingkey)")
        parser.add_argument("--as", dest="approver", help="your person name in the policy (default: git config "
                            "gatekeeper.person, else from user.email)")
        parser.add_argument("--pusher", help="the person who will push the change (your approval would not count "
                            "if it is you)")
        parser.add_argument("--expires", default=DEFAULT_EXPIRY, type=_duration,
                            help="validity, e.g. 36h, 14d (default 14d)")
        parser.add_argument("--note", default="", help="a one-line note stored in the approval")
        parser.add_argument("--repository", help="repository id (default: git config gatekeeper.repository, else "
                            "the remote URL's path)")
        parser.add_argument("--namespace", help="signature namespace (default: the policy's, or the built-in one)")
        parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
        parser.add_argument("--sign-anyway", action="store_true",
                            help="sign even though the approval would not count on the server (see the warnings)")
        parser.add_argument("--full-diff", action="store_true", help="also show the text diff of configs")
        parser.add_argument("--no-push", action="store_true", help="write the approval to a file, do not push")
        parser.add_argument("--output", "-o", help="the file for --no-push (default: approval-<nonce>.txt)")
    else:
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        lst = sub.add_parser("list", help="list the approvals stored in this clone")
        add_format(lst)
        imp = sub.add_parser("import", help="store an approval file (from approve --no-push) as its ref")
        imp.add_argument("file", metavar="FILE")
        imp.add_argument("--namespace", help="signature namespace to check (default: the built-in one)")
        wd = sub.add_parser("withdraw", help="withdraw an approval that was not used yet (signed, then pushed)")
        wd.add_argument("approval_ref", metavar="APPROVAL_REF", help="refs/gatekeeper/approvals/<person>/<nonce>")
        wd.add_argument("--key", help="the signing key (default: git config user.signingkey)")
        wd.add_argument("--as", dest="person", help="your person name (the approver, or one of approvals.admins)")
        wd.add_argument("--note", default="", help="why, one line")
        wd.add_argument("--remote", default="origin")
        wd.add_argument("--namespace", help="signature namespace (default: the built-in one)")


def _duration(text: str) -> str:
    from gatekeeper.approvals.create import ApproveError, parse_duration

    try:
        parse_duration(text)
    except ApproveError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None
    return text


def run(args: argparse.Namespace, verb: str) -> int:
    if verb == "approve":
        return approve(
            rev=args.rev, ref=args.ref, remote=args.remote, base=args.base, config=args.config, key=args.key,
            approver=args.approver, expires=args.expires, note=args.note, repository=args.repository,
            namespace=args.namespace, yes=args.yes, push=not args.no_push, output=args.output,
            allowed_signers=args.allowed_signers, pusher=args.pusher, sign_anyway=args.sign_anyway,
            full_diff=args.full_diff, delete=args.delete,
        )
    if args.action == "list":
        return list_approvals(fmt=args.format)
    if args.action == "withdraw":
        from gatekeeper.approvals.withdraw_client import withdraw

        return withdraw(approval_ref=args.approval_ref, key=args.key, person=args.person, note=args.note,
                        remote=args.remote, namespace=args.namespace)
    return import_approval(file=args.file, namespace=args.namespace)


def approve(
    *, rev: str, ref: str, remote: str, base: str | None, config: Path | None, key: str | None,
    approver: str | None, expires: str, note: str, repository: str | None, namespace: str | None, yes: bool,
    push: bool, output: str | None, allowed_signers: Path | None = None, pusher: str | None = None,
    sign_anyway: bool = False, full_diff: bool = False, delete: bool = False,
) -> int:
    from datetime import datetime, timezone

    from gatekeeper.approvals.create import (
        ApproveError, bundle, default_repository, draft_statement, parse_duration, push_new_ref, store_approval,
    )
    from gatekeeper.approvals.review import review_change, signing_warnings
    from gatekeeper.approvals.sign import sign
    from gatekeeper.cli._output import page, progress, use_color
    from gatekeeper.push.gitrepo import Repo
    from gatekeeper.policy.config import DEFAULT_NAMESPACE
    from gatekeeper.review.render import render_text

    repo = Repo.open(Path.cwd())
    workdir = repo.workdir or repo.path
    expires_in = parse_duration(expires)
    policy = None
    if config is not None:
        from gatekeeper.approvals.clientpolicy import load_client_policy

        policy = load_client_policy(config)
    repository = repository or (policy.repository if policy and policy.repository else None) \
        or default_repository(repo, remote)
    if not repository:
        raise ApproveError("cannot tell the repository id", hint="pass --repository ID (the policy's 'repository')")
    approver = _person(approver, policy) if approver else _approver(repo, policy)
    head = repo.resolve(rev)
    base_id: ObjectId | None
    new_head: ObjectId | None = head  # what the ref will point at: None for a deletion
    pattern = any(ch in ref for ch in "*?[")
    if delete:
        # Deleting REF removes every path of its tip: the change set is tip -> empty, and the statement's head is
        # the null id (what the ref will point at).
        base, new_head = base or rev, None
    if base is not None:
        base_id = None if base.strip("0") == "" else repo.resolve(base)
    else:
        if pattern:
            from gatekeeper.cli._output import UsageError

            raise UsageError(f"{ref} is a pattern: there is no single remote tip to compare with",
                             hint="pass --base REV")
        from gatekeeper.approvals.review import remote_base

        base_id = remote_base(repo, Path(workdir), remote, ref, head,
                              default_branch=policy.default_branch if policy else "refs/heads/main",
                              is_protected=policy.is_protected_ref if policy else None)
    statement = draft_statement(repo, base=base_id, head=new_head, ref=ref, repository=repository, approver=approver,
                                expires_in=expires_in, note=note)
    if not statement.changes:
        raise ApproveError(f"{rev} makes no change to {ref}: nothing to approve")
    # With the policy, what the server will protect (rules and built-in requirements), in the protected view even for
    # a ref pattern; without it, every changed file, since the rules live on the server.
    with progress(f"reviewing {len(statement.changes)} changed paths"):
        analysis, reqs, _, review = review_change(repo, policy, base=base_id, head=new_head, ref=ref,
                                                  note="reviewed range", protected=True)
    lines = summary_lines(statement, policy)
    if policy is not None and not pattern and not policy.is_protected_ref(ref):
        lines.append(f"note: the policy does not protect {ref}; the review shows what a protected ref would need")
    page([*lines, "", *render_text(review, color=use_color(sys.stdout), full_diff=full_diff)])
    ns = namespace or (policy.trust.namespace if policy else DEFAULT_NAMESPACE)
    key = key or repo.config_value("user.signingkey")
    warnings = signing_warnings(
        repo, policy, analysis, reqs, approver=approver, pusher=pusher,
        repository=repository, key=key, trust=_trust(policy, allowed_signers), namespace=ns,
        now=datetime.now(timezone.utc))
    if warnings:
        for warning in warnings:
            print(f"warning: {warning}", file=sys.stderr)
        if not sign_anyway:
            raise ApproveError("not signing: this approval would not count on the server",
                               hint="fix the above, or pass --sign-anyway if you know better")
    if not yes and not _confirm(f"Sign this approval of {len(statement.changes)} changed paths as {approver}? [y/N] "):
        print("gatekeeper: not signed", file=sys.stderr)
        return 1
    if not key:
        raise ApproveError("no signing key",
                           hint="pass --key FILE or run: git config user.signingkey ~/.ssh/id_ed25519.pub")
    data = statement.to_bytes()
    signature = sign(data, key=key, namespace=ns)
    if not push:
        target = Path(output or f"approval-{statement.nonce}.txt")
        target.write_bytes(bundle(data, signature))
        print(f"gatekeeper: approval written to {target}; the author stores it with: gatekeeper approvals import "
              f"{target.name}")
        return 0
    approval_ref, commit = store_approval(Path(workdir), data, signature)
    push_new_ref(Path(workdir), remote, approval_ref, commit, what="approval",
                 hint="the lines above say why; ask an admin to check allowed_signers for your key")
    print(f"gatekeeper: approval {approval_ref} ({commit[:12]}) pushed to {remote}")
    return 0


def _trust(policy: Policy | None, allowed_signers: Path | None) -> AllowedSigners | None:
    """The trust store to check the signing key against: --allowed-signers, else the policy's if present here."""
    from gatekeeper.trust.allowed_signers import AllowedSigners

    path = allowed_signers or (policy.trust.allowed_signers if policy is not None else None)
    if path is None or not Path(path).is_file():
        return None
    revoked = policy.trust.revoked_keys if policy is not None and allowed_signers is None else None
    return AllowedSigners.load(Path(path), revoked=revoked)


def summary_lines(st: Statement, policy: Policy | None) -> list[str]:
    """What the reviewer is about to sign: target, range and expiry (the review below shows the files)."""
    from gatekeeper.approvals.statement import format_time

    lines = [
        f"Approval for {st.repository} {st.ref}: {st.base[:12]}..{st.head[:12]} as {st.approver}, "
        f"expires {format_time(st.expires)}",
        f"{len(st.changes)} changed paths" + ("" if policy is not None
                                              else " (pass --config to see which rules they fall under)"),
    ]
    return lines


def _approver(repo: Repo, policy: Policy | None) -> str:
    from gatekeeper.approvals.create import ApproveError
    from gatekeeper.approvals.statement import PERSON_RE

    person = repo.config_value("gatekeeper.person")
    email = repo.config_value("user.email") or ""
    person = _person(person, policy) if person else person
    if not person and policy is not None and email:
        person = policy.person_for_email(email)
    if not person and email:
        person = email.split("@", 1)[0]
    if not person or not PERSON_RE.match(person):
        raise ApproveError("cannot tell who you are in the policy",
                           hint="pass --as NAME or run: git config gatekeeper.person NAME")
    return person


def _person(name: str, policy: object) -> str:
    """A person of the policy, or a platform login that the policy's ``accounts:`` maps to one (as the hook maps
    pushers)."""
    if policy is not None and name not in policy.people:  # type: ignore[attr-defined]
        return policy.person_for_account(name) or name  # type: ignore[attr-defined]
    return name


def _confirm(prompt: str) -> bool:
    from gatekeeper.approvals.create import ApproveError

    if not sys.stdin.isatty():
        raise ApproveError("not asking for confirmation without a terminal", hint="pass --yes in scripts")
    try:
        return input(prompt).strip().lower() in ("y", "yes")
    except EOFError:
        return False


def list_approvals(*, fmt: str = "text") -> int:
    from gatekeeper.approvals.statement import MalformedApproval, format_time
    from gatekeeper.approvals.store import read_approval, stored_approval_refs
    from gatekeeper.cli._output import emit_json
    from gatekeeper.push.gitrepo import Repo

    repo = Repo.open(Path.cwd())
    refs = stored_approval_refs(repo)
    items: list[dict[str, object]] = []
    for ref, target in refs:
        try:
            st = read_approval(repo, ref, target).statement
        except MalformedApproval as exc:
            items.append({"ref": ref, "malformed": exc.message})
            continue
        items.append({"ref": ref, "repository": st.repository, "target_ref": st.ref, "base": st.base, "head": st.head,
                      "approver": st.approver, "paths": len(st.changes), "created": format_time(st.created),
                      "expires": format_time(st.expires), "note": st.note})
    if fmt == "json":
        emit_json({"approvals": items}, "gatekeeper.approvals-list/1")
        return 0
    if not refs:
        print("no approvals stored; fetch them: "
              "git fetch origin 'refs/gatekeeper/approvals/*:refs/gatekeeper/approvals/*'")
    for item in items:
        if "malformed" in item:
            print(f"{item['ref']}  MALFORMED: {item['malformed']}")
            continue
        print(f"{item['ref']}  {item['repository']} {item['target_ref']} {str(item['base'])[:12]}.."
              f"{str(item['head'])[:12]} by {item['approver']}, {item['paths']} paths, expires {item['expires']}"
              + (f"  # {item['note']}" if item["note"] else ""))
    return 0


def import_approval(*, file: str, namespace: str | None) -> int:
    from gatekeeper.approvals.create import read_file, store_approval, unbundle
    from gatekeeper.push.gitrepo import Repo
    from gatekeeper.policy.config import DEFAULT_NAMESPACE
    from gatekeeper.trust.sshsig import parse_armored, verify_signature

    repo = Repo.open(Path.cwd())
    statement, signature = unbundle(read_file(file))
    # Cryptography and namespace only: trust is the server's decision (it checks again when the ref is pushed).
    verify_signature(parse_armored(signature), statement, namespace=namespace or DEFAULT_NAMESPACE)
    ref, commit = store_approval(Path(repo.workdir or repo.path), statement, signature)
    print(f"gatekeeper: stored {ref} ({commit[:12]}); publish it with: git push origin {ref}")
    return 0
