"""``audit ship``: copy a node's local audit log into the fleet's PostgreSQL trail, idempotently.

The local log stays the durable record (the hook writes and seals it before it lets a push in); shipping runs after,
off the push's path (a timer, or ``gatekeeper audit ship --follow`` as a service). The database is the source of
where to resume: the node's last stored record (its ``seq`` and leaf) says which record comes next, so a shipper that
was killed mid-batch (the batch's transaction rolls back), a database that was down, or two shippers racing for the
same node (the primary key and the trigger's predecessor check let one win; the loser re-reads the head) neither
lose nor duplicate a record. A cursor file ``<log>.ship-<node>.json`` only saves re-reading the log from the start;
it is trusted only when it agrees with the database's head.

Before shipping, the local log must *continue* what the database holds: if it now has fewer records than the
central head, or its record ``next_seq - 1`` hashes differently, the local log was rolled back, truncated or forked.
The shipper then stores the node's current checkpoint as evidence (if it is not ahead of the stored records, the
trigger accepts it; ``verify --db`` reports it against the central records) and refuses with
:class:`ShipConflict`.

Only sealed records are shipped (those the node's checkpoint covers; the checkpoint is read *before* the log): the
writer takes back a record whose checkpoint it could not sign, and such a record must never reach the central copy.
After the records, that checkpoint is stored. With ``policy``, the policy file and the trust store in force are
archived by SHA-256 for ``verify --approvals`` from an export.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gatekeeper.audit import pgstore
from gatekeeper.audit.pgstore import DatabaseUnavailable
from gatekeeper.audit.log import MAX_RECORD_BYTES, sidecar
from gatekeeper.audit.note import Checkpoint, NoteError, split_note
from gatekeeper.audit.query import _line_ending_at, _loads
from gatekeeper.errors import AuditError, GatekeeperError

if TYPE_CHECKING:
    import psycopg

    from gatekeeper.policy.config import Policy

DEFAULT_BATCH = 5000
MAX_RETRY_DELAY = 10.0  # seconds between reconnection attempts while the database is down
_NODE_RE = re.compile(r"^[^\s\x00-\x1f\x7f]{1,200}$")


class ShipConflict(AuditError):
    """The local log does not continue the central copy (rolled back, truncated, forked, or damaged)."""


@dataclass(frozen=True)
class ShipResult:
    node: str
    shipped: int  # records inserted by this run
    head: int  # the node's record count in the database afterwards
    checkpoint_size: int | None  # the checkpoint stored (or already there), if any
    archived: int = 0  # policy / trust store files newly archived


def check_node_name(node: str) -> str:
    if not _NODE_RE.match(node):
        raise AuditError(f"invalid node name {node!r}", hint="1-200 characters, no spaces or control characters")
    return node


def default_node(log: Path) -> str:
    """The node's name in the fleet: its checkpoint origin (``audit.origin``), else the host name."""
    try:
        cp = Checkpoint.parse(split_note(sidecar(log, ".checkpoint").read_bytes())[0])
        return cp.origin
    except (OSError, NoteError):
        return os.uname().nodename


def cursor_path(log: Path, node: str) -> Path:
    safe = hashlib.sha256(node.encode()).hexdigest()[:16]
    return sidecar(log, f".ship-{safe}.json")


# -- reading the local log --------------------------------------------------------------------------------------------

def _leaf(line: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + line).digest()


def _check_tail(tail: bytes) -> None:
    if len(tail) > 4 * MAX_RECORD_BYTES:
        raise AuditError(f"audit log: a line longer than {4 * MAX_RECORD_BYTES} bytes: not an audit log")


def _lines_from(fh: Any, offset: int) -> Iterator[tuple[int, bytes]]:
    """(offset after the line, line) for each complete line from ``offset``; a torn tail is left for later."""
    from gatekeeper.audit.segments import complete_lines

    fh.seek(offset)
    pos = offset
    for line in complete_lines(fh, _check_tail):
        pos += len(line) + 1
        yield pos, line


def _conflict_missing(log: Path, node: str, count: int, head: pgstore.NodeHead) -> ShipConflict:
    return ShipConflict(
        f"node {node}: the local log {log} holds {count} records but the central trail already holds "
        f"{head.next_seq}: the local log was truncated or rolled back (records {count}..{head.next_seq - 1} "
        "are missing here)",
        hint="do not append on top of a restored log; investigate, and compare with: gatekeeper audit verify "
             f"--log {log} --db URL --node {node}",
    )


def _conflict_differs(log: Path, node: str, line: bytes, head: pgstore.NodeHead) -> ShipConflict:
    return ShipConflict(
        f"node {node}: local record {head.next_seq - 1} differs from the central copy (hash "
        f"{_leaf(line).hex()[:16]}... vs {head.last_leaf.hex()[:16]}...): the local log was rewritten or forked",
        hint=f"compare with: gatekeeper audit verify --log {log} --db URL --node {node}",
    )


def _from_cursor(fh: Any, log: Path, node: str, head: pgstore.NodeHead) -> int | None:
    """The offset in the current log file of record ``head.next_seq``, if the cursor says so and still holds."""
    try:
        doc = json.loads(cursor_path(log, node).read_text())
        if doc.get("node") != node or doc.get("seq") != head.next_seq or doc.get("leaf") != head.last_leaf.hex():
            return None
        offset = int(doc["offset"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if offset == 0:
        return 0 if head.next_seq == 0 else None
    line = _line_ending_at(fh, offset)
    return offset if line is not None and _leaf(line) == head.last_leaf else None


def local_records(fh: Any, log: Path, node: str, head: pgstore.NodeHead,
                  ) -> Iterator[tuple[int, bytes, int | None]]:
    """(seq, line, end offset in the current file or None) of every local record from ``head.next_seq`` on, after
    checking that record ``next_seq - 1`` is the central one. Follows rotated segments (``log.segment`` links,
    :mod:`gatekeeper.audit.segments`) when the records to ship start before the current file."""
    offset = _from_cursor(fh, log, node, head)
    if offset is not None:
        seq = head.next_seq
        for end, line in _lines_from(fh, offset):
            yield seq, line, end
            seq += 1
        return
    from gatekeeper.audit.segments import resolve_chain

    chain = resolve_chain(log)
    seq = chain.missing.records if chain.missing is not None else 0
    if seq > max(head.next_seq - 1, 0):
        raise AuditError(
            f"node {node}: the central trail holds {head.next_seq} records; the next ones are in a rotated segment "
            f"of {log} that is not next to it (the oldest file found starts at record {seq})",
            hint="put the rotated files back next to the log (gzip is fine) and ship again")
    for path in chain.files:
        current = path == log
        with (open(path, "rb") if not current else _nullcontext(fh)) as src:
            source: Iterator[tuple[int | None, bytes]] = (
                _lines_from(src, 0) if current else ((None, ln) for ln in _segment_lines(path)))
            for line_end, line in source:
                if seq == head.next_seq - 1 and _leaf(line) != head.last_leaf:
                    raise _conflict_differs(log, node, line, head)
                if seq >= head.next_seq:
                    yield seq, line, line_end
                seq += 1
    if seq < head.next_seq:
        raise _conflict_missing(log, node, seq, head)


def _segment_lines(path: Path) -> Iterator[bytes]:
    from gatekeeper.audit.segments import complete_lines, open_segment

    with open_segment(path) as fh:
        yield from complete_lines(fh, _check_tail)


class _nullcontext:
    def __init__(self, value: Any) -> None:
        self.value = value

    def __enter__(self) -> Any:
        return self.value

    def __exit__(self, *exc: object) -> None:
        return None


def _save_cursor(log: Path, node: str, seq: int, offset: int, leaf: bytes) -> None:
    """A hint only (validated against the database before use), so no fsync: a lost cursor costs one rescan."""
    path = cursor_path(log, node)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(json.dumps({"node": node, "seq": seq, "offset": offset, "leaf": leaf.hex()}) + "\n")
        os.replace(tmp, path)
    except OSError:
        pass


# -- database writes --------------------------------------------------------------------------------------------------

def _db_error(exc: Exception, node: str) -> AuditError:
    import psycopg

    state = getattr(exc, "sqlstate", None)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if state in (pgstore.SQLSTATE_PREV, pgstore.SQLSTATE_RAW):
        return ShipConflict(f"node {node}: the central trail refused a record: {text}",
                            hint="run: gatekeeper audit verify on the local log; it names the damaged record")
    if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
        return DatabaseUnavailable(f"the audit database is unavailable ({text}); nothing partial was stored",
                                   hint="records stay in the local log and ship on the next run")
    return AuditError(f"node {node}: the audit database refused the batch: {text}")


COPY_COLUMNS = ("node", "seq", "raw", "prev", "leaf", *pgstore.QUERY_COLUMNS)
_COPY_TYPES = ("text", "int8", "bytea", "bytea", "bytea", *(["text"] * len(pgstore.QUERY_COLUMNS)))


def database_row(node: str, seq: int, raw: bytes, prev: bytes, leaf: bytes | None = None) -> tuple[Any, ...]:
    """The row as the database stores it. leaf and the query columns are derived here, off the database's CPU; the
    insert trigger recomputes every one of them from raw and refuses the batch if one differs."""
    try:
        rec = _loads(raw)
    except (ValueError, RecursionError):
        rec = None  # not JSON: the database refuses it and names the record
    return (node, seq, raw, prev, _leaf(raw) if leaf is None else leaf, *pgstore.query_columns(rec))


Batch = list[tuple[int, bytes, bytes, bytes]]  # (seq, raw, prev, leaf)


def _insert_batch(conn: psycopg.Connection[Any], node: str, rows: Batch) -> None:
    """One COPY (binary: no escaping of raw on either side) and one commit per batch."""
    with conn.cursor() as cur:
        with cur.copy(f"COPY audit_record ({', '.join(COPY_COLUMNS)}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(list(_COPY_TYPES))
            for row in rows:
                copy.write_row(database_row(node, *row))
    conn.commit()


def _flush(conn: psycopg.Connection[Any], log: Path, node: str, rows: Batch, seq: int,
           offset: int | None, prev: bytes, on_batch: Callable[[int], None] | None, before: int) -> int:
    """Insert one batch (one transaction), then move the cursor (only for records of the current file)."""
    _insert_batch(conn, node, rows)
    if offset is not None:
        _save_cursor(log, node, seq, offset, prev)
    if on_batch is not None:
        on_batch(before + len(rows))
    return len(rows)


def _store_checkpoint(conn: psycopg.Connection[Any], node: str, note: bytes, cp: Checkpoint) -> bool:
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO audit_checkpoint (node, size, root, origin, note) VALUES (%s, %s, %s, %s, %s) "
            "ON CONFLICT DO NOTHING", (node, cp.size, cp.root, cp.origin, note))
    conn.commit()
    return True


def _archive(conn: psycopg.Connection[Any], items: list[tuple[str, str, str, bytes]]) -> int:
    added = 0
    with conn.cursor() as cur:
        for kind, store, name, content in items:
            cur.execute(
                "INSERT INTO audit_archive (sha256, kind, store, name, content) VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT DO NOTHING", (hashlib.sha256(content).hexdigest(), kind, store, name, content))
            added += cur.rowcount
    conn.commit()
    return added


def _hook_archive_items(log: Path) -> list[tuple[str, str, str, bytes]]:
    """The policies and trust stores the hook archived next to the log (gatekeeper.audit.archive), every one that was
    in force for a decision, by the SHA-256 the records name. Files are small and few; an unreadable or oversized
    one is left out (verify --approvals then says which policy it lacks)."""
    from gatekeeper.audit.archive import MAX_ARCHIVED_FILE, archive_dir

    items: list[tuple[str, str, str, bytes]] = []
    root = archive_dir(log)
    candidates = [("policy", p.stem, p.name, p) for p in sorted((root / "policy").glob("*.yaml"))]
    for folder in sorted((root / "trust").glob("*")):
        candidates += [(kind, folder.name, kind, folder / kind) for kind in ("allowed_signers", "revoked_keys")]
    for kind, store, name, path in candidates:
        try:
            if path.is_file() and path.stat().st_size <= MAX_ARCHIVED_FILE:
                items.append((kind, store, name, path.read_bytes()))
        except OSError:
            continue
    return items


def archive_items_for(log: Path, node: str, policy: Policy | None) -> list[tuple[str, str, str, bytes]]:
    """(kind, store, name, content): the node's vkey as installed, the policies and trust stores the hook archived,
    and (with ``policy``) the policy and trust store in force."""
    items = _hook_archive_items(log)
    from gatekeeper.audit.keys import default_key_path, public_path

    key_path = policy.audit.signing_key if policy is not None else default_key_path(log)
    pub = public_path(Path(key_path))
    if pub.is_file() and pub.stat().st_size < 4096:
        items.append(("vkey", node, pub.name, pub.read_bytes()))
    if policy is not None:
        from gatekeeper.trust.allowed_signers import AllowedSigners

        items.append(("policy", policy.source_sha256, Path(policy.source_path).name,
                      Path(policy.source_path).read_bytes()))
        trust = policy.trust
        try:
            store = AllowedSigners.load(trust.allowed_signers, revoked=trust.revoked_keys).sha256()
        except GatekeeperError:
            return items  # an invalid store approves nothing (the hook refuses every approval): nothing to re-verify
        items.append(("allowed_signers", store, "allowed_signers", Path(trust.allowed_signers).read_bytes()))
        if trust.revoked_keys is not None:
            items.append(("revoked_keys", store, "revoked_keys", Path(trust.revoked_keys).read_bytes()))
    return items


# -- the shipper ------------------------------------------------------------------------------------------------------

def _read_checkpoint(log: Path) -> tuple[bytes, Checkpoint] | None:
    try:
        note = sidecar(log, ".checkpoint").read_bytes()
        return note, Checkpoint.parse(split_note(note)[0])
    except FileNotFoundError:
        return None
    except (OSError, NoteError) as exc:
        raise AuditError(f"cannot read the checkpoint of {log}: {exc}",
                         hint=f"run: gatekeeper audit verify --log {log}") from None


def ship(
    log: Path,
    conn: psycopg.Connection[Any],
    *,
    node: str,
    batch: int = DEFAULT_BATCH,
    policy: Policy | None = None,
    max_records: int | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> ShipResult:
    """Ship the records of ``log`` the database does not hold yet, then the node's checkpoint.

    Args:
        log: the node's local audit log.
        conn: a connection as the writer role (INSERT only), not in autocommit.
        node: the node's name in the fleet (see :func:`default_node`).
        batch: records per transaction.
        policy: the policy in force on the node: archive it and its trust store.
        max_records: stop after this many (tests; a service ships everything).
        on_batch: called with the running count after each committed batch (progress, tests).

    Raises:
        ShipConflict: the local log does not continue the central copy.
        DatabaseUnavailable: the database went away; nothing partial was stored.
    """
    import psycopg

    log = Path(log)
    check_node_name(node)
    if not log.is_file():
        raise AuditError(f"audit log {log} does not exist or is not a file", hint="pass the log with --log FILE")
    checkpoint = _read_checkpoint(log)  # before the log: it never covers records this run cannot see
    shipped = 0
    stored_cp: int | None = None
    archived = -1
    stalls = 0
    last_head = -1
    while True:
        try:
            if archived < 0:
                archived = _archive(conn, archive_items_for(log, node, policy))
            head = pgstore.head(conn, node)
            if head.next_seq <= last_head:
                stalls += 1  # a conflict without anybody making progress: not a race, give up soon
            last_head = head.next_seq
            conn.rollback()  # end the read transaction: the head row is locked by the trigger, not by us
            with open(log, "rb") as fh:
                seq, prev = head.next_seq, head.last_leaf
                offset: int | None = None
                # Only sealed records: the writer takes back a record whose checkpoint it could not sign, so a line
                # past the checkpoint may still vanish. (A log without a signing key has no checkpoint: ship all.)
                limit = checkpoint[1].size if checkpoint is not None else None
                rows: Batch = []
                try:
                    for record_seq, line, end in local_records(fh, log, node, head):
                        if max_records is not None and shipped + len(rows) >= max_records:
                            break
                        if limit is not None and record_seq >= limit:
                            break
                        leaf = _leaf(line)
                        rows.append((record_seq, line, prev, leaf))
                        prev = leaf
                        seq = record_seq + 1
                        offset = end
                        if len(rows) >= batch:
                            shipped += _flush(conn, log, node, rows, seq, offset, prev, on_batch, shipped)
                            rows = []
                except ShipConflict:
                    if checkpoint is not None and checkpoint[1].size <= head.next_seq:
                        _store_checkpoint(conn, node, *checkpoint)  # evidence: verify --db compares it
                    raise
                if rows:
                    shipped += _flush(conn, log, node, rows, seq, offset, prev, on_batch, shipped)
            if checkpoint is not None and checkpoint[1].size <= seq:
                _store_checkpoint(conn, node, *checkpoint)
                stored_cp = checkpoint[1].size
            return ShipResult(node, shipped, seq, stored_cp, archived)
        except psycopg.Error as exc:
            try:
                conn.rollback()
            except psycopg.Error:
                pass
            if getattr(exc, "sqlstate", None) in (pgstore.SQLSTATE_SEQ, "23505") and stalls < 3:
                continue  # another shipper for this node got there first: re-read the head and go on from it
            raise _db_error(exc, node) from None


def ship_forever(
    log: Path, url: str, *, node: str, interval: float = 5.0, policy: Policy | None = None,
    report: Callable[[str], None] = print, stop: Callable[[], bool] = lambda: False,
) -> int:
    """The ``--follow`` service: ship, sleep, repeat; reconnect with backoff while the database is down.

    Returns 1 on a :class:`ShipConflict` (a local log that no longer continues the central copy needs a person).
    """
    conn = None
    delay = interval
    while not stop():
        if not Path(log).exists():  # a new node: nothing recorded yet
            time.sleep(interval)
            continue
        try:
            if conn is None or conn.closed:
                conn = pgstore.connect(url)
            result = ship(log, conn, node=node, policy=policy)
            if result.shipped:
                report(f"node {node}: shipped {result.shipped} record(s), central head {result.head}")
            delay = interval
        except ShipConflict as exc:
            report(f"gatekeeper: error: {exc.message}")
            return 1
        except GatekeeperError as exc:  # unavailable (or a passing problem): records stay local, retry with backoff
            report(f"gatekeeper: warning: {exc.message}; retrying in {delay:g}s")
            if conn is not None:
                try:
                    conn.close()
                except Exception:  # noqa: BLE001  (a dead connection may fail to close; it is dropped anyway)
                    pass
            conn = None
            time.sleep(delay)
            delay = min(delay * 2, MAX_RETRY_DELAY)
            continue
        time.sleep(interval)
    return 0
