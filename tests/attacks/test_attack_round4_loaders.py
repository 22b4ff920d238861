"""Insider attack round 4: files the scanner read differently from the loader that runs them.

Each attack is first shown to reach its payload under the real loader's own parsing (numpy's header reader, CPython's
unpickler as the recording oracle in ``tests/detectors/oracle.py``; nothing is ever unpickled with a real
``find_class``), then pushed with the real git client into a bare repository with the hook installed.
"""

from __future__ import annotations

import io
import struct
import zipfile

import pytest

from gitserver import Server

from attacks.attacklib import Crafter, assert_refused, lands_then_refused
from detectors.oracle import NATIVE, PURE, record

# protocol 2: os.system("id"), what pickle.load would run (never unpickled here)
EVIL = b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03."
# the data.pkl torch.save writes for an empty state dict
EMPTY_STATE = b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01."


def stored_zip(members: list[tuple[str, bytes]]) -> bytes:
    """A zip with every member stored (method 0), as ``torch.save`` and ``np.savez`` write them."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return out.getvalue()


def npy(header: str, body: bytes, *, major: int = 1) -> bytes:
    raw = header.encode("latin-1")
    size = struct.pack("<H", len(raw)) if major == 1 else struct.pack("<I", len(raw))
    return b"\x93NUMPY" + bytes([major, 0]) + size + raw + body


def numpy_reads_object_array(member: bytes) -> int:
    """Where ``np.load(allow_pickle=True)`` starts unpickling ``member`` (numpy's own header reader, with the
    header-size limit it drops under allow_pickle); fails the test if numpy would not unpickle it."""
    import warnings

    from numpy.lib import _format_impl as npy_format

    fp = io.BytesIO(member)
    version = npy_format.read_magic(fp)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "created on Python 2": numpy still reads it
        _shape, _fortran, dtype = npy_format._read_array_header(fp, version, max_header_size=2**64)
    assert dtype.hasobject
    return fp.tell()


# -- 1. npy headers numpy reads and the scanner did not: a torch archive's "raw storage" that np.load unpickles -------
# The scanner skips <prefix>/data/<key> members of a torch zip as raw tensor bytes unless they hold an .npy header
# with an object dtype, because np.load of the same archive (an npz to numpy) unpickles exactly those. A header its
# parser could not read was taken as one numpy refuses too; numpy reads more: Python 2 style "1L" integers
# (_filter_header, versions 1.0 and 2.0), negative dimensions, and headers of any size when allow_pickle=True.

NPY_HEADERS = {
    "python2-long": npy("{'descr': '|O', 'fortran_order': False, 'shape': (1L,), }\n", EVIL),
    "negative-shape": npy("{'descr': '|O', 'fortran_order': False, 'shape': (-1,), }\n", EVIL),
    "huge-header": npy("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }" + " " * 200_000 + "\n", EVIL,
                       major=2),
}


@pytest.mark.parametrize("variant", list(NPY_HEADERS))
def test_npz_member_under_a_torch_storage_name(server: Server, variant: str) -> None:
    """features.npz holds arch/data.pkl (an empty torch state dict) and arch/data/0, an object array. Nothing in
    numpy looks at names: ``dict(np.load("features.npz", allow_pickle=True))`` reads arch/data/0 with read_array and
    unpickles it. Before the fix: allowed on every branch (the member was skipped as tensor bytes)."""
    member = NPY_HEADERS[variant]
    start = numpy_reads_object_array(member)
    assert all(("os", "system") in record(member, start=start, unpickler=u).globals for u in (PURE, NATIVE))
    archive = stored_zip([("arch/data.pkl", EMPTY_STATE), ("arch/data/0", member), ("arch/version", b"3\n")])
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        assert zf.read("arch/data/0") == member  # what NpzFile.__getitem__ hands to read_array

    x = Crafter(server.clone())
    commit = x.commit_with(b"data/features.npz", "100644", x.blob(archive))
    result = x.push(commit, "refs/heads/feature/npz")
    assert_refused(server, result, "refs/heads/feature/npz", None, "data/features.npz!arch/data/0")


def test_torch_storages_that_only_look_like_npy_stay_data(server: Server) -> None:
    """The benign twin: storages starting with the npy magic and random bytes (one checkpoint in 2**48 does) stay
    tensor data: numpy raises on those headers before it unpickles anything."""
    import random

    rng = random.Random(4)
    members = [("arch/data.pkl", EMPTY_STATE)]
    for key in range(40):
        raw = bytearray(rng.randbytes(rng.randrange(16, 400)))
        raw[:8] = b"\x93NUMPY\x01\x00" if key % 2 else b"\x93NUMPY\x02\x00"
        members.append((f"arch/data/{key}", bytes(raw)))
    x = Crafter(server.clone())
    commit = x.commit_with(b"data/model.pt", "100644", x.blob(stored_zip(members + [("arch/version", b"3\n")])))
    result = x.push(commit, "refs/heads/feature/storages")
    assert result.ok, result.output


# -- 2. Hydra targets inside nodes that OmegaConf resolvers build --------------------------------------------------
# hydra.utils.instantiate deep-copies the config, runs OmegaConf.resolve on it, then instantiates every _target_ it
# meets, recursively (hydra/_internal/instantiate/_instantiate2.py). ${oc.create:{...}} (OmegaConf 2.1+) resolves to
# a DictConfig built from the literal; ${oc.decode:'...'} (2.4) decodes a string into one. The scanner took both for
# harmless built-in resolvers and never looked inside their argument.

BUILT_TARGETS = {
    "oc.create": (b"trainer:\n  _target_: torch.optim.SGD\n  lr: 0.1\n"
                  b"  callbacks: \"${oc.create:{_target_: shutil.os.system, _args_: ['id']}}\"\n"),
    "oc.create-compact": b"trainer:\n  callbacks: ${oc.create:{_target_:shutil.os.system,_args_:[id]}}\n",
    "oc.decode-assembled": (b"trainer:\n  spec: \"{_tar\"\n"
                            b"  callbacks: \"${oc.decode:'${.spec}get_: shutil.os.system, _args_: [id]}'}\"\n"),
}


def omegaconf_builds(text: bytes) -> dict[str, object] | None:
    """What OmegaConf resolves trainer.callbacks to (data only: nothing is instantiated), when it is installed."""
    try:
        from omegaconf import OmegaConf
    except ImportError:
        return None
    cfg = OmegaConf.create(text.decode())
    try:
        OmegaConf.resolve(cfg)
    except Exception:  # noqa: BLE001 - oc.decode of a dict needs OmegaConf 2.4; 2.3 (Hydra 1.3's) refuses it
        return None
    built = OmegaConf.to_container(cfg.trainer.callbacks)
    assert isinstance(built, dict)
    return built


@pytest.mark.parametrize("variant", list(BUILT_TARGETS))
def test_shell_target_inside_a_resolver_built_node(server: Server, variant: str) -> None:
    """Pushed to a feature branch: a Hydra config whose instantiation runs os.system through shutil.os (Hydra's
    block list misses the traversal). Before the fix: allowed."""
    text = BUILT_TARGETS[variant]
    built = omegaconf_builds(text)
    assert built in (None, {"_target_": "shutil.os.system", "_args_": ["id"]})
    x = Crafter(server.clone())
    commit = x.commit_with(b"experiments/sweep.yaml", "100644", x.blob(text))
    result = x.push(commit, "refs/heads/feature/sweep")
    assert_refused(server, result, "refs/heads/feature/sweep", None, "experiments/sweep.yaml", "shutil.os.system")


def test_resolver_built_target_needs_review_on_main(server: Server) -> None:
    """On main, in a folder no rule names: a target that swaps the optimizer (the 2024 sabotage's move) is a
    remote-code trigger and needs approval. Before the fix: landed without one."""
    x = Crafter(server.clone())
    text = b"optim: \"${oc.create:{_target_: mylib.optim.Sleepy, lr: 0.001}}\"\n"
    commit = x.commit_with(b"experiments/opt.yaml", "100644", x.blob(text), parent="origin/main")
    commit = x.commit_with(b"mylib/optim.py", "100644", x.blob(b"class Sleepy:\n    pass\n"), parent=commit)
    before = server.ref("refs/heads/main")
    result = x.push(commit, "refs/heads/main")
    assert_refused(server, result, "refs/heads/main", before, "remote-code", "mylib.optim.Sleepy")


def test_plain_resolvers_stay_plain(server: Server) -> None:
    """The benign twin: oc.create of a literal without targets, oc.decode of an environment variable."""
    x = Crafter(server.clone())
    text = b"run:\n  gpus: \"${oc.decode:${oc.env:NUM_GPUS,1}}\"\n  tags: \"${oc.create:[a, b]}\"\n"
    commit = x.commit_with(b"experiments/run.yaml", "100644", x.blob(text), parent="origin/main")
    result = x.push(commit, "refs/heads/main")
    assert result.ok, result.output


# -- 3. UTF-16 YAML that PyYAML decodes by its byte order mark ---------------------------------------------------------
# PyYAML reads bytes as UTF-16 when they start with a BOM (yaml/reader.py determine_encoding), so
# instantiate(yaml.safe_load(path.read_bytes())) or yaml.safe_load(open(path, "rb")) sees the target. The gate parses
# configs with the same PyYAML, but its byte pre-filter looked for ASCII trigger words, or NULs in the first four
# bytes as the sign of UTF-16: a BOM followed by a character with no zero byte (U+4E4E) has none, and the parse was
# skipped.


def test_utf16_yaml_with_a_shell_target(server: Server) -> None:
    """Before the fix: allowed on a feature branch."""
    import yaml

    text = "\u4e4e: 1\ntrainer:\n  _target_: shutil.os.system\n  _args_: [id]\n".encode("utf-16")
    assert text[:4] == b"\xff\xfeNN"
    assert yaml.safe_load(text)["trainer"]["_target_"] == "shutil.os.system"
    x = Crafter(server.clone())
    commit = x.commit_with(b"experiments/sweep.yaml", "100644", x.blob(text))
    result = x.push(commit, "refs/heads/feature/utf16")
    assert_refused(server, result, "refs/heads/feature/utf16", None, "experiments/sweep.yaml", "shutil.os.system")


STOCK_INDEX = ('{"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.30.0", '
               '"unet": ["diffusers", "UNet2DConditionModel"]}\n')


def test_a_component_file_in_another_letter_case_needs_review_on_main(server: Server) -> None:
    """diffusers runs ``<component>/<library>.py`` when ``os.path.isfile`` finds it: on macOS and Windows
    ``unet/Diffusers.py`` answers for ``unet/diffusers.py``, so a stock pipeline's unet runs it. Before the fix: no
    trigger (the lookup was exact), and the file landed on main from an unprotected folder without approval."""
    lands_then_refused(server, "refs/heads/main", {"pipelines/sd/model_index.json": STOCK_INDEX},
                       {"pipelines/sd/unet/Diffusers.py": "class UNet2DConditionModel:  # runs on load\n    pass\n"},
                       "remote-code", "pipelines/sd/unet/Diffusers.py")
