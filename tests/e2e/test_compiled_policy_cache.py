"""pre-receive's compiled-policy cache, through real pushes: the same decisions with and without it, and a damaged or
forged entry never unprotects anything (unit tests: tests/policy/test_compiled_cache.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from digest_cache_damage import damage_entry
from gitserver import Server, seed_content


# (what to write, refspec): protected and unprotected refs, protected paths by their odd spellings, a tag.
SCENARIO: list[tuple[dict[str, str], str]] = [
    ({"src/feature.py": "x = 1\n"}, "HEAD:refs/heads/feature/a"),
    ({"models/llama/modeling.py": "class Llama:\n    evil = True\n"}, "HEAD:refs/heads/main"),
    ({"Models/Other.py": "y\n", "deep/dir/modeling_gpt.py": "z\n"}, "HEAD:refs/heads/main"),
    ({"configs/train.yaml": "lr: 1\n", "README.md": "hello\n"}, "HEAD:refs/heads/release/1.0"),
    ({"src/util.py": "u = 2\n", "docs/models/readme.md": "doc\n"}, "HEAD:refs/heads/main"),
    ({"MODELS/x.py": "upper\n", "models\u200c/y.py": "zero-width\n"}, "HEAD:refs/tags/v1"),
]
_HEX = re.compile(r"\b[0-9a-f]{7,64}\b")


def _server(root: Path) -> Server:
    srv = Server(root)
    seed_content(srv.clone("seeder"))
    srv.write_policy()
    srv.install()
    return srv


def _cache(server: Server) -> Path:
    return server.log.parent / "policy-cache"


def _compiled(server: Server) -> list[Path]:
    return sorted(_cache(server).glob("compiled-policy-*.json"))


def _run(server: Server) -> list[object]:
    c = server.clone()
    for files, refspec in SCENARIO:
        c.git("checkout", "-q", "origin/main")
        for rel, text in files.items():
            c.write(rel, text)
        c.commit(f"change for {refspec}")
        c.push(refspec)
    return [_comparable(d) for d in server.decisions()[-len(SCENARIO):]]


def _comparable(decision: dict[str, object]) -> object:
    """The decision without what differs between two servers by nature (ids, times, cache hits), commit ids masked."""
    kept = {k: v for k, v in decision.items() if k not in ("push_id", "scan", "trust_store_sha256")}
    return json.loads(_HEX.sub("<id>", json.dumps(kept, sort_keys=True)))


def test_decisions_are_the_same_cold_and_warm(tmp_path: Path, clean_env: Path) -> None:
    cold = _server(tmp_path / "cold")
    _cache(cold).write_text("not a directory")  # no cache can exist: every load is the full one
    warm = _server(tmp_path / "warm")
    c = warm.clone()
    c.write("src/fill.py", "fill\n")
    c.commit("fill")
    assert c.push("HEAD:refs/heads/feature/fill").ok  # leaves the compiled entry
    assert len(_compiled(warm)) == 1
    cold_decisions, warm_decisions = _run(cold), _run(warm)
    assert warm_decisions == cold_decisions
    verdicts = [d["decision"] for d in warm_decisions]  # type: ignore[index]
    assert verdicts == ["allow", "deny", "deny", "deny", "allow", "deny"], verdicts
    assert len(_compiled(warm)) == 1 and _cache(cold).is_file()


def _open_main(payload: dict[str, object]) -> None:
    """protected_refs reduced to a ref nobody pushes: main would be open if this were believed."""
    for item in payload["document"]["items"]:  # type: ignore[index]
        if item[0] == "protected_refs":
            item[2]["items"] = [[item[2]["list"], "refs/heads/nothing"]]


@pytest.mark.parametrize("damage", ["edited", "forged-group-writable", "symlink"])
def test_a_forged_entry_does_not_open_main(server: Server, tmp_path: Path, damage: str) -> None:
    c = server.clone()
    c.write("src/fill.py", "fill\n")
    c.commit("fill")
    assert c.push("HEAD:refs/heads/feature/fill").ok
    (entry,) = _compiled(server)
    damage_entry(entry, damage, _open_main, tmp_path / "forged.json")
    c.git("checkout", "-q", "origin/main")
    c.write("models/llama/modeling.py", "class Llama:\n    evil = True\n")
    c.commit("sabotage")
    result = c.push("HEAD:refs/heads/main")
    assert not result.ok and "push REFUSED" in result.remote, result.output
    assert server.decisions()[-1]["updates"][0]["rules"] == ["model-code"]  # type: ignore[index]
