"""``gatekeeper scan PATH...``: run the gate's content detectors on files and folders outside git.

For CI jobs and reviewers. Exit status: 0 nothing would be refused; 1 something would be refused on every ref
(``malicious`` or ``unscannable``), or, with ``--strict``, also something that needs approval (``review-required``);
2 usage error. Hints never change the exit status.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
from pathlib import Path
from typing import Any

from gatekeeper.model import Finding, Verdict

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2

_GLOBAL = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+$")
# Content verdicts only: Verdict.REFUSED is the hook's, for what git makes of a push (never a file's verdict).
_ORDER = {Verdict.MALICIOUS: 0, Verdict.UNSCANNABLE: 1, Verdict.REVIEW: 2, Verdict.HINT: 3}

EPILOG = """\
exit status:
  0  nothing would be refused (review-required findings and hints are printed, but pass)
  1  something would be refused: malicious or unscannable content; with --strict also review-required
  2  usage error (unknown option, missing or non-existent path, malformed --allow-global)
"""


def configure(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="files or folders to scan")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format (default: text)")
    parser.add_argument("--profile", choices=("torch", "numpy"), default="torch",
                        help="pickle allow-list profile (default: torch)")
    parser.add_argument("--allow-global", action="append", default=[], metavar="MOD.NAME", dest="allow_global",
                        help="also allow this pickle global (repeatable); os/sys/posix/nt are refused anyway")
    parser.add_argument("--lfs-store", type=Path, metavar="DIR",
                        help="Git LFS object store to resolve pointers in (Gitea data/lfs, GitLab shared/lfs-objects)")
    parser.add_argument("--strict", action="store_true", help="exit 1 on review-required findings too")


def _usage(message: str) -> int:
    print(f"gatekeeper scan: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _options(profile: str, allow: list[str]) -> Any:
    try:
        # by name: the binary detectors are built on branch "pickle" and may not be installed
        content = importlib.import_module("gatekeeper.detectors.content")
    except ImportError:
        return None
    return content.ScanOptions(profile=profile, extra_globals=frozenset(allow))


def exit_status(findings: list[Finding], *, strict: bool) -> int:
    refused = {Verdict.MALICIOUS, Verdict.UNSCANNABLE} | ({Verdict.REVIEW} if strict else set())
    return EXIT_REFUSED if any(f.verdict in refused for f in findings) else EXIT_OK


def render_text(findings: list[Finding]) -> str:
    blocks = []
    for f in findings:
        lines = [f"{f.verdict.value}: {f.path}", f"  {f.message} [{f.detector}]"]
        lines.extend(f"    {e}" for e in f.evidence)
        blocks.append("\n".join(lines))
    counts = {v: sum(1 for f in findings if f.verdict == v) for v in _ORDER}
    summary = ", ".join(f"{n} {v.value}" for v, n in counts.items() if n) or "no findings"
    return "\n\n".join([*blocks, f"summary: {summary}"]) + "\n"


def render_json(findings: list[Finding], status: int) -> str:
    doc = {
        "findings": [
            {"verdict": f.verdict.value, "path": f.path, "detector": f.detector, "message": f.message,
             "evidence": list(f.evidence)}
            for f in findings
        ],
        "summary": {v.value: sum(1 for f in findings if f.verdict == v) for v in _ORDER},
        "exit_status": status,
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def run(args: argparse.Namespace, verb: str) -> int:
    return scan(paths=args.paths, fmt=args.format, profile=args.profile, allow_global=args.allow_global,
                lfs_store=args.lfs_store, strict=args.strict)


def scan(*, paths: list[Path], fmt: str, profile: str, allow_global: list[str], lfs_store: Path | None,
         strict: bool) -> int:
    for name in allow_global:
        if not _GLOBAL.match(name):
            return _usage(f"--allow-global expects module.name, got {name!r}")
    if lfs_store is not None and not lfs_store.is_dir():
        return _usage(f"--lfs-store {lfs_store} is not a folder")
    for path in paths:
        if not path.exists() and not path.is_symlink():
            return _usage(f"no such file or folder: {path}")
    from gatekeeper.detectors.scan import scan_files

    from gatekeeper.cli._output import progress

    with progress(f"scanning {len(paths)} path(s)"):
        findings = scan_files(paths, options=_options(profile, allow_global), lfs_store=lfs_store)
    findings.sort(key=lambda f: (_ORDER[f.verdict], f.path, f.message))
    status = exit_status(findings, strict=strict)
    sys.stdout.write(render_json(findings, status) if fmt == "json" else render_text(findings))
    return status
