"""The ``.npy`` header read as numpy reads it (issue 10 item 3): a Python literal, and the full dtype grammar.

Differential against numpy itself (``numpy.lib.format.descr_to_dtype`` then ``hasobject``, what ``np.load`` checks
before it unpickles): for every descr below, if numpy says the array holds objects, the scanner must too. The scanner
may say "object" where numpy would fail or say no (then the data is analysed as a pickle and fails closed), never the
other way round. Each object form also gets a full sample whose pickled payload must be found.
"""

from __future__ import annotations

import numpy
import pytest
from numpy.lib import format as npy_format

from oracle import record
from test_containers_formats import EVIL
from test_polyglots import npy
from gatekeeper.detectors.content import scan_blob
from gatekeeper.detectors.npy_header import _has_object
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
