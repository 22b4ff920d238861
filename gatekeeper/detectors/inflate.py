"""Decompress with bounded memory: a zip bomb or a 1 GiB gzip blob must not make the hook allocate gigabytes.

The compressed input is fed in slices (never copied whole: it is often a mapping of a huge blob), the output is taken in
chunks and counted against a byte budget as it is produced, and output beyond :data:`IN_MEMORY_MAX` goes to an unlinked
temporary file that is then mapped read-only, so the detectors that walk it touch only the pages they read. The
result is the same bytes ``decompress`` would return, up to the budget.
"""

from __future__ import annotations

import lzma
import mmap
import zlib
from collections.abc import Callable
from typing import IO, Protocol

IN_MEMORY_MAX = 16 << 20  # decompressed output above this is spooled to disk and mapped
_IN_SLICE = 1 << 20  # compressed bytes fed per call
_OUT_CHUNK = 1 << 20  # decompressed bytes taken per call


class OverBudget(Exception):
    """The output would exceed the budget (the caller reports it as a cap, never as clean)."""


class Truncated(EOFError):
    """The input ended before the compressed stream did."""


class _Decompressor(Protocol):
    @property
    def eof(self) -> bool: ...

    def decompress(self, data: bytes | memoryview, max_length: int = ...) -> bytes: ...


class _Sink:
    """Collects output in memory, switching to an unlinked temporary file past IN_MEMORY_MAX."""

    def __init__(self) -> None:
        self.size = 0
        self._buf = bytearray()
        self._file: IO[bytes] | None = None

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self._file is None and self.size > IN_MEMORY_MAX:
            import tempfile

            self._file = tempfile.TemporaryFile(prefix="gatekeeper-inflate-")
            self._file.write(self._buf)
            self._buf = bytearray()
        if self._file is not None:
            self._file.write(chunk)
        else:
            self._buf += chunk

    def view(self) -> memoryview:
        if self._file is None:
            return memoryview(self._buf)
        self._file.flush()
        mapped = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)  # keeps the file alive once closed
        self._file.close()
        return memoryview(mapped)


def inflate(dec: _Decompressor, data: bytes | memoryview, budget: int, *, require_eof: bool = True,
            next_stream: Callable[[], _Decompressor] | None = None, skip_zeros: bool = False) -> memoryview:
    """Everything ``dec`` produces from ``data``, at most ``budget`` bytes.

    ``dec`` is a ``zlib.decompressobj`` (which hands back unconsumed input) or a ``bz2``/``lzma`` decompressor (which
    buffers it and says ``needs_input``). With ``next_stream``, input left after the end of a stream starts another
    one (``gzip.GzipFile``, ``bz2.BZ2File`` and ``lzma.LZMAFile`` read concatenated streams), after any NUL padding
    when ``skip_zeros`` (gzip); trailing bytes that are no valid stream end the output there, as those readers stop
    or fail on them after handing over what came before.

    Raises:
        OverBudget: the output would be larger than ``budget``.
        Truncated: the data ended before the end of the compressed stream (only with ``require_eof``: zip members
            may end without an end marker, and zip readers accept that).
        zlib.error, OSError, lzma.LZMAError, EOFError: corrupt input, as the decompressor raises it.
    """
    sink = _Sink()
    view = data if isinstance(data, memoryview) else memoryview(data)
    start = _one_stream(dec, view, 0, sink, budget)
    if require_eof and not dec.eof:
        raise Truncated("compressed stream is truncated")
    while next_stream is not None and dec.eof:
        while skip_zeros and start < len(view) and view[start] == 0:
            start += 1
        if start >= len(view):
            break
        dec = next_stream()
        try:
            start = _one_stream(dec, view, start, sink, budget)
        except (zlib.error, lzma.LZMAError, OSError, EOFError, ValueError):
            break  # trailing garbage: the readers stop here
    return sink.view()


def _one_stream(dec: _Decompressor, view: memoryview, pos: int, sink: _Sink, budget: int) -> int:
    """Feed ``view[pos:]`` to ``dec`` until its stream ends; return the offset of the first byte after it."""
    zlib_style = hasattr(dec, "unconsumed_tail")
    end = len(view)
    pending: bytes | memoryview = b""
    while not dec.eof:
        if zlib_style:
            if not pending:
                if pos >= end:
                    out = dec.decompress(b"", _OUT_CHUNK)  # output still held inside the decompressor, if any
                    if not out:
                        break
                else:
                    pending, pos = view[pos:pos + _IN_SLICE], min(pos + _IN_SLICE, end)
                    out = b""
            if pending:
                out = dec.decompress(pending, _OUT_CHUNK)
                pending = dec.unconsumed_tail  # type: ignore[attr-defined]
        elif dec.needs_input:  # type: ignore[attr-defined]
            if pos >= end:
                break
            out = dec.decompress(view[pos:pos + _IN_SLICE], _OUT_CHUNK)
            pos = min(pos + _IN_SLICE, end)
        else:
            out = dec.decompress(b"", _OUT_CHUNK)
        if sink.size + len(out) > budget:
            raise OverBudget(f"decompressed data over {budget} bytes")
        if out:
            sink.write(out)
    return pos - len(pending) - len(getattr(dec, "unused_data", b""))
