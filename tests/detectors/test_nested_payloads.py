"""Nested payloads at any depth (issue 10 item 4): pickles inside pickles, in bytes and str constants, encoded.

Each chain is checked with the recording oracle one layer at a time (a decode-then-load chain only runs the inner
pickle when someone loads it, so each layer is shown to be what the next loader reads); the scanner must report the
innermost payload, and the same containers carrying an inert inner pickle must not be malicious.
"""

from __future__ import annotations

import base64
import pickle
import zlib

import pytest

from oracle import record
from test_containers_formats import EVIL, TORCH_LIKE, binu, glob
from gatekeeper.detectors.content import scan_blob
from gatekeeper.model import Verdict

INERT = pickle.dumps({"lr": 0.1}, protocol=2)


def loads_of(inner: bytes, loader: tuple[str, str] = ("torch.storage", "_load_from_bytes")) -> bytes:
    """A protocol 2 pickle calling ``loader(inner)``."""
    return b"\x80\x02" + glob(*loader) + b"B" + len(inner).to_bytes(4, "little") + inner + b"\x85R."


def carried(inner_const: bytes, *, text: bool) -> bytes:
    """A torch-like checkpoint dict whose extra key holds ``inner_const`` as plain data (str or bytes)."""
    const = binu(inner_const.decode("latin-1")) if text else b"B" + len(inner_const).to_bytes(4, "little") + inner_const
    return b"\x80\x02}" + binu("blob") + const + b"s."


def test_pickle_in_pickle_in_pickle() -> None:
    chain = loads_of(loads_of(EVIL))
    assert record(chain).globals == [("torch.storage", "_load_from_bytes")]
    middle = loads_of(EVIL)
    assert record(middle).globals == [("torch.storage", "_load_from_bytes")]
    assert ("os", "system") in record(EVIL).globals
    findings = scan_blob("model.pt", chain)
    assert findings[0].verdict is Verdict.MALICIOUS
    assert any("os.system" in e for f in findings for e in (f.message, *f.evidence))


@pytest.mark.parametrize("encode", [
    lambda p: base64.b64encode(p), lambda p: p.hex().encode(), lambda p: zlib.compress(p),
    lambda p: base64.b64encode(zlib.compress(p)), lambda p: zlib.compress(p).hex().encode(),
    lambda p: base64.b64encode(base64.b64encode(zlib.compress(p))),
], ids=["base64", "hex", "zlib", "base64-zlib", "hex-zlib", "base64-base64-zlib"])
@pytest.mark.parametrize("text", [True, False], ids=["str", "bytes"])
def test_encoded_payload_carried_as_data(encode, text: bool) -> None:  # type: ignore[no-untyped-def]
    outer = carried(encode(EVIL), text=text)
    assert record(outer).error is None and record(outer).globals == []  # the outer load itself is inert
    findings = scan_blob("model.pt", outer)
    assert findings and findings[0].verdict is Verdict.MALICIOUS, findings
    assert scan_blob("model.pt", carried(encode(TORCH_LIKE), text=text)) == []
    assert scan_blob("model.pt", carried(encode(INERT), text=text)) == []


def test_plain_text_that_starts_like_an_encoding_is_not_decoded() -> None:
    for text in (b"gAlleria of weights " * 3, b"8005 is a port number, not hex" * 2, b"UEFA cup checkpoint notes!!"):
        assert scan_blob("model.pt", carried(text, text=True)) == []
