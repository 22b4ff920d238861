"""The short-text lane (``inert.plainly_inert``, ``lfs.may_be_pointer``): the push path skips the scanner for
printable text only when the scanner would find nothing in it and git-lfs would not read it as a pointer. Checked
against scan_blob and parse_pointer over generated blobs built from the fragments formats and pickles start with,
over the project's own files and samples and the corpora; a mutation (a lane that lets "c", the GLOBAL opcode,
through) must be caught, so the check can fail."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from gatekeeper.detectors import inert
from gatekeeper.detectors.content import scan_blob
from gatekeeper.detectors.inert import plainly_inert
from gatekeeper.detectors.lfs import MalformedPointer, may_be_pointer, parse_pointer
from attacks.attacklib import PRINTABLE_PICKLE as PICKLE, printable_tar
from gitserver import SHARED
from test_blob_reading import _project_samples

REPO = Path(__file__).resolve().parents[2]
PATHS = ["src/a.py", "w/weights.pkl", "m/model.bin", "ckpt.pt", "notes.txt", "config.json", "x.npy", "a.h5",
         "m.safetensors", "M.SAFETENSORS.", "export/saved_model.pb", "data.yaml", "noext"]
# What pickles, archives and pointers are made of, in printable and binary forms.
FRAGMENTS = [b"c", b"os\n", b"system\n", b"builtins\neval\n", b"(", b"S'id'\n", b"tR.", b"i", b"\n", b"\r\n", b"{",
             b"}", b".", b"0", b"a", b"d", b"h", b"R", b"x", b"\x9c", b"PK", b"\x05\x06", b"PK\x05\x06" + b"\0" * 18,
             b"version https://git-lfs.github.com/spec/v1\n", b"oid sha256:" + b"a" * 64 + b"\n", b"size 12\n",
             b"git-lfs", b"hawser", b"git-media", b" ", b"\t", b"ustar", b"\x89HDF\r\n\x1a\n", b"GGUF", b"\x93NUMPY",
             b"\x80\x02", b"\x80\x04\x95", b"# comment\n", b"value = 1\n", b"import os\n", b"def f():\n",
             b'{"a": 1}', b"7z", b"Rar!", b"BZh91AY", b"\x1f\x8b", b"]\x00\x00", b"ZF0x", b"x" * 40, b"\x00",
             b"I1\n", b"V\n", b"(lp0\n", b"N.", b"\x8c\x02os", b"}q\x00", b"Q", b"b", b"u", b"e", b"p0\n", b"g0\n"]
FIRSTS = sorted(set(range(0x20, 0x7F)) | {0x09, 0x0A, 0x0D, 0x80, 0x93, 0x89})


def _generated(seed: int, count: int) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        body = b"".join(rng.choice(FRAGMENTS) for _ in range(rng.randrange(0, 40)))
        if rng.random() < 0.3:  # long enough that the autocrlf form or the blob itself crosses 512 bytes
            body = body + b"line\n" * rng.randrange(60, 110) + rng.choice(FRAGMENTS)
        if rng.random() < 0.05:  # a tar magic where a tar header carries it, in the blob or in its CRLF form
            body = body[:255].ljust(255, b"-") + rng.choice([b"", b"\n"]) + b"ustar" + body[255:]
        out.append(bytes([rng.choice(FIRSTS)]) + body)
    return out


def _real_files() -> list[bytes]:
    files = [*REPO.glob("gatekeeper/**/*.py"), *REPO.glob("tests/**/*.py"), *REPO.glob("*.md"),
             *(p for p in (SHARED / "corpora").rglob("*") if p.is_file())]
    return [p.read_bytes() for p in sorted(files) if p.stat().st_size < 1 << 20] + list(_project_samples().values())


def _counterexamples(blobs: list[bytes]) -> list[tuple[str, bytes, list[str]]]:
    bad = []
    for data in blobs:
        for path in PATHS:
            if plainly_inert(data, path):
                findings = scan_blob(path, data)
                if findings:
                    bad.append((path, data, [f.message for f in findings]))
    return bad


def test_lane_never_skips_a_finding() -> None:
    blobs = _generated(20261205, 6000) + _real_files() + [printable_tar(), printable_tar(PICKLE)]
    lane = sum(plainly_inert(d, p) for d in blobs for p in PATHS)
    assert lane > 2000, "the generator must reach the lane often, or the test proves nothing"
    assert _counterexamples(blobs) == []


def test_a_lane_that_lets_the_global_opcode_through_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inert, "_INERT_FIRST", inert._INERT_FIRST | {ord("c"), ord("i")})
    assert _counterexamples(_generated(20261205, 6000)), "the differential check must be able to fail"


@pytest.mark.parametrize("data", [
    b"# file 1\nvalue = 1\n", b'"""Docstring."""\n', b"from x import y\n", b"{\n  \"a\": 1\n}\n", b"- item\n",
    b"<html></html>\n", b"/* c */\n", b"epochs: 3\n",
])
def test_ordinary_source_takes_the_lane(data: bytes) -> None:
    assert plainly_inert(data, "src/x.py") and not may_be_pointer(data)


@pytest.mark.parametrize(("data", "why"), [
    (b"cos\nsystem\n(S'id'\ntR.", "GLOBAL opcode first"),
    (b"import os\n", "INST opcode first"),
    (b"#\x00", "a control byte"),
    (b"#caf\xc3\xa9\n", "not ASCII"),
    (b"#2345678{}", "a safetensors header's brace at offset 8"),
    (b"#23456\n{}", "the brace reaches offset 8 once autocrlf adds a CR"),
    (b"#" + b"a" * 256 + b"ustar" + b"b" * 250, "a tar header (ustar magic at 257)"),
    (printable_tar(), "a tar header (valid checksum, all printable)"),
    (b"#\n" + b"a" * 254 + b"ustar" + b"b" * 300, "a tar header once core.autocrlf has added a CR"),
    (b"#" + b"a" * (1 << 20), "over INERT_MAX"),
    (b" version x", "whitespace first"),
    (b"", "empty"),
])
def test_what_stays_out_of_the_lane(data: bytes, why: str) -> None:
    assert not plainly_inert(data, "src/x.py"), why


@pytest.mark.parametrize("path", ["m.safetensors", "w/SAVED_MODEL.PB", "x/model.safetensors. "])
def test_paths_loaders_read_specially_stay_out(path: str) -> None:
    assert not plainly_inert(b"# text\n", path)


def test_may_be_pointer_never_misses_a_pointer() -> None:
    pointer = b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"4" * 64 + b"\nsize 12\n"
    blobs = _generated(7, 4000) + [pointer, b"\n\t " + pointer, pointer.replace(b"\n", b"\r\n"),
                                   b"\xc2\x85" + pointer, b"x" * 1000 + pointer]
    seen_pointer = 0
    for data in blobs:
        try:
            parsed = parse_pointer(data) is not None
        except MalformedPointer:
            parsed = True
        seen_pointer += parsed
        if parsed:
            assert may_be_pointer(data), data[:80]
    assert seen_pointer >= 4


def test_a_printable_tar_with_a_pickle_inside_is_found_and_kept_out() -> None:
    data = printable_tar(PICKLE)
    assert not data.translate(None, bytes(range(0x20, 0x7F)) + b"\t\n\r"), "all printable"
    assert any(f.verdict.value == "malicious" for f in scan_blob("src/notes.txt", data))
    assert not plainly_inert(data, "src/notes.txt")
