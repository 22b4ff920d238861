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

from gatekeeper.errors import GatekeeperError

DEFAULT_EXPIRY = "14d"


def configure(parser: argparse.ArgumentParser, verb: str) -> None:
    if verb == "approve":
        parser.add_argument("rev", metavar="REV", help="the reviewed commit, e.g. origin/feature")
        parser.add_argument("--ref", required=True, help="the target ref (or ref pattern), e.g. refs/heads/main")
        parser.add_argument("--remote", default="origin", help="the remote to fetch the base from and push to")
        parser.add_argument("--base", help="compare with this commit instead of the remote's current REF (all "
                            "zeros: the empty tree; break-glass banners print it for after-the-fact reviews)")
        parser.add_argument("--delete", action="store_true", help="approve deleting REF, whose tip is REV")
        parser.add_argument("--config", type=Path, help="a copy of the server's policy: show files by rule")
        parser.add_argument("--key", help="the signing key (default: git config user.signingkey)")
        parser.add_argument("--as", dest="approver", help="your person name in the policy (default: git config "
                            "gatekeeper.person, else from user.email)")
        parser.add_argument("--expires", default=DEFAULT_EXPIRY, help="validity, e.g. 36h, 14d (default 14d)")
        parser.add_argument("--note", default="", help="a one-line note stored in the approval")
        parser.add_argument("--repository", help="repository id (default: git config gatekeeper.repository, else "
                            "the remote URL's path)")
        parser.add_argument("--namespace", help="signature namespace (default: the policy's, or the built-in one)")
        parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
        parser.add_argument("--no-push", action="store_true", help="write the approval to a file, do not push")
        parser.add_argument("--output", "-o", help="the file for --no-push (default: approval-<nonce>.txt)")
    else:
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        sub.add_parser("list", help="list the approvals stored in this clone")
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


def run(args: argparse.Namespace, verb: str) -> int:
    if verb == "approve":
        return approve(
            rev=args.rev, ref=args.ref, remote=args.remote, base=args.base, config=args.config, key=args.key,
            approver=args.approver, expires=args.expires, note=args.note, repository=args.repository,
            namespace=args.namespace, yes=args.yes, push=not args.no_push, output=args.output, delete=args.delete,
        )
    if args.action == "list":
        return list_approvals()
    if args.action == "withdraw":
        from gatekeeper.approvals.withdraw_client import withdraw

        return withdraw(approval_ref=args.approval_ref, key=args.key, person=args.person, note=args.note,
                        remote=args.remote, namespace=args.namespace)
    return import_approval(file=args.file, namespace=args.namespace)


def approve(
    *, rev: str, ref: str, remote: str, base: str | None, config: Path | None, key: str | None,
    approver: str | None, expires: str, note: str, repository: str | None, namespace: str | None, yes: bool,
    push: bool, output: str | None, delete: bool = False,
) -> int:
    from gatekeeper.approvals.create import (
        ApproveError, bundle, default_repository, draft_statement, parse_duration, push_new_ref, store_approval,
    )
    from gatekeeper.approvals.sign import sign
    from gatekeeper.push.gitrepo import Repo
    from gatekeeper.policy.config import DEFAULT_NAMESPACE

    repo = Repo.open(Path.cwd())
    workdir = repo.workdir or repo.path
    expires_in = parse_duration(expires)
    policy = None
    if config is not None:
        from gatekeeper.approvals.clientpolicy import load_client_policy

        policy = load_client_policy(config)
    if not ref.startswith("refs/"):
        raise ApproveError(f"--ref {ref!r} must be a full ref name", hint="e.g. --ref refs/heads/main")
    repository = repository or (policy.repository if policy and policy.repository else None) \
        or default_repository(repo, remote)
    if not repository:
        raise ApproveError("cannot tell the repository id", hint="pass --repository ID (the policy's 'repository')")
    approver = _person(approver, policy) if approver else _approver(repo, policy)
    head = repo.resolve(rev)
    if delete:
        # Deleting REF removes every path of its tip: the change set is tip -> empty, and the statement's head is
        # the null id (what the ref will point at).
        base, head = base or rev, None
    if base is not None:
        base_id = None if base.strip("0") == "" else repo.resolve(base)
    else:
        if any(ch in ref for ch in "*?["):
            raise ApproveError(f"{ref} is a pattern: there is no single remote tip to compare with",
                               hint="pass --base REV")
        from gatekeeper.approvals.review import remote_base

        base_id = remote_base(repo, Path(workdir), remote, ref, head,
                              default_branch=policy.default_branch if policy else "refs/heads/main")
    statement = draft_statement(repo, base=base_id, head=head, ref=ref, repository=repository, approver=approver,
                                expires_in=expires_in, note=note)
    for line in summary_lines(statement, policy):
        print(line)
    if policy is not None and head is not None:
        from gatekeeper.approvals.review import client_analysis, finding_lines, scan

        analysis = client_analysis(repo, policy, base=base_id, head=head, ref=ref, note="reviewed range")
        findings = finding_lines(scan(repo, policy, analysis))
        if findings:
            print("Content findings (the server's detectors, run here):")
            for line in findings:
                print(line)
    if not statement.changes:
        raise ApproveError(f"{rev} makes no change to {ref}: nothing to approve")
    if not yes and not _confirm(f"Sign this approval of {len(statement.changes)} changed paths as {approver}? [y/N] "):
        print("gatekeeper: not signed", file=sys.stderr)
        return 1
    ns = namespace or (policy.trust.namespace if policy else DEFAULT_NAMESPACE)
    key = key or repo.config_value("user.signingkey")
    if not key:
        raise ApproveError("no signing key", hint="pass --key FILE or run: git config user.signingkey ~/.ssh/id_ed25519.pub")
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


def summary_lines(statement: object, policy: object) -> list[str]:
    """What the reviewer is about to sign: target, range, and each changed path (with its rules if known)."""
    from gatekeeper.approvals.statement import Statement, format_time
    from gatekeeper.push.messages import _status

    assert isinstance(statement, Statement)
    st = statement
    lines = [
        f"Approval for {st.repository} {st.ref}: {st.base[:12]}..{st.head[:12]} as {st.approver}, "
        f"expires {format_time(st.expires)}",
    ]
    protected = 0
    for change in st.changes:
        rules = [r.name for r in policy.rules_for(change.path)] if policy is not None else []  # type: ignore[attr-defined]
        protected += bool(rules)
        tag = f"  [{', '.join(rules)}]" if rules else ""
        lines.append(f"  {_status(change)} {change.display_path()}{tag}")
    if policy is not None:
        lines.append(f"{len(st.changes)} changed paths, {protected} under the policy's rules")
    else:
        lines.append(f"{len(st.changes)} changed paths (pass --config to see which rules they fall under)")
    return lines


def _approver(repo: object, policy: object) -> str:
    from gatekeeper.approvals.create import ApproveError
    from gatekeeper.approvals.statement import PERSON_RE

    person = repo.config_value("gatekeeper.person")  # type: ignore[attr-defined]
    email = repo.config_value("user.email") or ""  # type: ignore[attr-defined]
    person = _person(person, policy) if person else person
    if not person and policy is not None and email:
        person = policy.person_for_email(email)  # type: ignore[attr-defined]
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
        return policy.person_for_account(name) or name  # type: ignore[attr-defined,no-any-return]
    return name


def _confirm(prompt: str) -> bool:
    from gatekeeper.approvals.create import ApproveError

    if not sys.stdin.isatty():
        raise ApproveError("not asking for confirmation without a terminal", hint="pass --yes in scripts")
    try:
        return input(prompt).strip().lower() in ("y", "yes")
    except EOFError:
        return False


def list_approvals() -> int:
    from gatekeeper.approvals.statement import MalformedApproval, format_time
    from gatekeeper.approvals.store import read_approval, stored_approval_refs
    from gatekeeper.push.gitrepo import Repo

    repo = Repo.open(Path.cwd())
    refs = stored_approval_refs(repo)
    if not refs:
        print("no approvals stored; fetch them: git fetch origin 'refs/gatekeeper/approvals/*:refs/gatekeeper/approvals/*'")
    for ref, target in refs:
        try:
            st = read_approval(repo, ref, target).statement
        except MalformedApproval as exc:
            print(f"{ref}  MALFORMED: {exc.message}")
            continue
        print(f"{ref}  {st.repository} {st.ref} {st.base[:12]}..{st.head[:12]} by {st.approver}, "
              f"{len(st.changes)} paths, expires {format_time(st.expires)}" + (f"  # {st.note}" if st.note else ""))
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
