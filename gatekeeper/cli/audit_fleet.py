"""The fleet side of ``gatekeeper audit``: ``--db`` on verify/query/export, and ``ship``, ``report``, ``db-init``.

Thin adapter over :mod:`gatekeeper.audit.ship`, :mod:`gatekeeper.audit.fleet` and :mod:`gatekeeper.audit.report`;
kept apart from ``cli/audit.py`` so the file-log verbs never import psycopg. ``--db`` without a URL takes the
policy's ``audit.database`` (``--config POLICY``).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

from gatekeeper.cli._output import UsageError
from gatekeeper.errors import AuditError, ConfigError

EXIT_OK = 0
EXIT_FAIL = 1
FROM_POLICY = "<audit.database>"  # --db given without a URL
DB_VERBS = ("verify", "query", "export", "report", "ship")


def add_db_arguments(p: argparse.ArgumentParser, action: str) -> None:
    if action not in DB_VERBS:
        return
    p.add_argument("--db", nargs="?", const=FROM_POLICY, metavar="URL",
                   help="the fleet's PostgreSQL trail (libpq URL, e.g. postgresql://auditor@db.example/gatekeeper); "
                        "--db alone takes audit.database from --config")
    p.add_argument("--node", action="append", default=[], metavar="NAME",
                   help="with --db: only this node (repeatable; default: all nodes)")
    if action == "verify":
        p.add_argument("--state", type=Path, metavar="DIR",
                       help="with --db: your trusted checkpoints, one per node (DIR/<node>.checkpoint); with "
                            "--update-trusted they move forward after a clean result")


def configure(sub: Any, add: Callable[[str, str], argparse.ArgumentParser]) -> None:
    s = add("ship", "copy the local log's new records and its checkpoint into the fleet's PostgreSQL trail")
    s.add_argument("--batch", type=int, default=5000, metavar="N", help="records per transaction (default 5000)")
    s.add_argument("--follow", action="store_true",
                   help="keep running: ship every --interval seconds, retry while the database is down")
    s.add_argument("--interval", type=float, default=5.0, metavar="SECONDS")

    r = add("report", "write a self-contained HTML report for auditors (from --log/--config or --db)")
    r.add_argument("--html", type=Path, required=True, metavar="FILE", help="the report file to write")
    r.add_argument("--since", metavar="TIME", help="ISO-8601 time (UTC if no offset), inclusive")
    r.add_argument("--until", metavar="TIME", help="ISO-8601 time (UTC if no offset), exclusive")
    r.add_argument("--repo", help="only this repository")
    r.add_argument("--vkey", action="append", default=[], metavar="VKEY", help="pinned verifier key (repeatable)")
    r.add_argument("--vkey-file", action="append", default=[], type=Path, metavar="FILE")
    r.add_argument("--trusted-checkpoint", type=Path, metavar="FILE",
                   help="file log: the checkpoint from your last audit, shown with the verify result")
    r.add_argument("--state", type=Path, metavar="DIR", help="--db: your trusted checkpoints, one per node")
    r.add_argument("--policy", type=Path, metavar="FILE",
                   help="judge break-glass reviewers' eligibility under this policy (default: --config's)")

    d = sub.add_parser("db-init", help="create the fleet trail's tables, triggers and grants (run as the owner)",
                       description="create the fleet trail's tables, triggers and grants (idempotent; run as the "
                                   "database owner, never as the writer role)")
    d.add_argument("--db", required=True, metavar="URL")
    d.add_argument("--writer", metavar="ROLE", help="role the shippers use: gets INSERT only")
    d.add_argument("--reader", metavar="ROLE", help="role auditors use: gets SELECT")
    d.add_argument("--schema", default="public")


def handles(args: argparse.Namespace) -> bool:
    return args.action in ("ship", "report", "db-init") or getattr(args, "db", None) is not None


def _clean(text: object) -> str:
    from gatekeeper.audit.rows import printable

    return printable(text)


def _policy_database(config: Path | None) -> str:
    if config is None:
        raise UsageError("--db without a URL needs --config POLICY (its audit.database)")
    from gatekeeper.policy.config import load_policy

    url = load_policy(config).audit.database
    if not url:
        raise ConfigError(f"{config} has no audit.database setting", hint="pass the database with --db URL")
    return str(url)


def _db_url(args: argparse.Namespace) -> str | None:
    url = getattr(args, "db", None)
    if url == FROM_POLICY:
        return _policy_database(args.config)
    return url


def _filters(args: argparse.Namespace) -> Any:
    """The same typed filters as the file verbs (gatekeeper.audit.query.Filters); report has fewer options."""
    from gatekeeper.audit.query import Filters

    return Filters.build(
        repo=getattr(args, "repo", None), ref=getattr(args, "ref", None), pusher=getattr(args, "pusher", None),
        path=getattr(args, "path", None), decision=getattr(args, "decision", None),
        since=getattr(args, "since", None), until=getattr(args, "until", None), type=getattr(args, "type", None),
        approver=getattr(args, "approver", None), rule=getattr(args, "rule", None),
        break_glass=bool(getattr(args, "break_glass", False) or getattr(args, "unreviewed", False)),
    )


def run(args: argparse.Namespace) -> int:
    from gatekeeper.audit import pgstore

    if args.action == "db-init":
        with pgstore.connect(args.db) as conn:
            pgstore.install_schema(conn, schema=args.schema, writer=args.writer, reader=args.reader)
        print(f"audit trail schema ready in {pgstore.redact(args.db)}"
              + (f"; {args.writer} may INSERT only" if args.writer else ""))
        return EXIT_OK
    url = _db_url(args)
    if args.action == "ship":
        return _ship(args, url)
    if args.action == "report":
        return _report(args, url)
    assert url is not None
    if args.action == "verify":
        if args.log is not None or (args.config is not None and args.db != FROM_POLICY):
            return _verify_local_against_central(args, url)
        return _verify_db(args, url)
    if args.action == "query":
        return _query(args, url)
    if args.action == "export":
        from gatekeeper.audit.fleet import export_db

        with pgstore.connect(url) as conn:
            result = export_db(conn, args.out, nodes=args.node or None)
        total = sum(result.nodes.values())
        print(f"exported {total} records of {len(result.nodes)} node(s) to {_clean(result.dest)}")
        return EXIT_OK
    raise UsageError(f"--db is not supported by audit {args.action}")


# -- ship -------------------------------------------------------------------------------------------------------------

def _ship(args: argparse.Namespace, url: str | None) -> int:
    from gatekeeper.audit import pgstore
    from gatekeeper.audit.ship import default_node, ship, ship_forever
    from gatekeeper.cli.audit_common import _log_path

    policy = None
    if args.config is not None:
        from gatekeeper.policy.config import load_policy

        policy = load_policy(args.config)
        url = url or policy.audit.database
    if args.log is None and args.config is None:
        raise UsageError("say which log to ship: --log FILE or --config POLICY")
    if not url:
        raise AuditError("no database to ship to", hint="pass --db URL or set audit.database in the policy")
    log = _log_path(args.log, args.config)
    if len(args.node) > 1:
        raise UsageError("a log belongs to one node: pass --node once")
    node = args.node[0] if args.node else default_node(log)
    if args.follow:
        return ship_forever(log, url, node=node, interval=args.interval, policy=policy,
                            report=lambda line: print(line, flush=True))
    with pgstore.connect(url) as conn:
        result = ship(log, conn, node=node, batch=args.batch, policy=policy)
    sealed = "" if result.checkpoint_size is None else f", checkpoint size {result.checkpoint_size}"
    print(f"node {_clean(node)}: shipped {result.shipped} record(s); the database holds {result.head}{sealed}")
    return EXIT_OK


# -- verify -----------------------------------------------------------------------------------------------------------

def _verify_local_against_central(args: argparse.Namespace, url: str) -> int:
    """A node's local log against the checkpoints the central store holds for it: rollback and forks show."""
    from gatekeeper.audit import pgstore
    from gatekeeper.audit.fleet import central_checkpoints
    from gatekeeper.audit.ship import default_node
    from gatekeeper.cli.audit_common import _approvals_inputs, _log_path, _verify

    log = _log_path(args.log, args.config)
    if len(args.node) > 1:
        raise UsageError("a log belongs to one node: pass --node once")
    node = args.node[0] if args.node else default_node(log)
    with tempfile.TemporaryDirectory(prefix="gk-central-") as tmp, pgstore.connect(url) as conn:
        central, others = central_checkpoints(conn, node, Path(tmp))
        if central is None:
            raise AuditError(f"the audit database holds no checkpoint for node {node}",
                             hint="ship the node's log first (gatekeeper audit ship), or pass --node")
        trusted, extra = (central, others) if args.trusted_checkpoint is None else \
            (args.trusted_checkpoint, [central, *others])
        print(f"checking {_clean(log)} against the central checkpoint of node {_clean(node)}")
        return _verify(log, vkeys=args.vkey, vkey_files=args.vkey_file, trusted=trusted, update_trusted=False,
                       checkpoints=[*args.checkpoint, *extra], origin=args.origin, strict=args.strict,
                       fmt=args.format, approvals=_approvals_inputs(args, log) if args.approvals else None)


def _verify_db(args: argparse.Namespace, url: str) -> int:
    from gatekeeper.audit import pgstore
    from gatekeeper.audit.fleet import node_names, node_records, verify_db, write_archive

    if args.update_trusted and args.state is None:
        raise UsageError("--update-trusted with --db needs --state DIR")
    approvals = None
    with pgstore.connect(url) as conn, tempfile.TemporaryDirectory(prefix="gk-archive-") as tmp:
        report = verify_db(conn, database=url, nodes=args.node or None, vkeys=args.vkey or None,
                           vkey_files=args.vkey_file, state_dir=args.state, update_trusted=args.update_trusted)
        if args.approvals:
            # The policies and trust stores the nodes archived, next to any --policy/--trust-dir given.
            write_archive(conn, Path(tmp))
            # Every node is judged (a break-glass push on one node may be reviewed through another); only the
            # nodes asked for are reported.
            streams = {node: partial(node_records, conn, node) for node in node_names(conn, None)}
            approvals = {node: report for node, report in _semantic(args, streams, Path(tmp)).items()
                         if not args.node or node in args.node}
    failed = not report.ok
    if args.strict:
        failed = failed or any(n.report.warnings for n in report.nodes)
    if approvals is not None:
        failed = failed or any(not r.ok or (args.strict and r.warnings) for r in approvals.values())
    if args.format == "json":
        doc = report.to_dict()
        if approvals is not None:
            doc["approvals"] = {node: r.to_dict() for node, r in approvals.items()}
        print(json.dumps(doc, indent=2, sort_keys=True))
        return EXIT_FAIL if failed else EXIT_OK
    print_fleet_verify(report, sys.stdout)
    if approvals is not None:
        from gatekeeper.cli.audit_common import _print_semantic

        for node, result in approvals.items():
            print(f"node {_clean(node)}:")
            _print_semantic(result, sys.stdout)
    return EXIT_FAIL if failed else EXIT_OK


def _semantic(args: argparse.Namespace, streams: Mapping[str, Callable[[], Iterable[dict[str, Any]]]],
              archive: Path) -> dict[str, Any]:
    """verify --approvals for every node: the archive written by fleet.write_archive, then what the auditor passed."""
    from gatekeeper.audit.archive import policies_in
    from gatekeeper.audit.semantic import load_policies, load_trust_stores, verify_approvals_fleet

    given = list(args.policy) or ([args.config] if args.config is not None else [])
    policies = {**policies_in(archive / "policies"), **load_policies(given)}
    if not policies:
        raise UsageError("--approvals needs the policy in force, and no node archived one in the database",
                         hint="pass --config POLICY (or --policy FILE, once per policy that was in force); nodes "
                              "ship their archived policies with every `audit ship`")
    trust = archive / "trust"
    stores = load_trust_stores(args.allowed_signers, [*args.trust_dir, *([trust] if trust.is_dir() else [])],
                               policies.values())
    return verify_approvals_fleet(streams, policies=policies, stores=stores)


def print_fleet_verify(report: Any, out: Any) -> None:
    if not report.nodes:
        print(f"FAIL: {report.database}: no node has shipped records", file=out)
    for nv in report.nodes:
        r = nv.report
        errors = [*r.errors, *nv.db_errors]
        if nv.ok:
            print(f"OK: node {_clean(nv.node)}: {r.records} records, root {r.root}", file=out)
        else:
            first = errors[0]
            where = f"; first bad record: seq {first.seq}" if first.seq is not None else ""
            print(f"FAIL: node {_clean(nv.node)}: {len(errors)} error(s){where}", file=out)
        print(f"  verifier keys: {_clean(r.vkey_source)}", file=out)
        for info in r.checkpoints:
            label = {"log": "latest central checkpoint", "trusted": f"your trusted checkpoint {info.path}"}.get(
                info.source, "central checkpoint")
            print(f"  {_clean(label)}: origin {_clean(info.origin)}, size {info.size}, signed by "
                  f"{_clean(', '.join(info.verified_by))}", file=out)
        for issue in errors:
            print(f"error: node {_clean(nv.node)}: {_clean(_row_issue(issue))}", file=out)
        for issue in r.warnings:
            print(f"warning: node {_clean(nv.node)}: {_clean(_row_issue(issue))}", file=out)
        if nv.trusted_updated:
            print(f"  trusted checkpoint {_clean(nv.trusted)} updated", file=out)


def _row_issue(issue: Any) -> str:
    """An issue about the dump says "line N"; in the database that is the row with seq N-1."""
    prefix = f"row seq {issue.seq}: " if issue.seq is not None else ""
    return f"[{issue.code}] {prefix}{issue.message}"


# -- query ------------------------------------------------------------------------------------------------------------

def _query(args: argparse.Namespace, url: str) -> int:
    from gatekeeper.audit import pgstore
    from gatekeeper.audit.fleet import query_db

    if args.break_glass and args.decision not in (None, "break-glass"):
        raise UsageError(f"--break-glass contradicts --decision {args.decision}")
    flt = _filters(args)
    with pgstore.connect(url) as conn:
        if args.unreviewed:
            rows: Iterable[tuple[str, dict[str, Any]]] = _unreviewed(conn, flt, args)
        else:
            rows = query_db(conn, flt, nodes=args.node or None, warn=_warn)
        if args.limit is not None:
            rows = itertools.islice(rows, args.limit)
        count = print_rows(rows, args.format, sys.stdout)
    if args.format == "table":
        print(f"({count} record{'s' if count != 1 else ''})", file=sys.stderr)
    return EXIT_OK


def _warn(message: str) -> None:
    print(f"gatekeeper: warning: {message}", file=sys.stderr)


def _unreviewed(conn: Any, flt: Any, args: argparse.Namespace) -> Iterable[tuple[str, dict[str, Any]]]:
    from gatekeeper.audit.fleet import node_names, unreviewed_break_glass_db

    policy = None
    source = args.policy or args.config
    if source is not None:
        from gatekeeper.policy.config import load_policy

        policy = load_policy(source)
    nodes = node_names(conn, args.node or None)  # unknown --node names are an error, as for the other verbs
    return unreviewed_break_glass_db(conn, flt, nodes=nodes, policy=policy)


def print_rows(rows: Iterable[tuple[str, dict[str, Any]]], fmt: str, out: Any) -> int:
    """As the file query prints (gatekeeper.audit.rows), with the node first."""
    from gatekeeper.audit.rows import CSV_COLUMNS, csv_cell, flat_row, printable
    from gatekeeper.cli.audit_common import TABLE_COLUMNS

    count = 0
    if fmt == "json":
        for node, rec in rows:
            out.write(json.dumps({"fleet_node": node, **rec}, sort_keys=True, separators=(",", ":")) + "\n")
            count += 1
        return count
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(("node", *CSV_COLUMNS))
        for node, rec in rows:
            row = flat_row(rec)
            row["paths"] = row["all_paths"]
            writer.writerow([csv_cell(node), *(csv_cell(row[c]) for c in CSV_COLUMNS)])
            count += 1
        return count
    columns = ("node", *TABLE_COLUMNS)
    table = [{c: printable(v) for c, v in {"node": node, **flat_row(rec)}.items()} for node, rec in rows]
    widths = {c: min(max([len(c)] + [len(r[c]) for r in table]), 60) for c in columns}
    out.write("  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip() + "\n")
    for r in table:
        out.write("  ".join(r[c][:60].ljust(widths[c]) if c != "paths" else r[c] for c in columns).rstrip() + "\n")
    return len(table)


# -- report -----------------------------------------------------------------------------------------------------------

def _report(args: argparse.Namespace, url: str | None) -> int:
    from gatekeeper.audit import report as html_report

    flt = _filters(args)
    policy = None
    if args.policy or (args.config and url is None):
        from gatekeeper.policy.config import load_policy

        policy = load_policy(args.policy or args.config)
    if url is not None:
        from gatekeeper.audit import pgstore

        with pgstore.connect(url) as conn:
            data = html_report.collect_db(conn, flt, database=url, nodes=args.node or None, vkeys=args.vkey or None,
                                          vkey_files=args.vkey_file, state_dir=args.state, policy=policy)
    else:
        if args.log is None and args.config is None:
            raise UsageError("say which trail to report on: --log FILE, --config POLICY or --db URL")
        from gatekeeper.cli.audit_common import _log_path

        log = _log_path(args.log, args.config)
        data = html_report.collect_log(log, flt, vkeys=args.vkey or None, vkey_files=args.vkey_file,
                                       trusted=args.trusted_checkpoint, policy=policy)
    html_report.write_html(data, args.html)
    status = "verified" if data.verify_ok else "VERIFY FAILED"
    print(f"report: {data.total} record(s), {status}, written to {_clean(args.html)}")
    return EXIT_OK if data.verify_ok else EXIT_FAIL
