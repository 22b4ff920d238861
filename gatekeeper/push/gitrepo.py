"""Read-only access to the repository being pushed to. The only module that imports pygit2 or reads ``GIT_*``.

Why the care:

* Pushed objects live in a quarantine directory until pre-receive succeeds; libgit2 sees them only when the repository
  is opened with ``RepositoryOpenFlag.FROM_ENV`` (it then honours ``GIT_OBJECT_DIRECTORY`` and
  ``GIT_ALTERNATE_OBJECT_DIRECTORIES``). ``GIT_QUARANTINE_PATH`` is absent on GitLab, so it is never relied on.
* libgit2 does not know about git's "no ref updates from quarantine" rule: this module never writes anything.
* Paths are returned as raw bytes from tree entries, never parsed from ``git diff`` text (quoting bypasses).
* Change sets come from a tree-to-tree diff without rename detection and without ``IGNORE_SUBMODULES``, with
  type changes included, so moves, deletions, mode flips, symlink swaps and gitlink updates are all visible.
* Modes are git's, not libgit2's: every mode this module returns is canonicalised the way git's checkout does it
  (:func:`gatekeeper.checkout.canon_mode`; libgit2 reports raw modes in diffs and its ``TreeEntry.filemode`` maps
  ``120755`` to an executable file where git sees a symlink), and callers can collect the odd raw modes it met. Tree
  listings parse the raw tree object for that reason.
"""

from __future__ import annotations

import mmap
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import pygit2
from pygit2.enums import DiffOption, ObjectType, RepositoryOpenFlag, SortMode

from gatekeeper.errors import GitAccessError
from gatekeeper.checkout import canon_mode, fold_path, is_dotgit, is_odd_mode
from gatekeeper.model import MODE_ABSENT, MODE_TREE, Change, ObjectId, OddMode
from gatekeeper.push.tree_listings import Entry, TreeListings

_DIFF_FLAGS = DiffOption.INCLUDE_TYPECHANGE | DiffOption.SKIP_BINARY_CHECK

# git's well-known empty tree id in SHA-1 repositories (pygit2 1.21 cannot open SHA-256 repositories at all).
_EMPTY_TREE_SHA1 = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"

# One tree entry as git stores it (tree-walk.c decode_tree_entry): octal mode, space, name, NUL, the raw object id.
_TREE_ENTRY_SHA1 = re.compile(rb"([0-7]+) ([^\x00]*)\x00(.{20})", re.DOTALL)
_TREE_ENTRY_SHA256 = re.compile(rb"([0-7]+) ([^\x00]*)\x00(.{32})", re.DOTALL)

# One tree object this big holds ~500k entries; no real repository has one, and compressed it may be a tiny push.
MAX_TREE_BYTES = 16 * 1024 * 1024
# Blobs at least this big are streamed to a temporary file and mapped, never held in memory (issue: a push of one
# 1 GiB blob must peak under 256 MiB). Below it, one in-memory read is cheaper than a process and a mapping.
SPOOL_MIN_BYTES = 16 << 20
# git streams a non-delta packed blob through small windows, but rebuilds a delta-compressed one whole in memory: a
# 1 MB push can carry a delta that expands to gigabytes. The reader's address space is capped, so such a blob fails to
# read (and the push is refused) instead of taking the server's memory.
CAT_FILE_MAX_ADDRESS_SPACE = 768 << 20
_DIFF_MEMO_ENTRIES = 4  # change sets remembered per Repo (each can hold every path of a big push)

_TYPE_NAMES = {
    ObjectType.COMMIT: "commit",
    ObjectType.TREE: "tree",
    ObjectType.BLOB: "blob",
    ObjectType.TAG: "tag",
}


class MalformedTree(GitAccessError):
    """A tree object whose bytes are not git's tree entries (``hash-object --literally -t tree`` writes anything)."""

    def __init__(self, message: str, *, at: int) -> None:
        super().__init__(message)
        self.at = at


@dataclass(frozen=True)
class CommitInfo:
    id: ObjectId
    parents: tuple[ObjectId, ...]
    author_email: str
    author_name: str
    committer_email: str
    committer_name: str


def read_push_options(env: Mapping[str, str]) -> tuple[str, ...]:
    """``git push -o`` values (unauthenticated client strings). Missing count and ``0`` mean the same (GitLab sets
    nothing when no options were sent; git always exports ``GIT_PUSH_OPTION_COUNT``)."""
    try:
        count = int(env.get("GIT_PUSH_OPTION_COUNT", "0") or "0")
    except ValueError:
        return ()
    return tuple(env.get(f"GIT_PUSH_OPTION_{i}", "") for i in range(max(0, min(count, 1000))))


def hook_git_dir(env: Mapping[str, str]) -> str:
    """The repository a hook runs in: ``$GIT_DIR`` (git exports it, often literally ``.``), else the cwd."""
    return env.get("GIT_DIR") or "."


class Repo:
    """A read-only view of one repository (bare or not)."""

    def __init__(self, repo: pygit2.Repository, *, incoming: str | None = None) -> None:
        self._repo = repo
        self._empty_tree: ObjectId | None = None
        self._incoming = incoming  # the quarantine object directory of the push being received, if any
        self._diff_memo: dict[tuple[str | None, str | None], tuple[list[Change], list[OddMode]]] = {}

    # -- opening ---------------------------------------------------------------------------------------------------

    @classmethod
    def open_for_hook(cls, env: Mapping[str, str]) -> Repo:
        """Open the repository a server hook runs in, with the quarantine visible (FROM_ENV)."""
        path = hook_git_dir(env)
        try:
            repo = pygit2.Repository(path, flags=RepositoryOpenFlag.FROM_ENV)
        except (pygit2.GitError, ValueError, KeyError) as exc:
            raise _open_error(path, exc) from exc
        return cls(repo, incoming=_incoming_objects(env, repo))

    @classmethod
    def open(cls, path: str | Path) -> Repo:
        """Open a repository for client-side commands (``check``, ``approve``), searching upwards like git."""
        try:
            found = pygit2.discover_repository(str(path))
            if found is None:
                raise GitAccessError(f"not a git repository: {path}", hint="run this inside a clone")
            return cls(pygit2.Repository(found))
        except (pygit2.GitError, ValueError, KeyError) as exc:
            raise _open_error(str(path), exc) from exc

    @property
    def path(self) -> Path:
        return Path(self._repo.path)

    @property
    def is_bare(self) -> bool:
        return bool(self._repo.is_bare)

    @property
    def workdir(self) -> Path | None:
        return Path(self._repo.workdir) if self._repo.workdir else None

    def work_trees(self) -> list[Path]:
        """Every work tree a push can write into: the main one (non-bare) and the linked ones (``git worktree add``,
        which bare repositories have too).

        Raises:
            GitAccessError: a worktree record that cannot be read (where it writes is unknown).
        """
        trees = [Path(self._repo.workdir)] if self._repo.workdir else []
        try:
            for name in self._repo.list_worktrees():
                trees.append(Path(self._repo.lookup_worktree(name).path))
        except (pygit2.GitError, KeyError, ValueError) as exc:
            raise GitAccessError(f"the repository's worktree records could not be read: {exc}",
                                 hint="an admin should check `git worktree list` and `git worktree prune`") from exc
        return trees

    def config_value(self, key: str) -> str | None:
        try:
            value = self._repo.config[key]
        except KeyError:
            return None
        return str(value)

    # -- objects ---------------------------------------------------------------------------------------------------

    def object_type(self, oid: str) -> str | None:
        """``commit``/``tree``/``blob``/``tag``, or None if the object is not in the database (dangling deletes)."""
        try:
            kind, _size = self._repo.odb.read_header(oid)
        except (KeyError, ValueError, pygit2.GitError):
            return None
        return _TYPE_NAMES.get(kind)

    def _lookup(self, oid: str) -> pygit2.Object | None:
        try:
            return self._repo[oid]
        except (KeyError, ValueError, pygit2.GitError):
            return None

    def peel(self, oid: str) -> tuple[str, ObjectId | None]:
        """Follow tags. Returns (final type, id): ``("commit", c)``, ``("tree", t)``, ``("blob", b)`` or
        ``("missing", None)``. Tag chains are bounded to defeat tag loops crafted with hash collisions."""
        for _ in range(64):
            # The type from the object header first: a ref (or tag) naming a huge blob must not inflate it.
            kind = self.object_type(oid)
            if kind is None:
                return "missing", None
            if kind != "tag":
                return kind, ObjectId(oid)
            tag = self._lookup(oid)
            if not isinstance(tag, pygit2.Tag):
                return "missing", None
            oid = str(tag.target)
        raise GitAccessError(f"tag chain starting at {oid} is too deep")

    def commit_tree(self, commit: str) -> ObjectId:
        obj = self._lookup(commit)
        if not isinstance(obj, pygit2.Commit):
            raise GitAccessError(f"{commit} is not a commit in this repository")
        return ObjectId(str(obj.tree_id))

    def commit_info(self, commit: str) -> CommitInfo:
        obj = self._lookup(commit)
        if not isinstance(obj, pygit2.Commit):
            raise GitAccessError(f"{commit} is not a commit in this repository")
        return CommitInfo(
            id=ObjectId(str(obj.id)),
            parents=tuple(ObjectId(str(p)) for p in obj.parent_ids),
            author_email=_decoded(obj.author.raw_email),
            author_name=_decoded(obj.author.raw_name),
            committer_email=_decoded(obj.committer.raw_email),
            committer_name=_decoded(obj.committer.raw_name),
        )

    def commit_raw(self, commit: str, *, max_bytes: int = 1 << 20) -> bytes:
        """The commit object's raw bytes (headers and message), as its signature covers them.

        Raises:
            GitAccessError: not a commit, or bigger than ``max_bytes``.
        """
        obj = self._lookup(commit)
        if not isinstance(obj, pygit2.Commit):
            raise GitAccessError(f"{commit} is not a commit in this repository")
        data = bytes(obj.read_raw())
        if len(data) > max_bytes:
            raise GitAccessError(f"commit {commit} is over {max_bytes} bytes")
        return data

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        if ancestor == descendant:
            return True
        try:
            return bool(self._repo.descendant_of(descendant, ancestor))
        except (KeyError, ValueError, pygit2.GitError):
            return False

    def merge_base(self, a: str, b: str) -> ObjectId | None:
        try:
            base = self._repo.merge_base(a, b)
        except (KeyError, ValueError, pygit2.GitError):
            return None
        return None if base is None else ObjectId(str(base))

    def ref_target(self, ref: str) -> ObjectId | None:
        try:
            reference = self._repo.references.get(ref)
        except (KeyError, ValueError, pygit2.GitError):
            return None
        if reference is None:
            return None
        try:
            resolved = reference.resolve()
        except (KeyError, ValueError, pygit2.GitError):
            return None
        return ObjectId(str(resolved.target))

    def ref_names(self) -> list[str]:
        """The names of every ref in the repository (symbolic ones included)."""
        return [str(name) for name in self._repo.listall_references()]

    def refs_with_prefix(self, prefix: str) -> list[tuple[str, ObjectId]]:
        """(name, target) of direct refs under ``prefix`` (libgit2 has no prefix iterator; filter by name)."""
        out: list[tuple[str, ObjectId]] = []
        for name in self._repo.listall_references():
            if not name.startswith(prefix):
                continue
            target = self.ref_target(name)
            if target is not None:
                out.append((name, target))
        return out

    def read_blob(self, oid: str, *, max_bytes: int | None = None) -> bytes:
        """The whole blob in memory, in one object-database read. ``max_bytes`` is checked against the object header
        *before* anything is inflated."""
        size = self.blob_size(oid)
        if size is None:
            raise GitAccessError(f"{oid} is not a blob in this repository")
        if max_bytes is not None and size > max_bytes:
            raise GitAccessError(f"blob {oid} is {size} bytes, over the {max_bytes}-byte cap")
        return self._read_whole(oid)

    def read_small_blob(self, oid: str, size: int) -> bytes:
        """The content of blob ``oid`` whose header said ``size``, below :data:`SPOOL_MIN_BYTES`: one read, no second
        look at the header (:meth:`scannable_blob` for any size)."""
        if size >= SPOOL_MIN_BYTES:
            raise GitAccessError(f"blob {oid} is {size} bytes: too big to read into memory at once")
        return self._read_whole(oid)

    def _read_whole(self, oid: str) -> bytes:
        try:
            kind, data = self._repo.odb.read(oid)
        except (KeyError, ValueError, pygit2.GitError) as exc:
            raise GitAccessError(f"blob {oid} could not be read: {exc}") from exc
        if kind != ObjectType.BLOB:
            raise GitAccessError(f"{oid} is not a blob in this repository")
        return bytes(data)

    # -- blob content for scanning: bounded memory whatever the blob size -----------------------------------------

    @contextmanager
    def scannable_blob(self, oid: str, size: int, *, spool_dir: Path | None = None) -> Iterator[bytes | mmap.mmap]:
        """The content of blob ``oid`` (whose header said ``size``) for the detectors, in memory bounded by
        :data:`SPOOL_MIN_BYTES` whatever the blob's size.

        Small blobs: one object-database read. Big ones: ``git cat-file blob`` streams the blob (git inflates large
        blobs in chunks) straight into an unlinked temporary file, which is then mapped read-only: the detectors
        touch only the pages they read (headers and pickles of a checkpoint), and the page cache, not the hook,
        holds the rest. libgit2 cannot do this: it inflates a whole object into memory, and copies it again.
        """
        if size < SPOOL_MIN_BYTES:
            yield self._read_whole(oid)  # the caller read the header already: one object-database read
            return
        import tempfile

        with tempfile.TemporaryFile(dir=spool_dir, prefix="gatekeeper-blob-") as spool:
            self._stream_blob_into(oid, size, spool)
            mapped = mmap.mmap(spool.fileno(), 0, access=mmap.ACCESS_READ) if size else None
            try:
                yield mapped if mapped is not None else b""
            finally:
                if mapped is not None:
                    try:
                        mapped.close()
                    except BufferError:  # a view of it is still referenced; it is unmapped when collected
                        pass

    def _stream_blob_into(self, oid: str, size: int, out: IO[bytes]) -> None:
        loose = self._loose_object_path(oid)
        if loose is not None:
            self._inflate_loose_into(loose, oid, size, out)
        else:
            self._cat_file_into(oid, out)
        written = os.fstat(out.fileno()).st_size
        if written != size:
            raise GitAccessError(f"blob {oid} could not be read ({written} of {size} bytes)")

    def _loose_object_dirs(self) -> list[Path]:
        """Where git looks for objects, quarantine first (receive-pack exports the quarantine as
        GIT_OBJECT_DIRECTORY and the repository's own store as an alternate)."""
        dirs = [Path(os.environ["GIT_OBJECT_DIRECTORY"])] if os.environ.get("GIT_OBJECT_DIRECTORY") else []
        dirs += [Path(d) for d in os.environ.get("GIT_ALTERNATE_OBJECT_DIRECTORIES", "").split(os.pathsep) if d]
        dirs.append(Path(self._repo.path) / "objects")
        return dirs

    def _loose_object_path(self, oid: str) -> Path | None:
        for directory in self._loose_object_dirs():
            candidate = directory / oid[:2] / oid[2:]
            if candidate.is_file():
                return candidate
        return None

    @staticmethod
    def _inflate_loose_into(path: Path, oid: str, size: int, out: IO[bytes]) -> None:
        """A loose object is one zlib stream of ``blob <size>\\0<content>``: inflate it in 1 MiB steps (git would
        map the whole file, and hold as much of it in memory as the blob is big)."""
        import zlib

        header = f"blob {size}\0".encode()
        dec = zlib.decompressobj()
        head = b""  # the object header, until it is complete
        try:
            with open(path, "rb") as fh:
                pending = b""
                while not dec.eof:
                    if not pending:
                        pending = fh.read(1 << 20)
                        if not pending:
                            break
                    data = dec.decompress(pending, 1 << 20)  # bounded output: a loose object can be a bomb too
                    pending = dec.unconsumed_tail
                    if len(head) < len(header):
                        take = len(header) - len(head)
                        head, data = head + data[:take], data[take:]
                        if len(head) == len(header) and head != header:
                            raise GitAccessError(f"loose object {oid} is not a blob of {size} bytes")
                    if data:
                        out.write(data)
        except (OSError, zlib.error) as exc:
            raise GitAccessError(f"loose object {oid} could not be read: {exc}") from exc
        if not dec.eof or head != header:
            raise GitAccessError(f"loose object {oid} is truncated")
        out.flush()

    def _cat_file_into(self, oid: str, out: IO[bytes]) -> None:
        """A packed blob: ``git cat-file`` streams a non-delta packed object through small pack windows."""
        import subprocess

        # --git-dir pins the repository; the process environment carries the quarantine (GIT_OBJECT_DIRECTORY and
        # GIT_ALTERNATE_OBJECT_DIRECTORIES), exactly what libgit2's FROM_ENV open honours. Small pack windows keep
        # git's own mapping of the pack bounded.
        argv = ["git", f"--git-dir={self._repo.path}", "-c", "core.packedGitWindowSize=16m",
                "-c", "core.packedGitLimit=64m", "-c", "core.bigFileThreshold=1m", "cat-file", "blob", oid]
        try:
            proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.PIPE, check=False,
                                  preexec_fn=_cap_address_space)
        except OSError as exc:
            raise GitAccessError(f"could not run git to read blob {oid}: {exc}") from exc
        if proc.returncode != 0:
            detail = proc.stderr.decode("utf-8", "replace").strip()[:200]
            raise GitAccessError(
                f"blob {oid} could not be read: {detail or 'git cat-file failed'}",
                hint="a delta-compressed blob is rebuilt in memory, within a cap of "
                     f"{CAT_FILE_MAX_ADDRESS_SPACE >> 20} MiB; push big files without deltas (they are not "
                     "deltified above core.bigFileThreshold), or ask an admin",
            )

    def blob_size(self, oid: str) -> int | None:
        """Size from the object header, without inflating the blob."""
        try:
            kind, size = self._repo.odb.read_header(oid)
        except (KeyError, ValueError, pygit2.GitError):
            return None
        return int(size) if kind == ObjectType.BLOB else None

    # -- trees and change sets -------------------------------------------------------------------------------------

    def empty_tree(self) -> ObjectId:
        """The id of the empty tree, computed (not written: pre-receive must not write objects)."""
        if self._empty_tree is None:
            self._empty_tree = ObjectId(_EMPTY_TREE_SHA1)
        return self._empty_tree

    def diff_trees(self, old_tree: str | None, new_tree: str | None, *,
                   odd: list[OddMode] | None = None) -> list[Change]:
        """The canonical change set between two trees (None = empty tree): sorted, one entry per differing path,
        modes as git's checkout sees them. Entries of the new side with a non-canonical mode go to ``odd``.

        Remembered for the last few pairs of tree ids (objects are immutable, so the key is exact): the analysis of a
        new ref and the content scan of its root commit ask for the same diff, once each."""
        if old_tree == new_tree:
            return []
        key = (old_tree, new_tree)
        cached = self._diff_memo.get(key)
        if cached is None:
            found_odd: list[OddMode] = []
            cached = (self._diff_trees_uncached(old_tree, new_tree, found_odd), found_odd)
            if len(self._diff_memo) >= _DIFF_MEMO_ENTRIES:
                self._diff_memo.pop(next(iter(self._diff_memo)))
            self._diff_memo[key] = cached
        if odd is not None:
            odd.extend(cached[1])
        return list(cached[0])

    def _diff_trees_uncached(self, old_tree: str | None, new_tree: str | None,
                             odd: list[OddMode] | None = None) -> list[Change]:
        old = self._tree(old_tree)
        new = self._tree(new_tree)
        if old is None and new is None:
            return []
        try:
            if old is None:
                assert new is not None
                diff = new.diff_to_tree(flags=_DIFF_FLAGS, swap=True)
            elif new is None:
                diff = old.diff_to_tree(flags=_DIFF_FLAGS)
            else:
                diff = old.diff_to_tree(new, flags=_DIFF_FLAGS)
        except (KeyError, ValueError, pygit2.GitError) as exc:
            raise GitAccessError(f"could not diff trees {old_tree} and {new_tree}: {exc}"
                                 + self._odd_tree_note(new_tree)) from exc
        return _canonical_changes(diff, null=self.null_id, odd=odd)

    def _odd_tree_note(self, tree: str | None, *, limit: int = 100_000) -> str:
        """Why libgit2 may have failed: a directory entry written with an odd mode (``040755``), which git reads as
        a tree and libgit2 as a blob. Bounded; '' when none is found."""
        seen = 0
        stack = [(b"", tree)] if tree else []
        while stack and seen < limit:
            prefix, oid = stack.pop()
            try:
                entries = self._raw_entries(oid)
            except GitAccessError:
                continue
            for name, raw, child in entries:
                seen += 1
                if canon_mode(raw) == MODE_TREE:
                    if raw != MODE_TREE:
                        shown = (prefix + name).decode("utf-8", "backslashreplace")
                        return f" (tree entry {shown!r} has the non-canonical mode {raw:06o}, a crafted object)"
                    stack.append((prefix + name + b"/", child))
        return ""

    def _tree(self, tree: str | None) -> pygit2.Tree | None:
        if tree is None:
            return None
        if self.object_type(tree) != "tree":  # from the header: never inflate a blob posing as a tree
            raise GitAccessError(f"{tree} is not a tree in this repository")
        obj = self._lookup(tree)
        if not isinstance(obj, pygit2.Tree):
            raise GitAccessError(f"{tree} is not a tree in this repository")
        return obj

    @property
    def null_id(self) -> str:
        return "0" * 40

    def walk_new_commits(self, new: str, hide: Iterable[str], *, limit: int) -> list[ObjectId]:
        """Commits reachable from ``new`` but not from any of ``hide`` (``git rev-list new --not hide...``).

        Bounded by ``limit``: the caller turns an overflow into a refusal, never into a silent partial check.
        """
        return list(self.iter_new_commits(new, hide, limit=limit))

    def iter_new_commits(self, new: str, hide: Iterable[str], *, limit: int) -> Iterator[ObjectId]:
        """:meth:`walk_new_commits` one commit at a time, newest first (a caller may stop early); GitAccessError
        when the walk reaches commit number ``limit + 1``."""
        walker = self._repo.walk(new, SortMode.TOPOLOGICAL)
        for oid in hide:
            try:
                walker.hide(oid)
            except (KeyError, ValueError, pygit2.GitError):
                continue  # a ref pointing at a missing or non-commit object hides nothing
        for count, commit in enumerate(walker, 1):
            if count > limit:
                raise GitAccessError(f"more than {limit} new commits in one update")
            yield ObjectId(str(commit.id))

    def commit_blob_changes(self, commit: str, *, odd: list[OddMode] | None = None) -> list[Change]:
        """Entries a commit adds or changes relative to each of its parents (the empty tree for a root commit).

        For content scanning: every blob a pushed commit brings appears here, including blobs that a later commit
        of the same push removes again, and blobs introduced only by a merge commit.
        """
        info = self.commit_info(commit)
        tree = self.commit_tree(commit)
        if not info.parents:
            return self.diff_trees(None, tree, odd=odd)
        out: list[Change] = []
        for parent in info.parents:
            if self.object_type(parent) != "commit":
                continue  # a shallow or grafted parent: its tree is unknown, so everything counts as new
            out.extend(self.diff_trees(self.commit_tree(parent), tree, odd=odd))
        if not out and any(self.object_type(p) != "commit" for p in info.parents):
            out = self.diff_trees(None, tree, odd=odd)
        return out

    def _raw_entries(self, tree: str, *, limit: int | None = None) -> list[tuple[bytes, int, ObjectId]]:
        """(name, raw mode, id) of a tree's entries, parsed from the tree object the way git's ``decode_tree_entry``
        reads it (libgit2's ``TreeEntry.filemode`` normalises modes differently from git)."""
        data = self._tree_bytes(tree)
        entry = _TREE_ENTRY_SHA1 if len(tree) == 40 else _TREE_ENTRY_SHA256
        if limit is None:
            found = _tiled_entries(tree, data)
            if found is not None:
                modes: dict[bytes, int] = {}
                return cast(list[tuple[bytes, int, ObjectId]],
                            [(name, modes.get(mode) or modes.setdefault(mode, int(mode, 8)), raw_id.hex())
                             for mode, name, raw_id in found])
        out: list[tuple[bytes, int, ObjectId]] = []
        pos = 0
        for match in entry.finditer(data):
            if match.start() != pos:
                break
            out.append((match.group(2), int(match.group(1), 8), ObjectId(match.group(3).hex())))
            pos = match.end()
            if limit is not None and len(out) > limit:
                raise GitAccessError(f"tree {tree} has more than {limit} entries")
        if pos != len(data):
            raise MalformedTree(f"tree {tree} is malformed at byte {pos}", at=pos)
        return out

    def _tree_bytes(self, tree: str) -> bytes:
        """The raw bytes of tree object ``tree`` (capped at :data:`MAX_TREE_BYTES`, read from its header first)."""
        try:
            kind, size = self._repo.odb.read_header(tree)
            if kind == ObjectType.TREE and size > MAX_TREE_BYTES:
                raise GitAccessError(f"tree {tree} is {size} bytes, over the {MAX_TREE_BYTES}-byte cap for one tree")
            kind, raw = self._repo.odb.read(tree)
        except (KeyError, ValueError, pygit2.GitError) as exc:
            raise GitAccessError(f"{tree} is not a tree in this repository") from exc
        if kind != ObjectType.TREE:
            raise GitAccessError(f"{tree} is not a tree in this repository")
        return bytes(raw)

    def tree_paths_where(self, tree: str, keep: Callable[[bytes], bool], *,
                         listings: TreeListings | None = None) -> dict[bytes, tuple[int, str]]:
        """path -> (canonical mode, id) of the entries :meth:`iter_tree` yields whose file name passes ``keep``, in
        the same walk (later duplicates win, as in a dict built from ``iter_tree``). Only kept entries and subtrees
        cost more than the C parse of their tree: for a test on the name's ending, over a tree of many files.

        With ``listings`` (remembered under the same ``keep``), a subtree listed by an earlier push is not read
        again: a push reads only the trees it changed (push/tree_listings.py)."""
        if listings is not None and listings.keep is keep:
            return {path: (mode, oid) for path, mode, oid in self._listed(tree, keep, listings)}
        out: dict[bytes, tuple[int, str]] = {}
        canon: dict[bytes, int] = {}
        stack: list[tuple[bytes, str]] = [(b"", tree)]
        while stack:
            prefix, node = stack.pop()
            kept, subtrees, _ = self._tree_listing(node, keep, canon)
            for name, mode, oid in kept:
                out[prefix + name] = (mode, oid)
            for name, oid in subtrees:
                stack.append((prefix + name + b"/", oid))
        return out

    def _listed(self, tree: str, keep: Callable[[bytes], bool], listings: TreeListings) -> tuple[Entry, ...]:
        """The kept entries under ``tree`` (paths relative to it), each subtree taken whole from ``listings`` when
        remembered, else read and then remembered: a depth-first walk that finishes a tree after its subtrees (a
        tree is a fact about its id only when every subtree is; see :meth:`_tree_listing`)."""
        whole = listings.get(tree)
        if whole is not None:
            return whole
        canon: dict[bytes, int] = {}
        kept, subtrees, exact = self._tree_listing(tree, keep, canon)
        # Frames: [tree id, its name in its parent, its subtrees, next subtree to visit, entries so far, exact].
        # Subtrees in reverse, as the stack of tree_paths_where's plain walk pops them: entries come in the same
        # order, so where a malformed tree repeats a path the same one wins.
        stack: list[list[Any]] = [[tree, b"", subtrees[::-1], 0, list(kept), exact]]
        while True:
            frame = stack[-1]
            node, name, subtrees, i, entries, exact = frame
            if i < len(subtrees):
                frame[3] = i + 1
                child_name, child = subtrees[i]
                whole = listings.get(child)
                if whole is not None:
                    entries.extend((child_name + b"/" + path, mode, oid) for path, mode, oid in whole)
                    continue
                kept, grandchildren, child_exact = self._tree_listing(child, keep, canon)
                stack.append([child, child_name, grandchildren[::-1], 0, list(kept), child_exact])
                continue
            stack.pop()
            done = tuple(entries)
            if exact:
                listings.add(node, done)
            if not stack:
                return done
            parent = stack[-1]
            parent[4].extend((name + b"/" + path, mode, oid) for path, mode, oid in done)
            parent[5] = parent[5] and exact

    def _tree_listing(self, node: str, keep: Callable[[bytes], bool], canon: dict[bytes, int],
                      ) -> tuple[list[Entry], list[tuple[bytes, str]], bool]:
        """(kept entries, subtrees as (name, id)) of one tree, in its order, as :meth:`tree_paths_where` walks it,
        and whether that is a fact about the id alone, fit to remember: a well-formed tree without duplicate names
        whose tree-mode entries all name trees here."""
        found = _tiled_entries(node, self._tree_bytes(node))
        exact = found is not None
        if found is None:  # not a well-formed tree: the entry-by-entry parser says where it breaks
            found = [(b"%o" % raw, name, bytes.fromhex(oid)) for name, raw, oid in self._raw_entries(node)]
        elif len({name for _, name, _ in found}) != len(found):
            exact = False  # duplicate names: which one a reader takes depends on the order it walks in
        kept: list[Entry] = []
        subtrees: list[tuple[bytes, str]] = []
        for raw_mode, name, raw_id in found:
            mode = canon.get(raw_mode)
            if mode is None:
                mode = canon[raw_mode] = canon_mode(int(raw_mode, 8))
            if mode == MODE_TREE:
                oid = raw_id.hex()
                if self.object_type(oid) == "tree":
                    subtrees.append((name, oid))
                else:
                    exact = False  # missing here, or not a tree: not a fact about the id alone
            elif keep(name):
                kept.append((name, mode, raw_id.hex()))
        return kept, subtrees, exact

    def malformed_incoming_trees(self, *, limit: int) -> list[tuple[ObjectId, str]]:
        """(tree id, problem) for every tree object the push brings (the quarantine) that git's fsck calls an error
        and readers may disagree on: duplicate or unsorted entries, names that are empty, contain ``/``, or are
        ``.``, ``..`` or ``.git`` under some checkout's rules. The quarantine is not "the change" (it may hold base
        objects of a thin pack), but every new tree passes through it, which is what matters here. GitAccessError
        when it holds more than ``limit`` objects."""
        if not self._incoming:
            return []
        out: list[tuple[ObjectId, str]] = []
        for tree in self._incoming_trees(limit=limit):
            try:
                entries = self._raw_entries(tree)
            except MalformedTree as exc:  # bytes that are no tree at all (a pickle stored as a tree object)
                out.append((tree, f"its bytes are not tree entries (from byte {exc.at})"))
                continue
            problem = tree_shape_problem(entries)
            if problem is not None:
                out.append((tree, problem))
        return out

    def _incoming_trees(self, *, limit: int) -> list[ObjectId]:
        """Ids of the tree objects in the quarantine alone. ``git cat-file --batch-all-objects`` with the alternates
        cut off lists them in C, about four times faster than a ``read_header`` per object through pygit2 (measured
        0.08 s against 0.3 s for 50,000 objects). A small push (git unpacks fewer than ``receive.unpackLimit``
        objects, 100 by default, as loose files) is listed from its files instead: starting git costs more than
        reading a few headers."""
        assert self._incoming is not None
        loose = _loose_only_objects(self._incoming, limit=_LOOSE_LISTING_MAX)
        if loose is not None:
            if len(loose) > limit:
                raise GitAccessError(f"this push brings more than {limit} objects")
            trees = []
            for oid in loose:
                try:
                    kind, _ = self._repo.odb.read_header(oid)
                except (KeyError, ValueError, pygit2.GitError) as exc:
                    raise GitAccessError(f"cannot read the pushed object {oid}: {exc}") from exc
                if kind == ObjectType.TREE:
                    trees.append(ObjectId(oid))
            return trees
        env = {k: v for k, v in os.environ.items() if k not in ("GIT_ALTERNATE_OBJECT_DIRECTORIES",
                                                                  "GIT_QUARANTINE_PATH")}
        env["GIT_OBJECT_DIRECTORY"] = self._incoming
        import subprocess  # by need: a small push is listed above

        try:
            proc = subprocess.run(
                ["git", "--git-dir", str(self.path), "cat-file", "--batch-all-objects", "--unordered",
                 "--batch-check=%(objecttype) %(objectname)"],
                env=env, capture_output=True, check=False, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise GitAccessError(f"cannot list the pushed objects: {exc}") from exc
        if proc.returncode != 0:
            raise GitAccessError("cannot list the pushed objects: "
                                 + proc.stderr.decode("utf-8", "replace").strip()[:300])
        lines = proc.stdout.splitlines()
        if len(lines) > limit:
            raise GitAccessError(f"this push brings more than {limit} objects")
        return [ObjectId(line[5:].decode()) for line in lines if line.startswith(b"tree ")]

    def iter_tree(self, tree: str, *, odd: list[OddMode] | None = None,
                  each_tree_once: bool = False) -> Iterator[tuple[bytes, int, ObjectId]]:
        """(path, canonical mode, id) of every non-tree entry, recursively; odd raw modes go to ``odd``.

        ``each_tree_once`` enters every distinct subtree once, at the first path it is met (for content scanning:
        a "git bomb" of a million paths over a few shared trees then costs a few trees, not a million entries)."""
        stack: list[tuple[bytes, str]] = [(b"", tree)]
        entered: set[str] = {tree}
        while stack:
            prefix, node = stack.pop()
            for name, raw, oid in self._raw_entries(node):
                path = prefix + name
                mode = canon_mode(raw)
                if odd is not None and is_odd_mode(raw):
                    odd.append(OddMode(path, raw, oid))
                if mode == MODE_TREE:
                    if each_tree_once and oid in entered:
                        continue
                    entered.add(oid)
                    if self.object_type(oid) == "tree":
                        stack.append((path + b"/", oid))
                else:
                    yield path, mode, oid

    def tree_entries(self, tree: str, *, limit: int | None = None) -> list[tuple[bytes, int, ObjectId]]:
        """(name, canonical mode, id) of the top-level entries of ``tree`` (not recursive), in tree order;
        GitAccessError when there are more than ``limit``."""
        entries = self._raw_entries(tree, limit=limit)  # stops parsing past the limit: hostile trees are huge
        return [(name, canon_mode(raw), oid) for name, raw, oid in entries]

    def folders_spelled_alike(self, root: str, folder: bytes) -> list[tuple[bytes, str]]:
        """(path, tree id) of every folder of ``root`` that a case-insensitive checkout (Windows, macOS) merges with
        ``folder`` (``fold_path``), ``folder`` itself included when it exists; ``[(b"", root)]`` for the root."""
        found: list[tuple[bytes, str]] = [(b"", root)]
        for part in folder.split(b"/") if folder else []:
            want = fold_path(part)
            found = [((prefix + b"/" if prefix else b"") + name, oid)
                     for prefix, tree in found for name, mode, oid in self.tree_entries(tree)
                     if mode == MODE_TREE and fold_path(name) == want and self.object_type(oid) == "tree"]
        return found

    def resolve(self, rev: str) -> ObjectId:
        """The commit a revision expression (``origin/feature``, ``HEAD~2``, an id) names, for client commands."""
        try:
            obj = self._repo.revparse_single(rev)
        except (KeyError, ValueError, pygit2.GitError) as exc:
            raise GitAccessError(f"unknown revision {rev!r}", hint="fetch it first, or name a commit id") from exc
        kind, peeled = self.peel(str(obj.id))
        if kind != "commit" or peeled is None:
            raise GitAccessError(f"{rev!r} is a {kind}, not a commit")
        return peeled

    def tree_entry(self, tree: str, path: bytes) -> tuple[int, ObjectId] | None:
        """(canonical mode, id) of ``path`` in ``tree``, or None."""
        node: str | None = tree
        parts = path.split(b"/")
        for i, part in enumerate(parts):
            if node is None:
                return None
            found = next(((raw, oid) for name, raw, oid in self._raw_entries(node) if name == part), None)
            if found is None:
                return None
            mode, oid = canon_mode(found[0]), found[1]
            if i == len(parts) - 1:
                return mode, oid
            node = oid if mode == MODE_TREE and self.object_type(oid) == "tree" else None
        return None

    def ids_at(self, tree: str, paths: Iterable[bytes]) -> dict[bytes, ObjectId]:
        """Ids of the entries at ``paths`` under ``tree``, for those that exist: exact names, looked up in C (one
        call per path instead of listing folders in Python). A path that is not UTF-8 is looked up by listing."""
        root = self._tree(tree)
        out: dict[bytes, ObjectId] = {}
        if root is None:
            return out
        for path in paths:
            try:
                text = path.decode("utf-8")
            except UnicodeDecodeError:
                found = self.tree_entry(tree, path)
                if found is not None:
                    out[path] = found[1]
                continue
            try:
                out[path] = ObjectId(str(root[text].id))
            except (KeyError, ValueError, pygit2.GitError):
                continue
        return out

    def symbolic_target(self, ref: str) -> str | None:
        """The ref a symbolic ref in this repository points to (one hop), or None for a direct or missing ref."""
        try:
            reference = self._repo.references.get(ref)
        except (KeyError, ValueError, pygit2.GitError):
            return None
        if reference is None or reference.type != pygit2.enums.ReferenceType.SYMBOLIC:
            return None
        return str(reference.target)


def in_quarantine(env: Mapping[str, str]) -> bool:
    return bool(env.get("GIT_QUARANTINE_PATH")) or "incoming-" in env.get("GIT_OBJECT_DIRECTORY", "")


_LOOSE_LISTING_MAX = 256  # loose objects listed from their files; more (or any pack) goes to git cat-file
_HEX = frozenset("0123456789abcdef")


def _loose_only_objects(objects: str, *, limit: int) -> list[str] | None:
    """The ids of the loose objects in the object directory ``objects`` when it holds no pack and at most ``limit``
    of them, else None. Names are read as git reads them (``xx/<rest of the hex id>``; anything else, like git's own
    temporary files, is not an object)."""
    try:
        with os.scandir(os.path.join(objects, "pack")) as packs:
            if any(entry.name.endswith(".pack") for entry in packs):
                return None
    except FileNotFoundError:
        pass
    except OSError:
        return None
    found: list[str] = []
    try:
        with os.scandir(objects) as top:
            fanout = [entry.name for entry in top if len(entry.name) == 2 and set(entry.name) <= _HEX]
        for name in fanout:
            with os.scandir(os.path.join(objects, name)) as files:
                for entry in files:
                    rest = entry.name
                    if len(rest) in (38, 62) and set(rest) <= _HEX:
                        found.append(name + rest)
                        if len(found) > limit:
                            return None
    except OSError:
        return None
    return found


def _incoming_objects(env: Mapping[str, str], repo: pygit2.Repository) -> str | None:
    """The object directory that holds only this push's objects, or None. git (and Gitaly, whose quarantine is not
    named ``incoming-``) point ``GIT_OBJECT_DIRECTORY`` at it and list the repository's own objects in
    ``GIT_ALTERNATE_OBJECT_DIRECTORIES``; without that pair the directory may be the whole repository."""
    incoming = env.get("GIT_OBJECT_DIRECTORY")
    if not incoming or not (in_quarantine(env) or env.get("GIT_ALTERNATE_OBJECT_DIRECTORIES")):
        return None
    own = Path(repo.path) / "objects"
    try:
        if Path(incoming).resolve() == own.resolve():
            return None
    except OSError:
        return None
    return incoming


def tree_shape_problem(entries: list[tuple[bytes, int, ObjectId]]) -> str | None:
    """What git's fsck would call an error in a tree's entries (fsck.c ``fsck_tree``), or None."""
    names: set[bytes] = set()
    previous = b""
    for name, raw, _oid in entries:
        if not name or b"/" in name or name in (b".", b".."):
            return f"entry {_shown(name)!r} is not a file name (empty, '.', '..' or containing '/')"
        if (name[:1] in b".gG" or not name.isascii()) and is_dotgit(name):  # the cheap test first
            return f"entry {_shown(name)!r} is .git under some checkout's rules"
        if name in names:
            return f"entry {_shown(name)!r} appears twice"
        names.add(name)
        key = name + b"/" if raw & 0o170000 == MODE_TREE else name  # git sorts a tree as if its name ended in '/'
        if key < previous:
            return f"entries are not in git's order at {_shown(name)!r}"
        previous = key
    return None


def _shown(name: bytes) -> str:
    return name.decode("utf-8", "backslashreplace")


def _cap_address_space() -> None:
    """In the ``git cat-file`` child, before exec: the address-space cap (see CAT_FILE_MAX_ADDRESS_SPACE)."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (CAT_FILE_MAX_ADDRESS_SPACE, CAT_FILE_MAX_ADDRESS_SPACE))


def _tiled_entries(tree: str, data: bytes) -> list[tuple[bytes, bytes, bytes]] | None:
    """(raw mode, name, raw id) of every entry of a tree object's bytes, all matched at once in C; None unless the
    matches tile the object. They are disjoint, so they tile it exactly when their lengths add up to its size: then
    they are the entries an entry-by-entry parse reads, and anything else is malformed."""
    entry = _TREE_ENTRY_SHA1 if len(tree) == 40 else _TREE_ENTRY_SHA256
    found: list[tuple[bytes, bytes, bytes]] = entry.findall(data)
    id_len = 20 if len(tree) == 40 else 32
    if sum(len(mode) + len(name) for mode, name, _ in found) + (id_len + 2) * len(found) == len(data):
        return found
    return None


def _canonical_changes(diff: pygit2.Diff, *, null: str, odd: list[OddMode] | None = None) -> list[Change]:
    """Deltas -> sorted Change tuples with git's canonical modes. With INCLUDE_TYPECHANGE and no rename detection,
    libgit2 reports each path at most once (a file<->symlink swap is one "T" delta), so no merging is needed; a
    duplicate would be a libgit2 bug, and is refused rather than silently collapsed. A delta that only differs in raw
    mode (``100644`` -> ``100600``) is no change to a checkout and is dropped (its odd mode is still reported)."""
    changes: list[Change] = []
    append = changes.append
    for delta in diff.deltas:
        status = delta.status_char()
        # Only the side a status has is read: each file and mode pygit2 hands out is a new object (and an enum).
        if status == "D":
            old = delta.old_file
            append(Change(old.raw_path, canon_mode(int(old.mode)), str(old.id), MODE_ABSENT, null))
            continue
        new = delta.new_file
        new_mode = int(new.mode)
        if odd is not None and is_odd_mode(new_mode):
            odd.append(OddMode(new.raw_path, new_mode, str(new.id)))
        if status == "A":
            append(Change(new.raw_path, MODE_ABSENT, null, canon_mode(new_mode), str(new.id)))
        else:  # M, T: same path on both sides
            old = delta.old_file
            old_mode, new_mode = canon_mode(int(old.mode)), canon_mode(new_mode)
            if old_mode == new_mode and old.id == new.id:
                continue
            append(Change(new.raw_path, old_mode, str(old.id), new_mode, str(new.id)))
    changes.sort()
    for i in range(1, len(changes)):
        if changes[i].path == changes[i - 1].path:
            raise GitAccessError(f"the diff reported {changes[i].display_path()!r} twice")
    return changes


def _decoded(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def _open_error(path: str, exc: Exception) -> GitAccessError:
    text = str(exc)
    if "sha256" in text.lower() or "object format" in text.lower():
        return GitAccessError(
            "this repository uses SHA-256 object ids, which this build of gatekeeper (pygit2/libgit2) cannot read",
            hint="the gate refuses every push here until a SHA-256 capable libgit2 is installed",
        )
    return GitAccessError(f"cannot open repository {path!r}: {text}")
