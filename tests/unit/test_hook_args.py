"""The hook's own command-line reader (gatekeeper/cli/hook.py parse_shim_args): for every command line it accepts, the
same values as the argparse parser every other form goes to; everything else is left to argparse."""

from __future__ import annotations

import argparse
import itertools
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from gitserver import REPO_ROOT

from gatekeeper.cli import hook
from gatekeeper.hosting.install import shim_text

VALUES = ["/etc/gatekeeper/policy.yaml", "rel/policy.yaml", "with space/p.yaml", "-dash", "", "--config", "pre-receive"]
FLAGS = ["--config", "--fallback-log", "--chain", "--conf", "--config=x", "-h", "--other"]


def _argparse(argv: list[str]) -> dict[str, object] | None:
    parser = argparse.ArgumentParser(prog="gatekeeper hook", exit_on_error=False)
    hook.configure(parser, "hook")
    try:
        return vars(parser.parse_args(argv))
    except (argparse.ArgumentError, SystemExit):
        return None


def _command_lines() -> list[list[str]]:
    lines = []
    for name in ("pre-receive", "post-receive", "update", "--config"):
        for n in range(4):
            for flags in itertools.product(FLAGS[:4] + FLAGS[4:6], repeat=n):
                for values in itertools.product(VALUES[:2] + VALUES[3:5], repeat=n):
                    lines.append([name, *[x for pair in zip(flags, values) for x in pair]])
        lines.append([name, "--config"])
        lines.append(["--config", "p.yaml", name])
    return lines


def test_what_it_accepts_argparse_reads_the_same_way() -> None:
    accepted = 0
    for argv in _command_lines():
        fast = hook.parse_shim_args(argv)
        if fast is None:
            continue
        accepted += 1
        assert {name: getattr(fast, name) for name in hook.ShimArgs.__slots__} == _argparse(argv), argv
    assert accepted > 50


@pytest.mark.parametrize("chain", [None, Path("/srv/hooks/pre-receive.old")])
@pytest.mark.parametrize("name", hook.HOOK_NAMES)
def test_every_shim_command_line_is_read_without_argparse(name: str, chain: Path | None) -> None:
    text = shim_text(name, python=sys.executable, config=Path("/etc/gk/policy.yaml"),
                     fallback_log=Path("/var/log/gk/audit.jsonl"), chain=chain)
    exec_line = next(line for line in text.splitlines() if line.startswith("exec "))
    argv = shlex.split(exec_line)
    assert argv[2:6] == ["-I", "-m", "gatekeeper", "hook"], argv
    fast = hook.parse_shim_args(argv[6:])
    assert fast is not None
    assert (fast.hook_name, fast.config, fast.fallback_log, fast.chain) == (
        name, Path("/etc/gk/policy.yaml"), Path("/var/log/gk/audit.jsonl"), chain)


def test_the_hook_verb_does_not_import_argparse(tmp_path: Path) -> None:
    code = ("import sys; from gatekeeper.main import main; "
            "rc = main(['hook', 'post-receive', '--config', sys.argv[1]]); print('argparse' in sys.modules)")
    out = subprocess.run([sys.executable, "-I", "-c", code, str(tmp_path / "missing.yaml")], input=b"",
                         capture_output=True, cwd=REPO_ROOT, check=True).stdout
    assert out.strip() == b"False"
