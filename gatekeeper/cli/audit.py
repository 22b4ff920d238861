"""``gatekeeper audit verify|query|show|export``: the auditor's commands (thin adapter over gatekeeper.audit).

Auditor's semantic checks (issue 3 items 8 and 9): ``query --break-glass [--unreviewed]`` lists break-glass pushes
(only those without an approval recorded after the fact, :mod:`gatekeeper.audit.breakglass`); ``verify --approvals``
re-verifies offline that every allow was justified (:mod:`gatekeeper.audit.semantic`), given the policies
(``--config``/``--policy``) and trust stores (``--allowed-signers``/``--trust-dir``) that were in force.

Exit status: 0 success; 1 verification failed, nothing found, or an error (``gatekeeper: error: ...``); 2 usage.
Human output goes to stdout; ``--format json`` output is machine-readable.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

from gatekeeper.audit.rows import flat_row, printable, write_csv
from gatekeeper.cli._output import UsageError, progress
from gatekeeper.errors import AuditError, ConfigError

EXIT_OK = 0
EXIT_FAIL = 1
TABLE_COLUMNS = ("seq", "ts", "type", "repo", "pusher", "decision", "refs", "paths")


def configure(parser: argparse.ArgumentParser, verb: str) -> None:
    from gatekeeper.cli import audit_fleet

    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    def add(name: str, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        src = p.add_mutually_exclusive_group()
        src.add_argument("--log", type=Path, metavar="FILE", help="the audit log (JSON Lines)")
        src.add_argument("--config", type=Path, metavar="FILE", help="take the log path from a policy's audit.log")
        audit_fleet.add_db_arguments(p, name)
        return p

    v = add("verify", "check the log's canonical form, seq/prev chain, Merkle roots and signed checkpoints")
    v.add_argument("--vkey", action="append", default=[], metavar="VKEY", help="pinned verifier key (repeatable)")
    v.add_argument("--vkey-file", action="append", default=[], type=Path, metavar="FILE",
                   help="file with verifier keys, one per line (repeatable)")
    v.add_argument("--trusted-checkpoint", type=Path, metavar="FILE",
                   help="a checkpoint you kept from an earlier audit: detects rollback and forks")
    v.add_argument("--update-trusted", action="store_true",
                   help="after a clean result, store the log's newer checkpoint into --trusted-checkpoint")
    v.add_argument("--checkpoint", action="append", default=[], type=Path, metavar="FILE",
                   help="another checkpoint to check against the log (copies from WORM storage, a SIEM, ...)")
    v.add_argument("--origin", help="expected checkpoint origin (default: the log's own checkpoint's)")
    v.add_argument("--segment", action="append", default=[], type=Path, metavar="FILE",
                   help="a file that may hold an earlier segment of a rotated log (repeatable; <log>.* next to the "
                        "log, .gz too, are always tried)")
    v.add_argument("--strict", action="store_true", help="fail on warnings too")
    v.add_argument("--format", choices=("text", "json"), default="text")
    v.add_argument("--approvals", action="store_true",
                   help="also re-verify offline that every allow was justified by valid approvals (needs the policy "
                        "and the trust stores in force; see --policy, --allowed-signers, --trust-dir)")
    v.add_argument("--policy", action="append", default=[], type=Path, metavar="FILE",
                   help="a policy that was in force, matched by the records' config_sha256 (repeatable; default: "
                        "the --config file)")
    v.add_argument("--allowed-signers", action="append", default=[], type=Path, metavar="FILE",
                   help="a trust store that was in force, matched by the records' trust_store_sha256 (repeatable; "
                        "the policies' current stores are always tried)")
    v.add_argument("--trust-dir", action="append", default=[], type=Path, metavar="DIR",
                   help="a directory of historical trust stores: files, or subdirectories with allowed_signers and "
                        "revoked_keys (repeatable)")

    def add_filters(p: argparse.ArgumentParser) -> None:
        """The filters of gatekeeper.audit.query.Filters, identical for query and export."""
        p.add_argument("--repo", help="repository id, exact")
        p.add_argument("--ref", metavar="GLOB", help="ref glob over the pushed refs, e.g. 'refs/heads/release/**'")
        p.add_argument("--pusher", metavar="USER", help="pusher's user name, exact")
        p.add_argument("--path", metavar="GLOB",
                       help="path glob over changed paths (gitignore-style, case-insensitive)")
        p.add_argument("--decision", choices=("allow", "deny", "error", "break-glass"))
        p.add_argument("--approver", metavar="PERSON", help="a person whose approval was used, exact")
        p.add_argument("--rule", metavar="NAME", help="a policy rule that applied to a pushed ref, exact")
        p.add_argument("--break-glass", action="store_true", help="only break-glass pushes")
        p.add_argument("--since", metavar="TIME", type=_time, help="ISO-8601 time (UTC if no offset), inclusive")
        p.add_argument("--until", metavar="TIME", type=_time, help="ISO-8601 time (UTC if no offset), exclusive")
        p.add_argument("--type", help="event type, e.g. push.decision, push.outcome, recovery")

    q = add("query", "list records matching all given filters")
    add_filters(q)
    q.add_argument("--format", choices=("table", "json", "csv"), default="table",
                   help="json prints one record per line (JSON Lines)")
    q.add_argument("--limit", type=_positive, metavar="N", help="stop after N records")
    q.add_argument("--no-index", action="store_true", help="scan the log instead of using the derived index")
    q.add_argument("--unreviewed", action="store_true",
                   help="only break-glass pushes without an approval recorded after the fact (implies --break-glass)")
    q.add_argument("--policy", type=Path, metavar="FILE",
                   help="with --unreviewed: judge the approvers' eligibility under this policy (default: --config's; "
                        "without a policy any approval by another person counts)")

    s = add("show", "print one record")
    s.add_argument("seq", type=int, metavar="SEQ")
    s.add_argument("--format", choices=("text", "json"), default="text")

    r = add("rotate",
            "start a new log file linked to the old one (run after logrotate renamed the log, or instead of it)")
    r.add_argument("--to", type=Path, metavar="FILE", help="where to move the current log (default: <log>.<UTC time>);"
                   " ignored when the log was already renamed away")
    r.add_argument("--signing-key", type=Path, metavar="FILE",
                   help="the audit signing key (default: the policy's, else audit-signing.key next to the log)")

    e = add("export", "write the log, its checkpoint and the vkey as a folder or .tar.gz an auditor verifies offline")
    e.add_argument("--out", type=Path, required=True, metavar="DEST", help="new folder, or a file ending in .tar.gz")
    e.add_argument("--vkey-file", type=Path, metavar="FILE", help="vkey file to include (default: the .pub next to "
                   "the default signing key)")
    add_filters(e)  # the whole log is always exported (it must verify); filters add a selection.jsonl/.csv
    audit_fleet.configure(sub, add)


def _time(text: str) -> str:
    """argparse type: a bad time is a usage error (exit 2); the text is parsed again where it is used."""
    from gatekeeper.audit.query import parse_time

    try:
        parse_time(text)
    except AuditError as exc:
        raise argparse.ArgumentTypeError(f"{exc.message} ({exc.hint})") from None
    return text


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def run(args: argparse.Namespace, verb: str) -> int:
    from gatekeeper.cli import audit_fleet

    if audit_fleet.handles(args):
        return audit_fleet.run(args)
    if args.log is None and args.config is None:
        raise UsageError("say which audit log: --log FILE, --config POLICY, or --db URL for the fleet's database")
    log = _log_path(args.log, args.config)
    if args.action == "verify":
        return _verify(
            log, vkeys=args.vkey, vkey_files=args.vkey_file, trusted=args.trusted_checkpoint,
            update_trusted=args.update_trusted, checkpoints=args.checkpoint, origin=args.origin, strict=args.strict,
            fmt=args.format, segments=args.segment,
            approvals=_approvals_inputs(args) if args.approvals else None,
        )
    if args.action == "query":
        return _query(
            log, _filters(args, break_glass=args.break_glass or args.unreviewed), fmt=args.format, limit=args.limit,
            index=not args.no_index, unreviewed=args.unreviewed,
            policy=args.policy or args.config if args.unreviewed else None,
        )
    if args.action == "show":
        return _show(log, seq=args.seq, fmt=args.format)
    if args.action == "rotate":
        return _rotate(log, to=args.to, signing_key=args.signing_key, config=args.config)
    if args.action == "export":
        return _export(log, out=args.out, vkey_file=args.vkey_file, flt=_filters(args, break_glass=args.break_glass))
    raise AssertionError(f"unknown audit action {args.action!r}")


def _filters(args: argparse.Namespace, *, break_glass: bool) -> Any:
    from gatekeeper.audit.query import Filters

    if break_glass and args.decision not in (None, "break-glass"):
        raise UsageError(f"--break-glass contradicts --decision {args.decision}")
    return Filters.build(repo=args.repo, ref=args.ref, pusher=args.pusher, path=args.path, decision=args.decision,
                         since=args.since, until=args.until, type=args.type, approver=args.approver, rule=args.rule,
                         break_glass=break_glass)


def _log_path(log: Path | None, config: Path | None) -> Path:
    """``--log``, or ``audit.log`` of a policy file (read minimally with yaml.safe_load; not a policy validation)."""
    if log is not None:
        return log
    assert config is not None
    import yaml

    try:
        doc = yaml.safe_load(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read the audit log path from {config}: {exc}") from None
    audit = doc.get("audit") if isinstance(doc, dict) else None
    value = audit.get("log") if isinstance(audit, dict) else None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{config} has no audit.log setting", hint="pass the log with --log FILE")
    path = Path(value)
    return path if path.is_absolute() else config.parent / path


_clean = printable  # log fields are user-controlled: escape, never send control or bidi characters to the terminal


# -- verify -----------------------------------------------------------------------------------------------------------

def _approvals_inputs(args: argparse.Namespace) -> tuple[list[Path], list[Path], list[Path]]:
    policies = list(args.policy) or ([args.config] if args.config is not None else [])
    if not policies:
        raise UsageError("--approvals needs the policy in force",
                         hint="pass --config POLICY (or --policy FILE, once per policy that was in force)")
    return policies, list(args.allowed_signers), list(args.trust_dir)


def _verify(
    log: Path, *, vkeys: list[str], vkey_files: list[Path], trusted: Path | None, update_trusted: bool,
    checkpoints: list[Path], origin: str | None, strict: bool, fmt: str,
    approvals: tuple[list[Path], list[Path], list[Path]] | None = None, segments: list[Path] | None = None,
) -> int:
    from gatekeeper.audit.verify import save_trusted_checkpoint, verify_log

    if update_trusted and trusted is None:
        raise UsageError("--update-trusted needs --trusted-checkpoint FILE")
    trusted_arg = trusted if trusted is not None and (trusted.exists() or not update_trusted) else None
    with progress(f"verifying {log}"):
        report = verify_log(log, trusted_checkpoint=trusted_arg, vkeys=vkeys or None, vkey_files=vkey_files,
                            checkpoints=checkpoints, origin=origin, segments=segments or ())
    if approvals is not None:
        with progress("re-verifying approvals"):
            semantic = _semantic(log, approvals)
    else:
        semantic = None
    failed = not report.ok or (strict and bool(report.warnings))
    if semantic is not None:
        failed = failed or not semantic.ok or (strict and bool(semantic.warnings))
    saved = False
    if not failed and update_trusted and trusted is not None:
        saved = save_trusted_checkpoint(report, trusted)
    if fmt == "json":
        doc = report.to_dict()
        doc["trusted_checkpoint_updated"] = saved
        if semantic is not None:
            doc["approvals"] = semantic.to_dict()
        print(json.dumps(doc, indent=2, sort_keys=True))
        return EXIT_FAIL if failed else EXIT_OK
    out = sys.stdout
    if report.ok:
        print(f"OK: {_clean(log)}: {report.records} records, root {report.root}", file=out)
    else:
        first = report.errors[0]
        where = f"; first bad record: line {first.line} (seq {first.seq})" if first.line is not None else ""
        print(f"FAIL: {_clean(log)}: {len(report.errors)} error(s){where}", file=out)
    print(f"  verifier keys: {_clean(report.vkey_source)}", file=out)
    if len(report.segments) > 1:
        print(f"  segments, oldest first: {_clean(', '.join(report.segments))}", file=out)
    for info in report.checkpoints:
        label = "log checkpoint" if info.source == "log" else f"{info.source} checkpoint {info.path}"
        print(f"  {_clean(label)}: origin {_clean(info.origin)}, size {info.size}, signed by "
              f"{_clean(', '.join(info.verified_by))}", file=out)
    for issue in report.errors:
        print(f"error: {_clean(issue)}", file=out)
    for issue in report.warnings:
        print(f"warning: {_clean(issue)}", file=out)
    if saved:
        print(f"  trusted checkpoint {_clean(trusted)} updated", file=out)
    if report.ok and not any(i.source == "trusted" for i in report.checkpoints):
        print("  note: without --trusted-checkpoint a restored older log with its older checkpoint also passes; "
              "keep this checkpoint and pass it next time", file=out)
    if semantic is not None:
        _print_semantic(semantic, out)
    if strict and report.ok and report.warnings:
        print("FAIL: warnings with --strict", file=out)
    return EXIT_FAIL if failed else EXIT_OK


def _semantic(log: Path, inputs: tuple[list[Path], list[Path], list[Path]]) -> Any:
    from gatekeeper.audit.query import query
    from gatekeeper.audit.semantic import load_policies, load_trust_stores, verify_approvals

    policy_files, signer_files, trust_dirs = inputs
    policies = load_policies(policy_files)
    stores = load_trust_stores(signer_files, trust_dirs, policies.values())
    return verify_approvals(query(log, index=False), policies=policies, stores=stores)


def _print_semantic(report: Any, out: TextIO) -> None:
    unjustified = sorted({i.seq for i in report.errors if i.seq is not None})
    if report.ok:
        print(f"APPROVALS OK: {report.allows_checked} allow(s) re-verified", file=out)
    else:
        shown = ", ".join(str(s) for s in unjustified[:20]) + (" ..." if len(unjustified) > 20 else "")
        print(f"APPROVALS FAIL: {len(report.errors)} error(s) in {len(unjustified)} record(s): seq {shown}", file=out)
    for issue in report.errors:
        print(f"error: {_clean(issue)}", file=out)
    for issue in report.warnings:
        print(f"warning: {_clean(issue)}", file=out)
    for kind, count in sorted(report.omitted.items()):
        print(f"  ({count} more {kind} not shown)", file=out)
    if report.break_glass:
        print(f"break-glass: {len(report.break_glass)} record(s)", file=out)
    for bg in report.break_glass:
        if bg.reviewed:
            status = "reviewed by " + ", ".join(f"{person} (seq {seq})" for seq, person, _ in bg.reviews)
        else:
            status = "UNREVIEWED: " + ", ".join(bg.unreviewed_refs)
        print(f"  seq {bg.seq} {_clean(bg.ts)} {_clean(bg.repo)} by {_clean(bg.by)} "
              f"reason {_clean(repr(bg.reason))}: {_clean(status)}", file=out)


# -- query / show -----------------------------------------------------------------------------------------------------

def _print_records(records: Iterable[dict[str, Any]], fmt: str, out: TextIO) -> int:
    count = 0
    if fmt == "json":
        for rec in records:
            out.write(json.dumps(rec, sort_keys=True, separators=(",", ":")) + "\n")
            count += 1
        return count
    if fmt == "csv":
        return write_csv(records, out)
    rows = [flat_row(rec) for rec in records]  # a table needs widths; use --format json/csv to stream huge results
    widths = {c: len(c) for c in TABLE_COLUMNS}
    clean_rows = [{c: _clean(r[c]) for c in TABLE_COLUMNS} for r in rows]
    for row in clean_rows:
        for c in TABLE_COLUMNS[:-1]:
            widths[c] = min(max(widths[c], len(row[c])), 60)
    out.write("  ".join(c.upper().ljust(widths[c]) for c in TABLE_COLUMNS).rstrip() + "\n")
    for row in clean_rows:
        out.write("  ".join(row[c][:60].ljust(widths[c]) if c != "paths" else row[c] for c in TABLE_COLUMNS).rstrip()
                  + "\n")
    return len(rows)


def _query(log: Path, flt: Any, *, fmt: str, limit: int | None, index: bool, unreviewed: bool = False,
           policy: Path | None = None) -> int:
    import itertools

    from gatekeeper.audit.query import query_filters

    if unreviewed:
        records = _unreviewed(log, flt, index=index, policy=policy)
    else:
        records = query_filters(log, flt, index=index)
    if limit is not None:
        records = itertools.islice(records, limit)
    if index and fmt == "table":
        with progress("reading the log (the index is built or updated on first use)"):
            records = list(records)  # a table needs every row before printing anyway
    count = _print_records(records, fmt, sys.stdout)
    if fmt == "table":
        print(f"({count} record{'s' if count != 1 else ''})", file=sys.stderr)
    return EXIT_OK


def _unreviewed(log: Path, flt: Any, *, index: bool, policy: Path | None) -> Iterable[dict[str, Any]]:
    from gatekeeper.audit.breakglass import unreviewed_break_glass

    loaded = None
    if policy is not None:
        from gatekeeper.policy.config import load_policy

        loaded = load_policy(policy)
    if not log.is_file():
        raise AuditError(f"audit log {log} does not exist or is not a file", hint="pass the log with --log FILE")
    return unreviewed_break_glass(log, flt, policy=loaded, index=index)


def _show(log: Path, *, seq: int, fmt: str) -> int:
    from gatekeeper.audit.query import find_record

    found = find_record(log, seq)
    if found is None:
        raise AuditError(f"no record with seq {seq} in {log}", hint="list records with: gatekeeper audit query")
    if fmt == "json":
        print(json.dumps({"line": found.line, "hash": found.hash, "record": found.record}, sort_keys=True))
    else:
        print(f"record seq {seq} (line {found.line}), hash {found.hash}")
        # ensure_ascii: escapes every non-ASCII character, so nothing user-controlled can drive the terminal
        print(json.dumps(found.record, indent=2, sort_keys=True, ensure_ascii=True))
    return EXIT_OK


def _export(log: Path, *, out: Path, vkey_file: Path | None, flt: Any = None) -> int:
    from gatekeeper.audit.export import export_log

    with progress(f"exporting {log}"):
        result = export_log(log, out, vkey_file=vkey_file,
                            selection=None if flt is None or flt.is_empty() else flt)
    sealed = "no checkpoint" if result.checkpoint_size is None else f"checkpoint size {result.checkpoint_size}"
    print(f"exported {result.records} records ({result.log_bytes} bytes, {sealed}) to {_clean(result.dest)}")
    return EXIT_OK


def _rotate(log: Path, *, to: Path | None, signing_key: Path | None, config: Path | None) -> int:
    from gatekeeper.audit.keys import default_key_path
    from gatekeeper.audit.log import AuditLog

    key = signing_key
    origin = None
    if key is None and config is not None:
        from gatekeeper.policy.config import load_policy

        audit = load_policy(config).audit
        key, origin = audit.signing_key, audit.origin
    key = key or default_key_path(log)
    writer = AuditLog(log, signing_key=key if Path(key).exists() else None, origin=origin)
    moved, record = writer.rotate(to)
    where = f"moved to {_clean(moved)}" if moved is not None else "already renamed away"
    print(f"rotated {_clean(log)}: old file {where}; new segment starts at seq {record['seq']}")
    return EXIT_OK

