"""Fixtures for the policy tests: a valid minimal policy on disk, and helpers to lint variations of it."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

BASE = """\
version: 1
protected_refs: [refs/heads/main, "refs/heads/release/**"]
rules:
  - name: model-code
    paths: ["models/**", "**/modeling_*.py"]
    approvals: 1
    reviewers: [leads]
people:
  alice: {emails: [alice@example.com]}
  bob: {emails: [bob@example.com]}
groups:
  leads: [alice, bob]
trust:
  allowed_signers: allowed_signers
audit:
  log: log/audit.jsonl
"""

SIGNERS = """\
alice ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA7xPqFhHfQ8b0vC3m3n6s0fJ2y0kq9m1xw9bJ2b8x1a alice@laptop
bob ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBq8m9q0x1s2d3f4g5h6j7k8l9z0x1c2v3b4n5m6q7w8 bob@laptop
"""


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    """A directory with a valid allowed_signers file and an audit log directory."""
    (tmp_path / "allowed_signers").write_text(SIGNERS)
    (tmp_path / "log").mkdir()
    return tmp_path


@pytest.fixture
def write_policy(policy_dir: Path) -> Callable[[str], Path]:
    """Write policy text (dedented) to policy.yaml in policy_dir and return its path."""

    def write(text: str, name: str = "policy.yaml") -> Path:
        path = policy_dir / name
        path.write_text(textwrap.dedent(text))
        return path

    return write


@pytest.fixture
def lint_text(write_policy: Callable[[str], Path]) -> Callable[[str], list[str]]:
    """Lint policy text; problems as 'LINE: message' (or 'FILE:LINE: message' for other files)."""
    from gatekeeper.policy.config import lint_policy

    def lint(text: str) -> list[str]:
        path = write_policy(text)
        out = []
        for problem in lint_policy(path):
            shown = str(problem)
            prefix = f"{path}:"
            out.append(shown[len(prefix):] if shown.startswith(prefix) else shown)
        return out

    return lint


@pytest.fixture
def base_text() -> str:
    return BASE
