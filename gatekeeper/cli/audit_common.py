"""What the file verbs (:mod:`gatekeeper.cli.audit`) and the fleet verbs (:mod:`gatekeeper.cli.audit_fleet`) share:
the log path from a policy, ``audit verify`` of one log file and its report, the query table's columns. Its own module
so that neither CLI module imports the other (tests/test_layering.py refuses import cycles).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from gatekeeper.audit.rows import printable
from gatekeeper.cli._output import UsageError, progress
from gatekeeper.errors import ConfigError

EXIT_OK = 0
EXIT_FAIL = 1
TABLE_COLUMNS = ("seq", "ts", "type", "repo", "pusher", "decision", "refs", "paths")
_clean = printable  # log fields are user-controlled: escape, never send control or bidi characters to the terminal


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


# -- verify -----------------------------------------------------------------------------------------------------------

def _approvals_inputs(args: argparse.Namespace, log: Path | None = None) -> tuple[list[Path], list[Path], list[Path]]:
    """The policies and trust stores ``verify --approvals`` was given; none is needed when ``log`` has the archive
    the hook keeps beside it (gatekeeper.audit.archive)."""
    policies = list(args.policy) or ([args.config] if args.config is not None else [])
    from gatekeeper.audit.archive import archive_dir

    if not policies and (log is None or not archive_dir(log).is_dir()):
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
    from gatekeeper.audit.archive import archived_policies, stores_for
    from gatekeeper.audit.query import query
    from gatekeeper.audit.semantic import load_policies, load_trust_stores, verify_approvals

    policy_files, signer_files, trust_dirs = inputs
    # The archive next to the log first (what the hook kept), then what the auditor passes.
    policies = {**archived_policies(log), **load_policies(policy_files)}
    stores = {**stores_for(log), **load_trust_stores(signer_files, trust_dirs, policies.values())}
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
            nodes = bg.review_nodes or (None,) * len(bg.reviews)
            status = "reviewed by " + ", ".join(f"{person} ({f'node {node} ' if node else ''}seq {seq})"
                                                for (seq, person, _), node in zip(bg.reviews, nodes))
        else:
            status = "UNREVIEWED: " + ", ".join(bg.unreviewed_refs)
        print(f"  seq {bg.seq} {_clean(bg.ts)} {_clean(bg.repo)} by {_clean(bg.by)} "
              f"reason {_clean(repr(bg.reason))}: {_clean(status)}", file=out)
