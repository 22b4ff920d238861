"""The fleet trail's lookup tables (``audit_ref``, ``audit_path``) checked against the records they index.

The insert trigger fills them from each record's ``updates`` (pgstore.SCHEMA_SQL). They are not covered by the
signed chain: a superuser deleting lookup rows behind the triggers' back would hide records from ``--path``/``--ref``
queries. Two defences, one cheap and one exact:

* :func:`untrusted_lookups` (every query that would narrow through a lookup table): the table's row count must be
  the sum the trigger recorded per batch in ``audit_batch``; otherwise the query matches every record's raw instead.
* :class:`LookupCheck` (``verify --db``): re-derives every record's lookup rows from raw and names the rows that are
  missing (or were added) per record.

Paths are compared as the trigger stores them, ``lower(normalize(path, NFC))``. PostgreSQL's and Python's lower-case
mappings may differ outside ASCII, so the paths of a record with a non-ASCII path are compared by count only.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

LOOKUPS = {"audit_ref": "refs", "audit_path": "paths"}  # lookup table -> its expected count in audit_batch
_NON_ASCII = "\x00path"  # stands for each path of a record compared by count only


def untrusted_lookups(conn: psycopg.Connection[Any], tables: Sequence[str], nodes: Sequence[str] | None = None,
                      ) -> dict[str, int]:
    """The lookup tables (of ``tables``) whose row count differs from what the insert trigger put there (the
    audit_batch sums), with the difference (negative: rows missing). Counts every row of each table: a superuser's
    DELETE leaves no other trace a reader can see. Run it in the query's snapshot."""
    found: dict[str, int] = {}
    scope, args = ("WHERE node = ANY(%s)", [list(nodes)]) if nodes else ("", [])
    for table in tables:
        with conn.cursor() as cur:
            cur.execute(f"SELECT (SELECT count(*) FROM {table} {scope}) - "
                        f"(SELECT coalesce(sum({LOOKUPS[table]}), 0) FROM audit_batch {scope})", args * 2)
            row = cur.fetchone()
        if row is not None and row[0] != 0:
            found[table] = int(row[0])
    return found


def expected(rec: object) -> tuple[list[str], list[str]]:
    """(refs, paths), sorted, as the trigger derives them from a decoded record: one ref row per update naming a
    ref, one path row per distinct normalised path."""
    refs: list[str] = []
    paths: set[str] = set()
    event = rec.get("event") if isinstance(rec, dict) else None
    updates = event.get("updates") if isinstance(event, dict) else None
    for upd in updates if isinstance(updates, list) else ():
        if not isinstance(upd, dict):
            continue
        if isinstance(upd.get("ref"), str):
            refs.append(upd["ref"])
        listed = upd.get("paths")
        for path in listed if isinstance(listed, list) else ():
            if isinstance(path, str):
                paths.add(unicodedata.normalize("NFC", path).lower())
    return sorted(refs), sorted(paths)


def _comparable(paths: list[str], exact: bool) -> list[str]:
    return sorted(paths) if exact else [_NON_ASCII] * len(paths)


@dataclass(frozen=True)
class LookupMismatch:
    seq: int
    table: str
    missing: tuple[str, ...]
    extra: tuple[str, ...]


class LookupCheck:
    """Fed every record of one node in seq order (:meth:`feed`), compares with the stored lookup rows, streamed in
    seq order beside it (constant memory)."""

    def __init__(self, conn: psycopg.Connection[Any], node: str, *, limit: int = 50) -> None:
        self.mismatches: list[LookupMismatch] = []
        self._limit = limit
        self._rows = {table: _grouped(conn, node, table) for table in LOOKUPS}
        self._next = {table: next(rows, None) for table, rows in self._rows.items()}

    def _stored(self, table: str, seq: int) -> list[str]:
        """The stored values of ``table`` for ``seq``; rows of seqs never fed (no such record) count as extra."""
        found: list[str] = []
        while (item := self._next[table]) is not None and item[0] <= seq:
            if item[0] == seq:
                found = item[1]
            else:
                self._report(item[0], table, [], item[1])
            self._next[table] = next(self._rows[table], None)
        return found

    def _report(self, seq: int, table: str, want: list[str], have: list[str]) -> None:
        if want != have and len(self.mismatches) < self._limit:
            wanted, held = Counter(want), Counter(have)
            self.mismatches.append(LookupMismatch(seq, table, tuple(sorted((wanted - held).elements())),
                                                  tuple(sorted((held - wanted).elements()))))

    def feed(self, seq: int, rec: object) -> None:
        refs, paths = expected(rec)
        exact = all(p.isascii() for p in paths)
        self._report(seq, "audit_ref", refs, sorted(self._stored("audit_ref", seq)))
        self._report(seq, "audit_path", _comparable(paths, exact), _comparable(self._stored("audit_path", seq), exact))

    def finish(self) -> list[LookupMismatch]:
        for table in LOOKUPS:
            self._stored(table, 2**63 - 1)
        return self.mismatches


def _grouped(conn: psycopg.Connection[Any], node: str, table: str) -> Iterator[tuple[int, list[str]]]:
    """(seq, values) of one node's rows of a lookup table, in seq order (a server-side cursor)."""
    column = "ref" if table == "audit_ref" else "path"
    with conn.cursor(name=f"gk_lookup_{column}") as cur:
        cur.itersize = 20_000
        cur.execute(f"SELECT seq, {column} FROM {table} WHERE node = %s ORDER BY seq", (node,))
        seq: int | None = None
        values: list[str] = []
        for row_seq, value in cur:
            if row_seq != seq:
                if seq is not None:
                    yield seq, values
                seq, values = row_seq, []
            values.append(value)
        if seq is not None:
            yield seq, values
