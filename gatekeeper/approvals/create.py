"""What ``gatekeeper approve`` and ``gatekeeper approvals import`` do in a reviewer's clone.

Client side only: it runs ``git`` for the few writes (the hook-side :class:`gatekeeper.push.gitrepo.Repo` stays
read-only) and ``ssh-keygen`` to sign. The reviewed change set is computed exactly as the server computes a protected
ref's net change set (a tree-to-tree diff of base and head, raw byte paths, no rename detection), so what the reviewer
sees and signs is what the gate will compare.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

from gatekeeper.approvals.statement import MalformedApproval, Statement, parse_statement
from gatekeeper.approvals.store import approval_ref
from gatekeeper.errors import GatekeeperError, GitAccessError
from gatekeeper.push.gitrepo import Repo
from gatekeeper.model import ObjectId

__all__ = [
    "BUNDLE_SEPARATOR",
    "bundle",
    "default_repository",
    "draft_statement",
    "parse_duration",
    "store_approval",
    "unbundle",
]

SIGNATURE_BEGIN = b"-----BEGIN SSH SIGNATURE-----"
# In a canonical statement every newline is structural (strings escape theirs), so this cannot occur inside it.
BUNDLE_SEPARATOR = b"\n" + SIGNATURE_BEGIN
MAX_BUNDLE_BYTES = 1024 * 1024  # a statement (512 KiB at most) and its signature
MAX_EXPIRY = timedelta(days=366)
_DURATION_RE = re.compile(r"(\d{1,6})([mhdw])\Z")
_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}


class ApproveError(GatekeeperError):
    """A reviewer-side problem: bad arguments, nothing to approve, git failing."""


def parse_duration(text: str) -> timedelta:
    """``90m``, ``36h``, ``14d``, ``2w`` -> timedelta (at most a year)."""
    match = _DURATION_RE.match(text.strip())
    if not match:
        raise ApproveError(f"invalid duration {text!r}", hint="use a number and a unit: 90m, 36h, 14d or 2w")
    value = int(match.group(1)) * _UNITS[match.group(2)]
    if value <= timedelta(0) or value > MAX_EXPIRY:
        raise ApproveError(f"duration {text!r} must be between 1 minute and 366 days")
    return value


def git(workdir: Path, *args: str, input: bytes | None = None) -> bytes:
    """Run git in the clone; GitAccessError with git's own message on failure."""
    try:
        proc = subprocess.run(["git", *args], cwd=workdir, input=input, capture_output=True, check=False)
    except OSError as exc:
        raise GitAccessError(f"cannot run git: {exc}") from exc
    if proc.returncode != 0:
        detail = proc.stderr.decode("utf-8", "replace").strip()
        raise GitAccessError(f"git {' '.join(args[:3])} failed: {detail}")
    return proc.stdout


def default_repository(repo: Repo, remote: str) -> str | None:
    """``gatekeeper.repository`` from git config, else the path of the remote's URL without ``.git``
    (``git@host:ml/llama-train.git`` -> ``ml/llama-train``; a local path or file URL -> its folder name)."""
    configured = repo.config_value("gatekeeper.repository")
    if configured:
        return configured
    url = repo.config_value(f"remote.{remote}.url")
    if not url:
        return None
    if url.startswith("file://") or url.startswith("/") or url.startswith("."):
        path = url[len("file://"):] if url.startswith("file://") else url
        name = Path(path.rstrip("/")).name
    else:
        path = re.sub(r"^[a-z][a-z0-9+.-]*://[^/]*/", "", url)  # scheme://host[:port]/path
        path = re.sub(r"^[^/:]+:(?!//)", "", path)  # scp-like user@host:path
        name = path.strip("/")
    name = name[:-4] if name.endswith(".git") else name
    return name or None


def draft_statement(
    repo: Repo,
    *,
    base: ObjectId | None,
    head: ObjectId | None,
    ref: str,
    repository: str,
    approver: str,
    expires_in: timedelta,
    note: str = "",
    now: datetime | None = None,
) -> Statement:
    """The statement for approving ``base..head`` (``base`` None: against the empty tree; ``head`` None: deleting
    the ref, i.e. every path of ``base`` removed)."""
    now = (now or datetime.now(timezone.utc)).replace(microsecond=0)
    base_tree = repo.commit_tree(base) if base else None
    changes = tuple(repo.diff_trees(base_tree, repo.commit_tree(head) if head else None))
    statement = Statement(
        repository=repository, ref=ref, approver=approver, base=base or repo.null_id, head=head or repo.null_id,
        created=now,
        expires=now + expires_in, nonce=secrets.token_hex(16), note=note, changes=changes,
    )
    # The parser is the contract: a statement this code makes must be one the gate reads.
    parse_statement(statement.to_bytes())
    return statement


def store_approval(workdir: Path, statement_bytes: bytes, signature: bytes) -> tuple[str, str]:
    """Write the approval commit and create its ref in the clone (never overwriting). Returns (ref, commit)."""
    statement = parse_statement(statement_bytes)
    message = (f"gatekeeper approval by {statement.approver}\n\n"
               f"{statement.ref} {statement.base[:12]}..{statement.head[:12]} in {statement.repository}\n")
    env_message = message + (f"\n{statement.note}\n" if statement.note else "")
    ref = approval_ref(statement.approver, statement.nonce)
    commit = store_signed(workdir, ref, {b"approval.json": statement_bytes, b"approval.json.sig": signature},
                          message=env_message)
    return ref, commit


def store_signed(workdir: Path, ref: str, files: dict[bytes, bytes], *, message: str) -> str:
    """A parentless commit holding ``files`` (name -> content) as regular files, stored as the new ``ref`` (never
    overwriting). Returns the commit id."""
    listing = ""
    for name, content in sorted(files.items()):
        blob = git(workdir, "hash-object", "-w", "--stdin", input=content).decode().strip()
        listing += f"100644 blob {blob}\t{name.decode()}\n"
    tree = git(workdir, "mktree", input=listing.encode()).decode().strip()
    commit = git(workdir, "commit-tree", tree, "-m", message).decode().strip()
    git(workdir, "update-ref", ref, commit, "0" * len(commit))
    return commit


def bundle(statement_bytes: bytes, signature: bytes) -> bytes:
    """The ``--no-push`` file: the statement followed by its armored signature (both plain text)."""
    return statement_bytes + signature


def unbundle(data: bytes) -> tuple[bytes, bytes]:
    """Split an approval file into (statement, signature).

    Raises:
        MalformedApproval: no signature, oversized, or the statement does not parse.
    """
    if len(data) > MAX_BUNDLE_BYTES:
        raise MalformedApproval("the approval file is too big")
    index = data.find(BUNDLE_SEPARATOR)
    if index < 0:
        raise MalformedApproval("the file holds no SSH signature after the statement",
                                hint="import the file that `gatekeeper approve --no-push` wrote, unchanged")
    statement, signature = data[: index + 1], data[index + 1:]
    parse_statement(statement)
    return statement, signature


def read_file(path: str) -> bytes:
    try:
        with open(os.fspath(path), "rb") as fh:
            return fh.read(MAX_BUNDLE_BYTES + 1)
    except OSError as exc:
        raise ApproveError(f"cannot read {path}: {exc.strerror or exc}") from exc


def push_new_ref(workdir: Path, remote: str, ref: str, commit: str, *, what: str, hint: str) -> None:
    """Push the new ``ref`` (an approval or a withdrawal). If the server refuses it, the local ref is removed, so a
    later wildcard push does not just retry it.

    Raises:
        ApproveError: the server refused (its lines were shown above).
    """
    try:
        git(workdir, "push", "--quiet", remote, f"{ref}:{ref}")
    except GatekeeperError as exc:
        git(workdir, "update-ref", "-d", ref, commit)
        raise ApproveError(f"the server refused the {what}: {exc.message}", hint=hint) from exc
