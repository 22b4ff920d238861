"""Git LFS pointers: parse them exactly as leniently as git-lfs, then scan the object they stand for.

Parser (git-lfs ``lfs/pointer.go``, ml-artifacts.md §7): git-lfs reads at most ``blobSizeCutoff`` = 1024 bytes, trims
Unicode white space (``bytes.TrimSpace``), requires one of ``git-media``/``hawser``/``git-lfs`` somewhere, then scans
lines (``bufio.ScanLines`` drops a ``\\r`` before each ``\\n``, so CRLF pointers are valid), skips empty lines, splits
each on the first space and expects the keys ``version``, ``oid``, ``size`` in that order, with ``ext-<digit>-<name>``
lines allowed in between; anything after ``size`` is an "extra line". Those structural failures make git-lfs treat the
blob as ordinary content (``NotAPointerError``): so do we (``parse_pointer`` returns None and the blob is scanned as
itself). Failures in the *values* (unknown version, oid not ``sha256:`` + 64 lowercase hex, size not a non-negative
int64) make git-lfs refuse the checkout with an error: we call the pointer malformed (:class:`MalformedPointer`) and
report it ``unscannable``, because another tool may resolve it differently (Gitea's parser is stricter, §7).

Server stores (Gitea ``data/lfs``, GitLab ``shared/lfs-objects``) lay objects out as ``oid[0:2]/oid[2:4]/oid[4:]``; the
git-lfs client store and some mirrors use ``oid[0:2]/oid[2:4]/oid``. Both are tried.

Verdicts: a missing object is ``unscannable`` (fail closed: clients upload before the ref push, but the object may be
absent or in object storage). A size or SHA-256 mismatch is ``unscannable`` too, not ``malicious``: git-lfs verifies
the hash on download and refuses a mismatching object, so those bytes are never what a client loads, and what a client
would load (the real object for this oid) is not available to scan; the bytes that are there are still scanned, so a
planted pickle is reported as what it is.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import re
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from gatekeeper.model import Finding, Verdict

DETECTOR = "git-lfs"
BLOB_SIZE_CUTOFF = 1024  # git-lfs blobSizeCutoff: pointers are read from the first 1024 bytes only

_VERSIONS = frozenset({
    "https://git-lfs.github.com/spec/v1",
    "https://hawser.github.com/spec/v1",
    "http://git-media.io/v/2",
})
_MATCHER = re.compile(rb"git-media|hawser|git-lfs")
_EXT_KEY = re.compile(r"^ext-\d{1}-\w+")  # git-lfs extRE (Go regexp, prefix match)
_OID = re.compile(r"\A[0-9a-f]{64}\Z")
_INT64 = re.compile(r"\A[+-]?[0-9]+\Z")  # strconv.ParseInt(value, 10, 64): optional sign, decimal digits only
_INT64_MAX = 2**63 - 1
# Go's unicode.IsSpace (what bytes.TrimSpace trims), which differs from str.isspace (that adds \x1c-\x1f).
_GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029" \
            "\u202f\u205f\u3000"
_KEYS = ("version", "oid", "size")


@dataclass(frozen=True)
class LfsPointer:
    version: str
    oid: str  # 64 lowercase hex
    size: int
    extensions: tuple[tuple[str, str], ...] = ()


class MalformedPointer(Exception):
    """git-lfs recognises the blob as a pointer but refuses its values."""


def may_be_pointer(data: bytes) -> bool:
    """False only when :func:`parse_pointer` returns None: git-lfs reads a pointer only if its first
    ``BLOB_SIZE_CUTOFF`` bytes name git-lfs (stripping spaces from the ends cannot create the name)."""
    return _MATCHER.search(data, 0, BLOB_SIZE_CUTOFF) is not None


def parse_pointer(data: bytes | memoryview | mmap.mmap) -> LfsPointer | None:
    """Parse an LFS pointer as git-lfs does.

    Returns:
        The pointer, or None when git-lfs would treat the blob as ordinary content.

    Raises:
        MalformedPointer: the structure is a pointer but a value is invalid (git-lfs errors out on it).
    """
    head = bytes(data[:BLOB_SIZE_CUTOFF])
    text = head.decode("utf-8", "surrogateescape").strip(_GO_SPACE)
    if not _MATCHER.search(text.encode("utf-8", "surrogateescape")):
        return None
    values: dict[str, str] = {}
    extensions: list[tuple[str, str]] = []
    line_no = 0
    for raw in text.split("\n"):
        line = raw[:-1] if raw.endswith("\r") else raw  # bufio.ScanLines drops one trailing \r
        if not line:
            continue
        parts = line.split(" ", 1)
        if len(parts) < 2:
            return None
        key, value = parts
        if line_no >= len(_KEYS):
            return None  # "extra line"
        if key != _KEYS[line_no]:
            if not _EXT_KEY.match(key):
                return None
            extensions.append((key, value))
            continue
        line_no += 1
        values[key] = value
    version = values.get("version", "")
    if not version:
        raise MalformedPointer("missing version")
    if version not in _VERSIONS:
        raise MalformedPointer(f"unknown version {version!r}")
    if "oid" not in values:
        raise MalformedPointer("missing oid")
    kind, _, oid = values["oid"].partition(":")
    if kind != "sha256":
        raise MalformedPointer(f"unsupported oid type {kind!r}")
    if not _OID.match(oid):
        raise MalformedPointer(f"oid {oid[:80]!r} is not 64 lowercase hex digits")
    size_text = values.get("size")
    if size_text is None or not _INT64.match(size_text) or not -_INT64_MAX - 1 <= int(size_text) <= _INT64_MAX:
        raise MalformedPointer(f"invalid size {size_text!r}")
    size = int(size_text)
    if size < 0:
        raise MalformedPointer(f"negative size {size}")
    return LfsPointer(version, oid, size, tuple(extensions))


def object_candidates(store: Path, oid: str) -> list[Path]:
    """Where a server (Gitea, GitLab: ``oid[4:]``) or client-style store (full oid) keeps the object."""
    folder = store / oid[0:2] / oid[2:4]
    return [folder / oid[4:], folder / oid]


@contextmanager
def _mapped(path: Path) -> Iterator[tuple[mmap.mmap | bytes, int]]:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            yield b"", 0
            return
        with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as mapped:
            yield mapped, size
    finally:
        os.close(fd)


def _sha256(data: mmap.mmap | bytes) -> str:
    digest = hashlib.sha256()
    view = memoryview(data)
    try:
        for start in range(0, len(view), 1 << 22):
            digest.update(view[start:start + (1 << 22)])
    finally:
        view.release()
    return digest.hexdigest()


ScanBlob = Callable[[str, "bytes | memoryview | mmap.mmap"], list[Finding]]


def malformed_finding(path: str, exc: MalformedPointer) -> Finding:
    return Finding(Verdict.UNSCANNABLE, path, DETECTOR,
                   f"malformed Git LFS pointer ({exc}): git-lfs refuses it, other tools may not",
                   ("hint: recreate it with git lfs track / git add",))


def lfs_findings(path: str, data: bytes | memoryview | mmap.mmap, *, lfs_store: Path | None, scan_blob: ScanBlob,
                 max_object_bytes: int | None = None) -> list[Finding] | None:
    """Everything about one blob that may be an LFS pointer (for the hook: call it before scanning a small blob).

    Returns:
        None when git-lfs would not treat ``data`` as a pointer (scan the blob as itself); otherwise the findings for
        the pointer and the object it stands for (empty when the object is present, intact and clean).
    """
    try:
        pointer = parse_pointer(data)
    except MalformedPointer as exc:
        return [malformed_finding(path, exc)]
    if pointer is None:
        return None
    return scan_pointer(path, pointer, lfs_store=lfs_store, scan_blob=scan_blob, max_object_bytes=max_object_bytes)


def scan_pointer(path: str, pointer: LfsPointer, *, lfs_store: Path | None, scan_blob: ScanBlob,
                 max_object_bytes: int | None = None) -> list[Finding]:
    """Resolve a pointer in the store, verify size and SHA-256, and scan the object with ``scan_blob``.

    ``max_object_bytes`` caps the object size (hashing and scanning cost): a bigger object is unscannable.
    """
    evidence = (f"oid sha256:{pointer.oid}", f"size {pointer.size}")
    if max_object_bytes is not None and pointer.size > max_object_bytes:
        return [Finding(Verdict.UNSCANNABLE, path, DETECTOR,
                        f"LFS object of {pointer.size} bytes is above the {max_object_bytes}-byte scan cap", evidence)]
    if lfs_store is None:
        return [Finding(Verdict.UNSCANNABLE, path, DETECTOR,
                        "Git LFS pointer, but no LFS store is configured: the object cannot be scanned",
                        (*evidence, "hint: pass --lfs-store DIR (Gitea data/lfs, GitLab shared/lfs-objects)"))]
    for candidate in object_candidates(lfs_store, pointer.oid):
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            continue
        except OSError as exc:
            return [Finding(Verdict.UNSCANNABLE, path, DETECTOR, f"LFS object unreadable: {exc.strerror}",
                            (*evidence, f"store path {candidate}"))]
        if not stat.S_ISREG(st.st_mode):
            return [Finding(Verdict.UNSCANNABLE, path, DETECTOR, "LFS object is not a regular file",
                            (*evidence, f"store path {candidate}"))]
        return _scan_object(path, pointer, candidate, evidence, scan_blob)
    return [Finding(Verdict.UNSCANNABLE, path, DETECTOR, "LFS object missing from the store",
                    (*evidence, f"looked in {object_candidates(lfs_store, pointer.oid)[0]}"))]


def _scan_object(path: str, pointer: LfsPointer, location: Path, evidence: tuple[str, ...],
                 scan_blob: ScanBlob) -> list[Finding]:
    inner = f"{path}!lfs:{pointer.oid[:12]}"
    try:
        with _mapped(location) as (data, size):
            problems: list[str] = []
            if size != pointer.size:
                problems.append(f"size {size} in the store, {pointer.size} in the pointer")
            else:
                actual = _sha256(data)
                if actual != pointer.oid:
                    problems.append(f"sha256 of the stored object is {actual}")
            findings = list(scan_blob(inner, data))
    except OSError as exc:
        return [Finding(Verdict.UNSCANNABLE, path, DETECTOR, f"LFS object unreadable: {exc.strerror}",
                        (*evidence, f"store path {location}"))]
    if problems:
        findings.insert(0, Finding(Verdict.UNSCANNABLE, path, DETECTOR,
                                   "LFS object does not match its pointer (clients would refuse it; the real object "
                                   "is not available to scan)", (*evidence, *problems, f"store path {location}")))
    return findings
