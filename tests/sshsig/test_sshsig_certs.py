"""OpenSSH user certificates through cert-authority lines (crafted certificates; ssh-keygen ones in the oracle test).

Rules (reference A3, OpenSSH ``sshkey_cert_check_authority`` with require_principal): user certificates only,
``valid_after <= t < valid_before``, at least one principal, a principal of the certificate matching the line's
patterns; the CA signature verifies and is not SHA-1; revocation covers the certified key and the CA.
"""

from __future__ import annotations

from datetime import datetime
from datetime import timezone

import pytest
from sshsig_testlib import CertSpec
from sshsig_testlib import EcdsaSigner
from sshsig_testlib import Ed25519Signer
from sshsig_testlib import RsaSigner
from sshsig_testlib import SkEcdsaSigner
from sshsig_testlib import SkEd25519Signer
from sshsig_testlib import armor
from sshsig_testlib import make_cert
from sshsig_testlib import make_sig
from sshsig_testlib import pub_line
from sshsig_testlib import s

from gatekeeper.trust import sshsig
from gatekeeper.trust.allowed_signers import AllowedSigners
from gatekeeper.errors import BadSignature
from gatekeeper.errors import UntrustedSignature

NS = "review-approval@gate.example.com"
MSG = b"statement\n"
NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=timezone.utc)
T = int(NOW.timestamp())


@pytest.fixture(scope="module")
def ca() -> Ed25519Signer:
    return Ed25519Signer()


@pytest.fixture(scope="module")
def user() -> Ed25519Signer:
    return Ed25519Signer()


def cert_sig(ca: object, user: object, spec: CertSpec | None = None) -> str:
    cert = make_cert(ca, user, spec)  # type: ignore[arg-type]
    return armor(make_sig(user, MSG, NS, key_blob=cert))  # type: ignore[arg-type]


def store(text: str, revoked: str | None = None) -> AllowedSigners:
    return AllowedSigners.from_bytes(text.encode(), revoked=None if revoked is None else revoked.encode())


def untrusted(st: AllowedSigners, sig: str, match: str, now: datetime = NOW) -> str:
    with pytest.raises(UntrustedSignature, match=match) as exc:
        st.verify(sig, MSG, namespace=NS, now=now)
    return str(exc.value)


@pytest.mark.parametrize("ca_kind", ["ed25519", "ecdsa384", "rsa-sha2-512", "rsa-sha2-256"])
@pytest.mark.parametrize("user_kind", ["ed25519", "ecdsa256", "rsa", "sk-ed25519", "sk-ecdsa"])
def test_certificate_matrix(ca_kind: str, user_kind: str) -> None:
    ca = {"ed25519": Ed25519Signer, "ecdsa384": lambda: EcdsaSigner("nistp384"),
          "rsa-sha2-512": lambda: RsaSigner(2048, "rsa-sha2-512"),
          "rsa-sha2-256": lambda: RsaSigner(2048, "rsa-sha2-256")}[ca_kind]()
    user = {"ed25519": Ed25519Signer, "ecdsa256": lambda: EcdsaSigner("nistp256"), "rsa": lambda: RsaSigner(2048),
            "sk-ed25519": SkEd25519Signer, "sk-ecdsa": SkEcdsaSigner}[user_kind]()
    sig = cert_sig(ca, user, CertSpec(principals=("alice", "ops"), key_id="alice@laptop", serial=99))
    parsed = sshsig.parse_armored(sig)
    assert parsed.cert is not None and parsed.cert.ca_key.blob == ca.pub_blob
    assert parsed.public_key.blob == user.pub_blob
    v = store(f"alice cert-authority {ca.line()}\n").verify(sig, MSG, namespace=NS, now=NOW)
    assert v.principals == ("alice",)
    assert v.key_type.endswith("-cert-v01@openssh.com")
    assert v.key_fingerprint == sshsig.fingerprint(user.pub_blob)
    assert v.ca_fingerprint == sshsig.fingerprint(ca.pub_blob)
    assert (v.cert_key_id, v.cert_serial) == ("alice@laptop", 99)


def test_patterns_on_ca_lines(ca: Ed25519Signer, user: Ed25519Signer) -> None:
    st = store(f"*@example.com,!mallory@example.com cert-authority {ca.line()}\n")
    sig = cert_sig(ca, user, CertSpec(principals=("alice@example.com", "bob@other.org", "carol@example.com")))
    assert st.verify(sig, MSG, namespace=NS, now=NOW).principals == ("alice@example.com", "carol@example.com")
    mallory = cert_sig(ca, user, CertSpec(principals=("mallory@example.com",)))
    assert untrusted(st, mallory, "do not match").endswith(
        "certificate principals mallory@example.com do not match line 1")


def test_duplicate_certificate_principals_reported_once(ca: Ed25519Signer, user: Ed25519Signer) -> None:
    st = store(f"*@example.com cert-authority {ca.line()}\n")
    sig = cert_sig(ca, user, CertSpec(principals=("a@example.com", "b@example.com", "a@example.com")))
    assert st.verify(sig, MSG, namespace=NS, now=NOW).principals == ("a@example.com", "b@example.com")


def test_principal_must_be_in_certificate_exactly(ca: Ed25519Signer, user: Ed25519Signer) -> None:
    st = store(f"alice cert-authority {ca.line()}\n")
    for principals in (("alice2",), ("Alice",), ("*",), ("alic?",), ("bob",)):
        untrusted(st, cert_sig(ca, user, CertSpec(principals=principals)), "do not match line 1")


def test_empty_principals_rejected(ca: Ed25519Signer, user: Ed25519Signer) -> None:
    # OpenSSH < 10.3 could read an empty list as "any principal" (CVE-2024-7594 class).
    st = store(f"* cert-authority {ca.line()}\n")
    untrusted(st, cert_sig(ca, user, CertSpec(principals=())), "has no principals")


def test_host_certificate_rejected(ca: Ed25519Signer, user: Ed25519Signer) -> None:
    st = store(f"alice cert-authority {ca.line()}\n")
    untrusted(st, cert_sig(ca, user, CertSpec(cert_type=2)), "is a host certificate")


def test_unknown_certificate_type_is_malformed(ca: Ed25519Signer, user: Ed25519Signer) -> None:
    with pytest.raises(BadSignature, match="unknown certificate type 3"):
        sshsig.parse_armored(cert_sig(ca, user, CertSpec(cert_type=3)))


def test_validity_after_inclusive_before_exclusive(ca: Ed25519Signer, user: Ed25519Signer) -> None:
    st = store(f"alice cert-authority {ca.line()}\n")
    sig = cert_sig(ca, user, CertSpec(valid_after=T, valid_before=T + 3600))
    st.verify(sig, MSG, namespace=NS, now=NOW)
    st.verify(sig, MSG, namespace=NS, now=datetime.fromtimestamp(T + 3599, timezone.utc))
    assert untrusted(st, sig, "expired", datetime.fromtimestamp(T + 3600, timezone.utc)).endswith(
        "certificate 'test-cert' expired at 2026-06-01T13:00:00Z")
    assert untrusted(st, sig, "valid only from", datetime.fromtimestamp(T - 1, timezone.utc)).endswith(
        "certificate 'test-cert' valid only from 2026-06-01T12:00:00Z")


def test_line_options_apply_to_certificates(ca: Ed25519Signer, user: Ed25519Signer) -> None:
    sig = cert_sig(ca, user)
    untrusted(store(f'alice cert-authority,namespaces="git" {ca.line()}\n'), sig, "namespace .* not allowed")
    untrusted(store(f'alice cert-authority,valid-before="20260101Z" {ca.line()}\n'), sig, "valid only until")
    assert store(f'alice cert-authority,valid-before="20260101Z" {ca.line()}\n'
                 f'alice cert-authority,valid-after="20260101Z" {ca.line()}\n').verify(
        sig, MSG, namespace=NS, now=NOW).line == 2


def test_ca_listed_without_cert_authority(ca: Ed25519Signer, user: Ed25519Signer) -> None:
    message = untrusted(store(f"alice {ca.line()}\n"), cert_sig(ca, user), "without cert-authority")
    assert message.endswith("line 1 lists the certificate's CA without cert-authority")


def test_plain_key_listed_but_certificate_used(ca: Ed25519Signer, user: Ed25519Signer) -> None:
    message = untrusted(store(f"alice {user.line()}\n"), cert_sig(ca, user), "carries a certificate")
    assert message.endswith("line 1 lists the key itself, but the signature carries a certificate")


def test_signing_key_listed_as_ca(ca: Ed25519Signer, user: Ed25519Signer) -> None:
    plain = armor(make_sig(user, MSG, NS))
    untrusted(store(f"alice cert-authority {user.line()}\n"), plain, "signature carries no certificate")
    # ...and a certificate signed by another CA is not trusted through its own key listed as a CA
    untrusted(store(f"alice cert-authority {user.line()}\n"), cert_sig(ca, user), "not a cert-authority")


def test_unknown_ca(ca: Ed25519Signer, user: Ed25519Signer) -> None:
    other = Ed25519Signer()
    message = untrusted(store(f"alice cert-authority {other.line()}\n"), cert_sig(ca, user), "not a cert-authority")
    assert message == (f"key {sshsig.fingerprint(user.pub_blob)} signed with a certificate from CA "
                       f"{sshsig.fingerprint(ca.pub_blob)}, which is not a cert-authority in allowed_signers")


def test_sha1_ca_signature_rejected(user: Ed25519Signer) -> None:
    # OpenSSH 9.2 and cryptography accept SHA-1 CA signatures (reference A3): intended divergence.
    ca = RsaSigner(2048, "ssh-rsa")
    with pytest.raises(BadSignature, match=r"certificate\) CA signature: ssh-rsa \(SHA-1\) signatures are not"):
        sshsig.parse_armored(cert_sig(ca, user))


def test_tampered_certificate_fails_ca_signature(ca: Ed25519Signer, user: Ed25519Signer) -> None:
    cert = make_cert(ca, user, CertSpec(principals=("alice",)))
    forged = cert.replace(s(s("alice")), s(s("admin")))
    assert forged != cert
    sig = armor(make_sig(user, MSG, NS, key_blob=forged))
    with pytest.raises(BadSignature, match="certificate CA signature does not verify"):
        store(f"admin cert-authority {ca.line()}\n").verify(sig, MSG, namespace=NS, now=NOW)


def test_certificate_as_ca_rejected(ca: Ed25519Signer, user: Ed25519Signer) -> None:
    intermediate = Ed25519Signer()
    inter_cert = make_cert(ca, intermediate)
    intermediate.pub_blob = inter_cert  # a certificate posing as the CA key
    with pytest.raises(BadSignature, match="unsupported certificate authority key type"):
        sshsig.parse_armored(cert_sig(intermediate, user))


def test_certificate_trailing_data_and_bad_options(ca: Ed25519Signer, user: Ed25519Signer) -> None:
    cert = make_cert(ca, user)
    with pytest.raises(BadSignature, match="trailing data"):
        sshsig.parse_armored(armor(make_sig(user, MSG, NS, key_blob=cert + b"\0")))
    bad = make_cert(ca, user, CertSpec(extensions=s("permit-pty") + b"\0\0"))
    with pytest.raises(BadSignature, match="truncated extension data"):
        sshsig.parse_armored(armor(make_sig(user, MSG, NS, key_blob=bad)))


def test_certificate_key_type_mismatch(ca: Ed25519Signer) -> None:
    user = EcdsaSigner("nistp256")
    cert = make_cert(ca, user).replace(s("ecdsa-sha2-nistp256-cert-v01@openssh.com"),
                                       s("ecdsa-sha2-nistp384-cert-v01@openssh.com"))
    with pytest.raises(BadSignature, match="curve 'nistp256' does not match key type ecdsa-sha2-nistp384"):
        sshsig.parse_armored(armor(make_sig(user, MSG, NS, key_blob=cert)))


def test_revoked_ca_and_revoked_certified_key(ca: Ed25519Signer, user: Ed25519Signer) -> None:
    sig = cert_sig(ca, user)
    line = f"alice cert-authority {ca.line()}\n"
    assert untrusted(store(line, revoked=ca.line()), sig, "revoked").startswith("certificate authority ")
    assert untrusted(store(line, revoked=user.line()), sig, "revoked") == (
        f"key {sshsig.fingerprint(user.pub_blob)} is revoked")
    store(line, revoked=Ed25519Signer().line()).verify(sig, MSG, namespace=NS, now=NOW)


def test_sk_certificate_needs_user_presence(ca: Ed25519Signer) -> None:
    sk = SkEd25519Signer(flags=0x00)
    with pytest.raises(BadSignature, match="without user presence"):
        store(f"alice cert-authority {ca.line()}\n").verify(cert_sig(ca, sk), MSG, namespace=NS, now=NOW)


def test_certificate_fields_parsed(ca: Ed25519Signer, user: Ed25519Signer) -> None:
    spec = CertSpec(principals=("a", "b"), valid_after=5, valid_before=10, key_id="kid", serial=2**63,
                    critical=s("force-command") + s(s("true")), extensions=s("permit-pty") + s(b""))
    cert = sshsig.parse_armored(cert_sig(ca, user, spec)).cert
    assert cert is not None
    assert (cert.principals, cert.valid_after, cert.valid_before, cert.key_id, cert.serial) == (
        ("a", "b"), 5, 10, "kid", 2**63)
    assert cert.critical_options == (("force-command", s("true")),)
    assert cert.extensions == (("permit-pty", b""),)
    assert cert.is_user
    parsed = sshsig.parse_public_key_line(pub_line(make_cert(ca, user)))
    assert isinstance(parsed, sshsig.Certificate)


def test_far_future_certificate_times_do_not_crash(ca: Ed25519Signer, user: Ed25519Signer) -> None:
    st = store(f"alice cert-authority {ca.line()}\n")
    untrusted(st, cert_sig(ca, user, CertSpec(valid_after=2**62)), r"valid only from @4611686018427387904")
    untrusted(st, cert_sig(ca, user, CertSpec(valid_after=2**64 - 2)), "valid only from @18446744073709551614")
    st.verify(cert_sig(ca, user, CertSpec(valid_before=2**64 - 1)), MSG, namespace=NS, now=NOW)
