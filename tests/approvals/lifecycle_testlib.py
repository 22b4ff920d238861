"""Helpers for the lifecycle tests: policies with logins that differ from person names, and running the commands a
refusal or banner prints exactly as printed (only ``--yes`` added where a person would answer the prompt)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from gitserver import DEFAULT_POLICY, REPO_ROOT, Clone

# Every person's platform login differs from their name; "dave" is nobody's login.
MAPPED_PEOPLE = """\
people:
  alice: {emails: [alice@example.com], accounts: [alice-gl]}
  bob: {emails: [bob@example.com], accounts: [bob-gl]}
  carol: {emails: [carol@example.com], accounts: [carol-gl]}
  dave: {emails: [dave@example.com], accounts: [dave-gl]}
"""


def policy_text(*, mapped: bool = False, extra: str = "") -> str:
    text = DEFAULT_POLICY.format(mode="enforce")
    if mapped:
        start, end = text.index("people:\n"), text.index("groups:\n")
        text = text[:start] + MAPPED_PEOPLE + text[end:]
    return text + extra


def printed(out: str, label: str) -> list[str]:
    """The commands after ``label`` in the hook's lines (``you:``, ``reviewer:``, ``review ... after the fact:``)."""
    return [m.group(1).strip() for m in re.finditer(rf"{label}\s*(.+)", out)]


def run_printed(clone: Clone, command: str, *, key: Path | None = None, person: str | None = None) -> str:
    """Run a printed shell command in ``clone`` with this checkout's ``gatekeeper`` first on PATH. A reviewer's clone
    is configured the way the README says (signing key, person, repository id); ``--yes`` answers the prompt."""
    if key is not None:
        clone.git("config", "user.signingkey", str(key))
    if person is not None:
        clone.git("config", "gatekeeper.person", person)
    clone.git("config", "gatekeeper.repository", "ml/llama-train")
    bindir = clone.path.parent / "bin"
    bindir.mkdir(exist_ok=True)
    shim = bindir / "gatekeeper"
    shim.write_text(f"#!/bin/sh\nexec {sys.executable} -m gatekeeper \"$@\"\n")
    shim.chmod(0o755)
    env = dict(os.environ)
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    if "gatekeeper approve" in command:
        command += " --yes"
    proc = subprocess.run(["sh", "-c", command], cwd=clone.path, env=env, capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, f"{command}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr
