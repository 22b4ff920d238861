"""path_facts (the parts of a path a content verdict depends on) is computed in one pass for speed; it must agree
with its definition through named_as_text and loaded_as on every path, odd ones included."""

from __future__ import annotations

import random

from gatekeeper.detectors.pathfacts import loaded_as, named_as_text, path_facts

PARTS = ["a", "/", ".py", ".txt", "saved_model.pb", "SAVED_MODEL.PB", ".safetensors", ".SafeTensors", " ", ".", "!",
         "x.py!m", "\u1e9e", "\u00df", "K", "\u212a", ".json", "LICENSE"]


def _by_definition(path: str) -> str:
    facts = [fact for fact, applies in (("text", named_as_text(path)),
                                        ("saved_model", loaded_as(path, "saved_model.pb")),
                                        ("safetensors", loaded_as(path, ".safetensors"))) if applies]
    return ",".join(facts)


def test_path_facts_agree_with_their_definition() -> None:
    rng = random.Random(13)
    seen = set()
    for _ in range(50_000):
        path = "".join(rng.choice(PARTS) for _ in range(rng.randrange(1, 7)))
        assert path_facts(path) == _by_definition(path), path
        seen.add(path_facts(path))
    assert {"", "text", "saved_model", "safetensors"} <= seen
