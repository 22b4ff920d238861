"""load_policy: the typed result, defaults, relative paths, and the query API the hook uses."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from gatekeeper.errors import ConfigError
from gatekeeper.policy.config import (
    DEFAULT_NAMESPACE,
    AuditConfig,
    Limits,
    MatchingConfig,
    Person,
    Rule,
    ScanConfig,
    TrustConfig,
    load_policy,
)

WritePolicy = Callable[[str], Path]

# Every load here runs cold and from the compiled-policy cache (conftest.policy_cache_modes).
pytestmark = pytest.mark.usefixtures("policy_cache_modes")


def test_minimal_policy_loads_with_defaults(write_policy: WritePolicy, base_text: str, policy_dir: Path) -> None:
    path = write_policy(base_text)
    policy = load_policy(path)
    assert policy.version == 1
    assert policy.repository is None
    assert policy.mode == "enforce" and policy.enforcing
    assert policy.platform == "auto"
    assert policy.default_branch == "refs/heads/main"
    assert policy.protected_refs == ("refs/heads/main", "refs/heads/release/**")
    assert policy.rules == (Rule(name="model-code", paths=("models/**", "**/modeling_*.py"), approvals=1,
                                 reviewers=("leads",)),)
    assert dict(policy.people) == {
        "alice": Person("alice", ("alice@example.com",), ("alice",)),
        "bob": Person("bob", ("bob@example.com",), ("bob",)),
    }
    assert dict(policy.groups) == {"leads": ("alice", "bob")}
    assert policy.break_glass == ()
    assert policy.trust == TrustConfig(allowed_signers=policy_dir / "allowed_signers", revoked_keys=None,
                                       namespace=DEFAULT_NAMESPACE)
    assert policy.audit == AuditConfig(log=policy_dir / "log" / "audit.jsonl",
                                       signing_key=policy_dir / "log" / "audit-signing.key")
    assert policy.matching == MatchingConfig(case_insensitive=True, unicode_nfc=True)
    assert policy.scan == ScanConfig(unscannable="refuse", extra_pickle_globals=(), lfs_store=None)
    assert policy.limits == Limits(max_changed_paths=1_000_000, timeout_seconds=50.0)
    assert policy.source_path == path
    assert policy.source_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_full_policy(write_policy: WritePolicy, policy_dir: Path) -> None:
    (policy_dir / "revoked").write_text("")
    (policy_dir / "lfs").mkdir()
    path = write_policy("""\
        version: 1
        repository: ml/llama-train
        mode: monitor
        platform: gitea
        default_branch: refs/heads/trunk
        protected_refs: [refs/heads/trunk, "refs/tags/**"]
        rules:
          - name: weights
            description: pickles run code
            paths: ["*.bin", "*.pt"]
            approvals: 2
            reviewers: [leads, carol]
        people:
          alice: {emails: [Alice@Example.com], accounts: [alice.a, a2]}
          bob: {emails: [bob@example.com]}
          carol:
        groups:
          leads: [alice, bob]
          admins: [leads]
        break_glass: [admins]
        trust:
          allowed_signers: allowed_signers
          revoked_keys: revoked
          namespace: approvals@corp.example
        audit:
          log: log/audit.jsonl
          signing_key: /var/lib/gatekeeper/key
        matching: {case_insensitive: false, unicode_nfc: false}
        scan:
          unscannable: review
          extra_pickle_globals: [mypkg.module.Class]
          lfs_store: lfs
        limits: {max_changed_paths: 10, timeout_seconds: 2.5}
        """)
    policy = load_policy(path)
    assert (policy.repository, policy.mode, policy.platform, policy.default_branch) == (
        "ml/llama-train", "monitor", "gitea", "refs/heads/trunk")
    assert not policy.enforcing
    assert policy.rules[0].description == "pickles run code"
    assert policy.people["carol"] == Person("carol", (), ("carol",))
    assert policy.people["alice"].accounts == ("alice.a", "a2")
    assert policy.trust == TrustConfig(policy_dir / "allowed_signers", policy_dir / "revoked", "approvals@corp.example")
    assert policy.audit.signing_key == Path("/var/lib/gatekeeper/key")
    assert policy.matching == MatchingConfig(False, False)
    assert policy.scan == ScanConfig("review", ("mypkg.module.Class",), policy_dir / "lfs")
    assert policy.limits == Limits(10, 2.5)
    # query API
    assert policy.reviewers_of(policy.rules[0]) == frozenset({"alice", "bob", "carol"})
    assert policy.members(["admins"]) == frozenset({"alice", "bob"})
    assert policy.may_break_glass("bob") and not policy.may_break_glass("carol")
    assert policy.person_for_account("alice.a") == "alice"
    assert policy.person_for_account("Alice.A") == "alice"  # platforms differ on case; err towards "same person"
    assert policy.person_for_account("alice") is None  # explicit accounts replace the default
    assert policy.person_for_account("carol") == "carol"
    assert policy.person_for_email("ALICE@example.COM") == "alice"
    assert policy.person_for_email("mallory@example.com") is None
    assert policy.rule("weights") is policy.rules[0]
    with pytest.raises(KeyError):
        policy.rule("nope")
    with pytest.raises(KeyError):
        policy.members(["nobody"])


def test_relative_paths_are_relative_to_the_policy_file_not_the_cwd(
    write_policy: WritePolicy, base_text: str, policy_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path_factory:
    pytest.TempPathFactory,
) -> None:
    path = write_policy(base_text)
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    policy = load_policy(path)
    assert policy.trust.allowed_signers == policy_dir / "allowed_signers"
    assert policy.trust.allowed_signers.is_absolute()


def test_policy_is_immutable(write_policy: WritePolicy, base_text: str) -> None:
    policy = load_policy(write_policy(base_text))
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.mode = "monitor"  # type: ignore[misc]
    with pytest.raises(TypeError):
        policy.people["mallory"] = Person("mallory")  # type: ignore[index]
    with pytest.raises(TypeError):
        policy.groups["leads"] = ("mallory",)  # type: ignore[index]


def test_protected_refs(write_policy: WritePolicy, base_text: str) -> None:
    policy = load_policy(write_policy(base_text))
    assert policy.is_protected_ref("refs/heads/main")
    assert policy.is_protected_ref("refs/heads/MAIN")  # case-insensitive by default: fail towards protection
    assert policy.is_protected_ref("refs/heads/release/1.0")
    assert policy.is_protected_ref("refs/heads/release/2024/q1")
    assert not policy.is_protected_ref("refs/heads/release")
    assert not policy.is_protected_ref("refs/heads/main2")
    assert not policy.is_protected_ref("refs/heads/feature/main")
    assert not policy.is_protected_ref("refs/heads/main/x")
    assert not policy.is_protected_ref("refs/tags/v1")
    assert policy.protected_ref_pattern("refs/heads/release/9") == "refs/heads/release/**"
    assert policy.protected_ref_pattern("refs/heads/dev") is None


def test_refs_case_sensitive_when_matching_is(write_policy: WritePolicy, base_text: str) -> None:
    policy = load_policy(write_policy(base_text + "matching: {case_insensitive: false}\n"))
    assert policy.is_protected_ref("refs/heads/main")
    assert not policy.is_protected_ref("refs/heads/Main")


def test_rules_for_returns_every_matching_rule_in_order(write_policy: WritePolicy, base_text: str) -> None:
    text = base_text.replace("people:", """\
  - name: python
    paths: ["*.py"]
    approvals: 1
    reviewers: [alice]
people:""")
    policy = load_policy(write_policy(text))
    names = lambda path: [r.name for r in policy.rules_for(path)]  # noqa: E731
    assert names(b"models/llama/modeling_llama.py") == ["model-code", "python"]
    assert names(b"src/modeling_x.py") == ["model-code", "python"]
    assert names(b"README.md") == []
    assert names(b"models") == ["model-code"]  # the directory itself (file/symlink/submodule replacing it)
    assert policy.rules[0].matches(b"models/x") and not policy.rules[1].matches(b"models/x")
    assert policy.rules[0].matching_pattern(b"a/modeling_b.py") == "**/modeling_*.py"
    assert policy.rules[0].matching_pattern(b"docs/x") is None


def test_rule_constructed_directly_uses_default_matching() -> None:
    rule = Rule(name="r", paths=("models/**",), approvals=1, reviewers=("x",))
    assert rule.matches(b"Models/a.py")
    with pytest.raises(ValueError):
        Rule(name="r", paths=(), approvals=1, reviewers=("x",))


def test_invalid_policy_raises_config_error_listing_every_problem(write_policy: WritePolicy, base_text: str) -> None:
    text = base_text.replace("approvals: 1", "approvals: 0") + "colour: blue\n"
    path = write_policy(text)
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    assert info.value.message == f"invalid policy {path}: 2 problems"
    assert info.value.problems == [
        f"{path}:6: rule 'model-code': 'approvals' must be a whole number >= 1, not 0",
        f"{path}:17: unknown key 'colour' at the top level; allowed: version, repository, mode, platform, "
        "default_branch, protected_refs, rules, people, groups, break_glass, trust, audit, matching, scan, limits, "
        "approvals",
    ]
    assert info.value.hint == "run: gatekeeper policy lint --config FILE"


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_policy(tmp_path / "nope.yaml")
    assert info.value.problems == [f"{tmp_path / 'nope.yaml'}:1: cannot read the policy: No such file or directory"]


def test_warnings_do_not_stop_loading(write_policy: WritePolicy, base_text: str) -> None:
    text = base_text.replace('protected_refs: [refs/heads/main,', 'protected_refs: [refs/heads/main, refs/heads/main,')
    assert load_policy(write_policy(text)).protected_refs == ("refs/heads/main", "refs/heads/release/**")


def test_missing_trust_store_fails_load(write_policy: WritePolicy, base_text: str, policy_dir: Path) -> None:
    (policy_dir / "allowed_signers").unlink()
    with pytest.raises(ConfigError) as info:
        load_policy(write_policy(base_text))
    assert info.value.problems == [
        f"{policy_dir / 'policy.yaml'}:14: 'trust.allowed_signers' '{policy_dir / 'allowed_signers'}' does not exist"]


def test_rules_below_for_submodules_and_symlinks(write_policy: WritePolicy, base_text: str) -> None:
    text = base_text.replace('paths: ["models/**", "**/modeling_*.py"]', 'paths: ["models/**"]').replace(
        "people:", """\
  - name: weights
    paths: ["*.bin"]
    approvals: 1
    reviewers: [bob]
people:""")
    policy = load_policy(write_policy(text))
    assert [r.name for r in policy.rules_below(b"models")] == ["model-code", "weights"]
    assert [r.name for r in policy.rules_below(b"vendor/lib")] == ["weights"]  # a submodule can bring *.bin
    assert [r.name for r in policy.rules_for(b"vendor/lib")] == []


def test_rules_for_agrees_with_asking_every_rule(write_policy: WritePolicy, base_text: str) -> None:
    """The index behind rules_for (combined check, kinds, first-component table) is exact."""
    import random

    rules = [
        ("code", '["models/**", "**/modeling_*.py", "/src/llama_train"]'),
        ("weights", '["*.bin", "*.safetensors"]'),
        ("plumbing", '[".gitattributes", "/.github/**", "/CODEOWNERS"]'),
        ("configs", '["configs/**", "**/config.json"]'),
        ("odd", '["*/x/**", "a?c/**", "[mn]odels/*.py", "**/deep/*.txt", "é/**"]'),
    ]
    text = base_text.replace(
        '  - name: model-code\n    paths: ["models/**", "**/modeling_*.py"]\n'
        '    approvals: 1\n    reviewers: [leads]\n',
        "".join(f"  - name: {name}\n    paths: {paths}\n    approvals: 1\n    reviewers: [leads]\n"
                for name, paths in rules))
    policy = load_policy(write_policy(text))
    assert [r.name for r in policy.rules] == [name for name, _ in rules]
    rng = random.Random(3)
    parts = ["models", "Models", "src", "llama_train", "configs", "x", "abc", "nodels", "deep", "a.py", "b.txt",
             "w.bin", "config.json", ".gitattributes", ".github", "CODEOWNERS", "modeling_a.py", "É", "q", "\xff"]
    for _ in range(5000):
        path = "/".join(rng.choice(parts) for _ in range(rng.randint(1, 5))).encode("utf-8", "surrogateescape")
        assert policy.rules_for(path) == tuple(r for r in policy.rules if r.matches(path)), path


def test_policy_is_hashable_by_identity(write_policy: WritePolicy, base_text: str) -> None:
    path = write_policy(base_text)
    first, second = load_policy(path), load_policy(path)
    assert first.source_sha256 == second.source_sha256
    assert len({first, second, first}) == 2


def test_hot_path_imports_stay_small(write_policy: WritePolicy, base_text: str) -> None:
    """load_policy + rules_for pull in neither the lint-only modules nor anything heavy."""
    import subprocess
    import sys

    path = write_policy(base_text)
    code = (
        "import sys; from pathlib import Path; from gatekeeper.policy.config import load_policy; "
        f"p = load_policy(Path({str(path)!r})); p.rules_for(b'models/x'); p.is_protected_ref('refs/heads/main'); "
        "print(' '.join(sorted(m for m in ('requests', 'pygit2', 'cryptography', 'difflib', "
        "'gatekeeper.trust._signers_lint') if m in sys.modules)))"
    )
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=True)
    assert result.stdout.strip() == ""
