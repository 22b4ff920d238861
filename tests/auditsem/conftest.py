from __future__ import annotations

from pathlib import Path

import pytest
from machine import need_program

from approvals.approvals_testlib import keygen

from .semlib import Setup

need_program("ssh-keygen", "openssh-client")


@pytest.fixture(scope="session")
def sem_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("semkeys")
    return {name: keygen(root, name) for name in ("alice", "bob", "carol", "dave")}


@pytest.fixture
def setup(tmp_path: Path, sem_keys: dict[str, Path]) -> Setup:
    return Setup(tmp_path / "etc", dict(sem_keys))
