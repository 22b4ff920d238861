"""``gatekeeper trust sync``: build ``allowed_signers`` from the SSH signing keys people registered on a forge.

    gatekeeper trust sync (--gitlab URL | --gitea URL) --config FILE [--output FILE] [--token-file FILE] [--dry-run]
                          [--force] [--max-drop PERCENT] [--timeout SECONDS] [--deadline SECONDS]

For cron or a systemd timer, never for the push path. The token comes from ``--token-file`` or
``$GATEKEEPER_FORGE_TOKEN``, never from the command line (other users can read it in ``ps``).

Exit status: 0 the trust store is up to date and every person has a signing key; 4 it is up to date but some people
have no signing key (listed; they cannot approve); 1 nothing was written (the API failed, a key belongs to two people,
the sync would take keys from too many people at once, ...); 2 usage error.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from gatekeeper.cli._output import add_format, emit_json, plain


def configure(parser: argparse.ArgumentParser, verb: str) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    sync = sub.add_parser("sync", help="write allowed_signers from the people's signing keys on GitLab or Gitea",
                          description=plain(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    add_format(sync)
    forge = sync.add_mutually_exclusive_group(required=True)
    forge.add_argument("--gitlab", metavar="URL", help="GitLab base URL, e.g. https://gitlab.example.com")
    forge.add_argument("--gitea", metavar="URL", help="Gitea or Forgejo base URL, e.g. https://gitea.example.com")
    sync.add_argument("--config", required=True, type=Path, metavar="FILE", help="the policy file (people, trust)")
    sync.add_argument("--output", type=Path, metavar="FILE", help="file to write (default: trust.allowed_signers)")
    sync.add_argument("--token-file", type=Path, metavar="FILE",
                      help="file holding the API token (default: $GATEKEEPER_FORGE_TOKEN)")
    sync.add_argument("--dry-run", action="store_true", help="show the report and the diff; write nothing")
    sync.add_argument("--force", action="store_true",
                      help="write even if more than --max-drop percent of the people who had a key would lose it")
    sync.add_argument("--max-drop", type=_percent, default=50.0, metavar="PERCENT",
                      help="refuse to take every key from more than this share of keyed people (default: 50)")
    sync.add_argument("--timeout", type=_seconds, default=20.0, metavar="SECONDS",
                      help="read timeout per request (default: 20; connect timeout 5)")
    sync.add_argument("--deadline", type=_seconds, default=300.0, metavar="SECONDS",
                      help="total time for the whole sync, retries included (default: 300)")
    sync.add_argument("--retries", type=int, choices=range(0, 11), default=3, metavar="N",
                      help="extra attempts per request on connection errors, timeouts, 5xx and 429 (default: 3)")


def _percent(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError("must be between 0 and 100")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError("must be more than 0 and at most 3600")
    return value


def run(args: argparse.Namespace, verb: str) -> int:
    from gatekeeper.hosting import trustsync

    settings = trustsync.HttpSettings(connect_timeout=min(5.0, args.timeout), read_timeout=args.timeout,
                                      retries=args.retries, deadline=args.deadline)
    kind, url = ("gitlab", args.gitlab) if args.gitlab else ("gitea", args.gitea)
    options: dict[str, Any] = dict(kind=kind, url=url, config=args.config, env=os.environ, output=args.output,
                                   token_file=args.token_file, dry_run=args.dry_run, force=args.force,
                                   max_drop_percent=args.max_drop, settings=settings)
    if args.format == "text":
        return trustsync.sync(out=sys.stdout, **options)
    # JSON: the same run as structured data; errors still raise (exit 1, message on stderr)
    outcome = trustsync.run_sync(**options)
    emit_json({"forge": kind, "url": url, "exit_status": outcome.exit_status,
               "people_without_key": outcome.exit_status == trustsync.EXIT_PEOPLE_WITHOUT_KEY,
               **outcome.as_json()}, "gatekeeper.trust-sync/2")
    return outcome.exit_status
