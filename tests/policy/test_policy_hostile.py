"""Hostile policy files: each one is a clean ConfigError (or lint problem) with a line, never a traceback or a hang."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from gatekeeper.errors import ConfigError
from gatekeeper.policy.config import lint_policy, load_policy
from gatekeeper.policy.yamlsafe import MAX_BYTES, MAX_DEPTH, YamlProblem, load_yaml

BILLION_LAUGHS = """\
version: 1
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""

# Every load here runs cold and from the compiled-policy cache (conftest.policy_cache_modes).
pytestmark = pytest.mark.usefixtures("policy_cache_modes")


def _problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    lint = [str(p) for p in lint_policy(path)]
    assert lint == info.value.problems  # lint and load agree when there are only errors
    return [p[len(str(path)) + 1:] for p in info.value.problems]


@pytest.mark.timeout(10)
def test_billion_laughs(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(BILLION_LAUGHS)
    assert _problems(path) == ["3: YAML aliases (*a) are not allowed in a policy"]


@pytest.mark.timeout(10)
@pytest.mark.parametrize(("text", "expected"), [
    ("version: 1\nx: !!python/object/apply:os.system ['true']\n",
     "2: unsupported YAML tag tag:yaml.org,2002:python/object/apply:os.system"),
    ("version: 1\nx: !!python/object:os.system x\n",
     "2: unsupported YAML value 'x' (tag tag:yaml.org,2002:python/object:os.system); use a plain string or number"),
    ("version: 1\nx: !!python/name:os.system ''\n",
     "2: unsupported YAML value '' (tag tag:yaml.org,2002:python/name:os.system); use a plain string or number"),
    ("version: 1\nx: !!binary aGk=\n",
     "2: unsupported YAML value 'aGk=' (tag tag:yaml.org,2002:binary); use a plain string or number"),
    ("version: 1\nx: !!set {a, b}\n", "2: unsupported YAML tag tag:yaml.org,2002:set"),
    ("version: 1\nx: 2024-01-01\n",
     "2: unsupported YAML value '2024-01-01' (tag tag:yaml.org,2002:timestamp); use a plain string or number"),
    ("version: 1\n<<: {a: 1}\n",
     "2: unsupported YAML value '<<' (tag tag:yaml.org,2002:merge); use a plain string or number"),
    ("version: 1\n? [a, b]\n: 1\n", "2: a mapping key must be a plain string, not a list or mapping"),
    ("version: 1\n1: x\n", "2: mapping keys must be strings, not 1"),
    ("version: 1\n---\nversion: 1\n", "2: more than one YAML document; a policy is one document"),
    ("", "1: the file is empty"),
    ("# only a comment\n", "1: the file is empty"),
    ("version: 1\nrules: [\n", "3: YAML syntax error: while parsing a flow node did not find expected node content"),
    ("version: 1\n  bad: indent\n", "2: YAML syntax error: mapping values are not allowed in this context"),
    ("version: 1\nx: \"\\xZZ\"\n", "2: YAML syntax error: while parsing a quoted scalar did not find "
                                   "expected hexdecimal number"),
    ("version: 1\nx: " + "9" * 5000 + "\n", "2: invalid int value '9999999999999999999999999999999999999999': "
                                            "too many digits"),
    ("version: 1\nx: \x07\n", "2: YAML syntax error: unacceptable character U+0007: control characters are "
                            "not allowed"),
])
def test_hostile_yaml(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    assert _problems(path) == [expected]


@pytest.mark.timeout(10)
def test_deep_nesting(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("version: 1\nx: " + "[" * 100 + "]" * 100 + "\n")
    assert _problems(path) == [f"2: nested more than {MAX_DEPTH} levels deep"]
    # libyaml has its own, higher limit on flow nesting: either way a clean problem, never a RecursionError
    import yaml

    if not yaml.__with_libyaml__:
        return
    path.write_text("version: 1\nx: " + "[" * 100_000 + "]" * 100_000 + "\n")
    # PyYAML 6.0.4's libyaml stops it; the libyaml of older wheels has no limit and the loader's own cap does.
    assert _problems(path) in (["2: YAML syntax error: while increasing flow level exceeded maximum nesting depth"],
                               [f"2: nested more than {MAX_DEPTH} levels deep"])


@pytest.mark.timeout(10)
def test_deep_block_nesting(tmp_path: Path) -> None:
    lines = ["version: 1"] + [" " * i + f"k{i}:" for i in range(200)]
    path = tmp_path / "p.yaml"
    path.write_text("\n".join(lines) + " x\n")
    assert _problems(path) == [f"{MAX_DEPTH + 2}: nested more than {MAX_DEPTH} levels deep"]


@pytest.mark.timeout(10)
def test_huge_file(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_bytes(b"version: 1\n" + b"# padding\n" * (MAX_BYTES // 10 + 1))
    assert _problems(path) == [f"1: file is too big ({MAX_BYTES + 1} bytes; the limit is {MAX_BYTES})"]


@pytest.mark.timeout(10)
def test_huge_file_is_not_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    with open(path, "wb") as fh:  # sparse: 1 GiB that must not be read into memory
        fh.truncate(1 << 30)
    assert _problems(path) == [f"1: file is too big ({MAX_BYTES + 1} bytes; the limit is {MAX_BYTES})"]


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_bytes(b"version: 1\nrepository: caf\xe9\n")
    assert _problems(path) == ["2: file is not UTF-8 (byte 0xe9 at offset 26)"]


def test_utf8_bom_is_accepted() -> None:
    assert load_yaml(b"\xef\xbb\xbfa: 1\n") == {"a": 1}


def test_utf16_is_refused() -> None:
    with pytest.raises(YamlProblem) as info:
        load_yaml("a: 1\n".encode("utf-16"))
    assert info.value.message.startswith("file is not UTF-8")


def test_nul_byte(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_bytes(b"version: 1\nx: a\x00b\n")
    assert _problems(path) == ["2: YAML syntax error: unacceptable character U+0000: control characters are not "
                               "allowed"]


def test_many_documents_of_garbage_do_not_hang(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("- " * 20000 + "x\n")
    assert _problems(path) == [f"1: nested more than {MAX_DEPTH} levels deep"]


def test_load_yaml_values_and_lines() -> None:
    doc = load_yaml(b"a: 1\nb:\n  - x\n  - 'y'\nc: {d: null, e: true, f: 1.5, g: 0x10}\n")
    assert doc == {"a": 1, "b": ["x", "y"], "c": {"d": None, "e": True, "f": 1.5, "g": 16}}
    assert doc.lines == {"a": 1, "b": 2, "c": 5}  # type: ignore[attr-defined]
    assert doc["b"].lines == [3, 4]  # type: ignore[index]


def test_duplicate_key_raises_without_a_problem_list() -> None:
    with pytest.raises(YamlProblem) as info:
        load_yaml(b"a: 1\nb: 2\na: 3\n")
    assert (info.value.line, info.value.message) == (3, "duplicate key 'a' (first on line 1)")


def test_duplicate_key_with_container_value_is_dropped() -> None:
    problems: list[YamlProblem] = []
    assert load_yaml(b"a: [1]\na: {b: [2, 3]}\nc: 4\n", problems) == {"a": [1], "c": 4}
    assert [(p.line, p.message) for p in problems] == [(2, "duplicate key 'a' (first on line 1)")]


def test_policy_file_is_a_directory_or_missing(tmp_path: Path, write_policy: Callable[[str], Path]) -> None:
    with pytest.raises(ConfigError) as info:
        load_policy(tmp_path)
    assert info.value.problems == [f"{tmp_path}:1: cannot read the policy: Is a directory"]


def test_pure_python_parser_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    monkeypatch.delattr(yaml, "CSafeLoader", raising=False)
    problems: list[YamlProblem] = []
    assert load_yaml(b"a: [1, 'x']\na: 2\n", problems) == {"a": [1, "x"]}
    assert [(p.line, p.message) for p in problems] == [(2, "duplicate key 'a' (first on line 1)")]
    with pytest.raises(YamlProblem) as info:
        load_yaml(b"a: *x\n")
    assert info.value.line == 1


@pytest.mark.timeout(10)
def test_fifo_policy_and_trust_store_do_not_hang(tmp_path: Path, write_policy: Callable[[str], Path],
                                                 base_text: str, policy_dir: Path) -> None:
    import os

    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError) as info:
        load_policy(fifo)
    assert info.value.problems == [f"{fifo}:1: cannot read the policy: Not a regular file"]
    (policy_dir / "allowed_signers").unlink()
    os.mkfifo(policy_dir / "allowed_signers")
    path = write_policy(base_text)
    assert [str(p) for p in lint_policy(path)] == [
        f"{path}:14: 'trust.allowed_signers' '{policy_dir / 'allowed_signers'}' cannot be read: Not a regular file"]


def test_device_as_policy(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_policy(Path("/dev/zero"))
    assert info.value.problems == ["/dev/zero:1: cannot read the policy: Not a regular file"]


def test_too_many_patterns(tmp_path: Path, write_policy: Callable[[str], Path], base_text: str) -> None:
    from gatekeeper.policy.config import MAX_PATTERNS

    many = ", ".join(f'"d{i}/**"' for i in range(MAX_PATTERNS + 5))
    path = write_policy(base_text.replace('paths: ["models/**", "**/modeling_*.py"]', f"paths: [{many}]"))
    assert _problems(path) == [
        f"5: more than {MAX_PATTERNS} path patterns in all rules; use '**' and directory patterns to say the same "
        "with fewer"]


def test_overlong_pattern(write_policy: Callable[[str], Path], base_text: str) -> None:
    path = write_policy(base_text.replace('"**/modeling_*.py"', '"' + "a" * 1001 + '"'))
    assert _problems(path) == ["5: rule 'model-code': path pattern is longer than 1000 characters"]


@pytest.mark.timeout(20)
def test_group_graphs_that_would_be_slow(write_policy: Callable[[str], Path], base_text: str) -> None:
    # a long chain and a ladder of diamonds (2**40 paths from top to bottom)
    chain = "".join(f"  c{i}: [c{i + 1}]\n" for i in range(5000)) + "  c5000: [alice]\n"
    ladder = "".join(f"  d{i}: [a{i}, b{i}]\n  a{i}: [d{i + 1}]\n  b{i}: [d{i + 1}]\n" for i in range(40))
    ladder += "  d40: [bob, d0]\n"  # and a cycle at the bottom
    path = write_policy(base_text.replace("groups:\n", "groups:\n" + chain + ladder))
    assert _problems(path) == ["5013: groups form a cycle: d0 -> a0 -> d1 -> a1 -> d2 -> a2 -> d3 -> a3 -> d4 -> "
                               "a4 -> d5 -> a5 -> d6 -> a6 -> d7 -> a7 -> d8 -> a8 -> d9 -> a9 -> d10 -> a10 -> d11 "
                               "-> a11 -> d12 -> a12 -> d13 -> a13 -> d14 -> a14 -> d15 -> a15 -> d16 -> a16 -> d17 "
                               "-> a17 -> d18 -> a18 -> d19 -> a19 -> d20 -> a20 -> d21 -> a21 -> d22 -> a22 -> d23 "
                               "-> a23 -> d24 -> a24 -> d25 -> a25 -> d26 -> a26 -> d27 -> a27 -> d28 -> a28 -> d29 "
                               "-> a29 -> d30 -> a30 -> d31 -> a31 -> d32 -> a32 -> d33 -> a33 -> d34 -> a34 -> d35 "
                               "-> a35 -> d36 -> a36 -> d37 -> a37 -> d38 -> a38 -> d39 -> a39 -> d40 -> d0"]
