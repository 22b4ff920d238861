"""Who wrote a commit, as far as the server can prove it: git's SSH commit signatures, verified against the trust store.

Commit author and committer emails are written by whoever made the commit, so "the approver is not an author" built
on them alone holds only against honest metadata. A commit signed with ``git commit -S`` (``gpg.format=ssh``) carries
a ``gpgsig`` header (``gpgsig-sha256`` in SHA-256 repositories) holding an SSHSIG over the commit without that header,
in the namespace ``git``. When that signature verifies under a key the trust store lists for the ``git`` namespace,
at the server's time (never the commit's date: a backdated commit must not revive an expired key), the key's person
signed the commit: they are its author for the rule, on top of whoever the emails name (a signer cannot hide behind
someone else's email, and an email cannot make a person disappear).

With the policy's ``approvals.require_signed_commits``, every pushed commit that changes a protected path must carry
such a signature, which makes the rule cryptographic.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from gatekeeper.errors import SignatureError

if TYPE_CHECKING:
    from gatekeeper.trust.allowed_signers import AllowedSigners

__all__ = ["GIT_NAMESPACE", "commit_signers", "split_commit_signature"]

GIT_NAMESPACE = "git"
_SIG_HEADERS = (b"gpgsig", b"gpgsig-sha256")
_SSH_ARMOR = b"-----BEGIN SSH SIGNATURE-----"


def split_commit_signature(raw: bytes) -> tuple[bytes, bytes] | None:
    """(payload, armored SSH signature) of a raw commit, as git splits it; None when it has no SSH signature.

    The payload is the commit with every ``gpgsig``/``gpgsig-sha256`` header (and its continuation lines) removed;
    the signature is the first such header's value with the one-space continuation prefix stripped.
    """
    end = raw.find(b"\n\n")
    headers, rest = (raw, b"") if end < 0 else (raw[: end + 1], raw[end + 1:])
    kept: list[bytes] = []
    signature: list[bytes] | None = None
    current: list[bytes] | None = None
    for line in headers.splitlines(keepends=True):
        if line.startswith(b" ") and current is not None:
            current.append(line[1:])
            continue
        name = line.split(b" ", 1)[0]
        if name in _SIG_HEADERS:
            current = [line[len(name) + 1:]]
            if signature is None:
                signature = current
            continue
        current = None
        kept.append(line)
    if signature is None:
        return None
    armor = b"".join(signature)
    if not armor.startswith(_SSH_ARMOR):
        return None  # an OpenPGP or X.509 signature: not verifiable against an SSH trust store
    return b"".join(kept) + rest, armor


def commit_signers(raw: bytes, trust: AllowedSigners, *, now: datetime) -> frozenset[str]:
    """The people (trust-store principals) whose trusted key signed this commit; empty if unsigned or untrusted."""
    parts = split_commit_signature(raw)
    if parts is None:
        return frozenset()
    payload, armor = parts
    try:
        verified = trust.verify(armor, payload, namespace=GIT_NAMESPACE, now=now)
    except SignatureError:
        return frozenset()
    return frozenset(verified.principals)
