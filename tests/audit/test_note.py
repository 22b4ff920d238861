"""C2SP signed notes, vkeys and checkpoints (reference B2, B6.12), and the signing key files."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from gatekeeper.audit.keys import generate_signing_key, load_signer, load_vkey_file
from gatekeeper.audit.note import Checkpoint, NoteError, Signer, Verifier, open_note, sign_note, split_note
from gatekeeper.errors import AuditError

# golang.org/x/mod/sumdb/note: the package's documented example (skey, vkey, text and the signed note).
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_NOTE = (GO_TEXT + "\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdng"
           "otpRZb6KE6RyyBwJnAM=\n").encode()
PLUS_VKEY = "TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6"  # transparency-dev: '+' in the base64


def test_go_vector_signs_byte_for_byte_and_verifies() -> None:
    signer = Signer.parse(GO_SKEY)
    assert signer.verifier().vkey() == GO_VKEY
    assert sign_note(GO_TEXT, signer) == GO_NOTE  # Ed25519 is deterministic
    opened = open_note(GO_NOTE, [Verifier.parse(GO_VKEY)])
    assert opened.text == GO_TEXT
    assert [v.name for v in opened.verified_by] == ["PeterNeumann"]


def test_tampered_text_fails() -> None:
    with pytest.raises(NoteError, match="does not verify"):
        open_note(GO_NOTE.replace(b"answer", b"Answer"), [Verifier.parse(GO_VKEY)])


def test_vkey_with_plus_in_base64_parses() -> None:
    v = Verifier.parse(PLUS_VKEY)
    assert v.name == "TEST"
    assert v.vkey() == PLUS_VKEY


@pytest.mark.parametrize(
    "vkey",
    [
        "PeterNeumann+c74f20a3",  # missing key
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # key id does not match
        "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # uppercase id
        "PeterNeumann+c74f20a3+Apc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # bad base64 / length
        "PeterNeumann+c74f20a3+AhpczQcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong type byte
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # space in name
    ],
)
def test_malformed_vkeys_are_rejected(vkey: str) -> None:
    with pytest.raises(NoteError):
        Verifier.parse(vkey)


def test_unknown_keys_are_ignored_but_one_known_signature_is_required() -> None:
    other = Signer.generate("other.example/log")
    note = sign_note(GO_TEXT, other, Signer.parse(GO_SKEY))
    opened = open_note(note, [Verifier.parse(GO_VKEY)])
    assert [s.name for s in opened.unknown] == ["other.example/log"]
    with pytest.raises(NoteError, match="no signature from a known key .*other.example/log"):
        open_note(sign_note(GO_TEXT, other), [Verifier.parse(GO_VKEY)])


def test_known_key_with_bad_signature_rejects_the_note_even_if_another_verifies() -> None:
    good = Signer.generate("good.example/log")
    bad_sig = split_note(GO_NOTE)[1][0]
    forged = sign_note(GO_TEXT, good) + (
        f"\u2014 PeterNeumann {base64.b64encode(bad_sig.key_id + bytes(64)).decode()}\n".encode()
    )
    with pytest.raises(NoteError, match="PeterNeumann.* does not verify"):
        open_note(forged, [good.verifier(), Verifier.parse(GO_VKEY)])


def test_text_with_internal_blank_lines() -> None:
    signer = Signer.generate("x.example/y")
    text = "first\n\nthird after a blank line\n"
    assert open_note(sign_note(text, signer), [signer.verifier()]).text == text


@pytest.mark.parametrize(
    ("note", "message"),
    [
        (b"no signatures\n", "no signature block"),
        (b"text\n\n- PeterNeumann AAAA\n", "malformed signature line"),
        (b"text\n\n\xe2\x80\x94 PeterNeumann !!!!\n", "invalid base64"),
        (b"te\x01xt\n\n\xe2\x80\x94 a AAAAAAAA\n", "control characters"),
        (b"text\n\n" + b"\xe2\x80\x94 a AAAAAAAA\n" * 65, "more than 64 signatures"),
    ],
)
def test_note_syntax_errors(note: bytes, message: str) -> None:
    with pytest.raises(NoteError, match=message):
        open_note(note, [Verifier.parse(GO_VKEY)])


def test_checkpoint_body() -> None:
    cp = Checkpoint("example.com/log", 12, bytes(range(32)))
    assert cp.text() == "example.com/log\n12\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
    assert Checkpoint.parse(cp.text()) == cp
    for bad in ("example.com/log\n012\nAAEC\n", "example.com/log\n12\n", "\n1\n" + cp.text().split("\n")[2] + "\n",
                cp.text() + "extension\n", "o\n1\nAAAA\n"):
        with pytest.raises(NoteError):
            Checkpoint.parse(bad)


def test_generate_signing_key_files(tmp_path: Path) -> None:
    key = tmp_path / "audit-signing.key"
    vkey = generate_signing_key(key, name="git.example.com/audit")
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert (tmp_path / "audit-signing.key.pub").read_text() == vkey + "\n"
    assert vkey.startswith("git.example.com/audit+")
    assert load_signer(key).verifier().vkey() == vkey
    assert [v.vkey() for v in load_vkey_file(tmp_path / "audit-signing.key.pub")] == [vkey]
    with pytest.raises(AuditError, match="refusing to overwrite existing audit key file"):
        generate_signing_key(key, name="git.example.com/audit")


def test_generate_signing_key_refuses_symlink_and_bad_name(tmp_path: Path) -> None:
    (tmp_path / "k").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(AuditError, match="refusing to overwrite"):
        generate_signing_key(tmp_path / "k", name="a.example/b")
    assert not (tmp_path / "elsewhere").exists()
    with pytest.raises(AuditError, match="without spaces or"):
        generate_signing_key(tmp_path / "k2", name="bad name")


def test_load_signer_errors(tmp_path: Path) -> None:
    with pytest.raises(AuditError, match="cannot read audit signing key"):
        load_signer(tmp_path / "missing")
    (tmp_path / "garbage").write_text("PRIVATE+KEY+x+00000000+AAAA\n")
    with pytest.raises(AuditError, match="is invalid"):
        load_signer(tmp_path / "garbage")
