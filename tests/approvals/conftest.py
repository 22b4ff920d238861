from __future__ import annotations

from pathlib import Path

import pytest
from gitserver import Server
from machine import need_program

from approvals.approvals_testlib import Trust, keygen, make_server

need_program("ssh-keygen", "openssh-client")


class World:
    """A gated server with keys for alice and bob (ml-leads), carol (infra) and dave (admins) in the trust store."""

    def __init__(self, root: Path, keys: dict[str, Path]) -> None:
        self.server: Server = make_server(root / "srv")
        self.keys = keys
        self.trust = Trust(self.server)
        for name, key in self.keys.items():
            self.trust.add(name, key)


@pytest.fixture(scope="session")
def people_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("keys")
    return {name: keygen(root, name) for name in ("alice", "bob", "carol", "dave")}


@pytest.fixture
def world(tmp_path: Path, clean_env: Path, people_keys: dict[str, Path]) -> World:
    return World(tmp_path, people_keys)
