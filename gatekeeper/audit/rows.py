"""Audit records as flat rows: the one table/CSV shape shared by ``audit query``, ``audit export`` and reports.

:func:`flat_row` turns any record (any event type, damaged ones too) into strings per column; :data:`CSV_COLUMNS` is the
CSV header; :func:`write_csv` writes rows with every recorded path (one per line in the cell, never "+N more") and
spreadsheet formulas neutralised. The decision column reads as an auditor should (:func:`query.decision_label`:
"would deny, allowed (monitor)").
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Any, TextIO

from gatekeeper.audit.query import decision_label

CSV_COLUMNS = ("seq", "ts", "type", "push_id", "repo", "pusher", "mode", "decision", "refs", "rules", "approvers",
               "break_glass_reason", "paths_total", "paths")


def printable(text: object) -> str:
    """One line of terminal-safe text: control and bidi characters escaped."""
    s = "" if text is None else str(text)
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in s)


def flat_row(record: dict[str, Any]) -> dict[str, str]:
    """One flat row of strings; tolerant of any shape (the log may hold other event types or damaged records).

    ``paths`` is the short form for tables (first three and "+N more"); ``all_paths`` holds every recorded path, one
    per line, escaped."""
    raw_event = record.get("event")
    event: dict[str, Any] = raw_event if isinstance(raw_event, dict) else {}
    pusher = event.get("pusher")
    raw_updates = event.get("updates")
    updates = [u for u in raw_updates if isinstance(u, dict)] if isinstance(raw_updates, list) else []
    refs: list[str] = []
    paths: list[str] = []
    rules: list[str] = []
    approvers: list[str] = []
    total = 0
    for upd in updates:
        ref = str(upd.get("ref", ""))
        refs.append(f"{ref}({upd['kind']})" if "kind" in upd else ref)
        upd_paths = upd.get("paths") if isinstance(upd.get("paths"), list) else []
        assert isinstance(upd_paths, list)
        paths.extend(str(p) for p in upd_paths)
        declared = upd.get("paths_total")
        total += declared if isinstance(declared, int) and not isinstance(declared, bool) else len(upd_paths)
        upd_rules = upd.get("rules")
        for rule in upd_rules if isinstance(upd_rules, list) else []:
            if str(rule) not in rules:
                rules.append(str(rule))
        used = upd.get("approvals")
        for approval in used if isinstance(used, list) else []:
            person = str(approval.get("person")) if isinstance(approval, dict) else None
            if person is not None and person not in approvers:
                approvers.append(person)
    total = max(total, len(paths))
    break_glass = event.get("break_glass")
    return {
        "seq": str(record.get("seq", "")),
        "ts": str(record.get("ts", "")),
        "type": str(event.get("type", "")),
        "push_id": str(event.get("push_id") or ""),
        "repo": str(event.get("repo") or ""),
        "pusher": str(pusher.get("user", "")) if isinstance(pusher, dict) else "",
        "mode": str(event.get("mode") or ""),
        "decision": decision_label(event),
        "refs": " ".join(refs),
        "rules": " ".join(rules),
        "approvers": " ".join(approvers),
        "break_glass_reason": str(break_glass.get("reason", "")) if isinstance(break_glass, dict) else "",
        "paths_total": str(total),
        "paths": " ".join(paths[:3]) + (f" (+{total - 3} more)" if total > 3 else ""),
        "all_paths": "\n".join(printable(p) for p in paths),
    }


def _csv_cell(text: str) -> str:
    # Spreadsheet formula injection: a ref or path named "=HYPERLINK(...)" must stay text.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_cell(text: str) -> str:
    # Spreadsheet formula injection: a ref or path named "=HYPERLINK(...)" must stay text.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def write_csv(records: Iterable[dict[str, Any]], out: TextIO) -> int:
    """Header and one row per record; returns the number of records."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    count = 0
    for record in records:
        row = flat_row(record)
        row["paths"] = row["all_paths"]
        writer.writerow([csv_cell(row[c]) for c in CSV_COLUMNS])
        count += 1
    return count
