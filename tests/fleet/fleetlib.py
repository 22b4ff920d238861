"""Helpers for the fleet tests: big signed logs made quickly, and the CLI as a subprocess."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from gatekeeper.audit.keys import generate_signing_key
from gitserver import REPO_ROOT

ORIGIN = "git.test.example/audit"


def _bench_audit():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("bench_audit", REPO_ROOT / "bench" / "bench_audit.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class NodeLog:
    log: Path
    key: Path
    vkey: str

    @property
    def vkey_file(self) -> Path:
        return self.key.with_name(self.key.name + ".pub")


def generated_log(folder: Path, n: int, *, seed: int = 1, origin: str = ORIGIN) -> NodeLog:
    """A log of ``n`` realistic, chained, sealed records (written directly, as the writer would have)."""
    folder.mkdir(parents=True, exist_ok=True)
    key = folder / "audit-signing.key"
    vkey = generate_signing_key(key, name=origin)
    log = folder / "audit.jsonl"
    _bench_audit().generate(log, key, origin, n, seed=seed)
    return NodeLog(log, key, vkey)


def gatekeeper(*args: str | Path, check: bool = False, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "gatekeeper", *map(str, args)], capture_output=True, text=True,
                          check=False, cwd=REPO_ROOT, timeout=timeout, env=dict(os.environ))
    if check and proc.returncode != 0:
        raise AssertionError(f"gatekeeper {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stdout}\n"
                             f"{proc.stderr}")
    return proc


def spawn(*args: str | Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "gatekeeper", *map(str, args)], cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
