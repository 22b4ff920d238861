"""The bytes a checkout writes, proved against git itself (``convert.c``), and a blob that is harmless as stored but a
pickle that resolves ``os.system`` as a ``core.autocrlf=true`` checkout (Git for Windows' default) writes it.

The differential tests commit blobs byte for byte (no conversion on the way in), check them out with git under the
conversion, and compare every file with what ``checkout_forms`` computes."""

from __future__ import annotations

import os
import random
import subprocess
from pathlib import Path

import pytest

from gatekeeper.detectors import checkout_forms
from gatekeeper.detectors.content import scan_blob, scan_forms
from gatekeeper.model import Verdict
from machine import corpus

from oracle import record

# Raw: PROTO 4, a 10-byte string (its length byte is LF), a 27-byte string that hides the payload, POP, padding, STOP:
# a load returns b"AAAAAAAAAA". With LF -> CRLF the first length becomes 13 and swallows the second string's header,
# so the payload runs: STACK_GLOBAL os.system, REDUCE ("id",).
_BODY = b"\x8c\x02os\x8c\x06system\x93\x8c\x02id\x85R"
_HIDDEN = b"0" + _BODY + b"."
_PAD = (b"\x8c\xc8" + b"P" * 200 + b"0") * 4
CRLF_SPLIT = b"\x80\x04C\n" + b"A" * 10 + b"C" + bytes([len(_HIDDEN)]) + _HIDDEN + b"0" + _PAD + b"."


def _git(repo: Path, *args: str, input: bytes | None = None) -> bytes:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@x"}
    return subprocess.run(["git", *args], cwd=repo, input=input, env=env, capture_output=True, check=True).stdout


def _checked_out(tmp: Path, blobs: dict[str, bytes], attributes: bytes | None, *config: str) -> dict[str, bytes]:
    """Commit ``blobs`` exactly as given, then let git check them out under ``config``/``attributes``."""
    repo = tmp / "src"
    _git(tmp, "init", "-q", str(repo))
    index = []
    for name, data in blobs.items():
        oid = _git(repo, "hash-object", "-w", "--no-filters", "--stdin", input=data).decode().strip()
        index.append(f"100644 blob {oid}\t{name}\n")
    if attributes is not None:
        oid = _git(repo, "hash-object", "-w", "--stdin", input=attributes).decode().strip()
        index.append(f"100644 blob {oid}\t.gitattributes\n")
    tree = _git(repo, "mktree", input="".join(index).encode()).decode().strip()
    commit = _git(repo, "commit-tree", tree, "-m", "blobs").decode().strip()
    out = tmp / "out"
    args = [a for c in config for a in ("-c", c)]
    subprocess.run(["git", *args, "clone", "-q", "--no-checkout", str(repo), str(out)], check=True)
    subprocess.run(["git", *args, "-C", str(out), "checkout", "-q", commit, "--", "."], check=True,
                   capture_output=True)
    return {name: (out / name).read_bytes() for name in blobs}


def _samples() -> dict[str, bytes]:
    rng = random.Random(1204)
    alphabet = [b"\n", b"\r", b"\r\n", b"\0", b"\x93", b"\x82", b"\x1a", b"\x7f", b"\x02", b"a", b"Z ", b"\xc3\xa9"]
    out = {"split.pkl": CRLF_SPLIT, "plain.txt": b"hello\nworld\n", "crlf.txt": b"a\r\nb\n\x93\n"}
    for i in range(120):
        parts = [rng.choice(alphabet) * rng.randint(1, 40) for _ in range(rng.randint(1, 12))]
        out[f"r{i}.bin"] = b"".join(parts)
    for i, path in enumerate(sorted((corpus("picklescan") / "tests" / "data").glob("*"))[:60]):
        if path.is_file() and path.stat().st_size < 1 << 20:
            out[f"c{i}.bin"] = path.read_bytes()
    return out


def test_autocrlf_form_is_what_git_writes(tmp_path: Path) -> None:
    """Wherever git's core.autocrlf changes a blob that holds a global-resolving byte, the computed form is git's
    output; where git leaves it alone, there is no form. (Blobs without 0x82-0x84/0x93 get no form by design: the
    module docstring's argument; their CRLF form cannot name a module.)"""
    blobs = _samples()
    written = _checked_out(tmp_path, blobs, None, "core.autocrlf=true")
    changed = 0
    for name, data in blobs.items():
        form = checkout_forms.autocrlf_form(data)
        if written[name] == data:
            assert form is None, name
        elif any(b in data for b in (b"\x82", b"\x83", b"\x84", b"\x93")):
            assert form == written[name], name
            changed += 1
        else:
            assert form is None, name
    assert changed >= 5  # the sample set exercises the conversion


def test_text_stats_match_git_on_samples(tmp_path: Path) -> None:
    """git_text_stats' binary/lone-LF reading decides the conversion: git converts exactly the blobs it calls text
    with a lone LF and no CR."""
    blobs = _samples()
    written = _checked_out(tmp_path, blobs, None, "core.autocrlf=true")
    for name, data in blobs.items():
        s = checkout_forms.git_text_stats(data)
        expect = not (s.binary or s.crlf or s.lone_cr or not s.lone_lf)
        assert (written[name] != data) == expect, name


@pytest.mark.parametrize("attributes, form", [
    (b"* text eol=crlf\n", lambda d, oid: checkout_forms.crlf_form(d)),
    (b"* ident\n", lambda d, oid: checkout_forms.ident_form(d, oid)),
])
def test_attribute_forms_are_what_git_writes(tmp_path: Path, attributes: bytes, form) -> None:  # type: ignore[no-untyped-def]
    blobs = {**_samples(), "id.txt": b"x $Id$ y $Id: old $ z $Id:\n$\n\x93\n"}
    written = _checked_out(tmp_path, blobs, attributes)
    assert sum(written[n] != d for n, d in blobs.items()) >= (1 if b"ident" in attributes else 5)  # git converted
    for name, data in blobs.items():
        oid = subprocess.run(["git", "hash-object", "--no-filters", "--stdin"], input=data, capture_output=True,
                             check=True).stdout.decode().strip()
        got = form(data, oid)
        if got is not None:
            assert got == written[name], name
        elif written[name] != data:
            assert b"\x93" not in data and b"\x82" not in data and b"\x83" not in data and b"\x84" not in data


@pytest.mark.parametrize("encoding", ["ISO-8859-1", "CP1252", "SHIFT-JIS", "UTF-16LE", "UTF-16"])
def test_encoded_forms_include_what_git_writes(tmp_path: Path, encoding: str) -> None:
    blobs = {"a.txt": "caf\u00e9 weights\n".encode(), "b.txt": "\u65e5\u672c weights\n".encode(),
             "c.txt": "\u0080\u0002cos\nsystem\n".encode(), "ascii.txt": b"plain ascii\n",
             "bad.txt": b"\xff\xfe not utf-8\n"}
    written = _checked_out(tmp_path, blobs, f"*.txt working-tree-encoding={encoding}\n".encode())
    assert any(written[n] != blobs[n] for n in ("a.txt", "b.txt", "c.txt"))  # git did re-encode
    for name, data in blobs.items():
        forms = checkout_forms.encoded_forms(data, encoding)
        assert forms is not None
        if written[name] != data:
            assert written[name] in [f for _, f in forms], (name, written[name][:20], forms)


def test_unknown_encoding_is_none() -> None:
    assert checkout_forms.encoded_forms(b"x", "NO-SUCH-CODEC-42") is None


def test_crlf_split_pickle_is_clean_stored_and_os_system_checked_out(tmp_path: Path) -> None:
    """The premise, against CPython's unpickler (recording find_class, nothing imported) and git: stored, the blob
    resolves no global; as git's autocrlf checkout writes it, it resolves os.system. The scanner calls it malicious
    and says which form."""
    assert record(CRLF_SPLIT).globals == []
    written = _checked_out(tmp_path, {"w.pkl": CRLF_SPLIT}, None, "core.autocrlf=true")["w.pkl"]
    assert ("os", "system") in record(written).globals
    findings = scan_blob("w.pkl", CRLF_SPLIT)
    assert findings and findings[0].verdict == Verdict.MALICIOUS
    assert "core.autocrlf" in findings[0].message and "os.system" in findings[0].message


def test_forms_keep_only_malicious_and_review() -> None:
    """A form's structural complaints are not the blob's: ordinary text never becomes unscannable for its forms."""
    assert scan_forms("notes.txt", [("as encoded", b"import os\nprint('hi')\n")]) == []
    bad = scan_forms("w.pkl", [("as encoded", b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03.")])
    assert [f.verdict for f in bad] == [Verdict.MALICIOUS] and bad[0].message.startswith("as encoded: ")


def test_parse_attributes_superset() -> None:
    d = checkout_forms.parse_attributes([b"*.pkl working-tree-encoding=latin1\n", b"[attr]win text eol=crlf\n",
                                         b"*.c ident\n# comment\n"])
    assert d.encodings == frozenset({"latin1"}) and d.crlf and d.ident
    assert not checkout_forms.parse_attributes([b"*.bin filter=lfs diff=lfs merge=lfs -text\n* text=auto eol=lf\n"])


def test_big_blobs_judge_the_converted_prefix_and_refuse_reencoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the cap a form is not copied whole: the line-end form of the first cap bytes is judged (a pickle runs
    from byte 0), and a re-encoding, which cannot be judged in part, is unscannable."""
    from gatekeeper.detectors.checkout_forms import Directives
    from gatekeeper.detectors.content import ScanOptions
    from gatekeeper.push.content_gate import _form_findings

    monkeypatch.setattr(checkout_forms, "AUTOCRLF_CAP", 4096)
    big = CRLF_SPLIT + b"\0" * 10_000
    found = _form_findings(big, "0" * 40, "w.pkl", Directives(crlf=True), ScanOptions())
    assert found and found[0].verdict == Verdict.MALICIOUS and "its first" in found[0].message
    found = _form_findings(big, "0" * 40, "w.pkl", Directives(encodings=frozenset({"latin1"})), ScanOptions())
    assert [f.verdict for f in found] == [Verdict.UNSCANNABLE] and "too big" in found[0].message
    assert _form_findings(b"x" * 10_000, "0" * 40, "a.txt", Directives(crlf=True, ident=True), ScanOptions()) == []
