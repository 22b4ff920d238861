"""Key revocation for the trust store: a plain public-key list or an OpenSSH KRL (``PROTOCOL.krl``).

Both formats become one :class:`Revocations` value. Semantics follow OpenSSH ``krl.c`` (``ssh_krl_check_key``): a key is
revoked if its plain key, SHA-1 or SHA-256 fingerprint is listed; a certificate additionally if its serial or key id is
revoked for its CA (or for any CA); and a certificate is revoked whenever its CA key is. Serial 0 is never revoked by
serial (OpenSSH: it is what a CA writes when no serial was asked for).

The KRL parser is strict like the SSHSIG one: unknown sections, signed KRLs (deprecated and unverifiable here) and
trailing data are errors, so a file we do not fully understand fails closed instead of revoking less than it says.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from dataclasses import field

from gatekeeper.errors import BadSignature
from gatekeeper.trust.sshsig import Certificate
from gatekeeper.trust.sshsig import PublicKey
from gatekeeper.trust.sshsig import WireReader
from gatekeeper.trust.sshsig import parse_public_key

__all__ = ["KRL_MAGIC", "CertRevocations", "Revocations", "parse_krl"]

KRL_MAGIC = b"SSHKRL\n\0"  # OpenSSH krl.h
KRL_FORMAT_VERSION = 1
_SECTION_CERTIFICATES = 1
_SECTION_EXPLICIT_KEY = 2
_SECTION_FINGERPRINT_SHA1 = 3
_SECTION_SIGNATURE = 4
_SECTION_FINGERPRINT_SHA256 = 5
_CERT_SERIAL_LIST = 0x20
_CERT_SERIAL_RANGE = 0x21
_CERT_SERIAL_BITMAP = 0x22
_CERT_KEY_ID = 0x23


@dataclass(frozen=True)
class CertRevocations:
    """Certificates revoked for one CA (``ca`` is the CA's plain key blob, or None for "any CA")."""

    ca: bytes | None
    serial_ranges: tuple[tuple[int, int], ...] = ()
    serial_bitmaps: tuple[tuple[int, int], ...] = ()  # (first serial, bitmap; bit i set -> first + i revoked)
    key_ids: frozenset[str] = frozenset()

    def revokes(self, cert: Certificate) -> bool:
        if cert.key_id in self.key_ids:
            return True
        serial = cert.serial
        if serial == 0:
            return False
        if any(lo <= serial <= hi for lo, hi in self.serial_ranges):
            return True
        return any(0 <= serial - lo < bits.bit_length() and (bits >> (serial - lo)) & 1
                   for lo, bits in self.serial_bitmaps)


@dataclass(frozen=True)
class Revocations:
    """Everything a revocation file revokes."""

    keys: frozenset[bytes] = frozenset()  # plain key blobs
    sha1: frozenset[bytes] = frozenset()  # raw SHA-1 digests of plain key blobs
    sha256: frozenset[bytes] = frozenset()
    certs: tuple[CertRevocations, ...] = field(default=())

    def revokes_key(self, key: PublicKey) -> bool:
        """The plain key itself is revoked (by key or by fingerprint)."""
        return (key.blob in self.keys or hashlib.sha256(key.blob).digest() in self.sha256
                or (bool(self.sha1) and hashlib.sha1(key.blob, usedforsecurity=False).digest() in self.sha1))

    def reason(self, key: PublicKey, cert: Certificate | None) -> str | None:
        """Why the signing key (and its certificate) is revoked, or None."""
        if self.revokes_key(key):
            return f"key {key.fingerprint} is revoked"
        if cert is None:
            return None
        for entry in self.certs:
            if (entry.ca is None or entry.ca == cert.ca_key.blob) and entry.revokes(cert):
                return f"certificate {cert.key_id!r} (serial {cert.serial}) of key {key.fingerprint} is revoked"
        if self.revokes_key(cert.ca_key):
            return f"certificate authority {cert.ca_key.fingerprint} of key {key.fingerprint} is revoked"
        return None


def _plain(blob: bytes, what: str) -> bytes:
    key = parse_public_key(blob, what=what)
    return key.key.blob if isinstance(key, Certificate) else key.blob


def _parse_cert_section(data: bytes) -> CertRevocations:
    r = WireReader(data, "KRL certificate section")
    ca_blob = r.string("CA key")
    r.string("reserved")
    ca = _plain(ca_blob, "KRL CA key") if ca_blob else None
    ranges: list[tuple[int, int]] = []
    bitmaps: list[tuple[int, int]] = []
    key_ids: set[str] = set()
    while r.remaining():
        kind = r.u8("subsection type")
        sub = WireReader(r.string("subsection"), "KRL certificate subsection")
        if kind == _CERT_SERIAL_LIST:
            while sub.remaining():
                serial = sub.u64("serial")
                ranges.append((serial, serial))
        elif kind == _CERT_SERIAL_RANGE:
            lo, hi = sub.u64("serial range start"), sub.u64("serial range end")
            if lo > hi:
                raise BadSignature(f"KRL serial range {lo}-{hi} is inverted")
            ranges.append((lo, hi))
        elif kind == _CERT_SERIAL_BITMAP:
            lo = sub.u64("bitmap start")
            bits = sub.mpint("serial bitmap", max_bytes=1 << 22)
            if bits and lo + bits.bit_length() - 1 >= 2**64:
                raise BadSignature("KRL serial bitmap wraps around 2**64")
            bitmaps.append((lo, bits))
        elif kind == _CERT_KEY_ID:
            while sub.remaining():
                key_ids.add(sub.text("key id"))
        else:
            raise BadSignature(f"unsupported KRL certificate subsection type 0x{kind:02x}")
        sub.end()
    return CertRevocations(ca, tuple(ranges), tuple(bitmaps), frozenset(key_ids))


def parse_krl(data: bytes) -> Revocations:
    """Parse a binary KRL as written by ``ssh-keygen -k``.

    Raises:
        BadSignature: malformed, unknown section, signed KRL, or a key the verifier cannot parse. (The caller turns
            this into a configuration error; the name is the shared "malformed SSH data" error.)
    """
    if not data.startswith(KRL_MAGIC):
        raise BadSignature("not an OpenSSH KRL (magic missing)")
    r = WireReader(data[len(KRL_MAGIC):], "KRL")
    version = r.u32("format version")
    if version != KRL_FORMAT_VERSION:
        raise BadSignature(f"KRL format version {version} is not supported")
    r.u64("KRL version")
    r.u64("generation date")
    r.u64("flags")
    r.string("reserved")
    r.text("comment")
    keys: set[bytes] = set()
    sha1: set[bytes] = set()
    sha256: set[bytes] = set()
    certs: list[CertRevocations] = []
    while r.remaining():
        kind = r.u8("section type")
        raw = r.string("section")
        section = WireReader(raw, "KRL section")
        if kind == _SECTION_CERTIFICATES:
            certs.append(_parse_cert_section(raw))
            continue
        if kind == _SECTION_EXPLICIT_KEY:
            while section.remaining():
                keys.add(_plain(section.string("revoked key"), "KRL revoked key"))
        elif kind in (_SECTION_FINGERPRINT_SHA1, _SECTION_FINGERPRINT_SHA256):
            size, target = (20, sha1) if kind == _SECTION_FINGERPRINT_SHA1 else (32, sha256)
            while section.remaining():
                digest = section.string("fingerprint")
                if len(digest) != size:
                    raise BadSignature(f"KRL fingerprint has {len(digest)} bytes, not {size}")
                target.add(digest)
        elif kind == _SECTION_SIGNATURE:
            raise BadSignature("signed KRLs are not supported; write the KRL without -s signing")
        else:
            raise BadSignature(f"unsupported KRL section type {kind}")
        section.end()
    return Revocations(frozenset(keys), frozenset(sha1), frozenset(sha256), tuple(certs))
