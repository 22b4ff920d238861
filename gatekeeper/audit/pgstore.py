"""The fleet's audit trail in PostgreSQL: every node's records and signed checkpoints, insert-only (reference B4).

Tables (all insert-only: ``BEFORE UPDATE OR DELETE`` and ``BEFORE TRUNCATE`` triggers raise; the writer role holds
``INSERT`` and ``SELECT`` only)::

    audit_node        one row per node (registered by its record 0)
    audit_record      (node, seq) -> raw: the exact canonical line of the node's local log; leaf and the query
                      columns (ts, type, repo, pusher, decision) are derived by the trigger from raw
    audit_path        (node, seq, path): every changed path, NFC-normalised and lower-cased, for --path queries
    audit_ref         (node, seq, ref): every updated ref, for --ref queries
    audit_batch       (node, first_seq) -> how many ref and path rows the trigger stored for that batch
    audit_checkpoint  (node, size, root) -> the node's C2SP signed checkpoint note as shipped
    audit_archive     (sha256) -> a policy or trust store that was in force (for verify --approvals offline)

The insert trigger (SECURITY DEFINER, once per statement over the inserted rows) checks each node's chain as the file
writer does: record ``seq - 1`` of the node must be stored or in the same batch, ``prev`` (column and inside ``raw``)
must be its leaf, the primary key refuses a second record for a ``seq``, ``raw`` must be one line of UTF-8 JSON whose
``seq``/``prev`` agree. The shipper sends ``leaf`` and the query columns (deriving them is cheaper on the node); the
trigger recomputes each from ``raw`` and refuses the whole batch on the first difference, so a compromised writer can
make a batch fail, never store a row whose columns lie. The same pass fills ``audit_ref``/``audit_path`` and records
their counts in ``audit_batch`` (gatekeeper.audit.lookups). A checkpoint is accepted only for records already stored
and only if its note's size and root are the columns' (the signature is the auditor's check: the database holds no
keys).

These are controls, not evidence: a superuser can disable triggers and edit rows. ``audit verify --db`` therefore
re-derives everything from ``raw`` with the same verifier as for a file and names the row that no longer chains.

Only the fleet verbs import this module (psycopg is the optional ``gatekeeper[postgres]`` extra); the hook never does.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gatekeeper.errors import AuditError

if TYPE_CHECKING:
    import psycopg

GENESIS_LEAF = bytes(32)
SCHEMA_VERSION = "1"
MAX_NODE_NAME = 200
_ROLE_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

# Custom SQLSTATEs raised by the triggers, so callers can tell a chain conflict from an outage.
SQLSTATE_SEQ = "GK001"  # seq is not the node's next_seq (someone else shipped it, or a gap)
SQLSTATE_PREV = "GK002"  # prev does not chain onto the node's last leaf (a different history: rollback or fork)
SQLSTATE_RAW = "GK003"  # raw is not one line of JSON agreeing with its columns
SQLSTATE_CHECKPOINT = "GK004"  # checkpoint ahead of the stored records, or its note disagrees with its columns
SQLSTATE_READONLY = "GK005"  # update, delete or truncate attempted

SCHEMA_SQL = r"""
CREATE TABLE IF NOT EXISTS audit_meta (key text PRIMARY KEY, value text NOT NULL);

CREATE TABLE IF NOT EXISTS audit_node (
    node text PRIMARY KEY CHECK (node <> '' AND length(node) <= 200 AND node !~ '[[:cntrl:][:space:]]'),
    first_seen timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS audit_record (
    node text NOT NULL,
    seq bigint NOT NULL CHECK (seq >= 0),
    raw bytea NOT NULL,
    prev bytea NOT NULL,
    leaf bytea,
    ts text,
    type text,
    repo text,
    pusher text,
    decision text,
    shipped_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (node, seq)
);
-- Query indexes. decision is the repo and pusher indexes' third key column: "repo/pusher + since" is one ordered
-- range, and "repo/pusher + decision" is checked in the index, so only the matching rows' heap pages are read (a
-- BitmapAnd of two single-column indexes read three times as many). audit_record_facts answers "is this candidate of
-- a path/ref glob also of this repo/decision/...?" from the index alone, so only the matches' rows are read.
CREATE INDEX IF NOT EXISTS audit_record_ts ON audit_record (ts);
CREATE INDEX IF NOT EXISTS audit_record_repo_ts_decision ON audit_record (repo, ts, decision);
CREATE INDEX IF NOT EXISTS audit_record_pusher_ts_decision ON audit_record (pusher, ts, decision);
CREATE INDEX IF NOT EXISTS audit_record_decision_ts ON audit_record (decision, ts);
CREATE INDEX IF NOT EXISTS audit_record_facts ON audit_record (node, seq) INCLUDE (ts, type, repo, pusher, decision);
DROP INDEX IF EXISTS audit_record_repo_ts;
DROP INDEX IF EXISTS audit_record_pusher_ts;

CREATE TABLE IF NOT EXISTS audit_path (node text NOT NULL, seq bigint NOT NULL, path text COLLATE "C" NOT NULL);
CREATE INDEX IF NOT EXISTS audit_path_path ON audit_path (path, node, seq);
CREATE TABLE IF NOT EXISTS audit_ref (node text NOT NULL, seq bigint NOT NULL, ref text COLLATE "C" NOT NULL);
CREATE INDEX IF NOT EXISTS audit_ref_ref ON audit_ref (ref, node, seq);

-- What the insert trigger put into audit_ref and audit_path, per statement and node: a query trusts the lookup
-- tables only while their row counts are these sums (a superuser deleting lookup rows would hide records from
-- --path/--ref queries; verify --db names the missing rows).
CREATE TABLE IF NOT EXISTS audit_batch (
    node text NOT NULL,
    first_seq bigint NOT NULL,
    last_seq bigint NOT NULL,
    refs bigint NOT NULL,
    paths bigint NOT NULL,
    PRIMARY KEY (node, first_seq)
);

CREATE TABLE IF NOT EXISTS audit_checkpoint (
    node text NOT NULL,
    size bigint NOT NULL CHECK (size >= 0),
    root bytea NOT NULL,
    origin text NOT NULL,
    note bytea NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (node, size, root)
);

CREATE TABLE IF NOT EXISTS audit_archive (
    sha256 text NOT NULL CHECK (encode(sha256(content), 'hex') = sha256),
    kind text NOT NULL CHECK (kind IN ('policy', 'allowed_signers', 'revoked_keys', 'vkey')),
    store text NOT NULL,  -- what records name: config_sha256 (= sha256), trust_store_sha256, or the node (vkey)
    name text NOT NULL,
    content bytea NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, store, sha256)
);

-- One statement-level check per batch (a COPY or an INSERT), over the inserted rows as a set: a row-level trigger
-- cost ~80 us per record in PL/pgSQL calls, a predecessor lookup and a second JSON parse; this costs one index probe
-- per node and one parse per record. Nothing is trusted from the writer (it may be a compromised node): every
-- column it sent is recomputed from raw here and the whole statement is refused on the first disagreement.
CREATE OR REPLACE FUNCTION audit_record_batch() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, @SCHEMA@, pg_temp AS $fn$
DECLARE
    bad record;
BEGIN
    -- 1. Continuity, before parsing anything. Within the batch each row chains onto the row before it (the window);
    -- the batch's first row of a node chains onto the stored record seq - 1 (rows of this statement are visible
    -- here, but that one is not among them: it is the node's lowest seq in the batch). The primary key (node, seq)
    -- has already refused a second row for a seq, in the batch or stored. A leaf sent by the writer is used for
    -- chaining only after it is checked against raw, in the same pass.
    SELECT c.node, c.seq, c.prev, c.pred_leaf, c.problem INTO bad FROM (
        SELECT b.node, b.seq, b.prev, b.pred_leaf,
               CASE WHEN b.pred_missing THEN 'gap'
                    WHEN b.prev IS DISTINCT FROM b.pred_leaf THEN 'prev'
                    WHEN b.leaf IS DISTINCT FROM sha256('\x00'::bytea || b.raw) THEN 'leaf'
                    WHEN position('\x0a'::bytea IN b.raw) > 0 THEN 'newline' END AS problem
        FROM (
            SELECT w.*,
                   CASE WHEN w.lag_seq IS NOT NULL THEN w.lag_seq <> w.seq - 1
                        WHEN w.seq = 0 THEN false
                        ELSE NOT EXISTS (SELECT 1 FROM audit_record s WHERE s.node = w.node AND s.seq = w.seq - 1)
                   END AS pred_missing,
                   CASE WHEN w.lag_seq IS NOT NULL THEN w.lag_leaf
                        WHEN w.seq = 0 THEN '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea
                        ELSE (SELECT s.leaf FROM audit_record s WHERE s.node = w.node AND s.seq = w.seq - 1)
                   END AS pred_leaf
            FROM (SELECT r.node, r.seq, r.prev, r.leaf, r.raw,
                         lag(r.seq) OVER n AS lag_seq, lag(r.leaf) OVER n AS lag_leaf
                  FROM new_rows r WINDOW n AS (PARTITION BY r.node ORDER BY r.seq)) w
        ) b
    ) c WHERE c.problem IS NOT NULL ORDER BY c.node, c.seq LIMIT 1;
    IF FOUND THEN
        IF bad.problem = 'gap' THEN
            RAISE EXCEPTION 'gatekeeper audit: node % has no record % (yet): seq % would leave a gap', bad.node,
                bad.seq - 1, bad.seq USING ERRCODE = 'GK001';
        ELSIF bad.problem = 'prev' THEN
            RAISE EXCEPTION 'gatekeeper audit: node % seq %: prev % does not chain onto record % (%)', bad.node,
                bad.seq, encode(bad.prev, 'hex'), bad.seq - 1, encode(bad.pred_leaf, 'hex') USING ERRCODE = 'GK002';
        ELSIF bad.problem = 'leaf' THEN
            RAISE EXCEPTION 'gatekeeper audit: node % seq %: leaf is not SHA-256(0x00 || raw)', bad.node, bad.seq
                USING ERRCODE = 'GK003';
        ELSE
            RAISE EXCEPTION 'gatekeeper audit: node % seq %: raw holds a newline', bad.node, bad.seq
                USING ERRCODE = 'GK003';
        END IF;
    END IF;
    INSERT INTO audit_node (node) SELECT node FROM new_rows WHERE seq = 0 ON CONFLICT (node) DO NOTHING;
    -- 2. One parse per record: raw must be a JSON object whose seq/prev are the row's and whose query columns are
    -- the ones sent; the same parse fills the ref and path tables (rolled back with the statement on refusal).
    BEGIN
        WITH d AS MATERIALIZED (
            SELECT r.node, r.seq, r.prev, r.ts, r.type, r.repo, r.pusher, r.decision,
                   convert_from(r.raw, 'UTF8')::jsonb AS j
            FROM new_rows r
        ), e AS MATERIALIZED (
            SELECT d.*, CASE WHEN jsonb_typeof(d.j->'event') = 'object' THEN d.j->'event' ELSE '{}'::jsonb END AS ev
            FROM d
        ), ups AS MATERIALIZED (
            SELECT e.node, e.seq, u FROM e, LATERAL jsonb_array_elements(
                CASE WHEN jsonb_typeof(e.ev->'updates') = 'array' THEN e.ev->'updates' ELSE '[]' END) u
            WHERE jsonb_typeof(u) = 'object'
        ), refs AS (
            INSERT INTO audit_ref (node, seq, ref)
                SELECT node, seq, u->>'ref' FROM ups WHERE jsonb_typeof(u->'ref') = 'string'
            RETURNING node
        ), paths AS (
            INSERT INTO audit_path (node, seq, path)  -- normalize() only where it can change something (not ASCII)
                SELECT DISTINCT node, seq,
                       CASE WHEN octet_length(p) = length(p) THEN lower(p) ELSE lower(normalize(p, NFC)) END
                FROM ups, jsonb_array_elements_text(u->'paths') p WHERE jsonb_typeof(u->'paths') = 'array'
            RETURNING node
        ), counted AS (
            INSERT INTO audit_batch (node, first_seq, last_seq, refs, paths)
                SELECT e.node, min(e.seq), max(e.seq), (SELECT count(*) FROM refs x WHERE x.node = e.node),
                       (SELECT count(*) FROM paths y WHERE y.node = e.node)
                FROM e GROUP BY e.node
        )
        SELECT e.node, e.seq, 'columns'::text AS problem INTO bad FROM e
        WHERE jsonb_typeof(e.j) <> 'object'
           OR CASE WHEN jsonb_typeof(e.j->'seq') = 'number' THEN (e.j->>'seq')::numeric <> e.seq ELSE true END
           OR e.j->>'prev' IS DISTINCT FROM encode(e.prev, 'hex')
           OR e.ts IS DISTINCT FROM CASE WHEN jsonb_typeof(e.j->'ts') = 'string' THEN e.j->>'ts' END
           OR e.type IS DISTINCT FROM CASE WHEN jsonb_typeof(e.ev->'type') = 'string' THEN e.ev->>'type' END
           OR e.repo IS DISTINCT FROM CASE WHEN jsonb_typeof(e.ev->'repo') = 'string' THEN e.ev->>'repo' END
           OR e.pusher IS DISTINCT FROM CASE WHEN jsonb_typeof(e.ev->'pusher'->'user') = 'string'
                                             THEN e.ev->'pusher'->>'user' END
           OR e.decision IS DISTINCT FROM CASE WHEN jsonb_typeof(e.ev->'decision') = 'string'
                                               THEN e.ev->>'decision' END
        ORDER BY e.node, e.seq LIMIT 1;
    EXCEPTION WHEN data_exception OR program_limit_exceeded OR statement_too_complex THEN
        -- Some raw is not UTF-8 JSON (the set-based parse cannot say which): find it, row by row (refusals only).
        FOR bad IN SELECT r.node, r.seq, r.raw FROM new_rows r ORDER BY r.node, r.seq LOOP
            BEGIN
                PERFORM convert_from(bad.raw, 'UTF8')::jsonb;
            EXCEPTION WHEN data_exception OR program_limit_exceeded OR statement_too_complex THEN
                RAISE EXCEPTION 'gatekeeper audit: node % seq %: raw is not UTF-8 JSON', bad.node, bad.seq
                    USING ERRCODE = 'GK003';
            END;
        END LOOP;
        RAISE EXCEPTION 'gatekeeper audit: a record of the batch could not be checked: %', SQLERRM
            USING ERRCODE = 'GK003';
    END;
    IF FOUND THEN
        RAISE EXCEPTION 'gatekeeper audit: node % seq %: raw is not an object whose seq/prev and query columns '
            '(ts, type, repo, pusher, decision) are the row''s', bad.node, bad.seq USING ERRCODE = 'GK003';
    END IF;
    RETURN NULL;
END
$fn$;

CREATE OR REPLACE FUNCTION audit_checkpoint_insert() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, @SCHEMA@, pg_temp AS $fn$
DECLARE
    stored bigint;
    body text[];
BEGIN
    SELECT seq + 1 INTO stored FROM audit_record WHERE node = NEW.node ORDER BY seq DESC LIMIT 1;
    IF NEW.size > coalesce(stored, 0) THEN
        RAISE EXCEPTION 'gatekeeper audit: checkpoint of size % for node % is ahead of its % stored records',
            NEW.size, NEW.node, coalesce(stored, 0) USING ERRCODE = 'GK004';
    END IF;
    body := string_to_array(convert_from(NEW.note, 'UTF8'), E'\n');
    IF array_length(body, 1) < 4 OR body[1] <> NEW.origin OR body[2] <> NEW.size::text
       OR decode(body[3], 'base64') <> NEW.root THEN
        RAISE EXCEPTION 'gatekeeper audit: checkpoint note for node % does not match its size/root/origin', NEW.node
            USING ERRCODE = 'GK004';
    END IF;
    RETURN NEW;
END
$fn$;

CREATE OR REPLACE FUNCTION audit_readonly() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    RAISE EXCEPTION 'gatekeeper audit: % on % is not allowed: the audit trail is insert-only', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'GK005';
END
$fn$;
"""

_TRIGGERS = (
    ("audit_record", "audit_record_batch", "AFTER INSERT", "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT",
     "audit_record_batch()"),
    ("audit_checkpoint", "audit_checkpoint_insert", "BEFORE INSERT", "FOR EACH ROW", "audit_checkpoint_insert()"),
)
_RETIRED_TRIGGERS = ("audit_record_insert", "audit_record_index")
INSERT_ONLY_TABLES = ("audit_record", "audit_path", "audit_ref", "audit_batch", "audit_checkpoint", "audit_archive",
                      "audit_node", "audit_meta")


class DatabaseUnavailable(AuditError):
    """The database cannot be reached or went away mid-transaction; nothing partial was stored, retry later."""


def _connect_error(url: str, exc: Exception) -> AuditError:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return DatabaseUnavailable(
        f"the audit database {redact(url)} is unavailable: {reason}",
        hint="check that PostgreSQL is running and the URL (--db or audit.database) is right (passwords belong in "
             "~/.pgpass or PGPASSFILE, not in the URL); shipping resumes where it stopped, the local logs keep "
             "every record meanwhile",
    )


def redact(url: str) -> str:
    """The URL without a password (never print one)."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", re.sub(r"(password=)[^&\s]*", r"\1***", url))


def connect(url: str, *, autocommit: bool = False, connect_timeout: int = 10) -> psycopg.Connection[Any]:
    """Open a connection (psycopg 3). Raises :class:`AuditError` with a hint if psycopg is missing or it fails."""
    try:
        import psycopg
    except ImportError:
        raise AuditError("the PostgreSQL audit trail needs psycopg 3",
                         hint="pip install 'gatekeeper[postgres]'") from None
    try:
        return psycopg.connect(url, autocommit=autocommit, connect_timeout=connect_timeout)
    except psycopg.Error as exc:
        raise _connect_error(url, exc) from None


def install_schema(conn: psycopg.Connection[Any], *, schema: str = "public", writer: str | None = None,
                   reader: str | None = None) -> None:
    """Create the tables, triggers and grants (idempotent). Run as the owner (not the writer role).

    ``writer`` gets INSERT on the tables the shippers fill and SELECT on (node, seq, leaf) to find where to resume
    (nothing else: no UPDATE, DELETE, TRUNCATE, and it cannot read the records' content);
    ``reader`` gets SELECT (auditors, the report).
    """
    for role in (writer, reader):
        if role is not None and not _ROLE_RE.match(role):
            raise AuditError(f"invalid role name {role!r}", hint="use lower-case letters, digits and _")
    if not _ROLE_RE.match(schema):
        raise AuditError(f"invalid schema name {schema!r}")
    with conn.cursor() as cur:
        cur.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        cur.execute(f"SET LOCAL search_path = {schema}")
        cur.execute(SCHEMA_SQL.replace("@SCHEMA@", schema))
        for old in _RETIRED_TRIGGERS:  # schema 1's row-level checks, replaced by the statement-level one
            cur.execute(f"DROP TRIGGER IF EXISTS {old} ON audit_record")
            cur.execute(f"DROP FUNCTION IF EXISTS {old}()")
        for table, name, when, each, func in _TRIGGERS:
            cur.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
            cur.execute(f"CREATE TRIGGER {name} {when} ON {table} {each} EXECUTE FUNCTION {func}")
        for table in INSERT_ONLY_TABLES:
            cur.execute(f"DROP TRIGGER IF EXISTS {table}_readonly ON {table}")
            cur.execute(f"CREATE TRIGGER {table}_readonly BEFORE UPDATE OR DELETE ON {table} "
                        "FOR EACH ROW EXECUTE FUNCTION audit_readonly()")
        for table in INSERT_ONLY_TABLES:
            cur.execute(f"DROP TRIGGER IF EXISTS {table}_notruncate ON {table}")
            cur.execute(f"CREATE TRIGGER {table}_notruncate BEFORE TRUNCATE ON {table} "
                        "FOR EACH STATEMENT EXECUTE FUNCTION audit_readonly()")
        cur.execute("INSERT INTO audit_meta VALUES ('schema_version', %s) ON CONFLICT (key) DO NOTHING",
                    (SCHEMA_VERSION,))
        cur.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM PUBLIC")
        # Nobody but the owner creates objects next to the trail (the definer functions resolve names there).
        cur.execute(f"REVOKE CREATE ON SCHEMA {schema} FROM PUBLIC")
        cur.execute("REVOKE ALL ON FUNCTION audit_record_batch(), audit_checkpoint_insert() FROM PUBLIC")
        if writer is not None:
            cur.execute(f"GRANT USAGE ON SCHEMA {schema} TO {writer}")
            cur.execute(f"GRANT INSERT ON audit_record, audit_checkpoint, audit_archive TO {writer}")
            # Where to resume: the node list and each row's (node, seq, leaf), never the records' content.
            cur.execute(f"GRANT SELECT ON audit_node, audit_meta TO {writer}")
            cur.execute(f"GRANT SELECT (node, seq, leaf) ON audit_record TO {writer}")
            cur.execute(f"GRANT EXECUTE ON FUNCTION audit_record_batch(), audit_checkpoint_insert() TO {writer}")
        if reader is not None:
            cur.execute(f"GRANT USAGE ON SCHEMA {schema} TO {reader}")
            cur.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {reader}")
    conn.commit()


# -- reading ----------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class NodeHead:
    node: str
    next_seq: int
    last_leaf: bytes


@dataclass(frozen=True)
class StoredCheckpoint:
    node: str
    size: int
    root: bytes
    origin: str
    note: bytes
    received_at: str


def heads(conn: psycopg.Connection[Any], nodes: Sequence[str] | None = None) -> list[NodeHead]:
    """Each node's head: the record count (highest seq + 1) and the last record's leaf (one index probe each)."""
    sql = """SELECT n.node, coalesce(h.seq + 1, 0), coalesce(h.leaf, %s) FROM audit_node n
             LEFT JOIN LATERAL (SELECT seq, leaf FROM audit_record r WHERE r.node = n.node ORDER BY seq DESC LIMIT 1)
             h ON true"""
    args: list[Any] = [GENESIS_LEAF]
    if nodes:
        sql += " WHERE n.node = ANY(%s)"
        args.append(list(nodes))
    with conn.cursor() as cur:
        cur.execute(sql + " ORDER BY n.node", args)
        return [NodeHead(r[0], r[1], bytes(r[2])) for r in cur.fetchall()]


def head(conn: psycopg.Connection[Any], node: str) -> NodeHead:
    found = heads(conn, [node])
    return found[0] if found else NodeHead(node, 0, GENESIS_LEAF)


def checkpoints(conn: psycopg.Connection[Any], node: str) -> list[StoredCheckpoint]:
    with conn.cursor() as cur:
        cur.execute("SELECT node, size, root, origin, note, received_at FROM audit_checkpoint WHERE node = %s "
                    "ORDER BY size, received_at", (node,))
        return [StoredCheckpoint(r[0], r[1], bytes(r[2]), r[3], bytes(r[4]), r[5].isoformat()) for r in cur]


def first_largest(stored: Sequence[StoredCheckpoint]) -> StoredCheckpoint:
    """The checkpoint to treat as the node's latest: the largest size, and of equal sizes the first received (a
    later one with another root is fork evidence, never a replacement)."""
    best = stored[0]
    for cp in stored[1:]:
        if cp.size > best.size:
            best = cp
    return best


def raw_lines(conn: psycopg.Connection[Any], node: str, *, start: int = 0, batch: int = 50_000,
              ) -> Iterator[tuple[int, bytes]]:
    """(seq, raw) of a node in seq order, streamed with a server-side cursor (constant memory)."""
    for row in stored_rows(conn, node, start=start, batch=batch, derived=False):
        yield row[0], row[1]


DERIVED = ("leaf", "prev", "ts", "type", "repo", "pusher", "decision")
QUERY_COLUMNS = ("ts", "type", "repo", "pusher", "decision")


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def query_columns(rec: object) -> tuple[str | None, ...]:
    """The query columns (QUERY_COLUMNS) of a decoded record, as the insert trigger derives them from raw: a value
    of the wrong JSON type is NULL. The shipper sends them; verify --db re-derives them from raw."""
    if not isinstance(rec, dict):
        return (None,) * len(QUERY_COLUMNS)
    raw_event = rec.get("event")
    event: dict[str, Any] = raw_event if isinstance(raw_event, dict) else {}
    pusher = event.get("pusher")
    return (_str(rec.get("ts")), _str(event.get("type")), _str(event.get("repo")),
            _str(pusher.get("user") if isinstance(pusher, dict) else None), _str(event.get("decision")))


def stored_rows(conn: psycopg.Connection[Any], node: str, *, start: int = 0, batch: int = 50_000,
                derived: bool = True) -> Iterator[tuple[Any, ...]]:
    """(seq, raw[, leaf, prev, ts, type, repo, pusher, decision]) of a node in seq order, streamed."""
    columns = "seq, raw" + (", " + ", ".join(DERIVED) if derived else "")
    with conn.cursor(name=f"gk_rows_{abs(hash(node)) % 10**8}") as cur:
        cur.itersize = batch
        cur.execute(f"SELECT {columns} FROM audit_record WHERE node = %s AND seq >= %s ORDER BY seq", (node, start))
        for row in cur:
            yield (row[0], bytes(row[1]), *row[2:])


def archive_items(conn: psycopg.Connection[Any], *, kinds: Sequence[str], store: str | None = None,
                  ) -> list[tuple[str, str, str, bytes]]:
    """(store, kind, name, content) of the archived files of the given kinds (optionally of one store)."""
    sql = "SELECT store, kind, name, content FROM audit_archive WHERE kind = ANY(%s)"
    args: list[Any] = [list(kinds)]
    if store is not None:
        sql += " AND store = %s"
        args.append(store)
    with conn.cursor() as cur:
        cur.execute(sql + " ORDER BY kind, store, received_at, sha256", args)
        return [(r[0], r[1], r[2], bytes(r[3])) for r in cur]
