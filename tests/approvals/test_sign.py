"""Signing through the real ssh-keygen, and its failures."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from approvals.approvals_testlib import keygen, pub
from gatekeeper.trust.allowed_signers import AllowedSigners
from gatekeeper.approvals.sign import SigningError, sign


def test_signature_verifies_in_process_in_its_namespace_only(tmp_path: Path) -> None:
    key = keygen(tmp_path, "alice")
    sig = sign(b"statement\n", key=str(key), namespace="ns@example")
    trust = AllowedSigners.from_bytes(f"alice {pub(key)}\n".encode())
    now = datetime.now(timezone.utc)
    assert trust.verify(sig, b"statement\n", namespace="ns@example", now=now).principals == ("alice",)
    with pytest.raises(Exception, match="namespace"):
        trust.verify(sig, b"statement\n", namespace="git", now=now)


def test_literal_public_key_needs_the_agent_and_missing_keys_are_clear(tmp_path: Path) -> None:
    key = keygen(tmp_path, "alice")
    with pytest.raises(SigningError, match="does not exist"):
        sign(b"x", key=str(tmp_path / "nope"), namespace="ns")
    with pytest.raises(SigningError, match="ssh-keygen -Y sign failed"):
        sign(b"x", key="key::" + pub(key), namespace="ns")  # no ssh-agent in tests: the private half is missing
