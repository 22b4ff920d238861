"""Protocol 0 text arguments parsed the way *either* of CPython's unpicklers parses them.

``pickle.load`` is the C unpickler (``Modules/_pickle.c``); ``pickle._Unpickler`` is the pure-Python one. They agree
on pickles a pickler writes and disagree at the edges, which is where a scanner gets bypassed: the C ``INT`` opcode
parses with ``strtol(s, 0)`` (``"012"`` is octal 10, an error in Python), C strings end at the first NUL
(``"12\\0junk"`` is 12 there, an error in Python), Python's ``int()``/``float()`` allow surrounding whitespace and
underscores. The emulator must keep going wherever *either* keeps going, so every parser here accepts the union and
raises ``ValueError`` only when both unpicklers fail.

Every function takes the line as ``readline`` returned it: with its trailing newline, or without one at the end of the
data (the pure-Python unpickler still drops the last character then: ``readline()[:-1]``).
"""

from __future__ import annotations

import re

__all__ = ["c_string", "parse_float", "parse_int", "parse_long", "parse_memo_key"]

_C_LONG_MAX = (1 << 63) - 1
# strtol(s, &end, 0): leading C whitespace, a sign, then hex (0x + digits), octal (leading 0) or decimal.
_STRTOL = re.compile(rb"[ \t\n\v\f\r]*([+-]?)(?:0[xX]([0-9a-fA-F]+)|(0[0-7]*)|([1-9][0-9]*))")


def c_string(line: bytes) -> bytes:
    """``line`` as C code sees it: up to the first NUL."""
    cut = line.find(b"\0")
    return line if cut < 0 else line[:cut]


def _strtol(s: bytes) -> int | None:
    """The value when C's ``strtol(s, &end, 0)`` consumes up to the newline or the string's end without overflow."""
    m = _STRTOL.match(s)
    if m is None:
        # no digits: strtol leaves end at the start, which C accepts when it is the newline or the string's end
        # ("I\0junk\n" is 0)
        return 0 if s[:1] in (b"", b"\n") else None
    if s[m.end():m.end() + 1] not in (b"", b"\n"):
        return None
    sign, hexa, octal, dec = m.groups()
    value = int(hexa, 16) if hexa is not None else int(octal, 8) if octal is not None else int(dec)
    value = -value if sign == b"-" else value
    return value if -_C_LONG_MAX - 1 <= value <= _C_LONG_MAX else None


def parse_int(line: bytes) -> int:
    """``INT``: ``00``/``01`` are booleans in both; Python ``int(line, 0)``; C ``strtol`` then ``int(s, 0)``."""
    if line in (b"00\n", b"01\n"):
        return line == b"01\n"
    try:
        return int(line, 0)
    except ValueError:
        pass
    s = c_string(line)
    if len(line) < 2:
        raise ValueError("INT argument too short")
    value = _strtol(s)
    if value is not None:
        return value
    return int(s, 0)  # C falls back to PyLong_FromString(s, NULL, 0); raises ValueError when both fail


def parse_long(line: bytes) -> int:
    """``LONG``: one trailing ``L`` dropped, then ``int(..., 0)`` (both unpicklers use base 0)."""
    val = line[:-1]
    if val.endswith(b"L"):
        val = val[:-1]
    try:
        return int(val, 0)
    except ValueError:
        pass
    if len(line) < 2:
        raise ValueError("LONG argument too short")
    s = bytearray(line)
    if s[-2] == ord("L"):
        s[-2] = 0
    return int(c_string(bytes(s)), 0)


def parse_float(line: bytes) -> float:
    """``FLOAT``: Python ``float(line[:-1])``; C ``PyOS_string_to_double`` up to the newline or a NUL."""
    try:
        return float(line[:-1])
    except ValueError:
        pass
    s = c_string(line)
    if s.endswith(b"\n"):
        s = s[:-1]
    if not s or s[:1].isspace() or b"_" in s:
        raise ValueError("invalid FLOAT literal")
    return float(s)


def parse_memo_key(line: bytes) -> int:
    """``GET``/``PUT``: base-10 ``int`` of the line (Python) or of its C string (C)."""
    try:
        return int(line[:-1])
    except ValueError:
        return int(c_string(line))
