"""The hook's memory is bounded whatever a push contains: real pushes, with the hook's peak RSS measured by a wrapper
process around the installed shim (``getrusage(RUSAGE_CHILDREN)`` after it exits: the hook and every process it ran).

* a big blob (160 MiB here, 1 GiB in the ``slow`` variant) is streamed to disk and mapped, never held in memory;
* a push of about 1 MB (a gzip bomb, a zip bomb, a pickle declaring a huge length, a ref naming a huge blob) cannot
  make the hook allocate more than a bounded amount.
"""

from __future__ import annotations

import gzip
import io
import json
import struct
import sys
import zipfile
from pathlib import Path

import pytest

from gitserver import Clone, Server, run_git

MIB = 1 << 20

WRAPPER = """#!{python}
import resource, subprocess, sys
code = subprocess.call([{real!r}])
with open({out!r}, "a") as fh:
    fh.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) + "\\n")
sys.exit(code)
"""


def _measure_hook(server: Server) -> Path:
    """Put a wrapper in front of the installed pre-receive shim that appends the hook's peak RSS (KiB) to a file."""
    hooks = server.bare / "hooks"
    real = hooks / "pre-receive.measured"
    (hooks / "pre-receive").rename(real)
    out = server.root / "hook-peak-rss"
    wrapper = hooks / "pre-receive"
    wrapper.write_text(WRAPPER.format(python=sys.executable, real=str(real), out=str(out)))
    wrapper.chmod(0o755)
    return out


def _peak_mib(out: Path) -> float:
    return int(out.read_text().split()[-1]) / 1024


def _write_big(clone: Clone, rel: str, size: int, tail: bytes) -> None:
    """A pickle whose first opcode declares ``size`` bytes of data (a weights-like payload), then ``tail``."""
    target = clone.path / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "wb") as fh:
        fh.write(b"\x80\x04\x8e" + struct.pack("<Q", size))
        block = bytes(range(256)) * (MIB // 256)
        for i in range(size // MIB):
            fh.write(block[i % 251:] + block[:i % 251])  # not all one byte, so it is stored, not trivially packed
        fh.write(b"\x00" * (size % MIB))
        fh.write(tail)
    run_git("add", "--", rel, cwd=clone.path)


def _big_blob_push(server: Server, size: int, budget_mib: float) -> None:
    out = _measure_hook(server)
    clone = server.clone()
    # A deny-listed global after the payload: the scan has to reach the end of the blob to refuse it.
    _write_big(clone, "weights/model.bin", size, b"0cos\nsystem\n(S'echo'\ntR.")
    clone.commit("big weights")
    result = clone.push("HEAD:refs/heads/feature")
    assert not result.ok and "os.system" in result.remote, result.output
    assert server.ref("refs/heads/feature") is None
    finding = server.decisions()[-1]["findings"][0]  # type: ignore[index]
    assert finding["verdict"] == "malicious" and finding["path"] == "weights/model.bin"
    peak = _peak_mib(out)
    assert peak < budget_mib, f"hook peak RSS {peak:.0f} MiB for a {size // MIB} MiB blob"


def test_a_160_mib_blob_is_scanned_in_bounded_memory(server: Server) -> None:
    _big_blob_push(server, 160 * MIB, budget_mib=120)


@pytest.mark.slow
def test_a_1_gib_blob_peaks_under_256_mib(server: Server) -> None:
    _big_blob_push(server, 1024 * MIB, budget_mib=256)


def _gzip_bomb(size: int) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9) as gz:
        for _ in range(size // MIB):
            gz.write(bytes(MIB))
    return buf.getvalue()


def _zip_bomb(members: int, size: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for i in range(members):
            with zf.open(f"archive/data/{i}", "w") as member:
                for _ in range(size // MIB):
                    member.write(bytes(MIB))
    return buf.getvalue()


def test_a_small_push_of_bombs_cannot_make_the_hook_allocate_much(server: Server) -> None:
    out = _measure_hook(server)
    clone = server.clone()
    clone.write("data/bomb.gz", _gzip_bomb(1024 * MIB))  # ~1 MB that inflates to 1 GiB
    clone.write("data/bomb.zip", _zip_bomb(4, 256 * MIB))  # ~1 MB, four 256 MiB members
    # A pickle declaring a 2**62-byte BINBYTES8 and a 4 GiB BINUNICODE8 in a few bytes.
    clone.write("data/liar.pkl", b"\x80\x04\x8e" + struct.pack("<Q", 1 << 62) + b"abc.")
    clone.write("data/liar2.pkl", b"\x80\x04\x8d" + struct.pack("<Q", 1 << 32) + b"abc.")
    clone.commit("bombs")
    pushed = sum((clone.path / p).stat().st_size for p in ("data/bomb.gz", "data/bomb.zip", "data/liar.pkl"))
    assert pushed < 4 * MIB
    result = clone.push("HEAD:refs/heads/feature")
    assert not result.ok  # every bomb is unscannable: a cap, never a pass
    recorded = server.decisions()[-1]["findings"]
    findings = {f["path"].split("!")[0]: f["verdict"] for f in recorded}  # type: ignore[index, union-attr]
    assert findings.keys() >= {"data/bomb.gz", "data/bomb.zip", "data/liar.pkl", "data/liar2.pkl"}
    assert set(findings.values()) <= {"unscannable", "malicious"}
    peak = _peak_mib(out)
    assert peak < 120, f"hook peak RSS {peak:.0f} MiB for a push of {pushed / MIB:.1f} MiB"


def test_a_ref_naming_a_huge_blob_is_not_inflated_to_find_its_type(server: Server) -> None:
    """A tag ref pointing straight at a big blob: the hook learns the type from the object header."""
    out = _measure_hook(server)
    clone = server.clone()
    path = clone.path / "big.bin"
    with open(path, "wb") as fh:
        block = bytes(range(256)) * (MIB // 256)
        for _ in range(160):
            fh.write(block)
    blob = run_git("hash-object", "-w", str(path), cwd=clone.path).stdout.decode().strip()
    run_git("update-ref", "refs/tags/weights-blob", blob, cwd=clone.path)
    clone.push("refs/tags/weights-blob:refs/tags/weights-blob")
    peak = _peak_mib(out)
    assert peak < 120, f"hook peak RSS {peak:.0f} MiB"
    assert json.dumps(server.decisions()[-1])  # recorded, whatever the decision
