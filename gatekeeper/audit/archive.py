"""The inputs of every decision, archived next to the log so that `audit verify --approvals` works years later.

Each ``push.decision`` names the policy (``config_sha256``) and the trust store (``trust_store_sha256``) it was taken
under. The hook copies both into ``<log>.archive/``, content-addressed, before the record is written:

    <log>.archive/policy/<sha256>.yaml                  the policy's exact bytes
    <log>.archive/trust/<sha256>/allowed_signers        the trust store's exact bytes
    <log>.archive/trust/<sha256>/revoked_keys           (when the policy names one; the hash covers both)

A copy is written once per distinct content (later pushes under the same files cost two ``stat`` calls), with a
temp file, ``fsync`` and rename. Removing a reviewer's key or revoking it later changes the live files, never the
archived ones, so old allows stay verifiable at their own time. ``audit export`` carries the archive, and
``audit verify --approvals`` reads it on its own (``--policy``/``--trust-dir`` add to it). If the archive cannot be
written, the push is refused: an allow that could not be re-verified later must not happen.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from gatekeeper.errors import AuditError
from gatekeeper.fsutil import fsync_dir, replace_file

if TYPE_CHECKING:
    from gatekeeper.trust.allowed_signers import AllowedSigners
    from gatekeeper.policy.config import Policy

__all__ = ["archive_dir", "archive_inputs", "archived_policies", "archived_trust_dir", "copy_archive", "policies_in"]

MAX_ARCHIVED_FILE = 8 << 20


def archive_dir(log: Path) -> Path:
    return Path(log).with_name(Path(log).name + ".archive")


def archived_trust_dir(log: Path) -> Path:
    return archive_dir(log) / "trust"


def archive_inputs(log: Path, policy: Policy, trust_sha256: str | None) -> None:
    """Archive the policy and (when one was used) the trust store in force for this decision.

    Raises:
        AuditError: a file changed while the push was decided (its hash no longer matches) or cannot be written.
    """
    root = archive_dir(log)
    try:
        target = root / "policy" / f"{policy.source_sha256}.yaml"
        if not target.exists():
            data = _read(policy.source_path)
            if hashlib.sha256(data).hexdigest() != policy.source_sha256:
                raise AuditError("the policy changed while this push was decided; push again")
            _write(target, data)
        if trust_sha256 is not None:
            folder = root / "trust" / trust_sha256
            if not (folder / "allowed_signers").exists():
                _archive_trust(folder, policy, trust_sha256)
    except OSError as exc:
        raise AuditError(f"cannot archive the policy and trust store in {root}: {exc.strerror or exc}") from exc


def _archive_trust(folder: Path, policy: Policy, sha: str) -> None:
    from gatekeeper.trust.allowed_signers import _digest

    allowed = _read(policy.trust.allowed_signers)
    revoked = _read(policy.trust.revoked_keys) if policy.trust.revoked_keys is not None else None
    if _digest(allowed, revoked) != sha:
        raise AuditError("the trust store changed while this push was decided; push again")
    if revoked is not None:
        _write(folder / "revoked_keys", revoked)
    _write(folder / "allowed_signers", allowed)  # last: its presence marks the copy complete


def _read(path: Path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(MAX_ARCHIVED_FILE)


def _write(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    replace_file(target, data, mode=0o644)
    fsync_dir(target.parent)


def archived_policies(log: Path) -> dict[str, Policy]:
    """Every policy archived next to ``log`` keyed by its SHA-256 (see :func:`policies_in`)."""
    return policies_in(archive_dir(log) / "policy")


def policies_in(folder: Path) -> dict[str, Policy]:
    """Every ``<sha256>.yaml`` policy in ``folder`` keyed by its SHA-256 (loaded like a client copy: its trust store
    and log directory need not exist any more). Also the layout of a fleet export's ``policies/``.

    Raises:
        AuditError: an archived policy does not load, or its content does not match its name.
    """
    from gatekeeper.approvals.clientpolicy import load_client_policy
    from gatekeeper.errors import ConfigError

    out: dict[str, Policy] = {}
    try:
        names = sorted(os.listdir(folder))
    except FileNotFoundError:
        return out
    for name in names:
        try:
            policy = load_client_policy(folder / name)
        except ConfigError as exc:
            raise AuditError(f"archived policy {name}: {exc.message}") from None
        if name != f"{policy.source_sha256}.yaml":
            raise AuditError(f"archived policy {name} does not match its content (SHA-256 {policy.source_sha256})")
        out[policy.source_sha256] = policy
    return out


def copy_archive(log: Path, dest_log: Path) -> list[Path]:
    """Copy the archive of ``log`` next to ``dest_log`` (an export); returns the files copied."""
    src, dst = archive_dir(log), archive_dir(dest_log)
    if not src.is_dir():
        return []
    shutil.copytree(src, dst)
    return sorted(p for p in dst.rglob("*") if p.is_file())


def stores_for(log: Path) -> dict[str, AllowedSigners]:
    """The archived trust stores keyed by their SHA-256."""
    from gatekeeper.audit.semantic import load_trust_stores

    trust = archived_trust_dir(log)
    return load_trust_stores(dirs=[trust]) if trust.is_dir() else {}
