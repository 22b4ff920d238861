"""OpenSSH's own SSHSIG unit-test vectors (regress/unittests/sshsig/testdata) through the in-process verifier."""

from __future__ import annotations

import pytest
from machine import corpus

from gatekeeper.trust import sshsig
from gatekeeper.errors import BadSignature

ORIGIN = "https://www.mindrot.org"
SUPPORTED = ["rsa", "ecdsa", "ed25519", "ecdsa_sk", "ed25519_sk", "ecdsa_sk_webauthn"]

CORPUS = corpus("openssh-sshsig")


@pytest.fixture(scope="module")
def message() -> bytes:
    return (CORPUS / "signed-data").read_bytes()


@pytest.fixture(scope="module")
def namespace() -> str:
    return (CORPUS / "namespace").read_text().strip()


def _sig(name: str) -> sshsig.SshSignature:
    return sshsig.parse_armored((CORPUS / f"{name}.sig").read_text())


@pytest.mark.parametrize("name", SUPPORTED)
def test_vector_verifies_and_key_matches_pub(name: str, message: bytes, namespace: str) -> None:
    sig = _sig(name)
    sshsig.verify_signature(sig, message, namespace=namespace, webauthn_origin=ORIGIN)
    pub = sshsig.parse_public_key_line((CORPUS / f"{name}.pub").read_text())
    assert pub == sig.public_key
    assert sig.namespace == "unittest"
    assert sig.cert is None


def test_vector_fingerprints_match_ssh_keygen() -> None:
    # ssh-keygen -lf CORPUS/*.pub (OpenSSH 9.2)
    assert _sig("ed25519").public_key.fingerprint == "SHA256:ZxTZQ/K7JZpz0mHqWqdmYCUcq3MAtnu9TYA66TCBkxM"
    assert _sig("rsa").public_key.fingerprint == "SHA256:PnEztoQ74skPJhb/bvdbzdOVa2whp8Ws4housCPVrkI"
    assert _sig("ecdsa_sk").public_key.fingerprint == "SHA256:/ALxJUlmDPE0gxeL1nZip4oXm1VG1qmR2xL5iUzZD1A"


def test_vector_sk_flags_and_counters() -> None:
    # sk-dummy signs with counter 0x12345678 and flags 0x01; the WebAuthn vector has counter 799.
    for name in ("ecdsa_sk", "ed25519_sk"):
        sig = _sig(name)
        assert (sig.sk_flags, sig.sk_counter) == (0x01, 0x12345678)
    webauthn = _sig("ecdsa_sk_webauthn")
    assert webauthn.sig_type == "webauthn-sk-ecdsa-sha2-nistp256@openssh.com"
    assert (webauthn.sk_flags, webauthn.sk_counter, webauthn.webauthn_origin) == (0x01, 799, ORIGIN)
    assert _sig("rsa").sig_type == "rsa-sha2-512"
    assert (_sig("ed25519").sk_flags, _sig("ed25519").sk_counter) == (None, None)


@pytest.mark.parametrize("name", SUPPORTED)
@pytest.mark.parametrize("position", [0, 17, -1])
def test_vector_changed_data_byte_fails(name: str, position: int, message: bytes, namespace: str) -> None:
    changed = bytearray(message)
    changed[position] ^= 0x01
    with pytest.raises(BadSignature, match="does not verify|WebAuthn clientData"):
        sshsig.verify_signature(_sig(name), bytes(changed), namespace=namespace, webauthn_origin=ORIGIN)


@pytest.mark.parametrize("name", SUPPORTED)
@pytest.mark.parametrize("other", ["unittes", "unittest ", "Unittest", "git", "file"])
def test_vector_other_namespace_fails(name: str, other: str, message: bytes) -> None:
    with pytest.raises(BadSignature, match=r"^signature namespace 'unittest' is not the expected"):
        sshsig.verify_signature(_sig(name), message, namespace=other, webauthn_origin=ORIGIN)


def test_vector_webauthn_needs_pinned_origin(message: bytes, namespace: str) -> None:
    sig = _sig("ecdsa_sk_webauthn")
    with pytest.raises(BadSignature, match="no WebAuthn origin is configured"):
        sshsig.verify_signature(sig, message, namespace=namespace)
    with pytest.raises(BadSignature, match="WebAuthn origin 'https://www.mindrot.org' is not the expected "
                                           "'https://evil.example'"):
        sshsig.verify_signature(sig, message, namespace=namespace, webauthn_origin="https://evil.example")


def test_vector_mldsa_is_a_clean_unsupported_key_type() -> None:
    with pytest.raises(BadSignature) as exc:
        _sig("mldsa44-ed25519")
    assert str(exc.value) == "SSH signature public key: unsupported key type 'ssh-mldsa44-ed25519@openssh.com'"
    assert exc.value.hint
