"""Tensor data is data (issue 10 item 5): random-weight PyTorch checkpoints built by hand in torch's zip layout.

``torch.save`` writes ``<prefix>/data.pkl`` (the only pickle), ``<prefix>/data/<key>`` raw storages read with
``get_record`` and never unpickled, plus ``version``, ``byteorder`` and ``.data/serialization_id``. Random weights
start with pickle, gzip or zip magic often enough that sniffing storages refuses real checkpoints; here a share of
the storages is forced to start with every magic the sniffer knows (and a protocol 0 payload), and every checkpoint
must stay clean, while the same archives with a payload in ``data.pkl`` stay malicious.
"""

from __future__ import annotations

import random
import struct

from oracle import record
from test_containers_formats import EVIL, Member, binu, glob, make_zip
from gatekeeper.detectors.content import scan_blob
from gatekeeper.model import Verdict

MAGICS = [b"\x80\x02", b"\x80\x04\x95", b"\x1f\x8b\x08", b"PK\x03\x04", b"BZh9", b"\x93NUMPY\x01\x00", b"\xfd7zXZ\x00",
          b"]\x00\x00", b"x\x9c", b"cos\nsystem\n(S'id'\ntR.", b"\x89HDF\r\n\x1a\n", b"GGUF", b"7z\xbc\xaf'\x1c"]


def data_pkl(numels: list[int]) -> bytes:
    """The data.pkl torch writes for an OrderedDict of float tensors (protocol 2, persistent storage ids)."""
    out = b"\x80\x02" + glob("collections", "OrderedDict") + b")R("
    for key, numel in enumerate(numels):
        out += binu(f"layer{key}.weight") + glob("torch._utils", "_rebuild_tensor_v2")
        out += b"((" + binu("storage") + glob("torch", "FloatStorage") + binu(str(key)) + binu("cpu")
        out += b"J" + struct.pack("<i", numel) + b"tQ"
        out += b"K\x00" + b"J" + struct.pack("<i", numel) + b"\x85K\x01\x85\x89"
        out += glob("collections", "OrderedDict") + b")RtR"
    return out + b"u."


def checkpoint(rng: random.Random, tensors: int, pickle_member: bytes | None = None) -> bytes:
    numels = [rng.randrange(1, 64) for _ in range(tensors)]
    members = [Member("model/data.pkl", pickle_member or data_pkl(numels)), Member("model/byteorder", b"little")]
    for key, numel in enumerate(numels):
        raw = bytearray(struct.pack(f"<{numel}f", *(rng.gauss(0, 0.02) for _ in range(numel))))
        if rng.random() < 0.3:
            magic = rng.choice(MAGICS)
            raw[: len(magic)] = magic
        members.append(Member(f"model/data/{key}", bytes(raw)))
    members += [Member("model/version", b"3\n"), Member("model/.data/serialization_id", b"1234567890\n")]
    return make_zip(members)


def test_the_hand_built_data_pkl_is_what_the_loader_reads() -> None:
    result = record(data_pkl([3, 4]), persistent=True)
    assert result.error is None
    assert set(result.globals) == {("collections", "OrderedDict"), ("torch._utils", "_rebuild_tensor_v2"),
                                   ("torch", "FloatStorage")}


def test_random_weight_checkpoints_are_clean_whatever_their_storages_start_with() -> None:
    rng = random.Random(5)
    refused = []
    for i in range(60):
        blob = checkpoint(rng, tensors=rng.randrange(1, 40))
        findings = scan_blob(f"ckpt{i}.pt", blob)
        if findings:
            refused.append((i, [(f.verdict.value, f.path, f.message) for f in findings[:3]]))
    assert not refused, refused[:5]


def test_the_same_checkpoints_with_a_payload_in_data_pkl_are_malicious() -> None:
    rng = random.Random(6)
    for i in range(10):
        blob = checkpoint(rng, tensors=rng.randrange(1, 10), pickle_member=EVIL)
        assert scan_blob(f"ckpt{i}.pt", blob)[0].verdict is Verdict.MALICIOUS


def test_a_member_outside_the_storage_folder_is_still_sniffed() -> None:
    rng = random.Random(7)
    blob = checkpoint(rng, tensors=2)
    sneaky = make_zip([Member("model/data.pkl", data_pkl([1])), Member("model/data/0", b"\0" * 4),
                       Member("model/extra/payload.pkl", EVIL), Member("model/data/sub/x.pkl", EVIL)])
    assert scan_blob("sneaky.pt", sneaky)[0].verdict is Verdict.MALICIOUS
    assert scan_blob("ok.pt", blob) == []
