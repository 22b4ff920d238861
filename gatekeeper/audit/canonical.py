"""The canonical byte form of an audit record, and its strict reader.

A record is one line of UTF-8: ``json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
allow_nan=False)``. With ASCII-only keys, no floats and integers within +-(2**53 - 1) this equals RFC 8785 (JCS)
output (JCS sorts keys by UTF-16 code units, Python by code points: identical for ASCII keys), so other languages can
re-create the bytes. The reader re-serialises every line and requires byte equality: that one comparison rejects
whitespace edits, key reordering, escaped-vs-raw characters and duplicate keys (the last duplicate wins in ``json``, so
the re-serialisation is shorter). Floats, NaN/Infinity, big integers and non-ASCII keys are rejected explicitly
(reference B3).

Speed: with ``orjson`` installed, encoding and the canonical check of a line use it, because its output is
byte-identical to the stdlib encoder's for every value the canonical form admits (compact separators, sorted keys, raw
UTF-8, the same escapes: ``\\"``, ``\\\\``, ``\\b\\f\\n\\r\\t``, ``\\u00XX`` for other controls, DEL
and U+2028 raw; ``tests/audit/test_canonical_orjson.py`` proves it over generated records). Only a line orjson accepts
*and* re-encodes to the same bytes takes the fast path; anything else (including every rejection, so the diagnosis is
always the stdlib's) goes through the stdlib reader. Without orjson the stdlib is used throughout, with the same
results. orjson is imported by the readers, on first use; :func:`encode` uses it once loaded, and the stdlib encoder
before that: the hooks write one small record per push, and importing orjson (which imports ``uuid`` and
``platform``) would cost every push more than encoding that record does.

Making any event recordable: :func:`recordable` turns what pushed data can put into an event (lone surrogates from
undecodable names, bytes, floats, huge strings and lists, deep nesting) into a canonical value, escaping or truncating
and saying where, so a decision is never lost because its record could not be encoded.
"""

from __future__ import annotations

import hashlib
import json
import re
from types import ModuleType
from typing import Any

_orjson: ModuleType | None = None  # the optional C codec once _load_orjson() found it; the stdlib path is complete
_orjson_looked = False
_ORJSON_OPTIONS = 0
_orjson_loads: Any = None
_orjson_dumps: Any = None

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
        if item is None or isinstance(item, bool):
            continue
        if isinstance(item, str):
            if not item.isascii() and _SURROGATE.search(item) is not None:
                raise CanonicalError(f"{at}: a lone surrogate (undecodable input) cannot be encoded as UTF-8")
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
    if _orjson is not None:
        try:
            return bytes(_orjson.dumps(value, option=_ORJSON_OPTIONS))
        except (TypeError, _orjson.JSONEncodeError):
            pass  # e.g. a lone surrogate: the stdlib path below names the problem
    try:
        return _ENCODER.encode(value).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CanonicalError(f"a string holds a lone surrogate ({exc.object[exc.start:exc.end]!r}): not UTF-8; "
                             "pass the value through recordable() first") from None
    except RecursionError:
        raise CanonicalError("value is nested too deeply") from None


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


def _load_orjson() -> ModuleType | None:
    """orjson, imported on first use (None when it is not installed)."""
    global _orjson, _orjson_looked, _ORJSON_OPTIONS, _orjson_loads, _orjson_dumps
    if not _orjson_looked:
        _orjson_looked = True
        try:
            import orjson
        except ImportError:  # exercised by the fallback test with the import blocked
            return None
        _ORJSON_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER
        _orjson_loads, _orjson_dumps = orjson.loads, orjson.dumps
        _orjson = orjson
    return _orjson


# Outside strings a float is a number token with a fraction or exponent, after ':' ',' or '[' and before ',' '}' or
# ']'. Mapped to a small alphabet (digits and signs to '0', '.eE' to '.', all six delimiters to ':') every float becomes
# ":0+.[0.]*:", so one translate and one search (both in C) find every float; a string that merely looks like one
# (never a timestamp: its 'Z' is not a delimiter) only costs the stdlib path.
_FLOAT_ALPHABET = bytes.maketrans(b"0123456789-+.eE:,[}]", b"000000000000...:::::")
# Written ":00*" rather than ":0+" (the same language): sre then has the two-byte literal prefix ":0" and skips the many
# delimiters not followed by a number cheaply; with ":" alone as prefix it tried a full match at each (2x the time).
_FLOAT_SHAPE = re.compile(rb":00*\.[0.]*:")


def may_hold_float(data: bytes) -> bool:
    """True if ``data`` may hold a float; False is exact (it holds none). orjson has no hook to refuse floats while
    parsing, so they are looked for in the bytes. ``data`` may be many lines at once, with the same answer as asking
    line by line: the shape maps every byte on its own and no byte of it is a newline, so no match spans two lines
    (verify asks once per block of lines, since any block in a real log has none)."""
    return _FLOAT_SHAPE.search(data.translate(_FLOAT_ALPHABET)) is not None


def fast_decoder(*, float_free: bool = False) -> Any:
    """The orjson fast path for loops that call it a million times (verify), or None without orjson. It returns the
    record if orjson proves the line canonical on its own, None to mean "ask :func:`decode_line`". With
    ``float_free`` the caller has already found no float shape in the line (:func:`may_hold_float` over a block)."""
    if _load_orjson() is None:
        return None
    return _decode_float_free if float_free else _fast_decode


def decode_line(line: bytes) -> dict[str, Any]:
    """Parse one record line (without its newline) and require canonical form. Raises :class:`CanonicalError`."""
    if _load_orjson() is not None:
        value = _fast_decode(line)
        if value is not None:
            return value
    return _stdlib_decode(line)


def _fast_decode(line: bytes) -> dict[str, Any] | None:
    """The record if orjson proves the line canonical on its own; None means "ask the stdlib reader"."""
    if may_hold_float(line):
        return None
    return _decode_float_free(line)


def _decode_float_free(line: bytes) -> dict[str, Any] | None:
    """:func:`_fast_decode` for a line already known to hold no float shape."""
    try:
        value = _orjson_loads(line)
        if type(value) is not dict or _orjson_dumps(value, option=_ORJSON_OPTIONS) != line:
            return None
    except (ValueError, TypeError):  # JSONDecodeError/JSONEncodeError (integer out of the 53-bit range)
        return None
    if not line.isascii() and _non_ascii_key(value) is not None:
        return None
    return value


def _stdlib_decode(line: bytes) -> dict[str, Any]:
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


# -- making pushed data recordable ------------------------------------------------------------------------------------

MAX_STRING_CHARS = 64 * 1024  # per string, when a record must shrink; a ref name or path is far shorter
MAX_LIST_ITEMS = 10_000
MAX_DEPTH = 32  # events are a few levels deep; deeper data comes from parsed pushed content
MAX_NOTES = 20
_SURROGATE = re.compile("[\ud800-\udfff]")


def _escape_surrogate(match: re.Match[str]) -> str:
    code = ord(match.group())
    # U+DC80..U+DCFF is how os.fsdecode/surrogateescape carries an undecodable byte: show the byte, as git does.
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


class _Sanitizer:
    def __init__(self, max_string: int, max_items: int) -> None:
        self.max_string = max_string
        self.max_items = max_items
        self.notes: list[str] = []
        self.changes = 0

    def note(self, where: str, what: str) -> None:
        self.changes += 1
        if len(self.notes) < MAX_NOTES:
            self.notes.append(f"{where}: {what}")

    def string(self, text: str, where: str) -> str:
        if _SURROGATE.search(text) is not None:
            text = _SURROGATE.sub(_escape_surrogate, text)
            self.note(where, "invalid UTF-8 or lone surrogates escaped as \\xNN / \\uNNNN")
        if len(text) > self.max_string:
            digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
            self.note(where, f"truncated from {len(text)} characters (sha256 of the full text {digest})")
            text = text[: self.max_string]
        return text

    def value(self, item: Any, where: str, depth: int) -> Any:
        if item is None or isinstance(item, bool):
            return item
        if isinstance(item, str):
            return self.string(item, where)
        if isinstance(item, int):
            if -MAX_SAFE_INT <= item <= MAX_SAFE_INT:
                return item
            self.note(where, "integer outside +-(2**53-1) recorded as a string")
            return str(item)
        if depth >= MAX_DEPTH:
            self.note(where, f"nested deeper than {MAX_DEPTH} levels: replaced by its type")
            return f"<{type(item).__name__} nested too deeply>"
        if isinstance(item, dict):
            out: dict[str, Any] = {}
            for key, sub in item.items():
                name = key if isinstance(key, str) else str(key)
                if not isinstance(key, str):
                    self.note(f"{where}.{name}", f"{type(key).__name__} key recorded as a string")
                if not name.isascii() or _SURROGATE.search(name) is not None:
                    name = name.encode("ascii", "backslashreplace").decode("ascii")
                    self.note(f"{where}.{name}", "non-ASCII key escaped")
                while name in out:
                    name += "_"
                out[name] = self.value(sub, f"{where}.{name}", depth + 1)
            return out
        if isinstance(item, (list, tuple)):
            seq = list(item)
            if len(seq) > self.max_items:
                self.note(where, f"list truncated to {self.max_items} of {len(seq)} items")
                seq = seq[: self.max_items]
            return [self.value(sub, f"{where}[{i}]", depth + 1) for i, sub in enumerate(seq)]
        if isinstance(item, (bytes, bytearray, memoryview)):
            self.note(where, "bytes recorded as text (undecodable bytes as \\xNN)")
            return self.string(bytes(item).decode("utf-8", "backslashreplace"), where)
        if isinstance(item, float):
            self.note(where, "float recorded as a string")
            return repr(item)
        self.note(where, f"{type(item).__name__} recorded as its repr")
        return self.string(repr(item)[:1000], where)


def recordable(
    value: dict[str, Any], *, where: str = "event", max_string: int = MAX_STRING_CHARS,
    max_items: int = MAX_LIST_ITEMS,
) -> tuple[dict[str, Any], list[str]]:
    """A copy of ``value`` that :func:`encode` accepts, and notes saying what had to change (empty: nothing did).

    Strings with lone surrogates (undecodable bytes in names from pushed data) are escaped, too long strings and lists
    are truncated with their size and digest noted, bytes become text, floats and out-of-range integers strings,
    non-ASCII keys ASCII escapes, data nested deeper than ``MAX_DEPTH`` a placeholder.
    """
    sanitizer = _Sanitizer(max_string, max_items)
    clean = sanitizer.value(value, where, 0)
    notes = list(sanitizer.notes)
    if sanitizer.changes > len(notes):
        notes.append(f"... and {sanitizer.changes - len(notes)} more")
    return clean, notes
