"""The clean-verdict index changes nothing but time: a re-push of scanned content gets the same findings as the first
scan, over the shared picklescan corpus and the project's own samples, and what the index holds can only cause a
rescan, never a pass."""

from __future__ import annotations

import shutil
from pathlib import Path

from gatekeeper.detectors.cache import CleanIndex, VerdictCache
from gatekeeper.detectors.content import ScanOptions
from gitserver import SHARED, Server
from test_blob_reading import _project_samples

CORPUS = SHARED / "corpora" / "picklescan"


def _findings(server: Server) -> list[tuple[str, str, str]]:
    findings = server.decisions()[-1].get("findings", [])
    return sorted((f["path"], f["verdict"], f["message"]) for f in findings)  # type: ignore[union-attr]


def test_a_re_push_to_main_gets_the_findings_of_the_first_scan(server: Server) -> None:
    clone = server.clone()
    shutil.copytree(CORPUS / "tests", clone.path / "corpus")
    for name, data in _project_samples().items():
        clone.write(f"samples/{name}", data)
    clone.write("src/notes.txt", "plain text, clean\n")
    clone.git("add", "-A")
    clone.commit("samples")
    first = clone.push("HEAD:refs/heads/feature")
    assert not first.ok  # the corpus holds malicious pickles
    feature_findings = _findings(server)
    assert feature_findings and server.decisions()[-1]["scan"]["cache_hits"] == 0  # type: ignore[index]
    shards = list((server.log.parent / "scan-cache" / "clean").iterdir())
    assert shards  # the clean verdicts of the first scan were kept
    # Same blobs, same paths, now on main: the clean ones are lookups, the findings are the same.
    clone.push("HEAD:refs/heads/main")
    main = server.decisions()[-1]
    assert main["scan"]["cache_hits"] > 0  # type: ignore[index]
    assert _findings(server) == feature_findings


def test_index_entries_are_bound_to_options_and_path_and_a_torn_shard_is_ignored(tmp_path: Path) -> None:
    cache = VerdictCache(tmp_path / "c")
    index = CleanIndex(cache, ScanOptions())
    key = index.key("a" * 40, "models/w.bin")
    index.add(key)
    index.flush()
    assert key in CleanIndex(cache, ScanOptions())
    fresh = CleanIndex(cache, ScanOptions())
    assert fresh.key("a" * 40, "models/w.safetensors") not in fresh
    other = CleanIndex(cache, ScanOptions(extra_globals=frozenset({"mypkg.Net"})))
    assert other.key("a" * 40, "models/w.bin") not in other
    assert CleanIndex(cache, ScanOptions(), salt="/srv/lfs").key("a" * 40, "models/w.bin") != key
    shard = tmp_path / "c" / "clean" / f"{key[0]:02x}"
    shard.write_bytes(shard.read_bytes() + b"torn")  # an interrupted append: the shard is not trusted
    assert key not in CleanIndex(cache, ScanOptions())


def test_a_full_shard_is_emptied_not_grown(tmp_path: Path) -> None:
    cache = VerdictCache(tmp_path / "c")
    index = CleanIndex(cache, ScanOptions())
    index.SHARD_MAX_KEYS = 3  # type: ignore[misc]
    keys = [bytes([7]) + bytes([i]) * 31 for i in range(6)]
    for key in keys[:4]:
        index.add(key)
    index.flush()
    fresh = CleanIndex(cache, ScanOptions())
    fresh.SHARD_MAX_KEYS = 3  # type: ignore[misc]
    fresh.add(keys[5])
    fresh.flush()
    assert (tmp_path / "c" / "clean" / "07").stat().st_size == 32
    assert keys[5] in CleanIndex(cache, ScanOptions()) and keys[0] not in CleanIndex(cache, ScanOptions())
