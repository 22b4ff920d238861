"""Strict validation of a safetensors header; tensor data is never read.

Format (huggingface/safetensors ``README.md#Format``, ``safetensors/src/tensor.rs``): 8 bytes ``N`` (u64 LE), ``N``
bytes of UTF-8 JSON starting with ``{`` (right-padding with spaces allowed), then the byte buffer. Checks (reference
ml-artifacts.md §4): ``N <= 100_000_000`` and within the blob; no duplicate keys; ``__metadata__`` a str->str map;
known dtypes; ``prod(shape) * bits`` a whole number of bytes equal to ``end - begin``; offsets sorted, contiguous
from 0, no holes or overlaps (no room for a polyglot); and ``8 + N + buffer_end == blob size``.
"""

from __future__ import annotations

import json
import struct

__all__ = ["MAX_HEADER", "looks_like_safetensors", "tensor_table", "validate_safetensors"]

MAX_HEADER = 100_000_000

_DTYPE_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "F8_E4M3FNUZ": 8, "F8_E5M2FNUZ": 8,
    "F6_E2M3": 6, "F6_E3M2": 6, "F4": 4, "I16": 16, "U16": 16, "F16": 16, "BF16": 16, "I32": 32, "U32": 32,
    "F32": 32, "C64": 64, "F64": 64, "I64": 64, "U64": 64,
}


def looks_like_safetensors(head: bytes) -> bool:
    """Cheap sniff: a u64 length, then ``{`` at offset 8."""
    return len(head) >= 9 and head[8:9] == b"{" and struct.unpack_from("<Q", head)[0] >= 2


class _Dup(ValueError):
    pass


def _no_dups(pairs: list[tuple[str, object]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in pairs:
        if key in out:
            raise _Dup(f"duplicate key {key!r}")
        out[key] = value
    return out


def validate_safetensors(data: memoryview, size: int | None = None) -> list[str]:
    """Problems with the header (empty list: valid). Reads ``8 + N`` bytes only.

    Args:
        data: the blob (only its first ``8 + N`` bytes are touched).
        size: the blob's real size if ``data`` is only a prefix (e.g. an LFS pointer's ``size``).
    """
    total = len(data) if size is None else size
    if len(data) < 8:
        return ["shorter than the 8-byte header length"]
    n = struct.unpack_from("<Q", bytes(data[:8]))[0]
    if n > MAX_HEADER:
        return [f"header length {n} is over the {MAX_HEADER} byte limit"]
    if 8 + n > total:
        return [f"header length {n} runs past the end of the file ({total} bytes)"]
    raw = bytes(data[8:8 + n])
    if not raw.startswith(b"{"):
        return ["header does not start with '{'"]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return ["header is not UTF-8"]
    try:
        header = json.loads(text.rstrip(" "), object_pairs_hook=_no_dups)
    except _Dup as exc:
        return [f"header has a {exc}"]
    except (ValueError, RecursionError) as exc:
        return [f"header is not JSON ({str(exc)[:80]})"]
    if not isinstance(header, dict):
        return ["header is not a JSON object"]
    problems: list[str] = []
    meta = header.pop("__metadata__", None)
    if meta is not None and not (isinstance(meta, dict) and all(isinstance(v, str) for v in meta.values())):
        problems.append("__metadata__ is not a string-to-string map")
    spans: list[tuple[int, int, str]] = []
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) - {"dtype", "shape", "data_offsets"}:
            problems.append(f"tensor {name!r}: entry is not {{dtype, shape, data_offsets}}")
            continue
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        bits = _DTYPE_BITS.get(dtype) if isinstance(dtype, str) else None
        if bits is None:
            problems.append(f"tensor {name!r}: unknown dtype {dtype!r}")
            continue
        if not (isinstance(shape, list) and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                                for d in shape)):
            problems.append(f"tensor {name!r}: invalid shape")
            continue
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) and not isinstance(o, bool)
                                                                        for o in offsets)):
            problems.append(f"tensor {name!r}: invalid data_offsets")
            continue
        begin, end = offsets
        if begin < 0 or end < begin:
            problems.append(f"tensor {name!r}: data_offsets [{begin}, {end}] are reversed or negative")
            continue
        count = 1
        for d in shape:
            count *= d
        if (count * bits) % 8 or count * bits // 8 != end - begin:
            problems.append(f"tensor {name!r}: {dtype}{shape} needs {count * bits / 8:g} bytes, offsets give "
                            f"{end - begin}")
            continue
        spans.append((begin, end, name))
    if problems:
        return problems
    spans.sort()
    cursor = 0
    for begin, end, name in spans:
        if begin != cursor:
            what = "overlaps the previous tensor" if begin < cursor else f"leaves a hole of {begin - cursor} bytes"
            return [f"tensor {name!r} at [{begin}, {end}] {what}"]
        cursor = end
    if 8 + n + cursor != total:
        return [f"file is {total} bytes but the header accounts for {8 + n + cursor}"]
    return []


def tensor_table(data: memoryview) -> list[tuple[str, str, tuple[int, ...]]] | None:
    """``(name, dtype, shape)`` per tensor, in offset order, for a header that :func:`validate_safetensors` accepts;
    None for any other. For reviewers (``gatekeeper approve``): the gate itself only needs the validation."""
    if validate_safetensors(data):
        return None
    n = struct.unpack_from("<Q", bytes(data[:8]))[0]
    header = json.loads(bytes(data[8:8 + n]).decode("utf-8").rstrip(" "))
    header.pop("__metadata__", None)
    rows = sorted(header.items(), key=lambda item: item[1]["data_offsets"][0])
    return [(name, info["dtype"], tuple(info["shape"])) for name, info in rows]
