"""Revocation through OpenSSH KRLs (``PROTOCOL.krl``): crafted sections, malformed files, and ssh-keygen's own KRLs
checked against ``ssh-keygen -Y verify -r``."""

from __future__ import annotations

import hashlib
import struct
from datetime import datetime
from datetime import timezone
from pathlib import Path

import pytest
from sshsig_testlib import CertSpec
from sshsig_testlib import Ed25519Signer
from sshsig_testlib import KeyGen
from sshsig_testlib import armor
from sshsig_testlib import krl
from sshsig_testlib import krl_certs
from sshsig_testlib import make_cert
from sshsig_testlib import make_sig
from sshsig_testlib import mpint
from sshsig_testlib import s
from sshsig_testlib import u64

from gatekeeper.trust.allowed_signers import AllowedSigners
from gatekeeper.trust.allowed_signers import lint_allowed_signers
from gatekeeper.trust.allowed_signers import parse_revoked_keys
from gatekeeper.errors import ConfigError
from gatekeeper.errors import UntrustedSignature

NS = "review-approval@gate.example.com"
MSG = b"statement\n"
NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def ca() -> Ed25519Signer:
    return Ed25519Signer()


@pytest.fixture(scope="module")
def user() -> Ed25519Signer:
    return Ed25519Signer()


def cert_sig(ca: Ed25519Signer, user: Ed25519Signer, serial: int = 7, key_id: str = "kid") -> str:
    return armor(make_sig(user, MSG, NS, key_blob=make_cert(ca, user, CertSpec(serial=serial, key_id=key_id))))


def verdict(allowed: str, revoked: bytes, sig: str) -> str:
    st = AllowedSigners.from_bytes(allowed.encode(), revoked=revoked)
    try:
        st.verify(sig, MSG, namespace=NS, now=NOW)
    except UntrustedSignature as exc:
        return str(exc)
    return "ok"


def test_explicit_key_and_fingerprints(user: Ed25519Signer) -> None:
    allowed = f"alice {user.line()}\n"
    sig = armor(make_sig(user, MSG, NS))
    assert verdict(allowed, krl(), sig) == "ok"
    for section in ((2, s(user.pub_blob)), (3, s(hashlib.sha1(user.pub_blob).digest())),
                    (5, s(hashlib.sha256(user.pub_blob).digest()))):
        assert verdict(allowed, krl(section), sig).endswith("is revoked")
    other = Ed25519Signer()
    assert verdict(allowed, krl((2, s(other.pub_blob)), (5, s(hashlib.sha256(other.pub_blob).digest()))), sig) == "ok"


@pytest.mark.parametrize("subsection,revoked_serials", [
    ((0x20, u64(3) + u64(7) + u64(9)), {3, 7, 9}),
    ((0x21, u64(5) + u64(8)), {5, 6, 7, 8}),
    ((0x22, u64(4) + mpint(0b1011)), {4, 5, 7}),
])
def test_certificate_serials(ca: Ed25519Signer, user: Ed25519Signer, subsection: tuple[int, bytes],
                             revoked_serials: set[int]) -> None:
    allowed = f"alice cert-authority {ca.line()}\n"
    revoked = krl(krl_certs(ca.pub_blob, subsection))
    for serial in range(0, 11):
        want = "revoked" if serial in revoked_serials else "ok"
        got = verdict(allowed, revoked, cert_sig(ca, user, serial=serial))
        assert ("revoked" if got.endswith("is revoked") else got) == want, serial


def test_serial_zero_never_revoked_by_serial(ca: Ed25519Signer, user: Ed25519Signer) -> None:
    allowed = f"alice cert-authority {ca.line()}\n"
    revoked = krl(krl_certs(ca.pub_blob, (0x21, u64(0) + u64(10))))
    assert verdict(allowed, revoked, cert_sig(ca, user, serial=0)) == "ok"
    assert "serial 1" in verdict(allowed, revoked, cert_sig(ca, user, serial=1))


def test_key_id_and_wildcard_ca(ca: Ed25519Signer, user: Ed25519Signer) -> None:
    allowed = f"alice cert-authority {ca.line()}\n"
    by_id = krl(krl_certs(ca.pub_blob, (0x23, s("bad-id") + s("other"))))
    assert verdict(allowed, by_id, cert_sig(ca, user, key_id="bad-id")) == (
        f"certificate 'bad-id' (serial 7) of key {_fp(user)} is revoked")
    assert verdict(allowed, by_id, cert_sig(ca, user, key_id="good-id")) == "ok"
    any_ca = krl(krl_certs(b"", (0x20, u64(7))))
    assert verdict(allowed, any_ca, cert_sig(ca, user, serial=7)).endswith("is revoked")
    other_ca = krl(krl_certs(Ed25519Signer().pub_blob, (0x20, u64(7))))
    assert verdict(allowed, other_ca, cert_sig(ca, user, serial=7)) == "ok"


def test_revoked_ca_revokes_its_certificates(ca: Ed25519Signer, user: Ed25519Signer) -> None:
    allowed = f"alice cert-authority {ca.line()}\n"
    assert verdict(allowed, krl((2, s(ca.pub_blob))), cert_sig(ca, user)).startswith("certificate authority ")


def _fp(signer: Ed25519Signer) -> str:
    from gatekeeper.trust.sshsig import fingerprint

    return fingerprint(signer.pub_blob)


@pytest.mark.parametrize("data,message", [
    (krl(version=2), "KRL format version 2 is not supported"),
    (krl((4, s(b"key") + s(b"sig"))), "signed KRLs are not supported"),
    (krl((9, b"")), "unsupported KRL section type 9"),
    (krl((2, s(b"\0\0\0\x0bssh-ed25519") + b"\0"))[:-1], "KRL"),
    (krl((5, s(b"short"))), "KRL fingerprint has 5 bytes, not 32"),
    (krl((3, s(b"x" * 32))), "KRL fingerprint has 32 bytes, not 20"),
    (krl((5, s(b"x" * 32) + b"\0")), "truncated fingerprint"),
    (krl(krl_certs(b"", (0x21, u64(1) + u64(2) + b"\0"))), "1 bytes of trailing data"),
    (krl(krl_certs(b"", (0x21, u64(9) + u64(3)))), "KRL serial range 9-3 is inverted"),
    (krl(krl_certs(b"", (0x24, b""))), "unsupported KRL certificate subsection type 0x24"),
    (krl(krl_certs(b"", (0x20, u64(1) + b"\0"))), "truncated serial"),
    (krl(krl_certs(b"", (0x22, u64(2**64 - 2) + mpint(0b100)))), "wraps around"),
    (krl((2, s(b"\0\0\0\x07ssh-dss"))), "unsupported key type 'ssh-dss'"),
    (b"SSHKRL\n\0\0\0", "truncated format version"),
])
def test_malformed_krl_fails_closed(data: bytes, message: str) -> None:
    _, problems = parse_revoked_keys(data)
    assert len(problems) == 1 and problems[0][0] == 0
    assert problems[0][1].startswith("invalid OpenSSH KRL: ")
    assert message in problems[0][1]
    with pytest.raises(ConfigError, match="invalid OpenSSH KRL"):
        AllowedSigners.from_bytes(f"alice {Ed25519Signer().line()}\n".encode(), revoked=data)


def test_every_truncation_of_a_krl_is_an_error(ca: Ed25519Signer, user: Ed25519Signer) -> None:
    data = krl((2, s(user.pub_blob)), krl_certs(ca.pub_blob, (0x20, u64(1)), (0x23, s("x"))),
               (5, s(hashlib.sha256(b"").digest())))
    assert parse_revoked_keys(data)[1] == []
    for n in range(len(b"SSHKRL\n\0"), len(data)):
        # a cut exactly at a section boundary is a valid, shorter KRL; anything else must be reported
        _, problems = parse_revoked_keys(data[:n])
        if problems:
            assert problems[0][1].startswith("invalid OpenSSH KRL")


# --- ssh-keygen's KRLs, differential ----------------------------------------------------------------------------


def test_ssh_keygen_krls_agree_with_oracle(keygen: KeyGen, keys: dict[str, Path], tmp_path: Path) -> None:
    kg = keygen
    ca = keys["ca_ed25519"]
    certs = {serial: kg.cert(ca, keys["ed25519"], identity="good" if serial != 99 else "badid",
                             principals="carol", validity="20200101Z:20300101Z", serial=serial)
             for serial in (0, 5, 12, 21, 99)}
    sigs = {serial: kg.sign(path, NS, MSG, with_cert=True) for serial, path in certs.items()}
    plain_sig = kg.sign(keys["ecdsa256"], NS, MSG)
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f"carol cert-authority {kg.pub(ca)}\np-ecdsa {kg.pub(keys['ecdsa256'])}\n")

    spec = tmp_path / "spec"
    spec.write_text("serial: 5\nserial: 10-20\nid: badid\n")
    by_serial = tmp_path / "by_serial.krl"
    kg.run("-k", "-f", by_serial, "-s", f"{ca}.pub", spec)
    keylist = tmp_path / "keys"
    keylist.write_text(kg.pub(keys["ecdsa256"]) + "\n")
    by_key = tmp_path / "by_key.krl"
    kg.run("-k", "-f", by_key, keylist)
    hashes = tmp_path / "hashes"
    fp = kg.run("-l", "-f", f"{keys['ecdsa256']}.pub").stdout.decode().split()[1]
    hashes.write_text(f"hash: {fp}\n")
    by_hash = tmp_path / "by_hash.krl"
    kg.run("-k", "-f", by_hash, hashes)
    by_ca = tmp_path / "by_ca.krl"
    cafile = tmp_path / "ca.pub"
    cafile.write_text(kg.pub(ca) + "\n")
    kg.run("-k", "-f", by_ca, cafile)

    outcomes = {}
    for krl_path in (by_serial, by_key, by_hash, by_ca):
        assert lint_allowed_signers(allowed, revoked=krl_path) == []
        store = AllowedSigners.load(allowed, revoked=krl_path)
        cases = [(f"serial {n}", "carol", text) for n, text in sigs.items()] + [("plain", "p-ecdsa", plain_sig)]
        for name, principal, text in cases:
            want = kg.verify(allowed, principal, NS, text, MSG, verify_time="20260601Z", revoked=krl_path)
            try:
                store.verify(text, MSG, namespace=NS, now=NOW)
                got = True
            except UntrustedSignature:
                got = False
            assert got == want, (krl_path.name, name)
            outcomes[(krl_path.name, name)] = got
    assert outcomes == {
        ("by_serial.krl", "serial 0"): True, ("by_serial.krl", "serial 5"): False,
        ("by_serial.krl", "serial 12"): False, ("by_serial.krl", "serial 21"): True,
        ("by_serial.krl", "serial 99"): False, ("by_serial.krl", "plain"): True,
        **{("by_key.krl", f"serial {n}"): True for n in (0, 5, 12, 21, 99)}, ("by_key.krl", "plain"): False,
        **{("by_hash.krl", f"serial {n}"): True for n in (0, 5, 12, 21, 99)}, ("by_hash.krl", "plain"): False,
        **{("by_ca.krl", f"serial {n}"): False for n in (0, 5, 12, 21, 99)}, ("by_ca.krl", "plain"): True,
    }


def test_krl_header_layout() -> None:
    data = krl()
    assert data[:8] == b"SSHKRL\n\0" and struct.unpack(">I", data[8:12])[0] == 1
    revocations, problems = parse_revoked_keys(data)
    assert problems == [] and revocations.keys == frozenset()


def test_parse_krl_needs_magic() -> None:
    from gatekeeper.errors import BadSignature
    from gatekeeper.trust.sshkrl import parse_krl

    with pytest.raises(BadSignature, match="not an OpenSSH KRL"):
        parse_krl(b"ssh-ed25519 AAAA\n")
