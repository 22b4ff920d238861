"""Path and ref matching: gitignore semantics on raw bytes, with case folding and Unicode normalisation."""

from __future__ import annotations

import os
import subprocess
import unicodedata
from pathlib import Path

import pytest
from machine import need_program

from gatekeeper.policy.pathmatch import (
    MatchOptions,
    PathMatcher,
    PathNormaliser,
    RefMatcher,
    check_path_pattern,
    check_ref_pattern,
    normalise_path,
)

STRICT = MatchOptions(case_insensitive=False, unicode_nfc=False)
DEFAULT = MatchOptions()


def matches(pattern: str, path: bytes, options: MatchOptions = DEFAULT) -> bool:
    return PathMatcher([pattern], options).match(path)


# --- gitignore semantics ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("pattern", "path", "expected"), [
    # "*" stops at "/", "**" crosses it
    ("models/*.py", b"models/a.py", True),
    ("models/*.py", b"models/sub/a.py", False),
    ("models/**/*.py", b"models/sub/deep/a.py", True),
    ("models/**/*.py", b"models/a.py", True),
    ("models/**", b"models/a/b/c", True),
    ("a/**/b", b"a/b", True),
    ("a/**/b", b"a/x/y/b", True),
    ("a/**/b", b"a/xb", False),
    ("**/modeling_*.py", b"modeling_llama.py", True),
    ("**/modeling_*.py", b"src/models/modeling_llama.py", True),
    ("**/modeling_*.py", b"src/models/my_modeling_llama.py", False),
    # no slash: any depth; with a slash: anchored at the root
    ("*.bin", b"pytorch_model.bin", True),
    ("*.bin", b"a/b/c/pytorch_model.bin", True),
    ("*.bin", b"a/b/c/pytorch_model.binx", False),
    ("models", b"docs/models/readme.md", True),
    ("/models", b"docs/models/readme.md", False),
    ("/models", b"models/readme.md", True),
    ("configs/train", b"configs/train/a.yaml", True),
    ("configs/train", b"x/configs/train/a.yaml", False),
    ("docs/*.md", b"docs/a.md", True),
    ("docs/*.md", b"x/docs/a.md", False),
    # a directory pattern matches everything beneath the directory
    ("models", b"models/llama/modeling.py", True),
    ("models/", b"models/llama/modeling.py", True),
    ("models/", b"models", False),  # a file named "models" is not the directory
    ("*.bin", b"weights.bin/shard0", True),  # a directory named *.bin: everything in it
    # our extension: "dir/**" also covers the path "dir" itself (a symlink, file or submodule replacing the tree)
    ("models/**", b"models", True),
    ("a/**/b/**", b"a/x/b", True),
    ("**", b"anything/at/all", True),
    ("*", b"x", True),
    ("?.txt", b"a.txt", True),
    ("?.txt", b"ab.txt", False),
    ("?.txt", b"dir/a.txt", True),
    ("[ab].md", b"a.md", True),
    ("[!ab].md", b"a.md", False),
    ("[!ab].md", b"c.md", True),
    ("\\#hash", b"#hash", True),
    ("\\!bang", b"!bang", True),
    ("x\\*y", b"x*y", True),
    ("x\\*y", b"xzy", False),
    ("foo\\ ", b"foo ", True),
    ("*/", b"a/b", True),
    ("*/", b"top-level-file", False),
    ("**/", b"a/b", True),
])
def test_gitignore_semantics(pattern: str, path: bytes, expected: bool) -> None:
    assert matches(pattern, path, STRICT) is expected
    assert matches(pattern, path, DEFAULT) is expected


# --- bypass attempts ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [
    b"Models/llama/modeling.py",
    b"MODELS/x",
    b"mOdElS/x",
    b"models/\xff.bin",  # not UTF-8
    b"models/\xc3\x28",  # invalid UTF-8 sequence
    b"models/a\nb.py",  # newline
    b"models/a\tb.py",
    b'models/"quoted".py',
    b"models/back\\slash",
    b"models/ leading-space",
    b"models/\x1b[31mred",
    b"models/\xe2\x80\xaeevil.py",  # right-to-left override
])
def test_paths_cannot_slip_past_models(path: bytes) -> None:
    assert matches("models/**", path)


@pytest.mark.parametrize("path", [
    b"a\n/modeling_x.py",  # pathspec's "." and "$" would miss these
    b"\n/modeling_x.py",
    b"x\ny/modeling_x.py",
])
def test_newlines_do_not_break_any_depth_patterns(path: bytes) -> None:
    assert matches("**/modeling_*.py", path)


def test_newline_at_the_end_does_not_satisfy_the_end_anchor() -> None:
    assert not matches("**/modeling_*.py", b"a/modeling_x.py\n")  # that name ends in a newline, not ".py"
    assert not matches("models", b"models\n/x")
    assert not matches("/README", b"README\n")


def test_unicode_normalisation_and_case() -> None:
    composed = "modèle".encode()
    decomposed = unicodedata.normalize("NFD", "modèle").encode()
    assert composed != decomposed
    for pattern in ("modèle/**", unicodedata.normalize("NFD", "modèle/**")):
        for path in (composed + b"/x", decomposed + b"/x", "MODÈLE/x".encode(),
                     unicodedata.normalize("NFD", "MODÈLE/x").encode()):
            assert matches(pattern, path), (pattern, path)
            assert not matches(pattern, path, STRICT) or path.startswith(pattern[:3].encode())
    # full case folding: the German sharp s, the Kelvin sign
    assert matches("strasse/**", "STRAẞE/x".encode())
    assert matches("straße/**", b"STRASSE/x")
    assert matches("k/**", "\u212a/x".encode())  # KELVIN SIGN folds to "k"


def test_strict_options_are_strict() -> None:
    assert not matches("models/**", b"Models/x", STRICT)
    assert not matches("modèle/**", unicodedata.normalize("NFD", "modèle/x").encode(), STRICT)
    case_only = MatchOptions(case_insensitive=True, unicode_nfc=False)
    assert matches("models/**", b"Models/x", case_only)


def test_hfs_ignorable_code_points_are_dropped() -> None:
    # On HFS+ "mod\u200cels" is the same directory as "models".
    assert matches("models/**", "mod\u200cels/x".encode())
    assert matches("models/**", "\ufeffmodels/x".encode())
    assert not matches("models/**", "mod\u200cels/x".encode(), STRICT)


def test_non_utf8_bytes_only_match_wildcards() -> None:
    assert matches("*.bin", b"\xff\xfe.bin")
    assert matches("models/?.bin", b"models/\xff.bin")
    assert not matches("models/e.bin", b"models/\xe9.bin")  # Latin-1 e-acute is not "e"
    assert normalise_path(b"Models/\xff", DEFAULT) == "models/\udcff"


def test_normalise_path() -> None:
    assert normalise_path(b"A/B.PY", DEFAULT) == "a/b.py"
    assert normalise_path(b"A/B.PY", STRICT) == "A/B.PY"
    assert normalise_path(unicodedata.normalize("NFD", "É").encode(), DEFAULT) == "é"


def test_normaliser_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    import gatekeeper.policy.pathmatch as pathmatch

    monkeypatch.setattr(pathmatch, "_CACHE_MAX", 4)
    normaliser = PathNormaliser(DEFAULT)
    for i in range(10):
        assert normaliser(b"P%d" % i) == f"p{i}"
    assert len(normaliser._cache) <= 4


def test_first_match_names_the_pattern() -> None:
    matcher = PathMatcher(["docs/**", "*.md", "models/**"], DEFAULT)
    assert matcher.first_match(b"models/README.md") == "*.md"
    assert matcher.first_match(b"docs/x.md") == "docs/**"
    assert matcher.first_match(b"src/x.py") is None
    assert matcher.patterns == ("docs/**", "*.md", "models/**")


def test_many_patterns_of_every_kind_in_one_matcher() -> None:
    matcher = PathMatcher(["/top", "*.bin", "**/modeling_*.py", "a/**/z", "**/cfg/*.yaml", "x?y"], DEFAULT)
    assert matcher.match(b"top/a")
    assert matcher.match(b"q/w.bin")
    assert matcher.match(b"q/modeling_a.py")
    assert not matcher.match(b"q/xmodeling_a.py/q")
    assert matcher.match(b"xmodeling_a.py/modeling_b.py")  # second component qualifies
    assert matcher.match(b"a/b/c/z")
    assert matcher.match(b"p/cfg/t.yaml")
    assert not matcher.match(b"p/xcfg/t.yaml")
    assert matcher.match(b"d/xay")
    assert not matcher.match(b"d/xaay")
    assert not matcher.match(b"README.md")


# --- differential test against git itself -----------------------------------------------------------------------------

DIFF_PATTERNS = [
    "models/**", "**/modeling_*.py", "*.bin", "models", "/models", "models/", "a/**/b", "a/*/c", "?.txt",
    "[ab]*.md", "[!a]x", "docs/*.md", "**/configs/**", "\\#hash", "x\\*y", "*.tar.gz", "**/.gitattributes",
    ".git*", "src/**/test_*.py", "**/a", "a/**", "*/", "**/b/", "[a-c]?/d",
]
DIFF_PATHS = [
    b"models", b"models/x", b"models/a/b.py", b"x/models", b"x/models/y", b"modeling_a.py", b"a/modeling_b.py",
    b"a/b/modeling_c.py/d", b"a/xmodeling_c.py", b"w.bin", b"a/w.bin", b"a/w.binx", b"a/b", b"a/x/b", b"a/x/y/b",
    b"a/xb", b"a/x/c", b"a/x/y/c", b"a.txt", b"ab.txt", b"d/a.txt", b"a.md", b"b/c.md", b"c.md", b"ax", b"bx",
    b"q/bx", b"docs/a.md", b"docs/b/a.md", b"x/docs/a.md", b"configs/a", b"p/configs/q/r", b"#hash", b"x*y", b"xzy",
    b"a.tar.gz", b"d/.gitattributes", b".gitattributes", b".gitmodules", b"src/test_a.py", b"src/x/y/test_a.py",
    b"src/xtest_a.py", b"b/a", b"a", b"a/q", b"top", b"b/x", b"ab/d", b"cz/d", b"dd/d", b"a\nb/modeling_x.py",
    b"weird\tname.bin", b"models/\xff", b"\xff/a.txt", b'q"uote/a.txt',
]


def _git_ignored(repo: Path, pattern: str, paths: list[bytes]) -> set[bytes]:
    (repo / ".gitignore").write_text(pattern + "\n")
    result = subprocess.run(
        ["git", "-c", "core.ignorecase=false", "-c", "core.precomposeunicode=false", "check-ignore", "--no-index",
         "-z", "--stdin"],
        cwd=repo, input=b"\0".join(paths) + b"\0", capture_output=True, check=False,
    )
    assert result.returncode in (0, 1), result.stderr
    return {p for p in result.stdout.split(b"\0") if p}


def test_matches_git_check_ignore(tmp_path: Path) -> None:
    need_program("git", "git")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    mismatches = []
    for pattern in DIFF_PATTERNS:
        ignored = _git_ignored(tmp_path, pattern, DIFF_PATHS)
        matcher = PathMatcher([pattern], STRICT)
        for path in DIFF_PATHS:
            ours = matcher.match(path)
            theirs = path in ignored
            if pattern.endswith("/**") and not theirs and ours:
                # our one deliberate extension: "dir/**" also matches "dir" itself
                theirs = path == pattern[:-3].encode() or (path.endswith(b"/" + pattern[:-3].split("/")[-1].encode())
                                                           and pattern.startswith("**/"))
            if ours != theirs:
                mismatches.append((pattern, path, ours, theirs))
    assert mismatches == []


# --- pattern checks -------------------------------------------------------------------------------------------------

def test_check_path_pattern_accepts_ordinary_patterns() -> None:
    for pattern in ("models/**", "*.bin", "/x", "a/", "**/modeling_*.py", "[a-z]*.py"):
        assert check_path_pattern(pattern) is None, pattern


def test_check_path_pattern_rejects_non_strings() -> None:
    assert check_path_pattern(5) == "a path pattern must be a string, not a number"
    assert check_path_pattern(None) == "a path pattern must be a string, not null"
    assert check_path_pattern(["a"]) == "a path pattern must be a string, not a list"


# --- refs -----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("pattern", "ref", "expected"), [
    ("refs/heads/main", "refs/heads/main", True),
    ("refs/heads/main", "refs/heads/main2", False),
    ("refs/heads/main", "refs/heads/main/x", False),
    ("refs/heads/*", "refs/heads/main", True),
    ("refs/heads/*", "refs/heads/a/b", False),
    ("refs/heads/release/**", "refs/heads/release/1", True),
    ("refs/heads/release/**", "refs/heads/release/a/b", True),
    ("refs/heads/release/**", "refs/heads/release", False),
    ("refs/heads/release/**", "refs/heads/release-1", False),
    ("refs/**/main", "refs/main", True),
    ("refs/**/main", "refs/heads/main", True),
    ("refs/**/main", "refs/remotes/origin/main", True),
    ("refs/tags/v?", "refs/tags/v1", True),
    ("refs/tags/v?", "refs/tags/v10", False),
    ("refs/heads/a.b", "refs/heads/aXb", False),  # "." is literal
    ("refs/heads/a+b", "refs/heads/a+b", True),
])
def test_ref_patterns(pattern: str, ref: str, expected: bool) -> None:
    assert check_ref_pattern(pattern) is None
    assert RefMatcher([pattern]).match(ref) is expected


def test_ref_matcher_case_and_first_match() -> None:
    matcher = RefMatcher(["refs/heads/main", "refs/tags/**"], case_insensitive=True)
    assert matcher.match("refs/heads/Main")
    assert matcher.first_match("refs/TAGS/v1") == "refs/tags/**"
    assert matcher.first_match("refs/heads/x") is None
    assert not RefMatcher([]).match("refs/heads/main")
    assert not RefMatcher(["refs/heads/main"]).match("refs/heads/MAIN")


def test_check_ref_pattern_rejects_non_strings() -> None:
    assert check_ref_pattern(1) == "a ref pattern must be a string, not a number"


def test_os_fsencode_round_trip_of_command_line_paths() -> None:
    # explain takes paths from argv: surrogate-escaped str -> the original bytes
    assert os.fsencode(os.fsdecode(b"models/\xff")) == b"models/\xff"


def test_rewritten_expressions_agree_with_pathspec() -> None:
    """The prefix-scan rewrite (_classify) matches exactly what pathspec's own expression matches."""
    import random
    import re

    from pathspec.patterns.gitignore.spec import GitIgnoreSpecPattern

    rng = random.Random(7)
    pool = ["a", "b", "models", "modeling_x.py", "x.bin", "cfg", "t.yaml", "ab", "q.tar.gz", ".gitattributes", "c",
            "test_1.py", "z"]
    paths = {"/".join(rng.choice(pool) for _ in range(rng.randint(1, 5))) for _ in range(3000)}
    for pattern in DIFF_PATTERNS + ["**/cfg/*.yaml", "*/b/*.bin", "**/*.py", "**/a/**/z", "a/b", "*b", "c*", "**/*"]:
        regex, _ = GitIgnoreSpecPattern.pattern_to_regex(pattern)
        assert regex is not None
        reference = re.compile(regex.replace("$", r"\Z"), re.DOTALL)
        matcher = PathMatcher([pattern], STRICT)
        for path in paths:
            expected = reference.search(path) is not None
            if pattern.endswith("/**") and not expected:
                expected = path == pattern[:-3] or (pattern.startswith("**/") and path.endswith("/" + pattern[3:-3]))
            assert matcher.match(path.encode()) is expected, (pattern, path)


@pytest.mark.parametrize(("patterns", "directory", "expected"), [
    (["models/**"], b"models", True),
    (["models/**"], b"Models", True),
    (["models/**"], b"models/llama", True),
    (["models/**"], b"docs", False),
    (["models/**"], b"mod", False),
    (["/models"], b"models", True),
    (["configs/tr*/x"], b"configs", True),
    (["configs/tr*/x"], b"configs/train", True),
    (["configs/tr*/x"], b"configs/other", False),
    (["a/b/c.py"], b"a", True),
    (["a/b/c.py"], b"a/b", True),
    (["a/b/c.py"], b"a/bb", False),
    (["*.bin"], b"anything", True),  # matches at any depth
    (["**/modeling_*.py"], b"vendor/x", True),
    (["README"], b"docs", True),  # no slash: any depth
    (["docs/*.md", "src/**"], b"src", True),
    (["docs/*.md", "src/**"], b"tests", False),
])
def test_may_match_below(patterns: list[str], directory: bytes, expected: bool) -> None:
    assert PathMatcher(patterns, DEFAULT).may_match_below(directory) is expected
