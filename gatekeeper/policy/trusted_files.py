"""The files the gate trusts must be out of reach of the pushes it judges.

A push writes files on the server wherever a work tree has the pushed branch checked out: a non-bare repository with
``receive.denyCurrentBranch=updateInstead``, a linked worktree (``git worktree add``, bare repositories too), or a
post-receive hook that checks out ("deploy by push"). A policy, trust store, audit log or audit key in such a work tree
is one a push can rewrite: the insider changes an unprotected file (the policy itself), and the next push is judged
by their rules and their reviewers. So install refuses such a layout, and the hook re-checks it on every push (a
symlink or a ``core.worktree`` changed later undoes the install-time check). Paths are compared after resolving
symlinks, which is what the writes go through.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from gatekeeper.errors import ConfigError

if TYPE_CHECKING:
    from gatekeeper.policy.config import Policy

SHOWN = 3  # exposed files named in the message; the rest are counted


class TrustedFileExposed(ConfigError):
    default_hint = ("an admin must move it out of every work tree of the repository (see `git worktree list`), point "
                    "the policy at the new place and re-run gatekeeper install")


def trusted_files(policy: Policy) -> list[tuple[str, Path]]:
    """(what, path) of every file and folder whose content decides verdicts or holds the record."""
    out = [("the policy", policy.source_path), ("trust.allowed_signers", policy.trust.allowed_signers)]
    if policy.trust.revoked_keys is not None:
        out.append(("trust.revoked_keys", policy.trust.revoked_keys))
    # The log's folder: it also holds the scan caches, the archived policies and the ledger's neighbours.
    out += [("the audit log's folder", policy.audit.log.parent), ("audit.signing_key", policy.audit.signing_key)]
    if policy.scan.lfs_store is not None:
        out.append(("scan.lfs_store", policy.scan.lfs_store))
    return out


def exposed_files(files: Iterable[tuple[str, Path]], work_trees: Sequence[Path]) -> list[tuple[str, str, Path]]:
    """(what, how to name it, work tree) of each of ``files`` that lies, symlinks resolved, in one of
    ``work_trees``; a path that resolves elsewhere is named ``path (-> real path)``."""
    roots = [Path(os.path.realpath(tree)) for tree in work_trees]
    if not roots:
        return []
    out = []
    for what, path in files:
        real = Path(os.path.realpath(path))
        for root in roots:
            if real == root or root in real.parents:
                out.append((what, str(path) if real == Path(os.path.abspath(path)) else f"{path} (-> {real})", root))
                break
    return out


def refuse_exposed(policy: Policy, work_trees: Sequence[Path]) -> None:
    """Raise :class:`TrustedFileExposed` when a push could write a file the gate trusts."""
    found = exposed_files(trusted_files(policy), work_trees)
    if not found:
        return
    what, path, root = found[0]
    others = "".join(f"; {w} {p}" for w, p, _ in found[1:SHOWN])
    more = f" (and {len(found) - SHOWN} more)" if len(found) > SHOWN else ""
    raise TrustedFileExposed(
        f"{what} {path} lies in this repository's work tree {root}{others}{more}: pushes write there, so a push "
        "could rewrite what the gate enforces"
    )
