"""Fixtures for the SSHSIG tests: one set of throw-away ssh-keygen keys per session (key generation is slow)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from machine import need, need_program
from sshsig_testlib import KeyGen

MIN_OPENSSH = (8, 7)  # verify-time, valid-after/valid-before (reference A4)


def _openssh_version() -> tuple[int, int] | None:
    ssh = shutil.which("ssh")
    if ssh is None:
        return None
    out = subprocess.run([ssh, "-V"], capture_output=True, text=True, timeout=10)
    m = re.search(r"OpenSSH_(\d+)\.(\d+)", out.stderr + out.stdout)
    return (int(m.group(1)), int(m.group(2))) if m else None


@pytest.fixture(scope="session")
def keygen(tmp_path_factory: pytest.TempPathFactory) -> KeyGen:
    need_program("ssh-keygen", "openssh-client")
    version = _openssh_version()
    need(version is not None and version >= MIN_OPENSSH, f"OpenSSH >= {MIN_OPENSSH} as the oracle (found {version})",
         "openssh-client")
    return KeyGen(tmp_path_factory.mktemp("keygen"))


@pytest.fixture(scope="session")
def keys(keygen: KeyGen) -> dict[str, Path]:
    """name -> private key path (the public key is next to it as NAME.pub)."""
    spec = {
        "ed25519": ("ed25519", None),
        "ecdsa256": ("ecdsa", 256),
        "ecdsa384": ("ecdsa", 384),
        "ecdsa521": ("ecdsa", 521),
        "rsa3072": ("rsa", 3072),
        "ca_ed25519": ("ed25519", None),
        "ca_ecdsa": ("ecdsa", 384),
        "ca_rsa": ("rsa", 2048),
    }
    return {name: keygen.key(name, kt, bits) for name, (kt, bits) in spec.items()}
