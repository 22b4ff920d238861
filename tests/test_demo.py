"""The README's first Quickstart command runs `gatekeeper demo`: it must tell the whole story and exit 0."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from gitserver import REPO_ROOT


def test_demo_runs_the_whole_story(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "gatekeeper", "demo", "--dir", str(tmp_path / "demo")],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    out = proc.stdout
    assert "remote: gatekeeper: push REFUSED" in out
    assert "rule model-code needs 1 approval from ml-leads" in out
    assert "model-code approved by bob" in out
    assert "OK: " in out and "FAIL: " in out and "[chain-break]" in out
    assert "Traceback" not in out + proc.stderr
