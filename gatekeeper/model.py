"""Plain, typed values that flow between gatekeeper's modules (no I/O, no third-party imports).

Object ids are lowercase hex strings (40 characters in SHA-1 repositories, 64 in SHA-256 ones); the null id is all
zeros of the same length. Paths inside a repository are raw ``bytes`` exactly as git stores them: they are never
round-tripped through text output, so quoting, newlines or non-UTF-8 bytes cannot hide a path from a rule.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import NamedTuple, NewType

ObjectId = NewType("ObjectId", str)

# git tree entry modes
MODE_ABSENT = 0
MODE_TREE = 0o040000
MODE_BLOB = 0o100644
MODE_EXEC = 0o100755
MODE_LINK = 0o120000
MODE_GITLINK = 0o160000


def is_null(oid: str) -> bool:
    """True for git's null id of any hash length ("all zeros of the line's length")."""
    return bool(oid) and oid.count("0") == len(oid)


class UpdateKind(str, enum.Enum):
    CREATE = "create"
    FAST_FORWARD = "fast-forward"
    FORCE = "force"  # non-fast-forward
    DELETE = "delete"
    NOOP = "noop"  # old == new, or deleting a ref that does not exist


@dataclass(frozen=True)
class RefUpdate:
    """One line of pre-receive/post-receive stdin."""

    old: ObjectId
    new: ObjectId
    ref: str


class Change(NamedTuple):
    """One entry of a canonical change set: a path whose (mode, id) differs between two trees.

    No rename detection: a move is a deletion of the old path plus an addition of the new one, so both paths are
    checked against the rules. ``old_mode``/``new_mode`` is ``MODE_ABSENT`` and the id is the null id when the path
    does not exist on that side. A NamedTuple, not a dataclass: a big push builds 100k of them on the hook's hot path,
    and tuples are several times cheaper to create; they also sort by path first, which is the canonical order.
    """

    path: bytes
    old_mode: int
    old_id: str
    new_mode: int
    new_id: str

    def display_path(self) -> str:
        return display_path(self.path)


class OddMode(NamedTuple):
    """A tree entry whose raw mode is not one git writes (``100600``, ``120755``, ...): it is judged by what git's
    checkout makes of it (:func:`gatekeeper.checkout.canon_mode`), and is itself a finding."""

    path: bytes
    mode: int  # the raw mode as stored in the tree
    id: str


def display_path(path: bytes) -> str:
    """A path made safe for one line of terminal output: escapes control characters and undecodable bytes."""
    text = path.decode("utf-8", "backslashreplace")
    if text.isprintable():  # the common case, checked in C
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


class Verdict(str, enum.Enum):
    """What a content detector concluded about a blob or file."""

    MALICIOUS = "malicious"  # refused on every ref; no approval overrides it
    REVIEW = "review-required"  # a protected change on protected refs; recorded elsewhere
    UNSCANNABLE = "unscannable"  # refused by default (policy may downgrade to review-required)
    HINT = "hint"  # shown to reviewers, never blocks
    # Not a content verdict: what git or a checkout would make of the push cannot be reviewed (an odd tree mode, a
    # Windows short name, object substitution); refused on the ref it applies to, no approval or break-glass lifts it.
    REFUSED = "refused"


@dataclass(frozen=True)
class Finding:
    """A detector's result with evidence a reviewer can act on.

    ``path`` is the repository path (or file path for ``gatekeeper scan``); a member inside an archive is written
    ``outer.zip!inner/data.pkl``. ``evidence`` holds short lines such as ``global os.system at offset 112`` or the
    chain of files a remote-code trigger pulls in.
    """

    verdict: Verdict
    path: str
    detector: str
    message: str
    evidence: tuple[str, ...] = ()
    blob_id: str | None = None


@dataclass(frozen=True)
class Identity:
    """Who pushes, as established by the server's authentication layer (never by commits or push options)."""

    user: str
    source: str  # e.g. "gitlab:GL_USERNAME", "gitea:GITEA_PUSHER_NAME", "http:REMOTE_USER", "os:getpwuid"
    is_deploy_key: bool = False
    extra: dict[str, str] = field(default_factory=dict)
