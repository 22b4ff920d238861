"""``gatekeeper ssh-command USER --root DIR``: the ``authorized_keys`` forced command of a plain SSH git server."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def configure(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument("user", help="the person this SSH key belongs to (a name from the policy)")
    parser.add_argument(
        "--root", type=Path, action="append", required=True,
        help="folder holding the bare repositories this key may reach (repeatable; the first resolves relative paths)",
    )
    parser.add_argument("--read-only", action="store_true", help="allow fetching only (git-upload-pack)")
    parser.add_argument(
        "--allow-ungated", action="store_true",
        help="allow pushing into repositories without the gatekeeper pre-receive hook (default: refuse)",
    )
    parser.add_argument("--git", help="git binary to run (default: git from sshd's PATH)")


def run(args: argparse.Namespace, verb: str) -> int:
    from gatekeeper.hosting import sshcommand

    command = sshcommand.parse(
        os.environ.get("SSH_ORIGINAL_COMMAND"), user=args.user, roots=tuple(args.root),
        require_gate=not args.allow_ungated, read_only=args.read_only,
    )
    sshcommand.exec_git(command, os.environ, git=args.git)
    return 1  # unreachable: exec_git replaces the process or raises
