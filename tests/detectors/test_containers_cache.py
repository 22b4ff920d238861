"""The verdict cache: keyed by blob id + options + detector version, atomic, bounded, refuses unsafe directories."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest

from gatekeeper.detectors import content
from gatekeeper.detectors.cache import VerdictCache
from gatekeeper.detectors.cache import scan_cached
from gatekeeper.detectors.content import ScanOptions
from gatekeeper.detectors.content import scan_blob
from gatekeeper.errors import ScanError
from gatekeeper.model import Verdict

EVIL = b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00id\x85R."
BLOB = "a" * 40


def test_roundtrip_rebases_paths(tmp_path: Path) -> None:
    cache = VerdictCache(tmp_path / "cache")
    findings = scan_blob("models/a.bin", EVIL)
    assert cache.get(BLOB, ScanOptions(), "models/a.bin") is None
    cache.put(BLOB, ScanOptions(), "models/a.bin", findings)
    again = cache.get(BLOB, ScanOptions(), "other/b.bin")
    assert again is not None and len(again) == len(findings)
    assert again[0].verdict is Verdict.MALICIOUS and again[0].path == "other/b.bin"
    assert again[0].message == findings[0].message and again[0].blob_id == BLOB
    cache.put("b" * 40, ScanOptions(), "clean.bin", [])
    assert cache.get("b" * 40, ScanOptions(), "clean.bin") == []


def test_member_paths_survive(tmp_path: Path) -> None:
    cache = VerdictCache(tmp_path / "c")
    from gatekeeper.model import Finding

    cache.put(BLOB, ScanOptions(), "m.pt", [Finding(Verdict.REVIEW, "m.pt!archive/data.pkl", "pickle", "x")])
    got = cache.get(BLOB, ScanOptions(), "n.pt")
    assert got is not None and got[0].path == "n.pt!archive/data.pkl"


def test_key_includes_options_and_detector_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = VerdictCache(tmp_path / "c")
    cache.put(BLOB, ScanOptions(), "a", [])
    assert cache.get(BLOB, ScanOptions(extra_globals=frozenset({"x.y"})), "a") is None
    assert cache.get(BLOB, ScanOptions(profile="numpy"), "a") is None
    assert cache.get(BLOB, ScanOptions(max_opcodes=5), "a") is None
    import gatekeeper.detectors.cache as cache_mod

    monkeypatch.setattr(cache_mod, "DETECTOR_VERSION", content.DETECTOR_VERSION + "-next")
    assert cache.get(BLOB, ScanOptions(), "a") is None


def test_corrupt_or_foreign_entry_is_a_miss(tmp_path: Path) -> None:
    cache = VerdictCache(tmp_path / "c")
    cache.put(BLOB, ScanOptions(), "a", scan_blob("a", EVIL))
    (entry,) = [p for p in (tmp_path / "c").rglob("*.json")]
    entry.write_bytes(entry.read_bytes()[:20])  # torn
    assert cache.get(BLOB, ScanOptions(), "a") is None
    entry.write_text('{"format": 1, "blob": "other", "findings": []}')  # an entry for another blob: never a pass
    assert cache.get(BLOB, ScanOptions(), "a") is None


def test_refuses_unsafe_directories(tmp_path: Path) -> None:
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o777)
    os.chmod(loose, 0o777)
    with pytest.raises(ScanError, match="writable by others") as info:
        VerdictCache(loose)
    assert info.value.hint == f"chmod 700 {loose} (a writable cache could whitelist a malicious blob)"
    afile = tmp_path / "file"
    afile.write_text("")
    with pytest.raises(ScanError, match="is unusable: File exists"):
        VerdictCache(afile)


def test_bounded(tmp_path: Path) -> None:
    cache = VerdictCache(tmp_path / "c", max_entries=20)
    for i in range(200):
        cache.put(f"{i:040x}", ScanOptions(), "a", [])
    cache.prune()
    assert len(list((tmp_path / "c").rglob("*.json"))) <= 20


def _writer(args: tuple[str, int]) -> int:
    directory, n = args
    cache = VerdictCache(directory)
    findings = scan_blob("a", EVIL)
    misses = 0
    for _ in range(n):
        cache.put(BLOB, ScanOptions(), "a", findings)
        got = cache.get(BLOB, ScanOptions(), "a")
        if got is None or got[0].verdict is not Verdict.MALICIOUS:
            misses += 1
    return misses


def test_concurrent_writers_never_expose_torn_entries(tmp_path: Path) -> None:
    directory = str(tmp_path / "c")
    VerdictCache(directory)
    with multiprocessing.get_context("fork").Pool(3) as pool:
        assert sum(pool.map(_writer, [(directory, 150)] * 3)) == 0
    assert not list((tmp_path / "c").rglob(".tmp-*"))


def test_scan_cached_skips_the_second_scan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = VerdictCache(tmp_path / "c")
    first = scan_cached(cache, BLOB, "a.pkl", EVIL)
    assert first[0].verdict is Verdict.MALICIOUS and first[0].blob_id == BLOB
    import gatekeeper.detectors.content as content_mod  # scan_cached imports the scanner when it needs it

    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("scanned again")

    monkeypatch.setattr(content_mod, "scan_blob", boom)
    again = scan_cached(cache, BLOB, "b.pkl", b"whatever: the blob id decides")
    assert [(f.verdict, f.path, f.message) for f in again] == [(f.verdict, "b.pkl", f.message) for f in first]
    monkeypatch.undo()
    assert scan_cached(None, BLOB, "c.pkl", EVIL)[0].blob_id == BLOB


def test_detectors_import_nothing_heavy_and_no_unpickler() -> None:
    import subprocess
    import sys

    code = (
        "import sys, gatekeeper.detectors.content, gatekeeper.detectors.cache; "
        "bad = sorted({'pickle', '_pickle', 'requests', 'pygit2', 'yaml', 'numpy', 'torch'} & set(sys.modules)); "
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
