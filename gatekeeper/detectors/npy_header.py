"""NumPy ``.npy`` headers: where the data starts and whether it is a pickle (object dtype).

Format (numpy ``lib/format.py``): ``\\x93NUMPY``, major, minor, a 2-byte (v1) or 4-byte (v2, v3) little-endian header
length, then a Python-literal dict ``{'descr', 'fortran_order', 'shape'}``. An object dtype, or a structured dtype with
an ``O`` field anywhere, means the data is ``pickle.dump(array)`` and ``np.load(allow_pickle=True)`` unpickles it
(reference ml-artifacts.md §4). The literal is parsed with ``ast.literal_eval`` (no code), size-capped like numpy's
``max_header_size``.
"""

from __future__ import annotations

import ast
import re
import struct
from dataclasses import dataclass

__all__ = ["NPY_MAGIC", "NpyHeader", "NpyFormatError", "parse_npy_header"]

NPY_MAGIC = b"\x93NUMPY"
_MAX_HEADER = 100_000  # numpy's default max_header_size is 10_000; allow some slack, never unbounded


class NpyFormatError(ValueError):
    """The header cannot be read."""


@dataclass(frozen=True)
class NpyHeader:
    descr: object
    shape: tuple[int, ...]
    data_offset: int
    has_object: bool


# dtype strings that are certainly not object dtypes: one type code with an optional byte order and size, datetime
# units, or a plain numeric name. numpy accepts much more as a *string* (``'object'``, ``'object_'``, ``'O8'``,
# comma-separated fields ``'f8,O'``, subarrays ``'(2,)O'``...): anything not matched here is treated as object, so
# the data is analysed as the pickle np.load would unpickle (fail closed; numpy itself never writes such strings).
_PLAIN_DTYPE = re.compile(
    r"[<>|=]?(?:[?bBhHiIlLqQpPnNefdgFDGSaUVc]|[biufcSaUV]\d{1,5}|[mM]8(?:\[\d*[a-zA-Z]{1,2}\])?)"
    r"|(?:bool|int|uint|float|complex)(?:8|16|32|64|128|256)?|bytes|str|void|datetime64|timedelta64"
)


def _has_object(descr: object, depth: int = 0) -> bool:
    """Whether numpy's ``descr_to_dtype(descr).hasobject`` can be true (``lib/format.py``), erring towards yes."""
    if depth > 32:
        return True  # absurd nesting: assume the worst, the caller analyses the data as a pickle
    if isinstance(descr, str):
        return _PLAIN_DTYPE.fullmatch(descr) is None
    if isinstance(descr, tuple):  # (subtype, shape): a subarray
        return len(descr) != 2 or _has_object(descr[0], depth + 1)
    if isinstance(descr, list):  # structured: (name, descr) or (name, descr, shape) per field, nested at will
        for field in descr:
            if not isinstance(field, tuple | list) or len(field) not in (2, 3) or _has_object(field[1], depth + 1):
                return True
        return False
    return True  # anything else is not a dtype numpy writes: treat as object


def parse_npy_header(data: memoryview) -> NpyHeader:
    """Parse the header at offset 0.

    Raises:
        NpyFormatError: bad magic, version, length or literal.
    """
    head = bytes(data[:12])
    if not head.startswith(NPY_MAGIC) or len(head) < 10:
        raise NpyFormatError("not a .npy header")
    major = head[6]
    if major == 1:
        hlen, start = struct.unpack_from("<H", head, 8)[0], 10
    elif major in (2, 3):
        if len(head) < 12:
            raise NpyFormatError("truncated .npy header")
        hlen, start = struct.unpack_from("<I", head, 8)[0], 12
    else:
        raise NpyFormatError(f"unsupported .npy version {major}")
    if hlen > _MAX_HEADER or start + hlen > len(data):
        raise NpyFormatError(f".npy header length {hlen} is out of bounds")
    text = bytes(data[start:start + hlen]).decode("utf-8" if major == 3 else "latin-1", "replace")
    try:
        literal = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
        raise NpyFormatError(f".npy header is not a Python literal ({type(exc).__name__})") from None
    if not isinstance(literal, dict) or not {"descr", "shape"} <= literal.keys():
        raise NpyFormatError(".npy header lacks descr/shape")
    shape = literal["shape"]
    if not isinstance(shape, tuple) or not all(isinstance(x, int) and x >= 0 for x in shape):
        raise NpyFormatError(".npy header has an invalid shape")
    descr = literal["descr"]
    return NpyHeader(descr, shape, start + hlen, _has_object(descr))
