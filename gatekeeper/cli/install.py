"""``gatekeeper install REPO --config FILE`` and ``gatekeeper uninstall REPO``."""

from __future__ import annotations

import argparse
from pathlib import Path


def configure(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument("repo", type=Path, help="path of the (bare) repository")
    if verb == "install":
        parser.add_argument("--config", required=True, type=Path, help="server-side policy file")
        parser.add_argument(
            "--python", help="interpreter the hooks run (default: this one, recorded as an absolute path)",
        )


def run(args: argparse.Namespace, verb: str) -> int:
    from gatekeeper import install as installer

    if verb == "uninstall":
        actions = installer.uninstall(args.repo)
        for action in actions or ["nothing to do: no gatekeeper hooks found"]:
            print(action)
        return 0
    report = installer.install(args.repo, config=args.config, python=args.python)
    for path in report.written:
        print(f"installed {path}")
    for path in report.chained:
        print(f"chained   {path} (the previous hook; it must pass too)")
    if report.key_created:
        print(f"created   audit signing key {report.key_created} (public key: {report.key_created}.pub)")
    print(f"audit log {report.log}")
    return 0
