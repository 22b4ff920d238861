"""Test environment hygiene shared by every test (dulwich's and pre-commit's habit).

Each test runs with a scrubbed environment: no GIT_* variables leaking in from a surrounding hook or CI, no platform
identity variables, a throw-away HOME and git config, fixed author/committer identities and UTC time, so tests neither
read nor write the developer's own settings.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

_SCRUB_PREFIXES = ("GIT_", "GL_", "GITEA_", "GATEKEEPER_", "SSH_")
_SCRUB_NAMES = ("REMOTE_USER", "REMOTE_ADDR", "EMAIL")


@pytest.fixture(autouse=True)
def clean_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith(_SCRUB_PREFIXES) or name in _SCRUB_NAMES:
            monkeypatch.delenv(name, raising=False)
    home = tmp_path_factory.mktemp("home")
    gitconfig = home / ".gitconfig"
    gitconfig.write_text(
        "[init]\n\tdefaultBranch = main\n[protocol \"file\"]\n\tallow = always\n[advice]\n\tdetachedHead = false\n"
    )
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(gitconfig))
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Test Author")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "author@example.com")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "Test Committer")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "committer@example.com")
    monkeypatch.setenv("TZ", "UTC")
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    return home


from gitserver import Server, seed_content  # noqa: E402  (tests/ is on sys.path: setup.cfg pythonpath)
from machine import Unprivileged, unprivileged_account  # noqa: E402


@pytest.fixture
def server(tmp_path: Path, clean_env: Path) -> Server:
    """A seeded bare repository with the gate installed (DEFAULT_POLICY, enforce mode)."""
    srv = Server(tmp_path / "srv")
    seeder = srv.clone("seeder")
    seed_content(seeder)
    srv.write_policy()
    srv.install()
    return srv


@pytest.fixture
def unprivileged(tmp_path: Path) -> Iterator[Unprivileged]:
    """A real unprivileged account to drop to (CI runs as root, where permission checks never fire); see machine.py.
    Missing parts (sshd, Apache, corpora...) go through ``machine.need``: a skip locally, a failure under CI=true."""
    yield from unprivileged_account(tmp_path)
