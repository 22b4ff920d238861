"""Shipping a node's log into PostgreSQL, and what the database enforces: insert-only, per-node chain continuity,
checkpoints only for stored records; verify from the database names rows edited behind the triggers' back."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import psycopg
import pytest

from audit.helpers import decision, make_env, outcome
from .fleetlib import generated_log, gatekeeper, spawn
from gatekeeper.audit import canonical, pgstore
from gatekeeper.audit.fleet import verify_db
from gatekeeper.audit.merkle import leaf_hash
from gatekeeper.audit.ship import COPY_COLUMNS, ShipConflict, database_row, ship
from pgserver import FleetDb

pytestmark = pytest.mark.timeout(300)


def _small_log(tmp_path: Path, n: int, name: str = "n1"):  # type: ignore[no-untyped-def]
    (tmp_path / name).mkdir()
    env = make_env(tmp_path / name)
    log = env.writer()
    for i in range(n):
        log.append(decision(i, repo=f"ml/{name}") if i % 3 else outcome(repo=f"ml/{name}"))
    return env


def _verify(db: FleetDb, *vkeys: str):  # type: ignore[no-untyped-def]
    with pgstore.connect(db.reader_url) as conn:
        return verify_db(conn, database=db.reader_url, vkeys=list(vkeys))


def test_ship_is_idempotent_and_the_copy_is_byte_exact(tmp_path: Path, fleet_db: FleetDb) -> None:
    env = _small_log(tmp_path, 25)
    with pgstore.connect(fleet_db.writer_url) as conn:
        first = ship(env.log_path, conn, node="n1", batch=10)
        again = ship(env.log_path, conn, node="n1", batch=10)
        env.writer().append(decision(99))
        more = ship(env.log_path, conn, node="n1", batch=10)
    assert (first.shipped, first.head, first.checkpoint_size) == (25, 25, 25)
    assert (again.shipped, again.head) == (0, 25)
    assert (more.shipped, more.head, more.checkpoint_size) == (1, 26, 26)
    rows = fleet_db.sql("SELECT raw FROM audit_record WHERE node = 'n1' ORDER BY seq")
    assert b"".join(bytes(r[0]) + b"\n" for r in rows) == env.log_path.read_bytes()  # type: ignore[arg-type]
    assert fleet_db.sql("SELECT size FROM audit_checkpoint ORDER BY size") == [(25,), (26,)]
    report = _verify(fleet_db, env.vkey)
    assert report.ok, report.to_dict()
    assert report.nodes[0].report.records == 26


def test_writer_role_can_only_insert(tmp_path: Path, fleet_db: FleetDb) -> None:
    env = _small_log(tmp_path, 3)
    with pgstore.connect(fleet_db.writer_url) as conn:
        ship(env.log_path, conn, node="n1")
    with psycopg.connect(fleet_db.writer_url, autocommit=True) as conn:
        for statement in ("UPDATE audit_record SET repo = 'x'", "DELETE FROM audit_record", "TRUNCATE audit_record",
                          "UPDATE audit_node SET first_seen = now()", "DELETE FROM audit_checkpoint",
                          "SELECT raw FROM audit_record"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
    # Even the owner (who holds every privilege) hits the triggers.
    for statement in ("UPDATE audit_record SET repo = 'x'", "DELETE FROM audit_record WHERE seq = 1",
                      "TRUNCATE audit_record", "UPDATE audit_node SET first_seen = now()",
                      "DELETE FROM audit_checkpoint", "UPDATE audit_checkpoint SET size = 1",
                      "DELETE FROM audit_path", "DELETE FROM audit_node"):
        with pytest.raises(psycopg.Error) as err:
            fleet_db.sql(statement)
        assert err.value.sqlstate == pgstore.SQLSTATE_READONLY, statement
    assert fleet_db.sql("SELECT count(*) FROM audit_record") == [(3,)]


_INSERT = (f"INSERT INTO audit_record ({', '.join(COPY_COLUMNS)}) VALUES "
           f"({', '.join(['%s'] * len(COPY_COLUMNS))})")


def _insert(db: FleetDb, node: str, seq: int, raw: bytes, prev: bytes) -> None:
    """A writer's INSERT of one row, its leaf and query columns derived from raw as the shipper does."""
    with psycopg.connect(db.writer_url, autocommit=True) as conn:
        conn.execute(_INSERT, database_row(node, seq, raw, prev))


def test_database_checks_each_nodes_chain_on_insert(tmp_path: Path, fleet_db: FleetDb) -> None:
    env = _small_log(tmp_path, 3)
    with pgstore.connect(fleet_db.writer_url) as conn:
        ship(env.log_path, conn, node="n1")
    lines = env.log_path.read_bytes().splitlines()
    last = leaf_hash(lines[-1])

    def forged(seq: int, prev: bytes, **changes: object) -> bytes:
        rec = {"v": 1, "seq": seq, "ts": "2026-12-01T00:00:00.000000Z", "node": "x", "prev": prev.hex(),
               "event": {"type": "push.decision", "repo": "ml/x", "decision": "allow", "pusher": {"user": "m"},
                         "updates": []}}
        rec.update(changes)
        return canonical.encode(rec)

    attempts = [
        ("n1", 5, forged(5, last), last, pgstore.SQLSTATE_SEQ),  # a gap
        ("n1", 2, forged(2, leaf_hash(lines[1])), leaf_hash(lines[1]), "23505"),  # a replacement: primary key
        ("n1", 3, forged(3, b"\x01" * 32), b"\x01" * 32, pgstore.SQLSTATE_PREV),  # does not chain
        ("n1", 3, forged(3, b"\x01" * 32), last, pgstore.SQLSTATE_RAW),  # column chains, raw claims otherwise
        ("n1", 3, forged(4, last), last, pgstore.SQLSTATE_RAW),  # raw's seq differs from the row's
        ("n1", 3, b"not json", last, pgstore.SQLSTATE_RAW),
        ("n1", 3, forged(3, last) + b"\n" + forged(4, last), last, pgstore.SQLSTATE_RAW),  # two lines in one row
        ("n2", 1, forged(1, bytes(32)), bytes(32), pgstore.SQLSTATE_SEQ),  # a new node must start at 0
    ]
    for node, seq, raw, prev, state in attempts:
        with pytest.raises(psycopg.Error) as err:
            _insert(fleet_db, node, seq, raw, prev)
        assert err.value.sqlstate == state, (seq, raw[:60], err.value)
    _insert(fleet_db, "n1", 3, forged(3, last), last)  # the honest next record goes in
    assert fleet_db.sql("SELECT max(seq) FROM audit_record WHERE node = 'n1'") == [(3,)]
    # A checkpoint ahead of the stored records, or whose note disagrees with its columns, is refused.
    note = env.checkpoint.read_bytes()
    with psycopg.connect(fleet_db.writer_url, autocommit=True) as conn:
        for size, root in ((9, b"\x00" * 32), (3, b"\x00" * 32)):
            with pytest.raises(psycopg.Error) as err:
                conn.execute("INSERT INTO audit_checkpoint (node, size, root, origin, note) VALUES "
                             "('n1', %s, %s, 'git.test.example/audit', %s)", (size, root, note))
            assert err.value.sqlstate == pgstore.SQLSTATE_CHECKPOINT


def test_a_batch_whose_middle_row_breaks_the_chain_is_refused_whole(tmp_path: Path, fleet_db: FleetDb) -> None:
    """The continuity check runs once per statement over the batch: a gap, a fork, a duplicate or a lying column in
    the middle of a COPY refuses every row of it, exactly as the first row would be refused alone."""
    node = generated_log(tmp_path / "n1", 40)
    lines = node.log.read_bytes().splitlines()
    with pgstore.connect(fleet_db.writer_url) as conn:
        ship(node.log, conn, node="n1", max_records=10)

    def honest(seq: int) -> tuple[object, ...]:
        return database_row("n1", seq, lines[seq], leaf_hash(lines[seq - 1]))

    def forked(seq: int) -> tuple[object, ...]:  # well-formed, chains onto a different history
        rec = json.loads(lines[seq])
        rec["prev"] = "07" * 32
        raw = canonical.encode(rec)
        return database_row("n1", seq, raw, bytes.fromhex(rec["prev"]))

    def lying(seq: int, column: str, value: object) -> tuple[object, ...]:
        row = list(honest(seq))
        row[COPY_COLUMNS.index(column)] = value
        return tuple(row)

    cases = {
        "gap": ([honest(s) for s in range(10, 25) if s != 17], pgstore.SQLSTATE_SEQ),
        "fork": ([honest(s) for s in range(10, 17)] + [forked(17)] + [honest(s) for s in range(18, 25)],
                 pgstore.SQLSTATE_PREV),
        "duplicate": ([honest(s) for s in range(10, 18)] + [honest(17)] + [honest(s) for s in range(18, 25)],
                      "23505"),
        "replayed stored record": ([honest(s) for s in range(10, 17)] + [honest(5)] + [honest(s) for s in
                                                                                         range(17, 25)], "23505"),
        "leaf": ([honest(s) for s in range(10, 17)] + [lying(17, "leaf", b"\x01" * 32)]
                 + [honest(s) for s in range(18, 25)], pgstore.SQLSTATE_RAW),
        "pusher": ([honest(s) for s in range(10, 17)] + [lying(17, "pusher", "mallory")]
                   + [honest(s) for s in range(18, 25)], pgstore.SQLSTATE_RAW),
        "decision": ([honest(s) for s in range(10, 17)] + [lying(17, "decision", "no such decision")]
                     + [honest(s) for s in range(18, 25)], pgstore.SQLSTATE_RAW),
    }
    for label, (rows, state) in cases.items():
        for how in ("copy", "insert"):
            with psycopg.connect(fleet_db.writer_url) as conn:
                with pytest.raises(psycopg.Error) as err:
                    with conn.cursor() as cur:
                        if how == "copy":
                            with cur.copy(f"COPY audit_record ({', '.join(COPY_COLUMNS)}) FROM STDIN") as copy:
                                for row in rows:
                                    copy.write_row(row)
                        else:
                            cur.executemany(_INSERT, rows)  # one statement per row: the first bad one is refused
                    conn.commit()
            assert err.value.sqlstate == state, (label, how, err.value)
            if state != "23505":
                assert "seq 17" in str(err.value) or "no record 17" in str(err.value), (label, err.value)  # named
            assert fleet_db.sql("SELECT count(*), max(seq) FROM audit_record") == [(10, 9)], (label, how)
    assert fleet_db.sql("SELECT count(*) FROM audit_path WHERE seq >= 10") == [(0,)]
    with pgstore.connect(fleet_db.writer_url) as conn:  # the honest rest still goes in, and verifies
        assert ship(node.log, conn, node="n1").head == 40
    assert _verify(fleet_db, node.vkey).ok


def test_concurrent_shippers_for_one_node_neither_lose_nor_duplicate(tmp_path: Path, fleet_db: FleetDb) -> None:
    node = generated_log(tmp_path / "n1", 6000)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with pgstore.connect(fleet_db.writer_url) as conn:
                ship(node.log, conn, node="n1", batch=500)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert fleet_db.sql("SELECT count(*), count(DISTINCT seq), max(seq) FROM audit_record") == [(6000, 6000, 5999)]
    assert _verify(fleet_db, node.vkey).ok


def test_shipper_killed_mid_batch_resumes_without_loss_or_duplicates(tmp_path: Path, fleet_db: FleetDb) -> None:
    node = generated_log(tmp_path / "n1", 40_000)
    proc = spawn("audit", "ship", "--log", node.log, "--db", fleet_db.writer_url, "--node", "n1", "--batch", "2000")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        count = fleet_db.sql("SELECT count(*) FROM audit_record")[0][0]
        if count:  # at least one batch committed: kill it in the middle of a later one
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = fleet_db.sql("SELECT count(*) FROM audit_record")[0][0]
    assert 0 < partial < 40_000, "the shipper finished before it could be killed; use a bigger log"  # type: ignore[operator]
    assert partial % 2000 == 0  # type: ignore[operator]  # a batch is one transaction: all or nothing
    done = gatekeeper("audit", "ship", "--log", node.log, "--db", fleet_db.writer_url, "--node", "n1", check=True)
    assert f"shipped {40_000 - partial} record(s); the database holds 40000" in done.stdout  # type: ignore[operator]
    assert fleet_db.sql("SELECT count(*), count(DISTINCT seq) FROM audit_record") == [(40_000, 40_000)]
    assert _verify(fleet_db, node.vkey).ok


def test_superuser_edit_and_delete_behind_the_gates_back_are_named(tmp_path: Path, fleet_db: FleetDb) -> None:
    env = _small_log(tmp_path, 30)
    with pgstore.connect(fleet_db.writer_url) as conn:
        ship(env.log_path, conn, node="n1")
    assert _verify(fleet_db, env.vkey).ok
    # A superuser disables the triggers for the session and rewrites history (reference B4).
    fleet_db.sql("SET session_replication_role = replica; "
                 "UPDATE audit_record SET raw = replace(convert_from(raw, 'UTF8'), '\"alice\"', '\"mallory\"')::bytea "
                 "WHERE node = 'n1' AND seq = 7")
    report = _verify(fleet_db, env.vkey)
    assert not report.ok
    node = report.nodes[0]
    chain = [i for i in node.report.errors if i.code == "chain-break"]
    assert chain and chain[0].seq == 7, node.report.errors  # the edited row is named
    assert any(i.seq == 7 and "leaf" in i.message for i in node.db_errors), node.db_errors
    out = gatekeeper("audit", "verify", "--db", fleet_db.reader_url, "--vkey", env.vkey)
    assert out.returncode == 1
    assert "FAIL: node n1" in out.stdout and "row seq 7" in out.stdout, out.stdout

    fleet_db.sql("SET session_replication_role = replica; DELETE FROM audit_record WHERE node = 'n1' AND seq = 20")
    report = _verify(fleet_db, env.vkey)
    errors = report.nodes[0].report.errors
    assert any(i.code == "seq-gap" and "record 20 was deleted" in i.message for i in errors), errors
    assert any(i.code == "db-head" for i in report.nodes[0].db_errors)


def test_derived_column_edit_is_reported_and_cannot_invent_a_match(tmp_path: Path, fleet_db: FleetDb) -> None:
    env = _small_log(tmp_path, 6)
    with pgstore.connect(fleet_db.writer_url) as conn:
        ship(env.log_path, conn, node="n1")
    fleet_db.sql("SET session_replication_role = replica; UPDATE audit_record SET pusher = 'mallory' "
                 "WHERE node = 'n1' AND seq = 2")
    report = _verify(fleet_db, env.vkey)
    assert [(i.code, i.seq) for i in report.nodes[0].db_errors] == [("db-derived", 2)]
    # The query column says mallory, but the record (raw) does not: the exact check drops it.
    out = gatekeeper("audit", "query", "--db", fleet_db.reader_url, "--pusher", "mallory", "--format", "json")
    assert out.returncode == 0 and out.stdout == "", out.stdout + out.stderr


def test_deleted_lookup_rows_neither_hide_records_nor_go_unreported(tmp_path: Path, fleet_db: FleetDb) -> None:
    """A superuser deleting a record's audit_path/audit_ref rows behind the triggers' back: --path/--ref queries
    notice the lookup table no longer holds what the trigger stored and match every record's raw instead; verify
    names the record whose lookup rows are missing."""
    env = _small_log(tmp_path, 12)
    writer = env.writer()
    writer.append(decision(90, decision="deny", ref="refs/heads/release/1", paths=("secret/weights.bin",)))
    seq = 12
    with pgstore.connect(fleet_db.writer_url) as conn:
        ship(env.log_path, conn, node="n1")

    def query(*args: str) -> tuple[list[int], str]:
        out = gatekeeper("audit", "query", "--db", fleet_db.reader_url, *args, "--format", "json", check=True)
        return [json.loads(line)["seq"] for line in out.stdout.splitlines()], out.stderr

    assert query("--path", "secret/**") == ([seq], "")
    assert query("--ref", "refs/heads/release/**", "--decision", "deny") == ([seq], "")
    fleet_db.sql("SET session_replication_role = replica; DELETE FROM audit_path WHERE path LIKE 'secret/%%'; "
                 "DELETE FROM audit_ref WHERE ref LIKE 'refs/heads/release/%%'")
    for args in (("--path", "secret/**"), ("--ref", "refs/heads/release/**", "--decision", "deny")):
        found, warning = query(*args)
        assert found == [seq], args  # still found: the query fell back to the exact match over raw
        assert "rows were changed behind the triggers' back" in warning and "audit verify --db" in warning, warning
    report = _verify(fleet_db, env.vkey)
    assert not report.ok
    named = [(i.code, i.seq, "audit_path" in i.message, "secret/weights.bin" in i.message)
             for i in report.nodes[0].db_errors]
    assert ("db-lookup", seq, True, True) in named, report.nodes[0].db_errors
    assert any(i.code == "db-lookup" and i.seq == seq and "audit_ref" in i.message for i in report.nodes[0].db_errors)
    # Hiding the deletion from the count check too (the batch's counts lowered) still does not fool verify.
    fleet_db.sql("SET session_replication_role = replica; UPDATE audit_batch SET paths = paths - 1, refs = refs - 1")
    assert query("--path", "secret/**")[0] == []  # the documented limit: counts agree again, the lookup is used
    out = gatekeeper("audit", "verify", "--db", fleet_db.reader_url, "--vkey", env.vkey)
    assert out.returncode == 1 and f"row seq {seq}: audit_path rows differ" in out.stdout, out.stdout


def test_rolled_back_local_log_is_exposed_by_the_central_checkpoints(tmp_path: Path, fleet_db: FleetDb) -> None:
    env = _small_log(tmp_path, 10)
    saved = {p: p.read_bytes() for p in (env.log_path, env.checkpoint, env.state)}  # the attacker's snapshot
    writer = env.writer()
    for i in range(5):
        writer.append(decision(100 + i, decision="deny"))
    with pgstore.connect(fleet_db.writer_url) as conn:
        assert ship(env.log_path, conn, node="n1").head == 15
    for path, data in saved.items():  # roll the node back: older log with its older, validly signed checkpoint
        path.write_bytes(data)
    local = gatekeeper("audit", "verify", "--log", env.log_path, "--vkey", env.vkey)
    assert local.returncode == 0, local.stdout  # a purely local check cannot see it (the documented limit)
    against = gatekeeper("audit", "verify", "--log", env.log_path, "--vkey", env.vkey, "--db", fleet_db.reader_url,
                         "--node", "n1")
    assert against.returncode == 1
    assert "[rollback]" in against.stdout and "only 10" in against.stdout, against.stdout
    # The shipper refuses to build on it, and says why.
    with pgstore.connect(fleet_db.writer_url) as conn:
        with pytest.raises(ShipConflict, match="holds 10 records but the central trail already holds 15"):
            ship(env.log_path, conn, node="n1")
    # New appends on the restored log fork it: same size as central, different history.
    for i in range(5):
        env.writer().append(decision(200 + i, decision="allow"))
    with pgstore.connect(fleet_db.writer_url) as conn:
        with pytest.raises(ShipConflict, match="differs from the central copy"):
            ship(env.log_path, conn, node="n1")
    forked = gatekeeper("audit", "verify", "--log", env.log_path, "--vkey", env.vkey, "--db", fleet_db.reader_url,
                        "--node", "n1")
    assert forked.returncode == 1 and "[fork]" in forked.stdout, forked.stdout
    # The forked checkpoint was stored as evidence: the central verify shows two roots for size 15.
    central = gatekeeper("audit", "verify", "--db", fleet_db.reader_url, "--vkey", env.vkey)
    assert central.returncode == 1
    assert "fork-evidence" in central.stdout or "root-mismatch" in central.stdout, central.stdout


def test_writer_cannot_shadow_the_trail_with_temporary_tables(tmp_path: Path, fleet_db: FleetDb) -> None:
    """The triggers run as the owner (SECURITY DEFINER): a writer's temporary table named like a trail table must
    not be what they read, or the chain check could be fed a forged predecessor."""
    env = _small_log(tmp_path, 3)
    with pgstore.connect(fleet_db.writer_url) as conn:
        ship(env.log_path, conn, node="n1")
    fake_prev = b"\x07" * 32
    raw = canonical.encode({"v": 1, "seq": 3, "ts": "2026-12-01T00:00:00.000000Z", "node": "x",
                            "prev": fake_prev.hex(), "event": {"type": "recovery", "reason": "x", "bytes": 1,
                                                               "sha256": "0" * 64}})
    with psycopg.connect(fleet_db.writer_url, autocommit=True) as conn:
        conn.execute("CREATE TEMP TABLE audit_record (node text, seq bigint, leaf bytea, raw bytea, prev bytea)")
        conn.execute("INSERT INTO pg_temp.audit_record VALUES ('n1', 2, %s, '', '')", (fake_prev,))
        with pytest.raises(psycopg.Error) as err:
            conn.execute(_INSERT.replace("INTO audit_record", "INTO public.audit_record"),
                         database_row("n1", 3, raw, fake_prev))
        assert err.value.sqlstate == pgstore.SQLSTATE_PREV
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE TABLE public.audit_ref_shadow (x int)")
    assert fleet_db.sql("SELECT count(*) FROM audit_record") == [(3,)]


@pytest.mark.parametrize("shipped_before", [True, False])
def test_shipping_follows_a_rotated_log(tmp_path: Path, fleet_db: FleetDb, shipped_before: bool) -> None:
    """After `audit rotate` the current file starts mid-chain; records still in the rotated file ship first."""
    env = _small_log(tmp_path, 10)
    with pgstore.connect(fleet_db.writer_url) as conn:
        if shipped_before:
            assert ship(env.log_path, conn, node="n1").head == 10
        writer = env.writer()
        old, _ = writer.rotate()
        assert old is not None and old.exists()
        for i in range(5):
            writer.append(decision(50 + i))
        result = ship(env.log_path, conn, node="n1", batch=4)
    assert result.head == 16 and result.shipped == (6 if shipped_before else 16)  # 10 + log.segment + 5
    rows = fleet_db.sql("SELECT raw FROM audit_record WHERE node = 'n1' ORDER BY seq")
    local = old.read_bytes().splitlines() + env.log_path.read_bytes().splitlines()  # type: ignore[union-attr]
    assert [bytes(r[0]) for r in rows] == local  # type: ignore[arg-type]
    report = _verify(fleet_db, env.vkey)
    assert report.ok, report.to_dict()
