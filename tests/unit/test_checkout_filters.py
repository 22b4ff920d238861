"""push/checkout_filters reads ``.gitattributes`` as a superset of git: every path ``git check-attr`` gives a filter
driver (other than LFS) must be claimed, whatever the patterns, macros, quoting, case and folder nesting."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import pytest

from gatekeeper.push.checkout_filters import FilterMap, filter_lines


def _map(*files: tuple[bytes, bytes]) -> FilterMap:
    return FilterMap(filter_lines(files))


def test_lines_macros_quotes_and_lfs() -> None:
    lines = filter_lines([
        (b".gitattributes", b"[attr]secret filter=crypt -diff\n# *.x filter=no\n*.bin filter=lfs\n"),
        (b"w/.gitattributes", b'"a b.pkl" filter=q\n*.pt secret\n*.npy\tfilter=tab\n*.txt filter=\n'),
    ])
    assert [(ln.folder, ln.pattern, ln.driver) for ln in lines] == [
        (b"w", "a b.pkl", "q"), (b"w", "*.pt", "crypt"), (b"w", "*.npy", "tab")]


def test_scope_case_and_unreadable_patterns() -> None:
    found = _map((b"W/.gitattributes", b"*.pkl filter=crypt\n"))
    assert found.applies(b"w/sub/model.PKL") is not None  # a case-folding checkout merges W/ and w/
    assert found.applies(b"x/model.pkl") is None
    assert found.applies(b"wx/model.pkl") is None
    broken = _map((b".gitattributes", b"[z-a].pkl filter=crypt\n!neg filter=crypt\n"))
    assert broken.applies(b"anything/at/all.txt") is not None  # unreadable: claims every path
    assert not _map((b".gitattributes", b"*.bin filter=lfs\n"))


def test_too_many_driver_lines_claim_every_path_in_linear_time() -> None:
    import time

    text = b"".join(b"dir%d/*.bin filter=crypt\n" % i for i in range(50_000))
    start = time.perf_counter()
    found = _map((b"w/.gitattributes", text))
    assert all(found.applies(b"x/%d.txt" % i) is not None for i in range(50_000))
    assert time.perf_counter() - start < 5


def test_folders_fold_as_macos_does_and_only_lfs_itself_is_exempt() -> None:
    found = _map(("\u00c4/.gitattributes".encode(), b"*.pkl filter=crypt\n"))  # NFC "A-umlaut"
    assert found.applies("\u00e4/x.pkl".encode()) is not None  # lower case
    assert found.applies("a\u0308/sub/x.pkl".encode()) is not None  # NFD, as macOS writes names
    assert _map((b".gitattributes", b"*.bin filter=LFS\n")).applies(b"w.bin") is not None  # filter."LFS" is not lfs


def _git_filtered(root: Path, files: dict[str, str], paths: list[str]) -> set[str]:
    """The paths git itself gives a non-LFS filter driver, in a repository holding ``files``."""
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    proc = subprocess.run(["git", "-c", "core.ignorecase=false", "check-attr", "filter", "-z", "--stdin"], cwd=root,
                          input="\0".join(paths) + "\0", capture_output=True, text=True, check=True)
    fields = proc.stdout.split("\0")
    out = set()
    for path, _, value in zip(fields[0::3], fields[1::3], fields[2::3]):
        if value not in ("unspecified", "unset", "set", "lfs"):
            out.add(path)
    return out


PATTERNS = ["*.pkl", "model.*", "w/*.bin", "/top.pt", "**/deep/*.pt", "w/**", "sub/", "*.PKL", "m?del.pkl",
            "[mn]odel.bin", "a b.pkl", "**/x", "deep", "*"]
ATTRS = ["filter=crypt", "-filter", "!filter", "filter", "filter=lfs", "secret", "filter=other text"]
FOLDERS = ["", "w", "w/deep", "sub"]
PATHS = ["model.pkl", "w/model.pkl", "w/x.bin", "w/deep/y.pt", "w/deep/x", "top.pt", "w/top.pt", "sub/a.pkl",
         "sub/deep/z.pt", "W/model.PKL", "a b.pkl", "w/a b.pkl", "mxdel.pkl", "n/odel.bin", "w/nodel.bin", "deep/q"]


def _case(seed: int) -> dict[str, str]:
    """.gitattributes files (path -> text) made from the pattern and attribute pools."""
    rng = random.Random(seed)
    files: dict[str, str] = {}
    for folder in rng.sample(FOLDERS, rng.randint(1, len(FOLDERS))):
        lines = ["[attr]secret filter=crypt"] if not folder and rng.random() < 0.5 else []
        for _ in range(rng.randint(1, 4)):
            pattern = rng.choice(PATTERNS)
            pattern = f'"{pattern}"' if " " in pattern else pattern
            lines.append(f"{pattern} {rng.choice(ATTRS)}")
        files[f"{folder}/.gitattributes" if folder else ".gitattributes"] = "\n".join(lines) + "\n"
    return files


def _missed(root: Path, seed: int) -> set[str]:
    files = _case(seed)
    by_git = _git_filtered(root, files, PATHS)
    claims = _map(*((path.encode(), text.encode()) for path, text in files.items()))
    return {p for p in by_git if claims.applies(p.encode()) is None}


@pytest.mark.parametrize("seed", range(60))
def test_every_path_git_filters_is_claimed(tmp_path: Path, seed: int) -> None:
    assert not _missed(tmp_path / "r", seed), _case(seed)


def test_the_differential_catches_a_reader_that_ignores_macros(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparison has teeth: about half the cases give some path a driver, and a reader that forgets macros
    misses some of them."""
    from gatekeeper.push import checkout_filters

    drivers = checkout_filters._drivers
    monkeypatch.setattr(checkout_filters, "_drivers", lambda tokens, macros: drivers(tokens, {}))
    assert any(_missed(tmp_path / str(seed), seed) for seed in range(60))
