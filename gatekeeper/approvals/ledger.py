"""The server's ledger of stored approvals: which are live, which are used up, and an index to find them fast.

Approvals live in the repository (``refs/gatekeeper/approvals/``) and stay there as the record. Reading all of them on
every push would let anyone who may store approvals make every protected push slow, and would keep counting an approval
whose change already landed. So the hook keeps this ledger beside the repository (``REPO.git/gatekeeper/approvals/``):

* ``live/<person>/<commit>.json``: one small file per approval that can still count (stored through the gate, not
  expired, not withdrawn, not consumed on every ref it names);
* ``paths/<xx>/<sha256 of ref and path>``: for each path an approval changes, the approvals (``person/commit``) for
  that ref (or ref pattern, listed in ``patterns``) that change it. A push looks up only the paths it changes on the
  refs it updates, so its cost follows the approvals about *its* content, never the number stored;
* ``dead/<commit>.json``: why an approval stopped counting (consumed on a ref with the audit record, withdrawn,
  expired), so a refusal can say "already used";
* ``version``: written once the ledger was built (from the approval refs already in the repository, on first use).

An approval is **consumed** on a ref when a push that counted it lands (the hook exits 0 after recording the decision):
from then on it does not count on that ref, so re-applying the same content later (after a revert, or on a ref reset
back) needs a fresh approval. A refused push consumes nothing, so a retry still uses it. An approval for one ref dies
when consumed; one for a ref pattern (``refs/heads/release/**``) dies on each ref it was used on.

Writes take an exclusive ``flock`` on ``lock``; files are replaced durably (:func:`gatekeeper.fsutil.replace_file`),
index lines appended with one ``write`` and ``fsync``. Readers need no lock. An entry whose approval commit cannot be
read (a push refused after the ledger was written) simply never counts. The audit log, not this ledger, is the
evidence: ``audit verify --approvals`` re-derives consumption from the records alone.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from gatekeeper.approvals.statement import format_time, parse_time
from gatekeeper.errors import GatekeeperError
from gatekeeper.fsutil import fsync_dir, replace_file

if TYPE_CHECKING:
    from gatekeeper.approvals.store import StoredApproval

__all__ = ["Ledger", "LedgerError", "LiveEntry", "LedgerUpdate"]

LEDGER_VERSION = "1\n"
# A path file with this many stale lines (approvals no longer live) is rewritten without them at the next write.
COMPACT_AFTER = 16
# Keys of one lookup that fall in one index folder, from which listing the folder beats probing each key's file.
_LIST_FOLDER_FROM = 8


class LedgerError(GatekeeperError):
    default_hint = "tell your gatekeeper admin: the approvals ledger in REPO.git/gatekeeper/approvals is not writable"


@dataclass(frozen=True)
class LiveEntry:
    """What the ledger knows about one live approval (enough to skip it without reading the repository)."""

    commit: str
    approval_ref: str
    person: str
    target: str  # the statement's ref or ref pattern
    expires: datetime
    consumed_on: dict[str, int | None] = field(default_factory=dict)  # ref -> audit record (pattern approvals)

    def to_bytes(self) -> bytes:
        doc = {"commit": self.commit, "approval_ref": self.approval_ref, "person": self.person, "for": self.target,
               "expires": format_time(self.expires), "consumed_on": self.consumed_on}
        return json.dumps(doc, sort_keys=True).encode() + b"\n"

    @classmethod
    def from_bytes(cls, data: bytes) -> LiveEntry:
        doc = json.loads(data)
        return cls(doc["commit"], doc["approval_ref"], doc["person"], doc["for"], parse_time(doc["expires"]),
                   dict(doc.get("consumed_on") or {}))

    @property
    def is_pattern(self) -> bool:
        return any(ch in self.target for ch in "*?[")


@dataclass
class LedgerUpdate:
    """What one landed push changes in the ledger; applied at once by :meth:`Ledger.apply`."""

    add: list[tuple[StoredApproval, str | None]] = field(default_factory=list)  # (approval, dead-on-arrival reason)
    consume: list[tuple[str, str]] = field(default_factory=list)  # (approval commit, ref it landed on)
    withdraw: list[tuple[str, str]] = field(default_factory=list)  # (approval commit, withdrawn by)
    expired: set[str] = field(default_factory=set)  # live commits seen expired while deciding
    gone: set[str] = field(default_factory=set)  # live commits whose approval is not in the repository

    def __bool__(self) -> bool:
        return bool(self.add or self.consume or self.withdraw or self.expired or self.gone)


def _path_key(target: str, path: bytes) -> str:
    return hashlib.sha256(target.encode() + b"\0" + path).hexdigest()


class Ledger:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._stale: dict[str, set[str]] = {}  # path key -> index lines whose approval is no longer live

    @classmethod
    def for_repository(cls, git_dir: Path) -> Ledger:
        return cls(Path(git_dir) / "gatekeeper" / "approvals")

    @property
    def built(self) -> bool:
        return (self.directory / "version").is_file()

    # -- reading (no lock) -----------------------------------------------------------------------------------------

    def live_for_paths(self, ref: str, paths: Iterable[bytes], covers: Callable[[str, str], bool],
                       ) -> tuple[list[LiveEntry], list[tuple[str, str]]]:
        """The live approvals for ``ref`` (or a pattern that ``covers`` it) that change at least one of ``paths``
        (each once), and (person, why) for indexed ones that stopped counting (until compacted away)."""
        seen: dict[str, LiveEntry] = {}
        dead: dict[str, tuple[str, str]] = {}
        targets = [ref] + [p for p in self._read_lines(self.directory / "patterns") if covers(p, ref)]
        keys = [_path_key(t, p) for t in dict.fromkeys(targets) for p in paths]
        indexed = self._indexed(keys)
        for key in keys:
            if key not in indexed:
                continue
            for line in self._read_lines(self.directory / "paths" / key[:2] / key):
                if line in seen or line in dead:
                    continue
                entry = self._live(line)
                if entry is None:
                    self._stale.setdefault(key, set()).add(line)
                    person, _, commit = line.partition("/")
                    dead[line] = (person, self.dead_reason(commit) or "no longer counts")
                    continue
                seen[line] = entry
        return list(seen.values()), list(dead.values())

    def _indexed(self, keys: list[str]) -> set[str]:
        """The path keys that may have an index file: the rest have none, so reading them would only fail with
        FileNotFoundError. A push of 50,000 paths otherwise pays 50,000 failed opens; a listing of each folder that
        many keys fall in answers them together (a folder few keys fall in is cheaper to probe key by key). A folder
        that cannot be listed keeps all its keys, so reading them reports the problem as before."""
        root = self.directory / "paths"
        try:
            folders = set(os.listdir(root))
        except FileNotFoundError:
            return set()
        except OSError:
            return set(keys)
        by_folder: dict[str, list[str]] = {}
        for key in keys:
            if key[:2] in folders:
                by_folder.setdefault(key[:2], []).append(key)
        out: set[str] = set()
        for folder, wanted in by_folder.items():
            if len(wanted) < _LIST_FOLDER_FROM:
                out.update(wanted)
                continue
            try:
                names = set(os.listdir(root / folder))
            except OSError:
                out.update(wanted)
                continue
            out.update(k for k in wanted if k in names)
        return out

    def live_of(self, person: str) -> list[LiveEntry]:
        """Every live approval of ``person`` (bounded: at most ``max_live_per_person`` per ref)."""
        folder = self.directory / "live" / person
        try:
            names = sorted(os.listdir(folder))
        except FileNotFoundError:
            return []
        entries = [self._live(f"{person}/{name[:-5]}") for name in names if name.endswith(".json")]
        return [e for e in entries if e is not None]

    def dead_reason(self, commit: str) -> str | None:
        try:
            return str(json.loads((self.directory / "dead" / f"{commit}.json").read_bytes())["why"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _live(self, line: str) -> LiveEntry | None:
        person, _, commit = line.partition("/")
        try:
            return LiveEntry.from_bytes((self.directory / "live" / person / f"{commit}.json").read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise LedgerError(f"the approvals ledger entry {line} is unreadable: {exc}") from exc

    @staticmethod
    def _read_lines(path: Path) -> list[str]:
        try:
            return [ln for ln in path.read_text("ascii").split("\n") if ln]
        except FileNotFoundError:
            return []
        except (OSError, UnicodeDecodeError) as exc:
            raise LedgerError(f"the approvals ledger index {path.name} is unreadable: {exc}") from exc

    # -- writing (under the lock) ----------------------------------------------------------------------------------

    def build(self, approvals: Sequence[tuple[StoredApproval, str | None]]) -> None:
        """Create the ledger from the approvals already in the repository: (approval, reason it is dead or None)."""
        with self._locked():
            if self.built:
                return
            update = LedgerUpdate(add=list(approvals))
            self._apply(update, seq=None)
            replace_file(self.directory / "version", LEDGER_VERSION.encode(), mode=0o644)
            fsync_dir(self.directory)

    def apply(self, update: LedgerUpdate, *, seq: int | None) -> None:
        """Record what a landed push did (``seq``: its audit record)."""
        if not update and not self._stale:
            return
        with self._locked():
            try:
                self._apply(update, seq=seq)
            except OSError as exc:
                raise LedgerError(f"cannot update the approvals ledger {self.directory}: {exc.strerror or exc}") \
                    from exc

    def _apply(self, update: LedgerUpdate, *, seq: int | None) -> None:
        record = f" (audit record #{seq})" if seq is not None else ""
        for approval, dead in update.add:
            st = approval.statement
            if dead is not None:
                self._bury(approval.commit, dead)  # indexed all the same: a refusal can say why it does not count
            else:
                entry = LiveEntry(approval.commit, approval.ref, st.approver, st.ref, st.expires)
                folder = self.directory / "live" / st.approver
                folder.mkdir(parents=True, exist_ok=True)
                replace_file(folder / f"{approval.commit}.json", entry.to_bytes(), mode=0o644)
            if st.is_pattern() and st.ref not in self._read_lines(self.directory / "patterns"):
                self._append_line(self.directory / "patterns", st.ref)
            for path in {c.path for c in st.changes}:
                key = _path_key(st.ref, path)
                self._append_line(self.directory / "paths" / key[:2] / key, f"{st.approver}/{approval.commit}")
        for commit, ref in update.consume:
            live = self._find(commit)
            if live is None:
                continue
            if live.is_pattern:
                consumed = {**live.consumed_on, ref: seq}
                replace_file(self._live_path(live), LiveEntry(
                    live.commit, live.approval_ref, live.person, live.target, live.expires, consumed,
                ).to_bytes(), mode=0o644)
            else:
                self._kill(live, f"already used on {ref}{record}")
        for commit, by in update.withdraw:
            live = self._find(commit)
            if live is not None:
                self._kill(live, f"withdrawn by {by}{record}")
            else:
                self._bury(commit, f"withdrawn by {by}{record}")
        for commit in update.expired:
            live = self._find(commit)
            if live is not None:
                self._kill(live, f"expired at {format_time(live.expires)}")
        for commit in update.gone:
            live = self._find(commit)
            if live is not None:
                self._kill(live, "its approval commit is not in the repository (the push that stored it failed)")
        for key, lines in self._stale.items():
            self._compact(key, lines)
        self._stale.clear()
        fsync_dir(self.directory)

    def _find(self, commit: str) -> LiveEntry | None:
        live = self.directory / "live"
        try:
            people = os.listdir(live)
        except FileNotFoundError:
            return None
        for person in people:
            entry = self._live(f"{person}/{commit}")
            if entry is not None:
                return entry
        return None

    def _live_path(self, entry: LiveEntry) -> Path:
        return self.directory / "live" / entry.person / f"{entry.commit}.json"

    def _kill(self, entry: LiveEntry, why: str) -> None:
        self._bury(entry.commit, why)
        try:
            os.unlink(self._live_path(entry))
        except FileNotFoundError:
            pass

    def _bury(self, commit: str, why: str) -> None:
        folder = self.directory / "dead"
        folder.mkdir(parents=True, exist_ok=True)
        replace_file(folder / f"{commit}.json", json.dumps({"why": why}).encode() + b"\n", mode=0o644)

    def _compact(self, key: str, stale: set[str]) -> None:
        path = self.directory / "paths" / key[:2] / key
        lines = self._read_lines(path)
        if sum(line in stale for line in lines) < min(COMPACT_AFTER, len(lines)):
            return
        kept = [line for line in lines if line not in stale and self._live(line) is not None]
        replace_file(path, "".join(f"{line}\n" for line in kept).encode(), mode=0o644)

    @staticmethod
    def _append_line(path: Path, line: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)

    def _locked(self) -> _Lock:
        return _Lock(self.directory)


class _Lock:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.fd = -1

    def __enter__(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(self.directory / "lock", os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except OSError as exc:
            raise LedgerError(f"cannot lock the approvals ledger {self.directory}: {exc.strerror or exc}") from exc

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)
