"""Fixtures for the audit tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import Env, make_env


@pytest.fixture
def env(tmp_path: Path) -> Env:
    """A fresh directory with an Ed25519 audit key and the path of a not yet created log."""
    return make_env(tmp_path)
