"""Command-line entry point: one dispatcher, lazily importing only the chosen verb's module.

The hook runs ``gatekeeper hook pre-receive`` on every push, so importing this module must stay cheap: the verb table
below holds module *names*; a verb's module (and whatever it needs: pygit2, yaml, cryptography) is imported only when
that verb runs. Each verb module under ``gatekeeper.cli`` exposes::

    def configure(parser: argparse.ArgumentParser, verb: str) -> None   # add its arguments
    def run(args: argparse.Namespace, verb: str) -> int                  # unpack args, call typed library code

The ``cli`` modules are thin adapters: they translate arguments into keyword arguments of library functions and
results into exit codes and output; they hold no logic of their own.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse
    from types import ModuleType

# verb -> (module, one-line help). Order is the order shown in --help.
COMMANDS: dict[str, tuple[str, str]] = {
    "install": ("gatekeeper.cli.install", "put the gate's hooks into a bare repository, a Gitea server or GitLab"),
    "uninstall": ("gatekeeper.cli.install", "remove the gate's hooks and restore what was there"),
    "sync": ("gatekeeper.cli.forges", "Gitea/GitLab: put the gate into repositories created since (cron-safe)"),
    "doctor": ("gatekeeper.cli.forges", "Gitea/GitLab: list every repository without a working gate"),
    "policy": ("gatekeeper.cli.policy", "lint a policy, or explain which rules protect given paths"),
    "check": ("gatekeeper.cli.check", "client side: what the server will require for pushing a revision"),
    "approve": ("gatekeeper.cli.approve", "review a change set, sign an approval and push it"),
    "approvals": ("gatekeeper.cli.approve", "list, import or withdraw stored approvals"),
    "scan": ("gatekeeper.cli.scan", "scan files for ML artifacts that run code when loaded"),
    "audit": ("gatekeeper.cli.audit", "verify, query, show and export the audit log"),
    "trust": ("gatekeeper.cli.trust", "build allowed_signers from people's signing keys on GitLab or Gitea (cron)"),
    "demo": ("gatekeeper.cli.demo", "the whole story on a throw-away local server"),
    "hook": ("gatekeeper.cli.hook", "what the installed git hooks run (not for people)"),
    "ssh-command": ("gatekeeper.cli.ssh_command", "authorized_keys forced command: set who pushes, run git only"),
}

# Verbs (and sub-actions) that report something a tool may want to read: each takes ``--format json`` (see
# gatekeeper.cli._output for the stability promise). tests/test_cli_conventions.py checks every verb of COMMANDS is
# either here or in NOT_REPORTING, so a new verb cannot skip the convention.
REPORTING: tuple[str, ...] = (
    "check", "policy lint", "policy explain", "doctor", "sync", "approvals list", "trust sync", "scan",
    "audit verify", "audit query", "audit show",
)
NOT_REPORTING: dict[str, str] = {
    "install": "prints the files it wrote; its exit status is the result",
    "uninstall": "prints the files it removed; its exit status is the result",
    "approve": "interactive: shows the review (check --format json gives it to tools), then signs",
    "approvals import": "stores one file; its exit status is the result",
    "approvals withdraw": "signs and pushes one withdrawal; its exit status is the result",
    "audit export": "writes a folder or archive; its exit status is the result",
    "audit ship": "a shipper or service: one line per run or batch; its exit status is the result",
    "audit report": "writes an HTML page for people (audit verify --format json is the machine result)",
    "audit db-init": "creates the database schema once; its exit status is the result",
    "audit rotate": "moves the log and starts the linked segment; its exit status is the result",
    "demo": "a story for people",
    "hook": "speaks git's hook protocol",
    "ssh-command": "execs git; speaks git's protocol",
}

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_USAGE = 2
EXIT_BUG = 3


def _top_parser() -> argparse.ArgumentParser:
    import argparse

    epilog = "commands:\n" + "\n".join(f"  {verb:<11} {help_}" for verb, (_, help_) in COMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="gatekeeper",
        description="Server-side review gate for Git repositories that hold ML code, configs and models.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from gatekeeper import __version__

    parser.add_argument("--version", action="version", version=f"gatekeeper {__version__}")
    parser.add_argument("command", choices=list(COMMANDS), metavar="COMMAND", help="one of the commands below")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Parse only the verb first (dulwich's lazy-command idea), so that `gatekeeper hook` never builds or imports the
    # parsers and modules of the other verbs.
    if not argv or argv[0] not in COMMANDS:
        top = _top_parser()
        top.parse_args(argv[:1] or ["--help"])
        return EXIT_USAGE  # unreachable: argparse exits on a bad or missing verb
    verb, rest = argv[0], argv[1:]
    module = importlib.import_module(COMMANDS[verb][0])
    if verb == "hook":
        # Every push starts here: the shims' own command line is read without argparse (anything else is not).
        shim_args = module.parse_shim_args(rest)
        if shim_args is not None:
            return int(module.run(shim_args, verb))
    import argparse

    parser = argparse.ArgumentParser(prog=f"gatekeeper {verb}", description=COMMANDS[verb][1])
    module.configure(parser, verb)
    args = parser.parse_args(rest)
    if verb == "hook":
        # The hook has its own fail-closed handler: it must refuse the push and write an audit record on any error.
        return int(module.run(args, verb))
    return _run_with_error_handler(module, args, verb)


def _run_with_error_handler(module: ModuleType, args: argparse.Namespace, verb: str) -> int:
    from gatekeeper.cli._output import UsageError
    from gatekeeper.errors import GatekeeperError

    try:
        code = module.run(args, verb)
    except UsageError as exc:
        # like argparse's own errors: "gatekeeper VERB: error: ..." and exit status 2
        print(f"gatekeeper {verb}: error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return EXIT_USAGE
    except GatekeeperError as exc:
        print(f"gatekeeper: error: {exc.message}", file=sys.stderr)
        for problem in getattr(exc, "problems", []):
            print(f"  {problem}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return EXIT_FAIL
    except KeyboardInterrupt:
        print("gatekeeper: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_FAIL
    if code is None:
        raise AssertionError(f"command {verb!r} returned no exit status")
    return int(code)
