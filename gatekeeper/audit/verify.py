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

Limits (documented, tested): an older log restored together with its older, validly signed checkpoint passes every
local check; only a checkpoint the auditor kept elsewhere (``trusted_checkpoint``) exposes the rollback. Likewise the
holder of the signing key can re-sign a rewritten history; only external checkpoints catch that.
"""

from __future__ import annotations

import hashlib
import json

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gatekeeper.audit import canonical
from gatekeeper.audit.keys import default_key_path, load_vkey_file, parse_vkeys, public_path
from gatekeeper.audit.log import GENESIS_PREV, sidecar
from gatekeeper.audit.merkle import CompactRange
from gatekeeper.audit.note import Checkpoint, NoteError, Verifier, open_note
from gatekeeper.errors import AuditError

RECORD_KEYS = frozenset({"v", "seq", "ts", "node", "prev", "event"})
MAX_UNSEALED = 2  # a crash between fsync and sealing leaves at most a recovery record plus one event unsealed
MAX_ISSUES = 50
_READ_CHUNK = 4 * 1024 * 1024
_MAX_CHECKPOINT_BYTES = 64 * 1024
DECISIONS = frozenset({"allow", "deny", "error", "break-glass"})


@dataclass(frozen=True)
class Issue:
    """One finding. ``line`` is 1-based; ``seq`` is the record the finding is about, when known."""

    code: str
    message: str
    line: int | None = None
    seq: int | None = None

    def __str__(self) -> str:
        where = []
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


# -- event schemas ----------------------------------------------------------------------------------------------------

def _is_str(value: object) -> bool:
    return isinstance(value, str)


def _check_updates(updates: object, full: bool) -> str | None:
    if not isinstance(updates, list):
        return "event.updates is not a list"
    for i, upd in enumerate(updates):
        if not isinstance(upd, dict) or not _is_str(upd.get("ref")):
            return f"event.updates[{i}] has no string 'ref'"
        if full and "decision" in upd and upd["decision"] not in ("allow", "deny"):
            return f"event.updates[{i}].decision is {upd['decision']!r}"
        if "paths" in upd and not (isinstance(upd["paths"], list) and all(map(_is_str, upd["paths"]))):
            return f"event.updates[{i}].paths is not a list of strings"
    return None


def _schema_decision(event: dict[str, Any]) -> str | None:
    if not _is_str(event.get("repo")):
        return "push.decision without a string 'repo'"
    if event.get("decision") not in DECISIONS:
        return f"push.decision has decision {event.get('decision')!r}, expected one of {sorted(DECISIONS)}"
    if not isinstance(event.get("pusher"), dict):
        return "push.decision without a 'pusher' object"
    return _check_updates(event.get("updates"), True)


def _schema_outcome(event: dict[str, Any]) -> str | None:
    if not _is_str(event.get("repo")):
        return "push.outcome without a string 'repo'"
    return _check_updates(event.get("updates"), False)


def _schema_recovery(event: dict[str, Any]) -> str | None:
    if not (_is_str(event.get("reason")) and isinstance(event.get("bytes"), int) and _is_str(event.get("sha256"))):
        return "recovery record needs 'reason', 'bytes' and 'sha256'"
    return None


SCHEMAS: dict[str, Callable[[dict[str, Any]], str | None]] = {
    "push.decision": _schema_decision,
    "push.outcome": _schema_outcome,
    "recovery": _schema_recovery,
}


# -- checkpoints ------------------------------------------------------------------------------------------------------

def resolve_vkeys(log: Path, vkeys: Sequence[str] | None, vkey_files: Sequence[Path] = ()) -> tuple[list[Verifier], str]:
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

    def error(self, issue: Issue) -> None:
        if len(self.errors) < MAX_ISSUES:
            self.errors.append(issue)

    def warn(self, issue: Issue) -> None:
        if len(self.warnings) < MAX_ISSUES:
            self.warnings.append(issue)


def _scan(path: Path, scan: _Scan) -> None:
    expected_seq = 0
    prev_hex = GENESIS_PREV
    prev_line_no = 0
    last_ts = ""
    line_no = 0
    compact = scan.compact
    wanted = scan.wanted
    decode = canonical.decode_line
    sha256 = hashlib.sha256
    types = scan.types
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise AuditError(f"cannot read audit log {path}: {exc.strerror}") from None
    with fh:
        tail = b""
        while True:
            chunk = fh.read(_READ_CHUNK)
            if not chunk:
                break
            lines = (tail + chunk).split(b"\n")
            tail = lines.pop()
            for line in lines:
                line_no += 1
                leaf = sha256(b"\x00" + line).digest()
                try:
                    rec = decode(line)
                except canonical.CanonicalError as exc:
                    scan.error(Issue("non-canonical", f"record is not canonical JSON: {exc}", line_no, expected_seq))
                    rec = None
                if rec is not None:
                    seq = rec.get("seq")
                    if rec.keys() != RECORD_KEYS or rec.get("v") != 1:
                        scan.error(Issue("bad-record", "record must have exactly v=1, seq, ts, node, prev, event",
                                         line_no, seq if isinstance(seq, int) else None))
                    elif seq != expected_seq:
                        if not isinstance(seq, int) or isinstance(seq, bool):
                            scan.error(Issue("bad-record", f"seq {seq!r} is not an integer", line_no))
                        elif seq > expected_seq:
                            scan.error(Issue(
                                "seq-gap",
                                f"expected seq {expected_seq}, found {seq}: "
                                + (f"record {expected_seq} was" if seq == expected_seq + 1
                                   else f"records {expected_seq}..{seq - 1} were")
                                + " deleted (or lines were reordered)",
                                line_no, seq,
                            ))
                        else:
                            scan.error(Issue(
                                "seq-mismatch",
                                f"expected seq {expected_seq}, found {seq} again: a record was duplicated, inserted "
                                "or reordered",
                                line_no, seq,
                            ))
                        expected_seq = seq if isinstance(seq, int) and not isinstance(seq, bool) else expected_seq
                    elif rec["prev"] != prev_hex:
                        if line_no == 1:
                            msg = "the first record's prev is not the genesis value (records were removed before it)"
                            scan.error(Issue("chain-break", msg, line_no, seq))
                        else:
                            scan.error(Issue(
                                "chain-break",
                                f"the record on line {prev_line_no} (seq {seq - 1}) was modified: its hash no longer "
                                f"matches the prev of line {line_no} (seq {seq})",
                                prev_line_no, seq - 1,
                            ))
                    event = rec.get("event")
                    if isinstance(event, dict) and isinstance(event.get("type"), str):
                        etype = event["type"]
                        types[etype] = types.get(etype, 0) + 1
                        check = SCHEMAS.get(etype)
                        problem = check(event) if check is not None else None
                        if problem:
                            scan.error(Issue("bad-event", problem, line_no, expected_seq))
                        if etype == "recovery" and not problem:
                            scan.warn(Issue(
                                "recovery",
                                f"the writer cut {event['bytes']} torn bytes (sha256 {event['sha256']}) at byte "
                                f"{event.get('offset')} and recorded it here",
                                line_no, expected_seq,
                            ))
                    elif rec.keys() == RECORD_KEYS:
                        scan.error(Issue("bad-event", "event is not an object with a string 'type'", line_no,
                                         expected_seq))
                    ts = rec.get("ts")
                    if isinstance(ts, str):
                        if ts < last_ts:
                            scan.warn(Issue("time-backwards", f"ts {ts} is before the previous record's {last_ts}",
                                            line_no, expected_seq))
                        last_ts = ts
                prev_hex = leaf.hex()
                prev_line_no = line_no
                expected_seq += 1
                compact.append(leaf)
                if compact.size in wanted:
                    scan.roots[compact.size] = compact.root()
        if tail:
            scan.torn = len(tail)
            scan.warn(Issue(
                "torn-tail",
                f"{len(tail)} bytes after the last complete line (an interrupted write); the next append cuts them "
                "and records a recovery",
                line_no + 1,
            ))


def verify_log(
    path: Path,
    *,
    trusted_checkpoint: Path | None = None,
    vkeys: list[str] | None = None,
    vkey_files: Sequence[Path] = (),
    checkpoints: Sequence[Path] = (),
    origin: str | None = None,
) -> VerifyReport:
    """Verify an audit log (reference B5 checks 1-7 for one server).

    Args:
        path: the log file; its checkpoint is read from ``<path>.checkpoint``.
        trusted_checkpoint: a checkpoint the auditor kept from an earlier verification (detects rollback and forks).
        vkeys: pinned verifier keys (C2SP vkey strings). Default: ``vkey_files``, else the ``.pub`` of the default
            key next to the log (the report says which was used).
        vkey_files: files with one vkey per line.
        checkpoints: further checkpoints to check (copies from WORM storage, a SIEM, an export).
        origin: the expected checkpoint origin (default: the origin of the log's own checkpoint).

    Returns:
        The report; ``report.ok`` is False on any error.

    Raises:
        AuditError: the log, a key file or a checkpoint file cannot be read, or a given vkey is malformed.
    """
    path = Path(path)
    if not path.is_file():
        raise AuditError(f"audit log {path} does not exist or is not a file", hint="pass the log with --log FILE")
    verifiers, vkey_source = resolve_vkeys(path, vkeys, vkey_files)
    errors: list[Issue] = []
    sources: list[tuple[str, Path]] = []
    own = sidecar(path, ".checkpoint")
    if own.exists():
        sources.append(("log", own))
    sources.extend((f"extra #{i + 1}", Path(p)) for i, p in enumerate(checkpoints))
    if trusted_checkpoint is not None:
        sources.append(("trusted", Path(trusted_checkpoint)))
    infos: list[CheckpointInfo] = []
    if not verifiers:
        errors.append(Issue("no-vkey", "no verifier key: pass --vkey or --vkey-file (checkpoints cannot be checked)"))
    else:
        for source, cp_path in sources:
            info = _open_checkpoint(_read_checkpoint(cp_path), source, cp_path, verifiers, errors)
            if info is not None:
                infos.append(info)
    scan = _Scan({info.size for info in infos})
    _scan(path, scan)
    records = scan.compact.size
    errors.extend(scan.errors)
    warnings = list(scan.warnings)

    expected_origin = origin or next((i.origin for i in infos if i.source == "log"), None)
    own_info = next((i for i in infos if i.source == "log"), None)
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

    if own_info is None and verifiers and records:
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
    errors.sort(key=lambda i: (i.line is None, i.line or 0))
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
    )


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


