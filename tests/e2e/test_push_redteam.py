"""End-to-end (issue 10, second attack round): the worst loader/scanner differentials pushed for real.

Both files were scanned *clean* before this round: an npz whose zip64 locator points ``zipfile`` (``np.load``) at a
second central directory holding an object array, and a tar whose pax ``size`` record makes ``tarfile`` read a
member's data from a block that a reader ignoring pax takes for the next header. The payloads are checked with
numpy's header parser, ``zipfile``/``tarfile`` and the recording oracle in
``tests/detectors/test_scanner_redteam.py``; here they go through the real git client into a bare repository with
the hook installed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from gitserver import Server

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "detectors"))
from test_polyglots import PAYLOAD_P0  # noqa: E402
from test_scanner_redteam import (  # noqa: E402
    EVIL_NPY, PLAIN_NPY, eocd, header, pax, two_archives, zip64_tail,
)


def zip64_npz() -> bytes:
    body, cd2, cd2_offset = two_archives([("a.npy", PLAIN_NPY)], [("b.npy", EVIL_NPY)])
    first_cd_offset = body.find(b"PK\x01\x02")
    first_cd_size = body.find(b"PK\x05\x06") - first_cd_offset
    return body + cd2 + zip64_tail(1, len(cd2), cd2_offset, at=len(body) + len(cd2)) + eocd(
        1, first_cd_size, first_cd_offset)


def pax_sized_tar() -> bytes:
    return pax({"size": "512"}) + header("pickle", 0) + header(PAYLOAD_P0.decode(), 0) + b"\0" * 1024


FILES = {"data/embeddings.npz": zip64_npz(), "checkpoints/legacy.tar": pax_sized_tar()}


@pytest.mark.parametrize("path", sorted(FILES))
def test_loader_differential_is_refused(server: Server, path: str) -> None:
    c = server.clone()
    c.write(path, FILES[path])
    c.commit("add model file")
    result = c.push("HEAD:refs/heads/feature")
    assert not result.ok, result.output
    assert "refs/heads/feature: REFUSED" in result.remote
    assert f"malicious: {path}" in result.remote and "os.system" in result.remote
    assert server.ref("refs/heads/feature") is None
    decision = server.decisions()[-1]
    assert any(f["verdict"] == "malicious" and f["path"].startswith(path) for f in decision["findings"])
