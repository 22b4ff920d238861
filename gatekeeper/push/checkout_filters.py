"""Files a checkout passes through a filter driver other than Git LFS (``.gitattributes``: ``*.pkl filter=crypt``).

A smudge filter (git-crypt, transcrypt, a team's own) rewrites a blob on its way to the working tree with a program
the gate cannot run. git-crypt stores ciphertext: a pickle encrypted with the team's key scans as noise, and every
checkout that holds the key writes the pickle. So a file a non-LFS filter applies to is unscannable (Git LFS pointers
are judged by ``detectors.lfs``, which reads the object the pointer names).

Which lines apply is read as a superset, so no precedence subtlety can hide a filter:

* every line whose pattern matches sets its driver; a later line or a deeper file that unsets it (``-filter``,
  ``filter=lfs``) is not believed;
* patterns match as gitignore patterns do (a directory pattern also matches what is below it), case-insensitively
  (Windows and macOS checkouts), relative to the folder of the ``.gitattributes`` file;
* macros (``[attr]secret filter=crypt``) expand wherever they are used, whichever file defines them (git honours the
  top-level file's only);
* a pattern the matcher cannot read matches every path.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from gatekeeper.checkout import fold_path
from gatekeeper.policy.pathmatch import MatchOptions, PathMatcher, check_path_pattern

EXEMPT = frozenset({"lfs"})  # judged by detectors.lfs; exact: git names the driver's config section case-sensitively
_MATCH = MatchOptions(case_insensitive=True, unicode_nfc=True)
_QUOTED = re.compile(rb'"((?:[^"\\]|\\.)*)"')
_ESCAPE = re.compile(rb"\\([0-7]{1,3}|.)", re.DOTALL)
_C_ESCAPES = {b"n": b"\n", b"t": b"\t", b"r": b"\r", b"a": b"\a", b"b": b"\b", b"f": b"\f", b"v": b"\v"}


@dataclass(frozen=True)
class FilterLine:
    attributes: bytes  # the .gitattributes path it is in
    folder: bytes  # that file's folder, folded ("" for the root)
    pattern: str
    driver: str


def filter_lines(files: Iterable[tuple[bytes, bytes]]) -> list[FilterLine]:
    """The lines of these ``(path, content)`` ``.gitattributes`` files that set a filter driver other than LFS,
    macros expanded."""
    files = list(files)
    macros = _macros(data for _, data in files)
    out = []
    for path, data in files:
        folder = fold_path(path.rpartition(b"/")[0])
        for pattern, tokens in _lines(data):
            if pattern.startswith(b"[attr]"):
                continue
            for driver in sorted(_drivers(tokens, macros)):
                out.append(FilterLine(path, folder, pattern.decode("utf-8", "surrogateescape"), driver))
    return out


def macro_drivers(data: bytes) -> set[tuple[bytes, str]]:
    """(macro name, driver) of each macro ``data`` defines that sets a driver (macros it uses expanded)."""
    return {(name, driver) for name, drivers in _macros([data]).items() for driver in drivers}


def _macros(texts: Iterable[bytes]) -> dict[bytes, set[str]]:
    macros: dict[bytes, set[str]] = {}
    for data in texts:
        for pattern, tokens in _lines(data):
            if pattern.startswith(b"[attr]"):
                drivers = _drivers(tokens, macros)
                if drivers:
                    macros.setdefault(pattern[len(b"[attr]"):].lower(), set()).update(drivers)
    return macros


def _lines(data: bytes) -> Iterable[tuple[bytes, list[bytes]]]:
    for raw in data.splitlines():
        line = raw.strip()
        if not line or line.startswith(b"#"):
            continue
        quoted = _QUOTED.match(line)
        if quoted:
            pattern, rest = _unquote(quoted.group(1)), line[quoted.end():]
        else:
            pattern, _, rest = line.replace(b"\t", b" ").partition(b" ")
        yield pattern, rest.split()


def _unquote(body: bytes) -> bytes:
    def one(m: re.Match[bytes]) -> bytes:
        code = m.group(1)
        if code[:1].isdigit():
            return bytes([int(code, 8) & 0xFF])
        return _C_ESCAPES.get(code, code)

    return _ESCAPE.sub(one, body)


def _drivers(tokens: list[bytes], macros: dict[bytes, set[str]]) -> set[str]:
    found: set[str] = set()
    for token in tokens:
        low = token.lower()
        if low.startswith(b"filter="):
            driver = token.split(b"=", 1)[1].decode("utf-8", "surrogateescape")
            if driver and driver not in EXEMPT:
                found.add(driver)
        elif low in macros:
            found |= macros[low]
    return found


MAX_LINES = 1000  # past this many driver lines every path is claimed: matching stays linear in the paths


class FilterMap:
    """Which filter line, if any, applies to a path (see the module docstring for how)."""

    def __init__(self, lines: list[FilterLine]) -> None:
        self.lines = lines
        self._matchers: list[tuple[FilterLine, PathMatcher | None]] = []
        if len(lines) > MAX_LINES:
            first = lines[0]
            self._matchers.append((FilterLine(first.attributes, b"", f"{len(lines)} lines", first.driver), None))
            return
        for line in lines:
            problem = check_path_pattern(line.pattern, _MATCH) if line.pattern else "empty"
            self._matchers.append((line, None if problem else PathMatcher([line.pattern], _MATCH)))

    def __bool__(self) -> bool:
        return bool(self.lines)

    def applies(self, path: bytes) -> FilterLine | None:
        folded = fold_path(path)  # as the folders are: case and Unicode composition, so the prefix is cut exactly
        for line, matcher in self._matchers:
            if line.folder:
                if not folded.startswith(line.folder + b"/"):
                    continue
                relative = folded[len(line.folder) + 1:]
            else:
                relative = folded
            if matcher is None or matcher.match(relative):
                return line
        return None
