"""The bytes a checkout writes, when they are not the blob's.

git converts a blob on its way to the working tree (``convert.c``): with ``core.autocrlf=true`` (the Git for Windows
default) every lone LF of a file it deems text becomes CRLF; ``.gitattributes`` can force that for any file
(``text eol=crlf``), re-encode it from UTF-8 (``working-tree-encoding=ISO-8859-1``) or expand ``$Id$`` (``ident``).
A file that is harmless as a blob can be a pickle that runs code as checked out, so the scanner judges those forms
too. This module only computes them; ``content.scan_blob`` and the push gate decide which apply.

The LF -> CRLF form matters only where it can resolve a global: after the conversion every newline-terminated
argument ends in ``\\r``, so the text opcodes GLOBAL and INST name modules like ``os\\r`` that no import finds. Only
STACK_GLOBAL (0x93) and the copyreg extension codes EXT1/2/4 (0x82-0x84) still reach a callable, so a blob without any
of those four bytes has no CRLF form worth scanning. That test is exact for CPython's unpickler and cheap (C speed).
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["AUTOCRLF_CAP", "NO_DIRECTIVES", "Directives", "autocrlf_form", "could_autocrlf", "crlf_form",
           "encoded_forms", "git_text_stats", "ident_form", "parse_attributes"]

AUTOCRLF_CAP = 64 << 20  # bytes: a converted copy is held in memory; bigger candidates are unscannable
_GLOBAL_AFTER_CRLF = re.compile(rb"[\x82-\x84\x93]")
# git's gather_stats: bytes below 32 count as non-printable except BS, TAB, ESC, FF (and CR/LF, counted apart); DEL
# (127) too; NUL is counted on its own. Bytes of 128 and above are printable to git.
_NONPRINTABLE = bytes(b for b in range(256) if (b < 32 and b not in b"\b\t\x1b\x0c\r\n") or b == 127)
_PRINTABLE_DELETE = bytes(b for b in range(256) if b not in _NONPRINTABLE)


@dataclass(frozen=True)
class TextStats:
    nul: bool
    lone_cr: bool
    crlf: bool
    lone_lf: bool
    binary: bool  # git's convert_is_binary


def git_text_stats(data: bytes) -> TextStats:
    """``convert.c``'s gather_stats + convert_is_binary, computed with C-speed byte operations."""
    crlf = data.count(b"\r\n")
    cr = data.count(b"\r")
    lf = data.count(b"\n")
    nonprintable = len(data.translate(None, _PRINTABLE_DELETE))
    if data.endswith(b"\x1a"):  # git: a trailing EOF character (^Z) is not counted
        nonprintable -= 1
    # printable = everything that is neither CR, LF nor non-printable
    printable = len(data) - cr - lf - max(nonprintable, 0)
    nul = b"\0" in data
    lone_cr = cr > crlf
    binary = lone_cr or nul or (printable >> 7) < nonprintable
    return TextStats(nul, lone_cr, crlf > 0, lf > crlf, binary)


def could_autocrlf(view: bytes | memoryview) -> bool:
    """Could core.autocrlf write a form a pickle feels: no NUL (git leaves binaries alone), a global-resolving byte
    and an LF? Touches only what it must: a weights file stops at its first NUL, usually within the first bytes."""
    return (re.search(rb"\0", view) is None and _GLOBAL_AFTER_CRLF.search(view) is not None
            and re.search(rb"\n", view) is not None)


def autocrlf_form(data: bytes | memoryview) -> bytes | None:
    """The file ``core.autocrlf=true`` writes, when it differs from the blob in a way a pickle can feel; else None.

    git converts only files it deems text, that have a lone LF and neither CR nor CRLF (``will_convert_lf_to_crlf``
    for the auto actions)."""
    if not could_autocrlf(data):
        return None
    raw = bytes(data)
    stats = git_text_stats(raw)
    if stats.binary or stats.crlf or stats.lone_cr or not stats.lone_lf:
        return None
    return raw.replace(b"\n", b"\r\n")


def crlf_form(data: bytes | memoryview) -> bytes | None:
    """The file ``text eol=crlf`` writes (every lone LF becomes CRLF, binary or not), when a pickle can feel it."""
    if _GLOBAL_AFTER_CRLF.search(data) is None or re.search(rb"\n", data) is None:
        return None
    data = bytes(data)
    converted = re.sub(rb"(?<!\r)\n", b"\r\n", data)
    return converted if converted != data else None


def ident_form(data: bytes | memoryview, blob_id: str) -> bytes | None:
    """The file the ``ident`` attribute writes: ``$Id$`` (and ``$Id: anything $`` without a newline) becomes
    ``$Id: <blob id> $`` (``convert.c``'s ident_to_worktree)."""
    if re.search(rb"\$Id", data) is None:
        return None
    data = bytes(data)
    converted = re.sub(rb"\$Id(?::[^$\n]*)?\$", b"$Id: " + blob_id.encode() + b" $", data)
    return converted if converted != data else None


def encoded_forms(data: bytes, encoding: str) -> list[tuple[str, bytes]] | None:
    """The files ``working-tree-encoding=<encoding>`` writes: git re-encodes the blob from UTF-8 with iconv and
    writes the blob unchanged when that fails. ``UTF-16``/``UTF-32`` without an order get a byte-order mark whose
    order depends on the platform's iconv, so both orders are returned. None when Python has no such codec (the
    caller fails closed); [] when the blob is not UTF-8 or the encoding cannot hold it (git writes the blob)."""
    name = encoding.strip().lower().replace("_", "-")
    if name in ("utf-16", "utf16", "ucs-2", "ucs2"):
        codec_names = ["utf-16-be", "utf-16-le"]
        boms = [codecs.BOM_UTF16_BE, codecs.BOM_UTF16_LE]
    elif name in ("utf-32", "utf32", "ucs-4", "ucs4"):
        codec_names = ["utf-32-be", "utf-32-le"]
        boms = [codecs.BOM_UTF32_BE, codecs.BOM_UTF32_LE]
    else:
        codec_names, boms = [name], [b""]
    try:
        for codec_name in codec_names:
            codecs.lookup(codec_name)
    except LookupError:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return []
    out = []
    for codec_name, bom in zip(codec_names, boms):
        try:
            encoded = bom + text.encode(codec_name)
        except (UnicodeEncodeError, ValueError):
            continue
        if encoded != data:
            out.append((f"{encoding} ({codec_name})" if len(codec_names) > 1 else encoding, encoded))
    return out


@dataclass(frozen=True)
class Directives:
    """What ``.gitattributes`` files may make a checkout do to a file's bytes: a superset, read without patterns
    (any line that sets a conversion counts for every path), so no pattern or precedence subtlety can hide one."""

    encodings: frozenset[str] = frozenset()
    crlf: bool = False
    ident: bool = False

    def __bool__(self) -> bool:
        return bool(self.encodings) or self.crlf or self.ident

    def describe(self) -> str:
        parts = [f"working-tree-encoding={e}" for e in sorted(self.encodings)]
        return ", ".join(parts + (["eol=crlf"] if self.crlf else []) + (["ident"] if self.ident else []))

    def union(self, other: Directives) -> Directives:
        return Directives(self.encodings | other.encodings, self.crlf or other.crlf, self.ident or other.ident)


NO_DIRECTIVES = Directives()


def parse_attributes(files: Iterable[bytes]) -> Directives:
    """The conversions any of these ``.gitattributes`` texts can ask for. Macros (``[attr]name ...``) are read like
    any line, so a macro that sets ``eol=crlf`` counts wherever it is used."""
    encodings: set[str] = set()
    crlf = ident = False
    for data in files:
        for token in re.findall(rb"[^\s]+", data):
            low = token.lower()
            if low.startswith(b"working-tree-encoding="):
                value = token.split(b"=", 1)[1].decode("utf-8", "replace")
                if value:
                    encodings.add(value)
            elif low in (b"text", b"eol=crlf", b"crlf"):
                # forced conversion, binary or not (convert.c: CRLF_TEXT_CRLF); ``text=auto`` converts only what
                # git deems text, which is the core.autocrlf form content.scan_blob already judges
                crlf = True
            elif low == b"ident":
                ident = True
    return Directives(frozenset(encodings), crlf, ident)
