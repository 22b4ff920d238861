"""The fleet's audit trail in PostgreSQL: every node's records and signed checkpoints, insert-only (reference B4).

Tables (all insert-only: ``BEFORE UPDATE OR DELETE`` and ``BEFORE TRUNCATE`` triggers raise; the writer role holds
``INSERT`` and ``SELECT`` only)::

    audit_node        one row per node (registered by its record 0)
    audit_record      (node, seq) -> raw: the exact canonical line of the node's local log; leaf and the query
                      columns (ts, type, repo, pusher, decision) are derived by the trigger from raw
    audit_path        (node, seq, path): every changed path, NFC-normalised and lower-cased, for --path queries
    audit_ref         (node, seq, ref): every updated ref, for --ref queries
    audit_checkpoint  (node, size, root) -> the node's C2SP signed checkpoint note as shipped
    audit_archive     (sha256) -> a policy or trust store that was in force (for verify --approvals offline)

The insert trigger (SECURITY DEFINER) checks each node's chain as the file writer does: record ``seq - 1`` of the node
must be stored, ``prev`` (column and inside ``raw``) must be its leaf, the primary key refuses a second record for a
``seq``, ``raw`` must be one line of UTF-8 JSON whose ``seq``/``prev`` agree; it
computes ``leaf = SHA-256(0x00 || raw)`` itself. A checkpoint is accepted only for records already stored and only if
its note's size and root are the columns' (the signature is the auditor's check: the database holds no keys).

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
CREATE INDEX IF NOT EXISTS audit_record_ts ON audit_record (ts);
CREATE INDEX IF NOT EXISTS audit_record_repo_ts ON audit_record (repo, ts);
CREATE INDEX IF NOT EXISTS audit_record_pusher_ts ON audit_record (pusher, ts);
CREATE INDEX IF NOT EXISTS audit_record_decision_ts ON audit_record (decision, ts);

CREATE TABLE IF NOT EXISTS audit_path (node text NOT NULL, seq bigint NOT NULL, path text COLLATE "C" NOT NULL);
CREATE INDEX IF NOT EXISTS audit_path_path ON audit_path (path, node, seq);
CREATE TABLE IF NOT EXISTS audit_ref (node text NOT NULL, seq bigint NOT NULL, ref text COLLATE "C" NOT NULL);
CREATE INDEX IF NOT EXISTS audit_ref_ref ON audit_ref (ref, node, seq);

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

CREATE OR REPLACE FUNCTION audit_record_insert() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, @SCHEMA@, pg_temp AS $fn$
DECLARE
    before_leaf bytea;
    d jsonb;
    ev jsonb;
BEGIN
    -- Continuity against the node's previous row (a BEFORE ROW trigger sees the rows earlier in the same COPY, and
    -- committed ones; the primary key (node, seq) rejects a second row for a seq). No head row is updated per
    -- record: a row updated thousands of times in one transaction makes every later lookup walk its versions.
    IF NEW.seq = 0 THEN
        before_leaf := '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea;
        INSERT INTO audit_node (node) VALUES (NEW.node) ON CONFLICT (node) DO NOTHING;
    ELSE
        SELECT leaf INTO before_leaf FROM audit_record WHERE node = NEW.node AND seq = NEW.seq - 1;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'gatekeeper audit: node % has no record % (yet): seq % would leave a gap', NEW.node,
                NEW.seq - 1, NEW.seq USING ERRCODE = 'GK001';
        END IF;
    END IF;
    IF NEW.prev <> before_leaf THEN
        RAISE EXCEPTION 'gatekeeper audit: node % seq %: prev % does not chain onto the stored record % (%)',
            NEW.node, NEW.seq, encode(NEW.prev, 'hex'), NEW.seq - 1, encode(before_leaf, 'hex')
            USING ERRCODE = 'GK002';
    END IF;
    IF position('\x0a'::bytea IN NEW.raw) > 0 THEN
        RAISE EXCEPTION 'gatekeeper audit: node % seq %: raw holds a newline', NEW.node, NEW.seq
            USING ERRCODE = 'GK003';
    END IF;
    BEGIN
        d := convert_from(NEW.raw, 'UTF8')::jsonb;
    EXCEPTION WHEN OTHERS THEN
        RAISE EXCEPTION 'gatekeeper audit: node % seq %: raw is not UTF-8 JSON', NEW.node, NEW.seq
            USING ERRCODE = 'GK003';
    END;
    IF jsonb_typeof(d) <> 'object' OR jsonb_typeof(d->'seq') IS DISTINCT FROM 'number'
       OR (d->>'seq')::numeric <> NEW.seq OR d->>'prev' IS DISTINCT FROM encode(NEW.prev, 'hex') THEN
        RAISE EXCEPTION 'gatekeeper audit: node % seq %: seq/prev inside raw disagree with the row', NEW.node, NEW.seq
            USING ERRCODE = 'GK003';
    END IF;
    ev := CASE WHEN jsonb_typeof(d->'event') = 'object' THEN d->'event' ELSE '{}'::jsonb END;
    NEW.leaf := sha256('\x00'::bytea || NEW.raw);
    NEW.ts := CASE WHEN jsonb_typeof(d->'ts') = 'string' THEN d->>'ts' END;
    NEW.type := CASE WHEN jsonb_typeof(ev->'type') = 'string' THEN ev->>'type' END;
    NEW.repo := CASE WHEN jsonb_typeof(ev->'repo') = 'string' THEN ev->>'repo' END;
    NEW.pusher := CASE WHEN jsonb_typeof(ev->'pusher'->'user') = 'string' THEN ev->'pusher'->>'user' END;
    NEW.decision := CASE WHEN jsonb_typeof(ev->'decision') = 'string' THEN ev->>'decision' END;
    RETURN NEW;
END
$fn$;

-- The ref and path tables, filled once per statement (a COPY batch) from the inserted rows: set-based, so a batch
-- costs one statement instead of two per record. (No temporary table: a definer function must not touch objects a
-- caller can create, and pg_temp is always last on its search_path.)
CREATE OR REPLACE FUNCTION audit_record_index() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, @SCHEMA@, pg_temp AS $fn$
BEGIN
    WITH ups AS MATERIALIZED (
        SELECT r.node, r.seq, u FROM new_rows r,
            LATERAL (SELECT convert_from(r.raw, 'UTF8')::jsonb->'event'->'updates' AS list) x,
            LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(x.list) = 'array' THEN x.list ELSE '[]' END) u
        WHERE jsonb_typeof(u) = 'object'
    ), refs AS (
        INSERT INTO audit_ref (node, seq, ref)
            SELECT node, seq, u->>'ref' FROM ups WHERE jsonb_typeof(u->'ref') = 'string'
    )
    INSERT INTO audit_path (node, seq, path)
        SELECT DISTINCT node, seq, lower(normalize(p, NFC))
        FROM ups, jsonb_array_elements_text(u->'paths') p WHERE jsonb_typeof(u->'paths') = 'array';
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
    ("audit_record", "audit_record_insert", "BEFORE INSERT", "FOR EACH ROW", "audit_record_insert()"),
    ("audit_record", "audit_record_index", "AFTER INSERT", "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT",
     "audit_record_index()"),
    ("audit_checkpoint", "audit_checkpoint_insert", "BEFORE INSERT", "FOR EACH ROW", "audit_checkpoint_insert()"),
)
INSERT_ONLY_TABLES = ("audit_record", "audit_path", "audit_ref", "audit_checkpoint", "audit_archive", "audit_node",
                      "audit_meta")


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
        cur.execute("REVOKE ALL ON FUNCTION audit_record_insert(), audit_record_index(), audit_checkpoint_insert() "
                    "FROM PUBLIC")
        if writer is not None:
            cur.execute(f"GRANT USAGE ON SCHEMA {schema} TO {writer}")
            cur.execute(f"GRANT INSERT ON audit_record, audit_checkpoint, audit_archive TO {writer}")
            # Where to resume: the node list and each row's (node, seq, leaf), never the records' content.
            cur.execute(f"GRANT SELECT ON audit_node, audit_meta TO {writer}")
            cur.execute(f"GRANT SELECT (node, seq, leaf) ON audit_record TO {writer}")
            cur.execute("GRANT EXECUTE ON FUNCTION audit_record_insert(), audit_record_index(), "
                        f"audit_checkpoint_insert() TO {writer}")
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
