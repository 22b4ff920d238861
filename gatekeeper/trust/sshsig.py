"""Strict SSHSIG parsing and verification on ``cryptography`` (no subprocess, no trust decisions).

An SSH signature made by ``ssh-keygen -Y sign`` is an armored binary blob (``PROTOCOL.sshsig`` in OpenSSH)::

    blob:   "SSHSIG" | uint32 version=1 | string publickey | string namespace | string reserved
            | string hash_algorithm | string signature
    signed: "SSHSIG" | string namespace | string "" | string hash_algorithm | string H(message)

This module parses that blob strictly (every length bounded, no trailing data, no NUL in text fields, canonical
mpints) and checks the cryptography: the signature over the message, the namespace (exact), and for certificates the
CA's signature over the certificate. It does *not* decide whether a key is trusted: the key inside a signature is
attacker-chosen; trust comes only from :mod:`gatekeeper.trust.allowed_signers`.

Deliberately stricter than OpenSSH 9.2 (each is a test in ``tests/sshsig``):

* version 0 is rejected (OpenSSH accepts it), only ``sha256``/``sha512`` exactly;
* RSA keys below 2048 bits (OpenSSH: 1024), ``ssh-rsa`` (SHA-1) signatures, including a CA's signature on a
  certificate (OpenSSH accepts SHA-1 CA signatures, see reference A3);
* non-minimal or negative mpints, whitespace inside the base64 armor, anything after the footer but blank lines;
* security-key signatures need the user-presence flag unless the caller opts out (``ssh-keygen -Y verify`` only
  logs it, reference A2); WebAuthn signatures need the caller's pinned origin.

``cryptography`` is imported inside functions: this module is only on the approvals path.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from gatekeeper.errors import BadSignature

__all__ = [
    "Certificate",
    "PublicKey",
    "SshSignature",
    "WireReader",
    "fingerprint",
    "parse_armored",
    "parse_blob",
    "parse_public_key",
    "parse_public_key_line",
    "signed_data",
    "verify_signature",
]

MAGIC = b"SSHSIG"
VERSION = 1
BEGIN = "-----BEGIN SSH SIGNATURE-----"
END = "-----END SSH SIGNATURE-----"
# An SSHSIG with an RSA-16384 certificate carrying 256 principals stays well below this; anything bigger is hostile.
MAX_ARMORED = 256 * 1024
HASH_ALGORITHMS = ("sha256", "sha512")
MIN_RSA_BITS = 2048  # policy (OpenSSH's SSH_RSA_MINIMUM_MODULUS_SIZE is 1024)
MAX_RSA_BITS = 16384  # OpenSSH SSH_RSA_MAXIMUM_MODULUS_SIZE
MAX_CERT_PRINCIPALS = 256  # OpenSSH SSHKEY_CERT_MAX_PRINCIPALS

# Security-key flags (OpenSSH sk-api.h; WebAuthn AD/ED bits).
SK_USER_PRESENCE = 0x01
SK_USER_VERIFICATION = 0x04
SK_ATTESTED_DATA = 0x40
SK_EXTENSION_DATA = 0x80

CERT_TYPE_USER = 1
CERT_TYPE_HOST = 2

ED25519 = "ssh-ed25519"
RSA = "ssh-rsa"
SK_ED25519 = "sk-ssh-ed25519@openssh.com"
SK_ECDSA = "sk-ecdsa-sha2-nistp256@openssh.com"
WEBAUTHN_SK_ECDSA = "webauthn-sk-ecdsa-sha2-nistp256@openssh.com"
# curve name in the key blob -> (key type, cryptography curve class name, hash for the signature, field bytes)
_ECDSA_CURVES: dict[str, tuple[str, str, str, int]] = {
    "nistp256": ("ecdsa-sha2-nistp256", "SECP256R1", "SHA256", 32),
    "nistp384": ("ecdsa-sha2-nistp384", "SECP384R1", "SHA384", 48),
    "nistp521": ("ecdsa-sha2-nistp521", "SECP521R1", "SHA512", 66),
}
_ECDSA_TYPES = {v[0]: k for k, v in _ECDSA_CURVES.items()}
PLAIN_KEY_TYPES = frozenset({ED25519, RSA, SK_ED25519, SK_ECDSA, *_ECDSA_TYPES})
CERT_KEY_TYPES: dict[str, str] = {
    "ssh-ed25519-cert-v01@openssh.com": ED25519,
    "ssh-rsa-cert-v01@openssh.com": RSA,
    "ecdsa-sha2-nistp256-cert-v01@openssh.com": "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384-cert-v01@openssh.com": "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521-cert-v01@openssh.com": "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519-cert-v01@openssh.com": SK_ED25519,
    "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com": SK_ECDSA,
}
RSA_SIGNATURE_TYPES = ("rsa-sha2-256", "rsa-sha2-512")  # OpenSSH sshsig.c RSA_SIGN_ALLOWED

_BASE64_LINE = re.compile(r"[A-Za-z0-9+/=]+")
_HINT = "the signature is damaged or was not made by `ssh-keygen -Y sign`; ask the signer to sign again"


def _bad(message: str, hint: str = _HINT) -> BadSignature:
    return BadSignature(message, hint=hint)


class WireReader:
    """Bounds-checked reader of SSH wire encoding (RFC 4251 section 5); every short read is an error."""

    __slots__ = ("_data", "_pos", "what")

    def __init__(self, data: bytes, what: str) -> None:
        self._data = data
        self._pos = 0
        self.what = what

    @property
    def pos(self) -> int:
        return self._pos

    def remaining(self) -> int:
        return len(self._data) - self._pos

    def _take(self, n: int, field_: str) -> bytes:
        if n > self.remaining():
            raise _bad(f"{self.what}: truncated {field_} (needs {n} bytes, {self.remaining()} left)")
        out = self._data[self._pos:self._pos + n]
        self._pos += n
        return out

    def u8(self, field_: str) -> int:
        return self._take(1, field_)[0]

    def u32(self, field_: str) -> int:
        return int(struct.unpack(">I", self._take(4, field_))[0])

    def u64(self, field_: str) -> int:
        return int(struct.unpack(">Q", self._take(8, field_))[0])

    def string(self, field_: str) -> bytes:
        n = self.u32(field_)
        if n > self.remaining():
            raise _bad(f"{self.what}: length {n} of {field_} exceeds the {self.remaining()} bytes left")
        return self._take(n, field_)

    def text(self, field_: str, *, allow_empty: bool = True) -> str:
        raw = self.string(field_)
        if b"\0" in raw:
            raise _bad(f"{self.what}: {field_} contains a NUL byte")
        if not raw and not allow_empty:
            raise _bad(f"{self.what}: {field_} is empty")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _bad(f"{self.what}: {field_} is not valid UTF-8") from None

    def mpint(self, field_: str, *, max_bytes: int) -> int:
        """A positive mpint in minimal encoding (RFC 4251): no sign bit, no superfluous leading zero."""
        raw = self.string(field_)
        if raw and raw[0] & 0x80:
            raise _bad(f"{self.what}: {field_} is a negative mpint")
        if len(raw) >= 2 and raw[0] == 0 and not raw[1] & 0x80:
            raise _bad(f"{self.what}: {field_} is a non-minimal mpint")
        if len(raw) > max_bytes + 1:
            raise _bad(f"{self.what}: {field_} is too large ({len(raw)} bytes)")
        return int.from_bytes(raw, "big")

    def end(self) -> None:
        if self.remaining():
            raise _bad(f"{self.what}: {self.remaining()} bytes of trailing data")


def _string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _mpint(value: int) -> bytes:
    raw = value.to_bytes((value.bit_length() + 8) // 8, "big") if value else b""
    return _string(raw)


def fingerprint(pubkey_blob: bytes) -> str:
    """The SHA-256 fingerprint of a public key blob, as ``ssh-keygen -l`` prints it (``SHA256:`` + unpadded base64)."""
    digest = hashlib.sha256(pubkey_blob).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


@dataclass(frozen=True)
class PublicKey:
    """A plain (non-certificate) public key: type, canonical wire blob, fingerprint.

    Keys compare by their canonical blob, which includes the application string of security keys (OpenSSH's
    ``sshkey_equal_public``), so an ``sk-`` key never equals a plain key with the same curve point.
    """

    key_type: str
    blob: bytes = field(repr=False)
    fingerprint: str
    bits: int
    application: str | None = None  # security keys only
    _material: Any = field(default=None, repr=False, compare=False, hash=False)  # loaded cryptography key

    def openssh(self) -> str:
        """``TYPE BASE64`` as in an ``authorized_keys`` or ``allowed_signers`` line."""
        return f"{self.key_type} {base64.b64encode(self.blob).decode('ascii')}"


@dataclass(frozen=True)
class _SigValue:
    """A decoded key-type signature blob (reference A2)."""

    sig_type: str
    raw: bytes = field(repr=False)  # Ed25519 signature or RSA s, left-padded to the modulus length
    r: int = 0  # ECDSA
    s: int = 0
    sk_flags: int | None = None
    sk_counter: int | None = None
    webauthn_origin: str | None = None
    webauthn_client_data: bytes = field(default=b"", repr=False)
    webauthn_extensions: bytes = field(default=b"", repr=False)


@dataclass(frozen=True)
class Certificate:
    """An OpenSSH certificate (``PROTOCOL.certkeys``) whose structure parsed; its CA signature is checked by
    :func:`verify_signature`, its validity for a purpose by the allowed-signers code."""

    cert_key_type: str
    key: PublicKey
    serial: int
    cert_type: int  # CERT_TYPE_USER or CERT_TYPE_HOST
    key_id: str
    principals: tuple[str, ...]
    valid_after: int  # seconds since the epoch, inclusive
    valid_before: int  # seconds since the epoch, exclusive; 2**64-1 means forever
    critical_options: tuple[tuple[str, bytes], ...]
    extensions: tuple[tuple[str, bytes], ...]
    ca_key: PublicKey
    ca_signature: _SigValue = field(repr=False)
    signed_part: bytes = field(repr=False)  # every byte before the CA signature
    blob: bytes = field(repr=False)

    @property
    def is_user(self) -> bool:
        return self.cert_type == CERT_TYPE_USER


@dataclass(frozen=True)
class SshSignature:
    """A parsed, not yet verified, SSH signature. ``public_key`` is the signing key (for a certificate: the certified
    key, whose fingerprint ``ssh-keygen`` prints); ``cert`` is the certificate when one was embedded."""

    public_key: PublicKey
    namespace: str
    hash_alg: str
    sig_type: str
    sk_flags: int | None
    sk_counter: int | None
    cert: Certificate | None
    reserved: bytes = field(default=b"", repr=False)  # not signed (reference A1): never rely on it
    webauthn_origin: str | None = None
    blob: bytes = field(default=b"", repr=False)  # malleable: never use as an identifier
    _value: _SigValue | None = field(default=None, repr=False, compare=False, hash=False)

    @property
    def key_type(self) -> str:
        """The key type as carried in the signature (a ``*-cert-v01@openssh.com`` type for certificates)."""
        return self.cert.cert_key_type if self.cert is not None else self.public_key.key_type


# --- public keys ------------------------------------------------------------------------------------------------


def _crypto_error(exc: Exception, what: str) -> BadSignature:
    return _bad(f"{what}: invalid public key ({exc})")


def _read_key_fields(r: WireReader, key_type: str) -> PublicKey:
    """Read the fields of a plain key of ``key_type`` (the same order in plain keys and certificates)."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from cryptography.hazmat.primitives.asymmetric import rsa

    what = r.what
    if key_type in (ED25519, SK_ED25519):
        pk = r.string("Ed25519 public key")
        if len(pk) != 32:
            raise _bad(f"{what}: Ed25519 public key has {len(pk)} bytes, not 32")
        blob = _string(key_type.encode()) + _string(pk)
        application = None
        if key_type == SK_ED25519:
            application = r.text("security-key application", allow_empty=False)
            blob += _string(application.encode())
        try:
            material: Any = ed25519.Ed25519PublicKey.from_public_bytes(pk)
        except ValueError as exc:  # pragma: no cover - 32 bytes always load
            raise _crypto_error(exc, what) from None
        return PublicKey(key_type, blob, fingerprint(blob), 256, application, material)
    if key_type == RSA:
        e = r.mpint("RSA exponent", max_bytes=MAX_RSA_BITS // 8)
        n = r.mpint("RSA modulus", max_bytes=MAX_RSA_BITS // 8)
        bits = n.bit_length()
        if bits < MIN_RSA_BITS:
            raise _bad(f"{what}: RSA key has {bits} bits; at least {MIN_RSA_BITS} are required",
                       hint="use an Ed25519 key, or an RSA key of at least 3072 bits")
        if bits > MAX_RSA_BITS:
            raise _bad(f"{what}: RSA key has {bits} bits; at most {MAX_RSA_BITS} are supported")
        try:
            material = rsa.RSAPublicNumbers(e, n).public_key()
        except ValueError as exc:
            raise _crypto_error(exc, what) from None
        blob = _string(RSA.encode()) + _mpint(e) + _mpint(n)
        return PublicKey(key_type, blob, fingerprint(blob), bits, None, material)
    if key_type in _ECDSA_TYPES or key_type == SK_ECDSA:
        curve_name = r.text("ECDSA curve name")
        expected_curve = "nistp256" if key_type == SK_ECDSA else _ECDSA_TYPES[key_type]
        if curve_name != expected_curve:
            raise _bad(f"{what}: curve {curve_name!r} does not match key type {key_type}")
        _, curve_class, _, size = _ECDSA_CURVES[curve_name]
        point = r.string("ECDSA public point")
        # OpenSSH (sshbuf_get_ec) accepts only uncompressed points.
        if len(point) != 1 + 2 * size or point[0] != 4:
            raise _bad(f"{what}: ECDSA public point is not an uncompressed {curve_name} point")
        try:
            material = ec.EllipticCurvePublicKey.from_encoded_point(getattr(ec, curve_class)(), point)
        except ValueError as exc:
            raise _crypto_error(exc, what) from None
        blob = _string(key_type.encode()) + _string(curve_name.encode()) + _string(point)
        application = None
        if key_type == SK_ECDSA:
            application = r.text("security-key application", allow_empty=False)
            blob += _string(application.encode())
        return PublicKey(key_type, blob, fingerprint(blob), material.curve.key_size, application, material)
    raise _bad(f"{what}: unsupported key type {key_type!r}")  # pragma: no cover - callers check the type


def parse_public_key(blob: bytes, *, what: str = "public key") -> PublicKey | Certificate:
    """Parse a public key or certificate blob (the base64-decoded second field of a ``.pub`` line).

    Raises:
        BadSignature: malformed, unsupported type, weak RSA, invalid curve point, or (for a certificate) broken
            structure. The CA signature of a certificate is *not* checked here.
    """
    r = WireReader(blob, what)
    key_type = r.text("key type")
    if key_type in PLAIN_KEY_TYPES:
        key = _read_key_fields(r, key_type)
        r.end()
        return key
    if key_type in CERT_KEY_TYPES:
        return _parse_certificate(r, key_type, blob)
    raise _bad(f"{what}: unsupported key type {key_type!r}",
               hint="sign with an ssh-ed25519, ecdsa-sha2-nistp*, rsa (>= 2048 bits) or sk-* key")


def parse_public_key_line(text: str, *, what: str = "public key") -> PublicKey | Certificate:
    """Parse ``TYPE BASE64 [COMMENT]``; the type field must equal the type inside the blob."""
    parts = text.split(None, 2)
    if len(parts) < 2:
        raise _bad(f"{what}: expected 'TYPE BASE64 [COMMENT]'")
    try:
        blob = base64.b64decode(parts[1].encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise _bad(f"{what}: key data is not valid base64") from None
    key = parse_public_key(blob, what=what)
    inner = key.cert_key_type if isinstance(key, Certificate) else key.key_type
    if inner != parts[0]:
        raise _bad(f"{what}: type {parts[0]!r} does not match the key data ({inner})")
    return key


def _parse_pairs(raw: bytes, what: str, field_: str) -> tuple[tuple[str, bytes], ...]:
    r = WireReader(raw, what)
    out: list[tuple[str, bytes]] = []
    while r.remaining():
        out.append((r.text(f"{field_} name", allow_empty=False), r.string(f"{field_} data")))
    return tuple(out)


def _parse_certificate(r: WireReader, cert_key_type: str, blob: bytes) -> Certificate:
    what = f"{r.what} (certificate)"
    r.what = what
    r.string("certificate nonce")
    key = _read_key_fields(r, CERT_KEY_TYPES[cert_key_type])
    serial = r.u64("certificate serial")
    cert_type = r.u32("certificate type")
    if cert_type not in (CERT_TYPE_USER, CERT_TYPE_HOST):
        raise _bad(f"{what}: unknown certificate type {cert_type}")
    key_id = r.text("certificate key id")
    principals_reader = WireReader(r.string("certificate principals"), what)
    principals: list[str] = []
    while principals_reader.remaining():
        if len(principals) >= MAX_CERT_PRINCIPALS:
            raise _bad(f"{what}: more than {MAX_CERT_PRINCIPALS} principals")
        principals.append(principals_reader.text("certificate principal"))
    valid_after = r.u64("certificate valid-after")
    valid_before = r.u64("certificate valid-before")
    critical = _parse_pairs(r.string("certificate critical options"), what, "critical option")
    extensions = _parse_pairs(r.string("certificate extensions"), what, "extension")
    r.string("certificate reserved")
    ca_reader = WireReader(r.string("certificate signature key"), f"{what} CA key")
    ca_type = ca_reader.text("key type")
    if ca_type not in PLAIN_KEY_TYPES:
        # OpenSSH: SSH_ERR_KEY_CERT_INVALID_SIGN_KEY for a certificate as CA.
        raise _bad(f"{what}: unsupported certificate authority key type {ca_type!r}")
    ca_key = _read_key_fields(ca_reader, ca_type)
    ca_reader.end()
    signed_part = blob[:r.pos]
    ca_signature = _parse_sig_value(r.string("certificate signature"), ca_key, f"{what} CA signature")
    r.end()
    return Certificate(
        cert_key_type=cert_key_type, key=key, serial=serial, cert_type=cert_type, key_id=key_id,
        principals=tuple(principals), valid_after=valid_after, valid_before=valid_before, critical_options=critical,
        extensions=extensions, ca_key=ca_key, ca_signature=ca_signature, signed_part=signed_part, blob=blob,
    )


# --- signature values -------------------------------------------------------------------------------------------


def _ecdsa_rs(raw: bytes, what: str, order_bytes: int) -> tuple[int, int]:
    inner = WireReader(raw, what)
    r_ = inner.mpint("ECDSA r", max_bytes=order_bytes)
    s_ = inner.mpint("ECDSA s", max_bytes=order_bytes)
    inner.end()
    return r_, s_


def _parse_sig_value(raw: bytes, key: PublicKey, what: str) -> _SigValue:
    """Decode a key-type signature blob for ``key`` and check that its type suits the key (``sshkey_verify``)."""
    r = WireReader(raw, what)
    sig_type = r.text("signature type")
    kt = key.key_type
    if kt == RSA:
        if sig_type == "ssh-rsa":
            raise _bad(f"{what}: ssh-rsa (SHA-1) signatures are not accepted",
                       hint="sign with OpenSSH 8.1 or later, which uses rsa-sha2-512")
        if sig_type not in RSA_SIGNATURE_TYPES:
            raise _bad(f"{what}: signature type {sig_type!r} does not match key type {kt}")
        s_raw = r.string("RSA signature")
        r.end()
        modlen = (key.bits + 7) // 8
        if len(s_raw) > modlen:
            raise _bad(f"{what}: RSA signature longer than the modulus")
        # ssh-rsa.c: a short signature is left-padded with zeros to the modulus length.
        return _SigValue(sig_type, s_raw.rjust(modlen, b"\0"))
    allowed: tuple[str, ...] = (SK_ECDSA, WEBAUTHN_SK_ECDSA) if kt == SK_ECDSA else (kt,)
    if sig_type not in allowed:
        raise _bad(f"{what}: signature type {sig_type!r} does not match key type {kt}")
    if kt in (ED25519, SK_ED25519):
        sig = r.string("Ed25519 signature")
        if len(sig) != 64:
            raise _bad(f"{what}: Ed25519 signature has {len(sig)} bytes, not 64")
        if kt == ED25519:
            r.end()
            return _SigValue(sig_type, sig)
        flags = r.u8("security-key flags")
        counter = r.u32("security-key counter")
        r.end()
        return _SigValue(sig_type, sig, sk_flags=flags, sk_counter=counter)
    order_bytes = (key.bits + 7) // 8
    r_, s_ = _ecdsa_rs(r.string("ECDSA signature"), what, order_bytes)
    if kt != SK_ECDSA:
        r.end()
        return _SigValue(sig_type, b"", r_, s_)
    flags = r.u8("security-key flags")
    counter = r.u32("security-key counter")
    if sig_type == SK_ECDSA:
        r.end()
        return _SigValue(sig_type, b"", r_, s_, sk_flags=flags, sk_counter=counter)
    origin = r.text("WebAuthn origin")
    client_data = r.string("WebAuthn clientData")
    extensions = r.string("WebAuthn extensions")
    r.end()
    return _SigValue(sig_type, b"", r_, s_, sk_flags=flags, sk_counter=counter, webauthn_origin=origin,
                     webauthn_client_data=client_data, webauthn_extensions=extensions)


# --- SSHSIG -----------------------------------------------------------------------------------------------------


def _dearmor(text: str | bytes) -> bytes:
    if isinstance(text, bytes):
        if len(text) > MAX_ARMORED:
            raise _bad(f"signature is too large ({len(text)} bytes; at most {MAX_ARMORED})")
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError:
            raise _bad("signature armor contains non-ASCII bytes") from None
    if len(text) > MAX_ARMORED:
        raise _bad(f"signature is too large ({len(text)} characters; at most {MAX_ARMORED})")
    lines = text.split("\n")
    # CRLF is accepted (OpenSSH's dearmor skips a CR after the header); any other stray whitespace is not.
    lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    if not lines or lines[0] != BEGIN:
        raise _bad(f"signature armor must start with {BEGIN!r} at the first byte")
    try:
        end = lines.index(END)
    except ValueError:
        raise _bad(f"signature armor has no {END!r} line") from None
    if any(line for line in lines[end + 1:]):
        raise _bad("unexpected text after the signature armor footer")
    body = lines[1:end]
    if not body:
        raise _bad("signature armor is empty")
    for line in body:
        if line.startswith("-----"):
            raise _bad(f"unexpected armor line {line[:40]!r} inside the signature")
        if _BASE64_LINE.fullmatch(line) is None:
            if not line or any(ch.isspace() for ch in line):
                raise _bad("signature armor contains blank lines or whitespace inside the base64")
            raise _bad("signature armor is not valid base64")
    try:
        return base64.b64decode("".join(body).encode("ascii"), validate=True)
    except (binascii.Error, ValueError):
        raise _bad("signature armor is not valid base64") from None


def parse_armored(text: str | bytes) -> SshSignature:
    """Parse an armored SSH signature strictly. Nothing is verified yet.

    Raises:
        BadSignature: with a message naming the first problem found.
    """
    return parse_blob(_dearmor(text))


def parse_blob(blob: bytes) -> SshSignature:
    """Parse a raw (de-armored) SSHSIG blob strictly; see :func:`parse_armored`."""
    r = WireReader(blob, "SSH signature")
    if blob[:len(MAGIC)] != MAGIC:
        raise _bad("not an SSH signature (magic 'SSHSIG' missing)")
    r._take(len(MAGIC), "magic")
    version = r.u32("version")
    if version != VERSION:
        # OpenSSH accepts version 0 (sshsig.c only rejects > 1); version 0 was never produced by any release.
        raise _bad(f"SSH signature version {version} is not supported (only version {VERSION})")
    key_blob = r.string("public key")
    namespace = r.text("namespace", allow_empty=False)
    reserved = r.string("reserved")
    hash_alg = r.text("hash algorithm")
    if hash_alg not in HASH_ALGORITHMS:
        raise _bad(f"SSH signature: hash algorithm {hash_alg!r} is not accepted (only sha256, sha512)")
    sig_raw = r.string("signature")
    r.end()
    key = parse_public_key(key_blob, what="SSH signature public key")
    cert = key if isinstance(key, Certificate) else None
    plain = key.key if isinstance(key, Certificate) else key
    value = _parse_sig_value(sig_raw, plain, "SSH signature")
    return SshSignature(
        public_key=plain, namespace=namespace, hash_alg=hash_alg, sig_type=value.sig_type, sk_flags=value.sk_flags,
        sk_counter=value.sk_counter, cert=cert, reserved=reserved, webauthn_origin=value.webauthn_origin, blob=blob,
        _value=value,
    )


def signed_data(message: bytes, *, namespace: str, hash_alg: str) -> bytes:
    """The bytes the key actually signs (``PROTOCOL.sshsig``): the message enters only through its hash."""
    digest = hashlib.new(hash_alg, message).digest()
    return MAGIC + _string(namespace.encode()) + _string(b"") + _string(hash_alg.encode()) + _string(digest)


def _webauthn_message_hash(data: bytes, value: _SigValue, expected_origin: str | None, what: str) -> bytes:
    """OpenSSH ``webauthn_check_prepare_hash`` plus an origin pin (OpenSSH only checks its format)."""
    origin = value.webauthn_origin or ""
    flags = value.sk_flags or 0
    if expected_origin is None:
        raise _bad(f"{what}: WebAuthn signature (origin {origin!r}) but no WebAuthn origin is configured",
                   hint="configure the expected WebAuthn origin, or sign with ssh-keygen and a FIDO key")
    if origin != expected_origin:
        raise _bad(f"{what}: WebAuthn origin {origin!r} is not the expected {expected_origin!r}")
    if '"' in origin or flags & SK_ATTESTED_DATA:
        raise _bad(f"{what}: invalid WebAuthn flags or origin")
    if bool(flags & SK_EXTENSION_DATA) != bool(value.webauthn_extensions):
        raise _bad(f"{what}: WebAuthn extension flag does not match the extension data")
    challenge = base64.urlsafe_b64encode(data).rstrip(b"=")
    prefix = b'{"type":"webauthn.get","challenge":"' + challenge + b'","origin":"' + origin.encode() + b'"'
    if not value.webauthn_client_data.startswith(prefix):
        raise _bad(f"{what}: WebAuthn clientData does not carry this challenge and origin")
    return hashlib.sha256(value.webauthn_client_data).digest()


def _verify_value(key: PublicKey, value: _SigValue, data: bytes, what: str, *, require_user_presence: bool,
                  require_user_verification: bool, webauthn_origin: str | None) -> None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric import padding
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    kt = key.key_type
    if value.sk_flags is not None and require_user_presence and not value.sk_flags & SK_USER_PRESENCE:
        raise _bad(f"{what}: security key signature without user presence (flags 0x{value.sk_flags:02x})",
                   hint="sign again and touch the security key (do not use no-touch-required keys)")
    if value.sk_flags is not None and require_user_verification and not value.sk_flags & SK_USER_VERIFICATION:
        raise _bad(f"{what}: security key signature without user verification (flags 0x{value.sk_flags:02x})",
                   hint="use a security key created with -O verify-required (PIN or biometric)")
    material = key._material
    try:
        if kt == ED25519:
            material.verify(value.raw, data)
        elif kt == RSA:
            alg = hashes.SHA256() if value.sig_type == "rsa-sha2-256" else hashes.SHA512()
            material.verify(value.raw, data, padding.PKCS1v15(), alg)
        elif kt in _ECDSA_TYPES:
            hash_name = _ECDSA_CURVES[_ECDSA_TYPES[kt]][2]
            material.verify(encode_dss_signature(value.r, value.s), data, ec.ECDSA(getattr(hashes, hash_name)()))
        else:  # security keys: the authenticator signs SHA256(app) | flags | counter | [extensions] | H(data)
            assert key.application is not None and value.sk_flags is not None and value.sk_counter is not None
            if value.sig_type == WEBAUTHN_SK_ECDSA:
                msg_hash = _webauthn_message_hash(data, value, webauthn_origin, what)
                extensions = value.webauthn_extensions
            else:
                msg_hash = hashlib.sha256(data).digest()
                extensions = b""
            to_sign = (hashlib.sha256(key.application.encode()).digest() + bytes([value.sk_flags])
                       + struct.pack(">I", value.sk_counter) + extensions + msg_hash)
            if kt == SK_ED25519:
                material.verify(value.raw, to_sign)
            else:
                material.verify(encode_dss_signature(value.r, value.s), to_sign, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise _bad(f"{what} does not verify with {kt} key {key.fingerprint}") from None


def verify_signature(sig: SshSignature, message: bytes, *, namespace: str, require_user_presence: bool = True,
                     webauthn_origin: str | None = None, require_user_verification: bool = False) -> None:
    """Check the cryptography of ``sig`` over ``message`` in ``namespace`` (exact); no trust decision.

    For a certificate, the CA's signature over the certificate is checked as well (SHA-1 ``ssh-rsa`` rejected).

    Raises:
        BadSignature: wrong namespace, signature or certificate does not verify, missing user presence (or user
            verification) on a security-key signature when required, WebAuthn origin not the pinned one.
    """
    if sig.namespace != namespace:
        raise _bad(f"signature namespace {sig.namespace!r} is not the expected {namespace!r}",
                   hint=f"sign with: ssh-keygen -Y sign -n {namespace} -f KEY FILE")
    if sig._value is None:
        raise _bad("signature was not produced by parse_armored")
    data = signed_data(message, namespace=sig.namespace, hash_alg=sig.hash_alg)
    _verify_value(sig.public_key, sig._value, data, "SSH signature", require_user_presence=require_user_presence,
                  require_user_verification=require_user_verification, webauthn_origin=webauthn_origin)
    if sig.cert is not None:
        # A security-key CA must have been touched when it issued the certificate; PIN policy is the signer's only.
        _verify_value(sig.cert.ca_key, sig.cert.ca_signature, sig.cert.signed_part, "certificate CA signature",
                      require_user_presence=require_user_presence, require_user_verification=False,
                      webauthn_origin=webauthn_origin)
