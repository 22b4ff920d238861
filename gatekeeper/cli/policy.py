"""``gatekeeper policy lint|explain``: check a policy file; show which rules protect given paths on a ref.

    gatekeeper policy lint --config FILE
    gatekeeper policy explain --config FILE --ref REF [--stdin [-z]] [PATH...]

``lint`` prints every problem as ``FILE:LINE: message`` and exits 1 when there is an error (warnings alone exit 0),
else prints a one-line summary. ``explain`` loads the policy like the hook does (any error refuses, exit 1) and, per
path, lists the rules that protect it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_USAGE = 2


def configure(parser: argparse.ArgumentParser, verb: str) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    lint = sub.add_parser("lint", help="report every problem in a policy file (FILE:LINE: message)")
    lint.add_argument("--config", required=True, type=Path, metavar="FILE", help="the policy file (YAML)")
    explain = sub.add_parser("explain", help="show which rules protect the given paths on a ref")
    explain.add_argument("--config", required=True, type=Path, metavar="FILE", help="the policy file (YAML)")
    explain.add_argument("--ref", required=True, help="full ref name, e.g. refs/heads/main")
    explain.add_argument("--stdin", action="store_true", help="also read paths from stdin, one per line")
    explain.add_argument("-z", dest="nul", action="store_true", help="with --stdin: paths are NUL-separated")
    explain.add_argument("paths", nargs="*", metavar="PATH", help="repository paths (as git stores them)")


def run(args: argparse.Namespace, verb: str) -> int:
    if args.action == "lint":
        return lint(config=args.config)
    paths = [os.fsencode(p) for p in args.paths]
    if args.stdin:
        paths.extend(_split(sys.stdin.buffer.read(), b"\0" if args.nul else b"\n"))
    elif args.nul:
        print("gatekeeper policy explain: error: -z needs --stdin", file=sys.stderr)
        return EXIT_USAGE
    if not paths:
        print("gatekeeper policy explain: error: give at least one PATH (or --stdin)", file=sys.stderr)
        return EXIT_USAGE
    return explain(config=args.config, ref=args.ref, paths=paths)


def _split(data: bytes, sep: bytes) -> list[bytes]:
    items = data.split(sep)
    if sep == b"\n":
        items = [item[:-1] if item.endswith(b"\r") else item for item in items]
    return [item for item in items if item]


def lint(*, config: Path, out: TextIO | None = None) -> int:
    """Print every problem of the policy at ``config``; 1 if any is an error, else 0 with a summary."""
    from gatekeeper.policy.config import lint_and_load

    out = out or sys.stdout
    policy, problems = lint_and_load(config)
    for problem in problems:
        print(problem, file=out)
    errors = sum(1 for p in problems if p.is_error)
    warnings = len(problems) - errors
    if errors or policy is None:
        print(f"{config}: {_count(errors, 'error')}, {_count(warnings, 'warning')}", file=out)
        return EXIT_FAIL
    print(
        f"{config}: ok: version {policy.version}, mode {policy.mode}, "
        f"{_count(len(policy.protected_refs), 'protected ref pattern')}, {_count(len(policy.rules), 'rule')}, "
        f"{_count(len(policy.people), 'person', 'people')}, {_count(len(policy.groups), 'group')}"
        + (f"; {_count(warnings, 'warning')}" if warnings else ""),
        file=out,
    )
    return EXIT_OK


def explain(*, config: Path, ref: str, paths: Sequence[bytes], out: TextIO | None = None) -> int:
    """Print, per path, the rules protecting it on ``ref``. Raises ConfigError when the policy is invalid."""
    from gatekeeper.model import display_path
    from gatekeeper.policy.config import load_policy

    out = out or sys.stdout
    policy = load_policy(config)
    print(f"policy {policy.source_path} (sha256 {policy.source_sha256[:12]}), mode {policy.mode}", file=out)
    ref_pattern = policy.protected_ref_pattern(ref)
    if ref_pattern is not None:
        print(f"ref {ref}: protected (matches {ref_pattern!r})", file=out)
    else:
        print(f"ref {ref}: NOT protected: pushes to it need no approvals (content scanning still applies); "
              "rules shown are those that apply on protected refs", file=out)
    for path in paths:
        print(display_path(path), file=out)
        rules = policy.rules_for(path)
        if not rules:
            print("    no rule: changes need no approval", file=out)
            continue
        for rule in rules:
            people = ", ".join(sorted(policy.reviewers_of(rule)))
            print(
                f"    {rule.name}: {_count(rule.approvals, 'approval')} from {', '.join(rule.reviewers)} ({people})"
                f"  [pattern {rule.matching_pattern(path)!r}]",
                file=out,
            )
    return EXIT_OK


def _count(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else (plural or word + 's')}"


