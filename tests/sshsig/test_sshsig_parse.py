"""Malformed and rule-breaking signatures: each is rejected with BadSignature and a message naming the problem.

Most rule-breaking blobs here are *correctly signed* by the independent writer in sshsig_testlib, so the rejection is
the rule's doing, not a failed verification.
"""

from __future__ import annotations

import random
import struct
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from sshsig_testlib import EcdsaSigner
from sshsig_testlib import Ed25519Signer
from sshsig_testlib import KeyGen
from sshsig_testlib import RsaSigner
from sshsig_testlib import SkEcdsaSigner
from sshsig_testlib import SkEd25519Signer
from sshsig_testlib import armor
from sshsig_testlib import dearmor
from sshsig_testlib import make_sig
from sshsig_testlib import mpint
from sshsig_testlib import s
from sshsig_testlib import signed_data
from sshsig_testlib import sshsig_blob

from gatekeeper.trust import sshsig
from gatekeeper.errors import BadSignature

NS = "review-approval@gate.example.com"
MSG = b'{"type":"git-review-approval/v1"}\n'
ORIGIN = "https://gate.example.com"


@pytest.fixture(scope="module")
def ed() -> Ed25519Signer:
    return Ed25519Signer()


@pytest.fixture(scope="module")
def good_blob(ed: Ed25519Signer) -> bytes:
    return make_sig(ed, MSG, NS)


def check(text: str | bytes, message: bytes = MSG, namespace: str = NS, **kw: Any) -> sshsig.SshSignature:
    sig = sshsig.parse_armored(text)
    sshsig.verify_signature(sig, message, namespace=namespace, **kw)
    return sig


def rejects(text: str | bytes, match: str, **kw: Any) -> BadSignature:
    with pytest.raises(BadSignature, match=match) as exc:
        check(text, **kw)
    assert exc.value.hint  # every rejection tells the user what to do
    return exc.value


# --- armor ------------------------------------------------------------------------------------------------------


def test_good_signature_round_trip(good_blob: bytes, ed: Ed25519Signer) -> None:
    sig = check(armor(good_blob))
    assert sig.public_key.key_type == "ssh-ed25519"
    assert sig.public_key.blob == ed.pub_blob
    assert (sig.namespace, sig.hash_alg, sig.sig_type) == (NS, "sha512", "ssh-ed25519")


@pytest.mark.parametrize("width", [70, 76, 64, 4, 100000])
def test_armor_any_wrapping_accepted(good_blob: bytes, width: int) -> None:
    check(armor(good_blob, width=width))


def test_armor_crlf_accepted_and_bytes_input(good_blob: bytes) -> None:
    text = armor(good_blob, newline="\r\n")
    check(text)
    check(text.encode())


def test_armor_trailing_blank_lines_accepted(good_blob: bytes) -> None:
    check(armor(good_blob) + "\n\n")
    check(armor(good_blob).rstrip("\n"))


def test_armor_missing_header(good_blob: bytes) -> None:
    text = armor(good_blob).split("\n", 1)[1]
    rejects(text, "must start with '-----BEGIN SSH SIGNATURE-----'")


def test_armor_text_before_header(good_blob: bytes) -> None:
    rejects("approved\n" + armor(good_blob), "must start with")


def test_armor_indented_header(good_blob: bytes) -> None:
    rejects(" " + armor(good_blob), "must start with")


def test_armor_indented_body(good_blob: bytes) -> None:
    lines = armor(good_blob).split("\n")
    lines[2] = "  " + lines[2]
    rejects("\n".join(lines), "whitespace inside the base64")


def test_armor_extra_header(good_blob: bytes) -> None:
    lines = armor(good_blob).split("\n")
    lines.insert(1, "-----BEGIN SSH SIGNATURE-----")
    rejects("\n".join(lines), "unexpected armor line")


def test_armor_other_armor_type(good_blob: bytes) -> None:
    rejects(armor(good_blob).replace("SSH SIGNATURE", "PGP SIGNATURE"), "must start with")


def test_armor_no_footer(good_blob: bytes) -> None:
    rejects(armor(good_blob).replace("-----END SSH SIGNATURE-----\n", ""), "has no '-----END SSH SIGNATURE-----'")


def test_armor_text_after_footer(good_blob: bytes) -> None:
    rejects(armor(good_blob) + "trailing\n", "unexpected text after the signature armor footer")
    rejects(armor(good_blob) + armor(good_blob), "unexpected text after")


def test_armor_empty_body() -> None:
    rejects("-----BEGIN SSH SIGNATURE-----\n-----END SSH SIGNATURE-----\n", "signature armor is empty")


def test_armor_blank_line_inside(good_blob: bytes) -> None:
    lines = armor(good_blob).split("\n")
    lines.insert(2, "")
    rejects("\n".join(lines), "blank lines")


@pytest.mark.parametrize("damage", ["!", "A", "=", "===="])
def test_armor_bad_base64(good_blob: bytes, damage: str) -> None:
    lines = armor(good_blob).split("\n")
    lines[1] = lines[1][:10] + damage + lines[1][10:]
    rejects("\n".join(lines), "not valid base64")


def test_armor_non_ascii(good_blob: bytes) -> None:
    rejects(armor(good_blob).replace("U1NI", "U1N\u0130").encode(), "non-ASCII")


def test_armor_too_large() -> None:
    rejects("-----BEGIN SSH SIGNATURE-----\n" + "A" * 300_000 + "\n-----END SSH SIGNATURE-----\n", "too large")


# --- blob structure ---------------------------------------------------------------------------------------------


def test_bad_magic(ed: Ed25519Signer) -> None:
    blob = sshsig_blob(ed.pub_blob, ed.sign(signed_data(MSG, NS)), namespace=NS, magic=b"SSHSIH")
    rejects(armor(blob), r"magic 'SSHSIG' missing")


@pytest.mark.parametrize("version", [0, 2, 2**32 - 1])
def test_versions_other_than_1_rejected(ed: Ed25519Signer, version: int) -> None:
    # Version 0 is accepted by OpenSSH 9.2 (sshsig.c only rejects > 1): an intended divergence.
    rejects(armor(make_sig(ed, MSG, NS, version=version)), f"version {version} is not supported")


def test_every_truncation_rejected(good_blob: bytes) -> None:
    for n in range(len(good_blob)):
        with pytest.raises(BadSignature):
            check(armor(good_blob[:n]) if n else "-----BEGIN SSH SIGNATURE-----\n-----END SSH SIGNATURE-----\n")


def test_truncated_message_names_field(good_blob: bytes) -> None:
    rejects(armor(good_blob[:-10]), r"SSH signature: length 83 of signature exceeds the 73 bytes left")
    rejects(armor(good_blob[:8]), r"SSH signature: truncated version")


@pytest.mark.parametrize("length", [2**32 - 1, 2**31, 10_000])
def test_oversized_length_rejected(good_blob: bytes, length: int) -> None:
    blob = good_blob[:10] + struct.pack(">I", length) + good_blob[14:]
    rejects(armor(blob), f"length {length} of public key exceeds")


@pytest.mark.parametrize("extra", [b"\0", b"\0\0\0\0", b"garbage"])
def test_trailing_data_rejected(good_blob: bytes, extra: bytes) -> None:
    rejects(armor(good_blob + extra), f"{len(extra)} bytes of trailing data")


@pytest.mark.parametrize("namespace,match", [
    ("", "namespace is empty"),
    (NS + "\0", "namespace contains a NUL byte"),
    ("a\0b", "namespace contains a NUL byte"),
])
def test_bad_namespace_rejected(ed: Ed25519Signer, namespace: str, match: str) -> None:
    rejects(armor(make_sig(ed, MSG, namespace)), match, namespace=namespace)


def test_namespace_not_utf8(ed: Ed25519Signer) -> None:
    blob = sshsig_blob(ed.pub_blob, ed.sign(b"x"), namespace="x").replace(s("x")[:4] + b"x", s(b"\xff")[:4] + b"\xff")
    rejects(armor(blob), "namespace is not valid UTF-8")


@pytest.mark.parametrize("hash_alg", ["sha1", "md5", "SHA512", "sha384", "sha512 ", "Sha256", "sha3_256"])
def test_hash_algorithm_allow_list(ed: Ed25519Signer, hash_alg: str) -> None:
    import hashlib

    signable = hash_alg.lower().strip() in hashlib.algorithms_available
    blob = make_sig(ed, MSG, NS, hash_alg=hash_alg.lower().strip()) if signable else make_sig(ed, MSG, NS)
    if signable:  # relabel the algorithm exactly as given (case/space variants), signature stays consistent
        blob = blob.replace(s(hash_alg.lower().strip()), s(hash_alg))
    rejects(armor(blob), f"hash algorithm {hash_alg!r} is not accepted")


@pytest.mark.parametrize("hash_alg", ["sha256", "sha512"])
def test_both_allowed_hashes(ed: Ed25519Signer, hash_alg: str) -> None:
    assert check(armor(make_sig(ed, MSG, NS, hash_alg=hash_alg))).hash_alg == hash_alg


def test_non_empty_reserved_is_accepted_but_unsigned(ed: Ed25519Signer) -> None:
    # Reference A1: reserved is not part of the signed data (observed with OpenSSH); blobs are malleable.
    sig = check(armor(make_sig(ed, MSG, NS, reserved=b"anything")))
    assert sig.reserved == b"anything"


# --- key types and signature encodings ---------------------------------------------------------------------------


def test_signature_type_must_match_key_type(ed: Ed25519Signer) -> None:
    ecdsa = EcdsaSigner("nistp256")
    data = signed_data(MSG, NS)
    # Ed25519 key, ECDSA signature blob
    rejects(armor(sshsig_blob(ed.pub_blob, ecdsa.sign(data), namespace=NS)),
            "signature type 'ecdsa-sha2-nistp256' does not match key type ssh-ed25519")
    # ECDSA P-256 key, signature labelled P-384
    sig = ecdsa.sign(data).replace(s("ecdsa-sha2-nistp256"), s("ecdsa-sha2-nistp384"))
    rejects(armor(sshsig_blob(ecdsa.pub_blob, sig, namespace=NS)), "does not match key type ecdsa-sha2-nistp256")
    # RSA key with an Ed25519-labelled signature
    rsa_key = RsaSigner(2048)
    rejects(armor(sshsig_blob(rsa_key.pub_blob, ed.sign(data), namespace=NS)),
            "signature type 'ssh-ed25519' does not match key type ssh-rsa")
    # plain ECDSA key cannot carry a WebAuthn signature
    sk = SkEcdsaSigner(origin=ORIGIN)
    rejects(armor(sshsig_blob(ecdsa.pub_blob, sk.sign(data), namespace=NS)), "does not match key type")


@pytest.mark.parametrize("curve", ["nistp256", "nistp384", "nistp521"])
def test_ecdsa_curves(curve: str) -> None:
    signer = EcdsaSigner(curve)
    sig = check(armor(make_sig(signer, MSG, NS)))
    assert sig.public_key.bits == {"nistp256": 256, "nistp384": 384, "nistp521": 521}[curve]


def test_ecdsa_s_to_n_minus_s_is_accepted() -> None:
    # ECDSA signatures are malleable: (r, n-s) verifies too (reference A1/B6.4). Never an identifier.
    signer = EcdsaSigner("nistp256")
    data = signed_data(MSG, NS)
    r, s_ = signer.rs(data)
    n = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    sig = s(signer.key_type) + s(mpint(r) + mpint(n - s_))
    check(armor(sshsig_blob(signer.pub_blob, sig, namespace=NS)))


@pytest.mark.parametrize("alg", ["rsa-sha2-256", "rsa-sha2-512"])
def test_rsa_sha2_accepted(alg: str) -> None:
    assert check(armor(make_sig(RsaSigner(2048, alg), MSG, NS))).sig_type == alg


def test_rsa_sha1_signature_rejected() -> None:
    rejects(armor(make_sig(RsaSigner(2048, "ssh-rsa"), MSG, NS)), r"ssh-rsa \(SHA-1\) signatures are not accepted")


def test_rsa_short_signature_is_left_padded() -> None:
    # ssh-rsa.c left-pads an s shorter than the modulus; find a signature with a leading zero byte and strip it.
    signer = RsaSigner(2048, "rsa-sha2-256")
    for i in range(4000):
        message = MSG + str(i).encode()
        raw = signer.key.sign(signed_data(message, NS), padding.PKCS1v15(), hashes.SHA256())
        if raw[0] == 0:
            sig = s("rsa-sha2-256") + s(raw[1:])
            check(armor(sshsig_blob(signer.pub_blob, sig, namespace=NS)), message=message)
            return
    pytest.skip("no signature with a leading zero byte found")  # pragma: no cover - probability ~1e-7


def test_rsa_signature_longer_than_modulus_rejected() -> None:
    signer = RsaSigner(2048)
    sig = s("rsa-sha2-512") + s(b"\0" + signer.sign(signed_data(MSG, NS))[4 + 12 + 4:])
    rejects(armor(sshsig_blob(signer.pub_blob, sig, namespace=NS)), "RSA signature longer than the modulus")


def test_rsa_1024_crafted_rejected() -> None:
    e = rejects(armor(make_sig(RsaSigner(1024), MSG, NS)), "RSA key has 1024 bits; at least 2048 are required")
    assert "3072" in e.hint


def test_rsa_1024_from_ssh_keygen_rejected(keygen: KeyGen, tmp_path: Path) -> None:
    # OpenSSH accepts RSA >= 1024 (SSH_RSA_MINIMUM_MODULUS_SIZE): an intended divergence.
    key = keygen.key("rsa1024", "rsa", 1024)
    text = keygen.sign(key, NS, MSG)
    assert keygen.check_novalidate(NS, text, MSG)
    rejects(text, "RSA key has 1024 bits")


@pytest.mark.parametrize("pk_len", [31, 33, 0])
def test_bad_ed25519_public_key_length(pk_len: int) -> None:
    blob = sshsig_blob(s("ssh-ed25519") + s(b"\x01" * pk_len), s("ssh-ed25519") + s(b"\0" * 64), namespace=NS)
    rejects(armor(blob), f"Ed25519 public key has {pk_len} bytes, not 32")


@pytest.mark.parametrize("sig_len", [63, 65, 0])
def test_bad_ed25519_signature_length(ed: Ed25519Signer, sig_len: int) -> None:
    blob = sshsig_blob(ed.pub_blob, s("ssh-ed25519") + s(b"\x01" * sig_len), namespace=NS)
    rejects(armor(blob), f"Ed25519 signature has {sig_len} bytes, not 64")


def test_ed25519_signature_trailing_bytes(ed: Ed25519Signer) -> None:
    blob = sshsig_blob(ed.pub_blob, ed.sign(signed_data(MSG, NS)) + b"\0", namespace=NS)
    rejects(armor(blob), "1 bytes of trailing data")


def _rsa_blob(e_raw: bytes, n_raw: bytes) -> bytes:
    return sshsig_blob(s("ssh-rsa") + s(e_raw) + s(n_raw), s("rsa-sha2-512") + s(b"\1" * 256), namespace=NS)


def test_negative_mpint_rejected() -> None:
    n = RsaSigner(2048).key.public_key().public_numbers().n.to_bytes(256, "big")
    rejects(armor(_rsa_blob(b"\x81\x00\x01", b"\0" + n)), "RSA exponent is a negative mpint")
    rejects(armor(_rsa_blob(b"\x01\x00\x01", n)), "RSA modulus is a negative mpint")


def test_non_minimal_mpint_rejected() -> None:
    n = RsaSigner(2048).key.public_key().public_numbers().n.to_bytes(256, "big")
    rejects(armor(_rsa_blob(b"\x00\x01\x00\x01", b"\0" + n)), "RSA exponent is a non-minimal mpint")


def test_oversized_mpint_rejected() -> None:
    rejects(armor(_rsa_blob(b"\x01\x00\x01", b"\x01" * 2100)), "RSA modulus is too large")
    signer = EcdsaSigner("nistp256")
    sig = s(signer.key_type) + s(mpint(2**400) + mpint(5))
    rejects(armor(sshsig_blob(signer.pub_blob, sig, namespace=NS)), "ECDSA r is too large")
    sig = s(signer.key_type) + s(s(b"\xff" * 32) + mpint(5))
    rejects(armor(sshsig_blob(signer.pub_blob, sig, namespace=NS)), "ECDSA r is a negative mpint")


def test_ecdsa_inner_trailing_data() -> None:
    signer = EcdsaSigner("nistp256")
    r, s_ = signer.rs(signed_data(MSG, NS))
    sig = s(signer.key_type) + s(mpint(r) + mpint(s_) + b"\0")
    rejects(armor(sshsig_blob(signer.pub_blob, sig, namespace=NS)), "1 bytes of trailing data")


def test_ecdsa_bad_points_rejected() -> None:
    signer = EcdsaSigner("nistp256")
    compressed = bytes([2 + (signer.point[-1] & 1)]) + signer.point[1:33]
    key = s(signer.key_type) + s("nistp256") + s(compressed)
    rejects(armor(sshsig_blob(key, signer.sign(b""), namespace=NS)), "not an uncompressed nistp256 point")
    off_curve = signer.point[:-1] + bytes([signer.point[-1] ^ 1])
    key = s(signer.key_type) + s("nistp256") + s(off_curve)
    rejects(armor(sshsig_blob(key, signer.sign(b""), namespace=NS)), "invalid public key")
    key = s(signer.key_type) + s("nistp384") + s(signer.point)
    rejects(armor(sshsig_blob(key, signer.sign(b""), namespace=NS)), "curve 'nistp384' does not match key type")


@pytest.mark.parametrize("key_type", ["ssh-dss", "ssh-mldsa44-ed25519@openssh.com", "ssh-ed448", ""])
def test_unsupported_key_types(key_type: str) -> None:
    blob = sshsig_blob(s(key_type) + s(b"\0" * 32), s(key_type) + s(b"\0" * 64), namespace=NS)
    rejects(armor(blob), f"unsupported key type {key_type!r}")


# --- security keys ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("signer_cls", [SkEd25519Signer, SkEcdsaSigner])
def test_sk_signature_with_user_presence(signer_cls: type[SkEd25519Signer] | type[SkEcdsaSigner]) -> None:
    signer = signer_cls(flags=0x05, counter=1234)
    sig = check(armor(make_sig(signer, MSG, NS)))
    assert (sig.sk_flags, sig.sk_counter) == (0x05, 1234)
    assert sig.public_key.application == "ssh:"


@pytest.mark.parametrize("signer_cls", [SkEd25519Signer, SkEcdsaSigner])
def test_sk_without_user_presence_rejected(signer_cls: type[SkEd25519Signer] | type[SkEcdsaSigner]) -> None:
    # ssh-keygen -Y verify accepts this (it only logs flags): the SK UP policy is an intended divergence.
    text = armor(make_sig(signer_cls(flags=0x04), MSG, NS))
    rejects(text, r"security key signature without user presence \(flags 0x04\)")
    check(text, require_user_presence=False)


@pytest.mark.parametrize("signer_cls", [SkEd25519Signer, SkEcdsaSigner])
def test_sk_flags_are_signed(signer_cls: type[SkEd25519Signer] | type[SkEcdsaSigner]) -> None:
    # Turning UP on after the fact breaks the signature: flags are inside the authenticator's signed data.
    blob = make_sig(signer_cls(flags=0x00, counter=9), MSG, NS)
    tail = bytes([0x00]) + struct.pack(">I", 9)
    assert blob.endswith(tail)
    rejects(armor(blob[:-5] + bytes([0x01]) + struct.pack(">I", 9)), "does not verify")
    rejects(armor(blob[:-5] + bytes([0x00]) + struct.pack(">I", 10)), "does not verify", require_user_presence=False)


def test_sk_application_is_part_of_the_key() -> None:
    signer = SkEd25519Signer(application="ssh:other")
    sig = check(armor(make_sig(signer, MSG, NS)))
    assert sig.public_key.application == "ssh:other"
    # the same Ed25519 point under another application is a different key and does not verify
    other_key = signer.pub_blob.replace(s("ssh:other"), s("ssh:"))
    rejects(armor(make_sig(signer, MSG, NS, key_blob=other_key)), "does not verify")


def test_sk_trailing_bytes_rejected() -> None:
    signer = SkEd25519Signer()
    blob = sshsig_blob(signer.pub_blob, signer.sign(signed_data(MSG, NS)) + b"\0", namespace=NS)
    rejects(armor(blob), "1 bytes of trailing data")
    signer2 = SkEcdsaSigner()
    blob = sshsig_blob(signer2.pub_blob, signer2.sign(signed_data(MSG, NS)) + b"x", namespace=NS)
    rejects(armor(blob), "1 bytes of trailing data")


def test_sk_missing_application_rejected() -> None:
    signer = SkEd25519Signer()
    key = signer.pub_blob.replace(s("ssh:"), s(""))
    rejects(armor(sshsig_blob(key, signer.sign(b""), namespace=NS)), "security-key application is empty")


def test_webauthn_valid_signature() -> None:
    signer = SkEcdsaSigner(origin=ORIGIN, counter=77)
    sig = check(armor(make_sig(signer, MSG, NS)), webauthn_origin=ORIGIN)
    assert sig.sig_type == "webauthn-sk-ecdsa-sha2-nistp256@openssh.com"
    assert (sig.sk_counter, sig.webauthn_origin) == (77, ORIGIN)


def test_webauthn_with_extensions_needs_ed_flag() -> None:
    signer = SkEcdsaSigner(origin=ORIGIN, flags=0x81)
    signer.extensions = b"\xa0"
    check(armor(make_sig(signer, MSG, NS)), webauthn_origin=ORIGIN)
    signer.flags = 0x01
    rejects(armor(make_sig(signer, MSG, NS)), "extension flag does not match", webauthn_origin=ORIGIN)
    signer.extensions, signer.flags = b"", 0x81
    rejects(armor(make_sig(signer, MSG, NS)), "extension flag does not match", webauthn_origin=ORIGIN)


def test_webauthn_attested_data_flag_rejected() -> None:
    signer = SkEcdsaSigner(origin=ORIGIN, flags=0x41)
    rejects(armor(make_sig(signer, MSG, NS)), "invalid WebAuthn flags", webauthn_origin=ORIGIN)


def test_webauthn_wrong_origin_rejected() -> None:
    signer = SkEcdsaSigner(origin="https://evil.example")
    rejects(armor(make_sig(signer, MSG, NS)), "WebAuthn origin 'https://evil.example' is not the expected",
            webauthn_origin=ORIGIN)


@pytest.mark.parametrize("client_data", [
    b'{"type":"webauthn.create","challenge":"AAAA","origin":"https://gate.example.com"}',
    b'{"challenge":"AAAA","type":"webauthn.get","origin":"https://gate.example.com"}',
    b'{"type":"webauthn.get","challenge":"AAAA","origin":"https://gate.example.com"}',
])
def test_webauthn_tampered_client_data_rejected(client_data: bytes) -> None:
    # Validly signed by the authenticator, but clientData does not carry this challenge in canonical position.
    signer = SkEcdsaSigner(origin=ORIGIN)
    signer.client_data_override = client_data
    rejects(armor(make_sig(signer, MSG, NS)), "clientData does not carry this challenge and origin",
            webauthn_origin=ORIGIN)


def test_webauthn_origin_with_quote_rejected() -> None:
    origin = 'https://gate.example.com"'
    signer = SkEcdsaSigner(origin=origin)
    rejects(armor(make_sig(signer, MSG, NS)), "invalid WebAuthn flags or origin", webauthn_origin=origin)


def test_webauthn_client_data_changed_after_signing() -> None:
    signer = SkEcdsaSigner(origin=ORIGIN)
    blob = make_sig(signer, MSG, NS)
    tampered = blob.replace(b'"crossOrigin":false', b'"crossOrigin":true!')
    assert tampered != blob
    rejects(armor(tampered), "does not verify", webauthn_origin=ORIGIN)


# --- hostile input: never anything but BadSignature ------------------------------------------------------------


@pytest.mark.parametrize("signer_name", ["ed25519", "ecdsa", "rsa", "sk-ed25519", "sk-ecdsa", "webauthn"])
def test_every_single_byte_flip_is_rejected(signer_name: str) -> None:
    signer = {"ed25519": Ed25519Signer, "ecdsa": lambda: EcdsaSigner("nistp384"), "rsa": lambda: RsaSigner(2048),
              "sk-ed25519": SkEd25519Signer, "sk-ecdsa": SkEcdsaSigner,
              "webauthn": lambda: SkEcdsaSigner(origin=ORIGIN)}[signer_name]()
    blob = make_sig(signer, MSG, NS)
    check(armor(blob), webauthn_origin=ORIGIN)
    step = 1 if len(blob) < 600 else 3
    for i in range(0, len(blob), step):
        for bit in (0x01, 0x80):
            damaged = bytearray(blob)
            damaged[i] ^= bit
            with pytest.raises(BadSignature):
                check(armor(bytes(damaged)), webauthn_origin=ORIGIN)


def test_random_garbage_only_raises_bad_signature(good_blob: bytes) -> None:
    rng = random.Random(1234)
    for _ in range(3000):
        blob = bytearray(good_blob)
        for _ in range(rng.randint(1, 6)):
            op = rng.random()
            pos = rng.randrange(len(blob) + 1)
            if op < 0.4 and blob:
                blob[min(pos, len(blob) - 1)] = rng.randrange(256)
            elif op < 0.7:
                blob[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
            else:
                del blob[pos:pos + rng.randint(1, 8)]
        try:
            check(armor(bytes(blob)))
        except BadSignature:
            pass


def test_dearmor_of_ssh_keygen_output(keygen: KeyGen, keys: dict[str, Path]) -> None:
    text = keygen.sign(keys["ed25519"], NS, MSG)
    assert sshsig.parse_armored(text).blob == dearmor(text)


def test_sk_user_verification_when_required() -> None:
    touched_only = armor(make_sig(SkEd25519Signer(flags=0x01), MSG, NS))
    check(touched_only)
    rejects(touched_only, r"without user verification \(flags 0x01\)", require_user_verification=True)
    check(armor(make_sig(SkEcdsaSigner(flags=0x05), MSG, NS)), require_user_verification=True)


def test_rsa_modulus_above_16384_bits_rejected() -> None:
    rejects(armor(_rsa_blob(b"\x01\x00\x01", b"\x01" + b"\xff" * 2048)), "RSA key has 16385 bits; at most 16384")


def test_rsa_invalid_exponent_rejected() -> None:
    n = RsaSigner(2048).key.public_key().public_numbers().n.to_bytes(256, "big")
    rejects(armor(_rsa_blob(b"\x02", b"\0" + n)), "invalid public key")


def test_signature_bytes_too_large() -> None:
    rejects(b"-----BEGIN SSH SIGNATURE-----\n" + b"A" * 300_000, "signature is too large")


def test_hand_made_signature_object_is_refused(good_blob: bytes) -> None:
    import dataclasses

    sig = dataclasses.replace(sshsig.parse_armored(armor(good_blob)), _value=None)
    with pytest.raises(BadSignature, match="not produced by parse_armored"):
        sshsig.verify_signature(sig, MSG, namespace=NS)


def test_public_key_lines(ed: Ed25519Signer) -> None:
    key = sshsig.parse_public_key_line(ed.line() + " comment with spaces")
    assert isinstance(key, sshsig.PublicKey)
    assert key.openssh() == ed.line()
    with pytest.raises(BadSignature, match="expected 'TYPE BASE64 \\[COMMENT\\]'"):
        sshsig.parse_public_key_line("ssh-ed25519")


def test_too_many_certificate_principals(ed: Ed25519Signer) -> None:
    from sshsig_testlib import CertSpec
    from sshsig_testlib import make_cert

    cert = make_cert(ed, ed, CertSpec(principals=[f"p{i}" for i in range(257)]))
    rejects(armor(make_sig(ed, MSG, NS, key_blob=cert)), "more than 256 principals")
