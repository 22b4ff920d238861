"""What a tree holds, as far as one name test cares, remembered across pushes.

The remote-code analysis of a protected push that changes Python lists the config-named entries of the whole new tree
(any YAML file may name a changed module): O(tree) per push, about 0.25 s for 50,000 files, paid by a one-line push.
A tree object never changes (its id is the digest of its bytes), and neither does the type of the objects its entries
name (their ids include the type), so the entries under a tree whose names pass a fixed test are a fact about its id.
Remembered here, a push re-reads only the trees it changed and takes every other subtree's entries whole:
O(changed trees).

The file lives in the verdict cache's directory (owner-only, checked by ``VerdictCache``); each push appends one batch
with one ``O_APPEND`` write, and each batch carries a SHA-256 of its bytes, so a torn or damaged batch is skipped (a
miss: those trees are read again), never believed. Past :data:`MAX_FILE_BYTES` the next writer starts the file over.
Trees whose listing is not a fact about the id alone (malformed, duplicate names, an entry with a tree mode that names
no tree here) are never remembered, and neither is any tree above them.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable

MAX_FILE_BYTES = 16 << 20
_DIGEST_HEX = 32  # the first 128 bits of a batch's SHA-256

Entry = tuple[bytes, int, str]  # (path relative to the tree, canonical mode, object id)


class TreeListings:
    """Listings under one name test (``keep``, named by ``version``: bump it whenever the test changes)."""

    def __init__(self, directory: os.PathLike[str] | str, keep: Callable[[bytes], bool], version: str) -> None:
        self.path = os.path.join(directory, f"tree-listings-{version}")
        self.keep = keep
        self._known: dict[str, tuple[Entry, ...]] | None = None
        self._new: dict[str, tuple[Entry, ...]] = {}
        self._size = 0

    def get(self, tree: str) -> tuple[Entry, ...] | None:
        """The entries under ``tree`` (every depth) whose names pass the test, or None if it was never listed."""
        if self._known is None:
            self._known = self._load()
        return self._known.get(tree)

    def add(self, tree: str, entries: tuple[Entry, ...]) -> None:
        if self._known is None:
            self._known = self._load()
        if len(tree) == 40 and tree not in self._known:  # the file's runs of ids are SHA-1 ids
            self._known[tree] = entries
            self._new[tree] = entries

    def flush(self) -> None:
        """Append this push's new listings as one batch, in one write. Errors are ignored: a lost listing is only
        a re-read."""
        if not self._new:
            return
        body = _encode(self._new)
        self._new = {}
        batch = b"B %d %s\n%s" % (len(body), hashlib.sha256(body).hexdigest()[:_DIGEST_HEX].encode(), body)
        full = self._size + len(batch) > MAX_FILE_BYTES
        flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_TRUNC if full else os.O_APPEND)
        try:
            fd = os.open(self.path, flags, 0o600)
            try:
                os.write(fd, batch)
            finally:
                os.close(fd)
        except OSError:
            return

    def _load(self) -> dict[str, tuple[Entry, ...]]:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return {}
        try:
            st = os.fstat(fd)
            if (not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022
                    or st.st_size > 2 * MAX_FILE_BYTES):
                return {}
            data = b""
            while len(data) < st.st_size:
                chunk = os.read(fd, st.st_size - len(data))
                if not chunk:
                    break
                data += chunk
        except OSError:
            return {}
        finally:
            os.close(fd)
        self._size = len(data)
        return parse(data)


def _encode(listings: dict[str, tuple[Entry, ...]]) -> bytes:
    """Trees with no entries as one run of ids (most trees of a big repository hold no config), then each other tree:
    ``T <id> <count>\\n`` and its entries, ``<mode> <id> <path>\\0`` each (a path holds no NUL)."""
    empty = [tree for tree, entries in listings.items() if not entries]
    parts = [b"E %d\n" % len(empty), "".join(empty).encode(), b"\n"]
    for tree, entries in listings.items():
        if entries:
            parts.append(b"T %s %d\n" % (tree.encode(), len(entries)))
            parts.extend(b"%o %s %s\0" % (mode, oid.encode(), path) for path, mode, oid in entries)
    return b"".join(parts)


def parse(data: bytes) -> dict[str, tuple[Entry, ...]]:
    """Every intact batch of a listings file; reading stops at the first header it cannot read (a torn tail)."""
    out: dict[str, tuple[Entry, ...]] = {}
    pos = 0
    while pos < len(data):
        eol = data.find(b"\n", pos, pos + 80)
        try:
            tag, length_text, digest = data[pos:eol].split(b" ") if eol >= 0 else (b"", b"", b"")
            length = int(length_text)
        except ValueError:
            break
        if tag != b"B":
            break
        body = data[eol + 1:eol + 1 + length]
        pos = eol + 1 + length
        if len(body) == length and hashlib.sha256(body).hexdigest()[:_DIGEST_HEX].encode() == digest:
            try:
                out.update(_decode(body))
            except (ValueError, UnicodeDecodeError):
                continue  # a batch this version cannot read: a miss
    return out


def _decode(body: bytes) -> dict[str, tuple[Entry, ...]]:
    out: dict[str, tuple[Entry, ...]] = {}
    eol = body.index(b"\n")
    tag, count_text = body[:eol].split(b" ")
    count = int(count_text)
    if tag != b"E":
        raise ValueError("not a listings batch")
    ids = body[eol + 1:eol + 1 + count * 40].decode("ascii")
    if len(ids) != count * 40 or body[eol + 1 + count * 40:eol + 2 + count * 40] != b"\n":
        raise ValueError("truncated run of ids")
    for i in range(0, len(ids), 40):
        out[ids[i:i + 40]] = ()
    pos = eol + 2 + count * 40
    while pos < len(body):
        eol = body.index(b"\n", pos)
        tag, tree, count_text = body[pos:eol].split(b" ")
        if tag != b"T":
            raise ValueError("not a tree record")
        pos = eol + 1
        entries: list[Entry] = []
        for _ in range(int(count_text)):
            end = body.index(b"\0", pos)
            mode, oid, path = body[pos:end].split(b" ", 2)
            entries.append((path, int(mode, 8), oid.decode("ascii")))
            pos = end + 1
        out[tree.decode("ascii")] = tuple(entries)
    return out
