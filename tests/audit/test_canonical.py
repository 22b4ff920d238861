"""Canonical form of records (reference B3, B6.2)."""

from __future__ import annotations

import pytest

from gatekeeper.audit.canonical import CanonicalError, check_value, decode_line, encode


def test_encode_is_sorted_compact_utf8() -> None:
    assert encode({"b": 1, "a": ["x", None, True], "c": {"z": "é", "y": "😀"}}) == (
        '{"a":["x",null,true],"b":1,"c":{"y":"😀","z":"é"}}'.encode()
    )


def test_non_bmp_value_round_trips() -> None:
    line = encode({"path": "models/\U0001f600/\u00e9.py"})
    assert decode_line(line) == {"path": "models/\U0001f600/\u00e9.py"}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b'{"a":1, "b":2}', "not in canonical form"),  # whitespace-only edit
        (b'{"b":2,"a":1}', "not in canonical form"),  # key reorder
        (b'{"a":1,"a":2}', "not in canonical form"),  # duplicate key (json keeps the last: shorter re-encoding)
        (b'{"a":1.5}', "float 1.5 is not allowed"),
        (b'{"a":1e3}', "float 1e3 is not allowed"),
        (b'{"a":NaN}', "NaN is not allowed"),
        (b'{"a":9007199254740992}', "outside"),
        ('{"\u00e9":1}'.encode(), "is not ASCII"),  # non-ASCII key: JCS and Python would sort differently
        (b'{"a":"\\u00e9"}', "not in canonical form"),  # escaped instead of raw UTF-8
        (b'{"a":"\xff"}', "not valid UTF-8"),
        (b'[1,2]', "not a JSON object"),
        (b'{"a":', "not JSON"),
        (b'', "not JSON"),
    ],
)
def test_decode_rejects_non_canonical(line: bytes, message: str) -> None:
    with pytest.raises(CanonicalError, match=message):
        decode_line(line)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"a": 0.5}, "floats are not allowed"),
        ({"é": 1}, "not ASCII"),
        ({1: 1}, "not a string"),
        ({"a": 2**53}, "outside"),
        ({"a": {1, 2}}, "set is not a JSON value"),
    ],
)
def test_writer_refuses_values_that_cannot_be_canonical(value: object, message: str) -> None:
    with pytest.raises(CanonicalError, match=message):
        check_value(value)
