"""What one push does to the approvals' lifecycle, in the audit record and in the ledger.

A push that lands (the hook exits 0) *consumes* every approval it counted, on the ref it counted for, stores the
approval refs it creates, and honours the withdrawals it creates. The record says so (``updates[].consumed``: the
approval refs used up on that ref; ``updates[].withdrawal``: the signed withdrawal's evidence), so that
``audit verify --approvals`` can re-derive the whole lifecycle offline; the ledger is then updated with the record's
number. A refused push changes nothing but pruning (expired approvals stop being read).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from gatekeeper.approvals.ledger import LedgerUpdate

if TYPE_CHECKING:
    from gatekeeper.approvals.evaluate import Approvals

__all__ = ["ledger_finisher", "record_lifecycle"]


def record_lifecycle(event: dict[str, object], approvals: Approvals, *, lands: bool) -> None:
    """Add ``consumed`` and ``withdrawal`` to the record's update entries (only when the push lands)."""
    if not lands:
        return
    for entry in event.get("updates", []):  # type: ignore[attr-defined]
        consumed = approvals.consumed.get(entry.get("ref"))
        if consumed:
            entry["consumed"] = sorted(consumed)
        evidence = approvals.withdrawn.get(entry.get("ref"))
        if evidence is not None and entry.get("new") == evidence.get("commit"):
            entry["withdrawal"] = evidence


def ledger_finisher(approvals: Approvals, *, lands: bool) -> Callable[[int], None]:
    """What to apply to the ledger once the record ``seq`` is durable."""
    ledger = approvals.ledger
    update = approvals.ledger_update
    if not lands:
        update = LedgerUpdate(expired=update.expired, gone=update.gone)

    def finish(seq: int) -> None:
        if ledger is not None:
            ledger.apply(update, seq=seq)

    return finish
