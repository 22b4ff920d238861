"""Withdrawing an approval before it is used: a signed statement, stored like an approval, honoured from the next push.

Layout::

    refs/gatekeeper/withdrawals/<person>/<nonce of the withdrawn approval>  ->  commit (no parents)
        tree: withdrawal.json      (canonical statement, below)
              withdrawal.json.sig  (``ssh-keygen -Y sign`` in the gate's namespace)

The statement names the repository, the approval's ref and commit, who withdraws it and when::

    {"type": "gatekeeper-withdrawal/v1", "repository": "...", "approval_ref": "refs/gatekeeper/approvals/bob/<nonce>",
     "approval_commit": "<oid>", "withdrawn_by": "bob", "created": "2026-12-04T17:00:00Z", "note": "..."}

Its ``type`` differs from an approval's, so a withdrawal can never be read as an approval (or the reverse). The hook
accepts a withdrawal only when its signature verifies under a trusted key of ``withdrawn_by`` and that person is the
approver or one of the policy's ``approvals.admins``; the namespace is append-only, like the approvals'.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime

from gatekeeper.approvals.statement import PERSON_RE, MalformedApproval, format_time, parse_time
from gatekeeper.approvals.store import APPROVALS_PREFIX, read_signed_commit, split_approval_ref
from gatekeeper.push.analysis import WITHDRAWALS_NAMESPACE, is_withdrawal_ref
from gatekeeper.push.gitrepo import Repo

__all__ = [
    "WITHDRAWALS_PREFIX",
    "Withdrawal",
    "is_withdrawal_ref",
    "parse_withdrawal",
    "read_withdrawal",
    "withdrawal_ref",
]

WITHDRAWAL_TYPE = "gatekeeper-withdrawal/v1"
WITHDRAWALS_PREFIX = WITHDRAWALS_NAMESPACE
STATEMENT_FILE = b"withdrawal.json"
SIGNATURE_FILE = b"withdrawal.json.sig"
MAX_WITHDRAWAL_BYTES = 4096
_KEYS = ("type", "repository", "approval_ref", "approval_commit", "withdrawn_by", "created", "note")
_OID_RE = re.compile(r"(?:[0-9a-f]{40}|[0-9a-f]{64})\Z")


@dataclass(frozen=True)
class Withdrawal:
    repository: str
    approval_ref: str
    approval_commit: str
    withdrawn_by: str
    created: datetime
    note: str = ""

    def to_bytes(self) -> bytes:
        doc = {"type": WITHDRAWAL_TYPE, "repository": self.repository, "approval_ref": self.approval_ref,
               "approval_commit": self.approval_commit, "withdrawn_by": self.withdrawn_by,
               "created": format_time(self.created), "note": self.note}
        return (json.dumps(doc, indent=2, ensure_ascii=True) + "\n").encode("ascii")


def withdrawal_ref(person: str, approval_ref: str) -> str:
    _, nonce = split_approval_ref(approval_ref)
    return f"{WITHDRAWALS_PREFIX}{person}/{nonce}"


def parse_withdrawal(data: bytes) -> Withdrawal:
    """Strict: exactly the canonical bytes :meth:`Withdrawal.to_bytes` writes.

    Raises:
        MalformedApproval: anything else.
    """
    if len(data) > MAX_WITHDRAWAL_BYTES:
        raise MalformedApproval(f"the withdrawal is over {MAX_WITHDRAWAL_BYTES} bytes")
    try:
        doc = json.loads(data.decode("ascii"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MalformedApproval(f"the withdrawal is not ASCII JSON: {exc}") from exc
    if not isinstance(doc, dict) or list(doc) != list(_KEYS) or doc["type"] != WITHDRAWAL_TYPE:
        raise MalformedApproval(f"the withdrawal must be a {WITHDRAWAL_TYPE} object with the fields "
                                f"{', '.join(_KEYS)}")
    if not all(isinstance(doc[k], str) for k in _KEYS):
        raise MalformedApproval("every field of a withdrawal is a string")
    if not PERSON_RE.match(doc["withdrawn_by"]) or not _OID_RE.match(doc["approval_commit"]):
        raise MalformedApproval("the withdrawal names an invalid person or commit")
    split_approval_ref(doc["approval_ref"])
    withdrawal = Withdrawal(doc["repository"], doc["approval_ref"], doc["approval_commit"], doc["withdrawn_by"],
                            parse_time(doc["created"], "created"), doc["note"])
    if withdrawal.to_bytes() != data:
        raise MalformedApproval("the withdrawal is not in canonical form (it was edited after it was made)")
    return withdrawal


def read_withdrawal(repo: Repo, ref: str, target: str) -> tuple[Withdrawal, bytes, bytes]:
    """(withdrawal, statement bytes, signature) stored at ``ref``.

    Raises:
        MalformedApproval: wrong ref name, layout or statement; the ref does not name the withdrawer and the
            approval's nonce.
    """
    rest = ref[len(WITHDRAWALS_PREFIX):] if ref.startswith(WITHDRAWALS_PREFIX) else ""
    data, signature = read_signed_commit(repo, ref, target, STATEMENT_FILE, SIGNATURE_FILE,
                                         max_bytes=MAX_WITHDRAWAL_BYTES, what="withdrawal")
    try:
        withdrawal = parse_withdrawal(data)
    except MalformedApproval as exc:
        raise MalformedApproval(f"{ref}: {exc.message}") from exc
    if ref != withdrawal_ref(withdrawal.withdrawn_by, withdrawal.approval_ref) or not rest:
        raise MalformedApproval(f"{ref}: a withdrawal is stored as {WITHDRAWALS_PREFIX}<person>/<approval nonce>")
    if not withdrawal.approval_ref.startswith(APPROVALS_PREFIX):
        raise MalformedApproval(f"{ref}: it does not name an approval")
    return withdrawal, data, signature
