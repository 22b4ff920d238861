"""Test helpers for the SSHSIG verifier: an independent SSHSIG *writer* on ``cryptography`` and ``ssh-keygen`` wrappers.

The writer builds blobs field by field so that tests can produce signatures that are cryptographically valid but break
one rule at a time (version 0, ``sha384``, missing user presence, a SHA-1 CA signature...). That proves a rejection
comes from the rule under test and not from a signature that merely failed to verify. Security keys are simulated:
an authenticator signs ``SHA256(application) | flags | counter | [extensions] | SHA256(data)`` (reference A2).
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import struct
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from machine import shared_dir

CORPUS = shared_dir() / "corpora" / "openssh-sshsig"  # relative to the checkout (tests/machine.py)
SSH_KEYGEN = shutil.which("ssh-keygen")
FOREVER = 2**64 - 1


def s(data: bytes | str) -> bytes:
    if isinstance(data, str):
        data = data.encode()
    return struct.pack(">I", len(data)) + data


def mpint(value: int) -> bytes:
    return s(value.to_bytes((value.bit_length() + 8) // 8, "big") if value else b"")


def u32(value: int) -> bytes:
    return struct.pack(">I", value)


def u64(value: int) -> bytes:
    return struct.pack(">Q", value)


def armor(blob: bytes, width: int = 70, newline: str = "\n") -> str:
    text = base64.b64encode(blob).decode()
    lines = [text[i:i + width] for i in range(0, len(text), width)]
    return newline.join(["-----BEGIN SSH SIGNATURE-----", *lines, "-----END SSH SIGNATURE-----", ""])


def dearmor(text: str) -> bytes:
    return base64.b64decode("".join(text.strip().splitlines()[1:-1]))


def pub_line(blob: bytes) -> str:
    key_type = blob[4:4 + struct.unpack(">I", blob[:4])[0]].decode()
    return f"{key_type} {base64.b64encode(blob).decode()}"


class Signer:
    """A private key that produces SSH public key blobs and key-type signature blobs."""

    key_type: str
    pub_blob: bytes

    def sign(self, data: bytes) -> bytes:  # pragma: no cover - interface
        raise NotImplementedError

    @property
    def fields(self) -> bytes:
        """The key fields after the type string (what a certificate embeds)."""
        return self.pub_blob[4 + len(self.key_type):]

    def line(self) -> str:
        return pub_line(self.pub_blob)


class Ed25519Signer(Signer):
    key_type = "ssh-ed25519"

    def __init__(self) -> None:
        self.key = ed25519.Ed25519PrivateKey.generate()
        self.pk = self.key.public_key().public_bytes_raw()
        self.pub_blob = s(self.key_type) + s(self.pk)

    def sign(self, data: bytes) -> bytes:
        return s(self.key_type) + s(self.key.sign(data))


class RsaSigner(Signer):
    key_type = "ssh-rsa"

    def __init__(self, bits: int = 2048, alg: str = "rsa-sha2-512") -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        numbers = self.key.public_key().public_numbers()
        self.pub_blob = s(self.key_type) + mpint(numbers.e) + mpint(numbers.n)
        self.alg = alg

    def sign(self, data: bytes) -> bytes:
        h = {"rsa-sha2-256": hashes.SHA256(), "rsa-sha2-512": hashes.SHA512(), "ssh-rsa": hashes.SHA1()}[self.alg]
        return s(self.alg) + s(self.key.sign(data, padding.PKCS1v15(), h))


_CURVES = {"nistp256": (ec.SECP256R1, hashes.SHA256), "nistp384": (ec.SECP384R1, hashes.SHA384),
           "nistp521": (ec.SECP521R1, hashes.SHA512)}


class EcdsaSigner(Signer):
    def __init__(self, curve: str = "nistp256") -> None:
        curve_cls, self.hash_cls = _CURVES[curve]
        self.key = ec.generate_private_key(curve_cls())
        self.key_type = f"ecdsa-sha2-{curve}"
        point = self.key.public_key().public_bytes(serialization.Encoding.X962,
                                                   serialization.PublicFormat.UncompressedPoint)
        self.curve = curve
        self.point = point
        self.pub_blob = s(self.key_type) + s(curve) + s(point)

    def rs(self, data: bytes) -> tuple[int, int]:
        return decode_dss_signature(self.key.sign(data, ec.ECDSA(self.hash_cls())))

    def sign(self, data: bytes) -> bytes:
        r, s_ = self.rs(data)
        return s(self.key_type) + s(mpint(r) + mpint(s_))


class SkEd25519Signer(Signer):
    """A simulated FIDO authenticator holding an Ed25519 key."""

    key_type = "sk-ssh-ed25519@openssh.com"

    def __init__(self, application: str = "ssh:", flags: int = 0x01, counter: int = 42) -> None:
        self.inner = Ed25519Signer()
        self.application = application
        self.flags = flags
        self.counter = counter
        self.pub_blob = s(self.key_type) + s(self.inner.pk) + s(application)

    def sign(self, data: bytes) -> bytes:
        to_sign = (hashlib.sha256(self.application.encode()).digest() + bytes([self.flags]) + u32(self.counter)
                   + hashlib.sha256(data).digest())
        return s(self.key_type) + s(self.inner.key.sign(to_sign)) + bytes([self.flags]) + u32(self.counter)


class SkEcdsaSigner(Signer):
    """A simulated FIDO authenticator with a P-256 key; ``origin`` set -> WebAuthn signatures."""

    key_type = "sk-ecdsa-sha2-nistp256@openssh.com"

    def __init__(self, application: str = "ssh:", flags: int = 0x01, counter: int = 42,
                 origin: str | None = None) -> None:
        self.inner = EcdsaSigner("nistp256")
        self.application = application
        self.flags = flags
        self.counter = counter
        self.origin = origin
        self.client_data_suffix = b',"crossOrigin":false}'
        self.client_data_override: bytes | None = None
        self.extensions = b""
        self.pub_blob = s(self.key_type) + s("nistp256") + s(self.inner.point) + s(application)

    def client_data(self, data: bytes) -> bytes:
        if self.client_data_override is not None:
            return self.client_data_override
        challenge = base64.urlsafe_b64encode(data).rstrip(b"=")
        assert self.origin is not None
        return (b'{"type":"webauthn.get","challenge":"' + challenge + b'","origin":"' + self.origin.encode() + b'"'
                + self.client_data_suffix)

    def sign(self, data: bytes) -> bytes:
        if self.origin is None:
            msg_hash, exts = hashlib.sha256(data).digest(), b""
        else:
            msg_hash, exts = hashlib.sha256(self.client_data(data)).digest(), self.extensions
        to_sign = (hashlib.sha256(self.application.encode()).digest() + bytes([self.flags]) + u32(self.counter)
                   + exts + msg_hash)
        r, s_ = self.inner.rs(to_sign)
        body = s(mpint(r) + mpint(s_)) + bytes([self.flags]) + u32(self.counter)
        if self.origin is None:
            return s(self.key_type) + body
        return (s("webauthn-sk-ecdsa-sha2-nistp256@openssh.com") + body + s(self.origin) + s(self.client_data(data))
                + s(self.extensions))


def signed_data(message: bytes, namespace: str, hash_alg: str = "sha512") -> bytes:
    digest = hashlib.new(hash_alg, message).digest()
    return b"SSHSIG" + s(namespace) + s(b"") + s(hash_alg) + s(digest)


def sshsig_blob(key_blob: bytes, sig_blob: bytes, *, namespace: str, hash_alg: str = "sha512", version: int = 1,
                reserved: bytes = b"", magic: bytes = b"SSHSIG") -> bytes:
    return magic + u32(version) + s(key_blob) + s(namespace) + s(reserved) + s(hash_alg) + s(sig_blob)


def make_sig(signer: Signer, message: bytes, namespace: str, *, hash_alg: str = "sha512", version: int = 1,
             reserved: bytes = b"", key_blob: bytes | None = None) -> bytes:
    """A correctly signed SSHSIG blob (even for rule-breaking hash names or versions)."""
    data = b"SSHSIG" + s(namespace) + s(b"") + s(hash_alg) + s(hashlib.new(hash_alg, message).digest())
    return sshsig_blob(signer.pub_blob if key_blob is None else key_blob, signer.sign(data), namespace=namespace,
                       hash_alg=hash_alg, version=version, reserved=reserved)


@dataclass
class CertSpec:
    principals: Sequence[str] = ("alice",)
    cert_type: int = 1
    valid_after: int = 0
    valid_before: int = FOREVER
    key_id: str = "test-cert"
    serial: int = 7
    critical: bytes = b""
    extensions: bytes = s("permit-pty") + s(b"")


def make_cert(ca: Signer, key: Signer, spec: CertSpec | None = None) -> bytes:
    spec = spec or CertSpec()
    cert_type_name = {
        "ssh-ed25519": "ssh-ed25519-cert-v01@openssh.com",
        "ssh-rsa": "ssh-rsa-cert-v01@openssh.com",
        "sk-ssh-ed25519@openssh.com": "sk-ssh-ed25519-cert-v01@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com": "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com",
    }.get(key.key_type, f"{key.key_type}-cert-v01@openssh.com")
    body = (s(cert_type_name) + s(os.urandom(32)) + key.fields + u64(spec.serial) + u32(spec.cert_type)
            + s(spec.key_id) + s(b"".join(s(p) for p in spec.principals)) + u64(spec.valid_after)
            + u64(spec.valid_before) + s(spec.critical) + s(spec.extensions) + s(b"") + s(ca.pub_blob))
    return body + s(ca.sign(body))


# --- ssh-keygen -----------------------------------------------------------------------------------------------


def keygen_env(home: Path) -> dict[str, str]:
    # No agent, no user config, UTC so that ssh-keygen's local-time parsing cannot differ from ours.
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "TZ": "UTC", "LC_ALL": "C"}


class KeyGen:
    """Throw-away keys, certificates and signatures made by the real ssh-keygen, plus ``-Y verify`` as an oracle."""

    def __init__(self, workdir: Path) -> None:
        assert SSH_KEYGEN is not None
        self.exe: str = SSH_KEYGEN
        self.dir = workdir
        self.env = keygen_env(workdir)
        self._n = 0

    def run(self, *args: str | Path, stdin: bytes = b"", check: bool = True) -> subprocess.CompletedProcess[bytes]:
        proc = subprocess.run([self.exe, *map(str, args)], input=stdin, capture_output=True, env=self.env,
                              cwd=self.dir, timeout=60)
        if check and proc.returncode != 0:
            raise AssertionError(f"ssh-keygen {args} failed: {proc.stderr.decode(errors='replace')}")
        return proc

    def key(self, name: str, key_type: str, bits: int | None = None) -> Path:
        path = self.dir / name
        args: list[str | Path] = ["-q", "-t", key_type, "-N", "", "-C", name, "-f", path]
        if bits is not None:
            args[1:1] = ["-b", str(bits)]
        self.run(*args)
        return path

    def pub(self, key: Path) -> str:
        return Path(f"{key}.pub").read_text().strip()

    def cert(self, ca: Path, key: Path, *, identity: str, principals: str | None, validity: str,
             ca_alg: str | None = None, host: bool = False, name: str | None = None,
             serial: int | None = None) -> Path:
        """Certify ``key`` with ``ca``; returns the path of a private key whose ``-cert.pub`` sits next to it."""
        # Copy the key so that several certificates of one key can coexist (ssh-keygen writes KEY-cert.pub).
        self._n += 1
        target = self.dir / (name or f"{key.name}-c{self._n}")
        shutil.copy(key, target)
        shutil.copy(f"{key}.pub", f"{target}.pub")
        os.chmod(target, 0o600)
        args: list[str | Path] = ["-q", "-s", ca, "-I", identity, "-V", validity]
        if principals is not None:
            args += ["-n", principals]
        if ca_alg is not None:
            args += ["-t", ca_alg]
        if host:
            args.append("-h")
        if serial is not None:
            args += ["-z", str(serial)]
        self.run(*args, f"{target}.pub")
        return target

    def sign(self, key: Path, namespace: str, message: bytes, *, hashalg: str | None = None,
             with_cert: bool = False) -> str:
        args: list[str | Path] = ["-Y", "sign", "-n", namespace, "-f", f"{key}-cert.pub" if with_cert else key]
        if hashalg is not None:
            args += ["-O", f"hashalg={hashalg}"]
        return self.run(*args, stdin=message).stdout.decode()

    def verify(self, allowed: Path, principal: str, namespace: str, signature: str, message: bytes, *,
               verify_time: str | None = None, revoked: Path | None = None) -> bool:
        self._n += 1
        sig_path = self.dir / f"oracle-{self._n}.sig"
        sig_path.write_text(signature)
        args: list[str | Path] = ["-Y", "verify", "-f", allowed, "-I", principal, "-n", namespace, "-s", sig_path]
        if verify_time is not None:
            args += ["-O", f"verify-time={verify_time}"]
        if revoked is not None:
            args += ["-r", revoked]
        proc = self.run(*args, stdin=message, check=False)
        ok = proc.returncode == 0
        assert ok == proc.stdout.startswith(b"Good "), proc
        return ok

    def check_novalidate(self, namespace: str, signature: str, message: bytes) -> bool:
        self._n += 1
        sig_path = self.dir / f"oracle-{self._n}.sig"
        sig_path.write_text(signature)
        proc = self.run("-Y", "check-novalidate", "-n", namespace, "-s", sig_path, stdin=message, check=False)
        return proc.returncode == 0


def krl(*sections: tuple[int, bytes], version: int = 1) -> bytes:
    """A KRL (PROTOCOL.krl) with the given (type, body) sections."""
    header = b"SSHKRL\n\0" + u32(version) + u64(3) + u64(1_700_000_000) + u64(0) + s(b"") + s("test krl")
    return header + b"".join(bytes([kind]) + s(body) for kind, body in sections)


def krl_certs(ca_blob: bytes, *subsections: tuple[int, bytes]) -> tuple[int, bytes]:
    return 1, s(ca_blob) + s(b"") + b"".join(bytes([kind]) + s(body) for kind, body in subsections)
