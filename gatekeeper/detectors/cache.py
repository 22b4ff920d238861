"""A small on-disk verdict cache: a re-push of a blob that was already scanned costs one file read.

Keyed by (blob id, :meth:`ScanOptions.digest`, :data:`DETECTOR_VERSION`, the path facts the verdict depends on): a new
allow-list, cap or detector release is a different key, so a stale verdict is never reused. Entries are JSON files
written to a temporary name and ``os.replace``-d into place (atomic on POSIX), so concurrent hooks see either no entry
or a whole one; a torn or unreadable entry is a miss, never a pass. The cache is bounded: on roughly one write in 64 it
prunes the oldest entries (by mtime) down to 90% of ``max_entries``.

Trust: a cache entry can turn a malicious blob into a clean one, so the directory must belong to the hook's user and
must not be writable by group or others (checked on open); it lives outside any repository (the caller's choice).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import stat
from pathlib import Path

from gatekeeper.detectors.options import DETECTOR_VERSION
from gatekeeper.detectors.options import Data
from gatekeeper.detectors.options import ScanOptions
from gatekeeper.detectors.pathfacts import path_facts
from gatekeeper.errors import ScanError
from gatekeeper.model import Finding
from gatekeeper.model import Verdict

__all__ = ["CleanIndex", "VerdictCache", "scan_cached"]

_FORMAT = 1


class VerdictCache:
    """Verdicts of :func:`gatekeeper.detectors.content.scan_blob` by blob id.

    Args:
        directory: where entries live (created 0700 if missing).
        max_entries: bound on the number of entries kept.

    Raises:
        ScanError: the directory cannot be created, is not a directory, or is writable by group/others.
    """

    def __init__(self, directory: str | os.PathLike[str], *, max_entries: int = 100_000) -> None:
        self.directory = Path(directory)
        self.max_entries = max_entries
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            st = os.stat(self.directory, follow_symlinks=False)
        except OSError as exc:
            raise ScanError(f"verdict cache directory {self.directory} is unusable: {exc.strerror}",
                            hint="point the cache at a directory the hook user owns") from None
        if not stat.S_ISDIR(st.st_mode):
            raise ScanError(f"verdict cache path {self.directory} is not a directory",
                            hint="point the cache at a directory the hook user owns")
        if st.st_mode & 0o022 or st.st_uid != os.geteuid():
            raise ScanError(
                f"verdict cache directory {self.directory} is writable by others or owned by another user",
                hint=f"chmod 700 {self.directory} (a writable cache could whitelist a malicious blob)",
            )

    def _entry(self, blob_id: str, options: ScanOptions, path: str) -> Path:
        # path_facts: the verdict of one blob differs between paths that the scan reads differently (``notes.txt``
        # and ``weights.pkl``), so those are different entries.
        material = f"{blob_id}\0{options.digest()}\0{DETECTOR_VERSION}\0{path_facts(path)}"
        key = hashlib.sha256(material.encode()).hexdigest()
        return self.directory / key[:2] / f"{key[2:]}.json"

    def get(self, blob_id: str, options: ScanOptions, path: str) -> list[Finding] | None:
        """The cached findings for ``blob_id`` re-rooted at ``path``, or None on a miss (or an unreadable entry)."""
        entry = self._entry(blob_id, options, path)
        try:
            record = json.loads(entry.read_bytes())
            if record.get("format") != _FORMAT or record.get("blob") != blob_id:
                return None
            return [
                Finding(Verdict(f["verdict"]), path + f["suffix"], f["detector"], f["message"],
                        tuple(f["evidence"]), blob_id)
                for f in record["findings"]
            ]
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, blob_id: str, options: ScanOptions, path: str, findings: list[Finding]) -> None:
        """Store the findings of a scan of ``blob_id`` done at ``path``. Errors are ignored (a cache is optional)."""
        entry = self._entry(blob_id, options, path)
        record = {
            "format": _FORMAT,
            "blob": blob_id,
            "findings": [
                {"verdict": f.verdict.value, "suffix": f.path[len(path):] if f.path.startswith(path) else "",
                 "detector": f.detector, "message": f.message, "evidence": list(f.evidence)}
                for f in findings
            ],
        }
        try:
            entry.parent.mkdir(mode=0o700, exist_ok=True)
            import tempfile  # by need: only scans of large blobs store a verdict here

            fd, tmp = tempfile.mkstemp(dir=entry.parent, prefix=".tmp-", suffix=".json")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(json.dumps(record, separators=(",", ":")).encode())
                os.replace(tmp, entry)
            except BaseException:
                os.unlink(tmp)
                raise
        except OSError:
            return
        if entry.name[0] in "0123" and entry.parent.name[0] == "0":  # ~1 write in 64 pays for pruning
            self.prune()

    def prune(self) -> int:
        """Remove the oldest entries down to 90% of ``max_entries``; returns how many were removed."""
        entries: list[tuple[float, Path]] = []
        try:
            for sub in self.directory.iterdir():
                if sub.is_dir() and len(sub.name) == 2:
                    for item in sub.iterdir():
                        if item.suffix == ".json" and not item.name.startswith(".tmp-"):
                            try:
                                entries.append((item.stat().st_mtime, item))
                            except OSError:
                                continue
        except OSError:
            return 0
        if len(entries) <= self.max_entries:
            return 0
        entries.sort()
        removed = 0
        for _, item in entries[: len(entries) - int(self.max_entries * 0.9)]:
            try:
                item.unlink()
                removed += 1
            except OSError:
                continue
        return removed


class CleanIndex:
    """Which small blobs were already found clean, so a re-push of scanned content (a feature branch, then ``main``)
    costs a lookup per blob instead of a scan.

    One entry per blob *and* path *and* everything a verdict depends on: the key is the SHA-256 of the blob id (a
    digest of the content), the path, :meth:`ScanOptions.digest`, :data:`DETECTOR_VERSION` and a caller's ``salt``
    (the LFS store). Only empty verdicts are kept: anything with a finding is scanned again every time. Keys live in
    256 shard files of raw 32-byte keys under ``clean/`` in a :class:`VerdictCache` directory (same ownership check),
    so a push reads only the shards of the keys it asks about. A file whose length is not a multiple of 32 (a torn
    append) is ignored, and a shard over :data:`SHARD_MAX_KEYS` is emptied: either way the cost is a rescan, never a
    wrong verdict (a false hit would need a SHA-256 collision).
    """

    SHARD_MAX_KEYS = 8192  # about 2M keys in all, 64 MiB of disk at most

    def __init__(self, cache: VerdictCache, options: ScanOptions, salt: str = "") -> None:
        self.directory = cache.directory / "clean"
        self._prefix = f"{options.digest()}\0{DETECTOR_VERSION}\0{salt}\0".encode()
        self._shards: dict[int, set[bytes]] = {}
        self._new: dict[int, list[bytes]] = {}

    def key(self, blob_id: str, path: str) -> bytes:
        raw_path = path.encode("utf-8", "surrogateescape")
        return hashlib.sha256(self._prefix + blob_id.encode() + b"\0" + raw_path).digest()

    def _shard(self, index: int) -> set[bytes]:
        keys = self._shards.get(index)
        if keys is None:
            keys = set()
            try:
                raw = (self.directory / f"{index:02x}").read_bytes()
            except OSError:
                raw = b""
            if len(raw) % 32 == 0:
                keys = {raw[i:i + 32] for i in range(0, len(raw), 32)}
            self._shards[index] = keys
        return keys

    def __contains__(self, key: bytes) -> bool:
        return key in self._shard(key[0])

    def add(self, key: bytes) -> None:
        if key not in self._shard(key[0]):
            self._shard(key[0]).add(key)
            self._new.setdefault(key[0], []).append(key)

    def flush(self) -> None:
        """Append this push's new keys, one write per shard. Errors are ignored (the index is an optimisation)."""
        try:
            self.directory.mkdir(mode=0o700, exist_ok=True)
        except OSError:
            return
        for index, keys in self._new.items():
            path = self.directory / f"{index:02x}"
            try:
                full = len(self._shards.get(index, ())) > self.SHARD_MAX_KEYS
                flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_TRUNC if full else os.O_APPEND)
                fd = os.open(path, flags, 0o600)
                try:
                    os.write(fd, b"".join(keys))
                finally:
                    os.close(fd)
            except OSError:
                continue
        self._new.clear()


def scan_cached(cache: VerdictCache | None, blob_id: str, path: str, data: Data,
                options: ScanOptions = ScanOptions()) -> list[Finding]:
    """:func:`scan_blob` through the cache: a blob already judged under the same options costs one file read.

    The findings carry ``blob_id``. Without a cache this is ``scan_blob`` plus the blob id.
    """
    if cache is not None:
        hit = cache.get(blob_id, options, path)
        if hit is not None:
            return hit
    from gatekeeper.detectors.content import scan_blob  # the scanner only when a blob is judged afresh

    findings = [dataclasses.replace(f, blob_id=blob_id) for f in scan_blob(path, data, options)]
    if cache is not None:
        cache.put(blob_id, options, path, findings)
    return findings
