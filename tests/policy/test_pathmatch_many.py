"""The whole-change-set matcher (``RuleIndex.which_many``, ``Policy.rules_for_paths``) against the per-path one.

A differential test: the real policy patterns (policy/example.yaml, this suite's fixtures) and hostile ones, over
many generated paths that mix the patterns' own pieces with case variants, decomposed and HFS-ignorable Unicode,
NTFS aliases, wildcard characters, newlines and bytes that are not UTF-8. Any path on which the two disagree fails.
``test_the_generator_catches_a_wrong_matcher`` shows it can: a matcher that skips the per-path tail check is caught.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from gatekeeper.policy import pathmatch
from gatekeeper.policy.config import load_policy
from gatekeeper.policy.pathmatch import MatchOptions, PathMatcher, PathNormaliser, RuleIndex, check_path_pattern
from gatekeeper.policy.yamlsafe import load_yaml

ROOT = Path(__file__).resolve().parents[2]

OPTIONS = [MatchOptions(), MatchOptions(case_insensitive=False), MatchOptions(unicode_nfc=False),
           MatchOptions(case_insensitive=False, unicode_nfc=False)]

# Shapes pathspec translates differently: anchored, at any depth, directory-only, "**" in every position, brackets
# (a negated one matches "/"), escapes, "?" and patterns that match everything; plus the ones the other tests use.
HOSTILE = [
    "*", "**", "**/", "*/", "?", "?.txt", "/models", "models", "models/", "/models/", "models/**", "models/*.py",
    "models/**/*.py", "a/**/b", "a/**/b/**", "**/x/**", "**/x", "x/**/", "x*/**", "*x/**", "[!ab].md", "[ab].md",
    "[!a]x", "[a-c]*/**", "\\!bang", "\\#hash", "foo\\ ", "x\\*y", "docs/*.md", "configs/train", "src/**/*.py",
    "*.bin", "**/modeling_*.py", "Mod*ls/**", "modèle/**", "**/confıgs/**", "MODELS/**", "a/*/b", "a/?/b/",
    "**/a/*", "*/b/**", "**/*.py/**", "a*b*c", "**/**/x", "x/**/**", "d0?/**", "*/sub1", "**/sub1/*.py",
    "/.github/**", ".gitattributes", "**/config.json",
]


def _fixture_patterns() -> list[str]:
    """The path patterns of policy/example.yaml and of the policies this suite writes."""
    found: list[str] = []
    document = load_yaml((ROOT / "policy" / "example.yaml").read_bytes())
    assert isinstance(document, dict)
    for rule in document["rules"]:
        found.extend(rule["paths"])
    for source in (ROOT / "tests").rglob("*.py"):
        for line in re.findall(r"paths: \[([^\]\n]*)\]", source.read_text(errors="replace")):
            found.extend(re.findall(r'"([^"]+)"', line))
    return found


PATTERNS = list(dict.fromkeys(p for p in _fixture_patterns() + HOSTILE if check_path_pattern(p) is None))

# Pieces paths are made of: the literal parts of every pattern, their case and Unicode variants, and names that
# a checkout on some OS reads differently.
_EXTRA_PIECES = [
    "models", "Models", "MODELS", "mode\u0300le", "mod\u00e8le", "MOD\u00c8LE", "mod\u200cels", "mod\ufeffels",
    "conf\u0131gs", "CONF\u0130GS", "configs", "stra\u00dfe", "STRASSE", "modeling_x.py", "MODELING_X.PY",
    "modeling_.py", "modeling_a.py.bak", "x.bin", "X.BIN", ".bin", "a", "b", "x", "y", "sub1", "d01", "d0x",
    "models.", "models ", "models::$INDEX_ALLOCATION", "models\\x", "a\\b", "evil\nx", "tab\tx", "[ab]", "*", "?",
    "!bang", "#hash", "foo ", "x*y", "a.md", "c.md", "ab.md", "config.json", ".gitattributes", ".GITATTRIBUTES",
    ".github", "workflows", "src", "llama_train", "train", "docs", "README.md", "\u00e9", "e\u0301",
]
_RAW_PIECES = [b"\xff", b"mod\xe8le", b"models\xc3", b"\xc3\xa8"]


def _pieces() -> list[str]:
    pieces = set(_EXTRA_PIECES)
    for pattern in PATTERNS:
        for component in pattern.replace("\\", "").split("/"):
            for piece in re.split(r"[*?\[\]!]+", component):
                if piece and piece not in (".", ".."):
                    pieces.update((piece, piece.upper(), piece.title()))
            if component:
                literal = component.replace("**", "zz").replace("*", "q").replace("?", "w").replace("[", "").replace(
                    "]", "").replace("!", "")
                if literal not in ("", ".", ".."):
                    pieces.add(literal)
    return sorted(pieces)


def generated_paths(seed: int, count: int) -> list[bytes]:
    rng = random.Random(seed)
    pieces = _pieces()
    out: set[bytes] = set()
    while len(out) < count:
        depth = rng.choice((1, 1, 2, 2, 3, 3, 4, 5, 7))
        parts: list[bytes] = []
        for _ in range(depth):
            roll = rng.random()
            if roll < 0.04:
                parts.append(rng.choice(_RAW_PIECES))
                continue
            piece = rng.choice(pieces)
            if roll < 0.25:  # glue two pieces, or a piece and a suffix, into one name
                piece += rng.choice(("", "_", ".", "-")) + rng.choice(pieces)
            elif roll < 0.32:
                piece += rng.choice((".py", ".json", ".bin", ".md", ".", " ", ":x", "~1"))
            parts.append(piece.encode("utf-8", "surrogateescape"))
        out.add(b"/".join(parts))
    return sorted(out)


def pattern_instances(seed: int) -> list[bytes]:
    """Paths made from each pattern itself (wildcards filled in), alone, in a folder and with something below."""
    rng = random.Random(seed)
    pieces = _pieces()
    out: set[bytes] = set()
    for pattern in PATTERNS:
        for _ in range(6):
            text = re.sub(r"\[!?([^\]]*)\]", lambda m: rng.choice(m.group(1) or "c") if m.group(1) else "c", pattern)
            text = text.replace("\\", "")
            text = re.sub(r"\*\*", lambda _: rng.choice(("", "q", "q/r", rng.choice(pieces))), text)
            text = re.sub(r"\*", lambda _: rng.choice(("", "z", rng.choice(pieces))), text)
            text = text.replace("?", rng.choice("wé/"))
            text = "/".join(c for c in text.split("/") if c)
            if not text:
                continue
            if rng.random() < 0.5:
                text = rng.choice(pieces) + "/" + text
            if rng.random() < 0.5:
                text += "/" + rng.choice(pieces)
            if rng.random() < 0.3:
                text = text.upper() if rng.random() < 0.5 else text.title()
            out.add(text.encode("utf-8", "surrogateescape"))
    return sorted(out)


PATHS = generated_paths(13, 6000) + pattern_instances(13)


def _index(patterns: list[list[str]], options: MatchOptions) -> RuleIndex:
    normaliser = PathNormaliser(options)
    return RuleIndex([PathMatcher(group, normaliser) for group in patterns], normaliser)


# Patterns matched path by path (not of the shape _FolderIndex decides per folder): with one of them in the index,
# every path takes the slow route, so most tests leave them out.
SLOW = ("*", "**", "**/", "*/")
FAST = [p for p in PATTERNS if p not in SLOW]


def _rule_groups(seed: int, with_slow: bool) -> list[list[str]]:
    """Rules of one to four patterns each, every pattern in some rule (some in two)."""
    rng = random.Random(seed)
    shuffled = PATTERNS[:] if with_slow else FAST[:]
    rng.shuffle(shuffled)
    groups: list[list[str]] = []
    while shuffled:
        size = rng.randint(1, 4)
        groups.append(shuffled[:size])
        shuffled = shuffled[size:]
    groups.extend([[rng.choice(FAST)] for _ in range(5)])
    return groups


def _disagreements(index: RuleIndex, reference: RuleIndex, paths: list[bytes]) -> list[tuple[bytes, object, object]]:
    fast = index.which_many(paths)
    assert len(fast) == len(paths)
    return [(path, got, tuple(reference.which(path))) for path, got in zip(paths, fast)
            if got != tuple(reference.which(path))]


def test_the_patterns_and_paths_are_many_and_varied() -> None:
    assert len(PATTERNS) > 60
    assert any(b"\\" in p for p in PATHS) and any(not p.isascii() for p in PATHS)
    assert sum(b"/" not in p for p in PATHS) > 100


@pytest.mark.parametrize("options", OPTIONS, ids=repr)
@pytest.mark.parametrize(("seed", "with_slow"), [(0, True), (1, False), (2, False), (3, False)])
def test_which_many_is_which(options: MatchOptions, seed: int, with_slow: bool) -> None:
    groups = _rule_groups(seed, with_slow)
    paths = PATHS + generated_paths(100 + seed, 1500) + pattern_instances(100 + seed)
    assert _disagreements(_index(groups, options), _index(groups, options), paths) == []


@pytest.mark.parametrize("options", OPTIONS, ids=repr)
def test_each_pattern_alone(options: MatchOptions) -> None:
    """One rule per pattern: a disagreement names the pattern."""
    for patterns in (FAST, PATTERNS):
        groups = [[pattern] for pattern in patterns]
        bad = _disagreements(_index(groups, options), _index(groups, options), PATHS)
        assert [(patterns[i], path) for path, got, want in bad for i in set(got) ^ set(want)] == []  # type: ignore


def test_paths_matched_and_not() -> None:
    """The generated paths hit every kind of answer: no rule, a rule by folder, a rule by the path's own tail."""
    patterns = FAST
    found = _index([[pattern] for pattern in patterns], MatchOptions()).which_many(PATHS)
    assert sum(not f for f in found) > len(PATHS) // 10 and sum(bool(f) for f in found) > len(PATHS) // 4
    hits = {patterns[i] for f in found for i in f}
    assert {"models/**", "**/modeling_*.py", "*.bin", "[!ab].md", "a/**/b", "x\\*y"} <= hits


def test_the_generator_catches_a_wrong_matcher(monkeypatch: pytest.MonkeyPatch) -> None:
    """Drop the per-path test of ``B\\Z`` (only the folder decides): the differential test must see it."""
    original: Callable[[str], tuple[str, bool] | None] = pathmatch._split_end.__wrapped__  # type: ignore[attr-defined]

    def folder_only(regex: str) -> tuple[str, bool] | None:
        found = original(regex)
        return None if found is None else (found[0], False)

    groups = [[pattern] for pattern in FAST]
    monkeypatch.setattr(pathmatch, "_split_end", folder_only)
    bad = _disagreements(_index(groups, MatchOptions()), _index(groups, MatchOptions()), PATHS)
    assert len(bad) > 50


def test_fast_path_covers_the_real_patterns() -> None:
    """The policy's own patterns all take the per-folder route (only "**"-like ones are matched path by path)."""
    slow = [p for p in PATTERNS
            if any(pathmatch._split_end(regex) is None
                   for _, regex in pathmatch._pattern_parts(p, MatchOptions()))]
    assert set(slow) <= set(SLOW), slow


@pytest.mark.parametrize("regex", ["a|b/", r"a|b(?:/|\Z)", r"(?=a)b/", r"\bx/", r"a\Z/", "x$/", "^x/", r"(a)\1/"])
def test_split_end_refuses_other_shapes(regex: str) -> None:
    assert pathmatch._split_end(regex) is None


def test_split_end_accepts_pathspec_shapes() -> None:
    assert pathmatch._split_end(r"models(?:/|\Z)") == ("models", True)
    assert pathmatch._split_end("foo/") == ("foo", False)
    assert pathmatch._split_end(r"src(?:/.+)?/[^/]*\.py(?:/|\Z)") == (r"src(?:/.+)?/[^/]*\.py", True)


def test_nul_and_non_ascii_and_empty() -> None:
    index = _index([["models/**"], ["*.bin"]], MatchOptions())
    assert index.which_many([]) == []
    paths = [b"models/a\x00b", b"Models/x", b"mod\xc3\xa8le/x.bin", b"\xff/x.BIN", b"models"]
    assert index.which_many(paths) == [tuple(index.which(p)) for p in paths] == [(0,), (0,), (1,), (1,), (0,)]


def test_policy_rules_for_paths(tmp_path: Path) -> None:
    """Policy.rules_for_paths is rules_for on each path, NTFS aliases included, on the example policy."""
    text = (ROOT / "policy" / "example.yaml").read_text()
    (tmp_path / "log").mkdir()
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(text.replace("/var/log/gatekeeper/", f"{tmp_path}/log/"))
    (tmp_path / "allowed_signers").write_text("".join(
        f"{name} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample{name}\n"
        for name in ("alice", "bob", "carol", "dave", "erin")))
    policy = load_policy(policy_file)
    assert len(policy.rules) == 5
    paths = PATHS + [b"models./x", b"models\\x.py", b"a/modeling_x.py::$DATA", b"x.bin.", b"configs ", b"src"]
    paths += paths[:50]  # duplicates
    fast = policy.rules_for_paths(paths)
    assert set(fast) == set(paths)
    assert [p for p in paths if fast[p] != policy.rules_for(p)] == []
    assert fast[b"models./x"] and fast[b"models\\x.py"]
