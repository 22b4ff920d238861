"""CLI conventions (issue 11), one parametrised test per convention over every verb of main.COMMANDS and its
sub-actions, so a new verb is checked the day it is added."""

from __future__ import annotations

import argparse
import importlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gitserver import run_on_terminal

from gatekeeper.main import COMMANDS, NOT_REPORTING, REPORTING, main

REPO_ROOT = Path(__file__).resolve().parents[1]
MARKUP = ("``", ":func:", ":mod:", ":class:", ":data:")  # reST roles and literals ("**" is a glob here)


def _parser(verb: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"gatekeeper {verb}")
    importlib.import_module(COMMANDS[verb][0]).configure(parser, verb)
    return parser


def _invocations() -> dict[str, argparse.ArgumentParser]:
    """'verb' or 'verb action' -> the parser that reads its options."""
    out: dict[str, argparse.ArgumentParser] = {}
    for verb in COMMANDS:
        parser = _parser(verb)
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            out[verb] = parser
        for sub in subs:
            for action, subparser in sub.choices.items():
                out[f"{verb} {action}"] = subparser
    return out


INVOCATIONS = _invocations()


def test_every_verb_is_classified() -> None:
    assert set(INVOCATIONS) == set(REPORTING) | set(NOT_REPORTING)
    assert not set(REPORTING) & set(NOT_REPORTING)


@pytest.mark.parametrize("name", sorted(REPORTING))
def test_reporting_verbs_take_format_json(name: str) -> None:
    fmt = [a for a in INVOCATIONS[name]._actions if "--format" in a.option_strings]
    assert fmt and "json" in (fmt[0].choices or ()), f"gatekeeper {name} has no --format json"


@pytest.mark.parametrize("name", sorted(INVOCATIONS))
def test_unknown_flag_is_a_usage_error(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([*name.split(), "--no-such-flag"])
    assert info.value.code == 2
    assert "error:" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(INVOCATIONS))
def test_bad_choice_values_are_usage_errors(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    for action in INVOCATIONS[name]._actions:
        if not action.option_strings or not action.choices or action.nargs == 0:
            continue
        with pytest.raises(SystemExit) as info:
            main([*name.split(), action.option_strings[-1], "not-a-valid-choice"])
        assert info.value.code == 2, (name, action.option_strings)
        capsys.readouterr()


@pytest.mark.parametrize("argv", [
    ["check", "--ref", "HEAD", "--config", "p.yaml"],
    ["approve", "HEAD", "--ref", "a..b"],
    ["approve", "HEAD", "--ref", "main", "--expires", "soon"],
    ["policy", "explain", "--config", "p.yaml", "--ref", "refs/heads/x y", "a"],
    ["trust", "sync", "--gitlab", "https://x", "--config", "p.yaml", "--max-drop", "200"],
    ["audit", "query", "--log", "x", "--since", "yesterday"],
    ["audit", "query", "--log", "x", "--limit", "0"],
    ["audit", "show", "--log", "x", "seven"],
])
def test_bad_values_are_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2


@pytest.mark.parametrize("name", sorted(INVOCATIONS))
def test_help_has_no_raw_markup_and_no_colour(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([*name.split(), "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert not [m for m in MARKUP if m in out], out
    assert "\033[" not in out


def test_install_without_a_target_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["install", "--config", str(tmp_path / "p.yaml")]) == 2
    assert "give exactly one of REPO" in capsys.readouterr().err


def test_no_color_and_non_tty(monkeypatch: pytest.MonkeyPatch) -> None:
    from gatekeeper.cli._output import use_color

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert use_color(Tty()) and not use_color(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_color(Tty())


def test_progress_goes_to_stderr_on_a_terminal_only(tmp_path: Path) -> None:
    """audit verify on a terminal: a progress line on stderr; piped: none (its stdout is the same either way)."""
    log = tmp_path / "audit.jsonl"
    log.write_text("")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    argv = [sys.executable, "-m", "gatekeeper", "audit", "verify", "--log", str(log)]
    piped = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    assert "verifying" not in piped.stderr
    terminal, stdout = run_on_terminal(argv, env=env, stdout_on_terminal=False)
    assert f"verifying {log}..." in terminal
    assert stdout == piped.stdout


def test_cli_modules_do_not_import_each_other_in_a_cycle() -> None:
    import ast

    edges: dict[str, set[str]] = {}
    for path in (REPO_ROOT / "gatekeeper" / "cli").glob("*.py"):
        name = f"gatekeeper.cli.{path.stem}"
        tree = ast.parse(path.read_text())
        edges[name] = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module
                       and n.module.startswith("gatekeeper.cli.")}
        edges[name] |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
                        if a.name.startswith("gatekeeper.cli.")}

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in edges.get(start, ()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    assert not [m for m in edges if reaches(m, m, set())]

