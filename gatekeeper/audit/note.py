"""C2SP signed notes (``c2sp.org/signed-note``) and transparency-log checkpoints (``c2sp.org/tlog-checkpoint``).

A signed note is UTF-8 text ending in a newline, a blank line, then signature lines ``— <name> base64(keyID || sig)``
(U+2014 em dash). The signature covers the text including its final newline, not the blank line. Ed25519 only
(signature type ``0x01``); ``keyID = SHA-256(name || "\\n" || 0x01 || pubkey)[:4]``. A verifier key ("vkey") is
``name+hex(keyID)+base64(0x01 || pubkey)``; a signer key uses Go's ``PRIVATE+KEY+name+hex(keyID)+base64(0x01 || seed)``
form, so keys interoperate with ``golang.org/x/mod/sumdb/note`` and transparency-dev tooling.

Verification rules from the spec: signatures from unknown keys are ignored; a known key whose signature fails rejects
the whole note; at least one known signature must verify.

A checkpoint's text is ``origin\\n<size>\\n<base64 RFC 6962 root>\\n`` (extension lines are refused here: we never
write them and an auditor should not have to reason about them).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ALG_ED25519 = 0x01
MAX_SIGNATURES = 64  # the spec requires accepting at least 16; a cap stops a note made of a million lines
MAX_NOTE_BYTES = 64 * 1024
_DASH = "\u2014 "


class NoteError(ValueError):
    """A key or note is malformed, or a note does not verify; the message says which and why."""


def key_id(name: str, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([ALG_ED25519]) + public_key).digest()[:4]


def _check_name(name: str) -> None:
    if not name or any(ch.isspace() or ch == "+" or ord(ch) < 0x20 for ch in name):
        raise NoteError(f"key name {name!r} must be non-empty, without spaces or '+'")


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise NoteError(f"{what}: invalid base64") from None


@dataclass(frozen=True)
class Verifier:
    """A parsed vkey."""

    name: str
    key_id: bytes
    public_key: bytes

    @classmethod
    def parse(cls, vkey: str) -> Verifier:
        """Parse ``name+hexid+base64``. The base64 may itself contain ``+``, hence ``split("+", 2)``."""
        parts = vkey.strip().split("+", 2)
        if len(parts) != 3:
            raise NoteError(f"verifier key {vkey!r} is not of the form name+keyid+base64")
        name, hex_id, b64 = parts
        _check_name(name)
        if len(hex_id) != 8 or any(ch not in "0123456789abcdef" for ch in hex_id):
            raise NoteError(f"verifier key {name}: key id {hex_id!r} is not 8 lowercase hex digits")
        raw = _b64decode(b64, f"verifier key {name}")
        if len(raw) != 33 or raw[0] != ALG_ED25519:
            raise NoteError(f"verifier key {name}: not an Ed25519 (type 0x01) key")
        if key_id(name, raw[1:]) != bytes.fromhex(hex_id):
            raise NoteError(f"verifier key {name}: key id {hex_id} does not match the key")
        return cls(name, bytes.fromhex(hex_id), raw[1:])

    def vkey(self) -> str:
        return f"{self.name}+{self.key_id.hex()}+{base64.b64encode(bytes([ALG_ED25519]) + self.public_key).decode()}"

    def _key(self) -> Ed25519PublicKey:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        return Ed25519PublicKey.from_public_bytes(self.public_key)

    def verify(self, text: bytes, signature: bytes) -> bool:
        from cryptography.exceptions import InvalidSignature

        try:
            self._key().verify(signature, text)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class Signer:
    """A parsed signer key (keeps the private key object; never printed)."""

    name: str
    key_id: bytes
    private_key: Ed25519PrivateKey

    @classmethod
    def parse(cls, skey: str) -> Signer:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        parts = skey.strip().split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise NoteError("signer key is not of the form PRIVATE+KEY+name+keyid+base64")
        _, _, name, hex_id, b64 = parts
        _check_name(name)
        raw = _b64decode(b64, f"signer key {name}")
        if len(raw) != 33 or raw[0] != ALG_ED25519:
            raise NoteError(f"signer key {name}: not an Ed25519 (type 0x01) key")
        private = Ed25519PrivateKey.from_private_bytes(raw[1:])
        signer = cls(name, key_id(name, _public_bytes(private)), private)
        if signer.key_id.hex() != hex_id:
            raise NoteError(f"signer key {name}: key id {hex_id} does not match the key")
        return signer

    @classmethod
    def generate(cls, name: str) -> Signer:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        _check_name(name)
        private = Ed25519PrivateKey.generate()
        return cls(name, key_id(name, _public_bytes(private)), private)

    def skey(self) -> str:
        seed = self.private_key.private_bytes_raw()
        b64 = base64.b64encode(bytes([ALG_ED25519]) + seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.key_id.hex()}+{b64}"

    def verifier(self) -> Verifier:
        return Verifier(self.name, self.key_id, _public_bytes(self.private_key))

    def sign(self, text: bytes) -> bytes:
        return self.private_key.sign(text)


def _public_bytes(private: Ed25519PrivateKey) -> bytes:
    # public_bytes_raw() (cryptography >= 40) spares the hook importing the serialization package (~20 ms).
    return private.public_key().public_bytes_raw()


def sign_note(text: str, *signers: Signer) -> bytes:
    """The signed note for ``text`` (which must end in a newline)."""
    data = text.encode("utf-8")
    if not text.endswith("\n"):
        raise NoteError("note text must end with a newline")
    lines = []
    for signer in signers:
        sig = base64.b64encode(signer.key_id + signer.sign(data)).decode()
        lines.append(f"{_DASH}{signer.name} {sig}\n")
    return data + b"\n" + "".join(lines).encode("utf-8")


@dataclass(frozen=True)
class SignatureLine:
    name: str
    key_id: bytes
    signature: bytes


@dataclass(frozen=True)
class OpenedNote:
    text: str
    verified_by: tuple[Verifier, ...]
    unknown: tuple[SignatureLine, ...]  # signatures from keys not given to the verifier (ignored, reported)


def split_note(note: bytes) -> tuple[str, list[SignatureLine]]:
    """Syntax only: the text and its signature lines. Raises :class:`NoteError`."""
    if len(note) > MAX_NOTE_BYTES:
        raise NoteError(f"note is larger than {MAX_NOTE_BYTES} bytes")
    try:
        whole = note.decode("utf-8")
    except UnicodeDecodeError:
        raise NoteError("note is not valid UTF-8") from None
    if any(ord(ch) < 0x20 and ch != "\n" for ch in whole):
        raise NoteError("note contains control characters")
    cut = whole.rfind("\n\n")
    if cut < 0 or not whole.endswith("\n"):
        raise NoteError("note has no signature block (text, blank line, signature lines)")
    text, block = whole[: cut + 1], whole[cut + 2:]
    sig_lines = block[:-1].split("\n")
    if len(sig_lines) > MAX_SIGNATURES:
        raise NoteError(f"note has more than {MAX_SIGNATURES} signatures")
    sigs = []
    for line in sig_lines:
        if not line.startswith(_DASH):
            raise NoteError(f"malformed signature line {line[:80]!r}")
        name, sep, b64 = line[len(_DASH):].partition(" ")
        if not sep or " " in b64:
            raise NoteError(f"malformed signature line {line[:80]!r}")
        _check_name(name)
        raw = _b64decode(b64, f"signature by {name}")
        if len(raw) < 5:
            raise NoteError(f"signature by {name} is too short")
        sigs.append(SignatureLine(name, raw[:4], raw[4:]))
    return text, sigs


def open_note(note: bytes, verifiers: list[Verifier]) -> OpenedNote:
    """Verify a signed note. Raises :class:`NoteError` if a known key's signature fails or none verifies."""
    text, sigs = split_note(note)
    data = text.encode("utf-8")
    known = {(v.name, v.key_id): v for v in verifiers}
    good: list[Verifier] = []
    unknown: list[SignatureLine] = []
    for sig in sigs:
        verifier = known.get((sig.name, sig.key_id))
        if verifier is None:
            unknown.append(sig)  # spec: MUST ignore signatures from unknown keys
            continue
        if len(sig.signature) != 64 or not verifier.verify(data, sig.signature):
            raise NoteError(f"signature by known key {verifier.name}+{verifier.key_id.hex()} does not verify")
        if verifier not in good:
            good.append(verifier)
    if not good:
        names = ", ".join(f"{s.name}+{s.key_id.hex()}" for s in unknown) or "none"
        raise NoteError(f"no signature from a known key (note signed by: {names})")
    return OpenedNote(text, tuple(good), tuple(unknown))


@dataclass(frozen=True)
class Checkpoint:
    """A parsed checkpoint body: ``origin``, tree ``size`` and RFC 6962 ``root``."""

    origin: str
    size: int
    root: bytes

    def text(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        lines = text.split("\n")
        if len(lines) != 4 or lines[3] != "":
            raise NoteError("checkpoint must have exactly three lines: origin, size, root")
        origin, size_text, root_b64 = lines[:3]
        if not origin:
            raise NoteError("checkpoint origin is empty")
        if not size_text.isdigit() or not size_text.isascii() or (size_text != "0" and size_text.startswith("0")):
            raise NoteError(f"checkpoint size {size_text!r} is not a decimal without leading zeros")
        root = _b64decode(root_b64, "checkpoint root")
        if len(root) != 32:
            raise NoteError("checkpoint root is not 32 bytes")
        return cls(origin, int(size_text), root)
