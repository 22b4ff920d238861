"""Benchmark of the fleet's PostgreSQL trail: shipping throughput, queries over the database, verify rate.

Usage::

    python bench/bench_fleet.py [--records 1000000] [--nodes 3] [--batch 5000] [--keep]

Starts a throw-away PostgreSQL 15 cluster from Debian's binaries (as the tests do, with the server's default
durability: fsync and synchronous_commit on), generates ``--records`` realistic records split over ``--nodes`` local
logs (bench_audit's generator: canonical lines, chain, signed checkpoint), ships them as the INSERT-only writer role,
restarts the server (so the first query starts with cold shared buffers; the OS page cache stays warm), then times
typical auditor queries (first and later run), once right after the load and once after ``VACUUM (ANALYZE)`` (what
autovacuum does to an insert-only table soon after: visibility map and hint bits set, statistics current) and another
restart, and ``verify --db`` over every node. Prints one line per measurement.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from bench_audit import START, generate  # noqa: E402
from pgserver import PgServer  # noqa: E402

from gatekeeper.audit import pgstore  # noqa: E402
from gatekeeper.audit.fleet import query_db, verify_db  # noqa: E402
from gatekeeper.audit.keys import generate_signing_key  # noqa: E402
from gatekeeper.audit.log import utc_timestamp  # noqa: E402
from gatekeeper.audit.query import Filters, Glob  # noqa: E402
from gatekeeper.audit.ship import ship  # noqa: E402

HALF_WAY = ""  # set in main(): the ts of the middle record of each node's log


QUERIES = {
    "repo + since (one repo, second half)": lambda: Filters(repo="ml/repo07", since=HALF_WAY),
    "pusher + decision deny": lambda: Filters(pusher="user13", decision="deny"),
    "path glob models/m42/**": lambda: Filters(path=Glob.path("models/m42/**")),
    "ref glob refs/heads/release/** + deny": lambda: Filters(ref=Glob.ref("refs/heads/release/**"), decision="deny"),
    "break-glass decisions (whole fleet)": lambda: Filters(decision="break-glass"),
}


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a local process (the server backend doing the inserts): unlike wall time, it does
    not depend on what else the machine is running."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def timed(fn):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> int:
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # run the cleanup below when stopped
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5, help="later runs of each query")
    parser.add_argument("--keep", action="store_true", help="leave the data directory and logs in place")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="gk-bench-fleet-"))
    pg = PgServer(fsync=True)
    try:
        db = pg.new_database()
        per_node = args.records // args.nodes
        global HALF_WAY
        HALF_WAY = utc_timestamp(START + per_node // 2)  # the generator writes one record per second
        logs = []
        t0 = time.perf_counter()
        for i in range(args.nodes):
            folder = work / f"node{i}"
            folder.mkdir()
            key = folder / "audit-signing.key"
            vkey = generate_signing_key(key, name=f"node{i}.bench/audit")
            generate(folder / "audit.jsonl", key, f"node{i}.bench/audit", per_node, seed=i + 1)
            logs.append((f"node{i}", folder / "audit.jsonl", vkey))
        print(f"generated {per_node * args.nodes} records in {args.nodes} logs: {time.perf_counter() - t0:.1f} s")

        total = 0
        start = time.perf_counter()
        for name, log, _ in logs:
            with pgstore.connect(db.writer_url) as conn:
                backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
                conn.rollback()
                server_cpu, client_cpu = _cpu_seconds(backend), time.process_time()
                elapsed, result = timed(lambda log=log, name=name, conn=conn: ship(log, conn, node=name,
                                                                                     batch=args.batch))
                server_cpu, client_cpu = _cpu_seconds(backend) - server_cpu, time.process_time() - client_cpu
            total += result.shipped
            print(f"ship {name}: {result.shipped} records in {elapsed:.1f} s = {result.shipped / elapsed:,.0f} "
                  f"records/s (batch {args.batch}, one connection, fsync on); CPU per record: server backend "
                  f"{server_cpu * 1e6 / result.shipped:.0f} us, shipper {client_cpu * 1e6 / result.shipped:.0f} us")
        elapsed = time.perf_counter() - start
        print(f"ship total: {total} records in {elapsed:.1f} s = {total / elapsed:,.0f} records/s "
              f"(load average {_load()})")

        print(f"load average {_load()}")
        for phase in ("fresh load", "after VACUUM"):
            if phase == "after VACUUM":  # what autovacuum does to an insert-only table (visibility map, hint bits)
                elapsed, _ = timed(lambda: pg.sql("VACUUM (ANALYZE)", db=db.name))
                print(f"VACUUM (ANALYZE): {elapsed:.1f} s")
            pg.stop()
            pg.start()  # cold shared buffers for the first query
            print(f"{phase}: server restarted (cold shared buffers; OS page cache warm); load average {_load()}")
            with pgstore.connect(db.reader_url) as conn:
                for label, make in QUERIES.items():
                    first, found = timed(lambda make=make: sum(1 for _ in query_db(conn, make())))
                    later = [timed(lambda make=make: sum(1 for _ in query_db(conn, make())))[0]
                             for _ in range(args.repeat)]
                    print(f"{phase}: query {label}: {found} records, first {first * 1000:.0f} ms, later median "
                          f"{statistics.median(later) * 1000:.0f} ms")
        print(f"load average {_load()}")
        with pgstore.connect(db.reader_url) as conn:
            elapsed, report = timed(lambda: verify_db(conn, database=db.reader_url,
                                                      vkeys=[vkey for _, _, vkey in logs]))
        assert report.ok, report.to_dict()
        records = sum(n.report.records for n in report.nodes)
        print(f"verify --db: {records} records of {len(report.nodes)} nodes in {elapsed:.1f} s = "
              f"{records / elapsed:,.0f} records/s (ok={report.ok})")
        size = pg.sql("SELECT pg_size_pretty(pg_database_size(%s))", db=db.name, params=(db.name,))[0][0]
        print(f"database size: {size}")
    finally:
        if args.keep:
            print(f"kept: {work} and {pg.root}")
        else:
            pg.destroy()
            import shutil

            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
