"""Path and ref patterns: gitignore-style path globs matched against raw ``bytes`` paths, and ref-name globs.

Path patterns use git's gitignore semantics as implemented by ``pathspec`` (``GitIgnoreSpecPattern``, registered as
``gitwildmatch``): ``*`` and ``?`` stop at ``/``, ``**`` crosses it, a pattern without a slash (other than a trailing
one) matches at any depth (``*.bin`` is ``**/*.bin``), a pattern with a slash is anchored at the repository root, and a
pattern that names a directory matches everything beneath it (``models`` matches ``models/x/y.py``). One deliberate
extension: ``dir/**`` also matches the path ``dir`` itself, so a file, symlink or submodule replacing a protected
directory is covered by the directory's rule.

Matching is done on a *normalised* text form of the path, and the patterns are normalised the same way:

- the path bytes are decoded as UTF-8 with ``surrogateescape``: bytes that are not UTF-8 become lone surrogates that
  match only ``*``/``?``/``**``, so ``models/\\xff.bin`` still matches ``models/**`` by its ASCII parts;
- Unicode NFC (``unicode_nfc``), so a decomposed ``mode\\u0300le`` equals the composed ``mod\\u00e8le``, and the code
  points that HFS+ ignores in file names (git's ``is_hfs_dotgit`` list) are dropped, so ``mod\\u200cels/`` cannot
  stand in for ``models/`` on a macOS checkout;
- Unicode case folding (``case_insensitive``), so ``Models/`` cannot slip past ``models/**``, plus the one letter
  NTFS's upcase table merges and ``casefold`` does not (the dotless ``ı``: ``confıgs/`` is ``CONFIGS/`` on Windows).

Names that a Windows checkout writes elsewhere (``models./x``, ``models\\x``, ``models::$INDEX_ALLOCATION/x``) are
matched by :meth:`gatekeeper.policy.config.Policy.rules_for` as both themselves and their alias
(:func:`gatekeeper.checkout.ntfs_alias`).

Both transformations only ever make *more* paths match a rule, never fewer. The regular expressions run with DOTALL
and ``\\Z``, so a newline, tab or quote in a path is an ordinary character (pathspec's own ``.`` and ``$`` would let
``evil\\n/modeling_x.py`` escape ``**/modeling_*.py``).

Ref patterns (``protected_refs``) are simpler globs on full ref names: ``*`` and ``?`` stay within one ``/``-separated
component, a whole ``**`` component matches zero or more components (one or more at the end, so ``refs/tags/**`` does
not match ``refs/tags`` itself); git forbids ``*?[\\`` in ref names, so nothing needs escaping.
"""

from __future__ import annotations

import functools
import importlib
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from gatekeeper.checkout import HFS_IGNORABLE

__all__ = [
    "MatchOptions",
    "PathMatcher",
    "PathNormaliser",
    "RefMatcher",
    "RuleIndex",
    "check_path_pattern",
    "check_ref_pattern",
    "known_translations",
    "normalise_path",
    "translations",
]

# NTFS compares names through its upcase table (simple, one-to-one upper-casing). Where that merges letters that
# str.casefold keeps apart, fold them too; computed over all of Unicode, this is exactly the dotless i (U+0131, which
# NTFS upcases to "I"). Tested against str.upper in tests/attacks/test_checkout_rules.py.
_NTFS_UPCASE_FOLD = {0x0131: "i"}

# pathspec's suffix for "this file, or a directory with paths beneath it" uses `$`, which also matches before a final
# newline; we need the true end of the string.
_DIR_SUFFIX_OPT = "(?:(?P<ps_d>/)|$)"
_DIR_SUFFIX = "(?P<ps_d>/)"

# "[:alpha:]", "[=a=]", "[.a.]" inside a bracket: git knows them, pathspec would read them as sets of characters.
_POSIX_CLASS = re.compile(r"\[([:=.])[^\]]*\1\]")

# Cache bound for normalised paths (~10 MB at most): the gate asks about each changed path a few times in a row.
_CACHE_MAX = 1 << 16


@dataclass(frozen=True)
class MatchOptions:
    """How paths are compared with patterns (the policy's ``matching`` section)."""

    case_insensitive: bool = True
    unicode_nfc: bool = True


def _normalise_text(text: str, options: MatchOptions) -> str:
    if options.unicode_nfc:
        text = unicodedata.normalize("NFC", text)
        if not text.isascii():
            text = text.translate(HFS_IGNORABLE)
    if options.case_insensitive:
        # Canonical caseless matching (Unicode 3.13): fold, then re-compose what folding decomposed.
        text = text.casefold()
        if not text.isascii():
            text = text.translate(_NTFS_UPCASE_FOLD)
        if options.unicode_nfc and not text.isascii():
            text = unicodedata.normalize("NFC", text)
    return text


def normalise_path(path: bytes, options: MatchOptions) -> str:
    """The text form of a raw git path that patterns are matched against (see the module docstring)."""
    if path.isascii():
        text = path.decode("ascii")
        return text.lower() if options.case_insensitive else text
    return _normalise_text(path.decode("utf-8", "surrogateescape"), options)


def check_path_pattern(pattern: object, options: MatchOptions | None = None, *, compile: bool = True) -> str | None:
    """Why ``pattern`` is not a usable path pattern, or None when it is.

    ``compile=False`` skips compiling expressions that cannot fail to compile (the slow part of loading a policy;
    a :class:`PathMatcher` compiles lazily, on first use).

    Refuses, besides what pathspec refuses, every pattern that can never match a path git stores (git paths have no
    empty, ``.`` or ``..`` components and no NUL), negations (a rule protects paths; it cannot un-protect them, and
    gitignore's "last match wins" would make one rule's meaning depend on its pattern order), and unescaped leading or
    trailing white space (git strips trailing spaces, so ``"models/** "`` would not mean what it shows).
    """
    if not isinstance(pattern, str):
        return f"a path pattern must be a string, not {_type_name(pattern)}"
    if not pattern.strip():
        return "empty path pattern (it would match nothing)"
    if "\x00" in pattern:
        return f"path pattern {pattern!r} contains a NUL byte (git paths never do)"
    if pattern[0].isspace() or (pattern[-1].isspace() and not pattern.rstrip()[-1:] == "\\"):
        return f"path pattern {pattern!r} has leading or trailing white space; escape a real space as '\\ '"
    if pattern.startswith("#"):
        return f"path pattern {pattern!r} starts with '#', which gitignore reads as a comment; write '\\#'"
    if pattern.startswith("!"):
        return (
            f"path pattern {pattern!r} is a negation; rules cannot exclude paths (every matching rule must hold), "
            "write '\\!' for a literal '!'"
        )
    body = pattern.strip("/")
    if not body:
        return f"path pattern {pattern!r} matches nothing"
    for component in body.split("/"):
        if component in ("", ".", ".."):
            return f"path pattern {pattern!r} has an empty, '.' or '..' component; git paths never do"
    if _POSIX_CLASS.search(pattern):
        return f"path pattern {pattern!r} uses a POSIX bracket class ('[:alpha:]' etc.), which is not supported"
    try:
        # Only a bracket expression can make re reject pathspec's expression (e.g. a reversed range "[z-a]"); all
        # other characters are escaped. So without "[" the slow compile can be left to first use.
        if compile or "[" in pattern:
            _compile_one(pattern, options or MatchOptions())
        else:
            _pattern_parts(pattern, options or MatchOptions())
    except _NeverMatches as exc:
        return f"path pattern {pattern!r} {exc}"
    return None


class _NeverMatches(ValueError):
    pass


def _pattern_regex(pattern: str) -> str:
    """pathspec's regex for one gitignore pattern, with DOTALL-safe ends (see the module docstring)."""
    from pathspec.patterns.gitignore.spec import GitIgnoreSpecPattern

    try:
        regex, include = GitIgnoreSpecPattern.pattern_to_regex(pattern)
    except ValueError as exc:  # GitIgnorePatternError, e.g. a trailing backslash
        raise _NeverMatches(f"is not a valid glob ({exc})") from exc
    if regex is None or include is None:
        # pathspec returns (None, None) for comments, blank lines and, like git, for an invalid range such as "[ab".
        raise _NeverMatches("is not a valid glob (unterminated '[' range?)")
    if not include:
        raise _NeverMatches("is a negation")
    regex = str(regex).replace(_DIR_SUFFIX_OPT, r"(?:/|\Z)").replace(_DIR_SUFFIX, "/")
    if "(?P<" in regex:  # pragma: no cover - guards against a pathspec change adding other named groups
        raise _NeverMatches("produced an unexpected expression")
    return regex


# How one pattern's expression is run (see _classify): on the whole path from its start, anywhere in it, or anywhere
# that starts a path component.
_ANCHORED, _FLOATING, _COMPONENT = 0, 1, 2
_ANY_DIRS = "^(?:.+/)?"  # pathspec's prefix for "at any depth"
_STAR = "[^/]*"


def _classify(regex: str) -> tuple[int, str]:
    """Rewrite a pathspec expression so that ``re`` can use its literal-prefix scan.

    pathspec writes "at any depth" as ``^(?:.+/)?G``, which ``re.match`` runs by backtracking over every character
    (about 14 us per path for 20 rules). The same set of paths is matched by searching for ``G`` at the start of any
    component, and when ``G`` begins with ``*`` (``*.bin``), by searching for the rest of ``G`` anywhere: ``re``
    then jumps straight to candidate positions (``.bin``), which is ~10x faster.
    """
    if regex.startswith(_ANY_DIRS):
        body = regex[len(_ANY_DIRS):]
        if body.startswith(_STAR):
            return _FLOATING, body[len(_STAR):] or "(?s:.)"
        return _COMPONENT, body
    if regex.startswith("^"):
        return _ANCHORED, regex[1:]
    return _FLOATING, regex  # pathspec's special cases: "." for "**", "/" for "*/" and "**/"


Parts = tuple[tuple[int, str], ...]

# Translations read back from an authenticated compiled-policy entry (gatekeeper/policy/compiled_cache.py), made by
# this same code under the same pathspec, Python and gatekeeper versions: set only while that entry's document is
# validated, so the warm hook need not import pathspec to translate the patterns again.
_known: dict[tuple[str, MatchOptions], Parts] = {}


class known_translations:
    """``with known_translations(options, {pattern: parts}):`` use these translations instead of pathspec's."""

    def __init__(self, options: MatchOptions, parts: dict[str, Parts]) -> None:
        self._items = {(pattern, options): value for pattern, value in parts.items()}

    def __enter__(self) -> None:
        _known.update(self._items)

    def __exit__(self, *exc: object) -> None:
        _known.clear()


def translations(patterns: Iterable[str], options: MatchOptions) -> dict[str, Parts]:
    """The parts of each (already validated) pattern, to store for :class:`known_translations`."""
    return {pattern: _pattern_parts(pattern, options) for pattern in patterns}


def _pattern_parts(pattern: str, options: MatchOptions) -> Parts:
    """The (kind, expression) parts of one pattern; raises _NeverMatches if it is unusable."""
    known = _known.get((pattern, options))
    return known if known is not None else _translate(pattern, options)


@functools.lru_cache(maxsize=4096)
def _translate(pattern: str, options: MatchOptions) -> Parts:
    """pathspec's translation of one pattern into parts (see _pattern_parts).

    Cached: the linter, each rule and the policy-wide matcher all translate the same patterns.
    """
    text = _normalise_text(pattern, options)
    regexes = [_pattern_regex(text)]
    base = text[:-3]
    if text.endswith("/**") and base.strip("/*"):
        # "dir/**" also matches "dir" itself: replacing the protected directory by a file, symlink or submodule at
        # the same path is a change to what the rule protects (gitignore's "dir/**" would not match it).
        regexes.append(_pattern_regex(base if base.startswith("/") else "/" + base))
    parts = tuple(_classify(regex) for regex in regexes)
    if len(parts) == 2 and parts[0][0] == parts[1][0] and parts[0][1][:-1] + r"(?:/|\Z)" == parts[1][1]:
        return parts[1:]  # "dir(?:/|\Z)" already covers "dir/": one alternative fewer to try on every path
    return parts


def _compile_one(pattern: str, options: MatchOptions) -> None:
    for _, regex in _pattern_parts(pattern, options):
        try:
            re.compile(regex, re.DOTALL)
        except re.error as exc:  # e.g. a reversed range "[z-a]"; the position would be in our expression: drop it
            raise _NeverMatches(f"is not a valid glob ({exc.msg})") from exc


class _Compiled:
    """Up to three expressions that together match a set of patterns."""

    __slots__ = ("anchored", "floating", "component", "test")

    def __init__(self, parts: Iterable[tuple[int, str]]) -> None:
        by_kind: dict[int, list[str]] = {_ANCHORED: [], _FLOATING: [], _COMPONENT: []}
        for kind, regex in parts:
            if regex not in by_kind[kind]:
                by_kind[kind].append(regex)

        def join(kind: int) -> re.Pattern[str] | None:
            items = by_kind[kind]
            if not items:
                return None
            try:
                return re.compile(items[0] if len(items) == 1 else "|".join(f"(?:{r})" for r in items), re.DOTALL)
            except re.error as exc:
                raise _NeverMatches(f"is not a valid glob ({exc.msg})") from exc

        self.anchored = join(_ANCHORED)
        self.floating = join(_FLOATING)
        self.component = join(_COMPONENT)
        # The common single-kind cases skip the Python-level dispatch below (a third of the cost per call).
        self.test: Callable[[str], object] = self._test
        if self.component is None and self.floating is None and self.anchored is not None:
            self.test = self.anchored.match
        elif self.component is None and self.anchored is None and self.floating is not None:
            self.test = self.floating.search

    def __call__(self, text: str) -> bool:
        return bool(self.test(text))

    def _test(self, text: str) -> bool:
        if self.anchored is not None and self.anchored.match(text):
            return True
        if self.floating is not None and self.floating.search(text):
            return True
        return self.component is not None and self.component_hit(text)

    def component_hit(self, text: str) -> bool:
        """Whether the component expression matches at the start of a path component."""
        # Search anywhere, accept only at a component start (a lookbehind would disable re's prefix scan).
        assert self.component is not None
        search = self.component.search
        pos = 0
        while (found := search(text, pos)) is not None:
            start = found.start()
            if start == 0 or text[start - 1] == "/":
                return True
            pos = start + 1
        return False


class RuleIndex:
    """Which of several matchers match a path, in few ``re`` calls: the engine behind ``Policy.rules_for``.

    One combined check of every pattern answers most paths ("no rule"). For a path that matches, only the matchers
    that have an expression of a kind that matched are asked, each with a single ``re`` call.
    """

    __slots__ = ("normalise", "_matchers", "_any", "_by_kind", "_by_top", "_folder_index")

    def __init__(self, matchers: Sequence[PathMatcher], normaliser: PathNormaliser) -> None:
        self.normalise = normaliser
        self._matchers = tuple(matchers)
        self._any: _Compiled | None = None
        self._by_kind: tuple[list[tuple[int, Callable[[str], object]]], ...] = ([], [], [])  # anchored unused
        # Anchored expressions by the literal first path component they require ("models" for "models/**"); those
        # whose first component is a wildcard are under None and always asked.
        self._by_top: dict[str | None, list[tuple[int, Callable[[str], object]]]] = {}
        self._folder_index: _FolderIndex | None = None  # for which_many, built on first use

    def _build(self) -> _Compiled:
        _, floating, component = self._by_kind
        for index, matcher in enumerate(self._matchers):
            compiled = matcher._get()
            if compiled.anchored is not None:
                tops = {_literal_top(pattern, self.normalise.options)
                        for pattern, parts in zip(matcher._patterns, matcher._parts)
                        if any(kind == _ANCHORED for kind, _ in parts)}
                for top in (None,) if None in tops else tops:
                    self._by_top.setdefault(top, []).append((index, compiled.anchored.match))
            if compiled.floating is not None:
                floating.append((index, compiled.floating.search))
            if compiled.component is not None:
                # The lookbehind costs re its prefix scan but saves the Python loop of component_hit().
                lookbehind = re.compile(f"(?<![^/])(?:{compiled.component.pattern})", re.DOTALL)
                component.append((index, lookbehind.search))
        self._any = _Compiled(part for matcher in self._matchers for parts in matcher._parts for part in parts)
        return self._any

    def which(self, path: bytes) -> list[int]:
        """Indexes (ascending) of the matchers that match ``path``."""
        return self._which_text(self.normalise(path))

    def _which_text(self, text: str) -> list[int]:
        """:meth:`which` for an already normalised path."""
        any_ = self._any or self._build()
        groups = []
        if any_.anchored is not None and any_.anchored.match(text):
            candidates = self._by_top.get(text.partition("/")[0], [])
            always = self._by_top.get(None)
            groups.append(sorted(candidates + always) if always else candidates)
        if any_.floating is not None and any_.floating.search(text):
            groups.append(self._by_kind[_FLOATING])
        if any_.component is not None and any_.component_hit(text):
            groups.append(self._by_kind[_COMPONENT])
        if not groups:
            return []
        if len(groups) == 1:
            return [index for index, test in groups[0] if test(text)]
        return sorted({index for tests in groups for index, test in tests if test(text)})

    def which_many(self, paths: Sequence[bytes]) -> list[tuple[int, ...]]:
        """:meth:`which` of each of ``paths`` (as tuples, in the same order), for a whole change set at once.

        The same answers for far fewer Python steps per path (see :class:`_FolderIndex`): ASCII paths are normalised
        in one pass over all of them, and what a path's folder decides is decided once per folder.
        """
        paths = list(paths)
        if not paths:
            return []
        joined = b"\0".join(paths)
        if joined.count(b"\0") != len(paths) - 1:  # a NUL in a path (no git path has one): path by path
            return [tuple(self.which(path)) for path in paths]
        if not joined.isascii():
            out: list[tuple[int, ...] | None] = [None] * len(paths)
            plain = [i for i, path in enumerate(paths) if path.isascii()]
            for i, path in enumerate(paths):
                if not path.isascii():
                    out[i] = tuple(self.which(path))
            for i, found in zip(plain, self.which_many([paths[i] for i in plain])):
                out[i] = found
            return [found if found is not None else () for found in out]
        # normalise_path on an ASCII path: decode, lower-case when matching ignores case (one C call for all).
        text = joined.decode("ascii")
        if self.normalise.options.case_insensitive:
            text = text.lower()
        return self._folders().which_texts(text.split("\0"))

    def _folders(self) -> _FolderIndex:
        folders = self._folder_index
        if folders is None:
            if self._any is None:
                self._build()
            folders = self._folder_index = _FolderIndex(self)
        return folders


# A pathspec expression (after _pattern_regex) ends with one of these: "this, or a directory with paths beneath it"
# or "a directory with paths beneath it" (a pattern with a trailing slash).
_END_OR_DIR = r"(?:/|\Z)"
_DIR = "/"


def _parse_regex(regex: str) -> list[tuple[object, object]]:
    # The parser re itself compiles with (re._parser since Python 3.11, as setup.cfg requires; typeshed has no stub).
    parser = importlib.import_module("re._parser")
    return list(parser.parse(regex, re.DOTALL).data)


# Operators that only consume characters (no anchors, lookarounds, back references, conditionals): what such an
# expression matches on a stretch of text depends on that stretch alone.
_CONSUMING = frozenset({"LITERAL", "NOT_LITERAL", "ANY", "IN", "MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT",
                        "SUBPATTERN", "BRANCH"})


def _only_consuming(items: Iterable[tuple[object, object]]) -> bool:
    for op, arg in items:
        name = str(op)
        if name not in _CONSUMING:
            return False
        if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            assert isinstance(arg, tuple)
            if not _only_consuming(arg[2]):
                return False
        elif name == "SUBPATTERN":
            assert isinstance(arg, tuple)
            if not _only_consuming(arg[3]):
                return False
        elif name == "BRANCH":
            assert isinstance(arg, tuple)
            if not all(_only_consuming(branch) for branch in arg[1]):
                return False
    return True


@functools.lru_cache(maxsize=4096)
def _split_end(regex: str) -> tuple[str, bool] | None:
    """``(body, may_end_at_end)`` when ``regex`` is ``body`` followed by ``(?:/|\\Z)`` (True) or by ``/`` (False), and
    ``body`` only consumes characters; None for any other shape (such a pattern is then matched path by path).

    Checked on the parsed expression, not only on its text: ``body`` must compile alone and parse to as many items as
    ``regex`` has before its ending, which rules out a top-level ``|`` in ``body`` (``a|b/`` is not ``(?:a|b)/``).
    """
    for ending, at_end in ((_END_OR_DIR, True), (_DIR, False)):
        if not regex.endswith(ending):
            continue
        body = regex[: -len(ending)]
        try:
            body_items = _parse_regex(body)
            if len(_parse_regex(regex)) != len(body_items) + len(_parse_regex(ending)):
                return None
        except re.error:
            return None
        return (body, at_end) if _only_consuming(body_items) else None
    return None


class _FolderIndex:
    """Which matchers match many paths, deciding per folder what the folder decides. Exact, by this argument:

    Every expression pathspec gives us is ``B E``: a body ``B`` that only consumes characters, then ``E``, either
    ``/`` or ``(?:/|\\Z)``. Take a path ``d/n`` (``n`` a file name: no ``/``). A match of ``B E`` in it either ends
    within ``d/``, or goes on into ``n``. Ending within ``d/``, it ends with a ``/`` of ``d/`` (``\\Z`` is only at the
    end of the whole path), so it is a match of ``B/`` in the string ``d/``; whether one exists depends on ``d`` alone,
    and the start positions allowed (the path's start, anywhere, a component's start) are the same in ``d/`` as in
    the path. Going on into ``n``, its last character is in ``n``, so it is no ``/``: ``E`` matched ``\\Z``, and ``B``
    matched from the start position to the end of the path, a match of ``B\\Z``; with ``E`` = ``/`` that cannot
    happen at all. So ``B E`` matches ``d/n`` exactly when ``B/`` matches ``d/`` or ``B\\Z`` matches ``d/n``, and a
    path needs its own test only for the ``B\\Z`` expressions (which rarely match: the path must end in the pattern)
    and for matchers with an expression of another shape (``**``). Paths without a folder are matched as by
    :meth:`RuleIndex.which`.
    """

    __slots__ = ("_index", "_folder", "_tail", "_tail_any", "_slow", "_by_folder")

    def __init__(self, index: RuleIndex) -> None:
        self._index = index
        folder: list[tuple[int, Callable[[str], object]]] = []
        tail: list[tuple[int, Callable[[str], object]]] = []
        tail_any: dict[int, list[str]] = {_ANCHORED: [], _FLOATING: [], _COMPONENT: []}  # expressions by kind
        self._slow: list[tuple[int, Callable[[str], object]]] = []
        for number, matcher in enumerate(index._matchers):
            parts = [part for parts in matcher._parts for part in parts]
            split = [_split_end(regex) for _, regex in parts]
            if any(s is None for s in split):
                self._slow.append((number, matcher._get().test))
                continue
            for (kind, _), found in zip(parts, split):
                assert found is not None
                body, at_end = found
                folder.append((number, _kind_test(kind, f"(?:{body})/")))
                if at_end:
                    tail.append((number, _kind_test(kind, f"(?:{body})\\Z")))
                    tail_any[kind].append(f"(?:{body})\\Z")
        self._folder = folder
        self._tail = tail
        # One expression per kind for all of them (the rare hit then asks each expression on its own). A component
        # expression is first searched for anywhere, which lets re scan for its literal prefix, and only then with
        # the lookbehind: a superset, then the exact test.
        def combined(kind: int, component_start: bool = False) -> Callable[[str], object] | None:
            regexes = tail_any[kind]
            if not regexes:
                return None
            regex = "|".join(f"(?:{regex})" for regex in regexes)
            if component_start:
                regex = f"(?<![^/])(?:{regex})"
            compiled = re.compile(regex, re.DOTALL)
            return compiled.match if kind == _ANCHORED else compiled.search

        self._tail_any = (combined(_ANCHORED), combined(_FLOATING), combined(_COMPONENT),
                          combined(_COMPONENT, True))
        self._by_folder: dict[str, tuple[int, ...]] = {}

    def _folder_hits(self, folder: str) -> tuple[int, ...]:
        """Matchers with an expression that matches ``folder`` (a normalised folder path ending in ``/``) within it."""
        hits = self._by_folder.get(folder)
        if hits is None:
            if len(self._by_folder) >= _CACHE_MAX:
                self._by_folder.clear()
            hits = self._by_folder[folder] = tuple(sorted({number for number, test in self._folder if test(folder)}))
        return hits

    def which_texts(self, texts: Iterable[str]) -> list[tuple[int, ...]]:
        """:meth:`RuleIndex.which` (as tuples) for each of the normalised paths ``texts``."""
        out: list[tuple[int, ...]] = []
        append = out.append
        anchored, floating, component, component_start = self._tail_any
        slow = self._slow
        by_folder = self._by_folder
        for text in texts:
            cut = text.rfind("/")
            if cut < 0:
                append(tuple(self._index._which_text(text)))
                continue
            folder = text[: cut + 1]
            hits = by_folder.get(folder)
            if hits is None:
                hits = self._folder_hits(folder)
            if (slow or (anchored is not None and anchored(text)) or (floating is not None and floating(text))
                    or (component is not None and component(text) and component_start is not None
                        and component_start(text))):
                found = set(hits)
                found.update(number for number, test in self._tail if number not in found and test(text))
                found.update(number for number, test in slow if number not in found and test(text))
                if len(found) != len(hits):
                    hits = tuple(sorted(found))
            append(hits)
        return out


def _kind_test(kind: int, regex: str) -> Callable[[str], object]:
    """The test that runs ``regex`` from the start positions ``kind`` allows (see _classify)."""
    if kind == _ANCHORED:
        return re.compile(regex, re.DOTALL).match
    if kind == _FLOATING:
        return re.compile(regex, re.DOTALL).search
    return re.compile(f"(?<![^/])(?:{regex})", re.DOTALL).search


def _literal_top(pattern: str, options: MatchOptions) -> str | None:
    """The first path component an anchored pattern requires literally (normalised), or None if it is a wildcard."""
    top = _normalise_text(pattern, options).lstrip("/").split("/", 1)[0]
    return None if any(ch in top for ch in "*?[\\") else top


class PathNormaliser:
    """:func:`normalise_path` with a bounded cache, shared by all matchers of one policy.

    The gate asks every rule about the same paths; normalising each path once keeps ``rules_for`` cheap.
    """

    __slots__ = ("options", "_cache")

    def __init__(self, options: MatchOptions) -> None:
        self.options = options
        self._cache: dict[bytes, str] = {}

    def __call__(self, path: bytes) -> str:
        text = self._cache.get(path)
        if text is None:
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            text = self._cache[path] = normalise_path(path, self.options)
        return text


class PathMatcher:
    """A compiled set of path patterns: ``match(path)`` tells whether any of them matches.

    The patterns are compiled once into at most three expressions (see ``_classify``), so a few ``re`` calls decide
    for all of them.
    """

    __slots__ = ("normalise", "_patterns", "_parts", "_compiled")

    def __init__(self, patterns: Sequence[str], normaliser: PathNormaliser | MatchOptions) -> None:
        if not patterns:
            raise ValueError("a PathMatcher needs at least one pattern")
        if isinstance(normaliser, MatchOptions):
            normaliser = PathNormaliser(normaliser)
        self.normalise = normaliser
        self._patterns = tuple(patterns)
        self._parts = tuple(_pattern_parts(p, normaliser.options) for p in self._patterns)
        # Compiled on first use: most pushes go to unprotected refs and never match a path, and compiling is most of
        # the cost of loading a policy.
        self._compiled: _Compiled | None = None

    def _get(self) -> _Compiled:
        compiled = self._compiled
        if compiled is None:
            compiled = self._compiled = _Compiled(part for parts in self._parts for part in parts)
        return compiled

    @property
    def patterns(self) -> tuple[str, ...]:
        return self._patterns

    def match(self, path: bytes) -> bool:
        return bool(self._get().test(self.normalise(path)))

    def first_match(self, path: bytes) -> str | None:
        """The first pattern (as written) that matches ``path``, for explanations (compiled on demand)."""
        text = self.normalise(path)
        for pattern, parts in zip(self._patterns, self._parts):
            if _Compiled(parts)(text):
                return pattern
        return None

    def may_match_below(self, path: bytes) -> bool:
        """Whether some path *inside* directory ``path`` could match (conservatively: True when unsure).

        For entries that bring content the tree diff does not show: a submodule (gitlink) or a symlink to a directory
        at ``path``. Patterns that match at any depth (``*.bin``, ``**/x``) can match below any directory; an anchored
        pattern can when its literal prefix (up to the first wildcard or escape) and ``path/`` are prefix-related.
        """
        directory = self.normalise(path) + "/"
        for pattern in self._patterns:
            text = _normalise_text(pattern, self.normalise.options).strip("/")
            if "/" not in text or text.startswith("**"):
                return True  # matches at any depth
            prefix = re.split(r"[*?\[\\]", text, maxsplit=1)[0]
            if prefix.startswith(directory) or directory.startswith(prefix):
                return True
        return False


def check_ref_pattern(pattern: object) -> str | None:
    """Why ``pattern`` is not a usable ref pattern, or None when it is."""
    if not isinstance(pattern, str):
        return f"a ref pattern must be a string, not {_type_name(pattern)}"
    if not pattern.startswith("refs/"):
        return f"ref pattern {pattern!r} must be a full ref name starting with 'refs/' (e.g. 'refs/heads/main')"
    bad = sorted({ch for ch in pattern if ch in "[\\ ~^:" or ord(ch) < 0x20 or ord(ch) == 0x7F})
    if bad:
        return f"ref pattern {pattern!r} contains {''.join(bad)!r}, which git forbids in ref names"
    for component in pattern.split("/"):
        if component in ("", ".", ".."):
            return f"ref pattern {pattern!r} has an empty, '.' or '..' component"
        if "**" in component and component != "**":
            return f"ref pattern {pattern!r}: '**' must be a whole component (like 'refs/heads/release/**')"
    if pattern.endswith(".lock") or pattern.endswith("."):
        return f"ref pattern {pattern!r} cannot match a ref name (git forbids a trailing '.' or '.lock')"
    return None


def _ref_regex(pattern: str) -> str:
    parts: list[str] = []
    components = pattern.split("/")
    last = len(components) - 1
    for i, component in enumerate(components):
        if component == "**":
            # "a/**/b" matches a/b, a/x/b, a/x/y/b; a trailing "a/**" matches everything strictly below a.
            parts.append("(?:/[^/]+)+" if i == last else "(?:/[^/]+)*")
            continue
        text = "".join("[^/]*" if ch == "*" else "[^/]" if ch == "?" else re.escape(ch) for ch in component)
        parts.append(text if i == 0 else "/" + text)
    return "".join(parts) + r"\Z"


class RefMatcher:
    """A compiled set of ref patterns (see the module docstring)."""

    __slots__ = ("_patterns", "_flags", "_regex")

    def __init__(self, patterns: Iterable[str], *, case_insensitive: bool = False) -> None:
        self._patterns = tuple(patterns)
        self._flags = re.IGNORECASE if case_insensitive else 0
        self._regex = (
            re.compile("|".join(f"(?:{_ref_regex(p)})" for p in self._patterns), self._flags)
            if self._patterns else None
        )

    def match(self, ref: str) -> bool:
        return self._regex is not None and self._regex.match(ref) is not None

    def first_match(self, ref: str) -> str | None:
        """The first pattern that matches ``ref`` (compiled on demand: for explanations only)."""
        for pattern in self._patterns:
            if re.match(_ref_regex(pattern), ref, self._flags):
                return pattern
        return None


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    for kind, name in ((bool, "a boolean"), (int, "a number"), (float, "a number"), (str, "a string"),
                       (list, "a list"), (dict, "a mapping")):
        if isinstance(value, kind):
            return name
    return type(value).__name__
