"""Exact prefilters on the per-path checks of a big push: each one answers "nothing here" only where the full check
answers the same, over the shared corpus, the project's own samples, git's own dotfile vectors and fuzzed names."""

from __future__ import annotations

import itertools
import random

from gatekeeper.checkout import (
    git_dotfiles,
    git_dotfiles_unfiltered,
    may_have_ntfs_alias,
    may_have_windows_name_problem,
    ntfs_alias,
    windows_name_problem,
)
from gatekeeper.detectors.plumbing import dotfile_kind, dotfile_kind_of_name
from gitserver import SHARED
from test_blob_reading import _project_samples

CORPORA = SHARED / "corpora"
# Pieces that steer git's dotfile rules: dots, spaces, tildes and digits (8.3 names), colons (NTFS streams), HFS+
# ignorables and other non-ASCII, the dotfile names and their hashed short prefixes, and separators.
PIECES = [".", " ", "~", "1", "4", "9", "0", ":", "$DATA", "\u200c", "\ufeff", "\u00e9", "\\", "/", "git", "GIT",
          "gitattributes", "gitmodules", "gitignore", "mailmap", "lfsconfig", "GITMOD", "gi7eba", "GI7D29", "gi250a",
          "maba30", "GITATT", "x", "a.py", "~1000000", ".Gitmodules", "MAILMA", "LFSCON"]


def _names() -> list[bytes]:
    rng = random.Random(13)
    names = [p.relative_to(CORPORA).as_posix().encode() for p in CORPORA.rglob("*")]
    names += [f"samples/{name}".encode() for name in _project_samples()]
    names += ["".join(rng.choice(PIECES) for _ in range(rng.randint(1, 6))).encode("utf-8", "surrogatepass")
              for _ in range(30_000)]
    names += [bytes(rng.randrange(256) for _ in range(rng.randint(1, 12))) for _ in range(5_000)]  # not UTF-8 too
    return names


def test_git_dotfiles_prefilter_is_exact() -> None:
    names = _names()
    assert sum(bool(git_dotfiles_unfiltered(n)) for n in names) > 100  # the fuzz reaches real matches
    for name in names:
        for component in name.replace(b"\\", b"/").split(b"/"):
            assert git_dotfiles(component) == git_dotfiles_unfiltered(component), component


def test_dotfile_kind_prefilter_is_exact() -> None:
    names = _names()
    found = 0
    for path in names:
        full = dotfile_kind_of_name(path.replace(b"\\", b"/").rsplit(b"/", 1)[-1])
        assert dotfile_kind(path) == full, path
        found += full is not None
    assert found > 100


def test_windows_name_prefilter_is_exact() -> None:
    names = _names()
    names += [b"a/ /b", b"a/. ./b", b"a/..:x/b", b"a/:$DATA", b"a\\ \\b", b"x/...", b" ", b"a/b.", b"MODELI~1.PY"]
    problems = 0
    for path in names:
        problem = windows_name_problem(path)
        assert may_have_windows_name_problem(path) or problem is None, path
        problems += problem is not None
    assert problems > 100


def test_config_name_prefilter_is_exact() -> None:
    from gatekeeper.detectors.remote_code import is_config_name
    from gatekeeper.detectors.scan import _may_be_config

    names = _names() + [b"a/hubconf.py", b"x/pipeline.py", b"custom_generate/generate.py", b"A.JSON", b"c.Yml",
                        b"custom_generate/requirements.txt", b"pipeline.py", b"a/config.json"]
    configs = 0
    for path in names:
        for name in (path, path + b".json", path + b".YAML", path + b"/pipeline.py", path + b".py", path + b".txt"):
            named = is_config_name(name) or name.rsplit(b"/", 1)[-1] == b"pipeline.py"
            assert _may_be_config(name) or not named, name
            configs += named
    assert configs > 1000


def test_ntfs_alias_prefilter_is_exact() -> None:
    import re

    rewrites = re.compile(rb"[\\:]|[. ](?:/|\Z)")  # what makes the alias differ: the test it replaces
    names = _names() + [b"a./b", b"a /b", b"a.", b"a ", b"a:b", b"a\\b", b"models::$INDEX_ALLOCATION/x"]
    aliased = 0
    for path in names:
        assert may_have_ntfs_alias(path) == (rewrites.search(path) is not None), path
        if not may_have_ntfs_alias(path):
            assert ntfs_alias(path) is None
        aliased += ntfs_alias(path) is not None
    assert aliased > 100


def test_config_name_prefilter_is_the_two_step_test() -> None:
    """_may_be_config's single endswith (all case variants) is the earlier endswith-or-lower-case test, exactly."""
    from gatekeeper.detectors import scan

    def two_step(path: bytes) -> bool:
        return path.endswith(scan._MAYBE) or path[-5:].lower().endswith(scan._MAYBE_CI)

    rng = random.Random(5)
    letters = b"jsonJSONyamlYAMLymlYML.xX\xc3\xa9/"
    endings = [b".json", b".yaml", b".yml", b".jsn", b"json", b".yam", b"hubconf.py", b"pipeline.py", b"\xc4\xb0.json"]

    def flip(ending: bytes) -> bytes:
        return bytes(c ^ 0x20 if rng.random() < 0.3 and chr(c).isalpha() else c for c in ending)

    names = _names() + [bytes(rng.choice(letters) for _ in range(rng.randint(0, 8))) + flip(rng.choice(endings))
                        for _ in range(20000)]
    names += [b"a." + bytes(v) for v in itertools.product(b"jJ", b"sS", b"oO", b"nN")]
    assert sum(scan._may_be_config(n) for n in names) > 500
    assert [n for n in names if scan._may_be_config(n) != two_step(n)] == []
