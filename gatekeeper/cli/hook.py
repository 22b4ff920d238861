"""``gatekeeper hook pre-receive|post-receive``: what the installed shims run. Not for people.

Reads stdin once as bytes, runs the library hook, writes its message as one block on stderr, exits with its code.
Nothing here may raise: :func:`gatekeeper.push.hook.run_pre_receive` already turns every failure into a refusal, and the
last-resort handler below refuses too (exit 1) if even that goes wrong.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

HOOK_NAMES = ("pre-receive", "post-receive")
_OPTIONS = {"--config": "config", "--fallback-log": "fallback_log", "--chain": "chain"}


class ShimArgs:
    """What :func:`configure`'s parser gives for the command line the installed shims run, by the same names."""

    __slots__ = ("hook_name", "config", "fallback_log", "chain")

    def __init__(self, hook_name: str, config: Path, fallback_log: Path | None, chain: Path | None) -> None:
        self.hook_name, self.config, self.fallback_log, self.chain = hook_name, config, fallback_log, chain


def parse_shim_args(argv: Sequence[str]) -> ShimArgs | None:
    """The arguments of exactly the form the shims write (``NAME --config X [--fallback-log Y] [--chain Z]``, each
    option once, values not starting with ``-``), without building an argparse parser: every push starts here, and
    argparse (with gettext and locale) is a noticeable part of the hook's start. Anything else is None, and then
    argparse parses it (and reports any error) as for every other verb."""
    if len(argv) % 2 != 1 or argv[0] not in HOOK_NAMES:
        return None
    values: dict[str, Path] = {}
    for flag, value in zip(argv[1::2], argv[2::2]):
        name = _OPTIONS.get(flag)
        if name is None or name in values or not value or value.startswith("-"):
            return None
        values[name] = Path(value)
    if "config" not in values:
        return None
    return ShimArgs(argv[0], values["config"], values.get("fallback_log"), values.get("chain"))


def configure(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument("hook_name", choices=list(HOOK_NAMES))
    parser.add_argument("--config", required=True, type=Path, help="server-side policy file")
    parser.add_argument("--fallback-log", type=Path, help="audit log to use when the policy cannot be loaded")
    parser.add_argument("--chain", type=Path, help="a pre-existing hook that must pass too")


def run(args: argparse.Namespace | ShimArgs, verb: str) -> int:
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
