"""``gatekeeper demo``: the whole story on a throw-away local server."""

from __future__ import annotations

import argparse
from pathlib import Path


def configure(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument("--dir", type=Path, help="work in this folder (kept afterwards) instead of a temporary one")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")


def run(args: argparse.Namespace, verb: str) -> int:
    from gatekeeper.demo import run_demo

    return run_demo(directory=args.dir, keep=args.keep)
