"""Reading blobs with bounded memory changes nothing but memory: the spooled path (loose objects inflated in steps,
packed ones through ``git cat-file``) gives the same bytes, and so the same verdicts, as one in-memory read, over the
shared picklescan corpus and the project's own samples; and the change-set memo gives the same change sets."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gatekeeper.detectors.content import scan_blob
from gatekeeper.push import gitrepo
from gatekeeper.push.gitrepo import Repo
from gitserver import SHARED, run_git

CORPUS = SHARED / "corpora" / "picklescan"


def _project_samples() -> dict[str, bytes]:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "detectors"))
    import test_pickle_bypass as t

    samples = {f"deny_{m}.{n}.pkl": t.p2(t.call(t.glob(m, n))) for m, n in t.DENY_GAPS}
    samples.update({f"dotted_{m}.{n}.pkl": t.p4(t.call(t.sglobal(m, n))) for m, n in t.DOTTED})
    samples["benign.pkl"] = t.BENIGN
    return samples


@pytest.fixture(scope="module")
def sample_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("blobs") / "work"
    work.mkdir()
    run_git("init", "-q", str(work))
    shutil.copytree(CORPUS / "tests", work / "corpus")
    for name, data in _project_samples().items():
        (work / "samples" / name).parent.mkdir(parents=True, exist_ok=True)
        (work / "samples" / name).write_bytes(data)
    run_git("add", "-A", cwd=work)
    run_git("-c", "user.name=t", "-c", "user.email=t@x", "commit", "-q", "-m", "samples", cwd=work)
    return work


def _blobs(repo: Repo) -> list[tuple[bytes, str]]:
    tree = repo.commit_tree(repo.resolve("HEAD"))
    return [(path, oid) for path, mode, oid in repo.iter_tree(tree) if mode in (0o100644, 0o100755)]


def _verdicts(findings: list[object]) -> list[tuple[str, str]]:
    return [(f.verdict.value, f.message) for f in findings]  # type: ignore[attr-defined]


@pytest.mark.parametrize("storage", ["loose", "packed"])
def test_spooled_reads_give_the_same_bytes_and_verdicts(sample_repo: Path, storage: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    if storage == "packed":
        run_git("repack", "-adq", cwd=sample_repo)
    repo = Repo.open(sample_repo)
    blobs = _blobs(repo)
    assert len(blobs) > 150
    monkeypatch.setattr(gitrepo, "SPOOL_MIN_BYTES", 0)  # every blob takes the bounded-memory path
    for path, oid in blobs:
        size = repo.blob_size(oid)
        assert size is not None
        whole = repo.read_blob(oid)
        with repo.scannable_blob(oid, size) as spooled:
            assert bytes(spooled) == whole, path
            name = path.decode()
            assert _verdicts(scan_blob(name, spooled)) == _verdicts(scan_blob(name, whole)), path


def test_a_corrupt_loose_object_is_an_error_not_a_short_read(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    run_git("init", "-q", "--bare", str(tmp_path / "r.git"))
    data = bytes(range(256)) * 4096
    (tmp_path / "blob").write_bytes(data)
    git_dir = str(tmp_path / "r.git")
    oid = run_git("--git-dir", git_dir, "hash-object", "-w", str(tmp_path / "blob")).stdout.decode().strip()
    loose = tmp_path / "r.git" / "objects" / oid[:2] / oid[2:]
    raw = loose.read_bytes()
    repo = Repo.open(tmp_path / "r.git")
    monkeypatch.setattr(gitrepo, "SPOOL_MIN_BYTES", 0)
    with repo.scannable_blob(oid, len(data)) as whole:
        assert bytes(whole) == data
    loose.chmod(0o644)
    loose.write_bytes(raw[: len(raw) // 2])  # a truncated zlib stream
    with pytest.raises(gitrepo.GitAccessError):
        with repo.scannable_blob(oid, len(data)):
            pass


def test_the_change_set_memo_gives_the_same_change_sets(sample_repo: Path) -> None:
    repo = Repo.open(sample_repo)
    tree = repo.commit_tree(repo.resolve("HEAD"))
    first = repo.diff_trees(None, tree)
    first.clear()  # a caller mutating its copy must not change what the next caller gets
    assert repo.diff_trees(None, tree) == repo._diff_trees_uncached(None, tree)
    assert repo.diff_trees(tree, None) == repo._diff_trees_uncached(tree, None)
    assert len(repo.diff_trees(None, tree)) > 150


CAP_MIB = 60


def test_a_delta_compressed_blob_is_rebuilt_only_within_the_memory_cap(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A delta can expand a tiny push into a huge blob, which git rebuilds whole in memory: the reader's address
    space is capped, so past the cap the read fails (the hook refuses) instead of taking the server's memory."""
    import os

    work = tmp_path / "w"
    run_git("init", "-q", str(work))
    base = os.urandom(24 << 20)
    for i, data in enumerate((base, base[:100] + b"changed" + base[107:])):
        (work / "weights.bin").write_bytes(data)
        run_git("add", "weights.bin", cwd=work)
        run_git("-c", "user.name=t", "-c", "user.email=t@x", "commit", "-q", "-m", f"v{i}", cwd=work)
    run_git("-c", "core.bigFileThreshold=1g", "repack", "-adfq", "--window=5", cwd=work)
    repo = Repo.open(work)
    ids = [run_git("rev-parse", f"{v}:weights.bin", cwd=work).stdout.decode().strip() for v in ("HEAD", "HEAD~1")]
    idx = next((work / ".git" / "objects" / "pack").glob("*.idx"))
    listing = run_git("verify-pack", "-v", str(idx), cwd=work).stdout.decode().splitlines()
    deltas = [line.split()[0] for line in listing if line.split()[:1] and line.split()[0] in ids
              and len(line.split()) > 5]
    assert deltas, "one of the two versions is stored as a delta of the other"
    monkeypatch.setattr(gitrepo, "SPOOL_MIN_BYTES", 0)
    size = len(base)
    for vid in ids:  # within the default cap: read, same bytes
        with repo.scannable_blob(vid, size) as data:
            assert bytes(data) == repo.read_blob(vid)
    # A cap that streaming the whole version fits in, but rebuilding the delta (base + result in memory) does not.
    monkeypatch.setattr(gitrepo, "CAT_FILE_MAX_ADDRESS_SPACE", CAP_MIB << 20)
    whole = next(i for i in ids if i not in deltas)
    with repo.scannable_blob(whole, size) as data:
        assert len(data) == size
    with pytest.raises(gitrepo.GitAccessError) as caught:
        with repo.scannable_blob(deltas[0], size):
            pass
    assert "delta-compressed" in caught.value.hint
