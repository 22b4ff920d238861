"""The auditor's verbs over the fleet's PostgreSQL trail: query, verify, export (and the records for the report).

Same guarantees as on a file, by the same code: ``verify`` writes each node's rows (``raw``, in ``seq`` order) and the
checkpoints the database holds for it into a private temporary copy and runs :func:`gatekeeper.audit.verify.verify_log`
on it (canonical form, chain, Merkle roots, every stored checkpoint; equal sizes with different roots are fork
evidence). On top of that it checks what only a database can get wrong: derived columns (``leaf``, the query
columns) that no longer follow from ``raw`` (edited behind the triggers' back: queries would lie) and a node head that
disagrees with the rows. A node's local log is checked against the central copy with
``verify --log FILE --db URL --node N``: the central checkpoints act as the auditor's trusted checkpoints, so a local
log that was rolled back or forked fails.

``query`` narrows candidates with the indexed columns and the path/ref tables, then decodes each candidate's ``raw``
and applies the exact :class:`gatekeeper.audit.query.Filters` predicate (as the file index does): a tampered derived
column can hide a record from a query (``verify`` reports the row) but never invent or alter one.

``export`` writes the offline bundle: per node ``nodes/<node>/audit.jsonl`` with its checkpoints and vkey as shipped,
plus archived policies and trust stores; every node's folder verifies with the file verifier, without the database.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from gatekeeper.audit import lookups, pgstore
from gatekeeper.audit.query import Filters, Glob, _loads
from gatekeeper.audit.verify import Issue, VerifyReport, save_trusted_checkpoint, verify_log
from gatekeeper.errors import AuditError

if TYPE_CHECKING:
    import psycopg

    from gatekeeper.policy.config import Policy

Record = dict[str, Any]
LOG_NAME = "audit.jsonl"
VKEY_NAME = "audit-signing.key.pub"
_FETCH = 2000
MAX_DB_ISSUES = 50


def node_dir_name(node: str) -> str:
    """A file name for a node (its name may hold '/', as an origin does)."""
    return quote(node, safe="") or "_"


def _nodes(conn: psycopg.Connection[Any], nodes: Sequence[str] | None) -> list[str]:
    found = [h.node for h in pgstore.heads(conn, nodes)]
    missing = sorted(set(nodes or ()) - set(found))
    if missing:
        raise AuditError(f"no records for node(s) {', '.join(missing)} in the audit database",
                         hint="list the nodes with: gatekeeper audit verify --db URL")
    return found


# -- dumping one node (verify and export share it) ---------------------------------------------------------------------

@dataclass(frozen=True)
class NodeDump:
    node: str
    folder: Path
    records: int
    log_sha256: str
    checkpoints: tuple[Path, ...]  # every stored checkpoint, by size
    latest: Path | None  # <log>.checkpoint: the largest stored one
    vkey: Path | None
    derived_mismatches: tuple[tuple[int, str], ...] = ()  # (seq, column) of rows whose columns contradict raw
    lookup_mismatches: tuple[lookups.LookupMismatch, ...] = ()  # records whose lookup rows are not theirs


def dump_node(conn: psycopg.Connection[Any], node: str, folder: Path, *, check_lookups: bool = False) -> NodeDump:
    """Write ``folder/audit.jsonl``, ``audit.jsonl.checkpoint`` (the largest stored), ``checkpoints/*`` (all) and the
    vkey as shipped. Checkpoints are read before the rows: inside one REPEATABLE READ snapshot anyway. With
    ``check_lookups``, each record's ref/path lookup rows are compared with what its raw says."""
    folder.mkdir(parents=True, exist_ok=True)
    stored = pgstore.checkpoints(conn, node)
    cp_dir = folder / "checkpoints"
    paths: list[Path] = []
    if stored:
        cp_dir.mkdir(exist_ok=True)
    for cp in stored:
        path = cp_dir / f"{cp.size:012d}-{cp.root.hex()[:16]}.checkpoint"
        path.write_bytes(cp.note)
        paths.append(path)
    latest = None
    if stored:
        latest = folder / (LOG_NAME + ".checkpoint")
        latest.write_bytes(pgstore.first_largest(stored).note)
    digest = hashlib.sha256()
    count = 0
    mismatches: list[tuple[int, str]] = []
    lookup_check = lookups.LookupCheck(conn, node, limit=MAX_DB_ISSUES) if check_lookups else None
    with open(folder / LOG_NAME, "wb") as out:
        for row in pgstore.stored_rows(conn, node):
            seq, raw = row[0], row[1]
            line = raw + b"\n"
            out.write(line)
            digest.update(line)
            count += 1
            if len(mismatches) < MAX_DB_ISSUES:
                what = derived_mismatch(raw, row[2:])
                if what is not None:
                    mismatches.append((seq, what))
            if lookup_check is not None:
                try:
                    rec = _loads(raw)
                except (ValueError, RecursionError):
                    rec = None  # the chain check reports it
                lookup_check.feed(seq, rec)
    vkey = None
    for *_, content in pgstore.archive_items(conn, kinds=("vkey",), store=node):
        vkey = folder / VKEY_NAME
        vkey.write_bytes(content)
    return NodeDump(node, folder, count, digest.hexdigest(), tuple(paths), latest, vkey, tuple(mismatches),
                    tuple(lookup_check.finish()) if lookup_check is not None else ())


def derived_mismatch(raw: bytes, columns: Sequence[Any]) -> str | None:
    """The first derived column (pgstore.DERIVED) that no longer follows from ``raw`` as the trigger computes it,
    or None. A row edited behind the triggers' back makes queries on that column lie; verify names it."""
    leaf, prev, *query = columns
    if bytes(leaf or b"") != hashlib.sha256(b"\x00" + raw).digest():
        return "leaf"
    try:
        rec = json.loads(raw)
    except (ValueError, RecursionError):
        return "raw (no longer JSON)"
    if not isinstance(rec, dict):
        return "raw (no longer an object)"
    if (bytes(prev).hex() if prev is not None else None) != rec.get("prev"):
        return "prev"
    for name, actual, expected in zip(pgstore.QUERY_COLUMNS, query, pgstore.query_columns(rec)):
        if actual != expected:
            return name
    return None


# -- verify -----------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class NodeVerify:
    node: str
    report: VerifyReport
    db_errors: tuple[Issue, ...] = ()
    trusted: str | None = None  # the trusted checkpoint file it was checked against
    trusted_updated: bool = False

    @property
    def ok(self) -> bool:
        return self.report.ok and not self.db_errors


@dataclass(frozen=True)
class FleetVerifyReport:
    database: str
    nodes: tuple[NodeVerify, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return bool(self.nodes) and all(n.ok for n in self.nodes)

    def to_dict(self) -> dict[str, Any]:
        return {"database": self.database, "ok": self.ok, "nodes": [
            {"node": n.node, "ok": n.ok, "trusted_checkpoint": n.trusted, "trusted_checkpoint_updated":
             n.trusted_updated, "db_errors": [vars(i) for i in n.db_errors], **n.report.to_dict()}
            for n in self.nodes]}


def trusted_path(state_dir: Path, node: str) -> Path:
    return Path(state_dir) / (node_dir_name(node) + ".checkpoint")


def _db_checks(conn: psycopg.Connection[Any], node: str, dump: NodeDump) -> list[Issue]:
    issues = []
    for seq, what in dump.derived_mismatches:
        issues.append(Issue("db-derived", f"node {node}: row seq {seq}: column '{what}' no longer follows from its "
                            "raw record (edited behind the triggers' back: queries on it are wrong)", seq + 1, seq))
    for m in dump.lookup_mismatches:
        what = "; ".join(part for part in (
            f"missing {', '.join(map(repr, m.missing[:5]))}" if m.missing else "",
            f"not in the record {', '.join(map(repr, m.extra[:5]))}" if m.extra else "") if part)
        issues.append(Issue("db-lookup", f"node {node}: row seq {m.seq}: {m.table} rows differ from its raw record "
                            f"({what}): --path/--ref queries see the wrong records", m.seq + 1, m.seq))
    head = pgstore.head(conn, node)
    if head.next_seq != dump.records:
        issues.append(Issue("db-head", f"node {node}: the highest seq is {head.next_seq - 1} but {dump.records} rows "
                            "are stored: rows were deleted behind the triggers' back"))
    return issues


def verify_db(
    conn: psycopg.Connection[Any],
    *,
    database: str,
    nodes: Sequence[str] | None = None,
    vkeys: list[str] | None = None,
    vkey_files: Sequence[Path] = (),
    state_dir: Path | None = None,
    update_trusted: bool = False,
) -> FleetVerifyReport:
    """Verify every node's chain in the database against its stored checkpoints (module docstring).

    Args:
        vkeys, vkey_files: the pinned verifier keys of the nodes (all of them; each node's checkpoints must verify
            under one). Default: each node's vkey as shipped (convenience; the report says so).
        state_dir: the auditor's trusted checkpoints, one file per node (``<node>.checkpoint``): rollback and fork
            detection against the last audit; with ``update_trusted`` moved forward after a clean result.
    """
    _snapshot(conn)
    results = []
    with tempfile.TemporaryDirectory(prefix="gk-fleet-verify-") as tmp:
        for node in _nodes(conn, nodes):
            dump = dump_node(conn, node, Path(tmp) / node_dir_name(node), check_lookups=True)
            trusted = trusted_path(state_dir, node) if state_dir is not None else None
            files = list(vkey_files)
            if not vkeys and not files and dump.vkey is not None:
                files = [dump.vkey]
            report = verify_log(dump.folder / LOG_NAME, vkeys=vkeys, vkey_files=files,
                                checkpoints=[p for p in dump.checkpoints if dump.latest is None
                                             or p.read_bytes() != dump.latest.read_bytes()],
                                trusted_checkpoint=trusted if trusted is not None and trusted.exists() else None,
                                jobs=1)
            report = _relabel(report, node)
            db_errors = _db_checks(conn, node, dump)
            updated = False
            if update_trusted and trusted is not None and report.ok and not db_errors:
                trusted.parent.mkdir(parents=True, exist_ok=True)
                updated = save_trusted_checkpoint(report, trusted)
            results.append(NodeVerify(node, report, tuple(db_errors),
                                      str(trusted) if trusted is not None and trusted.exists() else None, updated))
    conn.rollback()
    return FleetVerifyReport(pgstore.redact(database), tuple(results))


def _relabel(report: VerifyReport, node: str) -> VerifyReport:
    """Say "node X" instead of a temporary file name (line N of the dump is the node's row seq N-1)."""
    from dataclasses import replace

    return replace(report, log=f"db:{node}")


def _snapshot(conn: psycopg.Connection[Any]) -> None:
    import psycopg

    conn.rollback()
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ


def central_checkpoints(conn: psycopg.Connection[Any], node: str, folder: Path) -> tuple[Path | None, list[Path]]:
    """The checkpoints the database holds for ``node`` as files (for ``verify --log --db``): the first received of
    the largest size (the trusted one), and all others (a node that forked after shipping has stored its forked
    checkpoint too: equal sizes with different roots are then reported as fork evidence)."""
    stored = pgstore.checkpoints(conn, node)
    conn.rollback()
    if not stored:
        return None, []
    trusted = pgstore.first_largest(stored)
    paths = []
    for i, cp in enumerate(stored):
        path = folder / f"central-{i}.checkpoint"
        path.write_bytes(cp.note)
        if cp is trusted:
            trusted_path_ = path
        else:
            paths.append(path)
    return trusted_path_, paths


# -- query ------------------------------------------------------------------------------------------------------------

def _glob_conditions(glob: Glob | None, table: str, column: str, args: list[Any]) -> str | None:
    """A narrowing query over the ref/path table for a glob (the (node, seq) it may match), or None when it cannot
    narrow safely.

    Paths in ``audit_path`` are lower(normalize(NFC)) as PostgreSQL computes them; only ASCII prefix and literals
    are used for paths so that Python's and PostgreSQL's case mappings cannot disagree (narrowing must return a
    superset; the exact match runs in Python)."""
    if glob is None:
        return None
    conds: list[str] = []
    local: list[Any] = []
    usable = (lambda s: s.isascii()) if glob.is_path else (lambda s: True)
    if glob.prefix and usable(glob.prefix):
        conds.append(f"{column} >= %s AND {column} < %s")
        local.extend((glob.prefix, glob.prefix[:-1] + chr(ord(glob.prefix[-1]) + 1)))
    for literal in glob.literals:
        if usable(literal):
            conds.append(f"strpos({column}, %s) > 0")
            local.append(literal)
    if not conds:
        return None
    args.extend(local)
    return f"SELECT DISTINCT node, seq FROM {table} WHERE {' AND '.join(conds)}"


def query_sql(flt: Filters, nodes: Sequence[str] | None = None, *, skip_lookups: Sequence[str] = (),
              ) -> tuple[str, list[Any]]:
    """The narrowing SQL for ``flt``: a superset of the matches (the exact predicate runs on each raw after).

    A path/ref glob narrows through its lookup table (not when named in ``skip_lookups``: untrusted); with record
    columns constrained too, the candidates are first checked against ``audit_record_facts`` (index only), so only
    the rows of real candidates are read."""
    where: list[str] = []
    args: list[Any] = []
    decision = "break-glass" if flt.break_glass and flt.decision is None else flt.decision
    for column, value in (("repo", flt.repo), ("pusher", flt.pusher), ("decision", decision), ("type", flt.type)):
        if value is not None:
            where.append(f"r.{column} = %s")
            args.append(value)
    if flt.since is not None:
        where.append("r.ts >= %s")
        args.append(flt.since)
    if flt.until is not None:
        where.append("r.ts < %s")
        args.append(flt.until)
    if nodes:
        where.append("r.node = ANY(%s)")
        args.append(list(nodes))
    # The glob candidates are computed once each (MATERIALIZED) and joined on the primary key: without that, a
    # planner short of statistics (right after a bulk load) re-ran the range scan per candidate row (7 s at 150k).
    ctes: list[str] = []
    cte_args: list[Any] = []
    for glob, table, column in ((flt.ref, "audit_ref", "ref"), (flt.path, "audit_path", "path")):
        narrowing = _glob_conditions(glob, table, column, cte_args) if table not in skip_lookups else None
        if narrowing is not None:
            ctes.append(f"g{len(ctes)} AS MATERIALIZED ({narrowing})")
    joins = "".join(f" JOIN g{i} ON g{i}.node = r.node AND g{i}.seq = r.seq" for i in range(len(ctes)))
    conditions = (" WHERE " + " AND ".join(where)) if where else ""
    if ctes and where:
        ctes.append(f"c AS MATERIALIZED (SELECT r.node, r.seq FROM audit_record r{joins}{conditions})")
        joins, conditions = " JOIN c ON c.node = r.node AND c.seq = r.seq", ""
        args, cte_args = [], cte_args + args
    sql = (("WITH " + ", ".join(ctes) + " ") if ctes else "") + "SELECT r.node, r.raw FROM audit_record r"
    return sql + joins + conditions + " ORDER BY r.ts, r.node, r.seq", cte_args + args


def query_db(conn: psycopg.Connection[Any], flt: Filters, *, nodes: Sequence[str] | None = None,
             warn: Callable[[str], None] | None = None) -> Iterator[tuple[str, Record]]:
    """(node, record) for every record matching ``flt``, ordered by time, node and seq.

    The lookup tables a path/ref glob would narrow through are used only while their row counts are the ones the
    insert trigger recorded; otherwise that glob is matched on every record's raw (slow, exact) and ``warn`` says so.
    """
    conn.rollback()
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")  # the count check and the rows: one snapshot
        conn.execute("SET LOCAL work_mem = '64MB'")  # sort the matches in memory (wide rows spilled at 4 MB)
        tables = [t for glob, t in ((flt.ref, "audit_ref"), (flt.path, "audit_path")) if glob is not None]
        untrusted = lookups.untrusted_lookups(conn, tables, nodes) if tables else {}
        for table, difference in untrusted.items():
            if warn is not None:
                warn(f"the lookup table {table} holds {abs(difference)} row(s) {'fewer' if difference < 0 else 'more'}"
                     " than the insert trigger stored: rows were changed behind the triggers' back; this query "
                     "matched every record instead (slower, exact); run: gatekeeper audit verify --db")
        sql, args = query_sql(flt, nodes, skip_lookups=list(untrusted))
        with conn.cursor(name="gk_fleet_query", binary=True) as cur:
            cur.itersize = _FETCH
            cur.execute(sql, args)
            for node, raw in cur:
                try:
                    rec = _loads(raw)
                except (ValueError, RecursionError):
                    continue
                if isinstance(rec, dict) and flt.matches(rec):
                    yield node, rec


def node_records(conn: psycopg.Connection[Any], node: str) -> Iterator[Record]:
    """Every record of one node in seq order (for verify --approvals and break-glass tracking)."""
    for _, raw in pgstore.raw_lines(conn, node):
        try:
            rec = json.loads(raw)
        except (ValueError, RecursionError):
            continue
        if isinstance(rec, dict):
            yield rec


def unreviewed_break_glass_db(conn: psycopg.Connection[Any], flt: Filters, *, nodes: Sequence[str] | None = None,
                              policy: Policy | None = None) -> Iterator[tuple[str, Record]]:
    """(node, record) of the break-glass pushes matching ``flt`` (and ``nodes``) not (fully) reviewed yet.

    Reviews are searched in every node's records: each node's decisions in its log order, the nodes merged by
    time (streamed; no sort of the whole trail): a break-glass push on one node is reviewed by an approval pushed
    through another (one GitLab/Gitea fleet, one repository, many nodes). Order across nodes is their clocks' (an
    approval must be recorded after the push it reviews).
    """
    import heapq

    from gatekeeper.audit.breakglass import BreakGlassTracker

    def decisions(node: str) -> Iterator[tuple[tuple[str, str, int], Record]]:
        for i, rec in enumerate(node_records(conn, node)):
            event = rec.get("event")
            if isinstance(event, dict) and event.get("type") == "push.decision":
                ts = rec.get("ts")
                yield (ts if isinstance(ts, str) else "", node, i), rec

    tracker = BreakGlassTracker(policy=policy)
    origin: list[str] = []  # the node of each tracked break-glass record, in tracker.statuses order
    conn.rollback()
    for (_, node, _), rec in heapq.merge(*(decisions(n) for n in _nodes(conn, None)), key=lambda item: item[0]):
        tracker.feed(rec)
        if len(tracker.statuses) > len(origin):
            origin.append(node)
    conn.rollback()
    for node, status in zip(origin, tracker.statuses):
        if not status.reviewed and (not nodes or node in nodes) and flt.matches(status.record):
            yield node, status.record


def node_names(conn: psycopg.Connection[Any], nodes: Sequence[str] | None = None) -> list[str]:
    names = _nodes(conn, nodes)
    conn.rollback()
    return names


# -- export -----------------------------------------------------------------------------------------------------------

def write_archive(conn: psycopg.Connection[Any], folder: Path) -> Path:
    """The archived policies (``policies/<sha256>.yaml``) and trust stores (``trust/<store>/allowed_signers`` and
    ``revoked_keys``, a layout ``verify --approvals --trust-dir`` reads). Returns the trust folder."""
    for store, kind, _, content in pgstore.archive_items(conn, kinds=("policy", "allowed_signers", "revoked_keys")):
        if kind == "policy" and store != hashlib.sha256(content).hexdigest():
            continue  # records name a policy by its content's SHA-256: a copy filed under another name is not one
        path = folder / "policies" / f"{store}.yaml" if kind == "policy" else folder / "trust" / store / kind
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return folder / "trust"


BUNDLE_README = """gatekeeper fleet audit export
=============================

One folder per node under nodes/: {log} (that node's canonical JSON Lines, exactly as shipped), {log}.checkpoint
(the largest signed checkpoint the central store held), checkpoints/ (every checkpoint it held), {vkey} (the node's
verifier key as shipped: compare it with the key you pinned). policies/ and trust/ hold the policies and trust stores
the nodes archived. MANIFEST.json lists sizes and SHA-256 of every file.

Verify each node offline (no database needed; pin the vkeys you obtained out of band):

{commands}
"""


@dataclass(frozen=True)
class FleetExport:
    dest: Path
    nodes: dict[str, int]  # node -> records


def export_db(conn: psycopg.Connection[Any], dest: Path, *, nodes: Sequence[str] | None = None) -> FleetExport:
    """Write the bundle to ``dest`` (a new folder, or a ``.tar.gz``/``.tgz`` file). One REPEATABLE READ snapshot."""
    dest = Path(dest)
    if dest.exists():
        raise AuditError(f"refusing to overwrite {dest}", hint="choose a new folder or file name")
    tarball = dest.name.endswith((".tar.gz", ".tgz"))
    _snapshot(conn)
    counts: dict[str, int] = {}
    try:
        with tempfile.TemporaryDirectory(prefix=".audit-export-", dir=dest.parent) as tmp:
            name = dest.name.removesuffix(".tar.gz").removesuffix(".tgz") if tarball else dest.name
            folder = Path(tmp) / name
            folder.mkdir()
            files: dict[str, dict[str, Any]] = {}
            commands = []
            for node in _nodes(conn, nodes):
                dump = dump_node(conn, node, folder / "nodes" / node_dir_name(node))
                counts[node] = dump.records
                rel = f"nodes/{node_dir_name(node)}"
                extra = " ".join(f"--checkpoint {rel}/checkpoints/{p.name}" for p in dump.checkpoints[-3:])
                commands.append(f"    gatekeeper audit verify --log {rel}/{LOG_NAME} --vkey '<{node} vkey>' {extra}")
            write_archive(conn, folder)
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    data = path.read_bytes()
                    files[str(path.relative_to(folder))] = {"bytes": len(data),
                                                            "sha256": hashlib.sha256(data).hexdigest()}
            manifest = {"format": "gatekeeper-fleet-export/v1", "nodes": counts, "files": files}
            (folder / "MANIFEST.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
            (folder / "README.txt").write_text(BUNDLE_README.format(
                log=LOG_NAME, vkey=VKEY_NAME, commands="\n".join(commands) or "    (no nodes)"))
            if tarball:
                with tarfile.open(dest, "w:gz") as tar:
                    tar.add(folder, arcname=folder.name)
            else:
                shutil.move(str(folder), dest)
    except OSError as exc:
        raise AuditError(f"cannot export the fleet's audit trail to {dest}: {exc.strerror or exc}") from None
    finally:
        conn.rollback()
    return FleetExport(dest, counts)
