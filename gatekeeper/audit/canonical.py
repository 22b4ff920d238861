"""The canonical byte form of an audit record, and its strict reader.

A record is one line of UTF-8: ``json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
allow_nan=False)``. With ASCII-only keys, no floats and integers within +-(2**53 - 1) this equals RFC 8785 (JCS)
output (JCS sorts keys by UTF-16 code units, Python by code points: identical for ASCII keys), so other languages can
re-create the bytes. The reader re-serialises every line and requires byte equality: that one comparison rejects
whitespace edits, key reordering, escaped-vs-raw characters and duplicate keys (the last duplicate wins in ``json``, so
the re-serialisation is shorter). Floats, NaN/Infinity, big integers and non-ASCII keys are rejected explicitly
(reference B3).
"""

from __future__ import annotations

import json
from typing import Any

MAX_SAFE_INT = 2**53 - 1

_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class CanonicalError(ValueError):
    """A value or a line is not in canonical form; the message says why."""


def check_value(value: Any, *, where: str = "record") -> None:
    """Raise :class:`CanonicalError` unless ``value`` can be encoded canonically.

    Allowed: dicts with ASCII ``str`` keys, lists, tuples, ``str``, ``bool``, ``None`` and ``int`` within the JSON
    safe range. Floats are refused: their text form differs between languages.
    """
    stack: list[tuple[Any, str]] = [(value, where)]
    while stack:
        item, at = stack.pop()
        if item is None or isinstance(item, (bool, str)):
            continue
        if isinstance(item, int):
            if not -MAX_SAFE_INT <= item <= MAX_SAFE_INT:
                raise CanonicalError(f"{at}: integer {item} is outside +-(2**53-1)")
        elif isinstance(item, dict):
            for key, sub in item.items():
                if not isinstance(key, str):
                    raise CanonicalError(f"{at}: key {key!r} is not a string")
                if not key.isascii():
                    raise CanonicalError(f"{at}: key {key!r} is not ASCII")
                stack.append((sub, f"{at}.{key}"))
        elif isinstance(item, (list, tuple)):
            stack.extend((sub, f"{at}[{i}]") for i, sub in enumerate(item))
        elif isinstance(item, float):
            raise CanonicalError(f"{at}: floats are not allowed ({item!r}); use an integer or a string")
        else:
            raise CanonicalError(f"{at}: {type(item).__name__} is not a JSON value")


def encode(value: Any) -> bytes:
    """The canonical UTF-8 bytes of ``value`` (no newline). Raises :class:`CanonicalError`."""
    check_value(value)
    return _ENCODER.encode(value).encode("utf-8")


def _reject_float(text: str) -> Any:
    raise CanonicalError(f"float {text} is not allowed")


def _reject_constant(text: str) -> Any:
    raise CanonicalError(f"{text} is not allowed")


def _checked_int(text: str) -> int:
    value = int(text)
    # Only long digit strings can be out of range; the short test keeps the common case cheap.
    if len(text) > 15 and not -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
        raise CanonicalError(f"integer {text} is outside +-(2**53-1)")
    return value


_DECODER = json.JSONDecoder(parse_float=_reject_float, parse_int=_checked_int, parse_constant=_reject_constant)


def _non_ascii_key(value: Any) -> str | None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, sub in item.items():
                if not key.isascii():
                    return str(key)
                stack.append(sub)
        elif isinstance(item, list):
            stack.extend(item)
    return None


def decode_line(line: bytes) -> dict[str, Any]:
    """Parse one record line (without its newline) and require canonical form. Raises :class:`CanonicalError`."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CanonicalError(f"not valid UTF-8 at byte {exc.start}") from None
    try:
        value = _DECODER.decode(text)
    except CanonicalError:
        raise
    except (ValueError, RecursionError) as exc:
        raise CanonicalError(f"not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise CanonicalError("not a JSON object")
    if _ENCODER.encode(value) != text:
        raise CanonicalError(
            "not in canonical form (whitespace, key order, escaping or a duplicate key differs from the "
            "re-serialised record)",
        )
    if not text.isascii():
        bad = _non_ascii_key(value)
        if bad is not None:
            raise CanonicalError(f"key {bad!r} is not ASCII")
    return value
