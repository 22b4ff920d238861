"""Every file of the picklescan corpus reaches its label (``<repo>/../shared/corpora/picklescan/labels.tsv``).

Label -> verdict mapping (corpus README.md): ``malicious`` = a MALICIOUS finding; ``block`` = MALICIOUS or
UNSCANNABLE (refused on every ref); ``clean`` = no finding at all; ``not-malicious`` = no MALICIOUS finding (review is
fine); ``any`` = scan_blob returns a list without raising. No file is special-cased: the verdict is the worst finding
of ``scan_blob`` with default options, on the file read in place.
"""

from __future__ import annotations


import pytest
from machine import corpus

from gatekeeper.detectors.content import scan_blob
from gatekeeper.model import Verdict

CORPUS = corpus("picklescan")
LABELS = CORPUS / "labels.tsv"

_ACCEPT: dict[str, set[str]] = {
    "malicious": {Verdict.MALICIOUS.value},
    "block": {Verdict.MALICIOUS.value, Verdict.UNSCANNABLE.value},
    "clean": {"clean"},
    "not-malicious": {"clean", Verdict.REVIEW.value, Verdict.UNSCANNABLE.value},
    "any": {"clean", Verdict.REVIEW.value, Verdict.UNSCANNABLE.value, Verdict.MALICIOUS.value},
}


def _cases() -> list[tuple[str, str]]:
    rows = LABELS.read_text().splitlines()
    assert rows[0].split("\t") == ["path", "expected"]
    return [tuple(row.split("\t")) for row in rows[1:] if row.strip()]  # type: ignore[misc]


CASES = _cases()


def _worst(findings: list) -> str:
    for verdict in (Verdict.MALICIOUS, Verdict.UNSCANNABLE, Verdict.REVIEW):
        if any(f.verdict is verdict for f in findings):
            return verdict.value
    return "clean"


@pytest.mark.parametrize(("rel", "label"), CASES, ids=[c[0] for c in CASES])
def test_corpus_file_reaches_its_label(rel: str, label: str) -> None:
    data = (CORPUS / rel).read_bytes()
    findings = scan_blob(rel, data)
    assert _worst(findings) in _ACCEPT[label], [(f.verdict.value, f.message, f.evidence) for f in findings]
    for finding in findings:
        assert finding.message and finding.path.startswith(rel)
        if finding.verdict is Verdict.MALICIOUS and finding.detector == "pickle":
            assert any("offset" in line for line in finding.evidence)


def test_corpus_labels_cover_every_file() -> None:
    on_disk = {str(p.relative_to(CORPUS)) for p in (CORPUS / "tests").rglob("*") if p.is_file()}
    assert on_disk == {rel for rel, _ in CASES}


def test_corpus_bit_flips_never_raise() -> None:
    # Malformed input becomes findings, never an exception: flip bytes all over every corpus file.
    import random

    rng = random.Random(1234)
    for rel, _ in CASES:
        data = bytearray((CORPUS / rel).read_bytes())
        if len(data) > 4096:
            data = data[:4096]
        for _ in range(8):
            mutated = bytearray(data)
            for _ in range(rng.randint(1, 4)):
                mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            findings = scan_blob(rel, bytes(mutated))
            assert isinstance(findings, list)
            assert not any("internal error" in f.message for f in findings), findings
