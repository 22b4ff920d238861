"""LFS objects resolved in server stores laid out as Gitea and GitLab do; size/sha checks; missing objects."""

from __future__ import annotations

import hashlib
import mmap
from pathlib import Path

import pytest

from gatekeeper.detectors.lfs import LfsPointer, object_candidates, scan_pointer
from gatekeeper.model import Finding, Verdict

PAYLOAD = b"EVIL pickle bytes"
BENIGN = b"plain tensor bytes"


class Recorder:
    """Stands in for content.scan_blob: flags data that starts with EVIL, records what it was given."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, type]] = []

    def __call__(self, path: str, data: bytes | memoryview | mmap.mmap) -> list[Finding]:
        self.calls.append((path, type(data)))
        if bytes(data[:4]) == b"EVIL":
            return [Finding(Verdict.MALICIOUS, path, "pickle", "global os.system")]
        return []


def store_object(root: Path, data: bytes, layout: str, *, oid: str | None = None) -> LfsPointer:
    oid = oid or hashlib.sha256(data).hexdigest()
    target = root / oid[:2] / oid[2:4] / (oid[4:] if layout in {"gitea", "gitlab"} else oid)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return LfsPointer("https://git-lfs.github.com/spec/v1", oid, len(data))


@pytest.mark.parametrize("layout", ["gitea", "gitlab", "client"])
def test_object_present_is_scanned_mmapped(tmp_path: Path, layout: str) -> None:
    pointer = store_object(tmp_path, PAYLOAD, layout)
    scanner = Recorder()
    findings = scan_pointer("w.bin", pointer, lfs_store=tmp_path, scan_blob=scanner)
    assert [(f.verdict, f.path) for f in findings] == [(Verdict.MALICIOUS, f"w.bin!lfs:{pointer.oid[:12]}")]
    assert scanner.calls == [(f"w.bin!lfs:{pointer.oid[:12]}", mmap.mmap)]
    # benign twin
    benign = store_object(tmp_path, BENIGN, layout)
    assert scan_pointer("w.bin", benign, lfs_store=tmp_path, scan_blob=Recorder()) == []


def test_gitea_layout_is_oid_4_onwards(tmp_path: Path) -> None:
    oid = "ab" + "cd" + "e" * 60
    assert object_candidates(tmp_path, oid)[0] == tmp_path / "ab" / "cd" / ("e" * 60)


def test_missing_object_is_unscannable(tmp_path: Path) -> None:
    pointer = LfsPointer("https://git-lfs.github.com/spec/v1", "1" * 64, 3)
    (finding,) = scan_pointer("w.bin", pointer, lfs_store=tmp_path, scan_blob=Recorder())
    assert (finding.verdict, finding.message) == (Verdict.UNSCANNABLE, "LFS object missing from the store")


def test_no_store_configured_is_unscannable(tmp_path: Path) -> None:
    pointer = LfsPointer("https://git-lfs.github.com/spec/v1", "1" * 64, 3)
    (finding,) = scan_pointer("w.bin", pointer, lfs_store=None, scan_blob=Recorder())
    assert finding.verdict == Verdict.UNSCANNABLE
    assert finding.message == "Git LFS pointer, but no LFS store is configured: the object cannot be scanned"


def test_corrupt_object_sha_mismatch_is_unscannable_and_still_scanned(tmp_path: Path) -> None:
    claimed = hashlib.sha256(BENIGN).hexdigest()
    pointer = store_object(tmp_path, PAYLOAD[: len(BENIGN)].ljust(len(BENIGN), b"!"), "gitea", oid=claimed)
    findings = scan_pointer("w.bin", pointer, lfs_store=tmp_path, scan_blob=Recorder())
    assert [f.verdict for f in findings] == [Verdict.UNSCANNABLE, Verdict.MALICIOUS]
    assert findings[0].message.startswith("LFS object does not match its pointer")
    assert any(e.startswith("sha256 of the stored object is ") for e in findings[0].evidence)


def test_size_mismatch_is_unscannable(tmp_path: Path) -> None:
    pointer = store_object(tmp_path, BENIGN, "gitlab")
    lying = LfsPointer(pointer.version, pointer.oid, pointer.size + 1)
    findings = scan_pointer("w.bin", lying, lfs_store=tmp_path, scan_blob=Recorder())
    assert [f.verdict for f in findings] == [Verdict.UNSCANNABLE]
    assert f"size {len(BENIGN)} in the store, {len(BENIGN) + 1} in the pointer" in findings[0].evidence


def test_symlink_in_store_is_not_followed(tmp_path: Path) -> None:
    oid = hashlib.sha256(BENIGN).hexdigest()
    target = tmp_path / oid[:2] / oid[2:4] / oid[4:]
    target.parent.mkdir(parents=True)
    (tmp_path / "elsewhere").write_bytes(BENIGN)
    target.symlink_to(tmp_path / "elsewhere")
    pointer = LfsPointer("https://git-lfs.github.com/spec/v1", oid, len(BENIGN))
    (finding,) = scan_pointer("w.bin", pointer, lfs_store=tmp_path, scan_blob=Recorder())
    assert (finding.verdict, finding.message) == (Verdict.UNSCANNABLE, "LFS object is not a regular file")


def test_empty_object(tmp_path: Path) -> None:
    pointer = store_object(tmp_path, b"", "gitea")
    assert scan_pointer("e", pointer, lfs_store=tmp_path, scan_blob=Recorder()) == []


def test_same_oid_behind_many_pointers_is_scanned_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gatekeeper.detectors import scan

    pointer = store_object(tmp_path / "store", PAYLOAD, "gitea")
    text = f"version https://git-lfs.github.com/spec/v1\noid sha256:{pointer.oid}\nsize {pointer.size}\n"
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("a.bin", "b.bin", "c.bin"):
        (repo / name).write_text(text)
    recorder = Recorder()
    monkeypatch.setattr(scan._BinaryScanner, "__call__", lambda self, path, data: recorder(path, data))
    findings = scan.scan_files([repo], lfs_store=tmp_path / "store")
    assert len(recorder.calls) == 1
    assert sorted(f.path for f in findings) == [f"{repo}/{n}!lfs:{pointer.oid[:12]}" for n in ("a.bin", "b.bin",
                                                                                                 "c.bin")]


def test_lfs_findings_entry_point_for_the_hook(tmp_path: Path) -> None:
    from gatekeeper.detectors.lfs import lfs_findings

    pointer = store_object(tmp_path, PAYLOAD, "gitlab")
    text = f"version https://git-lfs.github.com/spec/v1\noid sha256:{pointer.oid}\nsize {pointer.size}\n".encode()
    assert lfs_findings("a", b"not a pointer", lfs_store=tmp_path, scan_blob=Recorder()) is None
    found = lfs_findings("a", text, lfs_store=tmp_path, scan_blob=Recorder())
    assert found is not None and [f.verdict for f in found] == [Verdict.MALICIOUS]
    capped = lfs_findings("a", text, lfs_store=tmp_path, scan_blob=Recorder(), max_object_bytes=4)
    assert capped is not None and [(f.verdict, f.message) for f in capped] == [
        (Verdict.UNSCANNABLE, f"LFS object of {len(PAYLOAD)} bytes is above the 4-byte scan cap")]
    bad = lfs_findings("a", text.replace(b"sha256:", b"sha256:X"), lfs_store=tmp_path, scan_blob=Recorder())
    assert bad is not None and bad[0].message.startswith("malformed Git LFS pointer (oid 'X")
