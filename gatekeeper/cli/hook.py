"""``gatekeeper hook pre-receive|post-receive``: what the installed shims run. Not for people.

Reads stdin once as bytes, runs the library hook, writes its message as one block on stderr, exits with its code.
Nothing here may raise: :func:`gatekeeper.push.hook.run_pre_receive` already turns every failure into a refusal, and the
last-resort handler below refuses too (exit 1) if even that goes wrong.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def configure(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument("hook_name", choices=["pre-receive", "post-receive"])
    parser.add_argument("--config", required=True, type=Path, help="server-side policy file")
    parser.add_argument("--fallback-log", type=Path, help="audit log to use when the policy cannot be loaded")
    parser.add_argument("--chain", type=Path, help="a pre-existing hook that must pass too")


def run(args: argparse.Namespace, verb: str) -> int:
    try:
        from gatekeeper.push import hook
        from gatekeeper.push.hookinput import MAX_STDIN_BYTES

        # Bounded before it is read: one byte over the limit is enough for parse_updates to refuse the push.
        stdin = sys.stdin.buffer.read(MAX_STDIN_BYTES + 1)
        if args.hook_name == "pre-receive":
            result = hook.run_pre_receive(
                stdin, os.environ, config=args.config, fallback_log=args.fallback_log, chain=args.chain,
            )
        else:
            result = hook.run_post_receive(stdin, os.environ, config=args.config, fallback_log=args.fallback_log)
            if args.chain is not None and os.access(args.chain, os.X_OK):
                import subprocess

                subprocess.run([str(args.chain)], input=stdin, check=False, stdout=sys.stderr)
        hook.emit(result.lines, sys.stderr)
        return result.exit_code
    except BaseException as exc:  # noqa: BLE001 -- last resort: never a traceback, never a pass
        if args.hook_name == "post-receive":
            return 0
        prefix = "GL-HOOK-ERR: " if any(os.environ.get(n) for n in ("GL_ID", "GL_USERNAME", "GL_PROTOCOL")) else ""
        sys.stderr.write(f"{prefix}gatekeeper: push REFUSED: the gate failed unexpectedly ({type(exc).__name__})\n")
        return 1
