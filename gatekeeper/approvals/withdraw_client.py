"""``gatekeeper approvals withdraw APPROVAL_REF``: sign a withdrawal in a clone and push it (client side only)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from gatekeeper.approvals.create import ApproveError, git, push_new_ref, store_signed
from gatekeeper.approvals.sign import sign
from gatekeeper.approvals.store import read_approval
from gatekeeper.approvals.withdraw import SIGNATURE_FILE, STATEMENT_FILE, Withdrawal, withdrawal_ref
from gatekeeper.push.gitrepo import Repo

__all__ = ["withdraw"]


def withdraw(*, approval_ref: str, key: str | None, person: str | None, note: str, remote: str,
             namespace: str | None) -> int:
    from gatekeeper.policy.config import DEFAULT_NAMESPACE

    repo = Repo.open(Path.cwd())
    workdir = Path(repo.workdir or repo.path)
    git(workdir, "fetch", "--quiet", remote, f"+{approval_ref}:{approval_ref}")
    commit = repo.resolve(approval_ref)
    statement = read_approval(repo, approval_ref, commit).statement
    by = person or repo.config_value("gatekeeper.person") or statement.approver
    key = key or repo.config_value("user.signingkey")
    if not key:
        raise ApproveError("no signing key", hint="pass --key FILE or run: git config user.signingkey FILE")
    withdrawal = Withdrawal(statement.repository, approval_ref, commit, by,
                            datetime.now(timezone.utc).replace(microsecond=0), note)
    data = withdrawal.to_bytes()
    signature = sign(data, key=key, namespace=namespace or DEFAULT_NAMESPACE)
    ref = withdrawal_ref(by, approval_ref)
    stored = store_signed(workdir, ref, {STATEMENT_FILE: data, SIGNATURE_FILE: signature},
                          message=f"gatekeeper withdrawal of {approval_ref} by {by}\n")
    push_new_ref(workdir, remote, ref, stored, what="withdrawal",
                 hint="only the approver or one of the policy's approvals.admins may withdraw it")
    print(f"gatekeeper: {approval_ref} withdrawn by {by} ({ref}); it no longer counts from the next push")
    return 0
