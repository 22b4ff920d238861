"""Filtering audit records: a library function with an optional derived index.

:func:`query` yields the records of the log (the source of truth) that match all given filters. Filters are a
:class:`Filters` value; callers add their own predicates through ``Filters.extra`` (record -> bool), and stateful
selections that need more than one record (say, break-glass decisions not yet reviewed) wrap the iterator that
:func:`query` returns, so new options never need changes here.

Speed: a million records do not parse in a second, so an SQLite index ``<log>.index.sqlite`` holds the fields that
filters use (repo, pusher, decision, type, ts, refs, paths) with each record's byte offset. It is derived and
rebuildable: it records how many bytes of the log it covers and the hash of the last line it indexed, is brought up to
date incrementally before each query, and is rebuilt from scratch if the log no longer matches. The index only
*narrows* the candidates (a superset of the matches); every candidate line is read back from the log and checked by the
exact Python predicate, so a stale or tampered index can hide records but never invent or alter one. ``audit verify``
is the integrity check; ``index=False`` bypasses the index entirely.

Glob semantics (``--ref``, ``--path``): ``*`` and ``?`` stay within one path component, ``**`` crosses ``/``,
``[abc]``/``[!abc]`` are classes. Paths follow gitignore conventions like the policy does: a pattern without a slash
(other than a trailing one) matches a name at any depth (``*.pkl``), a pattern matches a directory and everything below
it (``models`` or ``models/``), and matching is case-insensitive after Unicode NFC normalisation. Refs match whole and
case-sensitively (``refs/heads/release/**``).
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

from gatekeeper.audit.log import sidecar
from gatekeeper.audit.merkle import leaf_hash
from gatekeeper.errors import AuditError

_loads: Callable[[bytes | str], Any]
try:  # records are read back (and indexed) by the thousand: the C codec where installed; the results are the same
    from orjson import loads as _loads
except ImportError:  # pragma: no cover
    _loads = json.loads

Record = dict[str, Any]
INDEX_VERSION = "3"
_BATCH = 20_000
MAX_LINE_BYTES = 64 * 1024 * 1024  # as in verify: no record is that long
_GLOB_META = set("*?[]\\")


# -- time -------------------------------------------------------------------------------------------------------------

def parse_time(text: str) -> str:
    """An ISO-8601 time (``2026-11-25``, ``2026-11-25T20:55``, ``...Z``, ``...+01:00``) in the records' ``ts`` form.

    A time without offset is taken as UTC. Raises :class:`AuditError`.
    """
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise AuditError(f"invalid time {text!r}", hint="use ISO-8601 UTC, e.g. 2026-11-25T20:55:00Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# -- globs ------------------------------------------------------------------------------------------------------------

def _translate(pattern: str) -> str:
    out = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif ch == "*":
            out.append("[^/]*")
            i += 1
        elif ch == "?":
            out.append("[^/]")
            i += 1
        elif ch == "[":
            end = pattern.find("]", i + 2 if pattern.startswith(("[!", "[^"), i) else i + 1)
            if end < 0:
                out.append(re.escape(ch))
                i += 1
                continue
            body = pattern[i + 1:end]
            if body[:1] in ("!", "^"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\").replace("[", "\\[") + "]")
            i = end + 1
        elif ch == "\\" and i + 1 < n:
            out.append(re.escape(pattern[i + 1]))
            i += 2
        else:
            out.append(re.escape(ch))
            i += 1
    return "".join(out)


def normalise_path(path: str) -> str:
    return unicodedata.normalize("NFC", path).lower()


@dataclass(frozen=True)
class Glob:
    """A compiled ``--ref`` or ``--path`` pattern plus a literal that every match contains (for the index)."""

    pattern: str
    regex: re.Pattern[str]
    literals: tuple[str, ...]  # plain runs every match contains (for the index)
    is_path: bool
    prefix: str = ""  # for anchored patterns: the plain text every match starts with (an index range)
    # For a path pattern that matches a whole name at any depth and never a '/' (no '/', no '**', no class): the
    # regex one path component must match. A path matches the pattern exactly when one of its components does, so
    # the index can answer from its tables of distinct names and directories instead of every path.
    component: re.Pattern[str] | None = None

    @classmethod
    def ref(cls, pattern: str) -> Glob:
        return cls(pattern, re.compile(_translate(pattern)), _literals(pattern), False, _prefix(pattern))

    @classmethod
    def path(cls, pattern: str) -> Glob:
        norm = normalise_path(pattern)
        body = norm.rstrip("/")
        if not body:
            raise AuditError(f"empty path pattern {pattern!r}")
        anchored = "/" in body
        body = body.lstrip("/")
        regex = ("" if anchored else "(?:.*/)?") + _translate(body) + "(?:/.*)?"
        # Without '/', '**' or a class ('[!a]' and ranges can match '/'), the translation matches within one
        # component only, so "(?:.*/)?" + T + "(?:/.*)?" matches a path exactly when T matches one of its components.
        one_component = not anchored and "**" not in body and "[" not in body
        return cls(pattern, re.compile(regex), _literals(body), True, _prefix(body) if anchored else "",
                   re.compile(_translate(body)) if one_component else None)

    def match(self, value: str) -> bool:
        return self.regex.fullmatch(normalise_path(value) if self.is_path else value) is not None


def _literals(pattern: str) -> tuple[str, ...]:
    """The runs of plain characters (no glob syntax, no '/'): every matching value contains each of them."""
    without_classes = re.sub(r"\[[^\]]*\]?", "/", pattern)  # a class's members are alternatives, not literals
    return tuple(run for run in re.split(r"[*?\[\]\\/]", without_classes) if run)


def _prefix(pattern: str) -> str:
    """The plain text before the first glob character: every full match starts with it."""
    match = re.search(r"[*?\[\\]", pattern)
    return pattern if match is None else pattern[: match.start()]


def _upper(prefix: str) -> str:
    """The smallest string greater than every string that starts with ``prefix``."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


# -- filters ----------------------------------------------------------------------------------------------------------

def _updates(event: Record) -> list[Record]:
    updates = event.get("updates")
    return [u for u in updates if isinstance(u, dict)] if isinstance(updates, list) else []


def _approvers(update: Record) -> list[Any]:
    used = update.get("approvals")
    return [a.get("person") for a in used if isinstance(a, dict)] if isinstance(used, list) else []


def _rules(update: Record) -> list[Any]:
    rules = update.get("rules")
    return rules if isinstance(rules, list) else []


def decision_label(event: Record) -> str:
    """The decision as an auditor should read it: a monitor-mode push the gate would have refused was let through,
    so it is "would deny, allowed (monitor)", never a bare "deny" (issue 12.5)."""
    decision = event.get("decision")
    text = "" if decision is None else str(decision)
    if event.get("mode") == "monitor" and decision in ("deny", "error") and event.get("blocked") is False:
        return f"would {text}, allowed (monitor)"
    return text


@dataclass(frozen=True)
class Filters:
    """The one description of "which records" shared by ``audit query``, ``audit export`` and other backends (the
    report, the database): all given filters must match (``None``/False = no filter). ``since`` inclusive, ``until``
    exclusive, both ``ts``-form strings from :func:`parse_time`. ``extra`` predicates run last, on the full record
    (in Python only: a backend that cannot run them must fetch candidates and call :meth:`matches`).

    Build one from user input with :meth:`build`; :meth:`describe` gives the filters as given (for manifests and
    report headers); :meth:`matches` is the exact predicate every backend's result must satisfy.
    """

    repo: str | None = None
    ref: Glob | None = None
    pusher: str | None = None
    path: Glob | None = None
    decision: str | None = None
    since: str | None = None
    until: str | None = None
    type: str | None = None
    approver: str | None = None  # a person whose approval was used (updates[].approvals[].person)
    rule: str | None = None  # a rule that applied to an update (updates[].rules)
    break_glass: bool = False  # only break-glass pushes
    extra: tuple[Callable[[Record], bool], ...] = ()

    @classmethod
    def build(
        cls, *, repo: str | None = None, ref: str | None = None, pusher: str | None = None, path: str | None = None,
        decision: str | None = None, since: str | None = None, until: str | None = None, type: str | None = None,
        approver: str | None = None, rule: str | None = None, break_glass: bool = False,
        extra: tuple[Callable[[Record], bool], ...] = (),
    ) -> Filters:
        """Filters from user input (globs and ISO-8601 times as text). Raises :class:`AuditError`."""
        if break_glass and decision not in (None, "break-glass"):
            raise AuditError(f"--break-glass contradicts --decision {decision}")
        return cls(
            repo=repo, pusher=pusher, decision=decision, type=type, approver=approver, rule=rule,
            break_glass=break_glass, extra=tuple(extra),
            ref=None if ref is None else Glob.ref(ref),
            path=None if path is None else Glob.path(path),
            since=None if since is None else parse_time(since),
            until=None if until is None else parse_time(until),
        )

    def describe(self) -> dict[str, object]:
        """The filters that are set, as plain JSON values (globs as their patterns)."""
        doc: dict[str, object] = {}
        for name in ("repo", "pusher", "decision", "since", "until", "type", "approver", "rule"):
            if getattr(self, name) is not None:
                doc[name] = getattr(self, name)
        for name in ("ref", "path"):
            glob = getattr(self, name)
            if glob is not None:
                doc[name] = glob.pattern
        if self.break_glass:
            doc["break_glass"] = True
        return doc

    def is_empty(self) -> bool:
        return self == Filters()

    def matches(self, record: Record) -> bool:
        event = record.get("event")
        if not isinstance(event, dict):
            return False
        ts = record.get("ts")
        if self.since is not None and not (isinstance(ts, str) and ts >= self.since):
            return False
        if self.until is not None and not (isinstance(ts, str) and ts < self.until):
            return False
        if self.type is not None and event.get("type") != self.type:
            return False
        if self.repo is not None and event.get("repo") != self.repo:
            return False
        if self.decision is not None and event.get("decision") != self.decision:
            return False
        if self.pusher is not None:
            pusher = event.get("pusher")
            if not (isinstance(pusher, dict) and pusher.get("user") == self.pusher):
                return False
        if self.ref is not None:
            ref = self.ref
            if not any(isinstance(u.get("ref"), str) and ref.match(u["ref"]) for u in _updates(event)):
                return False
        if self.path is not None:
            glob = self.path
            if not any(isinstance(p, str) and glob.match(p) for u in _updates(event) for p in _paths(u)):
                return False
        if self.break_glass and event.get("decision") != "break-glass":  # as gatekeeper.audit.breakglass reads it
            return False
        if self.approver is not None and not any(self.approver in _approvers(u) for u in _updates(event)):
            return False
        if self.rule is not None and not any(self.rule in _rules(u) for u in _updates(event)):
            return False
        return all(pred(record) for pred in self.extra)


def _paths(update: Record) -> list[Any]:
    paths = update.get("paths")
    return paths if isinstance(paths, list) else []


# -- the index --------------------------------------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE rec(line INTEGER PRIMARY KEY, seq INTEGER, off INTEGER NOT NULL, len INTEGER NOT NULL, ts TEXT,
                 type TEXT, repo TEXT, user TEXT, decision TEXT);
CREATE TABLE upd(line INTEGER NOT NULL, ref TEXT);
CREATE TABLE path(line INTEGER NOT NULL, path TEXT, dir INTEGER, name INTEGER NOT NULL);
CREATE TABLE dir(id INTEGER PRIMARY KEY, text TEXT NOT NULL UNIQUE);
CREATE TABLE name(id INTEGER PRIMARY KEY, text TEXT NOT NULL UNIQUE);
CREATE TABLE appr(line INTEGER NOT NULL, person TEXT);
CREATE TABLE rule(line INTEGER NOT NULL, rule TEXT);
"""
_INDEXES = """
CREATE INDEX IF NOT EXISTS rec_seq ON rec(seq);
CREATE INDEX IF NOT EXISTS rec_ts ON rec(ts);
CREATE INDEX IF NOT EXISTS rec_repo ON rec(repo);
CREATE INDEX IF NOT EXISTS rec_user ON rec(user);
CREATE INDEX IF NOT EXISTS rec_decision ON rec(decision);
CREATE INDEX IF NOT EXISTS rec_type ON rec(type);
CREATE INDEX IF NOT EXISTS upd_ref ON upd(ref);
CREATE INDEX IF NOT EXISTS path_path ON path(path);
CREATE INDEX IF NOT EXISTS path_line ON path(line, name, dir);
CREATE INDEX IF NOT EXISTS path_dir ON path(dir);
CREATE INDEX IF NOT EXISTS path_name ON path(name);
CREATE INDEX IF NOT EXISTS appr_person ON appr(person);
CREATE INDEX IF NOT EXISTS rule_rule ON rule(rule);
"""


def index_path(log: Path) -> Path:
    return sidecar(Path(log), ".index.sqlite")


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


class Index:
    """The derived SQLite index of one log. :meth:`update` brings it up to date (or rebuilds it)."""

    def __init__(self, log: Path) -> None:
        self.log = Path(log)
        self.path = index_path(self.log)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=OFF")  # derived data: a crash costs a rebuild, never a wrong answer
        return conn

    def update(self) -> sqlite3.Connection:
        """Open the index, index new complete lines of the log, rebuild if the log changed underneath.

        Updaters (the hook's background refresh, queries) take ``<log>.index.lock`` so two never index the same
        lines twice."""
        from gatekeeper.audit.log import file_lock

        with file_lock(sidecar(self.log, ".index.lock"), 60.0):
            return self._update_locked()

    def _update_locked(self) -> sqlite3.Connection:
        try:
            conn = self._connect()
            state = self._state(conn)
        except sqlite3.DatabaseError:
            self._remove()
            conn = self._connect()
            state = None
        with open(self.log, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if state is not None and not self._still_valid(fh, state, size):
                state = None
            if state is None:
                conn.close()
                self._remove()
                conn = self._connect()
                conn.executescript(_SCHEMA)
                state = (0, 0, "")
            self._add(conn, fh, state, size)
        return conn

    def _remove(self) -> None:
        for suffix in ("", "-wal", "-shm", "-journal"):
            try:
                os.unlink(str(self.path) + suffix)
            except FileNotFoundError:
                pass

    @staticmethod
    def _state(conn: sqlite3.Connection) -> tuple[int, int, str] | None:
        try:
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.OperationalError:
            return None
        if meta.get("version") != INDEX_VERSION:
            return None
        return int(meta["bytes"]), int(meta["lines"]), meta["last_leaf"]

    @staticmethod
    def _still_valid(fh: Any, state: tuple[int, int, str], size: int) -> bool:
        length, lines, last_leaf = state
        if size < length:
            return False
        if length == 0:
            return True
        line = _line_ending_at(fh, length)
        return line is not None and leaf_hash(line).hex() == last_leaf

    def _add(self, conn: sqlite3.Connection, fh: Any, state: tuple[int, int, str], size: int) -> None:
        offset, line_no, last_leaf = state
        if offset >= size:
            return
        fh.seek(offset)
        recs: list[tuple[Any, ...]] = []
        upds: list[tuple[int, str | None]] = []
        paths: list[tuple[int, str, int | None, int]] = []
        dirs, names = _Dictionary(conn, "dir"), _Dictionary(conn, "name")
        apprs: list[tuple[int, str]] = []
        rules: list[tuple[int, str]] = []
        last_line = b""

        def path_row(line: int, path: str) -> tuple[int, str, int | None, int]:
            cut = path.rfind("/")
            return line, path, None if cut < 0 else dirs.id(path[:cut]), names.id(path[cut + 1:])

        def flush() -> None:
            conn.executemany("INSERT INTO rec VALUES (?,?,?,?,?,?,?,?,?)", recs)
            conn.executemany("INSERT INTO upd VALUES (?,?)", upds)
            dirs.flush()
            names.flush()
            conn.executemany("INSERT INTO path VALUES (?,?,?,?)", paths)
            conn.executemany("INSERT INTO appr VALUES (?,?)", apprs)
            conn.executemany("INSERT INTO rule VALUES (?,?)", rules)
            for rows in (recs, upds, paths, apprs, rules):
                rows.clear()

        from gatekeeper.audit.segments import complete_lines

        for line in complete_lines(fh, lambda pending: _check_tail(self.log, pending)):
            line_no += 1
            length = len(line) + 1
            try:
                rec = _loads(line)
            except (ValueError, RecursionError):  # hostile nesting too: verify reports such lines
                rec = None
            if isinstance(rec, dict):
                event = rec.get("event")
                event = event if isinstance(event, dict) else {}
                pusher = event.get("pusher")
                recs.append((
                    line_no, rec.get("seq") if isinstance(rec.get("seq"), int) else None, offset, len(line),
                    _str_or_none(rec.get("ts")), _str_or_none(event.get("type")),
                    _str_or_none(event.get("repo")),
                    _str_or_none(pusher.get("user")) if isinstance(pusher, dict) else None,
                    _str_or_none(event.get("decision")),
                ))
                for upd in _updates(event):
                    upds.append((line_no, _str_or_none(upd.get("ref"))))
                    paths.extend(path_row(line_no, normalise_path(p)) for p in _paths(upd) if isinstance(p, str))
                    apprs.extend((line_no, a) for a in _approvers(upd) if isinstance(a, str))
                    rules.extend((line_no, r) for r in _rules(upd) if isinstance(r, str))
            else:
                # Unparsable lines (verify reports them) are indexed without fields: only unfiltered queries
                # see them, exactly as without the index.
                recs.append((line_no, None, offset, len(line), None, None, None, None, None))
            offset += length
            last_line = line
            if len(recs) >= _BATCH:
                flush()
        flush()
        if last_line:
            last_leaf = leaf_hash(last_line).hex()
        conn.executemany(
            "INSERT OR REPLACE INTO meta VALUES (?, ?)",
            [("version", INDEX_VERSION), ("bytes", str(offset)), ("lines", str(line_no)), ("last_leaf", last_leaf)],
        )
        conn.executescript(_INDEXES)
        conn.commit()


class _Dictionary:
    """One of the index's tables of distinct texts (directories, names) with their ids. Texts are looked up as lines
    come (the refresh after one append touches a few, never the whole table) and remembered for the rest of the run;
    new entries are written by :meth:`flush`, before the path rows that use them."""

    def __init__(self, conn: sqlite3.Connection, table: str) -> None:
        self.conn, self.table = conn, table
        self.ids: dict[str, int] = {}
        self.next = (conn.execute(f"SELECT max(id) FROM {table}").fetchone()[0] or 0) + 1
        self.new: list[tuple[int, str]] = []

    def id(self, text: str) -> int:
        found = self.ids.get(text)
        if found is None:
            row = self.conn.execute(f"SELECT id FROM {self.table} WHERE text = ?", (text,)).fetchone()
            if row is not None:
                found = int(row[0])
            else:
                found = self.next
                self.next += 1
                self.new.append((found, text))
            self.ids[text] = found
        return found

    def flush(self) -> None:
        self.conn.executemany(f"INSERT INTO {self.table} VALUES (?,?)", self.new)
        self.new.clear()


def _check_tail(log: Path, tail: bytes) -> None:
    if len(tail) > MAX_LINE_BYTES:
        raise AuditError(f"audit log {log}: a line longer than {MAX_LINE_BYTES} bytes: not an audit log",
                         hint=f"run: gatekeeper audit verify --log {log}")


def _line_ending_at(fh: BinaryIO, end: int) -> bytes | None:
    """The line whose newline is byte ``end - 1`` (None if that byte is not a newline)."""
    fh.seek(end - 1)
    if fh.read(1) != b"\n":
        return None
    buf = b""
    pos = end - 1
    while pos > 0:
        step = min(64 * 1024, pos)
        fh.seek(pos - step)
        buf = fh.read(step) + buf
        pos -= step
        nl = buf.rfind(b"\n")
        if nl >= 0:
            return buf[nl + 1:]
    return buf


def _candidates(conn: sqlite3.Connection, flt: Filters) -> Iterator[tuple[int, int, int]]:
    where: list[str] = []
    args: list[Any] = []
    for column, value in (("repo", flt.repo), ("user", flt.pusher), ("decision", flt.decision), ("type", flt.type)):
        if value is not None:
            where.append(f"r.{column} = ?")
            args.append(value)
    if flt.break_glass:
        where.append("r.decision = 'break-glass'")
    for table, column, value in (("appr", "person", flt.approver), ("rule", "rule", flt.rule)):
        if value is not None:
            where.append(f"r.line IN (SELECT line FROM {table} WHERE {column} = ?)")
            args.append(value)
    if flt.since is not None:
        where.append("r.ts >= ?")
        args.append(flt.since)
    if flt.until is not None:
        where.append("r.ts < ?")
        args.append(flt.until)
    narrowed = bool(where)
    for table, column, glob in (("upd", "ref", flt.ref), ("path", "path", flt.path)):
        if glob is None:
            continue
        if glob.component is not None:
            where.append(_component_condition(conn, glob.component, narrowed))
            continue
        narrowed = True
        conds: list[str] = []
        if glob.prefix:
            conds.append(f"{column} >= ? AND {column} < ?")  # a range on the column's index
            args.extend((glob.prefix, _upper(glob.prefix)))
        for literal in glob.literals:
            conds.append(f"instr({column}, ?) > 0")
            args.append(literal)
        if conds:
            where.append(f"r.line IN (SELECT line FROM {table} WHERE {' AND '.join(conds)})")
    sql = "SELECT r.line, r.off, r.len FROM rec r" + (" WHERE " + " AND ".join(where) if where else "")
    yield from conn.execute(sql + " ORDER BY r.line", args)


def _component_condition(conn: sqlite3.Connection, component: re.Pattern[str], narrowed: bool) -> str:
    """The candidates for a one-component path pattern (``*.pkl``): records with a path whose name, or one of whose
    directories, matches. The pattern runs in Python over the distinct names and directories (thousands, not
    millions of paths); the paths are then found by id. When another filter already narrows the records and this
    one keeps many (``*.pkl`` holds a sixth of all paths), each of those records is probed instead (``EXISTS``)."""
    names = [i for i, text in conn.execute("SELECT id, text FROM name") if component.fullmatch(text)]
    dirs = [i for i, text in conn.execute("SELECT id, text FROM dir")
            if any(component.fullmatch(part) for part in text.split("/"))]
    ids = " OR ".join(f"{column} IN ({','.join(str(int(i)) for i in found)})"
                      for column, found in (("name", names), ("dir", dirs)) if found)
    if not ids:
        return "0"  # no path in the log has a matching component
    if narrowed:
        rows = conn.execute(f"SELECT count(*) FROM path WHERE {ids}").fetchone()[0]
        lines = conn.execute("SELECT max(line) FROM rec").fetchone()[0] or 0
        if rows * 20 > lines:
            # '+' keeps SQLite from seeking the index once per id for every record: it reads the record's few
            # (line, name, dir) entries from the covering index and tests them.
            probe = ids.replace("name IN", "+name IN").replace("dir IN", "+dir IN")
            return f"EXISTS (SELECT 1 FROM path p WHERE p.line = r.line AND ({probe}))"
    return f"r.line IN (SELECT line FROM path WHERE {ids})"


# -- public -----------------------------------------------------------------------------------------------------------

def _scan(log: Path) -> Iterator[tuple[int, bytes]]:
    from gatekeeper.audit.segments import complete_lines

    with open(log, "rb") as fh:
        yield from enumerate(complete_lines(fh, lambda tail: _check_tail(log, tail)), 1)


def _decode(line: bytes) -> Record | None:
    try:
        rec = _loads(line)
    except (ValueError, RecursionError):
        return None
    return rec if isinstance(rec, dict) else None


def query(
    path: Path,
    *,
    repo: str | None = None,
    ref: str | None = None,
    pusher: str | None = None,
    path_glob: str | None = None,
    decision: str | None = None,
    since: str | None = None,
    until: str | None = None,
    type_: str | None = None,
    extra: tuple[Callable[[Record], bool], ...] = (),
    index: bool = True,
    approver: str | None = None,
    rule: str | None = None,
    break_glass: bool = False,
) -> Iterator[Record]:
    """Yield the records of the log at ``path`` that match every given filter, in log order.

    Args:
        path: the audit log.
        repo, pusher, decision, type_: exact matches on ``event.repo``, ``event.pusher.user``, ``event.decision``,
            ``event.type``.
        ref: glob over ``event.updates[].ref``; path_glob: glob over ``event.updates[].paths`` (module docstring).
        since, until: ISO-8601 times (UTC if no offset); since inclusive, until exclusive.
        extra: more predicates (record -> bool), all must hold.
        approver, rule: a person whose approval was used / a rule that applied, on any update; break_glass: only
            break-glass pushes.
        index: use (and update) the derived SQLite index; without it the log is scanned.

    Raises:
        AuditError: the log cannot be read or a filter is invalid.
    """
    flt = Filters.build(repo=repo, ref=ref, pusher=pusher, path=path_glob, decision=decision, since=since, until=until,
                        type=type_, approver=approver, rule=rule, break_glass=break_glass, extra=tuple(extra))
    return query_filters(Path(path), flt, index=index)


def query_filters(log: Path, flt: Filters, *, index: bool = True) -> Iterator[Record]:
    """:func:`query` for a prepared :class:`Filters` value."""
    if not log.is_file():
        raise AuditError(f"audit log {log} does not exist or is not a file", hint="pass the log with --log FILE")
    conn = None
    if index and not flt.is_empty():
        try:
            conn = Index(log).update()
        except (sqlite3.Error, OSError, AuditError):
            conn = None  # read-only directory, broken database, lock timeout: fall back to scanning, same results
    return _run(log, flt, conn)


def _run(log: Path, flt: Filters, conn: sqlite3.Connection | None) -> Iterator[Record]:
    if conn is None:
        for _, line in _scan(log):
            rec = _decode(line)
            if rec is not None and flt.matches(rec):
                yield rec
        return
    try:
        with open(log, "rb", buffering=0) as fh:
            fd = fh.fileno()
            for _, off, length in _candidates(conn, flt):
                # One pread of exactly the line: a buffered seek + read fills (and throws away) 8 KiB each time.
                rec = _decode(os.pread(fd, length, off))
                if rec is not None and flt.matches(rec):
                    yield rec
    finally:
        conn.close()


@dataclass(frozen=True)
class Located:
    record: Record
    line: int
    hash: str  # hex leaf hash of the line


def find_record(log: Path, seq: int, *, index: bool = True) -> Located | None:
    """The first record with ``seq`` (a tampered log may hold several; ``verify`` says so), or None."""
    log = Path(log)
    if not log.is_file():
        raise AuditError(f"audit log {log} does not exist or is not a file", hint="pass the log with --log FILE")
    if index:
        try:
            conn = Index(log).update()
        except (sqlite3.Error, OSError, AuditError):
            conn = None
        if conn is not None:
            try:
                row = conn.execute("SELECT line, off, len FROM rec WHERE seq = ? ORDER BY line LIMIT 1",
                                   (seq,)).fetchone()
            finally:
                conn.close()
            if row is None:
                return None
            with open(log, "rb") as fh:
                fh.seek(row[1])
                line = fh.read(row[2])
            rec = _decode(line)
            if rec is not None and rec.get("seq") == seq:
                return Located(rec, row[0], leaf_hash(line).hex())
    for line_no, line in _scan(log):
        rec = _decode(line)
        if rec is not None and rec.get("seq") == seq:
            return Located(rec, line_no, leaf_hash(line).hex())
    return None

