"""Second attack round (issue 10): files a real loader reads differently from the scanner.

Each malicious sample is built by hand, then shown to reach ``os.system`` the way its loader reads it: the zip side
with Python's own ``zipfile`` (what ``np.load`` and Keras use; reading member bytes runs nothing), the npy side with
numpy's own header parser, the pickle side with the recording oracle (a ``find_class`` that records and returns inert
stubs). Only then is the scanner's verdict asserted. Every attack has a benign twin that must not be refused.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import struct
import tarfile
import zipfile
import zlib

import numpy as np
import pytest

from oracle import NATIVE, PURE, record
from test_containers_formats import EVIL, TORCH_LIKE, dense, functional, keras_zip
from test_polyglots import npy
from gatekeeper.detectors.content import ScanOptions, scan_blob
from gatekeeper.model import Verdict

EVIL_NPY = npy("|O", EVIL)  # an object array whose data is the pickle np.load(allow_pickle=True) unpickles
PLAIN_NPY = npy()


def verdicts(data: bytes, path: str = "weights.npz") -> set[Verdict]:
    return {f.verdict for f in scan_blob(path, data, ScanOptions())}


def npy_reaches_system(member: bytes) -> bool:
    """numpy's own header parser says the data is unpickled, and the pickle there resolves os.system."""
    fp = io.BytesIO(member)
    version = np.lib.format.read_magic(fp)
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = read_header(fp)  # numpy's own header reader: nothing after the header is read
    if not dtype.hasobject:
        return False
    rest = member[fp.tell():]
    return all(("os", "system") in record(rest, unpickler=u).globals for u in (PURE, NATIVE))


def zipfile_reads(archive: bytes, name: str) -> bytes:
    return zipfile.ZipFile(io.BytesIO(archive)).read(name)


# ------------------------------------------------------------------------------------------------ a zip writer with
# every field in the attacker's hands
def local(name: str, data: bytes) -> bytes:
    n = name.encode()
    return struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 0, 0, 0x21, zlib.crc32(data), len(data), len(data),
                       len(n), 0) + n + data


def central(name: str, data: bytes, offset: int) -> bytes:
    n = name.encode()
    return struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 0, 0, 0x21, zlib.crc32(data), len(data),
                       len(data), len(n), 0, 0, 0, 0, 0, offset) + n


def eocd(count: int, cd_size: int, cd_offset: int, comment_len: int = 0) -> bytes:
    return struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, count, count, cd_size, cd_offset, comment_len)


def archive(members: list[tuple[str, bytes]], *, gap: bytes = b"") -> tuple[bytearray, bytes, int]:
    """Local records (``gap`` between them breaks a reader that walks local headers) and their directory."""
    out, cd = bytearray(), bytearray()
    for name, data in members:
        cd += central(name, data, len(out))
        out += local(name, data) + gap
    return out, bytes(cd), len(out)


# ------------------------------------------------------------------------------------------------ zip: directory
# readings. zipfile reads the central directory by its byte size, takes the LAST end record with a complete 22-byte
# body whatever its comment length says, and always applies a zip64 locator in front of it.
def test_directory_read_by_size_not_by_count() -> None:
    out, cd, cd_offset = archive([("a.npy", PLAIN_NPY), ("b.npy", EVIL_NPY)], gap=b"\0" * 4)
    mal = bytes(out + cd + eocd(1, len(cd), cd_offset))  # the count says one member, the directory holds two
    assert zipfile.ZipFile(io.BytesIO(mal)).namelist() == ["a.npy", "b.npy"]
    assert npy_reaches_system(zipfile_reads(mal, "b.npy"))
    assert Verdict.MALICIOUS in verdicts(mal)
    twin_out, twin_cd, twin_offset = archive([("a.npy", PLAIN_NPY), ("b.npy", PLAIN_NPY)], gap=b"\0" * 4)
    assert verdicts(bytes(twin_out + twin_cd + eocd(2, len(twin_cd), twin_offset))) == set()


def two_archives(first: list[tuple[str, bytes]], second: list[tuple[str, bytes]]) -> tuple[bytes, bytes, int]:
    """``first`` as a complete archive, then ``second``'s records after it (offsets relative to the file start)."""
    out, cd, cd_offset = archive(first)
    head = bytes(out + cd + eocd(len(first), len(cd), cd_offset))
    out2, cd2 = bytearray(head), bytearray()
    for name, data in second:
        cd2 += central(name, data, len(out2))
        out2 += local(name, data)
    return bytes(out2), bytes(cd2), len(out2)


def test_last_end_record_wins_even_when_its_comment_overruns_the_file() -> None:
    body, cd2, cd2_offset = two_archives([("a.npy", PLAIN_NPY)], [("b.npy", EVIL_NPY)])
    mal = body + cd2 + eocd(1, len(cd2), cd2_offset, comment_len=0xFFFF)
    assert zipfile.ZipFile(io.BytesIO(mal)).namelist() == ["b.npy"]
    assert npy_reaches_system(zipfile_reads(mal, "b.npy"))
    assert Verdict.MALICIOUS in verdicts(mal)
    body, cd2, cd2_offset = two_archives([("a.npy", PLAIN_NPY)], [("b.npy", PLAIN_NPY)])
    assert Verdict.MALICIOUS not in verdicts(body + cd2 + eocd(1, len(cd2), cd2_offset, comment_len=0xFFFF))


def zip64_tail(count: int, cd_size: int, cd_offset: int, at: int) -> bytes:
    record = struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, cd_size, cd_offset)
    return record + struct.pack("<4sIQI", b"PK\x06\x07", 0, at, 1)


def zip64_npz() -> bytes:
    """An npz whose plain end record lists a benign array and whose zip64 record lists an object array (os.system)."""
    body, cd2, cd2_offset = two_archives([("a.npy", PLAIN_NPY)], [("b.npy", EVIL_NPY)])
    first_cd_offset = body.find(b"PK\x01\x02")
    first_cd_size = body.find(b"PK\x05\x06") - first_cd_offset
    return body + cd2 + zip64_tail(1, len(cd2), cd2_offset, at=len(body) + len(cd2)) + eocd(
        1, first_cd_size, first_cd_offset)


def test_zip64_locator_overrides_a_plain_end_record() -> None:
    # The plain end record points at a benign directory; a zip64 record in front of it (no field saturated, so a
    # reader that only consults zip64 for 0xFFFF values ignores it) points at another one. zipfile applies it.
    mal = zip64_npz()
    assert zipfile.ZipFile(io.BytesIO(mal)).namelist() == ["b.npy"]
    assert npy_reaches_system(zipfile_reads(mal, "b.npy"))
    assert Verdict.MALICIOUS in verdicts(mal)
    body, cd2, cd2_offset = two_archives([("a.npy", PLAIN_NPY)], [("b.npy", PLAIN_NPY)])
    first_cd_offset = body.find(b"PK\x01\x02")
    first_cd_size = body.find(b"PK\x05\x06") - first_cd_offset
    tail = zip64_tail(1, len(cd2), cd2_offset, at=len(body) + len(cd2))
    assert Verdict.MALICIOUS not in verdicts(body + cd2 + tail + eocd(1, first_cd_size, first_cd_offset))


# ------------------------------------------------------------------------------------------------ torch storages
# are data to torch.load, not to np.load: a member under <prefix>/data/ of a PyTorch archive that is an object .npy
# is unpickled by np.load(allow_pickle=True)[key] (NpzFile reads any member that starts with the npy magic).
def test_object_npy_hidden_among_torch_storages() -> None:
    out, cd, cd_offset = archive([("archive/data.pkl", TORCH_LIKE), ("archive/data/0", b"\0" * 8),
                                  ("archive/data/1.npy", EVIL_NPY), ("archive/version", b"3\n")])
    mal = bytes(out + cd + eocd(4, len(cd), cd_offset))
    assert npy_reaches_system(zipfile_reads(mal, "archive/data/1.npy"))
    assert Verdict.MALICIOUS in verdicts(mal, "model.pt")
    out, cd, cd_offset = archive([("archive/data.pkl", TORCH_LIKE), ("archive/data/0", b"\0" * 8),
                                  ("archive/data/1", b"\x80\x02cos\nsystem\n" + b"\0" * 8),
                                  ("archive/version", b"3\n")])
    assert verdicts(bytes(out + cd + eocd(4, len(cd), cd_offset)), "model.pt") == set()  # raw bytes stay data


# ------------------------------------------------------------------------------------------------ tar: member data
# as tarfile finds it (torch's legacy tar format: tar.extractfile("pickle") is unpickled; NeMo; any tar in a repo).
EVIL_P0 = b"cposix\nsystem\n(S'id'\ntR."


def header(name: str, size: int, kind: bytes = tarfile.REGTYPE) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.type = kind
    return info.tobuf(format=tarfile.USTAR_FORMAT)


def block(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 512)


def pax(records: dict[str, str]) -> bytes:
    body = b""
    for key, value in records.items():
        line = f" {key}={value}\n".encode()
        n = len(line) + 1
        n = len(str(n + len(str(n)) - 1).encode()) + len(line)
        body += str(n).encode() + line
    return header("././@PaxHeader", len(body), tarfile.XHDTYPE) + block(body)


def tar_member_data(archive: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:", format=tarfile.PAX_FORMAT) as tar:
        member = tar.extractfile(name)
        assert member is not None
        return member.read()


def pax_sized_tar(payload: bytes = EVIL_P0) -> bytes:
    """The pax record says 512 bytes; the ustar field says 0. tarfile reads 512 bytes of data: a block that a reader
    ignoring the pax size takes for the next header (its name field is a protocol 0 pickle, its checksum valid)."""
    return pax({"size": "512"}) + header("pickle", 0) + header(payload.decode(), 0) + b"\0" * 1024


def test_pax_size_overrides_the_header_size() -> None:
    mal = pax_sized_tar()
    data = tar_member_data(mal, "pickle")
    assert data.startswith(EVIL_P0) and ("posix", "system") in record(data).globals
    assert Verdict.MALICIOUS in verdicts(mal, "model.tar")
    twin = pax({"size": str(len(TORCH_LIKE))}) + header("pickle", 0) + block(TORCH_LIKE) + b"\0" * 1024
    assert tar_member_data(twin, "pickle") == TORCH_LIKE
    assert verdicts(twin, "model.tar") == set()


def sparse_header(name: str, data: bytes) -> bytes:
    """An old-GNU sparse member (type S) with one region covering all of ``data``: tarfile reads it as a file."""
    raw = bytearray(header(name, len(data)))
    raw[156:157] = b"S"
    raw[257:265] = b"ustar  \0"
    raw[386:398] = b"%011o\0" % 0
    raw[398:410] = b"%011o\0" % len(data)
    raw[483:495] = b"%011o\0" % len(data)
    raw[148:156] = b" " * 8
    raw[148:156] = b"%06o\0 " % sum(raw)
    return bytes(raw)


def test_gnu_sparse_member_is_read_as_a_file() -> None:
    mal = sparse_header("pickle", EVIL_P0) + block(EVIL_P0) + b"\0" * 1024
    assert ("posix", "system") in record(tar_member_data(mal, "pickle")).globals
    assert Verdict.MALICIOUS in verdicts(mal, "model.tar")
    twin = sparse_header("pickle", TORCH_LIKE) + block(TORCH_LIKE) + b"\0" * 1024
    assert tar_member_data(twin, "pickle") == TORCH_LIKE
    assert verdicts(twin, "model.tar") == set()


# ------------------------------------------------------------------------------------------------ compressed files
# as their file objects read them: gzip.GzipFile (pandas.read_pickle, gzip.open), bz2.BZ2File and lzma.LZMAFile
# (joblib.load of .bz2/.xz/.lzma, pandas) read every concatenated stream, not only the first.
MULTI = {"gzip": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress}
OPEN = {"gzip": lambda f: gzip.GzipFile(fileobj=f), "bz2": bz2.BZ2File, "xz": lzma.LZMAFile}


@pytest.mark.parametrize("kind", sorted(MULTI))
def test_second_compressed_stream_is_read(kind: str) -> None:
    compress = MULTI[kind]
    mal = compress(b"") + compress(EVIL)
    loaded = OPEN[kind](io.BytesIO(mal)).read()  # what pickle.load(opened file) is fed
    assert loaded == EVIL and all(("os", "system") in record(loaded, unpickler=u).globals for u in (PURE, NATIVE))
    assert Verdict.MALICIOUS in verdicts(mal, "model.pkl")
    split = compress(TORCH_LIKE[:7]) + compress(TORCH_LIKE[7:])
    assert OPEN[kind](io.BytesIO(split)).read() == TORCH_LIKE
    assert verdicts(split, "model.pkl") == set()  # the twin: a benign pickle spread over two streams


# ------------------------------------------------------------------------------------------------ third-party
# loaders and writers under the names their packages define them: refused as malicious, not merely for review.
# np.load(path, None, True) is np.load(path, allow_pickle=True) with positional arguments, which REDUCE passes.
@pytest.mark.parametrize("dotted", [
    "numpy.lib._npyio_impl.load", "numpy.lib._format_impl.read_array", "numpy.lib.format.open_memmap",
    "numpy.save", "numpy._core.memmap.memmap", "torch.save", "torch.from_file", "torch.serialization._load",
    "torch.utils.model_zoo.load_url", "joblib.dump", "pandas.to_pickle",
])
def test_third_party_loaders_and_writers_are_malicious(dotted: str) -> None:
    module, _, name = dotted.rpartition(".")
    mal = (b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\n" + b"X\x06\x00\x00\x00ok.npyN\x88\x87R.")
    assert record(mal).globals == [(module, name)] and record(mal).error is None
    assert Verdict.MALICIOUS in verdicts(mal, "model.pkl")


def test_allow_listed_neighbours_of_denied_names_stay_clean() -> None:
    assert verdicts(TORCH_LIKE, "model.pkl") == set()
    layout = b"\x80\x02ctorch.serialization\n_get_layout\nX\r\x00\x00\x00torch.strided\x85R."
    assert verdicts(layout, "model.pkl") == set()


# ------------------------------------------------------------------------------------------------ Keras configs read
# as keras/src/saving/serialization_lib.py reads them (Keras is not installed here; the rules below are that file's):
# for class_name "function" the attribute fetched is config["config"]; when class_name is not an attribute of the
# module, registered_name is looked up in it instead; "__lambda__" rebuilds marshalled bytecode (python_utils.
# func_load) wherever a function is expected, not only in Lambda layers; a "keras..." module is imported like any
# other when the public API has no such symbol.
def keras_verdicts(node: dict[str, object]) -> set[Verdict]:
    return verdicts(keras_zip(functional([dense("a"), node])), "model.keras")


@pytest.mark.parametrize("node", [
    {"module": "numpy", "class_name": "function", "config": "load", "registered_name": None},
    {"module": "numpy", "class_name": "NoSuchClass", "config": {}, "registered_name": "load"},
    {"module": "keras.src.saving.saving_api", "class_name": "function", "config": "load_model"},
    {"module": "keras.utils", "class_name": "function", "config": "get_file"},
    {"module": "keras.config", "class_name": "function", "config": "enable_unsafe_deserialization"},
])
def test_keras_object_named_outside_class_name_is_malicious(node: dict[str, object]) -> None:
    assert Verdict.MALICIOUS in keras_verdicts(node)


def test_keras_marshalled_lambda_outside_a_lambda_layer_needs_review() -> None:
    activation = {"class_name": "__lambda__", "config": {"value": "4wEAAAAAAAAA", "closure": None}}
    layer = {"module": "keras.layers", "class_name": "Dense", "config": {"units": 4, "activation": activation}}
    assert Verdict.REVIEW in keras_verdicts(layer)


def test_keras_builtin_functions_stay_clean() -> None:
    relu = {"module": "keras.activations", "class_name": "function", "config": "relu", "registered_name": "relu"}
    layer = {"module": "keras.layers", "class_name": "Dense", "config": {"units": 4, "activation": relu},
             "registered_name": "Dense"}
    assert keras_verdicts(layer) == set()


# ------------------------------------------------------------------------------------------------ HDF5 user block:
# the HDF5 library looks for the superblock at offset 0, 512, 1024, 2048... (spec: "user block"), so a file whose
# first bytes are anything at all is still a Keras .h5 model to h5py and keras.models.load_model.
def h5_with_user_block(config: dict[str, object], user_block: bytes) -> bytes:
    h5py = pytest.importorskip("h5py")
    buf = io.BytesIO()
    with h5py.File(buf, "w", userblock_size=len(user_block)) as f:
        f.attrs["model_config"] = json.dumps(config)
    data = user_block + buf.getvalue()[len(user_block):]
    with h5py.File(io.BytesIO(data), "r") as f:  # what Keras reads
        assert json.loads(f.attrs["model_config"]) == config
    return data


LAMBDA_MODEL = {"class_name": "Sequential", "config": {"layers": [
    {"class_name": "Lambda", "config": {"function": ["4wEAAAAAAAAA", None, None]}}]}}
DENSE_MODEL = {"class_name": "Sequential", "config": {"layers": [{"class_name": "Dense", "config": {"units": 3}}]}}


@pytest.mark.parametrize("size", [512, 2048])
def test_keras_h5_behind_a_user_block(size: int) -> None:
    user_block = b"# model card\n" + b" " * (size - 13)
    assert Verdict.REVIEW in verdicts(h5_with_user_block(LAMBDA_MODEL, user_block), "model.h5")
    assert verdicts(h5_with_user_block(DENSE_MODEL, user_block), "model.h5") == set()


# ------------------------------------------------------------------------------------------------ Hydra configs
# inside archives (NeMo's model_config.yaml in a .nemo tar, instantiate()d on restore) read as YAML reads them:
# escapes in double-quoted keys and values, anchors and aliases. OmegaConf loads with a PyYAML SafeLoader subclass.
@pytest.mark.parametrize("config", [
    b'model:\n  "_t\\x61rget_": os.system\n  _args_: [id]\n',
    b'model:\n  _target_: "o\\x73.system"\n  _args_: [id]\n',
    b'cmd: &c os.system\nmodel:\n  _target_: *c\n  _args_: [id]\n',
])
def test_hydra_target_spelled_with_yaml_features(config: bytes) -> None:
    import yaml

    assert yaml.safe_load(config)["model"]["_target_"] == "os.system"  # what OmegaConf hands to instantiate()
    nemo = tar_file({"model_config.yaml": config, "model_weights.ckpt": TORCH_LIKE})
    assert Verdict.MALICIOUS in verdicts(nemo, "model.nemo")
    twin = tar_file({"model_config.yaml": b'model:\n  "_t\\x61rget_": torch.optim.Adam\n',
                     "model_weights.ckpt": TORCH_LIKE})
    assert Verdict.MALICIOUS not in verdicts(twin, "model.nemo")


def tar_file(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()
