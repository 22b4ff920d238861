"""The audit log writer: one canonical JSON line per event, hash-chained, appended durably and sealed by a checkpoint.

Files (all next to the log)::

    <log>              canonical JSON Lines, the source of truth
    <log>.lock         flock(2) target serialising appenders (the log itself is never locked: readers need no lock)
    <log>.state.json   cache: byte length, record count, last leaf hash, Merkle compact range (rebuilt from the log
                       if missing)
    <log>.checkpoint   C2SP signed note over "origin\\nsize\\nbase64(root)\\n" for the whole log, Ed25519

A record is ``{"v":1,"seq":n,"ts":"...Z","node":host,"prev":hex(leaf(n-1)),"event":{...}}`` (``prev`` of record 0 is 64
zeros); its hash is the RFC 6962 leaf hash ``SHA-256(0x00 || line)`` of the line without its newline.

Append procedure (reference B3, steps 1-6): lock with a timeout; load the state; reconcile it with the file (shorter
than the state: refuse, it was truncated or rolled back; longer: fold in the complete extra lines after checking
``seq``/``prev``; a torn last fragment without newline: truncate it and append a ``recovery`` record with its length
and SHA-256); one ``write()`` of the whole line on an ``O_APPEND`` descriptor, checked for short writes; ``fsync``; on
any ``OSError`` truncate back and fail (``fsync`` is never retried: after EIO the dirty pages may be gone); sign and
replace the checkpoint, then the state, each by temp file + ``fsync`` + ``rename`` + ``fsync(dir)``; unlock. Only
then does :meth:`AuditLog.append` return, so an accepted push always has a durable, sealed record.

Every event is recordable (:func:`recordable_event`): what pushed data can put into it is escaped or truncated, never a
reason to drop the record. A log file that was renamed away or emptied continues the chain in a new segment
(:mod:`gatekeeper.audit.segments`); :meth:`AuditLog.rotate` does that on purpose. The checkpoint origin is configured,
else kept from the log's current checkpoint, else the signing key's name: never the host name of the moment.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gatekeeper.audit import canonical
from gatekeeper.audit.merkle import CompactRange, ProofError, leaf_hash
from gatekeeper.errors import AuditError
from gatekeeper.fsutil import fsync_dir as _fsync_dir  # module global: tests inject a failing one

RECORD_VERSION = 1
GENESIS_PREV = "0" * 64
MAX_RECORD_BYTES = 16 * 1024 * 1024  # a push touching 100k paths is ~5 MiB; the hook caps path lists well below this
_READ_CHUNK = 1024 * 1024
_HINT_VERIFY = "run: gatekeeper audit verify --log {log}"


def sidecar(log: Path, suffix: str) -> Path:
    """``<log>.checkpoint``, ``<log>.state.json``, ``<log>.lock``, ..."""
    return log.with_name(log.name + suffix)


def utc_timestamp(now: float | None = None) -> str:
    """``2026-11-25T20:55:01.123456Z``: fixed width, so timestamps compare correctly as strings."""
    t = time.time() if now is None else now
    micros = int(round(t * 1_000_000))
    seconds, micros = divmod(micros, 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{micros:06d}Z"


@dataclass(frozen=True)
class State:
    """What the writer knows about the log after its last successful append."""

    size: int  # records
    length: int  # bytes
    last_leaf: str  # hex leaf hash of record size-1, or GENESIS_PREV
    compact: tuple[str, ...]  # hex hashes of the Merkle compact range

    @classmethod
    def empty(cls) -> State:
        return cls(0, 0, GENESIS_PREV, ())

    def to_json(self) -> bytes:
        doc = {"v": 1, "size": self.size, "length": self.length, "last_leaf": self.last_leaf,
               "compact": list(self.compact)}
        return json.dumps(doc, sort_keys=True).encode() + b"\n"

    @classmethod
    def from_json(cls, data: bytes, *, source: Path) -> State:
        try:
            doc = json.loads(data)
            state = cls(int(doc["size"]), int(doc["length"]), str(doc["last_leaf"]), tuple(map(str, doc["compact"])))
            if doc.get("v") != 1 or state.size < 0 or state.length < 0:
                raise ValueError("bad version or negative size")
            CompactRange(state.size, [bytes.fromhex(h) for h in state.compact])
            bytes.fromhex(state.last_leaf)
        except (ValueError, KeyError, TypeError, ProofError) as exc:
            raise AuditError(
                f"audit state file {source} is invalid ({exc})",
                hint=f"delete it to have it rebuilt from the log on the next append, after: {_HINT_VERIFY}",
            ) from None
        return state

    def range(self) -> CompactRange:
        return CompactRange(self.size, [bytes.fromhex(h) for h in self.compact])


def atomic_write(path: Path, data: bytes, *, mode: int = 0o644, sync_dir: bool = True) -> None:
    """Replace ``path`` by ``data`` durably: temp file, one write, fsync, rename, fsync(dir).

    The temp name is fixed (``<path>.tmp``) because callers hold the log lock: a temp file left by a killed process is
    simply overwritten next time, and on any error it is removed, so nothing leaks (reference B3 step 5).
    ``sync_dir=False`` leaves out the last step, for a file whose *previous* version is as good after a crash: the
    content is still whole whenever the new name is there.
    """
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        try:
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(errno.ENOSPC, f"short write ({written} of {len(data)} bytes)")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if sync_dir:
        _fsync_dir(path.parent)


@contextmanager
def file_lock(path: Path, timeout: float) -> Iterator[None]:
    """``flock(LOCK_EX)`` on ``path`` with a timeout (pre-commit's ``file_lock`` idea: try non-blocking, then poll)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640)
    except OSError as exc:
        raise AuditError(f"cannot open audit lock file {path}: {exc.strerror}",
                         hint="check that the log directory exists and is writable by the git user") from None
    try:
        deadline = time.monotonic() + timeout
        delay = 0.001
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise AuditError(
                        f"timed out after {timeout:g}s waiting for the audit log lock {path}",
                        hint="another process holds it; if this persists, look for a hung gatekeeper process",
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def read_last_line(fd: int, end: int) -> bytes:
    """The line (without newline) that ends at byte ``end`` (exclusive, ``end`` > 0 and byte end-1 is ``\\n``)."""
    start = end - 1
    chunk = 64 * 1024
    pos = start
    while pos > 0:
        step = min(chunk, pos)
        data = os.pread(fd, step, pos - step)
        nl = data.rfind(b"\n")
        if nl >= 0:
            begin = pos - step + nl + 1
            return os.pread(fd, start - begin, begin)
        pos -= step
        if start - pos > MAX_RECORD_BYTES:
            break
    if pos == 0:
        return os.pread(fd, start, 0)
    raise AuditError("audit log: last record is longer than the record size limit")


MAX_EVENT_BYTES = MAX_RECORD_BYTES - 4096  # room for the record's own fields
_SHRUNK_STRING = 4096
_SHRUNK_ITEMS = 1000
_SUMMARY_KEYS = ("type", "push_id", "repo", "pusher", "protocol", "platform", "mode", "decision", "blocked",
                 "break_glass", "config_sha256", "trust_store_sha256", "gate_version", "error")


def recordable_event(event: dict[str, Any]) -> dict[str, Any]:
    """``event`` as it can be recorded: unchanged in the common case; otherwise escaped, then shrunk, then reduced to
    its summary, with ``record_notes`` saying what changed. A decision is never dropped for its content (issue 8.8).
    """
    try:
        canonical.check_value(event, where="event")
        size = len(canonical.encode(event))
        notes: list[str] = []
    except canonical.CanonicalError:
        event, notes = canonical.recordable(event)
        size = len(canonical.encode(event))
    if size > MAX_EVENT_BYTES:
        event, more = canonical.recordable(event, max_string=_SHRUNK_STRING, max_items=_SHRUNK_ITEMS)
        notes += more
        if len(canonical.encode(event)) > MAX_EVENT_BYTES:
            summary = {key: event[key] for key in _SUMMARY_KEYS if key in event}
            event, more = canonical.recordable(summary, max_string=_SHRUNK_STRING, max_items=100)
            notes += more + [f"event of {size} bytes exceeded the record limit: only its summary fields are kept"]
    if notes:
        event = {**event, "record_notes": notes}
    return event


class AuditLog:
    """Appender for one audit log file. Safe across processes (flock) and threads (one lock per append)."""

    def __init__(
        self,
        path: Path,
        *,
        signing_key: Path | None,
        origin: str | None,
        lock_timeout: float = 10.0,
        node: str | None = None,
    ) -> None:
        """
        Args:
            path: the log file (created on first append; its directory must exist).
            signing_key: the Ed25519 key from :func:`gatekeeper.audit.keys.generate_signing_key`; ``None`` writes no
                checkpoint (``verify`` then reports the log as unsealed: for tests and dry runs only).
            origin: the checkpoint's first line, e.g. ``git.example.com/gatekeeper-audit``; auditors pin it. None
                keeps the origin of the log's current checkpoint, else uses the signing key's name: stable across
                host renames, and shared by every node that writes the log with the same key (issue 12.3).
            lock_timeout: seconds to wait for other appenders before failing (the hook then refuses the push).
            node: the host name written into each record (default: the kernel's node name).
        """
        if origin is not None and (not origin or "\n" in origin):
            raise AuditError(f"invalid audit log origin {origin!r}", hint="use a name like git.example.com/audit")
        self.path = Path(path)
        self.signing_key = None if signing_key is None else Path(signing_key)
        self.origin = origin
        self.lock_timeout = lock_timeout
        self.node = node or os.uname().nodename  # as gethostname(), without importing socket
        self.checkpoint_path = sidecar(self.path, ".checkpoint")
        self.state_path = sidecar(self.path, ".state.json")
        self.lock_path = sidecar(self.path, ".lock")

    # -- public -----------------------------------------------------------------------------------------------------

    def append(self, event: dict[str, object]) -> dict[str, object]:
        """Append one record for ``event``, fsync it, re-sign the checkpoint and return the record.

        The returned dict is the record as written plus ``"hash"``: the hex leaf hash of its line (not stored in the
        line itself; the next record's ``prev`` commits to it).

        Raises:
            AuditError: on any failure to write durably (lock timeout, I/O error, disk full, unwritable path, invalid
                event, a log that is shorter than its state or was changed behind the writer's back). The log is left
                line-aligned and verifiable.
        """
        if not isinstance(event, dict) or not isinstance(event.get("type"), str) or not event["type"]:
            raise AuditError("audit event must be a dict with a non-empty string 'type'")
        event = recordable_event(event)
        signer = None
        if self.signing_key is not None:
            from gatekeeper.audit.keys import load_signer

            signer = load_signer(self.signing_key)  # before the lock: a broken key fails fast
        with file_lock(self.lock_path, self.lock_timeout):
            fd = self._open_log()
            try:
                record = self._append_locked(fd, signer, event)
            finally:
                os.close(fd)
        assert record is not None
        return record

    def rotate(self, dest: Path | None = None) -> tuple[Path | None, dict[str, object]]:
        """Start a new segment: rename the log to ``dest`` (default ``<log>.<UTC time>``) unless it is already gone or
        empty (logrotate renamed it), and write the new file's ``log.segment`` record linking it to the old one.

        Returns where the old file went (None if it was already gone) and the segment record.
        """
        signer = None
        if self.signing_key is not None:
            from gatekeeper.audit.keys import load_signer

            signer = load_signer(self.signing_key)
        moved = None
        with file_lock(self.lock_path, self.lock_timeout):
            if self.path.exists() and self.path.stat().st_size > 0:
                target = Path(dest) if dest is not None else sidecar(
                    self.path, "." + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
                if target.exists() or target.is_symlink():
                    raise AuditError(f"refusing to rotate onto existing file {target}", hint="choose another --to")
                fd = self._open_log()
                try:
                    self._append_locked(fd, signer, None)  # fold in a torn tail or unsealed lines first
                finally:
                    os.close(fd)
                os.rename(self.path, target)
                _fsync_dir(self.path.parent)
                moved = target
            fd = self._open_log()
            try:
                record = self._append_locked(fd, signer, None)
            finally:
                os.close(fd)
        if record is None:
            raise AuditError(f"nothing to rotate: {self.path} holds no records yet")
        return moved, record

    def _append_locked(self, fd: int, signer: Any, event: dict[str, Any] | None) -> dict[str, object] | None:
        """Reconcile, write the pending recovery or segment record and then ``event`` (if any), seal, save state."""
        state, pending = self._reconcile(fd)
        before = state
        record = None
        if pending is not None:
            record, state = self._write_record(fd, state, pending)
        if event is not None:
            before = state
            record, state = self._write_record(fd, state, event)
        if record is None:
            return None
        seal_error = self._seal_checkpoint(state, signer)
        if seal_error is not None:
            # Not sealed: take the record back so that the log never holds an unsealed decision for a push we are
            # about to refuse (a crash here leaves it unsealed; verify warns, the next append seals).
            self._truncate(fd, before.length)
            raise AuditError(
                f"cannot sign the audit checkpoint {self.checkpoint_path}: {seal_error}",
                hint="free space on the log's filesystem or fix its permissions; the push was not recorded",
            )
        self._save_state(state)
        return record

    def state(self) -> State:
        """The state file as stored (no reconciliation). Raises :class:`AuditError`."""
        return self._load_state()

    # -- steps ------------------------------------------------------------------------------------------------------

    def _open_log(self) -> int:
        existed = self.path.exists()
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640)
            if not existed:
                _fsync_dir(self.path.parent)  # the new directory entry must be durable too
        except OSError as exc:
            raise AuditError(
                f"cannot open audit log {self.path}: {exc.strerror}",
                hint="check that the log path is a regular file in a directory writable by the git user",
            ) from None
        return fd

    def _load_state(self) -> State:
        try:
            data = self.state_path.read_bytes()
        except FileNotFoundError:
            return State.empty()
        except OSError as exc:
            raise AuditError(f"cannot read audit state {self.state_path}: {exc.strerror}") from None
        return State.from_json(data, source=self.state_path)

    def _reconcile(self, fd: int) -> tuple[State, dict[str, object] | None]:
        """Bring the state in line with the file (B3 step 3). Returns the state and a recovery event, if needed."""
        state = self._load_state()
        size = os.fstat(fd).st_size
        hint = _HINT_VERIFY.format(log=self.path)
        if size == 0 and state.size > 0:
            # The file was renamed away (audit rotate, logrotate) or emptied: continue the chain in a new segment whose
            # first record links to what the state says the old file ended with. A log emptied by an attacker is
            # caught by verify, which cannot find the segment the link names.
            return State(state.size, 0, state.last_leaf, state.compact), self._segment_event(state)
        if size < state.length:
            raise AuditError(
                f"audit log {self.path} is shorter ({size} bytes) than recorded in its state ({state.length} bytes, "
                f"{state.size} records): it was truncated or rolled back; refusing to append",
                hint=hint + "; then restore the log from a backup or an export",
            )
        if state.length and leaf_hash(read_last_line(fd, state.length)).hex() != state.last_leaf:
            raise AuditError(
                f"audit log {self.path}: record {state.size - 1} no longer matches the hash in the state file: the "
                "log was modified; refusing to append",
                hint=hint,
            )
        if size == state.length:
            return state, None
        compact = state.range()
        seq, last, offset = state.size, state.last_leaf, state.length
        tail = b""
        pos = state.length
        while pos < size:
            data = os.pread(fd, min(_READ_CHUNK, size - pos), pos)
            if not data:
                break
            pos += len(data)
            tail += data
            lines = tail.split(b"\n")
            tail = lines.pop()
            for line in lines:
                self._check_extra_line(line, seq, last, offset, hint)
                leaf = leaf_hash(line)
                compact.append(leaf)
                last = leaf.hex()
                seq += 1
                offset += len(line) + 1
            if len(tail) > MAX_RECORD_BYTES:
                break
        state = State(seq, offset, last, tuple(h.hex() for h in compact.hashes))
        if offset == size:
            return state, None
        # A torn write: bytes after the last newline. Keep evidence of what is cut away (B3 step 3).
        if pos < size or size - offset > MAX_RECORD_BYTES:
            raise AuditError(
                f"audit log: {size - offset} bytes without a newline at byte {offset}: not a torn record; refusing",
                hint=hint,
            )
        fragment = os.pread(fd, size - offset, offset)
        import hashlib

        digest = hashlib.sha256(fragment).hexdigest()
        self._truncate(fd, offset)
        recovery: dict[str, object] = {
            "type": "recovery",
            "reason": "torn-tail",
            "offset": offset,
            "bytes": size - offset,
            "sha256": digest,
            "prefix": fragment[:64].decode("utf-8", "backslashreplace"),
        }
        return state, recovery

    def _segment_event(self, state: State) -> dict[str, object]:
        from gatekeeper.audit.segments import segment_event

        try:
            with open(self.checkpoint_path, "rb") as fh:
                checkpoint: bytes | None = fh.read(64 * 1024)
        except OSError:
            checkpoint = None
        return segment_event(state.size, state.last_leaf, state.compact, checkpoint,
                             "the log file was renamed or emptied: a new segment continues the chain")

    @staticmethod
    def _check_extra_line(line: bytes, seq: int, prev: str, offset: int, hint: str) -> None:
        """A complete line found after the state's end (a crash between fsync and sealing) must chain on."""
        try:
            record = canonical.decode_line(line)
        except canonical.CanonicalError as exc:
            raise AuditError(f"audit log: unexpected line at byte {offset}: {exc}; refusing to append",
                             hint=hint) from None
        if record.get("seq") != seq or record.get("prev") != prev:
            raise AuditError(
                f"audit log: line at byte {offset} does not continue the chain (expected seq {seq}); refusing to "
                "append",
                hint=hint,
            )

    def _write_record(self, fd: int, state: State, event: dict[str, Any]) -> tuple[dict[str, object], State]:
        record: dict[str, object] = {
            "v": RECORD_VERSION,
            "seq": state.size,
            "ts": utc_timestamp(),
            "node": self.node,
            "prev": state.last_leaf,
            "event": event,
        }
        try:
            body = canonical.encode(record)
        except canonical.CanonicalError as exc:
            raise AuditError(f"audit record cannot be encoded canonically: {exc}") from None
        if len(body) + 1 > MAX_RECORD_BYTES:
            raise AuditError(f"audit record of {len(body)} bytes exceeds the limit of {MAX_RECORD_BYTES} bytes")
        line = body + b"\n"
        try:
            written = os.write(fd, line)  # one write on O_APPEND: the line lands whole or not at all (or short)
            if written != len(line):
                raise OSError(errno.ENOSPC, f"short write ({written} of {len(line)} bytes)")
            os.fsync(fd)  # never retried: after EIO the kernel may have dropped the dirty pages
        except OSError as exc:
            self._truncate(fd, state.length)
            raise AuditError(
                f"cannot write audit record to {self.path}: {exc.strerror or exc}",
                hint="free space on the log's filesystem or fix its permissions; the push was not recorded",
            ) from None
        leaf = leaf_hash(body)
        compact = state.range()
        compact.append(leaf)
        new_state = State(state.size + 1, state.length + len(line), leaf.hex(), tuple(h.hex() for h in compact.hashes))
        record["hash"] = leaf.hex()
        return record, new_state

    def _truncate(self, fd: int, length: int) -> None:
        """Cut the log back to ``length`` (best effort: a failure leaves a torn tail that the next append repairs)."""
        try:
            os.ftruncate(fd, length)
            os.fsync(fd)
        except OSError:
            pass

    def _seal_checkpoint(self, state: State, signer: Any) -> str | None:
        """Sign and replace the checkpoint for the new size (B3 step 5). Returns why it is not in place, or None."""
        if signer is None:
            return None
        from gatekeeper.audit.note import Checkpoint, sign_note

        note = sign_note(Checkpoint(self.checkpoint_origin(signer), state.size, state.range().root()).text(), signer)
        try:
            atomic_write(self.checkpoint_path, note)
        except OSError as exc:
            # If the rename happened and only fsync(dir) failed, the new checkpoint is visible: the record must stay,
            # or the checkpoint would claim more records than the log holds.
            try:
                in_place = self.checkpoint_path.read_bytes() == note
            except OSError:
                in_place = False
            return None if in_place else str(exc.strerror or exc)
        return None

    def checkpoint_origin(self, signer: Any) -> str:
        """The configured origin, else the current checkpoint's (read, not verified: it only names the log), else the
        signing key's name."""
        if self.origin:
            return self.origin
        from gatekeeper.audit.note import Checkpoint, NoteError, split_note

        try:
            with open(self.checkpoint_path, "rb") as fh:
                return Checkpoint.parse(split_note(fh.read(64 * 1024))[0]).origin
        except (OSError, NoteError):
            return str(signer.name)

    def _save_state(self, state: State) -> None:
        """Save the state cache. The record is durable and sealed by now, so a failure here is not fatal: the next
        append finds the log longer than the state and folds the extra line in after checking its chain.

        For the same reason the rename is not made durable with a second fsync of the directory (one fsync fewer on
        every push): a crash can only bring back the previous state, which the next append reconciles the same way.
        """
        try:
            atomic_write(self.state_path, state.to_json(), mode=0o640, sync_dir=False)
        except OSError:
            pass
