"""``gatekeeper sync`` and ``gatekeeper doctor`` for Gitea/Forgejo and GitLab installations.

``sync`` is made for cron or a systemd timer: idempotent (writes only what is missing or stale), serialised by a
lock, quiet when nothing changed except for one summary line, non-zero exit when a gap remains. ``doctor`` changes
nothing and lists every repository (or directory) where the gate would not run, exiting non-zero if there is one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gatekeeper.cli._output import add_format, emit_json


def add_forge_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--gitea", type=Path, metavar="ROOT|APP_INI",
        help="Gitea/Forgejo: the repository root ([repository] ROOT), Gitea's app.ini, or its work path",
    )
    parser.add_argument(
        "--gitlab-custom-hooks-dir", type=Path, metavar="DIR",
        help="GitLab: Gitaly's [hooks] custom_hooks_dir (omnibus: /var/opt/gitlab/gitaly/custom_hooks)",
    )


def configure(parser: argparse.ArgumentParser, verb: str) -> None:
    add_forge_options(parser)
    add_format(parser)
    parser.add_argument("--config", required=True, type=Path, help="server-side policy file the gate must run")
    parser.add_argument(
        "--python", help="interpreter the hooks must run (default: this one, as an absolute path)",
    )
    if verb == "sync":
        parser.add_argument(
            "-q", "--quiet", action="store_true",
            help="print nothing when nothing changed and nothing is wrong (cron mails any output)",
        )
        parser.add_argument(
            "--wait", type=float, default=60.0, metavar="SECONDS",
            help="how long to wait for another running sync before giving up (default 60)",
        )


def run(args: argparse.Namespace, verb: str) -> int:
    from gatekeeper.cli._output import UsageError
    from gatekeeper.hosting import forges

    if (args.gitea is None) == (args.gitlab_custom_hooks_dir is None):
        raise UsageError("give exactly one of --gitea and --gitlab-custom-hooks-dir", hint=f"gatekeeper {verb} --help")
    report = forges.run_forge(
        gitea=args.gitea,
        gitlab=args.gitlab_custom_hooks_dir,
        config=args.config,
        python=args.python,
        fix=verb == "sync",
        wait_seconds=getattr(args, "wait", 0.0),
    )
    return print_report(report, verb, quiet=getattr(args, "quiet", False), fmt=args.format)


def print_report(report: object, verb: str, *, quiet: bool = False, fmt: str = "text") -> int:
    """Changes on stdout, problems on stderr, one summary line; exit 1 if any gap remains."""
    from gatekeeper.hosting.forges import ForgeReport

    assert isinstance(report, ForgeReport)
    if fmt == "json":
        emit_json({
            "kind": report.kind, "location": str(report.location), "ok": report.ok, "sites": len(report.sites),
            "written": [str(p) for site in report.changed for p in site.written],
            "broken": [{"site": site.site.label, "problems": list(site.problems)} for site in report.broken],
            "problems": list(report.global_problems), "warnings": list(report.warnings),
            "key_created": str(report.key_created) if report.key_created else None,
        }, f"gatekeeper.{verb}/1")
        return 0 if report.ok else 1
    for site in report.changed:
        for path in site.written:
            print(f"installed {path}")
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for problem in report.global_problems:
        print(f"FAIL: {problem}", file=sys.stderr)
    for site in report.broken:
        print(f"FAIL: {site.site.label}", file=sys.stderr)
        for problem in site.problems:
            print(f"  {problem}", file=sys.stderr)
    if report.key_created:
        print(f"created audit signing key {report.key_created} (public key: {report.key_created}.pub)")
    total = len(report.sites)
    if report.kind == "gitea":
        what = f"{total} {'repository' if total == 1 else 'repositories'}"
    else:
        what = f"{total} custom hooks directory"
    summary = (
        f"{verb}: {report.kind} {report.location}: {what}, {len(report.changed)} updated, "
        f"{len(report.broken)} without a working gate"
    )
    if report.ok:
        if not (quiet and not report.changed and not report.warnings and not report.key_created):
            print(summary)
        return 0
    print(summary, file=sys.stderr)
    return 1
