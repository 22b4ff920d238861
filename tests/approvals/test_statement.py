"""The statement's canonical form and strict parser (no git, no keys: fast)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from gatekeeper.approvals.create import bundle, parse_duration, unbundle
from gatekeeper.approvals.statement import MalformedApproval, Statement, parse_statement
from gatekeeper.approvals.store import MalformedApproval as StoreMalformed, split_approval_ref
from gatekeeper.model import MODE_ABSENT, MODE_BLOB, Change

A, B = "a" * 40, "b" * 40
NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=timezone.utc)


def statement(**overrides: object) -> Statement:
    fields: dict[str, object] = dict(
        repository="ml/llama-train", ref="refs/heads/main", approver="alice", base=A, head=B, created=NOW,
        expires=NOW + timedelta(days=14), nonce="0123456789abcdef0123456789abcdef", note="",
        changes=(Change(b"models/x.py", MODE_BLOB, A, MODE_BLOB, B),),
    )
    fields.update(overrides)
    return Statement(**fields)  # type: ignore[arg-type]


def test_round_trip_is_exact_and_readable() -> None:
    data = statement(note="ok: reviewed \u00e9").to_bytes()
    assert parse_statement(data) == statement(note="ok: reviewed \u00e9")
    text = data.decode("ascii")
    assert '  "ref": "refs/heads/main",\n' in text
    assert '    ["models/x.py", "100644", "' + A + '", "100644", "' + B + '"]\n' in text


def test_non_utf8_and_unicode_paths_are_lossless() -> None:
    paths = (b"models/caf\xc3\xa9.py", b"models/\xff\xfe.bin", b"models/new\nline.py")
    changes = tuple(sorted(Change(p, MODE_ABSENT, "0" * 40, MODE_BLOB, B) for p in paths))
    st = statement(changes=changes)
    data = st.to_bytes()
    assert b'{"base64": "' in data
    assert parse_statement(data).changes == changes


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.replace(b'"note": ""', b'"note" : ""'), "not in canonical form"),
    (lambda d: d.replace(b"{\n", b"{\n  \"note\": \"x\",\n", 1), "repeats the key"),
    (lambda d: d.replace(b'"type": "gatekeeper-approval/v1"', b'"type": "gatekeeper-approval/v2"'),
     "unsupported statement type"),
    (lambda d: d.replace(b'"approver": "alice"', b'"approver": "al*ce"'), "not a valid person name"),
    (lambda d: d.replace(b'"2026-12-09T12:00:00Z"', b'"2026-12-09T12:00:00+01:00"'), "UTC time"),
    (lambda d: d.replace(b'"100644", "' + B.encode(), b'"100645", "' + B.encode()), "unknown mode"),
    (lambda d: d.replace(b'"nonce": "0123', b'"nonce": "0124'), ""),  # still canonical: parses (signature decides)
    (lambda d: d + b"\n", "not in canonical form"),
    (lambda d: b"\xef\xbb\xbf" + d, "not ASCII"),
    (lambda d: d.replace(b'"note": ""', b'"note": NaN'), "non-JSON number"),
])
def test_every_variant_but_the_canonical_one_is_rejected(edit: object, message: str) -> None:
    data = edit(statement().to_bytes())  # type: ignore[operator]
    if not message:
        parse_statement(data)
        return
    with pytest.raises(MalformedApproval, match=message):
        parse_statement(data)


def test_unsorted_duplicate_and_empty_changes() -> None:
    one = Change(b"models/a.py", MODE_BLOB, A, MODE_BLOB, B)
    two = Change(b"models/b.py", MODE_BLOB, A, MODE_BLOB, B)
    with pytest.raises(MalformedApproval, match="sorted by path"):
        parse_statement(statement(changes=(two, one)).to_bytes())
    with pytest.raises(MalformedApproval, match="sorted by path"):
        parse_statement(statement(changes=(one, one)).to_bytes())
    with pytest.raises(MalformedApproval, match="does not change anything"):
        parse_statement(statement(changes=(Change(b"m", MODE_BLOB, A, MODE_BLOB, A),)).to_bytes())
    with pytest.raises(MalformedApproval, match="expires before"):
        parse_statement(statement(expires=NOW).to_bytes())


def test_hostile_sizes_and_nesting() -> None:
    with pytest.raises(MalformedApproval, match="over the"):
        parse_statement(b" " * (512 * 1024 + 1))
    with pytest.raises(MalformedApproval):
        parse_statement(b"[" * 100000 + b"]" * 100000)


def test_ref_names_and_bundles() -> None:
    assert split_approval_ref("refs/gatekeeper/approvals/bob/" + "ab" * 16) == ("bob", "ab" * 16)
    for bad in ("refs/gatekeeper/approvals/bob", "refs/gatekeeper/approvals/bob/x/" + "ab" * 16,
                "refs/gatekeeper/approvals/b*b/" + "ab" * 16, "refs/gatekeeper/approvals/bob/" + "AB" * 16):
        with pytest.raises(StoreMalformed, match="not a valid approval ref name"):
            split_approval_ref(bad)
    data = statement(note="-----BEGIN SSH SIGNATURE-----").to_bytes()
    sig = b"-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----\n"
    assert unbundle(bundle(data, sig)) == (data, sig)
    with pytest.raises(MalformedApproval, match="no SSH signature"):
        unbundle(data)
    assert parse_duration("14d") == timedelta(days=14) and parse_duration("36h") == timedelta(hours=36)
    for bad in ("0d", "-1d", "14", "400d", "1y"):
        with pytest.raises(Exception, match="duration"):
            parse_duration(bad)
