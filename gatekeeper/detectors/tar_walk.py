"""A header-only tar walker (ustar, GNU long names, pax ``path``/``size``): member names and data spans, no extraction.

Used for legacy torch ``.pt`` tar archives and NeMo-style tars (reference ml-artifacts.md §4). Duplicate members are
all returned (extractors keep the last one, loaders may read the first). Member data is never copied here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["TarMember", "TarFormatError", "looks_like_tar", "walk_tar"]


class TarFormatError(ValueError):
    """The tar structure cannot be read."""


@dataclass(frozen=True)
class TarMember:
    name: str
    offset: int  # data offset
    size: int
    kind: str  # "file", "dir", "sparse" (data holes: what is stored is not what is read), "other"


def _checksum_ok(block: bytes) -> bool:
    try:
        stored = int(block[148:156].split(b"\0", 1)[0].strip() or b"-1", 8)
    except ValueError:
        return False
    unsigned = sum(block[:148]) + 8 * 32 + sum(block[156:512])
    signed = sum(b - 256 if b > 127 else b for b in block[:148]) + 256 + sum(
        b - 256 if b > 127 else b for b in block[156:512])
    return stored in (unsigned, signed)


def looks_like_tar(head: bytes) -> bool:
    """``ustar`` at offset 257, or a first header whose checksum is valid."""
    if len(head) < 512:
        return False
    return head[257:262] == b"ustar" or (head[0] != 0 and _checksum_ok(head[:512]))


def _octal(field: bytes) -> int:
    if field and field[0] & 0x80:  # GNU base-256 for big sizes
        value = int.from_bytes(field[1:], "big")
        return value
    text = field.split(b"\0", 1)[0].strip()
    return int(text or b"0", 8)


_PAX_RECORD = re.compile(rb"(\d+) ([^=]+)=")


def _pax_records(body: bytes, pos: int) -> dict[bytes, bytes]:
    """Records as ``tarfile`` reads them: by their length prefix (a value may hold newlines), not line by line."""
    records: dict[bytes, bytes] = {}
    at = 0
    while True:
        match = _PAX_RECORD.match(body, at)
        if match is None:
            break
        length = int(match.group(1))
        if length < 1 or at + length > len(body) or body[at + length - 1:at + length] != b"\n":
            raise TarFormatError(f"bad pax record at offset {pos + at}")
        records[match.group(2)] = body[match.end():at + length - 1]
        at += length
    return records


def _old_gnu_sparse_is_plain(block: bytes, size: int) -> bool:
    """An old-GNU sparse header (type S) whose map is one region ``(0, size)`` with real size ``size``: its stored
    data is exactly what tarfile's extractfile returns. Any other map inserts holes, so the bytes differ."""
    try:
        regions = [(_octal(block[386 + 24 * i:398 + 24 * i]), _octal(block[398 + 24 * i:410 + 24 * i]))
                   for i in range(4)]
        real_size = _octal(block[483:495])
    except ValueError:
        return False
    regions = [r for r in regions if r != (0, 0)]
    return block[482] == 0 and regions in ([(0, size)], []) and real_size == size


def walk_tar(data: memoryview, *, max_members: int) -> list[TarMember]:
    """All members in order, with their data where ``tarfile`` finds it.

    pax ``path`` and ``size`` records override the header fields as ``tarfile`` applies them (``x``: the next
    member, ``g``: every member after it): a size that only pax states moves every later header, so a reader that
    ignores it sees other members than the loader does. GNU sparse members whose map has holes are ``sparse``
    (their stored bytes are not the bytes a loader reads).

    Raises:
        TarFormatError: a header with a bad checksum or size, or more than ``max_members`` entries.
    """
    members: list[TarMember] = []
    pos = 0
    long_name: str | None = None
    global_pax: dict[bytes, bytes] = {}
    next_pax: dict[bytes, bytes] = {}
    size_total = len(data)
    while pos + 512 <= size_total:
        block = bytes(data[pos:pos + 512])
        if block == b"\0" * 512:
            break
        if not _checksum_ok(block):
            raise TarFormatError(f"bad tar header checksum at offset {pos}")
        try:
            size = _octal(block[124:136])
        except ValueError:
            raise TarFormatError(f"bad tar size field at offset {pos}") from None
        kind_flag = block[156:157]
        name = block[:100].split(b"\0", 1)[0]
        if block[257:262] == b"ustar" and block[345:500].strip(b"\0"):
            name = block[345:500].split(b"\0", 1)[0] + b"/" + name
        data_off = pos + 512
        text_name = name.decode("utf-8", "replace")
        pax = {**global_pax, **next_pax}
        if kind_flag not in (b"L", b"x", b"g"):
            next_pax = {}
            if b"size" in pax:
                try:
                    size = int(pax[b"size"])
                except ValueError:
                    raise TarFormatError(f"bad pax size for the member at offset {pos}") from None
            if b"path" in pax:
                long_name = pax[b"path"].decode("utf-8", "replace").rstrip("/")
        if data_off + size > size_total or size < 0:
            raise TarFormatError(f"tar member at offset {pos} runs past the end of the file")
        if kind_flag == b"L":  # GNU long name for the next member
            long_name = bytes(data[data_off:data_off + size]).split(b"\0", 1)[0].decode("utf-8", "replace")
        elif kind_flag in (b"x", b"g"):
            if size > 1 << 20:
                raise TarFormatError(f"pax header of {size} bytes at offset {pos}")
            records = _pax_records(bytes(data[data_off:data_off + size]), data_off)
            if any(key.startswith(b"GNU.sparse.") for key in records):
                raise TarFormatError(f"pax GNU sparse member at offset {pos} (holes are not scanned)")
            (global_pax if kind_flag == b"g" else next_pax).update(records)
        else:
            if long_name is not None:
                text_name, long_name = long_name, None
            if kind_flag == b"S":
                kind = "file" if _old_gnu_sparse_is_plain(block, size) else "sparse"
            else:
                kind = "file" if kind_flag in (b"0", b"\0", b"7") else "dir" if kind_flag == b"5" else "other"
            members.append(TarMember(text_name, data_off, size, kind))
            if len(members) > max_members:
                raise TarFormatError(f"more than {max_members} tar members")
        pos = data_off + (size + 511) // 512 * 512
    return members
