"""A header-only tar walker (ustar, GNU long names, pax ``path``): member names and data spans, no extraction.

Used for legacy torch ``.pt`` tar archives and NeMo-style tars (reference ml-artifacts.md §4). Duplicate members are
all returned (extractors keep the last one, loaders may read the first). Member data is never copied here.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TarMember", "TarFormatError", "looks_like_tar", "walk_tar"]


class TarFormatError(ValueError):
    """The tar structure cannot be read."""


@dataclass(frozen=True)
class TarMember:
    name: str
    offset: int  # data offset
    size: int
    kind: str  # "file", "dir", "other"


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


def walk_tar(data: memoryview, *, max_members: int) -> list[TarMember]:
    """All members in order.

    Raises:
        TarFormatError: a header with a bad checksum or size, or more than ``max_members`` entries.
    """
    members: list[TarMember] = []
    pos = 0
    long_name: str | None = None
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
        if data_off + size > size_total:
            raise TarFormatError(f"tar member at offset {pos} runs past the end of the file")
        text_name = name.decode("utf-8", "replace")
        if kind_flag == b"L":  # GNU long name for the next member
            long_name = bytes(data[data_off:data_off + size]).split(b"\0", 1)[0].decode("utf-8", "replace")
        elif kind_flag in (b"x", b"g"):  # pax header: honour "path="
            for record in bytes(data[data_off:data_off + min(size, 1 << 20)]).split(b"\n"):
                _, _, kv = record.partition(b" ")
                if kv.startswith(b"path="):
                    long_name = kv[5:].decode("utf-8", "replace")
        else:
            if long_name is not None:
                text_name, long_name = long_name, None
            kind = "file" if kind_flag in (b"0", b"\0", b"7") else "dir" if kind_flag == b"5" else "other"
            members.append(TarMember(text_name, data_off, size, kind))
            if len(members) > max_members:
                raise TarFormatError(f"more than {max_members} tar members")
        pos = data_off + (size + 511) // 512 * 512
    return members
