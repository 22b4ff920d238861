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


@pytest.fixture(params=["cold", "warm"])
def policy_cache_modes(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                       monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a module's ``load_policy`` calls twice: as they are (cold), and from the hooks' compiled-policy cache (warm).

    Warm, every load is done three times: without a cache, filling a fresh cache, and from that cache with the YAML
    parser made unusable (so the entry really is what the load starts from). The cached load must give the same
    policy (fields, translations and answers) and the same problems as the cold one; it is the one the test sees.
    """
    if request.param == "cold":
        return "cold"
    from gatekeeper.policy import config, pathmatch

    original = config._load

    def load_three_ways(path: Path, *, deep: bool, cache_dir: Path | None = None) -> tuple[object, list[object]]:
        if deep:
            return original(path, deep=deep)
        cold, cold_problems = original(path, deep=False)
        cache = tmp_path_factory.mktemp("cache") / "policy-cache"
        original(path, deep=False, cache_dir=cache)
        if cold is None:
            assert not cache.exists() or not list(cache.glob("compiled-policy-*.json"))
            return cold, cold_problems
        assert list(cache.glob("compiled-policy-*.json")), "a clean load left no compiled entry"

        def no_yaml(*args: object, **kwargs: object) -> object:
            raise AssertionError("the warm load parsed YAML")

        def no_pathspec(*args: object, **kwargs: object) -> object:
            raise AssertionError("the warm load translated a pattern again")

        with monkeypatch.context() as patch:
            patch.setattr(config, "load_yaml", no_yaml)
            patch.setattr(pathmatch, "_translate", no_pathspec)
            warm, warm_problems = original(path, deep=False, cache_dir=cache)
        assert warm is not None and policy_snapshot(warm) == policy_snapshot(cold)
        assert sorted(warm_problems) == sorted(cold_problems)
        return warm, warm_problems

    monkeypatch.setattr(config, "_load", load_three_ways)
    return "warm"


SAMPLE_PATHS = [b"models/x.py", b"Models/X.PY", b"src/modeling_llama.py", b"a/b/modeling_x.py", b"configs/t.yaml",
                b"models", b"README.md", "mode\u0300le/x".encode(), b"evil\n/modeling_x.py", b"models./x",
                b"\xff/x.bin", b"release/models/y", b"docs/models/readme.md"]
SAMPLE_REFS = ["refs/heads/main", "refs/heads/MAIN", "refs/heads/release/1.0", "refs/heads/release", "refs/tags/v1",
               "refs/heads/feature/x"]


def policy_snapshot(policy: object) -> dict[str, object]:
    """Everything a loaded policy holds or answers, for comparing two loads."""
    import dataclasses
    import types

    out: dict[str, object] = {}
    for f in dataclasses.fields(policy):  # type: ignore[arg-type]
        value = getattr(policy, f.name)
        if f.name.startswith("_"):
            continue
        out[f.name] = dict(value) if isinstance(value, types.MappingProxyType) else value
    rules = policy.rules  # type: ignore[attr-defined]
    out["parts"] = [rule._matcher._parts for rule in rules]
    out["rules_for"] = {path: [r.name for r in policy.rules_for(path)] for path in SAMPLE_PATHS}  # type: ignore[attr-defined]
    out["rules_below"] = {path: [r.name for r in policy.rules_below(path)] for path in SAMPLE_PATHS}  # type: ignore[attr-defined]
    out["refs"] = {ref: policy.is_protected_ref(ref) for ref in SAMPLE_REFS}  # type: ignore[attr-defined]
    return out
