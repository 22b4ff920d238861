"""The ``.npy`` header read as numpy reads it (issue 10 item 3): a Python literal, and the full dtype grammar.

Differential against numpy itself (``numpy.lib.format.descr_to_dtype`` then ``hasobject``, what ``np.load`` checks
before it unpickles): for every descr below, if numpy says the array holds objects, the scanner must too. The scanner
may say "object" where numpy would fail or say no (then the data is analysed as a pickle and fails closed), never the
other way round. Each object form also gets a full sample whose pickled payload must be found.
"""

from __future__ import annotations

import struct

import numpy
import pytest
from numpy.lib import format as npy_format

from oracle import record
from test_containers_formats import EVIL
from test_polyglots import npy
from gatekeeper.detectors.content import scan_blob
from gatekeeper.detectors.npy_header import NpyFormatError, NpyHeaderTooBig, _has_object, parse_npy_header
from gatekeeper.model import Verdict

DESCRS: list[object] = [
    "O", "|O", "<O", ">O", "=O", "O8", "object", "object_", "f8,O", "(2,)O", "i4,(3,)O", "O,O",
    "<f4", "|b1", "<i8", "u1", "?", "V8", "|S5", "<U3", "<M8[s]", "<m8[ns]", "float32", "int", "complex128", "P", "e",
    [("a", "<f4"), ("b", "|O")], [("a", "<f4"), ("b", "<i8")], [("a", [("x", "<f4"), ("y", "|O")])],
    [("a", [("x", "<f4"), ("y", "<i2")])], [("a", "|O", (2, 2))], [("a", "<f8", (3,))], ("|O", (2,)), ("<f4", (2,)),
    [(("title", "a"), "|O")], [(("title", "a"), "<f4")], [("", "|V4"), ("b", "|O")], [("a", ("|O", (2,)))],
]


def numpy_says_object(descr: object) -> bool | None:
    try:
        return bool(npy_format.descr_to_dtype(descr).hasobject)
    except (TypeError, ValueError, KeyError):
        return None  # numpy refuses the header: np.load raises before reading any data


@pytest.mark.parametrize("descr", DESCRS, ids=[repr(d) for d in DESCRS])
def test_object_dtype_detection_covers_numpy(descr: object) -> None:
    verdict = numpy_says_object(descr)
    if verdict:
        assert _has_object(descr), f"numpy unpickles arrays of {descr!r}, the scanner would not"
    if verdict is False and isinstance(descr, list | tuple):
        assert not _has_object(descr), "structured dtypes without objects must not be read as pickles"


@pytest.mark.parametrize("descr", ["object", "object_", "f8,O", "(2,)O", "O8"])
def test_object_array_with_a_string_descr_is_scanned(descr: str) -> None:
    assert numpy.dtype(descr).hasobject
    mal = npy(descr, EVIL)
    assert ("os", "system") in record(mal, start=mal.index(b"\n", 10) + 1).globals
    assert scan_blob("x.npy", mal)[0].verdict is Verdict.MALICIOUS
    import pickle
    benign = npy(descr, pickle.dumps([1, 2], protocol=3))
    assert scan_blob("x.npy", benign) == []


def test_structured_dtype_with_a_nested_object_field_is_scanned() -> None:
    descr = [("a", [("x", "<f4"), ("y", "|O")])]
    mal = npy(descr, EVIL)
    assert numpy.lib.format.read_array_header_1_0(__import__("io").BytesIO(mal[8:]))[2].hasobject
    assert scan_blob("x.npy", mal)[0].verdict is Verdict.MALICIOUS


# -- the header as numpy reads it (round 4): a parse error must mean numpy raises too ---------------------------------


def _npy_raw(header: bytes, *, major: int = 1, minor: int = 0) -> bytes:
    size = struct.pack("<H", len(header)) if major == 1 else struct.pack("<I", len(header))
    return b"\x93NUMPY" + bytes([major, minor]) + size + header + b"\x80\x02N."


def numpy_header(data: bytes) -> tuple[bool, int] | None:
    """(hasobject, data offset) as ``np.load(allow_pickle=True)`` reads the header (no size limit then), or None
    when numpy raises before reading data."""
    import io
    import warnings

    from numpy.lib import _format_impl as npy_impl

    fp = io.BytesIO(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            version = npy_impl.read_magic(fp)
            npy_impl._check_version(version)
            _shape, _fortran, dt = npy_impl._read_array_header(fp, version, max_header_size=2**64)
    except Exception:  # noqa: BLE001 - any failure means np.load raises before unpickling
        return None
    return bool(dt.hasobject), fp.tell()


HEADER_CASES = [
    b"{'descr': '|O', 'fortran_order': False, 'shape': (1L,), }\n",
    b"{'descr': '|O', 'fortran_order': False, 'shape': (2L, 3L), }\n",
    b"{'descr': '|O', 'fortran_order': False, 'shape': (-1,), }\n",
    b"{'descr': '|O', 'fortran_order': False, 'shape': (True,), }\n",
    b"{'descr': '|O', 'fortran_order': False, 'shape': (), }\n",
    b"{'shape': (1,), 'fortran_order': False, 'descr': '|O'}\n",
    b"  {'descr':'|O','fortran_order':False,'shape':(1,)}  \n",
    b"{'descr': '|O', 'fortran_order': 0, 'shape': (1,), }\n",
    b"{'descr': '|O', 'fortran_order': False, 'shape': (1,), 'x': 1}\n",
    b"{'descr': '|O', 'shape': (1,), }\n",
    b"{'descr': '|O', 'fortran_order': False, 'shape': [1], }\n",
    b"{'descr': '|O', 'fortran_order': False, 'shape': (1.0,), }\n",
    b"{'descr': '|O', 'fortran_order': False, 'shape': (0x1,), }\n",
    b"{'descr': '|O', 'fortran_order': False, 'shape': (1_0,), }\n",
    b"{'descr': '<f8', 'fortran_order': False, 'shape': (1L,), }\n",
    b"{'descr': [('a', '|O')], 'fortran_order': False, 'shape': (1L,), }\n",
    b"{'descr': u'|O', 'fortran_order': False, 'shape': (1,), }\n",
    b"{'descr': b'|O', 'fortran_order': False, 'shape': (1,), }\n",
    b"{'descr': '|O', 'fortran_order': False, 'shape': (1L,), }\x00\n",
    b"{'descr': '|O', 'fortran_order': False, 'shape': (1 L,), }\n",
    b"{'descr': '|O', 'fortran_order': False, 'shape': (1l,), }\n",
    b"{'descr': '|O', # comment\n 'fortran_order': False, 'shape': (1,), }\n",
    b"{'descr': '|O', 'fortran_order': False, 'shape': (1,), }" + b" " * 120_000 + b"\n",
]


@pytest.mark.parametrize(("header", "major"), [
    (header, major) for header in HEADER_CASES for major in (1, 2, 3)
    if major != 1 or len(header) <= 0xFFFF  # a version 1.0 header length is 16 bits
], ids=lambda value: str(value) if isinstance(value, int) else None)
def test_header_parse_matches_numpy(header: bytes, major: int) -> None:
    """Whenever numpy reads an object array, the scanner says object (or fails closed on its size cap); a plain
    NpyFormatError ("numpy raises too") only where numpy really raises."""
    data = _npy_raw(header, major=major)
    expected = numpy_header(data)
    try:
        ours = parse_npy_header(memoryview(data))
    except NpyHeaderTooBig:
        return  # fail closed: scanned as an .npy it cannot read (unscannable)
    except NpyFormatError:
        assert expected is None, f"numpy reads {header[:80]!r} (object={expected}), the scanner called it invalid"
        return
    if expected is not None and expected[0]:
        assert ours.has_object and ours.data_offset == expected[1]


def test_header_parse_matches_numpy_on_random_headers() -> None:
    """Random bytes behind the magic (what a torch storage starting with the magic holds): never a plain parse error
    where numpy reads an object array."""
    import random

    rng = random.Random(10)
    pieces = [b"{", b"}", b"'descr'", b"'|O'", b"'<f8'", b"'shape'", b"'fortran_order'", b"False", b"(", b")", b",",
              b":", b" ", b"1", b"L", b"-", b"\n", b"#", b"\\", b"'", b"[", b"]", b"0x", b"\t"]
    for _ in range(3000):
        header = b"".join(rng.choice(pieces) for _ in range(rng.randrange(0, 30)))
        if rng.random() < 0.5:
            header = b"{'descr': '|O', 'fortran_order': False, 'shape': " + header + b"}\n"
        data = _npy_raw(header, major=rng.choice((1, 2, 3)))
        expected = numpy_header(data)
        try:
            ours = parse_npy_header(memoryview(data))
        except NpyFormatError:
            assert expected is None, header
            continue
        if expected is not None and expected[0]:
            assert ours.has_object, header
