"""What a checkout makes of tree entries and names: git's own rules, so the gate judges what people will get.

Pure functions, no I/O. The reference is git's source:

* ``canon_mode`` (cache.h): the mode a checkout gives an entry. receive-pack stores any mode (``fsck`` only warns,
  ``badFilemode``), libgit2 reports the raw mode in diffs and normalises it differently in ``TreeEntry.filemode``
  (``120755`` becomes an executable *file* there, a *symlink* in git), so the gate canonicalises itself.
* ``is_ntfs_dot_generic`` / ``is_hfs_dot_generic`` (path.c, utf8.c): the names under which a Windows or macOS checkout
  reads ``.gitattributes``, ``.gitmodules`` and friends: any ASCII case, trailing dots and spaces, an NTFS
  ``:stream`` suffix, the 8.3 short names ``GITATT~1`` and git's hashed fallbacks ``GI7D29~1``; HFS+ ignorable code
  points anywhere.
* NTFS name rules (Win32 path normalisation): a component loses its trailing dots and spaces, ``name:stream`` is a
  stream of ``name`` (``dir::$INDEX_ALLOCATION`` is the directory itself), ``\\`` separates components for Windows
  tools and zip extractors, and an 8.3 short name (``MODELI~1.PY``) reaches whatever long name it abbreviates.
"""

from __future__ import annotations

import re

from gatekeeper.model import MODE_BLOB, MODE_EXEC, MODE_GITLINK, MODE_LINK, MODE_TREE

_S_IFMT = 0o170000
_S_IFREG = 0o100000
_CANONICAL = frozenset((MODE_BLOB, MODE_EXEC, MODE_LINK, MODE_GITLINK, MODE_TREE))

# HFS+ ignores these code points in file names (git utf8.c next_hfs_char).
HFS_IGNORABLE = dict.fromkeys(
    [*range(0x200C, 0x2010), *range(0x202A, 0x202F), *range(0x206A, 0x2070), 0xFEFF],
)

# (dotfile, git's hashed 8.3 fallback prefix) from git path.c is_ntfs_dot*.
_GIT_DOTFILES = (
    ("gitattributes", "gi7d29"),
    ("gitmodules", "gi7eba"),
    ("gitignore", "gi250a"),
    ("mailmap", "maba30"),
)

# An 8.3 short name: up to 6 characters, '~', a digit 1-9, more digits up to 8 characters, an optional extension.
_SHORT_NAME = re.compile(r"[^~.]{1,6}~[1-9][0-9]{0,6}(?:\.[^.]{0,3})?\Z")


def canon_mode(raw: int) -> int:
    """git's ``canon_mode``: regular file (0755 if the owner may execute, else 0644), symlink, tree, else gitlink."""
    kind = raw & _S_IFMT
    if kind == _S_IFREG:
        return MODE_EXEC if raw & 0o100 else MODE_BLOB
    if kind == MODE_LINK:
        return MODE_LINK
    if kind == MODE_TREE:
        return MODE_TREE
    return MODE_GITLINK


def is_odd_mode(raw: int) -> bool:
    """A mode no current git writes (only crafted or pre-2005 objects carry one)."""
    return raw not in _CANONICAL


def describe_mode(mode: int) -> str:
    return {MODE_BLOB: "a regular file", MODE_EXEC: "an executable file", MODE_LINK: "a symlink",
            MODE_TREE: "a directory", MODE_GITLINK: "a submodule (gitlink)"}.get(canon_mode(mode), "?")


def _only_spaces_and_periods(name: str, i: int) -> bool:
    for c in name[i:]:
        if c == ":":
            return True
        if c not in " .":
            return False
    return True


def is_ntfs_dot_generic(name: str, dotfile: str, short_prefix: str) -> bool:
    """Port of git's ``is_ntfs_dot_generic`` (path.c) for one path component."""
    if name[:1] == "." and name[1:1 + len(dotfile)].lower() == dotfile:
        return _only_spaces_and_periods(name, len(dotfile) + 1)
    if name[:6].lower() == dotfile[:6] and name[6:7] == "~" and "1" <= name[7:8] <= "4":
        return _only_spaces_and_periods(name, 8)
    saw_tilde = False
    i = 0
    while i < 8:
        if i >= len(name):
            return False
        c = name[i]
        if saw_tilde:
            if not c.isascii() or not c.isdigit():
                return False
        elif c == "~":
            i += 1
            if i >= len(name) or not ("1" <= name[i] <= "9"):
                return False
            saw_tilde = True
        elif i >= 6 or not c.isascii() or c.lower() != short_prefix[i]:
            return False
        i += 1
    return _only_spaces_and_periods(name, i)


def is_hfs_dot_generic(name: str, dotfile: str) -> bool:
    """Port of git's ``is_hfs_dot_generic`` (utf8.c): ignorable code points dropped, ASCII case ignored."""
    text = name.translate(HFS_IGNORABLE)
    return text.lower() == "." + dotfile if text.isascii() else False


def could_be_git_dotfile(component: bytes) -> bool:
    """False only for names no checkout reads as a git dotfile (an exact prefilter, decided in C; every path of a big
    push meets it): an ASCII name without ``~`` that does not start with ``.``. HFS+ ignorables are not ASCII, so an
    ASCII name is its own HFS reading, which must start with ``.``; an NTFS match starts with ``.`` or holds a ``~``
    within its first eight characters (the 8.3 forms)."""
    return not component.isascii() or component.startswith(b".") or b"~" in component


def git_dotfiles(component: bytes) -> frozenset[str]:
    """Which of ``.gitattributes``/``.gitmodules``/``.gitignore``/``.mailmap`` some checkout reads ``component`` as
    (git's fallback short names are ambiguous: ``~1000000`` stands for all of them)."""
    if not could_be_git_dotfile(component):
        return _NO_DOTFILES
    return git_dotfiles_unfiltered(component)


_NO_DOTFILES: frozenset[str] = frozenset()


def git_dotfiles_unfiltered(component: bytes) -> frozenset[str]:
    """:func:`git_dotfiles` without its prefilter (the tests prove both agree)."""
    name = component.decode("utf-8", "surrogateescape")
    return frozenset("." + dotfile for dotfile, short in _GIT_DOTFILES
                     if is_ntfs_dot_generic(name, dotfile, short) or is_hfs_dot_generic(name, dotfile))


def is_dotgit(component: bytes) -> bool:
    """``.git`` as some checkout reads it (git path.c ``is_hfs_dotgit``/``is_ntfs_dotgit``): any case, HFS+
    ignorables, NTFS trailing dots and spaces or ``:stream``, and the short name ``git~1``."""
    name = component.decode("utf-8", "surrogateescape")
    if is_hfs_dot_generic(name, "git"):
        return True
    return name.split(":", 1)[0].rstrip(" .").lower() in (".git", "git~1")


def may_have_ntfs_alias(path: bytes) -> bool:
    """What makes :func:`ntfs_alias` differ from the path: a backslash, a colon, or a dot or space ending a component
    (substring searches: cheaper than one regular expression on every path of a big push)."""
    return b"\\" in path or b":" in path or b"./" in path or b" /" in path or path.endswith((b".", b" "))


def ntfs_alias(path: bytes) -> bytes | None:
    """The path a Windows checkout (or a zip extractor) writes for ``path``, if it differs: ``\\`` as a separator,
    ``:stream`` suffixes cut, trailing dots and spaces dropped from each component."""
    if not may_have_ntfs_alias(path):  # the common case, decided in C
        return None
    parts = []
    for component in path.replace(b"\\", b"/").split(b"/"):
        component = component.split(b":", 1)[0].rstrip(b" .")
        if component:
            parts.append(component)
    alias = b"/".join(parts)
    return alias if alias != path else None


def may_have_windows_name_problem(path: bytes) -> bool:
    """False only where :func:`windows_name_problem` finds nothing (an exact prefilter, decided in C): a short name
    needs a ``~``, and a component that vanishes is dots and spaces up to its end or its first ``:``."""
    # A vanishing component holds a ':' or starts with '.' or ' ' at the start of the path or after a separator.
    return (b"~" in path or b":" in path or b"\\" in path or path[:1] in (b".", b" ") or b"/." in path
            or b"/ " in path)


def windows_name_problem(path: bytes) -> str | None:
    """Why a Windows checkout could write ``path`` somewhere else than its name says, when matching the alias cannot
    settle it: an 8.3 short name reaches a long name the gate cannot know (``MODELI~1.PY`` is ``modeling_x.py`` in a
    folder that has it), and a component made of dots and spaces only vanishes. None for ordinary names."""
    for component in path.replace(b"\\", b"/").split(b"/"):
        stripped = component.split(b":", 1)[0].rstrip(b" .")
        if component and not stripped:
            return f"component {component!r} names the folder around it on Windows (dots and spaces only)"
        name = stripped.decode("utf-8", "surrogateescape")
        if "~" in name and _SHORT_NAME.match(name) and not git_dotfiles(component):
            return f"{name!r} is a Windows 8.3 short name: a checkout writes it to whichever long name it abbreviates"
    return None


# -- the per-path prefilters above, for a whole change set at once ------------------------------------------------
# A big push meets every prefilter once per path: a Python call each. Over one buffer of all paths (NUL-separated:
# no git path holds a NUL) the same substring tests are a few scans in C, and only the paths they flag are checked
# one by one. In a needle, NUL stands for a path's start (leading) or end (trailing).

DOTFILE_NEEDLES = (b"\0.", b"/.", b"\\.", b"~")  # could_be_git_dotfile of the last component, non-ASCII aside
WINDOWS_NAME_NEEDLES = (b"~", b":", b"\\", b"\0.", b"\0 ", b"/.", b"/ ")  # may_have_windows_name_problem
NTFS_ALIAS_NEEDLES = (b"\\", b":", b"./", b" /", b".\0", b" \0")  # may_have_ntfs_alias
_NON_ASCII = re.compile(rb"[\x80-\xff]")


def flagged_paths(paths: list[bytes], needles: tuple[bytes, ...], *, non_ascii: bool) -> set[bytes] | None:
    """The paths that contain one of ``needles`` (or a non-ASCII byte, with ``non_ascii``): a superset of those a
    per-path prefilter with the same tests flags. None when a path holds a NUL (no tree entry can; the caller then
    tests every path itself)."""
    if not paths:
        return set()
    joined = b"\0" + b"\0".join(paths) + b"\0"
    if joined.count(b"\0") != len(paths) + 1:
        return None
    positions: list[int] = []
    for needle in needles:
        skip = 1 if needle.startswith(b"\0") else 0  # the first byte of the needle that lies in the path
        pos = joined.find(needle)
        while pos >= 0:
            positions.append(pos + skip)
            pos = joined.find(needle, pos + 1)
    if non_ascii and not joined.isascii():
        positions.extend(match.start() for match in _NON_ASCII.finditer(joined))
    if not positions:
        return set()
    from bisect import bisect_right
    from itertools import accumulate

    starts = list(accumulate((len(p) + 1 for p in paths[:-1]), initial=1))  # where each path starts in joined
    return {paths[bisect_right(starts, pos) - 1] for pos in positions}


def fold_path(path: bytes) -> bytes:
    """A path as case-insensitive checkouts compare it (Windows, macOS): letter case and Unicode composition
    ignored. ASCII lowercase is the common case and is returned as it is."""
    if path.isascii():
        return path.lower()
    import unicodedata

    return unicodedata.normalize("NFC", path.decode("utf-8", "surrogateescape")).lower().encode(
        "utf-8", "surrogateescape")
