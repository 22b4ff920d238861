"""The scanner's first-opcode prefilter (``content._FAILS_ON_EMPTY_STACK``: data CPython's unpicklers reject at their
first opcode is not parsed as a pickle) changes no verdict: the same findings with and without it over the shared
corpora, the project's own samples and source files, fuzzed pickles, and text that starts with each skipped opcode."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

from gatekeeper.detectors import content
from gatekeeper.detectors.content import ScanOptions, scan_blob
from gitserver import SHARED
from test_blob_reading import _project_samples

REPO = Path(__file__).resolve().parents[2]
TEXT_STARTS = [b"also see\n", b"epochs: 3\n", b"settings = {}\n", b"total 12\n", b"lr: 0.1\n", b"data:\n  - a\n",
               b"path = 'x'\n", b"output/\n", b"batch: 8\n", b"0.5 0.25\n", b"1\n", b"2 cats\n", b".hidden\n",
               b"(c)\n", b"q\n", b"u=1\n", b"R2\n", b"g1\n", b"h\x00", b"j\x00\x00\x00\x00", b"p0\n"]


def _inputs() -> list[tuple[str, bytes]]:
    out = [(p.relative_to(SHARED).as_posix(), p.read_bytes())
           for p in sorted((SHARED / "corpora").rglob("*")) if p.is_file() and p.stat().st_size < 8 << 20]
    out += [(f"samples/{name}", data) for name, data in _project_samples().items()]
    out += [(p.relative_to(REPO).as_posix(), p.read_bytes())
            for p in sorted([*REPO.glob("gatekeeper/**/*.py"), *REPO.glob("tests/**/*.py"), *REPO.glob("*.md")])]
    sys.path.insert(0, str(REPO / "tests" / "detectors"))
    import test_pickle_fuzz as fuzz

    fuzzed = fuzz._inputs(20261205, 600)
    out += [(f"fuzz/{i}.pkl", data) for i, data in enumerate(fuzzed)]
    rng = random.Random(5)
    for op in sorted(content._FAILS_ON_EMPTY_STACK):
        for i in range(12):  # each skipped opcode ahead of a pickle, a fuzzed stream and text
            tail = rng.choice(fuzzed)
            out.append((f"prefixed/{op:02x}-{i}.{rng.choice(['pkl', 'txt', 'py', 'bin'])}", bytes([op]) + tail))
    out += [(f"text/{i}.{ext}", start + b"more text\n" * 20) for i, start in enumerate(TEXT_STARTS)
            for ext in ("txt", "pkl", "yaml")]
    return out


def _verdicts(data: list[tuple[str, bytes]]) -> list[list[tuple[str, str, str, str]]]:
    options = ScanOptions()
    return [[(f.verdict.value, f.path, f.detector, f.message) for f in scan_blob(path, blob, options)]
            for path, blob in data]


def test_same_verdicts_with_and_without_the_first_opcode_prefilter(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _inputs()
    skipped = sum(1 for _, blob in data if blob[:1] and blob[0] in content._FAILS_ON_EMPTY_STACK)
    assert skipped > 300  # the prefilter really decides for many of them
    with_prefilter = _verdicts(data)
    monkeypatch.setattr(content, "_FAILS_ON_EMPTY_STACK", frozenset())
    without = _verdicts(data)
    assert any(with_prefilter)  # the corpus and the samples hold findings
    mismatches = [(path, a, b) for (path, _), a, b in zip(data, with_prefilter, without) if a != b]
    assert not mismatches, mismatches[:5]
