"""Approvals as they live in a repository: one parentless commit per approval, under one ref each.

Layout (DESIGN.md "Approvals live in the repository")::

    refs/gatekeeper/approvals/<person>/<nonce>  ->  commit (no parents)
                                                      tree: approval.json      (the canonical statement)
                                                            approval.json.sig  (``ssh-keygen -Y sign`` armor)

``git show refs/gatekeeper/approvals/bob/<nonce>:approval.json`` prints the statement, and stock
``ssh-keygen -Y verify`` checks the signature (see the README commands in ``gatekeeper/approvals/__init__.py``).
This module only reads, through :class:`gatekeeper.push.gitrepo.Repo`, and is strict: anything but exactly those two
regular files in a parentless commit under a well-formed ref name is malformed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gatekeeper.approvals.statement import PERSON_RE, MalformedApproval, Statement, parse_statement
from gatekeeper.errors import GitAccessError
from gatekeeper.push.gitrepo import Repo
from gatekeeper.model import MODE_BLOB, ObjectId

__all__ = [
    "APPROVALS_PREFIX",
    "STATEMENT_FILE",
    "SIGNATURE_FILE",
    "StoredApproval",
    "approval_ref",
    "is_approval_ref",
    "read_approval",
    "split_approval_ref",
    "stored_approval_refs",
]

APPROVALS_PREFIX = "refs/gatekeeper/approvals/"
STATEMENT_FILE = b"approval.json"
SIGNATURE_FILE = b"approval.json.sig"
MAX_SIGNATURE_BYTES = 256 * 1024  # sshsig.MAX_ARMORED
_NONCE_RE = re.compile(r"[0-9a-f]{32}\Z")


@dataclass(frozen=True)
class StoredApproval:
    """One approval read from the repository. ``statement`` is parsed; the signature is *not* checked here."""

    ref: str
    commit: ObjectId
    statement_bytes: bytes
    signature: bytes
    statement: Statement


def approval_ref(person: str, nonce: str) -> str:
    return f"{APPROVALS_PREFIX}{person}/{nonce}"


def is_approval_ref(ref: str) -> bool:
    """Whether ``ref`` is in the approvals namespace (the bare prefix without a slash counts too: it would shadow it).
    """
    return ref.startswith(APPROVALS_PREFIX) or ref == APPROVALS_PREFIX.rstrip("/")


def split_approval_ref(ref: str) -> tuple[str, str]:
    """(person, nonce) from ``refs/gatekeeper/approvals/<person>/<nonce>``.

    Raises:
        MalformedApproval: any other shape.
    """
    rest = ref[len(APPROVALS_PREFIX):] if ref.startswith(APPROVALS_PREFIX) else ""
    parts = rest.split("/")
    if len(parts) != 2 or not PERSON_RE.match(parts[0]) or not _NONCE_RE.match(parts[1]):
        raise MalformedApproval(
            f"{ref} is not a valid approval ref name",
            hint=f"approval refs are named {APPROVALS_PREFIX}<person>/<32 hex digit nonce>",
        )
    return parts[0], parts[1]


def stored_approval_refs(repo: Repo) -> list[tuple[str, ObjectId]]:
    """(ref, commit) of every approval already stored in ``repo``, sorted by ref name."""
    return sorted(repo.refs_with_prefix(APPROVALS_PREFIX))


def read_approval(repo: Repo, ref: str, target: str) -> StoredApproval:
    """Read and parse the approval that ``ref`` points at (``target``; objects may be in the push's quarantine).

    Raises:
        MalformedApproval: wrong ref name, not a parentless commit, wrong tree layout, oversized or unparsable files.
    """
    person, nonce = split_approval_ref(ref)
    from gatekeeper.approvals.statement import MAX_STATEMENT_BYTES

    data, signature = read_signed_commit(repo, ref, target, STATEMENT_FILE, SIGNATURE_FILE,
                                         max_bytes=MAX_STATEMENT_BYTES)
    try:
        statement = parse_statement(data)
    except MalformedApproval as exc:
        raise MalformedApproval(f"{ref}: {exc.message}", hint=exc.hint) from exc
    if statement.approver != person or statement.nonce != nonce:
        raise MalformedApproval(
            f"{ref}: the ref name does not match the statement (approver {statement.approver}, "
            f"nonce {statement.nonce})"
        )
    return StoredApproval(ref=ref, commit=ObjectId(target), statement_bytes=data, signature=signature,
                          statement=statement)


def read_signed_commit(repo: Repo, ref: str, target: str, statement_file: bytes, signature_file: bytes, *,
                       max_bytes: int, what: str = "approval") -> tuple[bytes, bytes]:
    """(statement, signature) from a parentless commit holding exactly those two regular files (approvals and
    withdrawals are stored this way).

    Raises:
        MalformedApproval: not a parentless commit, wrong tree layout, oversized or unreadable files.
    """
    kind = repo.object_type(target)
    if kind != "commit":
        raise MalformedApproval(f"{ref} points at a {kind or 'missing object'}, not {_a(what)} commit")
    try:
        info = repo.commit_info(target)
        tree = repo.commit_tree(target)
        entries = repo.tree_entries(tree, limit=16)  # a hostile tree of millions of entries is not listed
    except GitAccessError as exc:
        raise MalformedApproval(f"{ref}: {exc.message}") from exc
    if info.parents:
        raise MalformedApproval(f"{ref}: an approval commit has no parents (this one has {len(info.parents)})")
    files = {name: (mode, oid) for name, mode, oid in entries}
    if sorted(files) != sorted([statement_file, signature_file]) or any(m != MODE_BLOB for m, _ in files.values()):
        shown = ", ".join(n.decode("utf-8", "backslashreplace") for n in sorted(files)) or "nothing"
        raise MalformedApproval(
            f"{ref}: {_a(what)} commit holds exactly {statement_file.decode()} and {signature_file.decode()} as "
            f"regular files (found: {shown})"
        )
    try:
        data = repo.read_blob(files[statement_file][1], max_bytes=max_bytes)
        signature = repo.read_blob(files[signature_file][1], max_bytes=MAX_SIGNATURE_BYTES)
    except GitAccessError as exc:
        raise MalformedApproval(f"{ref}: {exc.message}") from exc
    return data, signature


def _a(noun: str) -> str:
    return ("an " if noun[:1] in "aeiou" else "a ") + noun
