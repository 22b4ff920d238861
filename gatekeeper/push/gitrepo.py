"""Read-only access to the repository being pushed to. The only module that imports pygit2 or reads ``GIT_*``.

Why the care:

* Pushed objects live in a quarantine directory until pre-receive succeeds; libgit2 sees them only when the repository
  is opened with ``RepositoryOpenFlag.FROM_ENV`` (it then honours ``GIT_OBJECT_DIRECTORY`` and
  ``GIT_ALTERNATE_OBJECT_DIRECTORIES``). ``GIT_QUARANTINE_PATH`` is absent on GitLab, so it is never relied on.
* libgit2 does not know about git's "no ref updates from quarantine" rule: this module never writes anything.
* Paths are returned as raw bytes from tree entries, never parsed from ``git diff`` text (quoting bypasses).
* Change sets come from a tree-to-tree diff without rename detection and without ``IGNORE_SUBMODULES``, with
  type changes included, so moves, deletions, mode flips, symlink swaps and gitlink updates are all visible.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pygit2
from pygit2.enums import DiffOption, ObjectType, RepositoryOpenFlag, SortMode

from gatekeeper.errors import GitAccessError
from gatekeeper.model import MODE_ABSENT, Change, ObjectId

_DIFF_FLAGS = DiffOption.INCLUDE_TYPECHANGE | DiffOption.SKIP_BINARY_CHECK

# git's well-known empty tree id in SHA-1 repositories (pygit2 1.21 cannot open SHA-256 repositories at all).
_EMPTY_TREE_SHA1 = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"

_TYPE_NAMES = {
    ObjectType.COMMIT: "commit",
    ObjectType.TREE: "tree",
    ObjectType.BLOB: "blob",
    ObjectType.TAG: "tag",
}


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


def in_quarantine(env: Mapping[str, str]) -> bool:
    return bool(env.get("GIT_QUARANTINE_PATH")) or "incoming-" in env.get("GIT_OBJECT_DIRECTORY", "")


class Repo:
    """A read-only view of one repository (bare or not)."""

    def __init__(self, repo: pygit2.Repository) -> None:
        self._repo = repo
        self._empty_tree: ObjectId | None = None

    # -- opening ---------------------------------------------------------------------------------------------------

    @classmethod
    def open_for_hook(cls, env: Mapping[str, str]) -> Repo:
        """Open the repository a server hook runs in, with the quarantine visible (FROM_ENV)."""
        path = hook_git_dir(env)
        try:
            repo = pygit2.Repository(path, flags=RepositoryOpenFlag.FROM_ENV)
        except (pygit2.GitError, ValueError, KeyError) as exc:
            raise _open_error(path, exc) from exc
        return cls(repo)

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
        obj = self._lookup(oid)
        for _ in range(64):
            if obj is None:
                return "missing", None
            if isinstance(obj, pygit2.Tag):
                obj = self._lookup(str(obj.target))
                continue
            return _TYPE_NAMES.get(obj.type, "unknown"), ObjectId(str(obj.id))
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
        obj = self._lookup(oid)
        if not isinstance(obj, pygit2.Blob):
            raise GitAccessError(f"{oid} is not a blob in this repository")
        if max_bytes is not None and obj.size > max_bytes:
            raise GitAccessError(f"blob {oid} is {obj.size} bytes, over the {max_bytes}-byte cap")
        return bytes(obj.data)

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

    def diff_trees(self, old_tree: str | None, new_tree: str | None) -> list[Change]:
        """The canonical change set between two trees (None = empty tree): sorted, one entry per differing path."""
        if old_tree == new_tree:
            return []
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
            raise GitAccessError(f"could not diff trees {old_tree} and {new_tree}: {exc}") from exc
        return _canonical_changes(diff, null=self.null_id)

    def _tree(self, tree: str | None) -> pygit2.Tree | None:
        if tree is None:
            return None
        obj = self._lookup(tree)
        if obj is None or obj.type != ObjectType.TREE:
            raise GitAccessError(f"{tree} is not a tree in this repository")
        return obj  # type: ignore[return-value]

    @property
    def null_id(self) -> str:
        return "0" * 40

    def walk_new_commits(self, new: str, hide: Iterable[str], *, limit: int) -> list[ObjectId]:
        """Commits reachable from ``new`` but not from any of ``hide`` (``git rev-list new --not hide...``).

        Bounded by ``limit``: the caller turns an overflow into a refusal, never into a silent partial check.
        """
        walker = self._repo.walk(new, SortMode.TOPOLOGICAL)
        for oid in hide:
            try:
                walker.hide(oid)
            except (KeyError, ValueError, pygit2.GitError):
                continue  # a ref pointing at a missing or non-commit object hides nothing
        out: list[ObjectId] = []
        for commit in walker:
            out.append(ObjectId(str(commit.id)))
            if len(out) > limit:
                raise GitAccessError(f"more than {limit} new commits in one update")
        return out

    def commit_blob_changes(self, commit: str) -> list[Change]:
        """Entries a commit adds or changes relative to each of its parents (the empty tree for a root commit).

        For content scanning: every blob a pushed commit brings appears here, including blobs that a later commit
        of the same push removes again, and blobs introduced only by a merge commit.
        """
        info = self.commit_info(commit)
        tree = self.commit_tree(commit)
        if not info.parents:
            return self.diff_trees(None, tree)
        out: list[Change] = []
        for parent in info.parents:
            if self.object_type(parent) != "commit":
                continue  # a shallow or grafted parent: its tree is unknown, so everything counts as new
            out.extend(self.diff_trees(self.commit_tree(parent), tree))
        if not out and any(self.object_type(p) != "commit" for p in info.parents):
            out = self.diff_trees(None, tree)
        return out

    def iter_tree(self, tree: str) -> Iterator[tuple[bytes, int, ObjectId]]:
        """(path, mode, id) of every non-tree entry, recursively."""
        stack: list[tuple[bytes, pygit2.Tree]] = []
        root = self._tree(tree)
        if root is None:
            return
        stack.append((b"", root))
        while stack:
            prefix, node = stack.pop()
            for entry in node:
                name = _entry_name(entry)
                path = prefix + name
                if entry.type == ObjectType.TREE:
                    sub = self._lookup(str(entry.id))
                    if sub is not None:
                        stack.append((path + b"/", sub))  # type: ignore[arg-type]
                else:
                    yield path, int(entry.filemode), ObjectId(str(entry.id))

    def tree_entries(self, tree: str, *, limit: int | None = None) -> list[tuple[bytes, int, ObjectId]]:
        """(name, mode, id) of the top-level entries of ``tree`` (not recursive), in tree order; GitAccessError when
        there are more than ``limit`` (checked before anything is read)."""
        node = self._tree(tree)
        if node is None:
            raise GitAccessError(f"{tree} is not a tree in this repository")
        if limit is not None and len(node) > limit:
            raise GitAccessError(f"tree {tree} has {len(node)} entries, over the limit of {limit}")
        out: list[tuple[bytes, int, ObjectId]] = []
        for entry in node:
            name = _entry_name(entry)
            out.append((name, int(entry.filemode), ObjectId(str(entry.id))))
        return out

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
        """(mode, id) of ``path`` in ``tree``, or None."""
        node = self._tree(tree)
        parts = path.split(b"/")
        for i, part in enumerate(parts):
            if node is None:
                return None
            found = None
            for entry in node:
                name = _entry_name(entry)
                if name == part:
                    found = entry
                    break
            if found is None:
                return None
            if i == len(parts) - 1:
                return int(found.filemode), ObjectId(str(found.id))
            node = self._lookup(str(found.id)) if found.type == ObjectType.TREE else None  # type: ignore[assignment]
        return None


def _canonical_changes(diff: pygit2.Diff, *, null: str) -> list[Change]:
    """Deltas -> sorted Change tuples. With INCLUDE_TYPECHANGE and no rename detection, libgit2 reports each path
    at most once (a file<->symlink swap is one "T" delta), so no merging is needed; a duplicate would be a libgit2
    bug, and is refused rather than silently collapsed."""
    changes: list[Change] = []
    append = changes.append
    for delta in diff.deltas:
        old, new = delta.old_file, delta.new_file
        status = delta.status_char()
        if status == "A":
            append(Change(new.raw_path, MODE_ABSENT, null, int(new.mode), str(new.id)))
        elif status == "D":
            append(Change(old.raw_path, int(old.mode), str(old.id), MODE_ABSENT, null))
        else:  # M, T: same path on both sides
            append(Change(new.raw_path, int(old.mode), str(old.id), int(new.mode), str(new.id)))
    changes.sort()
    for i in range(1, len(changes)):
        if changes[i].path == changes[i - 1].path:
            raise GitAccessError(f"the diff reported {changes[i].display_path()!r} twice")
    return changes


def _entry_name(entry: pygit2.Object) -> bytes:
    """A tree entry's name as raw bytes (pygit2 decodes ``name`` with the file-system encoding)."""
    raw = getattr(entry, "raw_name", None)
    if isinstance(raw, bytes):
        return raw
    return str(entry.name).encode("utf-8", "surrogateescape")


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
