"""What a reviewer can know about a weight file or other binary without loading it: size, SHA-256, format, and what
its header says (tensor count, dtypes, shapes for safetensors, npy/npz and PyTorch archives), plus the pickle
globals the loader would import.

Every fact comes from the gate's own detectors (:func:`gatekeeper.detectors.content.sniff`, the safetensors and npy
header readers, the zip walker, the pickle VM), so the reviewer sees what the gate saw; nothing here unpickles,
imports or decompresses beyond those readers' caps.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gatekeeper.detectors.zip_walk import ZipEntry

__all__ = ["ArtifactFacts", "artifact_facts"]

MAX_TENSORS_LISTED = 8  # name/dtype/shape rows shown per file; the counts cover all of them
MAX_GLOBALS_LISTED = 30
MAX_MEMBERS = 10_000
_PICKLE_MEMBER = ("data.pkl", "constants.pkl")


@dataclass
class ArtifactFacts:
    size: int
    sha256: str
    format: str  # a detectors.content.sniff name, or "binary"/"text" when nothing matched
    tensor_count: int | None = None
    dtypes: dict[str, int] = field(default_factory=dict)  # dtype -> number of tensors (or storages)
    tensors: list[tuple[str, str, tuple[int, ...]]] = field(default_factory=list)  # first few (name, dtype, shape)
    pickle_globals: list[str] = field(default_factory=list)  # module.name the loader would import, first seen order
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {
            "size": self.size, "sha256": self.sha256, "format": self.format, "tensor_count": self.tensor_count,
            "dtypes": dict(self.dtypes),
            "tensors": [{"name": n, "dtype": d, "shape": list(s)} for n, d, s in self.tensors],
            "pickle_globals": list(self.pickle_globals), "notes": list(self.notes),
        }

    def summary(self) -> str:
        parts = [f"{self.format}", f"{self.size} bytes", f"sha256 {self.sha256}"]
        if self.tensor_count is not None:
            dtypes = ", ".join(f"{d} x{n}" for d, n in sorted(self.dtypes.items()))
            parts.append(f"{self.tensor_count} tensors" + (f" ({dtypes})" if dtypes else ""))
        return ", ".join(parts)


def artifact_facts(data: bytes) -> ArtifactFacts:
    from gatekeeper.detectors.content import sniff

    view = memoryview(data)
    kind = sniff(view) or "binary"
    facts = ArtifactFacts(size=len(data), sha256=hashlib.sha256(data).hexdigest(), format=kind)
    if kind == "safetensors":
        _safetensors(facts, view)
    elif kind == "npy":
        _npy(facts, view, "")
    elif kind in ("npz", "torch-zip", "torchscript", "zip"):
        _zip(facts, view, kind)
    elif kind in ("pickle", "torch-legacy"):
        _globals(facts, view, 0)
    return facts


def _safetensors(facts: ArtifactFacts, view: memoryview) -> None:
    from gatekeeper.detectors.safetensors_header import tensor_table

    table = tensor_table(view) or []
    facts.tensor_count = len(table)
    facts.dtypes = dict(Counter(dtype for _, dtype, _ in table))
    facts.tensors = table[:MAX_TENSORS_LISTED]


def _npy(facts: ArtifactFacts, view: memoryview, name: str) -> None:
    from gatekeeper.detectors.npy_header import NpyFormatError, parse_npy_header

    try:
        header = parse_npy_header(view)
    except NpyFormatError as exc:
        facts.notes.append(f"{name or 'array'}: unreadable .npy header: {exc}")
        return
    dtype = str(header.descr)
    facts.tensor_count = (facts.tensor_count or 0) + 1
    facts.dtypes[dtype] = facts.dtypes.get(dtype, 0) + 1
    if len(facts.tensors) < MAX_TENSORS_LISTED:
        facts.tensors.append((name or "array", dtype, tuple(header.shape)))
    if header.has_object:
        facts.notes.append(f"{name or 'array'}: object dtype: np.load(allow_pickle=True) unpickles its data")
        _globals(facts, view, header.data_offset)


def _zip(facts: ArtifactFacts, view: memoryview, kind: str) -> None:
    from gatekeeper.detectors import zip_walk

    try:
        layout = zip_walk.read_layout(view, max_members=MAX_MEMBERS)
    except zip_walk.ZipFormatError as exc:
        facts.notes.append(f"unreadable zip archive: {exc}")
        return
    storages = 0
    for entry in layout.entries:
        base = entry.name.rsplit("/", 1)[-1]
        if kind == "npz" and entry.name.endswith(".npy"):
            member = _member(facts, view, entry)
            if member is not None:
                _npy(facts, member, entry.name[:-4])
        elif kind in ("torch-zip", "torchscript") and base in _PICKLE_MEMBER:
            member = _member(facts, view, entry)
            if member is not None:
                _globals(facts, member, 0)
        elif kind in ("torch-zip", "torchscript") and "/data/" in f"/{entry.name}" and base.isdigit():
            storages += 1
    if kind in ("torch-zip", "torchscript"):
        # A PyTorch archive keeps one member per storage under data/; tensors are views of storages, and their
        # shapes live in the pickle (read only as opcodes here, never executed), so count storages and their types.
        facts.tensor_count = storages
        for name in facts.pickle_globals:
            if name.startswith("torch.") and name.endswith("Storage"):
                facts.dtypes[name.removeprefix("torch.")] = facts.dtypes.get(name.removeprefix("torch."), 0) + 1
        facts.notes.append(f"{storages} tensor storages (data/ members); shapes are in the pickle, not shown")


def _member(facts: ArtifactFacts, view: memoryview, entry: ZipEntry) -> memoryview | None:
    from gatekeeper.detectors import zip_walk

    try:
        return zip_walk.member_data(view, entry, max_bytes=64 << 20)
    except zip_walk.ZipFormatError as exc:
        facts.notes.append(f"{entry.name}: unreadable member: {exc}")
        return None


def _globals(facts: ArtifactFacts, view: memoryview, start: int) -> None:
    from gatekeeper.detectors.pickle_vm import analyse_pickle

    report = analyse_pickle(view, start=start)
    for ref in report.globals:
        if ref.dotted not in facts.pickle_globals and len(facts.pickle_globals) < MAX_GLOBALS_LISTED:
            facts.pickle_globals.append(ref.dotted)
