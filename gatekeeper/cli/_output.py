"""Conventions every verb shares: ``--format json``, colour only on a terminal without ``NO_COLOR``, a pager only on
a terminal, progress on stderr only on a terminal, full ref names, and usage errors as exit status 2.

JSON output is one document on stdout with a ``schema`` key (``gatekeeper.<verb>/1``): fields are only ever added
under the same schema version; a renamed or removed field bumps it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TextIO

from gatekeeper.errors import GatekeeperError

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_USAGE = 2

_REF_PART = re.compile(r"^[^\x00-\x20\x7f~^:?*\[\\]+$")


class UsageError(GatekeeperError):
    """A bad command line (a value argparse could not check): exit status 2, like argparse's own errors."""


def add_format(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("text", "json"), default="text",
                        help="text for people (default), json for tools (one document, stable fields)")


def plain(doc: str | None) -> str:
    """A module docstring as --help text: without reST literal markers (help is read in a terminal, not rendered)."""
    return (doc or "").replace("``", "")


def emit_json(doc: dict[str, object], schema: str, out: TextIO | None = None) -> None:
    print(json.dumps({"schema": schema, **doc}, indent=2, ensure_ascii=False, default=str), file=out or sys.stdout)


def use_color(stream: TextIO) -> bool:
    """https://no-color.org: any non-empty NO_COLOR turns colour off; so does a non-terminal or TERM=dumb."""
    if os.environ.get("NO_COLOR"):
        return False
    return bool(getattr(stream, "isatty", lambda: False)()) and os.environ.get("TERM") != "dumb"


def page(lines: Sequence[str]) -> None:
    """Print ``lines``; through a pager (``$GATEKEEPER_PAGER``, ``$PAGER``, else ``less -FRX``) on a terminal."""
    text = "\n".join(lines) + "\n"
    if not (sys.stdout.isatty() and sys.stdin.isatty()):
        sys.stdout.write(text)
        return
    pager = os.environ.get("GATEKEEPER_PAGER") or os.environ.get("PAGER") or "less -FRX"
    if pager.strip() in ("", "cat"):
        sys.stdout.write(text)
        return
    sys.stdout.flush()
    try:
        subprocess.run(shlex.split(pager), input=text.encode("utf-8", "replace"), check=False)
    except OSError:
        sys.stdout.write(text)  # no pager installed: plain output, never a lost review


@contextmanager
def progress(message: str) -> Iterator[None]:
    """``message...`` then ``done (1.2 s)`` on stderr, for work that can take seconds; silent when stderr is not a
    terminal (logs and pipes get only the result)."""
    shown = sys.stderr.isatty()
    start = time.monotonic()
    if shown:
        sys.stderr.write(f"{message}...")
        sys.stderr.flush()
    try:
        yield
    finally:
        if shown:
            sys.stderr.write(f" done ({time.monotonic() - start:.1f} s)\n")
            sys.stderr.flush()


def full_ref(text: str) -> str:
    """argparse type for ``--ref``: ``refs/...`` as given; ``main`` -> ``refs/heads/main``, ``heads/x`` and ``tags/x``
    -> ``refs/heads/x``/``refs/tags/x``. Anything else (``HEAD``, a name git would refuse) is a usage error: a ref
    the server never sees must not get an answer."""
    name = text.strip()
    if name.startswith("refs/"):
        full = name
    elif name.startswith(("heads/", "tags/")):
        full = "refs/" + name
    else:
        full = "refs/heads/" + name
    parts = full.split("/")
    glob_ok = all(_REF_PART.match(p.replace("*", "x").replace("?", "x").replace("[", "x")) for p in parts)
    if (name in ("", "HEAD", "@") or name != text or ".." in full or full.endswith((".", "/", ".lock"))
            or any(p.startswith(".") or not p for p in parts) or not glob_ok):
        raise argparse.ArgumentTypeError(f"{text!r} is not a ref name; give e.g. main or refs/heads/main")
    return full

