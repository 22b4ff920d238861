"""The approval lifecycle re-derived from the log alone, for ``audit verify --approvals`` (issue 9).

A push that landed (a ``push.decision`` with ``blocked: false``) consumed every approval it counted, on the ref it
counted for; a landed withdrawal (``updates[].withdrawal``) ended its approval. A later allow that counts the same
statement on the same ref, or a withdrawn one, was not justified, whatever the hook's ledger said at the time.
Approvals are matched by their statement's SHA-256 or their approval ref (``updates[].consumed`` lists every approval
ref used up, including a person's second copy of the same approval), and by their commit for withdrawals. Memory grows
with the number of approvals used, not with the log.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

__all__ = ["Lifecycle"]


def _statement_sha(evidence: Mapping[str, Any]) -> str | None:
    digest = evidence.get("statement_sha256")
    if isinstance(digest, str):
        return digest
    text = evidence.get("statement")
    return hashlib.sha256(text.encode("ascii", "replace")).hexdigest() if isinstance(text, str) else None


class Lifecycle:
    def __init__(self) -> None:
        # (statement sha256 or approval ref, ref) -> the record that consumed it there
        self._used: dict[tuple[str, str], int | None] = {}
        self._withdrawn: dict[str, int | None] = {}  # approval commit -> record that withdrew it

    def why_not(self, evidence: Mapping[str, Any], ref: str, seq: int | None) -> str | None:
        """Why a recorded approval could no longer count on ``ref`` at record ``seq``, else None."""
        commit = evidence.get("commit")
        if isinstance(commit, str) and commit in self._withdrawn:
            return f"it was withdrawn in record #{self._withdrawn[commit]}"
        for key in (_statement_sha(evidence), evidence.get("ref")):
            if isinstance(key, str) and (key, ref) in self._used and self._used[(key, ref)] != seq:
                return f"it was already used on {ref} in record #{self._used[(key, ref)]}"
        return None

    def landed(self, seq: int | None, event: Mapping[str, Any]) -> None:
        """Record what a landed decision consumed and withdrew (call after judging it)."""
        updates = event.get("updates")
        for upd in updates if isinstance(updates, list) else []:
            if not isinstance(upd, dict):
                continue
            ref = str(upd.get("ref"))
            used = upd.get("approvals")
            for evidence in used if isinstance(used, list) else []:
                sha = _statement_sha(evidence) if isinstance(evidence, dict) else None
                if sha is not None:
                    self._used.setdefault((sha, ref), seq)
            consumed = upd.get("consumed")  # approval refs, including copies used up with the one counted
            for name in consumed if isinstance(consumed, list) else []:
                if isinstance(name, str):
                    self._used.setdefault((name, ref), seq)
            withdrawal = upd.get("withdrawal")
            if isinstance(withdrawal, dict) and isinstance(withdrawal.get("approval_commit"), str):
                self._withdrawn.setdefault(withdrawal["approval_commit"], seq)
