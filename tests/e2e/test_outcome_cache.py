"""post-receive's settings cache (gatekeeper/policy/outcome_cache.py): the same outcome records with and without it,
and an entry that is corrupt, edited, forged with loose permissions or left by another policy is never trusted."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from digest_cache_damage import DAMAGES, damage_entry
from gitserver import Server



def _cache_dir(server: Server) -> Path:
    return server.log.parent / "policy-cache"


def _entries(server: Server) -> list[Path]:
    return sorted(p for p in _cache_dir(server).glob("outcome-*.json"))


def _push_one(server: Server, name: str) -> str:
    c = server.clone()
    c.write(f"src/{name}.py", f"{name}\n")
    sha = c.commit(name)
    result = c.push()
    assert result.ok, result.output
    assert "WARNING" not in result.remote, result.remote
    return sha


def _last_outcome(server: Server) -> dict[str, object]:
    return [r["event"] for r in server.records() if r["event"]["type"] == "push.outcome"][-1]  # type: ignore[index]


def _comparable(outcome: dict[str, object], decision: dict[str, object], sha: str) -> dict[str, object]:
    """The outcome without what differs between two pushes by nature (commit ids), after checking those parts."""
    assert outcome["push_id"] == decision["push_id"]  # paired with its own decision either way
    updates = outcome["updates"]
    assert isinstance(updates, list) and len(updates) == 1 and updates[0]["new"] == sha
    return {k: v for k, v in outcome.items() if k not in ("push_id", "updates")}


def test_outcome_records_are_the_same_cold_and_warm(server: Server) -> None:
    cache = _cache_dir(server)
    # Cold: the cache directory cannot exist (a file is in its place), so both hooks load the policy in full.
    if cache.exists():
        for p in cache.iterdir():
            p.unlink()
        cache.rmdir()
    cache.write_text("not a directory")
    cold_sha = _push_one(server, "cold")
    cold = _comparable(_last_outcome(server), server.decisions()[-1], cold_sha)
    cache.unlink()

    _push_one(server, "fill")  # pre-receive leaves the entry; this post-receive already reads it
    assert len(_entries(server)) == 1
    warm_sha = _push_one(server, "warm")
    warm = _comparable(_last_outcome(server), server.decisions()[-1], warm_sha)
    assert warm == cold
    assert warm["repo"] == "ml/llama-train" and "error" not in warm


def test_warm_post_receive_does_not_load_the_policy(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    from gatekeeper.policy import config
    from gatekeeper.push import hook

    sha = _push_one(server, "fill")
    old = server.ref("refs/heads/main~1")
    stdin = f"{old} {sha} refs/heads/main\n".encode()
    env = {"GIT_DIR": str(server.bare), "GATEKEEPER_USER": "carol"}

    def no_load(path: Path) -> None:
        raise AssertionError("post-receive loaded the policy although its settings were cached")

    monkeypatch.setattr(config, "load_policy", no_load)
    fallback = server.log
    result = hook.run_post_receive(stdin, env, config=server.config, fallback_log=fallback)
    assert result.exit_code == 0, result.lines
    outcome = _last_outcome(server)
    assert outcome["repo"] == "ml/llama-train" and "error" not in outcome


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_entry_is_ignored(server: Server, tmp_path: Path, damage: str) -> None:
    _push_one(server, "fill")
    (entry,) = _entries(server)
    elsewhere = tmp_path / "elsewhere.jsonl"
    change: dict[str, object] = {"repository": "evil/repo", "audit_log": str(elsewhere)}
    damage_entry(entry, damage, lambda payload: payload.update(change), tmp_path / "forged.json")
    sha = _push_one(server, "after")
    outcome = _last_outcome(server)
    assert outcome["repo"] == "ml/llama-train" and "error" not in outcome
    assert outcome["updates"][0]["new"] == sha  # type: ignore[index]
    assert not elsewhere.exists()


def test_a_changed_policy_is_not_served_the_old_settings(server: Server) -> None:
    _push_one(server, "fill")
    server.config.write_text(server.config.read_text().replace("repository: ml/llama-train",
                                                               "repository: ml/llama-renamed"))
    _push_one(server, "renamed")
    assert _last_outcome(server)["repo"] == "ml/llama-renamed"
    assert len(_entries(server)) == 2  # one per policy digest


def test_cache_files_are_owner_only(server: Server) -> None:
    _push_one(server, "fill")
    cache = _cache_dir(server)
    assert os.stat(cache).st_mode & 0o777 == 0o700
    for p in cache.iterdir():
        assert os.stat(p).st_mode & 0o777 == 0o600, p
