"""Repository plumbing that changes what runs or what is fetched: protected by default (a built-in rule).

* ``.gitattributes`` (filters, LFS tracking: which files become pointers, and which smudge/clean drivers run),
  ``.gitmodules`` (submodule URLs: what is fetched), ``.lfsconfig`` (``lfs.url`` redirects every client's LFS
  downloads) at any depth, recognised the way git itself recognises them on case-insensitive and HFS+/NTFS checkouts
  (git ``path.c`` ``is_hfs_dotgit*``/``is_ntfs_dotgit*``: any letter case, HFS ignorable code points, NTFS trailing
  dots and spaces, NTFS streams, 8.3 short names ``GITATT~1`` and git's hashed ``GI7D29~1``/``GI7EBA~1``; see
  :mod:`gatekeeper.checkout`);
* symlinks whose target (read from the blob) lies inside a protected path, leaves the repository, or cannot be read;
* submodule pointers (gitlinks) under protected paths.

The hook turns the result into a rule that needs approval like any configured rule.

The other direction is refused on protected refs, approvals or not (:func:`escaping_symlinks`): a symlink *at* a
protected path whose target lies outside every rule, and a plumbing file that is a symlink. An approval binds the link,
but what a reader gets is the target's content, which anyone then edits without review.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterable

from gatekeeper.checkout import (
    DOTFILE_NEEDLES,
    HFS_IGNORABLE,
    could_be_git_dotfile,
    flagged_paths,
    git_dotfiles_unfiltered,
)
from gatekeeper.errors import GatekeeperError
from gatekeeper.model import MODE_GITLINK, MODE_LINK, Change, is_null

_PLUMBING_DOTFILES = (".gitattributes", ".gitmodules")  # what git itself reads; .lfsconfig is git-lfs's
_LINKS = (MODE_GITLINK, MODE_LINK)  # the modes whose entries bring content from elsewhere
_PROBE = b"/.gatekeeper-probe"  # a child name to test whether a folder lies under a protected pattern ("models/**")


def dotfile_kind(path: bytes) -> str | None:
    """The plumbing file a path stands for on any client checkout, or None. ``\\`` separates folders for Windows
    tools, so ``sub\\.gitattributes`` is read as ``sub/.gitattributes`` there."""
    base = posixpath.basename(path.replace(b"\\", b"/"))
    if not could_be_git_dotfile(base):  # exact (the tests prove it): .lfsconfig's readings start with "." too
        return None
    return dotfile_kind_of_name(base)


def dotfile_kind_of_name(base: bytes) -> str | None:
    """:func:`dotfile_kind` of one file name, without the prefilter."""
    kinds = git_dotfiles_unfiltered(base)
    for kind in _PLUMBING_DOTFILES:
        if kind in kinds:
            return kind
    name = base.decode("utf-8", "surrogateescape").translate(HFS_IGNORABLE).split(":", 1)[0].rstrip(" .").lower()
    return ".lfsconfig" if name == ".lfsconfig" else None


def _link_target(link: bytes, target: bytes) -> bytes | None:
    """Repository path a symlink points to, or None when it leaves the repository. ``\\`` is read as a separator, as
    a Windows checkout with ``core.symlinks`` does (``..\\..\\scratch\\x.py`` leaves ``models/llama/``)."""
    target = target.replace(b"\\", b"/")
    if not target or target.startswith(b"/") or target[1:2] == b":":  # absolute, or a drive (C:) on Windows
        return None
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(link), target))
    if joined == b".." or joined.startswith(b"../"):
        return None
    return b"" if joined == b"." else joined


def _read_target(read_blob: Callable[[str], bytes | None] | None, oid: str) -> bytes | None:
    if read_blob is None or is_null(oid):
        return None
    try:
        return read_blob(oid)
    except (GatekeeperError, KeyError, ValueError, OSError):  # e.g. GitAccessError: the path is protected anyway
        return None


def implicit_protected_paths(changes: Iterable[Change], is_protected: Callable[[bytes], bool], *,
                             read_blob: Callable[[str], bytes | None] | None = None) -> dict[bytes, str]:
    """Paths of a change set that plumbing rules protect, with the reason.

    Args:
        changes: the canonical change set of a ref update.
        is_protected: the configured rules' predicate for a repository path.
        read_blob: blob id -> contents, to read symlink targets; without it (or when a target cannot be read) every
            symlink change is protected, since its target is unknown (fail closed).

    Returns:
        path -> reason, e.g. ``{b".gitattributes": "plumbing: .gitattributes"}``.
    """
    out: dict[bytes, str] = {}
    changes = list(changes)
    # A big change set asks two things of each path: which may name a dotfile (flagged_paths, in C over all paths)
    # and whether either side is a symlink or a submodule; a path that is neither is settled without a call.
    suspects = flagged_paths([change.path for change in changes], DOTFILE_NEEDLES, non_ascii=True)
    for change in changes:
        if (suspects is not None and change.path not in suspects and change.new_mode not in _LINKS
                and change.old_mode not in _LINKS):
            continue
        kind = dotfile_kind(change.path)
        if kind is not None:
            out[change.path] = f"plumbing: {kind}"
            continue
        for mode, oid in ((change.new_mode, change.new_id), (change.old_mode, change.old_id)):
            if mode == MODE_GITLINK and is_protected(change.path):
                out[change.path] = "plumbing: submodule pointer under a protected path"
                break
            if mode != MODE_LINK:
                continue
            target = _read_target(read_blob, oid)
            if target is None:
                out[change.path] = "plumbing: symlink whose target could not be read"
                break
            resolved = _link_target(change.path, target)
            shown = target.decode("utf-8", "backslashreplace")
            if resolved is None:
                out[change.path] = f"plumbing: symlink to {shown} leaves the repository"
                break
            if not resolved:
                out[change.path] = "plumbing: symlink to the repository root"
                break
            if dotfile_kind(resolved) is not None or is_protected(resolved) or is_protected(resolved + _PROBE):
                out[change.path] = f"plumbing: symlink into protected path {shown}"
                break
    return out


def escaping_symlinks(changes: Iterable[Change], is_protected: Callable[[bytes], bool], *,
                      read_blob: Callable[[str], bytes | None] | None = None) -> dict[bytes, str]:
    """Symlinks a change set adds that would carry protected content out of review, with the reason.

    * a plumbing file (``.gitattributes``, ``.gitmodules``, ``.lfsconfig``, under every checkout's aliases) that is a
      symlink: git-lfs and git before 2.32 read the target, git since 2.32 ignores the link (and fsck calls a linked
      ``.gitmodules`` an error), so readers disagree and whoever edits the target edits the plumbing;
    * a symlink at a protected path whose target is not itself protected (or leaves the repository, or cannot be
      read): the path's content is then the target's, and the target has no rule.

    ``is_protected`` must be exact (the configured rules' match), not a conservative "could protect something below":
    a folder is protected when a child of it would be (``models`` under ``models/**``).
    """

    def protected(path: bytes) -> bool:
        return is_protected(path) or is_protected(path + _PROBE)

    out: dict[bytes, str] = {}
    for change in changes:
        if change.new_mode != MODE_LINK:
            continue
        kind = dotfile_kind(change.path)
        if kind is not None:
            out[change.path] = f"{kind}: plumbing file as a symlink (readers disagree on following it)"
            continue
        if not protected(change.path):
            continue
        target = _read_target(read_blob, change.new_id)
        if target is None:
            out[change.path] = "symlink at a protected path whose target could not be read"
            continue
        resolved = _link_target(change.path, target)
        shown = target.decode("utf-8", "backslashreplace")
        if resolved is None or not resolved:
            out[change.path] = f"symlink to {shown} at a protected path leaves the protected paths"
        elif not protected(resolved):
            out[change.path] = (f"symlink to {shown} points outside every protected path: its content would "
                                "change without review")
    return out
