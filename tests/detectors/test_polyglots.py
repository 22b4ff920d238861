"""Polyglots: one file, two formats, judged under every reading a loader applies to it (issue 10 item 1).

Each malicious sample is first shown to really reach its payload under the loader that reads it that way (the
recording oracle for ``pickle.load``; ``tarfile``/``zipfile`` for the container side), then the scanner must call it
malicious; each benign twin (the same container without the second reading's payload) must not be refused.
"""

from __future__ import annotations

import gzip
import io
import struct
import tarfile
import zipfile

import pytest

from oracle import NATIVE, PURE, record
from test_containers_formats import EVIL, TORCH_LIKE, Member, joblib_pickle, make_zip, torch_zip
from gatekeeper.detectors.content import ScanOptions, scan_blob
from gatekeeper.model import Verdict

PAYLOAD_P0 = b"cos\nsystem\n(S'id'\ntR."  # protocol 0: no magic, fits in a tar name field


def verdicts(data: bytes, path: str = "model.bin", options: ScanOptions = ScanOptions()) -> set[Verdict]:
    return {f.verdict for f in scan_blob(path, data, options)}


def reaches_system(data: bytes) -> bool:
    """pickle.load (C and pure-Python) resolves os.system / posix.system before anything stops it."""
    return all(("os", "system") in record(data, unpickler=u).globals for u in (PURE, NATIVE))


# ------------------------------------------------------------------------------------------------ builders
def tar_with_first_name(name: bytes, content: bytes = b"weights") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        info = tarfile.TarInfo(name.decode("latin-1"))
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def gguf(payload: bytes | None) -> bytes:
    """A GGUF v3 header with one string metadata value; with ``payload`` it is also a pickle.

    pickle.load reads "G" as BINFLOAT (8 bytes: "GUF", the version, the first tensor-count byte), then byte 9:
    SHORT_BINBYTES whose length jumps to the metadata string value, where the payload sits.
    """
    head = b"GGUF" + struct.pack("<I", 3)
    value = payload if payload is not None else b"llama"
    if payload is None:
        tensor_count = struct.pack("<Q", 0)
    else:
        tensor_count = b"\x00C" + bytes([48 - 11]) + b"\x00" * 5
    kv = struct.pack("<Q", 4) + b"name" + struct.pack("<I", 8) + struct.pack("<Q", len(value)) + value
    return head + tensor_count + struct.pack("<Q", 1) + kv


def bz2_magic_then_pickle(payload: bytes) -> bytes:
    # "BZh" is BINBYTES with a 4-byte length "Zh\0\0" (26714): skip exactly that, then the payload.
    return b"BZh\x00\x00" + b"\x00" * 0x685A + payload


def npy(descr: object = "<f4", body: bytes = b"\x00" * 12) -> bytes:
    header = f"{{'descr': {descr!r}, 'fortran_order': False, 'shape': (3,), }}".encode()
    header += b" " * (-(10 + len(header) + 1) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + body


# ------------------------------------------------------------------------------------------------ the samples
def test_tar_whose_first_member_name_is_a_pickle() -> None:
    mal = tar_with_first_name(PAYLOAD_P0)
    assert reaches_system(mal)
    assert tarfile.open(fileobj=io.BytesIO(mal)).getnames() == [PAYLOAD_P0.decode()]
    assert Verdict.MALICIOUS in verdicts(mal)
    twin = tar_with_first_name(b"weights.bin")
    assert not record(twin).globals
    assert verdicts(twin) == set()


def test_gguf_header_that_is_also_a_pickle() -> None:
    mal = gguf(PAYLOAD_P0)
    assert mal.startswith(b"GGUF") and reaches_system(mal)
    assert Verdict.MALICIOUS in verdicts(mal, "model.gguf")
    twin = gguf(None)
    assert record(twin).error is not None and not record(twin).globals
    assert verdicts(twin, "model.gguf") == set()


def test_bz2_magic_that_is_also_a_pickle() -> None:
    mal = bz2_magic_then_pickle(EVIL)
    assert reaches_system(mal)
    assert Verdict.MALICIOUS in verdicts(mal, "model.joblib")


def test_gzip_stream_with_a_zip_behind_it() -> None:
    # joblib/gzip read the stream from the start; zipfile (np.load, Keras) finds the end record.
    benign_stream = gzip.compress(TORCH_LIKE)
    mal = benign_stream + make_zip([Member("data.pkl", EVIL)])
    assert zipfile.ZipFile(io.BytesIO(mal)).read("data.pkl") == EVIL and reaches_system(EVIL)
    assert Verdict.MALICIOUS in verdicts(mal)
    assert verdicts(benign_stream) == set()  # the twin: the gzip file alone
    # and the other way round: a malicious stream in front of a benign archive
    mal2 = gzip.compress(EVIL) + make_zip([Member("data.pkl", TORCH_LIKE)])
    assert Verdict.MALICIOUS in verdicts(mal2)


def test_pickle_with_a_zip_behind_it() -> None:
    inner = torch_zip(TORCH_LIKE)
    assert reaches_system(EVIL + inner)  # torch.load: no PK at byte 0, legacy path unpickles from byte 0
    assert Verdict.MALICIOUS in verdicts(EVIL + inner)
    mal = TORCH_LIKE + torch_zip(EVIL)
    assert zipfile.ZipFile(io.BytesIO(mal)).read("archive/data.pkl") == EVIL
    assert Verdict.MALICIOUS in verdicts(mal)
    assert verdicts(inner) == set()


def test_npy_with_a_zip_behind_it() -> None:
    mal = npy() + make_zip([Member("arr.pkl", EVIL)])
    assert zipfile.ZipFile(io.BytesIO(mal)).read("arr.pkl") == EVIL
    assert Verdict.MALICIOUS in verdicts(mal, "x.npy")
    assert verdicts(npy(), "x.npy") == set()


def test_tar_with_a_zip_as_last_member_is_not_a_refusal() -> None:
    # the zip's end record is also the end of the tar's data: both readings see the same member, nothing unexplained
    assert verdicts(tar_with_first_name(b"model.pt", torch_zip(TORCH_LIKE)), "bundle.tar") == set()
    assert Verdict.MALICIOUS in verdicts(tar_with_first_name(b"model.pt", torch_zip(EVIL)), "bundle.tar")


def test_joblib_raw_array_bytes_that_pickle_load_runs() -> None:
    # joblib.load reads a padding-length byte, skips that much padding and the 16 array bytes; pickle.load runs the
    # same bytes as opcodes. Padding length 0x30 is POP; the padding carries the payload.
    wrapped = joblib_pickle(b"")
    head, _, tail = wrapped.partition(b"\x03\xff\xff\xff")
    tail = tail[16:]
    padding = PAYLOAD_P0[:-1] + b"0"  # ... tR then POP the result
    padding += b"N0" * ((48 - len(padding)) // 2) + b"N" * ((48 - len(padding)) % 2)
    mal = head + b"0" + padding + b"N" * 16 + tail
    assert len(padding) == 48
    assert ("os", "system") in record(mal).globals
    joblib = ScanOptions(profile="joblib")
    assert Verdict.MALICIOUS in verdicts(mal, "model.joblib", joblib)
    assert verdicts(wrapped, "model.joblib", joblib) == set()  # the twin: real 0xff padding


def test_zip_whose_local_header_starts_a_persistent_id_is_not_a_pickle() -> None:
    # "PK" is PERSID: without a persistent_load every loader stops there, whatever follows the line.
    archive = make_zip([Member("a.npy", npy())])
    assert record(archive).error is not None and not record(archive).globals
    assert verdicts(archive, "x.npz") == set()


# ------------------------------------------------------------------------------------------------ formats as their
# libraries parse them (issue 10 item 3)
H5 = b"\x89HDF\r\n\x1a\n" + b"\0" * 64


@pytest.mark.parametrize("config", [
    b'{"class_name":"Lambda","config":{}}',
    b'{ "class_name" :\n\t"Lambda", "config": {} }',
    b'{"class_name": "\\u004cambda", "config": {}}',
    b'{"class_name": "Sequential", "config": {"layers": [{"class_name": "Lam\\u0062da", "config": {}}]}}',
])
def test_keras_h5_config_is_parsed_as_json(config: bytes) -> None:
    import json
    assert "Lambda" in json.dumps(json.loads(config))  # what Keras reads
    assert Verdict.REVIEW in verdicts(H5 + config + b"\0" + b"\x01" * 32, "model.h5")
    assert verdicts(H5 + b'{"class_name": "Dense", "config": {"units": 3}}\0', "model.h5") == set()


def test_h5_module_injection_with_escapes_is_malicious() -> None:
    inj = H5 + b'{"module": "sub\\u0070rocess", "class_name": "Popen", "config": {}}\0'
    assert Verdict.MALICIOUS in verdicts(inj, "model.h5")


def test_h5_that_mentions_layers_but_does_not_parse_is_unscannable() -> None:
    assert Verdict.UNSCANNABLE in verdicts(H5 + b'{"class_name": "Lambda", broken', "model.h5")


def test_zip_member_names_are_cut_at_nul_as_zipfile_does() -> None:
    config = b'{"class_name": "Functional", "config": {"layers": [{"class_name": "Lambda", "config": {}}]}}'
    archive = make_zip([Member("config.json\0.txt", config), Member("metadata.json", b"{}"),
                        Member("model.weights.h5", H5)])
    assert zipfile.ZipFile(io.BytesIO(archive)).read("config.json") == config  # what keras.saving reads
    assert Verdict.REVIEW in verdicts(archive, "model.keras")
