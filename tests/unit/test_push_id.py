"""The push id the hook makes without importing :mod:`uuid` is a real version 4 UUID in uuid's own text form."""

from __future__ import annotations

import uuid

from gatekeeper.push.hook import new_push_id


def test_push_id_is_a_uuid4_in_canonical_text_form() -> None:
    ids = {new_push_id() for _ in range(2000)}
    assert len(ids) == 2000  # random, never repeated
    for text in ids:
        parsed = uuid.UUID(text)
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == text  # byte for byte what str(uuid.uuid4()) would print
