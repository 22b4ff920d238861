"""allowed_signers parsing, linting and trust decisions (plain keys; certificates are in test_sshsig_certs.py)."""

from __future__ import annotations

import hashlib
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from pathlib import Path

import pytest
from sshsig_testlib import Ed25519Signer
from sshsig_testlib import RsaSigner
from sshsig_testlib import SkEd25519Signer
from sshsig_testlib import armor
from sshsig_testlib import make_cert
from sshsig_testlib import make_sig
from sshsig_testlib import pub_line

from gatekeeper.trust.allowed_signers import AllowedSigners
from gatekeeper.trust.allowed_signers import lint_allowed_signers
from gatekeeper.trust.allowed_signers import match_pattern
from gatekeeper.trust.allowed_signers import match_pattern_list
from gatekeeper.trust.allowed_signers import parse_allowed_signers
from gatekeeper.errors import BadSignature
from gatekeeper.errors import ConfigError
from gatekeeper.errors import UntrustedSignature

NS = "review-approval@gate.example.com"
MSG = b"statement\n"
NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=timezone.utc)
UTC = timezone.utc


@pytest.fixture(scope="module")
def alice() -> Ed25519Signer:
    return Ed25519Signer()


@pytest.fixture(scope="module")
def bob() -> Ed25519Signer:
    return Ed25519Signer()


@pytest.fixture(scope="module")
def alice_sig(alice: Ed25519Signer) -> str:
    return armor(make_sig(alice, MSG, NS))


def store(text: str, revoked: str | None = None) -> AllowedSigners:
    return AllowedSigners.from_bytes(text.encode(), revoked=None if revoked is None else revoked.encode())


def untrusted(st: AllowedSigners, sig: str, match: str, *, now: datetime = NOW, namespace: str = NS) -> str:
    with pytest.raises(UntrustedSignature, match=match) as exc:
        st.verify(sig, MSG, namespace=namespace, now=now)
    assert exc.value.hint
    return str(exc.value)


# --- pattern matching (OpenSSH match.c) -------------------------------------------------------------------------


@pytest.mark.parametrize("s,pattern,expected", [
    ("alice", "alice", True), ("alice", "alic", False), ("alice", "Alice", False), ("alice", "*", True),
    ("", "*", True), ("", "", True), ("a", "", False), ("alice@x", "*@x", True), ("alice@y", "*@x", False),
    ("alice", "a?ice", True), ("alice", "a?ce", False), ("alice", "a*e", True), ("abcbcd", "a*bcd", True),
    ("abcbce", "a*bcd", False), ("aaa", "a**a", True), ("x.y", "x?y", True), ("x", "x*", True),
])
def test_match_pattern(s: str, pattern: str, expected: bool) -> None:
    assert match_pattern(s, pattern) is expected


@pytest.mark.parametrize("s,patterns,expected", [
    ("alice@x", ("*@x", "!mallory@x"), 1), ("mallory@x", ("*@x", "!mallory@x"), -1),
    ("mallory@x", ("!mallory@x", "*@x"), -1), ("bob@y", ("*@x", "!mallory@x"), 0), ("bob", ("!alice",), 0),
])
def test_match_pattern_list(s: str, patterns: tuple[str, ...], expected: int) -> None:
    assert match_pattern_list(s, patterns) == expected


# --- trust decisions --------------------------------------------------------------------------------------------


def test_exact_principal(alice: Ed25519Signer, bob: Ed25519Signer, alice_sig: str) -> None:
    st = store(f"# approvers\n\nbob {bob.line()}\nalice {alice.line()} alice's laptop\n")
    v = st.verify(alice_sig, MSG, namespace=NS, now=NOW)
    assert v.principals == ("alice",)
    assert v.line == 4
    assert v.key_type == "ssh-ed25519"
    assert v.key_fingerprint.startswith("SHA256:")
    assert (v.sk_flags, v.sk_counter, v.ca_fingerprint, v.namespace, v.hash_alg) == (None, None, None, NS, "sha512")


def test_unknown_key_is_untrusted_with_exact_message(alice: Ed25519Signer, bob: Ed25519Signer,
                                                     alice_sig: str) -> None:
    from gatekeeper.trust.sshsig import fingerprint

    st = store(f"bob {bob.line()}\n")
    message = untrusted(st, alice_sig, "not in allowed_signers")
    assert message == f"key {fingerprint(alice.pub_blob)} is not in allowed_signers"


def test_bad_signature_beats_trust(alice: Ed25519Signer, alice_sig: str) -> None:
    st = store(f"alice {alice.line()}\n")
    with pytest.raises(BadSignature, match="does not verify"):
        st.verify(alice_sig, MSG + b"x", namespace=NS, now=NOW)
    with pytest.raises(BadSignature, match="is not the expected 'git'"):
        st.verify(alice_sig, MSG, namespace="git", now=NOW)
    with pytest.raises(BadSignature, match="must start with"):
        st.verify("hello", MSG, namespace=NS, now=NOW)


def test_quoted_principal_with_spaces(alice: Ed25519Signer, alice_sig: str) -> None:
    st = store(f'"Alice Liddell" {alice.line()}\n')
    assert st.verify(alice_sig, MSG, namespace=NS, now=NOW).principals == ("Alice Liddell",)


def test_leading_whitespace_crlf_and_case_insensitive_options(alice: Ed25519Signer, alice_sig: str) -> None:
    st = store(f'  \talice NAMESPACES="{NS}",Valid-Before="20270101Z" {alice.line()}\r\n')
    assert st.verify(alice_sig, MSG, namespace=NS, now=NOW).line == 1


@pytest.mark.parametrize("namespaces", [NS, "review-approval@*", "git,review-approval@gate.example.com",
                                        "*,!git", "review-approval@gate.example.co?"])
def test_namespaces_option_match(alice: Ed25519Signer, alice_sig: str, namespaces: str) -> None:
    st = store(f'alice namespaces="{namespaces}" {alice.line()}\n')
    st.verify(alice_sig, MSG, namespace=NS, now=NOW)


@pytest.mark.parametrize("namespaces", ["git", "git,file", "review-approval", "*,!review-approval@*",
                                        "review-approval@gate.example.com.evil"])
def test_namespaces_option_mismatch(alice: Ed25519Signer, alice_sig: str, namespaces: str) -> None:
    st = store(f'alice namespaces="{namespaces}" {alice.line()}\n')
    message = untrusted(st, alice_sig, "not allowed")
    assert message.endswith(f"namespace '{NS}' not allowed for this key (line 1)")


def test_namespace_not_allowed_message_for_git(alice: Ed25519Signer) -> None:
    sig = armor(make_sig(alice, MSG, "git"))
    st = store(f'alice namespaces="file" {alice.line()}\n')
    untrusted(st, sig, "namespace 'git' not allowed", namespace="git")


def test_time_boundaries_are_inclusive(alice: Ed25519Signer, alice_sig: str) -> None:
    st = store(f'alice valid-after="20260101Z",valid-before="20260102103000Z" {alice.line()}\n')
    start = datetime(2026, 1, 1, tzinfo=UTC)
    end = datetime(2026, 1, 2, 10, 30, tzinfo=UTC)
    for ok in (start, start + timedelta(microseconds=1), end, end + timedelta(milliseconds=999)):
        st.verify(alice_sig, MSG, namespace=NS, now=ok)
    assert untrusted(st, alice_sig, "valid only from", now=start - timedelta(seconds=1)).endswith(
        "key valid only from 2026-01-01T00:00:00Z (line 1)")
    assert untrusted(st, alice_sig, "valid only until", now=end + timedelta(seconds=1)).endswith(
        "key valid only until 2026-01-02T10:30:00Z (line 1)")


def test_time_formats(alice: Ed25519Signer, alice_sig: str) -> None:
    st = store(f'alice valid-before="202606011200z" {alice.line()}\n')
    st.verify(alice_sig, MSG, namespace=NS, now=NOW)
    untrusted(st, alice_sig, "until 2026-06-01T12:00:00Z", now=NOW + timedelta(seconds=60))


def test_several_windows_per_key(alice: Ed25519Signer, alice_sig: str) -> None:
    st = store(
        f'alice valid-after="20240101Z",valid-before="20241231235959Z" {alice.line()}\n'
        f'alice valid-after="20260101Z",valid-before="20261231235959Z" {alice.line()}\n'
    )
    assert st.verify(alice_sig, MSG, namespace=NS, now=datetime(2024, 5, 1, tzinfo=UTC)).line == 1
    assert st.verify(alice_sig, MSG, namespace=NS, now=NOW).line == 2
    message = untrusted(st, alice_sig, "not trusted here", now=datetime(2025, 6, 1, tzinfo=UTC))
    assert "key valid only until 2024-12-31T23:59:59Z (line 1)" in message
    assert "key valid only from 2026-01-01T00:00:00Z (line 2)" in message


def test_first_fitting_line_wins(alice: Ed25519Signer, alice_sig: str) -> None:
    st = store(f'alice namespaces="git" {alice.line()}\nalice {alice.line()}\nalice {alice.line()}\n')
    assert st.verify(alice_sig, MSG, namespace=NS, now=NOW).line == 2


def test_now_must_be_aware(alice: Ed25519Signer, alice_sig: str) -> None:
    st = store(f"alice {alice.line()}\n")
    with pytest.raises(ValueError, match="timezone-aware"):
        st.verify(alice_sig, MSG, namespace=NS, now=datetime(2026, 1, 1))


def test_now_in_other_timezone(alice: Ed25519Signer, alice_sig: str) -> None:
    st = store(f'alice valid-before="20260601120000Z" {alice.line()}\n')
    plus2 = timezone(timedelta(hours=2))
    st.verify(alice_sig, MSG, namespace=NS, now=datetime(2026, 6, 1, 14, 0, 0, tzinfo=plus2))
    untrusted(st, alice_sig, "valid only until", now=datetime(2026, 6, 1, 14, 0, 1, tzinfo=plus2))


def test_sk_user_presence_enforced_and_reported() -> None:
    touched, untouched = SkEd25519Signer(flags=0x05, counter=3), SkEd25519Signer(flags=0x00)
    st = store(f"carol {touched.line()}\ndave {untouched.line()}\n")
    v = st.verify(armor(make_sig(touched, MSG, NS)), MSG, namespace=NS, now=NOW)
    assert (v.principals, v.sk_flags, v.sk_counter, v.key_type) == (("carol",), 0x05, 3, "sk-ssh-ed25519@openssh.com")
    with pytest.raises(BadSignature, match="without user presence"):
        st.verify(armor(make_sig(untouched, MSG, NS)), MSG, namespace=NS, now=NOW)


# --- revocation -------------------------------------------------------------------------------------------------


def test_revoked_key(alice: Ed25519Signer, bob: Ed25519Signer, alice_sig: str) -> None:
    st = store(f"alice {alice.line()}\nbob {bob.line()}\n", revoked=f"# revoked 2026-05\n{alice.line()} old laptop\n")
    assert untrusted(st, alice_sig, "revoked").endswith("is revoked")
    st.verify(armor(make_sig(bob, MSG, NS)), MSG, namespace=NS, now=NOW)
    assert st.is_revoked(st.entries[0].key)


def test_revoked_certificate_line_revokes_its_key(alice: Ed25519Signer, alice_sig: str) -> None:
    ca = Ed25519Signer()
    cert_line = pub_line(make_cert(ca, alice))
    st = store(f"alice {alice.line()}\n", revoked=cert_line + "\n")
    untrusted(st, alice_sig, "revoked")


def test_bad_revoked_line_fails_closed(alice: Ed25519Signer) -> None:
    with pytest.raises(ConfigError, match=r"revoked keys:2: revoked key: key data is not valid base64"):
        store(f"alice {alice.line()}\n", revoked=f"{alice.line()}\nssh-ed25519 !!!\n")


# --- loading, hashing -------------------------------------------------------------------------------------------


def test_load_and_sha256(alice: Ed25519Signer, tmp_path: Path) -> None:
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f"alice {alice.line()}\n")
    revoked = tmp_path / "revoked"
    revoked.write_text("")
    plain = AllowedSigners.load(allowed)
    assert plain.sha256() == hashlib.sha256(allowed.read_bytes()).hexdigest()
    with_revoked = AllowedSigners.load(allowed, revoked=revoked)
    assert with_revoked.sha256() != plain.sha256()
    revoked.write_text(Ed25519Signer().line() + "\n")
    assert AllowedSigners.load(allowed, revoked=revoked).sha256() not in (plain.sha256(), with_revoked.sha256())


def test_missing_files_fail_closed(alice: Ed25519Signer, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read allowed signers .*nope"):
        AllowedSigners.load(tmp_path / "nope")
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f"alice {alice.line()}\n")
    with pytest.raises(ConfigError, match="cannot read revoked keys"):
        AllowedSigners.load(allowed, revoked=tmp_path / "missing")
    assert lint_allowed_signers(tmp_path / "nope")[0][0] == 0


def test_load_lists_every_problem_with_line(alice: Ed25519Signer, tmp_path: Path) -> None:
    path = tmp_path / "allowed_signers"
    path.write_text(f'alice valid-after="20250101" {alice.line()}\n# fine\nbob foo="x" {alice.line()}\n')
    with pytest.raises(ConfigError) as exc:
        AllowedSigners.load(path)
    assert exc.value.problems == [
        f"{path}:1: valid-after time '20250101' has no 'Z': OpenSSH would read it as local time; append Z",
        f"{path}:3: unknown option 'foo'",
    ]
    assert str(exc.value).startswith("the trust store has 2 problems; no approval is accepted until it is fixed: ")
    assert "Z suffix" in exc.value.hint


# --- lint -------------------------------------------------------------------------------------------------------


def _lint(text: str) -> list[tuple[int, str]]:
    return parse_allowed_signers(text.encode())[1]


@pytest.fixture(scope="module")
def key() -> str:
    return Ed25519Signer().line()


LINT_CASES = [
    ('alice valid-after="20250101" {key}', "valid-after time '20250101' has no 'Z': OpenSSH would read it as local "
                                           "time; append Z"),
    ('alice valid-before="202501011200" {key}', "valid-before time '202501011200' has no 'Z'"),
    ('alice valid-before="20250101UTC" {key}', "valid-before time '20250101UTC': write the UTC suffix as 'Z'"),
    ('alice valid-before="2025-01-01Z" {key}', "valid-before time '2025-01-01Z' is not YYYYMMDD[HHMM[SS]]Z"),
    ('alice valid-before="20251332Z" {key}', "valid-before time '20251332Z' is not a valid date"),
    ('alice valid-after="19700101Z" {key}', "valid-after time '19700101Z' is not after 1970-01-01"),
    ('alice valid-before=20250101Z {key}', 'option valid-before: value must be double-quoted (valid-before="...")'),
    ('alice valid-before {key}', 'option valid-before needs a value: valid-before="..."'),
    ('alice namespaces="a",namespaces="b" {key}', "duplicate option 'namespaces'"),
    ('alice valid-after="20250101Z",Valid-After="20250102Z" {key}', "duplicate option 'valid-after'"),
    ('*@x cert-authority,cert-authority {key}', "duplicate option 'cert-authority'"),
    ('alice valid-after="20250102Z",valid-before="20250101Z" {key}',
     "valid-before 2025-01-01T00:00:00Z is not after valid-after 2025-01-02T00:00:00Z"),
    ('alice valid-after="20250101Z",valid-before="20250101Z" {key}', "is not after valid-after"),
    ('alice no-touch-required {key}', "unknown option 'no-touch-required'"),
    ('alice verify-required,namespaces="x" {key}', "unknown option 'verify-required'"),
    ('alice namespaces="x", {key}', "options end with a comma"),
    ('*@x cert-authority namespaces="x" {key}', "options must be separated by commas, without spaces"),
    ('alice namespaces="x"junk {key}', "unexpected 'junk' after option namespaces"),
    ('alice cert-authority=yes {key}', "unexpected '=yes' after option cert-authority"),
    ('alice namespaces="" {key}', "option namespaces: empty pattern in ''"),
    ('alice namespaces="a,,b" {key}', "option namespaces: empty pattern"),
    ('alice namespaces="unterminated {key}', "options: missing closing quote"),
    ("alice", "missing key"),
    ('alice namespaces="x"', "missing key after the options"),
    ("alice ssh-ed25519 !!!notbase64", "key: key data is not valid base64"),
    ("alice ssh-ed25519 AAAAC3NzaC1lZDI1NTE5", "key: truncated"),
    ("alice ssh-rsa {key_b64}", "key: type 'ssh-rsa' does not match the key data (ssh-ed25519)"),
    ("alice ssh-dss AAAAB3NzaC1kc3MAAAA=", "key: unsupported key type 'ssh-dss'"),
    ("alice,,bob {key}", "empty principal in 'alice,,bob'"),
    ('"alice {key}', "principals: missing closing quote"),
    ('"alice"x {key}', "principals: text directly after the closing quote"),
    ('al"ice {key}', "principals: a quote inside an unquoted principal list"),
    ("!mallory cert-authority {key}", "principals '!mallory' only negate, so they match nobody"),
    ("alice,bob {key}", "a plain key must name exactly one person, not 'alice,bob'"),
    ("*@example.com {key}", "principal '*@example.com': wildcards and negation are allowed only on cert-authority"),
    ("al?ce {key}", "wildcards and negation are allowed only on cert-authority lines"),
    ("alice {cert}", "a certificate cannot be listed; list its CA key with cert-authority"),
    ("alice {rsa1024}", "key: RSA key has 1024 bits; at least 2048 are required"),
    ("alice\x01 {key}", "principal 'alice\\x01' contains control characters"),
    ('" alice" {key}', "principal ' alice' has leading or trailing blanks"),
]


@pytest.mark.parametrize("line,message", LINT_CASES)
def test_lint_rejects(line: str, message: str, key: str, rsa1024: str, cert_line: str) -> None:
    text = "# header\n" + line.format(key=key, key_b64=key.split()[1], rsa1024=rsa1024, cert=cert_line) + "\n"
    problems = _lint(text)
    assert len(problems) == 1, problems
    assert problems[0][0] == 2
    assert message in problems[0][1]
    with pytest.raises(ConfigError):
        AllowedSigners.from_bytes(text.encode())


@pytest.fixture(scope="module")
def rsa1024() -> str:
    return RsaSigner(1024).line()


@pytest.fixture(scope="module")
def cert_line() -> str:
    return pub_line(make_cert(Ed25519Signer(), Ed25519Signer()))


def test_lint_same_key_for_two_people(key: str) -> None:
    assert _lint(f"alice {key}\nbob {key}\n") == [
        (2, f"key {_fp(key)} is also listed for other principals on line 1; one key must belong to one person")]
    assert _lint(f'alice {key}\nalice valid-before="20300101Z" {key}\n') == []
    # the same CA for several principal patterns is normal
    assert _lint(f"*@a.example cert-authority {key}\n*@b.example cert-authority {key}\n") == []


def _fp(line: str) -> str:
    import base64

    from gatekeeper.trust.sshsig import fingerprint

    return fingerprint(base64.b64decode(line.split()[1]))


def test_lint_whole_file_problems(tmp_path: Path) -> None:
    assert _lint("") == [(0, "no signers: the file lists no keys")]
    assert _lint("# only comments\n\n") == [(0, "no signers: the file lists no keys")]
    path = tmp_path / "allowed_signers"
    path.write_bytes(b"alice ssh-ed25519 AAAA\n\xff\xfe\n")
    assert lint_allowed_signers(path) == [(2, "allowed_signers is not valid UTF-8")]
    path.write_bytes(b"alice\0 ssh-ed25519 AAAA\n")
    assert lint_allowed_signers(path) == [(1, "allowed_signers contains a NUL byte")]


def test_lint_accepts_a_good_file(key: str, tmp_path: Path) -> None:
    path = tmp_path / "allowed_signers"
    path.write_text(
        "# gatekeeper approvers\n"
        f'alice namespaces="{NS}",valid-after="20250101Z",valid-before="20270101000000Z" {key} alice@laptop\n'
        f'"Bob Builder" {Ed25519Signer().line()}\n'
        f'*@example.com,!mallory@example.com cert-authority,namespaces="review-approval@*" {Ed25519Signer().line()}\n'
        f'carol namespaces="a\\"b" {Ed25519Signer().line()}\n'
    )
    assert lint_allowed_signers(path) == []
    st = AllowedSigners.load(path)
    entries = st.entries
    assert [e.line for e in entries] == [2, 3, 4, 5]
    assert entries[0].namespaces == (NS,)
    assert entries[0].valid_after == datetime(2025, 1, 1, tzinfo=UTC)
    assert entries[0].valid_before == datetime(2027, 1, 1, tzinfo=UTC)
    assert entries[1].principals == ("Bob Builder",)
    assert entries[2].principals == ("*@example.com", "!mallory@example.com")
    assert entries[2].cert_authority
    assert entries[3].namespaces == ('a"b',)


def test_empty_quoted_principals(key: str) -> None:
    assert _lint(f'"" {key}\n') == [(1, "empty principals")]


def test_file_too_large() -> None:
    assert _lint("#" * (4 * 1024 * 1024 + 1)) == [(0, "allowed_signers is larger than 4194304 bytes")]


def test_lint_with_unreadable_revoked_file(key: str, tmp_path: Path) -> None:
    path = tmp_path / "allowed_signers"
    path.write_text(f"alice {key}\n")
    problems = lint_allowed_signers(path, revoked=tmp_path / "missing")
    assert len(problems) == 1 and problems[0][0] == 0
    assert problems[0][1].startswith("missing: cannot read revoked keys")


def test_match_pattern_against_regex_model() -> None:
    """Random patterns over a tiny alphabet against a regex model of ssh_config PATTERNS (``*`` any, ``?`` one)."""
    import random
    import re

    rng = random.Random(7)
    for _ in range(5000):
        s = "".join(rng.choice("ab.") for _ in range(rng.randint(0, 7)))
        pattern = "".join(rng.choice("ab.*?") for _ in range(rng.randint(0, 6)))
        model = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
        assert match_pattern(s, pattern) is (re.fullmatch(model, s, re.S) is not None), (s, pattern)
