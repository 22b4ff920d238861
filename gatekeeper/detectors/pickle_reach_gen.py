"""Regenerate ``pickle_reach.py`` from the running interpreter: ``python -m gatekeeper.detectors.pickle_reach_gen``.

What a pickle global can reach is a property of the interpreter that loads it, not of a list of names. This walks
every importable standard-library module (in a child process, so the imports never touch the caller) and derives:

* ``MODULE_ALIASES``: module attributes that are modules under another name (``random._os`` is ``os``,
  ``enum.bltns`` is ``builtins``); ``find_class`` traverses them like any attribute;
* ``REACHES``: functions and methods whose own code calls a sink (opening or writing files, importing or executing
  code, starting processes): ``codecs.open`` is as dangerous as ``open``.

The output is reviewed and committed like any other source; ``tests/detectors/test_pickle_reach.py`` re-derives it on
the interpreter it was generated with and fails when the committed tables no longer cover it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

# Names whose call from a function's code means the function reaches a sink. Attribute names that are common on
# unrelated objects (list.remove, str.replace) are left out: they would flag half the standard library.
SINKS = frozenset({
    "open", "__import__", "import_module", "exec", "eval", "compile", "system", "popen", "Popen", "spawnv",
    "spawnve", "spawnvp", "execv", "execve", "execvp", "execvpe", "fork", "forkpty", "unlink", "rmtree", "symlink",
    "chmod", "chown", "load_module", "exec_module", "write_text", "write_bytes", "FileIO", "fdopen", "truncate",
    "run_path", "run_module", "check_output", "check_call", "call",
})
# Modules never imported while deriving: they have effects on import (a browser, the console, a GUI).
SKIP = frozenset({"antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo", "__main__", "lib2to3",
                  "ensurepip", "venv", "pydoc_data", "test", "_tkinter"})

_CHILD = textwrap.dedent('''
    import contextlib, importlib, io, json, sys, types, warnings
    skip, sinks = set(json.loads(sys.argv[1])), set(json.loads(sys.argv[2]))
    warnings.simplefilter("ignore")
    aliases, reaches = {}, {}

    def names(func):
        code = getattr(func, "__code__", None)
        out, todo = set(), [code] if code is not None else []
        while todo:
            c = todo.pop()
            out |= set(c.co_names)
            todo.extend(k for k in c.co_consts if isinstance(k, types.CodeType))
        return out

    for name in sorted(sys.stdlib_module_names):
        if name in skip or name.startswith("_test"):
            continue
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                mod = importlib.import_module(name)
        except BaseException:
            continue
        for attr, value in vars(mod).items():
            if isinstance(value, types.ModuleType):
                if value.__name__ != name and attr != value.__name__.rpartition(".")[2]:
                    aliases[f"{name}.{attr}"] = value.__name__
                continue
            found = []
            if isinstance(value, types.FunctionType) and value.__module__ == name:
                found.append((attr, value))
            elif isinstance(value, type) and value.__module__ == name:
                for member, func in vars(value).items():
                    func = getattr(func, "__func__", func)
                    if isinstance(func, types.FunctionType):
                        found.append((f"{attr}.{member}", func))
            for qual, func in found:
                hit = names(func) & sinks
                if hit:
                    reaches[f"{name}.{qual}"] = sorted(hit)
    json.dump({"aliases": aliases, "reaches": reaches}, sys.stdout)
''')


def derive() -> dict[str, dict[str, object]]:
    """The tables for the running interpreter (computed in a child process)."""
    done = subprocess.run([sys.executable, "-I", "-c", _CHILD, json.dumps(sorted(SKIP)), json.dumps(sorted(SINKS))],
                          capture_output=True, text=True, check=True, timeout=600, stdin=subprocess.DEVNULL)
    tables: dict[str, dict[str, object]] = json.loads(done.stdout)
    return tables


def render(tables: dict[str, dict[str, Any]]) -> str:  # JSON from derive()
    aliases = tables["aliases"]
    reaches: dict[str, list[str]] = tables["reaches"]
    lines = [
        '"""What a pickle global can reach, derived from the standard library (generated, then reviewed).',
        "",
        f"Regenerate with ``python -m gatekeeper.detectors.pickle_reach_gen`` (Python "
        f"{sys.version_info[0]}.{sys.version_info[1]}); see that module for how.",
        '"""',
        "",
        f"GENERATED_WITH = ({sys.version_info[0]}, {sys.version_info[1]})",
        "",
        "# module attribute -> the module it is (find_class traverses it like any attribute)",
        "MODULE_ALIASES: dict[str, str] = {",
        *(f"    {k!r}: {v!r}," for k, v in sorted(aliases.items())),
        "}",
        "",
        "# functions and methods whose code calls a sink (files, imports, code execution, processes)",
        "REACHES: frozenset[str] = frozenset({",
        *(f"    {k!r},  # {', '.join(v)}" for k, v in sorted(reaches.items())),
        "})",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(render(derive()))
