"""Differential test: the in-process verifier against ``ssh-keygen -Y verify`` (OpenSSH >= 8.7) as the oracle.

Real keys, certificates and signatures from ssh-keygen; both sides see the same allowed_signers, revoked list, message,
namespace and time (``-O verify-time=...Z``, ``TZ=UTC``). Times are chosen far from every boundary so that the
oracle's second-granularity and our floor of ``now`` cannot differ. Every case must agree, except the intended
divergences, which are listed and asserted explicitly at the end of this module:

1. SHA-1 (``ssh-rsa``) CA signatures on certificates: OpenSSH accepts, we reject.
2. SSHSIG version 0: OpenSSH accepts (version is not signed), we reject.
3. RSA keys below 2048 bits: OpenSSH accepts >= 1024, we reject the signature and lint the allowed_signers line.
4. Times without ``Z``: OpenSSH reads local time, we reject the file.
5. Security-key signatures without user presence: OpenSSH accepts, we reject.
6. Wildcards or several people on a plain-key line: OpenSSH accepts, we reject the file.
7. Whitespace inside the armor's base64: OpenSSH skips it, we reject.
"""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass
from datetime import datetime
from datetime import timezone
from pathlib import Path

import pytest
from sshsig_testlib import KeyGen
from sshsig_testlib import SkEd25519Signer
from sshsig_testlib import armor
from sshsig_testlib import dearmor
from sshsig_testlib import make_sig

from gatekeeper.trust.allowed_signers import AllowedSigners
from gatekeeper.errors import BadSignature
from gatekeeper.errors import ConfigError
from gatekeeper.errors import UntrustedSignature

NS = "review-approval@gate.example.com"
WHEN = {  # verify times, all far from any boundary used below
    "now": "20260601120000Z",
    "past": "20190601120000Z",
    "gap": "20270601120000Z",
    "future": "20350601120000Z",
}
MESSAGES = [b'{"type":"git-review-approval/v1","n":1}\n', b"second statement", b""]


def _dt(stamp: str) -> datetime:
    return datetime.strptime(stamp, "%Y%m%d%H%M%SZ").replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class Signed:
    name: str
    principal: str  # the identity to ask the oracle about
    text: str
    message: bytes
    namespace: str = NS


@dataclass
class World:
    keygen: KeyGen
    allowed: Path
    revoked: Path
    store: AllowedSigners
    store_revoked: AllowedSigners
    sigs: list[Signed]
    extra: dict[str, Path]


@pytest.fixture(scope="module")
def world(keygen: KeyGen, keys: dict[str, Path]) -> World:
    kg = keygen
    pub = kg.pub
    windowed = kg.key("windowed", "ed25519")
    revoked_key = kg.key("revokeme", "ed25519")
    certs = {
        "cert-ed25519": kg.cert(keys["ca_ed25519"], keys["ed25519"], identity="carol-laptop", principals="carol",
                                validity="20200101Z:20300101Z"),
        "cert-ecdsa": kg.cert(keys["ca_ecdsa"], keys["ecdsa256"], identity="alice@example.com",
                              principals="alice@example.com,ops", validity="20200101Z:20300101Z"),
        "cert-rsa": kg.cert(keys["ca_rsa"], keys["rsa3072"], identity="dave", principals="dave",
                            validity="20200101Z:20300101Z", ca_alg="rsa-sha2-512"),
        "cert-mallory": kg.cert(keys["ca_ecdsa"], keys["ed25519"], identity="mallory",
                                principals="mallory@example.com", validity="20200101Z:20300101Z"),
        "cert-expired": kg.cert(keys["ca_ed25519"], keys["ecdsa384"], identity="old", principals="carol",
                                validity="20200101Z:20210101Z"),
        "cert-future": kg.cert(keys["ca_ed25519"], keys["ecdsa521"], identity="new", principals="carol",
                               validity="20340101Z:20400101Z"),
        "cert-host": kg.cert(keys["ca_ed25519"], keys["ed25519"], identity="host", principals="carol",
                             validity="20200101Z:20300101Z", host=True),
        "cert-noprincipal": kg.cert(keys["ca_ed25519"], keys["ed25519"], identity="any", principals=None,
                                    validity="20200101Z:20300101Z"),
    }
    allowed = kg.dir / "allowed_signers"
    allowed.write_text(
        "# people\n"
        f"p-ed25519 {pub(keys['ed25519'])}\n"
        f'p-ecdsa256 namespaces="{NS},file" {pub(keys["ecdsa256"])}\n'
        f'p-ecdsa384 valid-after="20200101Z",valid-before="20300101Z" {pub(keys["ecdsa384"])}\n'
        f'p-ecdsa521 namespaces="git" {pub(keys["ecdsa521"])}\n'
        f'"p rsa" {pub(keys["rsa3072"])}\n'
        f'p-windowed valid-after="20200101Z",valid-before="20261231Z" {pub(windowed)}\n'
        f'p-windowed valid-after="20300101Z",valid-before="20400101Z" {pub(windowed)}\n'
        f"p-revoked {pub(revoked_key)}\n"
        "# CAs\n"
        f"carol cert-authority {pub(keys['ca_ed25519'])}\n"
        f'*@example.com,!mallory@example.com cert-authority,namespaces="{NS}" {pub(keys["ca_ecdsa"])}\n'
        f'dave cert-authority,valid-before="20350101Z" {pub(keys["ca_rsa"])}\n'
    )
    revoked = kg.dir / "revoked_keys"
    revoked.write_text(f"# gone\n{pub(revoked_key)}\n")

    sigs: list[Signed] = []
    plain = {"ed25519": "p-ed25519", "ecdsa256": "p-ecdsa256", "ecdsa384": "p-ecdsa384", "ecdsa521": "p-ecdsa521",
             "rsa3072": "p rsa"}
    for name, principal in plain.items():
        for i, message in enumerate(MESSAGES):
            text = kg.sign(keys[name], NS, message, hashalg="sha256" if i == 1 else None)
            sigs.append(Signed(name, principal, text, message))
        sigs.append(Signed(f"{name}-git", principal, kg.sign(keys[name], "git", MESSAGES[0]), MESSAGES[0], "git"))
    sigs.append(Signed("windowed", "p-windowed", kg.sign(windowed, NS, MESSAGES[0]), MESSAGES[0]))
    sigs.append(Signed("revoked", "p-revoked", kg.sign(revoked_key, NS, MESSAGES[0]), MESSAGES[0]))
    cert_principal = {"cert-ed25519": "carol", "cert-ecdsa": "alice@example.com", "cert-rsa": "dave",
                      "cert-mallory": "mallory@example.com", "cert-expired": "carol", "cert-future": "carol",
                      "cert-host": "carol", "cert-noprincipal": "carol"}
    for name, key in certs.items():
        for i, message in enumerate(MESSAGES[:2]):
            text = kg.sign(key, NS, message, hashalg="sha256" if i else None, with_cert=True)
            sigs.append(Signed(name, cert_principal[name], text, message))
    # "ops" is in the certificate but does not match the CA line's *@example.com: untrusted on both sides
    sigs.append(Signed("cert-ecdsa-ops", "ops", kg.sign(certs["cert-ecdsa"], NS, MESSAGES[0], with_cert=True),
                       MESSAGES[0]))
    return World(kg, allowed, revoked, AllowedSigners.load(allowed), AllowedSigners.load(allowed, revoked=revoked),
                 sigs, {"windowed": windowed, **certs})


def ours(store: AllowedSigners, sig: Signed, principal: str, when: str, *, namespace: str = NS,
         message: bytes | None = None, text: str | None = None) -> bool:
    try:
        v = store.verify(sig.text if text is None else text, sig.message if message is None else message,
                         namespace=namespace, now=_dt(when))
    except (BadSignature, UntrustedSignature):
        return False
    return principal in v.principals


def oracle(w: World, sig: Signed, principal: str, when: str, *, namespace: str = NS, message: bytes | None = None,
           text: str | None = None, revoked: bool = False) -> bool:
    return w.keygen.verify(w.allowed, principal, namespace, sig.text if text is None else text,
                           sig.message if message is None else message, verify_time=when,
                           revoked=w.revoked if revoked else None)


def test_valid_and_trust_cases_agree(world: World) -> None:
    mismatches, accepted, rejected = [], 0, 0
    for sig in world.sigs:
        # every signature at "now"; the time dimension does not depend on the message, so one message suffices there
        for when in ("now", "past", "gap", "future") if sig.message == MESSAGES[0] else ("now",):
            want = oracle(world, sig, sig.principal, WHEN[when])
            got = ours(world.store, sig, sig.principal, WHEN[when])
            accepted += want
            rejected += not want
            if got != want:
                mismatches.append((sig.name, sig.principal, when, "oracle", want, "ours", got))
    assert mismatches == []
    assert accepted >= 15 and rejected >= 30  # not vacuous: both outcomes are well represented


def test_expected_outcomes_at_now(world: World) -> None:
    # A readable summary of what the agreement above means (at the "now" time).
    good = {s.name for s in world.sigs if ours(world.store, s, s.principal, WHEN["now"])}
    assert good == {"ed25519", "ecdsa256", "ecdsa384", "rsa3072", "windowed", "revoked", "cert-ed25519", "cert-ecdsa",
                    "cert-rsa"}


def test_wrong_principal_agrees(world: World) -> None:
    mismatches = []
    for sig in world.sigs:
        if sig.namespace != NS or sig.message != MESSAGES[0]:
            continue
        for principal in ("mallory", "p-ed25519", "carol", "bob@example.com", "ops"):
            if principal == sig.principal:
                continue
            want = oracle(world, sig, principal, WHEN["now"])
            got = ours(world.store, sig, principal, WHEN["now"])
            if got != want:
                mismatches.append((sig.name, principal, want, got))
    assert mismatches == []


def test_wrong_namespace_and_message_agree(world: World) -> None:
    mismatches = []
    for sig in world.sigs[::3]:
        for namespace in ("git", "file", NS + "x"):
            if namespace == sig.namespace:
                continue
            if oracle(world, sig, sig.principal, WHEN["now"], namespace=namespace) != ours(
                    world.store, sig, sig.principal, WHEN["now"], namespace=namespace):
                mismatches.append((sig.name, namespace))
        changed = sig.message + b"."
        if oracle(world, sig, sig.principal, WHEN["now"], message=changed) is not False or ours(
                world.store, sig, sig.principal, WHEN["now"], message=changed) is not False:
            mismatches.append((sig.name, "changed message"))
    assert mismatches == []


def test_revocation_agrees(world: World) -> None:
    mismatches = []
    for sig in world.sigs:
        if sig.namespace != NS:
            continue
        want = oracle(world, sig, sig.principal, WHEN["now"], revoked=True)
        got = ours(world.store_revoked, sig, sig.principal, WHEN["now"])
        if want != got:
            mismatches.append((sig.name, want, got))
    assert mismatches == []
    revoked = next(s for s in world.sigs if s.name == "revoked")
    assert not ours(world.store_revoked, revoked, "p-revoked", WHEN["now"])
    assert ours(world.store, revoked, "p-revoked", WHEN["now"])


def test_byte_flips_agree(world: World) -> None:
    """Flip bytes at many positions of valid signatures (plain and certificate): both sides must reject."""
    mismatches, checked = [], 0
    targets = [s for s in world.sigs if s.namespace == NS and s.message == MESSAGES[0]
               and ours(world.store, s, s.principal, WHEN["now"])]
    assert len(targets) >= 8
    for sig in targets:
        blob = dearmor(sig.text)
        for k in range(9):
            pos = (k * 7919 + len(sig.name)) % len(blob)
            damaged = bytearray(blob)
            damaged[pos] ^= 0x01 << (k % 8)
            text = armor(bytes(damaged))
            want = oracle(world, sig, sig.principal, WHEN["now"], text=text)
            got = ours(world.store, sig, sig.principal, WHEN["now"], text=text)
            checked += 1
            if want != got:
                mismatches.append((sig.name, pos, want, got))
    assert mismatches == []
    assert checked >= 70


def test_find_principals_for_plain_keys_and_exact_ca_lines(world: World) -> None:
    for sig in world.sigs:
        if sig.name not in ("ed25519", "rsa3072", "cert-ed25519", "cert-rsa") or sig.message != MESSAGES[0]:
            continue
        path = world.keygen.dir / f"fp-{sig.name}.sig"
        path.write_text(sig.text)
        proc = world.keygen.run("-Y", "find-principals", "-f", world.allowed, "-s", path, "-O",
                                f"verify-time={WHEN['now']}")
        found = tuple(proc.stdout.decode().strip().split(","))
        v = world.store.verify(sig.text, sig.message, namespace=NS, now=_dt(WHEN["now"]))
        assert v.principals == found


# --- intended divergences ---------------------------------------------------------------------------------------


def test_divergence_sha1_ca_signature(world: World, keys: dict[str, Path]) -> None:
    kg = world.keygen
    cert = kg.cert(keys["ca_rsa"], keys["ed25519"], identity="sha1", principals="dave",
                   validity="20200101Z:20300101Z", ca_alg="ssh-rsa")
    sig = Signed("sha1-ca", "dave", kg.sign(cert, NS, MESSAGES[0], with_cert=True), MESSAGES[0])
    assert oracle(world, sig, "dave", WHEN["now"]) is True
    with pytest.raises(BadSignature, match=r"ssh-rsa \(SHA-1\) signatures are not accepted"):
        world.store.verify(sig.text, sig.message, namespace=NS, now=_dt(WHEN["now"]))


def test_divergence_version_0(world: World) -> None:
    sig = next(s for s in world.sigs if s.name == "ed25519")
    blob = dearmor(sig.text)
    zero = blob[:6] + struct.pack(">I", 0) + blob[10:]
    assert oracle(world, sig, sig.principal, WHEN["now"], text=armor(zero)) is True
    assert not ours(world.store, sig, sig.principal, WHEN["now"], text=armor(zero))


def test_divergence_rsa_1024(world: World) -> None:
    kg = world.keygen
    weak = kg.key("rsa1024-oracle", "rsa", 1024)
    allowed = kg.dir / "allowed_weak"
    allowed.write_text(f"weak {kg.pub(weak)}\n")
    text = kg.sign(weak, NS, MESSAGES[0])
    assert kg.verify(allowed, "weak", NS, text, MESSAGES[0], verify_time=WHEN["now"]) is True
    with pytest.raises(ConfigError, match="RSA key has 1024 bits"):
        AllowedSigners.load(allowed)
    with pytest.raises(BadSignature, match="RSA key has 1024 bits"):
        world.store.verify(text, MESSAGES[0], namespace=NS, now=_dt(WHEN["now"]))


def test_divergence_time_without_z(world: World, keys: dict[str, Path]) -> None:
    kg = world.keygen
    allowed = kg.dir / "allowed_local_time"
    allowed.write_text(f'p-ed25519 valid-before="20300101" {kg.pub(keys["ed25519"])}\n')
    sig = next(s for s in world.sigs if s.name == "ed25519")
    assert kg.verify(allowed, "p-ed25519", NS, sig.text, sig.message, verify_time=WHEN["now"]) is True
    with pytest.raises(ConfigError, match="has no 'Z'"):
        AllowedSigners.load(allowed)


def test_divergence_sk_without_user_presence(world: World) -> None:
    kg = world.keygen
    sk = SkEd25519Signer(flags=0x00, counter=5)
    allowed = kg.dir / "allowed_sk"
    allowed.write_text(f"p-sk {sk.line()}\n")
    text = armor(make_sig(sk, MESSAGES[0], NS))
    assert kg.verify(allowed, "p-sk", NS, text, MESSAGES[0], verify_time=WHEN["now"]) is True
    store = AllowedSigners.load(allowed)
    with pytest.raises(BadSignature, match="without user presence"):
        store.verify(text, MESSAGES[0], namespace=NS, now=_dt(WHEN["now"]))
    # with user presence both accept: the crafted SK signature is what an authenticator produces
    touched = SkEd25519Signer(flags=0x01)
    allowed.write_text(f"p-sk {touched.line()}\n")
    text = armor(make_sig(touched, MESSAGES[0], NS))
    assert kg.verify(allowed, "p-sk", NS, text, MESSAGES[0], verify_time=WHEN["now"]) is True
    assert AllowedSigners.load(allowed).verify(text, MESSAGES[0], namespace=NS, now=_dt(WHEN["now"])).sk_flags == 1


def test_divergence_patterns_on_plain_key_lines(world: World, keys: dict[str, Path]) -> None:
    kg = world.keygen
    sig = next(s for s in world.sigs if s.name == "ed25519")
    for line in (f"*@example.com {kg.pub(keys['ed25519'])}\n", f"alice,bob {kg.pub(keys['ed25519'])}\n"):
        allowed = kg.dir / "allowed_patterns"
        allowed.write_text(line)
        assert kg.verify(allowed, "bob@example.com" if "*" in line else "bob", NS, sig.text, sig.message,
                         verify_time=WHEN["now"]) is True
        with pytest.raises(ConfigError, match="cert-authority"):
            AllowedSigners.load(allowed)


def test_divergence_whitespace_in_armor(world: World) -> None:
    sig = next(s for s in world.sigs if s.name == "ed25519")
    lines = sig.text.split("\n")
    indented = "\n".join([lines[0]] + ["  " + line for line in lines[1:-2]] + lines[-2:])
    assert oracle(world, sig, sig.principal, WHEN["now"], text=indented) is True
    assert not ours(world.store, sig, sig.principal, WHEN["now"], text=indented)


def test_fingerprints_match_ssh_keygen(world: World, keys: dict[str, Path]) -> None:
    from gatekeeper.trust import sshsig

    for name in ("ed25519", "ecdsa256", "ecdsa384", "ecdsa521", "rsa3072"):
        out = world.keygen.run("-l", "-E", "sha256", "-f", f"{keys[name]}.pub").stdout.decode().split()[1]
        blob = base64.b64decode(world.keygen.pub(keys[name]).split()[1])
        assert sshsig.fingerprint(blob) == out
