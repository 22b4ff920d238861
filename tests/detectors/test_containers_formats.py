"""Container and format bypass families of reference ml-artifacts.md §9 (5-10, 14), malicious sample + benign twin.

Archives are written byte by byte here (own zip writer, so headers can disagree), pickles with ``pickle.dumps`` of
harmless objects or by hand; nothing is ever unpickled.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import mmap
import pickle
import struct
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest

from gatekeeper.detectors.content import ScanOptions
from gatekeeper.detectors.content import scan_blob
from gatekeeper.detectors.content import sniff
from gatekeeper.model import Verdict

# Counters, not clocks: the bytes of a mapping a scan touched are the file pages it made resident (``RssFile`` of this
# process), the same measure bench/bench_scan.py reports. A scan that reads 1 GiB of tensor data makes ~1 GiB resident.
TOUCH_LIMIT = 32 << 20


def rss_file() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no RssFile in /proc/self/status")

MAL = Verdict.MALICIOUS.value
REV = Verdict.REVIEW.value
UNS = Verdict.UNSCANNABLE.value


def glob(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def binu(text: str) -> bytes:
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


EVIL = b"\x80\x02" + glob("os", "system") + binu("id") + b"\x85R."  # os.system("id")
EVIL_P0 = b"cposix\nsystem\n(S'id'\ntR."
BENIGN = pickle.dumps({"weight": [1.0, 2.0], "step": 3}, protocol=2)
TORCH_LIKE = (b"\x80\x02" + glob("collections", "OrderedDict") + b")R" + binu("w") + glob("torch._utils",
              "_rebuild_tensor_v2") + b"(" + b"(" + binu("storage") + glob("torch", "FloatStorage") + binu("0")
              + binu("cpu") + b"K\x02tQK\x00K\x02\x85K\x01\x85\x89" + glob("collections", "OrderedDict") + b")Rt"
              + b"R" + b"s.")


def worst(data: bytes | memoryview | mmap.mmap, path: str = "blob", options: ScanOptions = ScanOptions()) -> str:
    findings = scan_blob(path, data, options)
    return findings[0].verdict.value if findings else "clean"


def describe(data: bytes, path: str = "blob") -> str:
    return "\n".join(f"{f.verdict.value} {f.path}: {f.message} | {' / '.join(f.evidence)}"
                     for f in scan_blob(path, data))


def test_torch_like_pickle_is_clean() -> None:
    assert worst(TORCH_LIKE) == "clean", describe(TORCH_LIKE)
    assert worst(EVIL) == MAL


# ------------------------------------------------------------------------------------------------ zip writer
@dataclass
class Member:
    name: str
    data: bytes
    local_name: str | None = None
    flags: int = 0
    method: int = 0
    in_central: bool = True
    in_local: bool = True
    crc: int | None = None


def make_zip(members: list[Member], prefix: bytes = b"") -> bytes:
    out = bytearray(prefix)
    central = bytearray()
    count = 0
    for m in members:
        payload = m.data
        if m.method == 8:
            comp = zlib.compressobj(6, zlib.DEFLATED, -15)
            payload = comp.compress(m.data) + comp.flush()
        crc = zlib.crc32(m.data) if m.crc is None else m.crc
        lname = (m.local_name if m.local_name is not None else m.name).encode()
        offset = len(out) - len(prefix)
        if m.in_local:
            out += struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, m.flags, m.method, 0, 0x21, crc, len(payload),
                               len(m.data), len(lname), 0) + lname + payload
        if m.in_central:
            cname = m.name.encode()
            central += struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, m.flags, m.method, 0, 0x21, crc,
                                   len(payload), len(m.data), len(cname), 0, 0, 0, 0, 0, offset) + cname
            count += 1
    cd_offset = len(out) - len(prefix)
    out += central
    out += struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, count, count, len(central), cd_offset, 0)
    return bytes(out)


def torch_zip(data_pkl: bytes, extra: list[Member] | None = None, prefix: str = "archive") -> bytes:
    members = [Member(f"{prefix}/data.pkl", data_pkl), Member(f"{prefix}/data/0", b"\0" * 8),
               Member(f"{prefix}/version", b"3\n"), Member(f"{prefix}/byteorder", b"little")]
    return make_zip(members + (extra or []))


def test_torch_zip_and_twin() -> None:
    assert sniff(torch_zip(TORCH_LIKE)) == "torch-zip"
    assert worst(torch_zip(TORCH_LIKE)) == "clean"
    findings = scan_blob("model.bin", torch_zip(EVIL))
    assert findings[0].verdict is Verdict.MALICIOUS and findings[0].path == "model.bin!archive/data.pkl"
    assert worst(torch_zip(EVIL_P0)) == MAL  # a protocol-0 data.pkl


def test_zip_central_vs_local_name_mismatch() -> None:
    mal = make_zip([Member("weights.txt", EVIL, local_name="data.pkl")])
    out = describe(mal)
    assert worst(mal) == MAL and "disagree about the member name" in out
    assert worst(make_zip([Member("notes.txt", b"hello", local_name="other.txt")])) == REV
    assert worst(make_zip([Member("notes.txt", b"hello")])) == "clean"


@pytest.mark.parametrize("flags", [0x1, 0x20, 0x40, 0x8 | 0x800])
def test_zip_flag_bits_are_ignored_like_torch(flags: int) -> None:
    assert worst(make_zip([Member("data.pkl", EVIL, flags=flags)])) == MAL
    assert worst(make_zip([Member("data.pkl", BENIGN, flags=flags)])) == "clean"


def test_zip_bad_crc_and_pickle_under_other_names() -> None:
    assert worst(make_zip([Member("data.pkl", EVIL, crc=0xDEADBEEF)])) == MAL
    assert worst(make_zip([Member("README.md", EVIL)])) == MAL
    assert worst(make_zip([Member("archive/data/0", EVIL)], )) == MAL  # pickle_file= alternate member
    assert worst(make_zip([Member("README.md", b"# hello\n")])) == "clean"


def test_zip_duplicate_names_every_copy_scanned() -> None:
    mal = make_zip([Member("archive/data.pkl", BENIGN), Member("archive/data.pkl", EVIL)])
    assert worst(mal) == MAL and "appears 2 times" in describe(mal)
    twin = make_zip([Member("archive/data.pkl", BENIGN), Member("archive/version", b"3\n")])
    assert worst(twin) == "clean"


def test_zip_local_only_entry() -> None:
    mal = make_zip([Member("archive/data.pkl", BENIGN), Member("hidden.pkl", EVIL, in_central=False)])
    out = describe(mal)
    assert worst(mal) == MAL and "only in a local header" in out


def test_zip_deflated_nested_and_encrypted() -> None:
    assert worst(make_zip([Member("data.pkl", EVIL, method=8)])) == MAL
    assert worst(make_zip([Member("data.pkl", BENIGN, method=8)])) == "clean"
    nested = make_zip([Member("inner.zip", make_zip([Member("data.pkl", EVIL)]))])
    assert worst(nested) == MAL
    # a really encrypted member (ZipCrypto header + ciphertext) cannot be vouched for: the benign twin blocks too
    encrypted = make_zip([Member("test.txt", bytes(range(12)) + b"\x9a\x17\xe2\x01ciphertext..", flags=0x1)])
    assert worst(encrypted) == UNS
    deflate_enc = make_zip([Member("data.pkl", b"\x00\x01garbage", flags=0x1, method=8)])
    assert worst(deflate_enc) == UNS
    assert worst(make_zip([Member("data.pkl", b"x", method=99)])) == UNS


def test_zip_with_a_prefix_polyglot() -> None:
    inner = torch_zip(TORCH_LIKE)
    assert worst(EVIL + inner) == MAL  # torch.load reads a legacy pickle at offset 0
    assert worst(b"\x00" * 64 + inner) == REV  # unexplained data before the archive
    assert worst(inner) == "clean"


def test_zip_member_cap() -> None:
    many = make_zip([Member(f"f{i}.txt", b"x") for i in range(50)])
    assert worst(many, options=ScanOptions(max_members=10)) == UNS
    assert worst(many) == "clean"


def test_decompression_cap() -> None:
    bomb = make_zip([Member("data.pkl", b"\0" * (4 << 20), method=8)])
    assert worst(bomb, options=ScanOptions(max_decompressed=1 << 20)) == UNS


def test_nesting_cap() -> None:
    blob = make_zip([Member("data.pkl", BENIGN)])
    for _ in range(6):
        blob = make_zip([Member("inner.zip", blob)])
    assert worst(blob) == UNS
    assert worst(blob, options=ScanOptions(max_depth=10)) == "clean"


def test_torchscript_archive_needs_review() -> None:
    ts = make_zip([Member("m/constants.pkl", TORCH_LIKE), Member("m/code/__torch__/m.py", b"def forward(self): ..."),
                   Member("m/data.pkl", BENIGN)])
    assert sniff(ts) == "torchscript"
    assert worst(ts) == REV and "TorchScript" in describe(ts)


# ------------------------------------------------------------------------------------------------ sniffing
def test_sniffing_ignores_the_extension() -> None:
    for name in ("model.safetensors", "tokenizer.model", "weights.th", "noext", "pytorch_model.bin"):
        assert worst(EVIL, name) == MAL
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    assert worst(png, "image.pt") == "clean"
    assert sniff(png) is None
    assert worst(b"just some text\n", "README.md") == "clean"
    assert worst(b"", "empty.bin") == "clean"


TEXTS = {
    "requirements.txt": b"cython\nnumpy\nrequests\ntorch>=2.1\n",
    "model.py": b"class Net:\n    pass\n",
    "CMakeLists.txt": b"cmake_minimum_required(VERSION 3.10)\nproject(x)\n",
    "notes.txt": b"copyright\nnotice\nReserved\n(c) 2024\n",
    "config.yaml": b"checkpoint:\n  path: x\n",
    "README.md": b"# Title\n\nSome text.\n",
    "vocab.txt": b"[PAD]\n[UNK]\nthe\n",
    "data.json": b'{"a": [1, 2, 3]}',
    "merges.txt": b"#version: 0.2\nt h\n",
    "setup.py": b"import os\nimport sys\n",
}


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_text_files_are_not_pickles(name: str) -> None:
    # scan_blob is called on every pushed file: text that starts like protocol-0 opcodes must stay clean.
    assert worst(TEXTS[name], name) == "clean", describe(TEXTS[name], name)


def test_text_starting_like_a_known_global_is_still_a_pickle() -> None:
    # ... while the same shape with a known-bad global is what broken_model.pkl (picklescan corpus) looks like.
    assert worst(b"cbuiltins\nexec\n(X>\nprint(1)\ntR.") == MAL
    assert worst(b"cthis\nx\nsome text") == MAL


# ------------------------------------------------------------------------------------------------ legacy torch
MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19\x2e"


def stacked(pickles: list[bytes]) -> bytes:
    return MAGIC + b"".join(pickles) + b"\x01\x00\x00\x00\x00\x00\x00\x00" + b"\x80\x02cos\nsystem\n" * 4


@pytest.mark.parametrize("slot", range(4))
def test_legacy_stacked_payload_in_any_pickle(slot: int) -> None:
    parts = [pickle.dumps(1001, protocol=2), pickle.dumps({"little_endian": True}, protocol=2), TORCH_LIKE,
             pickle.dumps(["0"], protocol=2)]
    assert sniff(stacked(parts)) == "torch-legacy"
    assert worst(stacked(parts)) == "clean"  # the raw storage tail (which here looks like opcodes) is never parsed
    parts[slot] = EVIL
    assert worst(stacked(parts)) == MAL


def test_legacy_magic_made_by_eval_is_malicious() -> None:
    # GHSA-97f8-7cmv-76j2: the magic number produced by eval("0x1950a86a20f9469cfc6c")
    magic = b"\x80\x02" + glob("builtins", "eval") + binu("0x1950a86a20f9469cfc6c") + b"\x85R."
    assert worst(magic + pickle.dumps(1001, protocol=2)) == MAL


def tar_pt(pickle_member: bytes, *, duplicate: bytes | None = None) -> bytes:
    storage_rec = (b"\x80\x02(" + binu("0") + binu("cpu") + glob("torch", "FloatStorage") + b"t.")
    storages = pickle.dumps(1, protocol=2) + storage_rec + struct.pack("<q", 2) + b"\x80\x02cos\nsystem\n"[:8]
    tensors = pickle.dumps(0, protocol=2)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        items = [("sys_info", pickle.dumps({"protocol_version": 1001}, protocol=2)), ("pickle", pickle_member),
                 ("storages", storages), ("tensors", tensors)]
        if duplicate is not None:
            items.append(("pickle", duplicate))
        for name, content in items:
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def test_legacy_tar_pt() -> None:
    assert sniff(tar_pt(TORCH_LIKE)) == "tar"
    assert worst(tar_pt(TORCH_LIKE)) == "clean", describe(tar_pt(TORCH_LIKE))
    assert worst(tar_pt(EVIL)) == MAL
    dup = tar_pt(TORCH_LIKE, duplicate=EVIL)
    assert worst(dup) == MAL and "appears 2 times" in describe(dup)


# ------------------------------------------------------------------------------------------------ joblib
def dtype(descr: str) -> bytes:
    return (glob("numpy", "dtype") + binu(descr) + b"\x89\x88\x87R" + b"(K\x03" + binu("<") + b"NNNJ\xff\xff\xff\xff"
            + b"J\xff\xff\xff\xffK\x00tb")


def joblib_pickle(tail: bytes, *, descr: str = "f8", inline: bytes | None = None) -> bytes:
    wrapper = (glob("joblib.numpy_pickle", "NumpyArrayWrapper") + b")\x81" + b"}(" + binu("subclass")
               + glob("numpy", "ndarray") + binu("shape") + b"K\x02\x85" + binu("order") + binu("C") + binu("dtype")
               + dtype(descr) + binu("allow_mmap") + b"\x89" + binu("numpy_array_alignment_bytes")
               + (b"N" if inline is not None else b"K\x10") + b"ub")
    if inline is not None:  # object arrays: an inline pickle, no padding (joblib write_array)
        span = inline
    else:  # padding-length byte, 0xff padding, then 16 raw bytes that happen to look like opcodes
        span = b"\x03\xff\xff\xff" + (b"\x80\x02cos\nsystem\n" + b"\0" * 16)[:16]
    return b"\x80\x02" + b"}" + binu("model") + wrapper + span + b"s" + tail + b"."


JOBLIB = ScanOptions(profile="joblib")


def test_joblib_payload_after_an_inline_array() -> None:
    benign = joblib_pickle(b"")
    assert worst(benign, options=JOBLIB) == "clean", describe(benign)
    assert worst(benign) == REV  # joblib wrappers are not on the torch profile
    mal = joblib_pickle(b"0" + glob("os", "system") + binu("id") + b"\x85R")
    assert worst(mal, options=JOBLIB) == MAL


def test_joblib_array_right_after_a_committed_frame() -> None:
    # joblib commits the pickler's FRAME before writing raw array bytes: a raw read that starts at the frame end is
    # not a straddle, but an opcode argument that crosses it is.
    body = joblib_pickle(b"")[2:]
    cut = body.index(b"\x03\xff\xff\xff")
    framed = b"\x80\x04\x95" + struct.pack("<Q", cut) + body[:cut] + body[cut:]
    assert worst(framed, options=JOBLIB) == "clean", describe(framed)
    straddle = b"\x80\x04\x95" + struct.pack("<Q", cut - 3) + body
    assert worst(straddle, options=JOBLIB) == UNS


def test_joblib_object_array_inner_pickle() -> None:
    inner_ok = pickle.dumps([1, 2], protocol=2)
    assert worst(joblib_pickle(b"", descr="O8", inline=inner_ok), options=JOBLIB) == "clean"
    assert worst(joblib_pickle(b"", descr="O8", inline=EVIL), options=JOBLIB) == MAL


@pytest.mark.parametrize("kind", ["zlib", "gzip", "bz2", "xz", "lzma"])
def test_compressed_joblib(kind: str) -> None:
    compress = {"zlib": zlib.compress, "gzip": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress,
                "lzma": lambda d: lzma.compress(d, format=lzma.FORMAT_ALONE)}[kind]
    mal = compress(joblib_pickle(b"0" + glob("os", "system") + binu("id") + b"\x85R"))
    assert sniff(mal) == kind
    assert worst(mal, options=JOBLIB) == MAL
    assert worst(compress(joblib_pickle(b"")), options=JOBLIB) == "clean"


def test_legacy_joblib_zfile() -> None:
    def zfile(payload: bytes) -> bytes:
        return b"ZF" + hex(len(payload)).encode().ljust(19) + b" " + zlib.compress(payload)

    assert sniff(zfile(EVIL)) == "joblib-zfile"
    assert worst(zfile(EVIL)) == MAL
    assert worst(zfile(BENIGN)) == "clean"
    assert worst(b"ZF0x10" + b" " * 16 + b"not zlib") == UNS


def test_unsupported_containers_block() -> None:
    assert worst(b"7z\xbc\xaf'\x1c\x00\x04" + b"\x00" * 32, "weights.7z") == UNS
    assert worst(b"Rar!\x1a\x07\x01\x00" + b"\x00" * 32, "weights.bin") == UNS


def test_unsupported_compression_blocks() -> None:
    assert worst(b"\x04\x22\x4d\x18" + b"\x00" * 32) == UNS  # lz4 frame without the optional parser
    assert worst(b"\x1f\x8b\x08\x00garbage") == UNS


# ------------------------------------------------------------------------------------------------ numpy
def npy(descr: object, shape: tuple[int, ...], body: bytes) -> bytes:
    header = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode()
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + body


OBJ_ARRAY = (b"\x80\x03" + glob("numpy.core.multiarray", "_reconstruct") + glob("numpy", "ndarray") + b"K\x00\x85C"
             + b"\x01b\x87R.")


def test_npy_object_arrays() -> None:
    assert worst(npy("<f8", (2,), b"\0" * 16)) == "clean"
    assert worst(npy("|O", (1,), OBJ_ARRAY)) == "clean"
    assert worst(npy("|O", (1,), EVIL)) == MAL
    structured = [("a", "<f4"), ("b", "|O")]
    assert worst(npy(structured, (1,), EVIL)) == MAL
    assert worst(npy([("a", "<f4")], (1,), EVIL)) == "clean"  # no object field: the bytes are data, never unpickled
    assert worst(b"\x93NUMPY\x01\x00\xff\x00{'descr': 1") == UNS


def test_npz_with_an_object_member() -> None:
    ok = make_zip([Member("a.npy", npy("<i8", (1,), b"\0" * 8)), Member("b.npy", npy("|O", (1,), OBJ_ARRAY))])
    assert sniff(ok) == "npz" and worst(ok) == "clean"
    bad = make_zip([Member("a.npy", npy("<i8", (1,), b"\0" * 8)), Member("b.npy", npy("|O", (1,), EVIL), method=8)])
    assert worst(bad) == MAL


# ------------------------------------------------------------------------------------------------ keras
def keras_zip(config: object) -> bytes:
    return make_zip([Member("metadata.json", b'{"keras_version": "3.5.0"}'),
                     Member("config.json", json.dumps(config).encode()),
                     Member("model.weights.h5", b"\x89HDF\r\n\x1a\n" + b"\0" * 32)])


def dense(name: str) -> dict[str, object]:
    return {"module": "keras.layers", "class_name": "Dense", "config": {"name": name, "units": 4},
            "registered_name": None}


def functional(layers: list[object]) -> dict[str, object]:
    return {"module": "keras.src.models.functional", "class_name": "Functional",
            "config": {"name": "m", "layers": layers}, "registered_name": "Functional"}


def test_keras_lambda_in_a_nested_model() -> None:
    benign = keras_zip(functional([dense("a"), functional([dense("b")])]))
    assert sniff(benign) == "keras" and worst(benign) == "clean"
    lam = {"module": "keras.layers", "class_name": "Lambda", "config": {"function": {"code": "4wEAAAAA"}}}
    nested = keras_zip(functional([dense("a"), functional([dense("b"), lam])]))
    out = describe(nested)
    assert worst(nested) == REV and "Lambda" in out and "config.config.layers[1].config.layers[1]" in out
    tfsm = {"module": "keras.layers", "class_name": "TFSMLayer", "config": {}}
    assert worst(keras_zip(functional([tfsm]))) == REV


def test_keras_module_injection() -> None:
    cve = {"module": "os", "class_name": "system", "config": {}}  # CVE-2025-1550 shape
    assert worst(keras_zip(functional([dense("a"), cve]))) == MAL
    foreign = {"module": "mypkg.layers", "class_name": "Custom", "config": {}}
    assert worst(keras_zip(functional([foreign]))) == REV
    assert worst(make_zip([Member("config.json", b"{not json"), Member("metadata.json", b"{}")])) == UNS


def test_keras_h5_lambda_by_byte_search() -> None:
    h5 = b"\x89HDF\r\n\x1a\n" + b"\0" * 64 + b'{"class_name": "Lambda", "config": {}}'
    assert worst(h5) == REV
    assert worst(b"\x89HDF\r\n\x1a\n" + b"\0" * 64 + b'{"class_name": "Dense"}') == "clean"
    inj = b"\x89HDF\r\n\x1a\n" + b'{"module": "subprocess", "class_name": "Popen"}'
    assert worst(inj) == MAL


# ------------------------------------------------------------------------------------------------ safetensors
def safetensors(header: object, body: bytes, *, raw_header: bytes | None = None) -> bytes:
    text = raw_header if raw_header is not None else json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + body


GOOD_HEADER = {"__metadata__": {"format": "pt"}, "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
               "b": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [8, 16]}}


def test_valid_safetensors_is_clean() -> None:
    blob = safetensors(GOOD_HEADER, b"\0" * 16)
    assert sniff(blob) == "safetensors" and worst(blob, "model.safetensors") == "clean"


BAD_SAFETENSORS = {
    "overlap": safetensors({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                            "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, b"\0" * 12),
    "hole": safetensors({"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}, b"\0" * 16),
    "size": safetensors({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8),
    "dtype": safetensors({"a": {"dtype": "PICKLE", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8),
    "trailing": safetensors({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8 + EVIL),
    "duplicate": safetensors(None, b"\0" * 8, raw_header=b'{"a": {"dtype": "F32", "shape": [2], "data_offsets": '
                             b'[0, 8]}, "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}'),
    "metadata": safetensors({"__metadata__": {"x": 1}}, b""),
    "not-json": safetensors(None, b"", raw_header=b"{nope"),
    "not-brace": struct.pack("<Q", 8) + b"[]      ",
    "too-big": struct.pack("<Q", 200_000_000) + b"{" + b" " * 64,
    "past-end": struct.pack("<Q", 5000) + b"{}",
}


@pytest.mark.parametrize("case", sorted(BAD_SAFETENSORS))
def test_malformed_safetensors_is_never_clean(case: str) -> None:
    verdict = worst(BAD_SAFETENSORS[case], "model.safetensors")
    assert verdict in (UNS, MAL), describe(BAD_SAFETENSORS[case], "model.safetensors")
    assert "safetensors" in describe(BAD_SAFETENSORS[case], "model.safetensors")


def test_pickle_disguised_as_safetensors() -> None:
    assert worst(EVIL, "model.safetensors") == MAL


def test_safetensors_tensor_data_is_not_read(tmp_path: Path) -> None:
    # 1 GiB of tensor data in a sparse file: validation reads the 8 + N header bytes only.
    header = json.dumps({"w": {"dtype": "F32", "shape": [1 << 28], "data_offsets": [0, 1 << 30]}}).encode()
    header += b" " * (-len(header) % 8)
    path = tmp_path / "big.safetensors"
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(header)) + header)
        fh.truncate(8 + len(header) + (1 << 30))
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        before = rss_file()
        assert worst(mm, "big.safetensors") == "clean"
        touched = rss_file() - before
    assert touched < TOUCH_LIMIT, f"{touched} bytes of the 1 GiB mapping were read"


# ------------------------------------------------------------------------------------------------ 1 GB torch zip
def test_1gb_torch_zip_scans_without_reading_tensor_data(tmp_path: Path) -> None:
    path = tmp_path / "big.pt"
    size = 1 << 30
    name = b"archive/data/0"
    with open(path, "wb") as fh:
        pkl = TORCH_LIKE
        entries = []
        for member, payload_len in ((b"archive/data.pkl", len(pkl)), (name, size)):
            offset = fh.tell()
            fh.write(struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 0, 0, 0x21, 0, payload_len, payload_len,
                                 len(member), 0) + member)
            if member == name:
                fh.seek(payload_len, 1)  # sparse: never written
            else:
                fh.write(pkl)
            entries.append((member, payload_len, offset))
        cd_offset = fh.tell()
        for member, payload_len, offset in entries:
            fh.write(struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 0, 0, 0x21, 0, payload_len,
                                 payload_len, len(member), 0, 0, 0, 0, 0, offset) + member)
        cd_size = fh.tell() - cd_offset
        fh.write(struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 2, 2, cd_size, cd_offset, 0))
    assert path.stat().st_size > size
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        before = rss_file()
        findings = scan_blob("big.pt", mm)
        touched = rss_file() - before
    assert findings == []
    assert touched < TOUCH_LIMIT, f"{touched} bytes of the 1 GiB mapping were read"


def test_the_touch_counter_sees_a_full_read(tmp_path: Path) -> None:
    # Positive control for the two tests above: reading the whole sparse mapping shows up as resident file pages.
    path = tmp_path / "sparse"
    with open(path, "wb") as fh:
        fh.truncate(1 << 28)
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        before = rss_file()
        assert mm[::4096].count(0) == (1 << 28) // 4096  # one byte per page
        assert rss_file() - before > TOUCH_LIMIT


def test_size_cap_and_random_input_never_raise() -> None:
    import random

    assert worst(EVIL + b"\0" * 100, options=ScanOptions(max_bytes=64)) == UNS
    rng = random.Random(7)
    seeds = [EVIL, BENIGN, TORCH_LIKE, torch_zip(TORCH_LIKE), npy("|O", (1,), EVIL), tar_pt(TORCH_LIKE),
             safetensors(GOOD_HEADER, b"\0" * 16), zlib.compress(EVIL)]
    for _ in range(300):
        blob = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 6)):
            op = rng.randrange(3)
            pos = rng.randrange(len(blob))
            if op == 0:
                blob[pos] = rng.randrange(256)
            elif op == 1:
                del blob[pos:pos + rng.randint(1, 16)]
            else:
                blob[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        findings = scan_blob("fuzz", bytes(blob))
        assert not any("internal error" in f.message for f in findings), [f.message for f in findings]
    for _ in range(200):
        blob = bytes(rng.randrange(256) for _ in range(rng.randint(0, 600)))
        assert not any("internal error" in f.message for f in scan_blob("rand", blob))


@pytest.mark.parametrize("method", ["ZIP_BZIP2", "ZIP_LZMA", "ZIP_DEFLATED"])
def test_zip_members_written_by_zipfile(method: str) -> None:
    import zipfile

    for payload, expected in ((EVIL, MAL), (BENIGN, "clean")):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=getattr(zipfile, method)) as zf:
            zf.writestr("archive/data.pkl", payload)
            zf.writestr("archive/version", "3\n")
        assert worst(buf.getvalue()) == expected, describe(buf.getvalue())


def test_nemo_tar_target_and_duplicate_weights() -> None:
    def nemo(config: bytes, weights: list[bytes]) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for name, content in [("model_config.yaml", config)] + [("model_weights.ckpt", w) for w in weights]:
                info = tarfile.TarInfo(name)
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
        return buf.getvalue()

    benign = nemo(b"name: asr\nsample_rate: 16000\n", [torch_zip(TORCH_LIKE)])
    assert worst(benign, "model.nemo") == "clean", describe(benign)
    hydra = nemo(b"model:\n  _target_: nemo.collections.asr.models.EncDecCTCModel\n", [torch_zip(TORCH_LIKE)])
    assert worst(hydra, "model.nemo") == REV
    evil = nemo(b"model:\n  _target_: shutil.os.system\n", [torch_zip(TORCH_LIKE)])
    assert worst(evil, "model.nemo") == MAL
    dup = nemo(b"name: asr\n", [torch_zip(TORCH_LIKE), torch_zip(EVIL)])
    assert worst(dup, "model.nemo") == MAL and "appears 2 times" in describe(dup, "model.nemo")


def test_saved_model_py_func() -> None:
    graph = b"\x0a\x0csome_graph\x12\x0bPyFuncStateless\x1a\x01x"
    assert worst(make_zip([Member("m/saved_model.pb", graph)])) == REV
    assert worst(make_zip([Member("m/saved_model.pb", b"\x0a\x05MatMul")])) == "clean"


def test_first_byte_prefilter_is_exactly_the_unpicklers_opcode_set() -> None:
    import pickletools

    from gatekeeper.detectors.content import _PICKLE_FIRST_BYTES

    assert _PICKLE_FIRST_BYTES == frozenset(op.code.encode("latin-1")[0] for op in pickletools.opcodes)


def test_protocol0_payload_behind_a_comment_line_is_not_a_pickle_but_one_at_byte_0_is() -> None:
    from gatekeeper.detectors.content import scan_blob
    from gatekeeper.model import Verdict

    payload = b"cos\nsystem\n(S'id'\ntR."
    assert [f.verdict for f in scan_blob("x.txt", payload)][:1] == [Verdict.MALICIOUS]
    # pickle.loads(b"#" + payload) raises at byte 0 before executing anything
    assert scan_blob("x.txt", b"#" + payload) == []
