"""A zip reader for scanning: central directory AND local headers, differentials reported, member data never trusted.

``zipfile`` is not enough for a gate (reference ml-artifacts.md §4, §9.6): loaders disagree about which header counts.
torch/miniz take names and offsets from the central directory and ignore flag bits and CRCs; ``zipfile.is_zipfile``
finds an end record anywhere (polyglots); streaming readers follow local headers. So this walker

* finds the end-of-central-directory record (zip64 aware) and every central entry,
* walks the chain of local headers from the first one, which also finds local-only entries,
* returns the union of entries by data offset, with the central and local names (a mismatch is evidence),
* reads member data only on request (:func:`member_data`), capped; stored members are zero-copy slices.

Nothing here decides verdicts: :mod:`content` does.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import NamedTuple

from gatekeeper.detectors.inflate import OverBudget, inflate

__all__ = ["ZipEntry", "ZipLayout", "ZipFormatError", "read_layout", "member_data", "find_eocd"]

_EOCD = b"PK\x05\x06"
_EOCD64_LOCATOR = b"PK\x06\x07"
_EOCD64 = b"PK\x06\x06"
_CENTRAL = b"PK\x01\x02"
_LOCAL = b"PK\x03\x04"
_DESCRIPTOR = b"PK\x07\x08"
_MAX_COMMENT = 0xFFFF


class ZipFormatError(ValueError):
    """The archive structure cannot be read (callers turn it into an unscannable finding)."""


@dataclass(frozen=True)
class ZipEntry:
    """One member as found in the central directory, the local headers, or both."""

    name: str
    local_name: str | None  # None: no readable local header at the offset (central-only)
    central_name: str | None  # None: local-only entry (not listed in the central directory)
    header_offset: int  # absolute offset of the local header
    data_offset: int  # absolute offset of the member data (-1 if the local header is unreadable)
    compressed_size: int
    uncompressed_size: int
    method: int
    flags: int

    @property
    def encrypted(self) -> bool:
        return bool(self.flags & 0x1)


@dataclass(frozen=True)
class ZipLayout:
    entries: tuple[ZipEntry, ...]
    prefix: int  # bytes before the first local header (0 for a normal archive)
    has_central: bool
    directories_disagree: bool = False  # readers that pick different end records or counts see different members


def _eocd_candidates(data: memoryview) -> list[int]:
    """End records some reader picks, last first (reads at most the last 64 KiB + 22 bytes).

    ``zipfile`` and miniz (torch) take the last signature whose 22-byte record is complete, whatever its comment
    length claims; stricter readers take the last one whose comment also fits in the file. An attacker who makes the
    two differ gets two archives in one file, so both are read.
    """
    size = len(data)
    lo = max(0, size - _MAX_COMMENT - 22)
    tail = bytes(data[lo:size])
    found: list[int] = []
    idx = tail.rfind(_EOCD)
    while idx >= 0:
        pos = lo + idx
        if pos + 22 <= size:
            fits = pos + 22 + struct.unpack_from("<H", tail, idx + 20)[0] <= size
            if not found or fits:
                found.append(pos)
            if fits:
                break
        idx = tail.rfind(_EOCD, 0, idx)
    return found


def find_eocd(data: memoryview) -> int:
    """Offset of the end record ``zipfile`` and torch use (the last complete one), or -1."""
    found = _eocd_candidates(data)
    return found[0] if found else -1


def _decode(raw: bytes, flags: int) -> str:
    # Bit 11: UTF-8 names; otherwise cp437 as zipfile does. Both are shown to reviewers, never used as paths on disk.
    # zipfile.ZipInfo cuts a name at its first NUL ("config.json\0.txt" is config.json to Keras and numpy), and so do
    # C readers that treat names as strings: the member is judged by the name its loaders look it up by.
    name = raw.decode("utf-8", "replace") if flags & 0x800 else raw.decode("cp437")
    cut = name.find("\0")
    return name if cut < 0 else name[:cut]


def _zip64_extra(extra: bytes, usize: int, csize: int, offset: int) -> tuple[int, int, int]:
    pos = 0
    while pos + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, pos)
        body = extra[pos + 4:pos + 4 + length]
        if tag == 0x0001:
            vals = [struct.unpack_from("<Q", body, i)[0] for i in range(0, len(body) - 7, 8)]
            it = iter(vals)
            if usize == 0xFFFFFFFF:
                usize = next(it, usize)
            if csize == 0xFFFFFFFF:
                csize = next(it, csize)
            if offset == 0xFFFFFFFF:
                offset = next(it, offset)
            break
        pos += 4 + length
    return usize, csize, offset


class _Central(NamedTuple):
    name: str
    flags: int
    method: int
    csize: int
    usize: int
    offset: int  # absolute, after the prefix shift


class _Directory(NamedTuple):
    entries: int  # what the end record says (not `count`: that name is tuple.count)
    size: int
    offset: int
    end: int  # where the directory is expected to end: its end record, or the zip64 record in front of it


def _directories(data: memoryview, eocd: int) -> list[_Directory]:
    """The directory as the plain end record states it and as each zip64 record in front of it states it.

    ``zipfile`` applies a zip64 locator whenever one sits right before the end record (and reads the zip64 record
    right before the locator, not where the locator points); other readers only when a field is saturated and at the
    locator's offset. Every reading is kept.
    """
    _, _, _, _, count, cd_size, cd_offset, _ = struct.unpack("<4sHHHHIIH", bytes(data[eocd:eocd + 22]))
    readings = [_Directory(count, cd_size, cd_offset, eocd)]
    loc = bytes(data[max(eocd - 20, 0):eocd])
    if len(loc) == 20 and loc[:4] == _EOCD64_LOCATOR:
        rec64_off = struct.unpack_from("<Q", loc, 8)[0]
        shift64 = (eocd - 20 - 56) - rec64_off
        for start in {eocd - 76, rec64_off + max(shift64, 0)}:
            rec64 = bytes(data[start:start + 56]) if start >= 0 else b""
            if rec64[:4] == _EOCD64 and len(rec64) == 56:
                count64, size64, offset64 = struct.unpack_from("<QQQ", rec64, 32)
                readings.append(_Directory(count64, size64, offset64, start))
    return readings


def _central(data: memoryview, directory: _Directory, max_members: int) -> list[_Central]:
    """Central entries, shifted by the bytes prepended to the archive (computed like zipfile's ``concat``).

    miniz (torch) reads as many entries as the end record counts; ``zipfile`` reads entries until it has consumed
    the directory's byte size. Both are read: entries continue while either reader would go on.
    """
    count, cd_size, cd_offset, cd_end = directory
    if count > max_members:
        raise ZipFormatError(f"central directory lists {count} members, over the cap of {max_members}")
    shift = cd_end - cd_size - cd_offset
    if shift < 0:
        raise ZipFormatError("central directory offset points past its end record")
    start = pos = cd_offset + shift
    entries: list[_Central] = []
    while len(entries) < count or pos - start < cd_size:
        head = bytes(data[pos:pos + 46])
        if len(head) < 46 or head[:4] != _CENTRAL:
            if entries and (len(entries) >= count or pos - start >= cd_size):
                break  # one reader is done here; the other one fails, so it loads nothing more
            raise ZipFormatError(f"bad central directory entry at offset {pos}")
        if len(entries) >= max_members:
            raise ZipFormatError(f"central directory holds more than {max_members} members")
        (_, _, _, flags, method, _, _, _, csize, usize, nlen, xlen, clen, _, _, _, offset) = struct.unpack(
            "<4sHHHHHHIIIHHHHHII", head
        )
        name_raw = bytes(data[pos + 46:pos + 46 + nlen])
        extra = bytes(data[pos + 46 + nlen:pos + 46 + nlen + xlen])
        usize, csize, offset = _zip64_extra(extra, usize, csize, offset)
        entries.append(_Central(_decode(name_raw, flags), flags, method, csize, usize, offset + shift))
        pos += 46 + nlen + xlen + clen
    return entries


def _central_readings(data: memoryview, max_members: int) -> list[list[_Central]]:
    """Every directory reading some loader applies (see :func:`_eocd_candidates`, :func:`_directories`) that parses.

    A reading that does not parse is one no loader can use, so it adds nothing; caps still raise.
    """
    readings: list[list[_Central]] = []
    for eocd in _eocd_candidates(data):
        for directory in _directories(data, eocd):
            try:
                entries = _central(data, directory, max_members)
            except (ZipFormatError, struct.error) as exc:
                if "cap" in str(exc) or "more than" in str(exc):
                    raise
                continue
            if entries not in readings:
                readings.append(entries)
    return readings


def _local(data: memoryview, offset: int) -> tuple[str, int, int, int, int, int] | None:
    """(name, flags, method, csize, usize, data_offset) of the local header at ``offset``, or None."""
    head = bytes(data[offset:offset + 30])
    if len(head) < 30 or head[:4] != _LOCAL:
        return None
    (_, _, flags, method, _, _, _, csize, usize, nlen, xlen) = struct.unpack("<4sHHHHHIIIHH", head)
    name_raw = bytes(data[offset + 30:offset + 30 + nlen])
    extra = bytes(data[offset + 30 + nlen:offset + 30 + nlen + xlen])
    usize, csize, _ = _zip64_extra(extra, usize, csize, 0)
    data_offset = offset + 30 + nlen + xlen
    if data_offset > len(data):
        return None
    return _decode(name_raw, flags), flags, method, csize, usize, data_offset


def read_layout(data: memoryview, *, max_members: int) -> ZipLayout:
    """Union of central-directory and local-header entries (by local header offset).

    Raises:
        ZipFormatError: neither a central directory nor a local header chain can be read, or caps exceeded.
    """
    readings = _central_readings(data, max_members)
    has_central = bool(readings)
    central = [c for reading in readings for c in reading]
    # Two readings may describe the same local header differently (name, sizes, method): each description is an
    # entry of its own, so the data is read both ways.
    described: dict[_Central, ZipEntry] = {}
    for c in central:
        if c in described:
            continue
        local = _local(data, c.offset)
        described[c] = ZipEntry(
            name=c.name, local_name=local[0] if local else None, central_name=c.name, header_offset=c.offset,
            data_offset=local[5] if local else -1, compressed_size=c.csize, uncompressed_size=c.usize,
            method=c.method, flags=c.flags,
        )
        if len(described) > max_members:
            raise ZipFormatError(f"more than {max_members} members")
    by_offset: dict[int, ZipEntry] = {}
    for entry in described.values():
        by_offset.setdefault(entry.header_offset, entry)
    # Walk the local header chain: the first local header is where the archive starts (after any prefix).
    first = bytes(data[:min(len(data), 1 << 16)]).find(_LOCAL)
    if first < 0 and central:
        first = min(by_offset)
    prefix = first if first >= 0 else 0
    pos = first
    while pos >= 0:
        local = _local(data, pos)
        if local is None:
            break
        name, flags, method, csize, usize, data_offset = local
        known = by_offset.get(pos)
        if known is None:
            by_offset[pos] = ZipEntry(name, name, None, pos, data_offset, csize, usize, method, flags)
            if len(by_offset) + len(described) > max_members:
                raise ZipFormatError(f"more than {max_members} members")
        else:
            csize = known.compressed_size if (flags & 0x8 or csize == 0) else csize
        nxt = data_offset + csize
        if flags & 0x8 and known is None:
            break  # size only in a trailing descriptor and no central entry: cannot find the next header safely
        if bytes(data[nxt:nxt + 4]) == _DESCRIPTOR:
            nxt += 16
        elif flags & 0x8:
            # descriptor without signature (12 bytes) or zip64 (24): try both
            for skip in (12, 20, 24):
                if bytes(data[nxt + skip:nxt + skip + 4]) == _LOCAL:
                    nxt += skip
                    break
        pos = nxt if bytes(data[nxt:nxt + 4]) == _LOCAL else -1
    if not by_offset and not has_central:
        raise ZipFormatError("no readable zip headers")
    local_only = [e for e in by_offset.values() if e.central_name is None]
    entries = tuple(sorted((*described.values(), *local_only), key=lambda e: e.header_offset))
    return ZipLayout(entries, prefix, has_central, len(readings) > 1)


def member_data(data: memoryview, entry: ZipEntry, *, max_bytes: int) -> memoryview:
    """The member's content: a zero-copy slice when stored, decompressed (capped) when deflated.

    Raises:
        ZipFormatError: unreadable header, unsupported method, corrupt data or output over ``max_bytes``.
    """
    if entry.data_offset < 0:
        raise ZipFormatError(f"no local header for {entry.name!r}")
    raw = data[entry.data_offset:entry.data_offset + entry.compressed_size]
    if len(raw) < entry.compressed_size:
        raise ZipFormatError(f"member {entry.name!r} is truncated")
    if entry.method == 0:
        return raw
    if entry.method == 8:
        try:  # bounded memory: fed in slices, spooled to disk past 16 MiB (detectors/inflate.py)
            return inflate(zlib.decompressobj(-15), raw, max_bytes, require_eof=False)
        except OverBudget:
            raise ZipFormatError(f"member {entry.name!r} decompresses to more than {max_bytes} bytes") from None
        except zlib.error as exc:
            raise ZipFormatError(f"member {entry.name!r}: corrupt deflate data ({exc})") from None
    if entry.method in (12, 14):
        import bz2
        import lzma

        try:
            dec: bz2.BZ2Decompressor | lzma.LZMADecompressor
            body = raw
            if entry.method == 12:
                dec = bz2.BZ2Decompressor()
            else:
                # zip's LZMA: 2-byte version, 2-byte props size, props, then raw LZMA1 data.
                psize = struct.unpack_from("<H", raw, 2)[0]
                props = bytes(raw[4:4 + psize])
                # NOTE: no public API turns LZMA1 properties into a filter dict; zipfile uses the same private helper.
                filt = lzma._decode_filter_properties(lzma.FILTER_LZMA1, props)  # type: ignore[attr-defined]
                dec = lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[filt])
                body = raw[4 + psize:]
            return inflate(dec, body, max_bytes, require_eof=False)
        except OverBudget:
            raise ZipFormatError(f"member {entry.name!r} decompresses to more than {max_bytes} bytes") from None
        except (OSError, ValueError, EOFError, lzma.LZMAError, struct.error) as exc:
            raise ZipFormatError(f"member {entry.name!r}: corrupt compressed data ({exc})") from None
    raise ZipFormatError(f"member {entry.name!r} uses unsupported compression method {entry.method}")
