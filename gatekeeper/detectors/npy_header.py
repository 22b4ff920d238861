"""NumPy ``.npy`` headers: where the data starts and whether it is a pickle (object dtype).

Format (numpy ``lib/format.py``): ``\\x93NUMPY``, major, minor, a 2-byte (v1) or 4-byte (v2, v3) little-endian header
length, then a Python-literal dict ``{'descr', 'fortran_order', 'shape'}``. An object dtype, or a structured dtype with
an ``O`` field anywhere, means the data is ``pickle.dump(array)`` and ``np.load(allow_pickle=True)`` unpickles it
(reference ml-artifacts.md §4). The literal is parsed with ``ast.literal_eval`` (no code) as numpy 2.x
``lib/format.py::_read_array_header`` parses it: Python 2 ``1L`` integers are filtered out for versions 1.0 and 2.0,
and a shape is any tuple of ints (negative ones included: an object array is unpickled whatever its shape).

Two kinds of failure are told apart, because a caller skipping data it believes numpy refuses must not skip data the
scanner merely declined to read: :class:`NpyFormatError` means numpy raises on this header too, before it reads any
data; :class:`NpyHeaderTooBig` (a subclass) means the scanner's size cap tripped, while ``np.load(allow_pickle=True)``
has no header-size limit at all (``max_header_size`` is ignored then) and may well unpickle what follows.
"""

from __future__ import annotations

import ast
import io
import re
import struct
import tokenize
import warnings
from dataclasses import dataclass

__all__ = ["NPY_MAGIC", "NpyHeader", "NpyFormatError", "NpyHeaderTooBig", "parse_npy_header"]

NPY_MAGIC = b"\x93NUMPY"
# numpy's default max_header_size is 10_000, but allow_pickle=True (needed for object arrays) lifts it entirely: past
# this cap the header is not parsed and the caller must fail closed (NpyHeaderTooBig), never assume numpy refuses it.
_MAX_HEADER = 100_000


class NpyFormatError(ValueError):
    """The header cannot be read: numpy raises on it too, before reading any array data."""


class NpyHeaderTooBig(NpyFormatError):
    """The header is larger than the scanner parses; numpy with ``allow_pickle=True`` reads it anyway."""


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


def _filter_header(text: str) -> str:
    """numpy's ``_filter_header``: drop the ``L`` after integer tokens that Python 2 wrote (``(3L,)``)."""
    tokens = []
    last_was_number = False
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if not (last_was_number and token.type == tokenize.NAME and token.string == "L"):
            tokens.append(token)
        last_was_number = token.type == tokenize.NUMBER
    return tokenize.untokenize(tokens)


def _literal(text: str, major: int) -> object:
    """The header literal as numpy reads it; raises NpyFormatError where numpy raises."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # invalid escapes in attacker text: no SyntaxWarning on the pusher's screen
        return _literal_quiet(text, major)


def _literal_quiet(text: str, major: int) -> object:
    try:
        return ast.literal_eval(text)
    except SyntaxError:
        if major > 2:
            raise NpyFormatError(".npy header is not a Python literal (SyntaxError)") from None
    except (ValueError, MemoryError, RecursionError) as exc:
        # numpy retries only on SyntaxError; anything else propagates out of np.load
        raise NpyFormatError(f".npy header is not a Python literal ({type(exc).__name__})") from None
    # versions 1.0 and 2.0 may come from Python 2: numpy filters the text and tries once more
    try:
        return ast.literal_eval(_filter_header(text))
    except (SyntaxError, ValueError, MemoryError, RecursionError, tokenize.TokenError) as exc:
        raise NpyFormatError(f".npy header is not a Python literal ({type(exc).__name__})") from None


def parse_npy_header(data: memoryview) -> NpyHeader:
    """Parse the header at offset 0.

    Raises:
        NpyHeaderTooBig: the header is over the scanner's cap (numpy may still read it: fail closed).
        NpyFormatError: bad magic, version, length or literal (numpy raises too).
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
    if start + hlen > len(data):
        raise NpyFormatError(f".npy header length {hlen} is out of bounds")
    if hlen > _MAX_HEADER:
        raise NpyHeaderTooBig(f".npy header of {hlen} bytes is over the scanner's cap of {_MAX_HEADER} "
                              "(np.load with allow_pickle=True reads headers of any size)")
    text = bytes(data[start:start + hlen]).decode("utf-8" if major == 3 else "latin-1", "replace")
    literal = _literal(text, major)
    if not isinstance(literal, dict) or not {"descr", "shape"} <= literal.keys():
        raise NpyFormatError(".npy header lacks descr/shape")
    shape = literal["shape"]
    # numpy checks isinstance(x, int) only: negative sizes (and bools) pass, and an object array is unpickled
    # whatever its shape
    if not isinstance(shape, tuple) or not all(isinstance(x, int) for x in shape):
        raise NpyFormatError(".npy header has an invalid shape")
    descr = literal["descr"]
    return NpyHeader(descr, shape, start + hlen, _has_object(descr))
