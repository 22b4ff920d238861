"""The short-text lane: text the scanner is sure to find nothing in, recognised without importing or running it.

Most files of a big push are source and configs. Judging them with :func:`gatekeeper.detectors.content.scan_blob`
costs an import of the whole scanner (pickle emulator, archive walkers) and tens of microseconds a file, to learn that
a file starting ``# Copyright`` is not a pickle, an archive or a weights file. This module says so in a few C-level
passes over the bytes, and is small enough for the hook's hot path.
"""

from __future__ import annotations

from gatekeeper.detectors.tar_walk import looks_like_tar

# First bytes that no format the scanner knows starts with and that no unpickler resolves a global after: "#",
# quotes, "/", "*", "<", "{", "-" and friends, letters that are no opcode (A D E O W Y f k m n w y z), and the opcodes
# of content._FAILS_ON_EMPTY_STACK except "R" (Rar!) and "h" (a deflate CMF byte, like the "x", "H", "X" and "8" also
# left out). Not whitespace: a core.autocrlf form would start differently.
_INERT_FIRST = frozenset(b"#\"'/*<{-=!@%;:$&?ADEOWYfkmnwyz.012Qabdegjlopqrstu")
_TEXT_BYTES = bytes(range(0x20, 0x7F)) + b"\t\n\r"
INERT_MAX = 1 << 20  # the lane's size limit (scanning text that big is rare; the check is linear)


def plainly_inert(data: bytes, path: str) -> bool:
    """True only if ``content.scan_blob`` finds nothing in ``data`` at ``path``, decided without scanning:
    printable ASCII (no control byte but tab, LF, CR) of at most ``INERT_MAX`` bytes that starts with a byte of
    ``_INERT_FIRST``, has no "{" in bytes 1-8 (a safetensors header's "{" sits at offset 8, also once core.autocrlf
    has added CRs) and whose first 512 bytes are no tar header, as stored or as core.autocrlf writes them; at a path
    no loader reads as safetensors or a SavedModel. Every other magic, end record and HDF5 user block needs a control
    or non-ASCII byte, and an unpickler stops at the first byte. tests/limits/test_inert_lane.py checks the claim
    against scan_blob."""
    if not (0 < len(data) <= INERT_MAX and data[0] in _INERT_FIRST and b"{" not in data[1:9]):
        return False
    if data.translate(None, _TEXT_BYTES):
        return False
    if len(data) + data.count(b"\n", 0, 512) >= 512:  # room for a tar header, in the blob or its CRLF form
        head = data[:512]
        if looks_like_tar(head) or looks_like_tar(head.replace(b"\n", b"\r\n")[:512]):
            return False
    return not path.casefold().rstrip(" .").endswith((".safetensors", "saved_model.pb"))  # as pathfacts.loaded_as
