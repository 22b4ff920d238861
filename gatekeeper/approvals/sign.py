"""Signing an approval statement with the reviewer's own ``ssh-keygen -Y sign``.

The gate verifies in-process (:mod:`gatekeeper.trust.allowed_signers`), but signing is delegated to OpenSSH so that
every key the reviewer can use works: a private key file, a public key whose private half is in ``ssh-agent``, security
keys (``sk-ssh-ed25519@openssh.com``, which need a touch), and certificates (``*-cert.pub``). This only runs on the
reviewer's machine, never in the hook.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from gatekeeper.errors import GatekeeperError

__all__ = ["SigningError", "sign"]

SIGN_TIMEOUT_S = 120  # a security key waits for a touch; a forgotten prompt must not hang a script forever


class SigningError(GatekeeperError):
    default_hint = ("check the key: --key FILE, or `git config user.signingkey` (a key file, a .pub whose private "
                    "key is in ssh-agent, or key::<public key>)")


def sign(message: bytes, *, key: str, namespace: str) -> bytes:
    """Sign ``message`` in ``namespace`` with ``ssh-keygen -Y sign -f KEY``; returns the armored signature.

    ``key`` is a path, or git's ``key::<type> <base64>`` literal form (the private key then must be in ssh-agent).

    Raises:
        SigningError: no ssh-keygen, no key, or ssh-keygen failed (its message included).
    """
    exe = shutil.which("ssh-keygen")
    if exe is None:
        raise SigningError("ssh-keygen is not installed", hint="install OpenSSH (8.1 or later) to sign approvals")
    with tempfile.TemporaryDirectory(prefix="gatekeeper-sign-") as tmp:
        if key.startswith("key::"):
            key_file = Path(tmp) / "key.pub"
            key_file.write_text(key[len("key::"):].strip() + "\n")
        else:
            key_file = Path(os.path.expanduser(key))
            if not key_file.exists():
                raise SigningError(f"the signing key {key} does not exist")
        try:
            proc = subprocess.run(
                [exe, "-Y", "sign", "-f", str(key_file), "-n", namespace],
                input=message, capture_output=True, timeout=SIGN_TIMEOUT_S, check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SigningError(f"ssh-keygen could not sign: {exc}") from exc
    detail = proc.stderr.decode("utf-8", "replace").strip().replace("Signing data on standard input", "").strip()
    if proc.returncode != 0 or not proc.stdout.startswith(b"-----BEGIN SSH SIGNATURE-----"):
        raise SigningError(f"ssh-keygen -Y sign failed (exit {proc.returncode}): {detail or 'no output'}")
    return proc.stdout
