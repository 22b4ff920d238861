"""pre-receive's compiled-policy cache (gatekeeper/policy/compiled_cache.py): a hit is validated like the policy itself,
and an entry that is damaged, forged, loosely permissioned, symlinked, left by other code or by other bytes is never
what a load starts from. (The loader and hostile-policy tests also run every load warm: conftest.policy_cache_modes.)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from digest_cache_damage import DAMAGES, damage_entry, tamper

from gatekeeper.errors import ConfigError
from gatekeeper.policy import compiled_cache, config, pathmatch
from gatekeeper.policy.config import load_policy
from gatekeeper.policy.yamlsafe import YList, YMap, load_yaml
from policy.conftest import policy_snapshot

WritePolicy = Callable[[str], Path]

# A second rule under a key the attacker would love to drop; the hit must still protect configs/.
WITH_CONFIGS = """\
  - name: configs
    paths: ["configs/**", "*.yaml"]
    approvals: 1
    reviewers: [alice]
"""


def _policy_text(base_text: str) -> str:
    return base_text.replace("people:\n", WITH_CONFIGS + "people:\n", 1)


def _entry(cache: Path) -> Path:
    (entry,) = sorted(cache.glob("compiled-policy-*.json"))
    return entry


def _warm(path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> config.Policy:
    """Load from the cache, with the YAML parser and pathspec's translation made unusable."""
    with monkeypatch.context() as patch:
        patch.setattr(config, "load_yaml", _unusable("load_yaml"))
        patch.setattr(pathmatch, "_translate", _unusable("_translate"))
        return load_policy(path, cache_dir=cache)


def _unusable(name: str) -> Callable[..., object]:
    def fail(*args: object, **kwargs: object) -> object:
        raise AssertionError(f"{name} ran although the policy was cached")

    return fail


def _lines(value: object) -> object:
    """A document with every line number made visible (== on YMap/YList ignores them)."""
    if isinstance(value, YMap):
        return ("map", value.line, [(k, value.lines[k], _lines(v)) for k, v in value.items()])
    if isinstance(value, YList):
        return ("list", value.line, [(line, _lines(v)) for line, v in zip(value.lines, value)])
    return (type(value).__name__, value)


def test_the_document_round_trips_with_every_line_and_type(write_policy: WritePolicy, base_text: str) -> None:
    text = _policy_text(base_text) + "limits: {max_changed_paths: 10, timeout_seconds: 2.5}\nmatching:\n" \
        "  case_insensitive: true\n"
    doc = load_yaml(write_policy(text).read_bytes())
    back = compiled_cache._decode(json.loads(json.dumps(compiled_cache._encode(doc))), 0)
    assert _lines(back) == _lines(doc)


def test_a_hit_is_the_same_policy_and_skips_yaml_and_pathspec(write_policy: WritePolicy, base_text: str,
                                                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_policy(_policy_text(base_text))
    cache = tmp_path / "policy-cache"
    cold = load_policy(path, cache_dir=cache)
    assert _entry(cache).stat().st_mode & 0o777 == 0o600 and cache.stat().st_mode & 0o777 == 0o700
    warm = _warm(path, cache, monkeypatch)
    assert policy_snapshot(warm) == policy_snapshot(cold)
    assert [r.name for r in warm.rules_for(b"configs/x.yaml")] == ["configs"]


def test_a_hit_is_validated_again(write_policy: WritePolicy, base_text: str, policy_dir: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_policy(base_text)
    cache = policy_dir / "policy-cache"
    load_policy(path, cache_dir=cache)
    (policy_dir / "allowed_signers").unlink()  # the policy's bytes are the same; the server is not
    with pytest.raises(ConfigError) as info:
        _warm(path, cache, monkeypatch)
    assert info.value.problems == [
        f"{path}:14: 'trust.allowed_signers' '{policy_dir / 'allowed_signers'}' does not exist"]


def test_warnings_are_the_same_from_a_hit(write_policy: WritePolicy, base_text: str, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    text = base_text.replace("protected_refs: [refs/heads/main,", "protected_refs: [refs/heads/main, refs/heads/main,")
    text = text.replace("version: 1\n", "version: 1\ndefault_branch: refs/heads/trunk\n")
    path = write_policy(text)
    cache = tmp_path / "policy-cache"
    _, cold = config._load(path, deep=False, cache_dir=cache)
    with monkeypatch.context() as patch:
        patch.setattr(config, "load_yaml", _unusable("load_yaml"))
        _, warm = config._load(path, deep=False, cache_dir=cache)
    assert len(cold) == 2 and all(not p.is_error for p in cold)
    assert warm == cold  # same messages on the same lines


def test_a_changed_policy_is_never_served_stale(write_policy: WritePolicy, base_text: str, tmp_path: Path) -> None:
    cache = tmp_path / "policy-cache"
    path = write_policy(_policy_text(base_text))
    assert [r.name for r in load_policy(path, cache_dir=cache).rules_for(b"configs/a")] == ["configs"]
    assert [r.name for r in load_policy(path, cache_dir=cache).rules_for(b"configs/a")] == ["configs"]
    path.write_text(_policy_text(base_text).replace('"configs/**"', '"conf/**"'))
    changed = load_policy(path, cache_dir=cache)
    assert changed.rules_for(b"configs/a") == () and [r.name for r in changed.rules_for(b"conf/a")] == ["configs"]
    assert len(list(cache.glob("compiled-policy-*.json"))) == 2  # one per policy digest


def test_an_entry_for_other_code_is_not_used(write_policy: WritePolicy, base_text: str, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "policy-cache"
    path = write_policy(base_text)
    load_policy(path, cache_dir=cache)
    baked = compiled_cache._baked()
    assert baked is not None
    monkeypatch.setattr(compiled_cache, "_baked_memo", ([*baked[:-1], "0" * 64],))  # e.g. another pathspec
    assert compiled_cache.recall(cache, path, config.hashlib.sha256(path.read_bytes()).hexdigest()) is None


def _drop_configs_rule(payload: dict[str, object]) -> None:
    """Remove the second rule from the stored document: configs/ would be unprotected if this were believed."""
    doc = payload["document"]
    for key, _, value in doc["items"]:  # type: ignore[index]
        if key == "rules":
            del value["items"][1]


def _never_match(payload: dict[str, object]) -> None:
    for parts in payload["parts"].values():  # type: ignore[attr-defined]
        for part in parts:
            part[1] = "(?!)"


@pytest.mark.parametrize("damage", [*DAMAGES, "edited-parts", "forged-wrong-types", "directory-group-writable"])
def test_a_damaged_entry_is_ignored(write_policy: WritePolicy, base_text: str, tmp_path: Path, damage: str) -> None:
    cache = tmp_path / "policy-cache"
    path = write_policy(_policy_text(base_text))
    load_policy(path, cache_dir=cache)
    entry = _entry(cache)
    key = (cache / "key").read_bytes()
    if damage in DAMAGES:
        damage_entry(entry, damage, _drop_configs_rule, tmp_path / "forged.json")
    elif damage == "edited-parts":
        tamper(entry, _never_match, key=None)
    elif damage == "forged-wrong-types":
        tamper(entry, lambda payload: payload.update(case_insensitive=1), key=key)
    elif damage == "directory-group-writable":
        tamper(entry, _drop_configs_rule, key=key)
        cache.chmod(0o770)
    sha = config.hashlib.sha256(path.read_bytes()).hexdigest()
    assert compiled_cache.recall(cache, path, sha) is None
    policy = load_policy(path, cache_dir=cache)
    assert [r.name for r in policy.rules_for(b"configs/train.yaml")] == ["configs"]
    assert [r.name for r in policy.rules_for(b"models/x.py")] == ["model-code"]


def test_the_check_above_can_fail(write_policy: WritePolicy, base_text: str, tmp_path: Path) -> None:
    """Positive control: an entry signed with the real key and left owner-only *is* believed."""
    cache = tmp_path / "policy-cache"
    path = write_policy(_policy_text(base_text))
    load_policy(path, cache_dir=cache)
    tamper(_entry(cache), _drop_configs_rule, key=(cache / "key").read_bytes())
    assert load_policy(path, cache_dir=cache).rules_for(b"configs/train.yaml") == ()


def test_an_unusable_cache_directory_is_a_full_load(write_policy: WritePolicy, base_text: str,
                                                     tmp_path: Path) -> None:
    blocked = tmp_path / "policy-cache"
    blocked.write_text("not a directory")
    path = write_policy(base_text)
    assert [r.name for r in load_policy(path, cache_dir=blocked).rules_for(b"models/x")] == ["model-code"]
