"""The audit log's Ed25519 signing key: create it once (``gatekeeper install``), load it on every append.

Files: the private key holds one line in Go's signed-note signer format (``PRIVATE+KEY+name+keyid+base64``), mode 0600,
created with ``O_EXCL|O_NOFOLLOW`` so an existing key (or a planted symlink) is never overwritten; ``<key>.pub`` holds
the C2SP vkey (``name+keyid+base64``) that auditors pin.
"""

from __future__ import annotations

import os
from pathlib import Path

from gatekeeper.audit.note import NoteError, Signer, Verifier
from gatekeeper.errors import AuditError

DEFAULT_KEY_NAME = "audit-signing.key"
MAX_KEY_FILE = 4096


def public_path(key_path: Path) -> Path:
    return key_path.with_name(key_path.name + ".pub")


def default_key_path(log_path: Path) -> Path:
    """``<log dir>/audit-signing.key``: where install puts the key unless the config says otherwise."""
    return log_path.parent / DEFAULT_KEY_NAME


def _write_new(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def generate_signing_key(path: Path, *, name: str) -> str:
    """Create an Ed25519 private key file (0600, refuses to overwrite) and return the C2SP vkey string.

    Also writes ``<path>.pub`` holding the vkey.

    Args:
        path: where the private key goes.
        name: the key name, RECOMMENDED to be a schema-less URL such as ``git.example.com/gatekeeper-audit``.

    Raises:
        AuditError: the name is invalid, a file already exists, or it cannot be written.
    """
    path = Path(path)
    try:
        signer = Signer.generate(name)
    except NoteError as exc:
        raise AuditError(f"cannot create audit signing key: {exc}",
                         hint="choose a name like host.example/audit") from None
    pub = public_path(path)
    for existing in (path, pub):
        if existing.exists() or existing.is_symlink():
            raise AuditError(
                f"refusing to overwrite existing audit key file {existing}",
                hint="keep the existing key (auditors pinned it), or move it away deliberately first",
            )
    vkey = signer.verifier().vkey()
    try:
        _write_new(path, (signer.skey() + "\n").encode(), 0o600)
        _write_new(pub, (vkey + "\n").encode(), 0o644)
    except OSError as exc:
        raise AuditError(f"cannot write audit signing key {path}: {exc.strerror}") from None
    return vkey


def _read_small(path: Path, what: str) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise AuditError(f"cannot read {what} {path}: {exc.strerror}") from None
    try:
        data = os.read(fd, MAX_KEY_FILE + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_KEY_FILE:
        raise AuditError(f"{what} {path} is larger than {MAX_KEY_FILE} bytes")
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        raise AuditError(f"{what} {path} is not ASCII") from None


def load_signer(path: Path) -> Signer:
    """Load the private key. Raises :class:`AuditError` (the hook then refuses the push)."""
    text = _read_small(Path(path), "audit signing key")
    try:
        return Signer.parse(text)
    except (NoteError, ValueError) as exc:
        raise AuditError(f"audit signing key {path} is invalid: {exc}") from None


def parse_vkeys(text: str, *, source: str) -> list[Verifier]:
    """Vkeys, one per line; blank lines and ``#`` comments are ignored."""
    keys = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            keys.append(Verifier.parse(line))
        except NoteError as exc:
            raise AuditError(f"{source}:{number}: {exc}", hint="a vkey looks like name+1234abcd+AbC...") from None
    return keys


def load_vkey_file(path: Path) -> list[Verifier]:
    keys = parse_vkeys(_read_small(Path(path), "verifier key file"), source=str(path))
    if not keys:
        raise AuditError(f"verifier key file {path} holds no key")
    return keys
