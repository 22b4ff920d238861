"""``audit verify``: check an audit log against its chain, its Merkle roots and signed checkpoints (reference B5).

Checks, in order, all in one streaming pass over the log:

1. Structure: each line is UTF-8 canonical JSON (byte-identical re-serialisation: no whitespace edits, reordered or
   duplicate keys, floats, non-ASCII keys), record version 1, the six record fields, a schema per known event type.
2. Chain: ``seq`` dense from 0; ``prev`` = leaf hash of the previous line. The first break is named with line and seq.
3. Merkle: the RFC 6962 root is kept for every size a checkpoint needs.
4. Checkpoints (the log's own ``<log>.checkpoint``, any ``checkpoints=`` given, the auditor's ``trusted_checkpoint``):
   note syntax; a signature under a pinned vkey (unknown keys ignored, a failing known key rejects); same origin;
   ``size <= records`` (else truncation or rollback); root at ``size`` matches (else rewritten history or a fork);
   two valid checkpoints with equal size and different roots are reported as fork evidence, both printed.
5. Tail: a torn last fragment, records after the last checkpoint (unsealed) and ``recovery`` records are warnings; more
   unsealed records than one crash can leave is an error.
6. Time: ``ts`` going backwards is a warning.
7. Segments: a rotated log is read oldest file first as one stream (:mod:`gatekeeper.audit.segments`); each
   ``log.segment`` link must match the records before it, and a segment that cannot be found is an error.

Speed: one streaming pass, the canonical check on orjson's fast path (:func:`canonical.fast_decoder`), exact type
checks in the per-record schema code; logs over 64 MiB are split into byte ranges checked by worker processes.

Limits (documented, tested): an older log restored together with its older, validly signed checkpoint passes every
local check; only a checkpoint the auditor kept elsewhere (``trusted_checkpoint``) exposes the rollback. Likewise the
holder of the signing key can re-sign a rewritten history; only external checkpoints catch that.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gatekeeper.audit import canonical
from gatekeeper.audit.keys import default_key_path, load_vkey_file, parse_vkeys, public_path
from gatekeeper.audit.log import GENESIS_PREV, sidecar
from gatekeeper.audit.merkle import CompactRange, ProofError
from gatekeeper.audit.note import Checkpoint, NoteError, Verifier, open_note
from gatekeeper.audit.segments import SEGMENT_EVENT, Chain, first_link, open_segment, resolve_chain
from gatekeeper.errors import AuditError

RECORD_KEYS = frozenset({"v", "seq", "ts", "node", "prev", "event"})
MAX_UNSEALED = 2  # a crash between fsync and sealing leaves at most a recovery record plus one event unsealed
MAX_ISSUES = 50
# Below glibc's mmap threshold (128 KiB), so a block and its copies (joined, translated) are recycled by malloc: 4 MiB
# blocks were fresh pages from the kernel each time (75,000 page faults, a tenth of the CPU time for 300,000 records).
_READ_CHUNK = 64 * 1024
_MAX_CHECKPOINT_BYTES = 64 * 1024
MAX_LINE_BYTES = 64 * 1024 * 1024  # 4x the writer's record limit; stops a hostile file from exhausting memory
PARALLEL_MIN_BYTES = 64 * 1024 * 1024  # below this, starting workers costs more than it saves
DECISIONS = frozenset({"allow", "deny", "error", "break-glass"})


@dataclass(frozen=True)
class Issue:
    """One finding. ``line`` is 1-based; ``seq`` is the record the finding is about, when known."""

    code: str
    message: str
    line: int | None = None
    seq: int | None = None
    file: str | None = None  # set when the log spans several segment files: the line is within this file

    def __str__(self) -> str:
        where = [os.path.basename(self.file)] if self.file else []
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.seq is not None:
            where.append(f"seq {self.seq}")
        prefix = f"{', '.join(where)}: " if where else ""
        return f"[{self.code}] {prefix}{self.message}"


@dataclass(frozen=True)
class CheckpointInfo:
    source: str  # "log", "trusted" or a file name
    path: str
    origin: str
    size: int
    root: str  # hex
    verified_by: tuple[str, ...]
    note: str  # the signed note exactly as verified (what save_trusted_checkpoint stores)


@dataclass(frozen=True)
class VerifyReport:
    """The result of :func:`verify_log`. ``ok`` is False iff there is an error; warnings never fail (but --strict)."""

    log: str
    records: int
    root: str
    errors: tuple[Issue, ...]
    warnings: tuple[Issue, ...]
    checkpoints: tuple[CheckpointInfo, ...]
    vkeys: tuple[str, ...]
    vkey_source: str
    event_types: dict[str, int] = field(default_factory=dict)
    segments: tuple[str, ...] = ()  # the files read, oldest first (one unless the log was rotated)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def first_error(self) -> Issue | None:
        return self.errors[0] if self.errors else None

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(json.dumps(asdict(self)))  # tuples -> lists: plain JSON types
        doc["ok"] = self.ok
        return doc


def default_jobs() -> int:
    return max(1, min(os.cpu_count() or 1, 4))


# -- event schemas ----------------------------------------------------------------------------------------------------

def _is_str(value: object) -> bool:
    return isinstance(value, str)


_NO_PATHS: list[str] = []


def _check_updates(updates: object, full: bool) -> str | None:
    # Hot: runs for every record. type() is exact here: JSON decoding makes no subclasses.
    if type(updates) is not list:
        return "event.updates is not a list"
    for upd in updates:
        if (type(upd) is not dict or type(upd.get("ref")) is not str
                or (full and upd.get("decision", "allow") not in _UPDATE_DECISIONS)):
            return _update_problem(updates, full)
        paths = upd.get("paths", _NO_PATHS)
        if type(paths) is not list:
            return _update_problem(updates, full)
        try:
            "".join(paths)  # in C: raises unless every item is a str
        except TypeError:
            return _update_problem(updates, full)
    return None


def _update_problem(updates: list[Any], full: bool) -> str:
    """The message for the first bad update (the fast loop above only knows that one is bad)."""
    for i, upd in enumerate(updates):
        if type(upd) is not dict or type(upd.get("ref")) is not str:
            return f"event.updates[{i}] has no string 'ref'"
        if full and upd.get("decision", "allow") not in _UPDATE_DECISIONS:
            return f"event.updates[{i}].decision is {upd['decision']!r}"
        paths = upd.get("paths", _NO_PATHS)
        if type(paths) is not list or not all(type(p) is str for p in paths):
            return f"event.updates[{i}].paths is not a list of strings"
    raise AssertionError("no bad update")  # pragma: no cover -- only called when the fast loop found one


_UPDATE_DECISIONS = ("allow", "deny")


# The schemas accept exactly what the hook writes, error records included: a gate that fails before it knows the
# repository or the pusher (a broken policy, an unreadable platform variable) records them as null, and a verifier
# that called those records bad would make every log with one refused push fail forever (issue 8.8).

def _schema_decision(event: dict[str, Any]) -> str | None:
    decision = event.get("decision")
    # The type test first: an unhashable value (a list) in a set lookup would raise instead of being reported.
    if type(decision) is not str or decision not in DECISIONS:
        return f"push.decision has decision {decision!r}, expected one of {sorted(DECISIONS)}"
    repo = event.get("repo")
    pusher = event.get("pusher")
    if type(repo) is not str or type(pusher) is not dict:
        early_error = decision == "error"
        if type(repo) is not str and not (early_error and repo is None):
            return "push.decision without a string 'repo'"
        if type(pusher) is not dict and not (early_error and pusher is None):
            return "push.decision without a 'pusher' object"
    return _check_updates(event.get("updates"), True)


def _schema_outcome(event: dict[str, Any]) -> str | None:
    if type(event.get("repo")) is not str and not ("error" in event and event.get("repo") is None):
        return "push.outcome without a string 'repo'"
    return _check_updates(event.get("updates"), False)


def _schema_recovery(event: dict[str, Any]) -> str | None:
    if not (_is_str(event.get("reason")) and isinstance(event.get("bytes"), int) and _is_str(event.get("sha256"))):
        return "recovery record needs 'reason', 'bytes' and 'sha256'"
    return None


def _schema_segment(event: dict[str, Any]) -> str | None:
    prev = event.get("previous")
    if not (isinstance(prev, dict) and isinstance(prev.get("records"), int) and _is_str(prev.get("last_leaf"))
            and isinstance(prev.get("compact"), list) and all(map(_is_str, prev["compact"]))):
        return "log.segment record needs 'previous' with 'records', 'last_leaf' and 'compact'"
    return None


SCHEMAS: dict[str, Callable[[dict[str, Any]], str | None]] = {
    "push.decision": _schema_decision,
    "push.outcome": _schema_outcome,
    "recovery": _schema_recovery,
    SEGMENT_EVENT: _schema_segment,
}


# -- checkpoints ------------------------------------------------------------------------------------------------------

def resolve_vkeys(log: Path, vkeys: Sequence[str] | None,
                  vkey_files: Sequence[Path] = ()) -> tuple[list[Verifier], str]:
    """The verifier keys to use and a sentence saying where they came from."""
    keys: list[Verifier] = []
    sources = []
    if vkeys:
        keys.extend(parse_vkeys("\n".join(vkeys), source="--vkey"))
        sources.append("--vkey")
    for path in vkey_files:
        keys.extend(load_vkey_file(path))
        sources.append(str(path))
    if sources:
        return keys, "pinned: " + ", ".join(sources)
    default = public_path(default_key_path(log))
    if default.exists():
        return load_vkey_file(default), f"{default} (found next to the log: pin the key with --vkey for a real audit)"
    return [], "none"


def _read_checkpoint(path: Path) -> bytes:
    try:
        with open(path, "rb") as fh:
            data = fh.read(_MAX_CHECKPOINT_BYTES + 1)
    except OSError as exc:
        raise AuditError(f"cannot read checkpoint {path}: {exc.strerror}") from None
    if len(data) > _MAX_CHECKPOINT_BYTES:
        raise AuditError(f"checkpoint {path} is larger than {_MAX_CHECKPOINT_BYTES} bytes")
    return data


def _open_checkpoint(
    data: bytes, source: str, path: Path, verifiers: list[Verifier], errors: list[Issue],
) -> CheckpointInfo | None:
    label = "the log's checkpoint" if source == "log" else f"{source} checkpoint {path}"
    try:
        opened = open_note(data, verifiers)
        cp = Checkpoint.parse(opened.text)
    except NoteError as exc:
        code = "checkpoint-unverified" if "no signature from a known key" in str(exc) else "checkpoint-invalid"
        errors.append(Issue(code, f"{label}: {exc}"))
        return None
    names = tuple(f"{v.name}+{v.key_id.hex()}" for v in opened.verified_by)
    return CheckpointInfo(source, str(path), cp.origin, cp.size, cp.root.hex(), names, data.decode())


# -- the pass ---------------------------------------------------------------------------------------------------------

class _Scan:
    """Mutable state of one pass (kept out of the public report)."""

    def __init__(self, wanted: set[int]) -> None:
        self.errors: list[Issue] = []
        self.warnings: list[Issue] = []
        self.compact = CompactRange()
        self.roots: dict[int, bytes] = {}
        self.wanted = wanted
        self.types: dict[str, int] = {}
        self.torn = 0
        # Where the chain stands between files (segments) and between byte ranges of one file.
        self.next_seq = 0
        self.prev_hex = GENESIS_PREV
        self.last_ts = ""
        self.line_base = 0
        self.file: str | None = None

    def start_file(self, path: Path, label: bool) -> None:
        self.line_base = 0
        self.file = str(path) if label else None

    def error(self, issue: Issue) -> None:
        if len(self.errors) < MAX_ISSUES:
            self.errors.append(issue)

    def warn(self, issue: Issue) -> None:
        if len(self.warnings) < MAX_ISSUES:
            self.warnings.append(issue)


# A finding inside one byte range, before the range's first line number is known:
# (is_error, code, relative line (1-based), seq, message template using {line} / {prev_line} for absolute numbers).
_RawIssue = tuple[bool, str, int, "int | None", str]


@dataclass
class _Range:
    """What one worker found in a byte range of the log (lines are judged in context, except the first one's
    seq/prev, which only the range before it can judge)."""

    lines: int = 0
    leaves: list[bytes] = field(default_factory=list)  # the leaf hashes, one piece per block read (none when the
    # caller folded them into the tree as they came)
    last_leaf: bytes = b""
    first_seq: int | None = None  # the first line with a seq: its seq, relative line and prev check
    first_rel: int = 0
    first_prev: str | None = None  # its prev, when it is the range's first line (the caller has the leaf before)
    first_prev_ok: bool = True  # its prev check, when a line of this range precedes it
    first_ts: str | None = None
    last_seq: int | None = None  # the seq the next line should follow (None if the last line had none)
    last_ts: str = ""
    types: dict[str, int] = field(default_factory=dict)
    issues: list[_RawIssue] = field(default_factory=list)
    torn: int = 0


def _seq_issue(expected: int, seq: int, rel: int) -> _RawIssue:
    if seq > expected:
        what = f"record {expected} was" if seq == expected + 1 else f"records {expected}..{seq - 1} were"
        return (True, "seq-gap", rel, seq, f"expected seq {expected}, found {seq}: {what} deleted (or lines were "
                "reordered)")
    return (True, "seq-mismatch", rel, seq,
            f"expected seq {expected}, found {seq} again: a record was duplicated, inserted or reordered")


def _chain_issue(seq: int, rel: int) -> _RawIssue:
    return (True, "chain-break", rel - 1, seq - 1,
            "the record on line {prev_line} (seq " + str(seq - 1) + ") was modified: its hash no longer matches the "
            "prev of line {line} (seq " + str(seq) + ")")


def _scan_range(
    path: str, start: int, end: int, last_range: bool, fold: Callable[[bytes], None] | None = None,
) -> _Range:
    """Check the complete lines in bytes [start, end) of the log; ``start`` is a line start. ``fold`` takes each
    block's leaf hashes as they are made (in-process: into the tree at once, so they never pile up); without it
    they are returned in the result (from a worker process)."""
    out = _Range()
    issues = out.issues
    decode = canonical.decode_line
    checked_fast = canonical.fast_decoder()  # None without orjson
    float_free_fast = canonical.fast_decoder(float_free=True)
    may_hold_float = canonical.may_hold_float
    leaf_hasher = hashlib.sha256(b"\x00").copy  # a copy of a primed context: cheaper than a new one per line
    etypes: list[str] = []  # every record's event type, counted once at the end
    expected: int | None = None  # None: the first line, judged by the caller
    prev_hex: str | None = None
    last_ts = ""
    have_ts = False  # out.first_ts is set (the fast path below leaves it alone)
    rel = 0
    with open_segment(Path(path)) as fh:
        fh.seek(start)
        remaining = end - start
        pending: list[bytes] = []  # the start of a line still without its newline, in pieces: joined once, so a
        pending_bytes = 0  # long line costs linear time whatever the block size
        while remaining > 0:
            chunk = fh.read(min(_READ_CHUNK, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            if b"\n" not in chunk:
                pending.append(chunk)
                pending_bytes += len(chunk)
                _check_pending(path, start, pending_bytes)
                continue
            pending.append(chunk)
            block = b"".join(pending) if len(pending) > 1 else chunk
            # One float search per block instead of per line (the same answer, see may_hold_float); a block with a
            # float shape anywhere takes the per-line check.
            fast = checked_fast if may_hold_float(block) else float_free_fast
            lines = block.split(b"\n")
            tail = lines.pop()
            pending, pending_bytes = ([tail], len(tail)) if tail else ([], 0)
            _check_pending(path, start, pending_bytes)
            leaves = bytearray()
            for line in lines:
                rel += 1
                hasher = leaf_hasher()
                hasher.update(line)
                leaf = hasher.digest()
                leaves += leaf
                rec = fast(line) if fast is not None else None
                # The common case, a good record after a good one, in as few steps as possible; anything else (or
                # anything in doubt) takes the general path below, which judges every line the same way.
                # Six keys, "node" among them and the five read here: exactly RECORD_KEYS (a missing one is a
                # KeyError, and the general path names it).
                if rec is not None and have_ts and len(rec) == 6 and "node" in rec:
                    try:
                        seq, event, ts, prev, version = rec["seq"], rec["event"], rec["ts"], rec["prev"], rec["v"]
                    except KeyError:
                        pass
                    else:
                        if (seq == expected and type(seq) is int and prev == prev_hex and version == 1
                                and type(version) is int
                                and type(event) is dict and type(ts) is str and ts >= last_ts):
                            etype = event.get("type")
                            if type(etype) is str and etype != "recovery":
                                check = SCHEMAS.get(etype)
                                if check is None or check(event) is None:
                                    etypes.append(etype)
                                    last_ts = ts
                                    prev_hex = leaf.hex()
                                    expected = seq + 1
                                    continue
                seq = None
                try:
                    if rec is None:
                        rec = decode(line)
                except canonical.CanonicalError as exc:
                    issues.append((True, "non-canonical", rel, expected,
                                   f"record is not canonical JSON: {exc}"))
                    rec = None
                if rec is not None:
                    seq = rec.get("seq")
                    if type(seq) is not int:  # bool is not int here
                        seq = None
                    if rec.keys() != RECORD_KEYS or rec.get("v") != 1 or type(rec.get("v")) is not int:  # true == 1
                        issues.append((True, "bad-record", rel, seq,
                                       "record must have exactly v=1, seq, ts, node, prev, event"))
                    elif seq is None:
                        issues.append((True, "bad-record", rel, None, f"seq {rec.get('seq')!r} is not an integer"))
                    elif expected is None:
                        out.first_seq, out.first_rel = seq, rel
                        if rel == 1:
                            out.first_prev = rec["prev"]
                        else:
                            out.first_prev_ok = rec["prev"] == prev_hex
                    elif seq != expected:
                        issues.append(_seq_issue(expected, seq, rel))
                    elif rec["prev"] != prev_hex:
                        issues.append(_chain_issue(seq, rel))
                    event = rec.get("event")
                    label = seq if seq is not None else expected
                    etype = event.get("type") if type(event) is dict else None
                    if type(etype) is str and isinstance(event, dict):
                        etypes.append(etype)
                        check = SCHEMAS.get(etype)
                        problem = check(event) if check is not None else None
                        if problem:
                            issues.append((True, "bad-event", rel, label, problem))
                        elif etype == "recovery":
                            issues.append((False, "recovery", rel, label,
                                           f"the writer cut {event['bytes']} torn bytes (sha256 {event['sha256']}) "
                                           f"at byte {event.get('offset')} and recorded it here"))
                    elif rec.keys() == RECORD_KEYS:
                        issues.append((True, "bad-event", rel, label, "event is not an object with a string 'type'"))
                    ts = rec.get("ts")
                    if type(ts) is str:
                        if out.first_ts is None:
                            out.first_ts = ts
                            have_ts = True
                        elif ts < last_ts:
                            issues.append((False, "time-backwards", rel, label,
                                           f"ts {ts} is before the previous record's {last_ts}"))
                        last_ts = ts
                prev_hex = leaf.hex()
                # After a line with a seq, the next must follow it (resynchronising after a gap reports one
                # deletion once, not every later line); after a line without one, count on.
                expected = seq + 1 if seq is not None else (expected + 1 if expected is not None else None)
            if leaves:
                out.last_leaf = bytes(leaves[-32:])
                if fold is not None:
                    fold(bytes(leaves))
                else:
                    out.leaves.append(bytes(leaves))
            if len(issues) > MAX_ISSUES * 4:
                del issues[MAX_ISSUES * 4:]
        if pending_bytes and last_range:
            out.torn = pending_bytes
    out.types.update(Counter(etypes))
    out.lines = rel
    out.last_seq = None if expected is None else expected - 1
    out.last_ts = last_ts
    return out


def _check_pending(path: str, start: int, pending_bytes: int) -> None:
    if pending_bytes > MAX_LINE_BYTES:
        raise AuditError(
            f"audit log {path}: more than {MAX_LINE_BYTES} bytes without a newline after byte {start}: "
            "not an audit log (no record is that long)",
        )


def _split(path: Path, size: int, parts: int) -> list[tuple[int, int]]:
    """Byte ranges that start at line starts (each cut moves forward to just after a newline)."""
    cuts = [0]
    with open(path, "rb") as fh:
        for i in range(1, parts):
            pos = max(size * i // parts, cuts[-1])
            fh.seek(pos)
            while True:
                block = fh.read(64 * 1024)
                if not block:
                    pos = size
                    break
                nl = block.find(b"\n")
                if nl >= 0:
                    pos += nl + 1
                    break
                pos += len(block)
            if pos > cuts[-1] and pos < size:
                cuts.append(pos)
    cuts.append(size)
    return list(zip(cuts, cuts[1:]))


def _scan(path: Path, scan: _Scan, jobs: int) -> None:
    try:
        size = path.stat().st_size
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise AuditError(f"cannot read audit log {path}: {exc.strerror}") from None
    if path.name.endswith(".gz"):
        jobs, size = 1, sys.maxsize  # a compressed segment is read as one stream, to its end
    if jobs > 1 and size >= PARALLEL_MIN_BYTES:
        ranges = _split(path, size, jobs * 4)  # more pieces than workers: even load on a busy machine
    else:
        ranges = [(0, size)]
    tasks = [(str(path), start, end, end == size) for start, end in ranges]
    if len(tasks) > 1:
        import multiprocessing

        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            _merge(scan, pool.imap(_scan_task, tasks))
    else:
        # In-process, each block's leaves go into the tree as they are made: a million leaves never pile up.
        _merge(scan, (_scan_range(*task, fold=lambda leaves: _fold(scan, leaves)) for task in tasks))


def _scan_task(task: tuple[str, int, int, bool]) -> _Range:
    return _scan_range(*task)


def _merge(scan: _Scan, results: Iterable[_Range]) -> None:
    """Join the ranges in order: judge each range's first line against the previous range, fold the leaves into the
    Merkle tree, and turn relative line numbers into absolute ones."""
    line_base, next_seq, prev_hex, last_ts = scan.line_base, scan.next_seq, scan.prev_hex, scan.last_ts
    for part in results:
        if part.lines:
            if part.first_seq is not None:
                rel = part.first_rel
                if part.first_seq != next_seq + rel - 1:
                    scan.error(_absolute(scan, _seq_issue(next_seq + rel - 1, part.first_seq, rel), line_base))
                elif rel > 1 and not part.first_prev_ok:
                    scan.error(_absolute(scan, _chain_issue(part.first_seq, rel), line_base))
                elif rel == 1 and part.first_prev != prev_hex:
                    if line_base == 0 and next_seq == 0:
                        scan.error(Issue("chain-break", "the first record's prev is not the genesis value (records "
                                         "were removed before it)", 1, part.first_seq, scan.file))
                    else:
                        scan.error(_absolute(scan, _chain_issue(part.first_seq, 1), line_base))
            if part.first_ts is not None and part.first_ts < last_ts:
                scan.warn(Issue("time-backwards", f"ts {part.first_ts} is before the previous record's {last_ts}",
                                line_base + max(part.first_rel, 1), part.first_seq, scan.file))
            head = part.first_rel - 1 if part.first_seq is not None else part.lines
            for raw in part.issues:
                if raw[3] is None and raw[1] != "bad-record" and raw[2] <= head:
                    # before the range's first seq the worker could not know the expected seq; we do
                    raw = (raw[0], raw[1], raw[2], next_seq + raw[2] - 1, raw[4])
                (scan.error if raw[0] else scan.warn)(_absolute(scan, raw, line_base))
            for leaves in part.leaves:
                _fold(scan, leaves)
            prev_hex = part.last_leaf.hex()
            next_seq = part.last_seq + 1 if part.last_seq is not None else next_seq + part.lines
            last_ts = part.last_ts or last_ts
            for etype, count in part.types.items():
                scan.types[etype] = scan.types.get(etype, 0) + count
            line_base += part.lines
        if part.torn:
            scan.torn = part.torn
            scan.warn(Issue(
                "torn-tail",
                f"{part.torn} bytes after the last complete line (an interrupted write); the next append cuts them "
                "and records a recovery",
                line_base + 1, file=scan.file,
            ))
    scan.line_base, scan.next_seq, scan.prev_hex, scan.last_ts = line_base, next_seq, prev_hex, last_ts


def _fold(scan: _Scan, leaves: bytes) -> None:
    """Add a block's leaf hashes to the tree at once, stopping at each size a checkpoint or link needs the root of."""
    compact = scan.compact
    start = compact.size
    done = 0
    for size in sorted(s for s in scan.wanted if start < s <= start + len(leaves) // 32):
        compact.extend(leaves[done * 32:(size - start) * 32])
        done = size - start
        scan.roots[size] = compact.root()
    compact.extend(leaves[done * 32:])


def _absolute(scan: _Scan, raw: _RawIssue, line_base: int) -> Issue:
    _, code, rel, seq, template = raw
    line = line_base + rel
    message = template.format(line=line + 1, prev_line=line) if code == "chain-break" else template
    return Issue(code, message, line, seq, scan.file)


def verify_log(
    path: Path,
    *,
    trusted_checkpoint: Path | None = None,
    vkeys: list[str] | None = None,
    vkey_files: Sequence[Path] = (),
    checkpoints: Sequence[Path] = (),
    origin: str | None = None,
    jobs: int | None = None,
    segments: Sequence[Path] = (),
) -> VerifyReport:
    """Verify an audit log (reference B5 checks 1-7 for one server), following rotated segments back to the start.

    Args:
        path: the log file; its checkpoint is read from ``<path>.checkpoint``.
        trusted_checkpoint: a checkpoint the auditor kept from an earlier verification (detects rollback and forks).
        vkeys: pinned verifier keys (C2SP vkey strings). Default: ``vkey_files``, else the ``.pub`` of the default
            key next to the log (the report says which was used).
        vkey_files: files with one vkey per line.
        checkpoints: further checkpoints to check (copies from WORM storage, a SIEM, an export).
        origin: the expected checkpoint origin (default: the origin of the log's own checkpoint).
        jobs: worker processes for logs over 64 MiB (default: the CPU count, at most 4); 1 checks in-process.
        segments: files that may hold earlier segments of a rotated log (``<path>.*`` next to it are always tried).

    Returns:
        The report; ``report.ok`` is False on any error.

    Raises:
        AuditError: the log, a key file or a checkpoint file cannot be read, or a given vkey is malformed.
    """
    path = Path(path)
    if not path.is_file():
        raise AuditError(f"audit log {path} does not exist or is not a file", hint="pass the log with --log FILE")
    verifiers, vkey_source = resolve_vkeys(path, vkeys, vkey_files)
    chain = resolve_chain(path, segments)
    errors: list[Issue] = []
    infos = _load_checkpoints(path, chain, verifiers, checkpoints, trusted_checkpoint, errors)
    links = [(file, link) for file in chain.files if (link := first_link(file)) is not None]
    scan = _Scan({info.size for info in infos} | {link.records for _, link in links})
    _scan_chain(chain, scan, jobs if jobs is not None else default_jobs())
    records = scan.compact.size
    errors.extend(scan.errors)
    _check_links(links, scan, errors)
    warnings = list(scan.warnings)
    _check_checkpoints(infos, scan, records, origin, chain, errors)
    _check_sealing(path, infos, records, bool(verifiers), errors, warnings)
    errors.sort(key=_order)
    warnings.sort(key=_order)
    return VerifyReport(
        log=str(path),
        records=records,
        root=scan.compact.root().hex(),
        errors=tuple(errors),
        warnings=tuple(warnings),
        checkpoints=tuple(infos),
        vkeys=tuple(v.vkey() for v in verifiers),
        vkey_source=vkey_source,
        event_types=dict(sorted(scan.types.items())),
        segments=tuple(str(p) for p in chain.files),
    )


def _load_checkpoints(
    path: Path, chain: Chain, verifiers: list[Verifier], extra: Sequence[Path], trusted: Path | None,
    errors: list[Issue],
) -> list[CheckpointInfo]:
    """Open every checkpoint to check: the log's own, the extra ones, the trusted one, and those that segment links
    carry (each signed at the size where its file ended)."""
    sources: list[tuple[str, Path, bytes | None]] = []
    own = sidecar(path, ".checkpoint")
    if own.exists():
        sources.append(("log", own, None))
    sources.extend((f"extra #{i + 1}", Path(p), None) for i, p in enumerate(extra))
    if trusted is not None:
        sources.append(("trusted", Path(trusted), None))
    for file in chain.files:
        link = first_link(file)
        if link is not None and link.checkpoint:
            sources.append(("segment link", file, link.checkpoint.encode()))
    if not verifiers:
        errors.append(Issue("no-vkey", "no verifier key: pass --vkey or --vkey-file (checkpoints cannot be checked)"))
        return []
    infos = []
    for source, cp_path, data in sources:
        info = _open_checkpoint(data if data is not None else _read_checkpoint(cp_path), source, cp_path, verifiers,
                                errors)
        if info is not None:
            infos.append(info)
    return infos


def _scan_chain(chain: Chain, scan: _Scan, jobs: int) -> None:
    """Scan the segment files oldest first as one stream; a missing first segment is an error, and the chain then
    continues from what the oldest file's link says (so the rest is still checked)."""
    if chain.missing is not None:
        link = chain.missing
        scan.error(Issue(
            "missing-segment",
            f"{chain.files[0]} continues a log whose records 0..{link.records - 1} are in an earlier segment that was "
            f"not found (its last record hashes to {link.last_leaf}); pass it with --segment FILE",
            1, link.records, str(chain.files[0]),
        ))
        scan.compact = CompactRange(link.records, [bytes.fromhex(h) for h in link.compact])
        scan.next_seq, scan.prev_hex = link.records, link.last_leaf
        if link.records in scan.wanted:
            scan.roots[link.records] = scan.compact.root()
    for file in chain.files:
        scan.start_file(file, label=len(chain.files) > 1)
        _scan(file, scan, jobs)


def _check_links(links: list[tuple[Path, Any]], scan: _Scan, errors: list[Issue]) -> None:
    """A segment's link must describe the tree the earlier files really hold (seq and prev are checked by the chain)."""
    for file, link in links:
        try:
            claimed = CompactRange(link.records, [bytes.fromhex(h) for h in link.compact]).root()
        except (ValueError, ProofError):
            errors.append(Issue("segment-link", f"{file}: the link's compact range is malformed", 1, link.records,
                                str(file)))
            continue
        actual = scan.roots.get(link.records)
        if actual is not None and actual != claimed:
            errors.append(Issue("segment-link", f"{file}: the link's Merkle state does not match the "
                                f"{link.records} records before it", 1, link.records, str(file)))


def _check_checkpoints(
    infos: list[CheckpointInfo], scan: _Scan, records: int, origin: str | None, chain: Chain, errors: list[Issue],
) -> None:
    """B5 step 4: origin, size against the records, root at that size, and fork evidence between checkpoints."""
    expected_origin = origin or next((i.origin for i in infos if i.source == "log"), None)
    base = chain.missing.records if chain.missing is not None else 0
    for info in infos:
        label = "the log's checkpoint" if info.source == "log" else f"{info.source} checkpoint {info.path}"
        if expected_origin is not None and info.origin != expected_origin:
            errors.append(Issue("origin-mismatch", f"{label} has origin {info.origin!r}, expected {expected_origin!r}"))
            continue
        if info.size > records:
            if info.source == "trusted":
                errors.append(Issue(
                    "rollback",
                    f"your trusted checkpoint covers {info.size} records but the log has only {records}: records "
                    f"{records}..{info.size - 1} were removed or an older log was restored (rollback)",
                    records + 1, records,
                ))
            else:
                errors.append(Issue(
                    "truncated",
                    f"{label} covers {info.size} records but the log has only {records}: records "
                    f"{records}..{info.size - 1} were removed from the end (truncation)",
                    records + 1, records,
                ))
        elif info.size and info.size < base:
            continue  # inside the missing segment: already an error, nothing more to say
        elif info.size and scan.roots.get(info.size, b"").hex() != info.root:
            code = "fork" if info.source == "trusted" else "root-mismatch"
            errors.append(Issue(
                code,
                f"the Merkle root of the first {info.size} records is {scan.roots[info.size].hex()}, but {label} "
                f"signed {info.root}: history was rewritten (records edited and the chain recomputed)"
                + (" or this log is a fork of the one you trusted" if code == "fork" else ""),
            ))
    by_size: dict[int, CheckpointInfo] = {}
    for info in infos:
        other = by_size.setdefault(info.size, info)
        if other.root != info.root:
            errors.append(Issue(
                "fork-evidence",
                f"two validly signed checkpoints of size {info.size} with different roots: "
                f"{other.source} ({other.path}) root {other.root} and {info.source} ({info.path}) root {info.root}",
            ))


def _check_sealing(
    path: Path, infos: list[CheckpointInfo], records: int, have_keys: bool, errors: list[Issue],
    warnings: list[Issue],
) -> None:
    """B5 step 6: the log's own checkpoint exists, verifies and covers all but what one crash can leave unsealed."""
    own = sidecar(path, ".checkpoint")
    own_info = next((i for i in infos if i.source == "log"), None)
    if own_info is None and have_keys and records:
        if not own.exists():
            errors.append(Issue("no-checkpoint", f"no checkpoint {own}: the log is not sealed"))
        elif not any(i.code.startswith("checkpoint-") for i in errors):
            errors.append(Issue("no-checkpoint", "no checkpoint verified"))
    if own_info is not None and own_info.size < records:
        unsealed = records - own_info.size
        issue = Issue(
            "unsealed",
            f"{unsealed} record(s) after the latest checkpoint (size {own_info.size}) are not sealed"
            + ("" if unsealed <= MAX_UNSEALED else ": more than an interrupted append can leave; appended without "
               "the signing key?"),
            own_info.size + 1, own_info.size,
        )
        (warnings if unsealed <= MAX_UNSEALED else errors).append(issue)


# Within one line, the most specific diagnosis first: a line that is not even canonical JSON explains the rest.
_CODE_RANK = {code: rank for rank, code in enumerate(
    ("non-canonical", "bad-record", "seq-gap", "seq-mismatch", "chain-break", "bad-event"))}


def _order(issue: Issue) -> tuple[bool, int, int, str]:
    return (issue.line is None, issue.line or 0, _CODE_RANK.get(issue.code, len(_CODE_RANK)), issue.code)


def save_trusted_checkpoint(report: VerifyReport, dest: Path) -> bool:
    """After a clean verification, store the log's checkpoint as the auditor's new trusted one (TOFU, B5 step 5).

    Only moves forward: returns False (and leaves ``dest``) if the report has errors or the log's checkpoint is not
    larger than the trusted one it was checked against.
    """
    own = next((i for i in report.checkpoints if i.source == "log"), None)
    if not report.ok or own is None:
        return False
    trusted = next((i for i in report.checkpoints if i.source == "trusted"), None)
    if trusted is not None and own.size <= trusted.size:
        return False
    from gatekeeper.audit.log import atomic_write

    # The bytes that were verified, not the file now: the server may have appended since.
    atomic_write(Path(dest), own.note.encode())
    return True


