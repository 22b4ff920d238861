"""Orchestration of the text-side detectors: remote-code analysis of a ref update, and ``gatekeeper scan`` on files.

``analyse_remote_code(tree, changed)`` — which configs are read (cost scales with the changed files plus the configs
that may reference them, never with the whole tree's contents):

1. every changed config-like file (``*.json``, ``*.yaml``, ``*.yml``, ``hubconf.py``, ``pipeline.py``,
   ``custom_generate/generate.py`` and ``requirements.txt``);
2. only when a ``.py`` file changed: the config-like files in the changed file's folder and its ancestors (an
   ``auto_map`` module path can hold ``/`` but never ``..``, so a JSON can only reference files below its own folder or,
   for a root-level module, the root: when a root-level ``.py`` changed, every JSON is read), plus every YAML file
   (Hydra ``_target_`` dotted paths can point anywhere). Listing the tree reads names only, no blobs.

JSON files are pre-filtered by bytes (``remote_code.may_hold_trigger``), so a 30 MB ``tokenizer.json`` costs one
substring search; unchanged plain YAML read only to learn its ``_target_`` values is matched by a regular expression
instead of parsed. Measured (100k-path tree, 200 Hydra YAML files, a busy 2-core machine): no ``.py`` or config
changed 0.1 ms; one ``.py`` changed about 70 ms of CPU, nearly all of it the pass over the tree's names.
Known limit: only a changed ``.py`` (or config) starts the search for configs that reference it; a changed non-Python
file that a module ``exec``s is protected only when a trigger's config is read for another reason.

Each trigger's Python closure (``import_closure``) is read once; every file in it is *protected*
(the hook requires approval when one changes, as if a rule named it). For Hugging Face style triggers, every other
``.py`` under the config's folder is protected too (ml-artifacts.md §5.1 rule 3: dynamic imports cannot be ruled out).

Verdicts: a trigger added or changed in a changed config, or a protected file changed: ``review-required`` with the
chain as evidence; a deny-listed Hydra/jsonargparse target in a changed config: ``malicious`` (see ``remote_code``);
a cap exceeded: ``unscannable``; risky loader calls in changed Python and risky loader settings in changed configs:
``hint``.

Integration (the hook), per protected ref update::

    new = RepoTreeView(repo, new_tree)                     # old = RepoTreeView(repo, old_tree) when there is one
    report = analyse_remote_code(new, [c.path for c in changes], old=old, hints=False)
    protected = {**report.protected, **implicit_protected_paths(changes, rules_match, read_blob=repo.read_blob)}
    # -> a built-in rule over ``protected`` (changed paths only), ``report.findings`` into the decision and the record

and for every new blob: ``lfs.lfs_findings(path, data, lfs_store=..., scan_blob=...)`` first (None: not a pointer),
then ``content.scan_blob``.
"""

from __future__ import annotations

import dataclasses
import importlib
import mmap
import os
import posixpath
import stat
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from gatekeeper.checkout import fold_path
from gatekeeper.detectors.remote_code import (
    ConfigError,
    Trigger,
    TreeView,
    checkout_locator,
    extract_triggers,
    is_config_name,
    may_hold_trigger,
)
from gatekeeper.errors import ScanError
from gatekeeper.model import MODE_BLOB, MODE_EXEC, MODE_LINK, MODE_TREE, Finding, Verdict, display_path

if TYPE_CHECKING:  # ast (import_closure, python_hints) loads only when a push needs it
    from gatekeeper.detectors import import_closure
    from gatekeeper.model import Change

DETECTOR = "remote-code"
MAX_CONFIGS = 5000  # configs read for one ref update; above: unscannable (fail closed), never a partial pass
MAX_HINT_BYTES = 8 * 1024 * 1024  # Python source read for (non-blocking) hints per analysis

# Triggers whose loader treats the config's folder as a code folder (transformers/diffusers/ST/torch.hub).
_FOLDER_KINDS = frozenset({
    "auto_map", "custom_pipelines", "custom_generate", "diffusers", "diffusers-component", "diffusers-pipeline",
    "sentence-transformers", "hubconf",
})
# References that must resolve to a file of this repository (a missing file is a dangling reference).
_MUST_RESOLVE = frozenset({"auto_map", "custom_pipelines", "diffusers", "sentence-transformers"})


@dataclass
class RemoteCodeReport:
    """``findings`` for the reviewer and the gate; ``protected``: path -> reason, for the hook's built-in rule."""

    findings: list[Finding] = field(default_factory=list)
    protected: dict[bytes, str] = field(default_factory=dict)


def _show(path: bytes) -> str:
    return display_path(path)


class _CachedTree:
    """Reads each blob at most once per analysis."""

    def __init__(self, tree: TreeView) -> None:
        self.tree = tree
        self._cache: dict[bytes, bytes | None] = {}

    def read(self, path: bytes) -> bytes | None:
        if path not in self._cache:
            self._cache[path] = self.tree.read(path)
        return self._cache[path]

    def exists(self, path: bytes) -> bool:
        return path in self._cache and self._cache[path] is not None or self.tree.mode(path) is not None


def locator(tree: TreeView) -> Callable[[bytes], bytes | None]:
    """Where a checkout finds a file in ``tree`` (remote_code.checkout_locator): folder by folder in a repository's
    tree, from the full listing elsewhere (folders on disk and test trees are small)."""
    return tree.locate if isinstance(tree, RepoTreeView) else checkout_locator(tree)


def _ancestors(path: bytes) -> Iterator[bytes]:
    folder = posixpath.dirname(path)
    while True:
        yield folder
        if not folder:
            return
        folder = posixpath.dirname(folder)


def _is_trigger_file(path: bytes, tree: _CachedTree) -> bool:
    if posixpath.basename(path) != b"pipeline.py":
        return is_config_name(path)
    # diffusers loads pipeline.py from a repository root or next to a model_index.json; elsewhere it is just code
    folder = posixpath.dirname(path)
    return not folder or tree.exists(posixpath.join(folder, b"model_index.json"))


def _configs_to_read(tree: _CachedTree, changed: list[bytes]) -> list[bytes]:
    wanted = {p for p in changed if _may_be_config(p) and _is_trigger_file(p, tree)}
    # The folder (up to and with its last "/", b"" at the root) of every changed .py, each once.
    py_folders = {p[:p.rfind(b"/") + 1] for p in changed if p.endswith(b".py")}
    if py_folders:
        # Ancestors of every changed .py; sibling files share folders, so stop climbing at a folder already seen
        # (a push of 100k files otherwise costs ~10 dirname calls per file).
        folders: set[bytes] = set()
        # Each distinct folder once: dirname(p) is dirname of p up to its last "/" (a push has far fewer folders).
        for p in py_folders:
            for a in _ancestors(p):
                if a in folders:
                    break
                folders.add(a)
        root_level = b"" in py_folders  # a changed .py with no "/": posixpath.dirname(p) is empty
        # One pass over the names of the tree (no blob reads), listing only what the cheap suffix test keeps where
        # the tree can (RepoTreeView.paths_where). A changed path adds nothing here: it is in ``wanted`` already, or
        # the same tests rejected it above.
        lister = getattr(tree.tree, "paths_where", None)
        candidates = (lister(_may_be_config) if lister is not None
                      else [p for p in tree.tree.paths() if _may_be_config(p)])
        for path in candidates:
            if path in wanted or not is_config_name(path):
                continue
            lower = path.lower()
            if (lower.endswith((b".yaml", b".yml")) or posixpath.dirname(path) in folders
                    or (root_level and lower.endswith(b".json"))):
                if _is_trigger_file(path, tree):
                    wanted.add(path)
    return sorted(wanted)


_MAYBE = (b".json", b".yaml", b".yml", b"hubconf.py", b"pipeline.py", b"generate.py", b"requirements.txt")
_MAYBE_CI = (b".json", b".yaml", b".yml")


# The last byte of each _MAYBE_CI suffix, in either case: lower() maps only A-Z to a-z, so a path ending otherwise
# cannot end in one of them after lower() (a check that spares the slice and lower() of most paths).
_MAYBE_CI_LAST = (b"n", b"N", b"l", b"L")


def _may_be_config(path: bytes) -> bool:
    """False only for paths ``_is_trigger_file`` rejects (every name is_config_name accepts ends like this, and so
    does pipeline.py): a cheap suffix test in C, first on every path of a possibly huge tree or change set."""
    return path.endswith(_MAYBE) or (path[-1:] in _MAYBE_CI_LAST and path[-5:].lower().endswith(_MAYBE_CI))


# The test the remote-code analysis lists a tree with, for remembered tree listings (push/tree_listings.py): bump the
# version whenever _may_be_config (or _MAYBE, _MAYBE_CI) changes, or listings made under the old test would be used.
CONFIG_NAME_TEST = _may_be_config
CONFIG_NAME_TEST_VERSION = "1"


def _chain_text(config_label: str, chain: tuple[bytes, ...]) -> str:
    return " -> ".join([config_label, *(_show(p) for p in chain)])


def _trigger_line(trigger: Trigger, closures: dict[bytes, import_closure.Closure], tree: _CachedTree) -> str:
    line = f"{trigger.key} = {trigger.value}"
    entries = [p for alts in trigger.modules for p in alts if p in closures]
    files = list(dict.fromkeys(f for e in entries for f in closures[e].files))  # breadth-first: entry first
    if files:
        line += " -> " + ", ".join(_show(f) for f in files)
    if trigger.external:
        line += f" (code from repository {trigger.external} at a floating revision)"
    return line


def analyse_remote_code(tree: TreeView, changed: Iterable[bytes], *, old: TreeView | None = None,
                        hints: bool = True) -> RemoteCodeReport:
    """Remote-code triggers and the Python files they make run, for one ref update.

    Args:
        tree: the NEW tree.
        changed: paths that differ between the old and the new tree (added, modified, deleted).
        old: the OLD tree, if available: a changed config whose triggers are all identical in the old tree then gives
            no "trigger added or changed" finding (its files stay protected).
        hints: add reviewer hints for risky loader calls in changed Python (never blocking; the hook may skip them on
            its hot path and leave them to ``approve``). At most ``MAX_HINT_BYTES`` of source are read for hints.

    Returns:
        findings and protected paths (see module docstring).
    """
    report = RemoteCodeReport()
    cached = _CachedTree(tree)
    changed_list = sorted(set(changed))
    changed_set = set(changed_list)
    configs = _configs_to_read(cached, changed_list)
    if not configs and not any(p.endswith(b".py") for p in changed_list):
        return report
    from gatekeeper.detectors import import_closure, python_hints
    if len(configs) > MAX_CONFIGS:
        report.findings.append(Finding(
            Verdict.UNSCANNABLE, "(repository)", DETECTOR,
            f"{len(configs)} configs may reference the changed files, above the cap of {MAX_CONFIGS}",
            ("remote-code analysis incomplete: split the push",)))
        configs = sorted(configs, key=lambda c: c not in changed_set)[:MAX_CONFIGS]  # changed configs first

    per_config: list[tuple[bytes, list[Trigger]]] = []
    locate = locator(tree)
    for config in configs:
        data = cached.read(config)
        if data is None:
            continue
        try:
            found = extract_triggers(config, data, locate, quick=config not in changed_set)
        except ConfigError as exc:
            _config_error(report, config, data, exc, config in changed_set)
            continue
        if found.triggers:
            per_config.append((config, list(found.triggers)))
        if found.hints and config in changed_set:
            report.findings.append(Finding(Verdict.HINT, _show(config), DETECTOR,
                                           f"{len(found.hints)} risky loader setting(s) for the reviewer to check",
                                           found.hints))

    closures: dict[bytes, import_closure.Closure] = {}
    folder_rules: list[tuple[bytes, str]] = []
    for config, triggers in per_config:
        for trigger in triggers:
            label = trigger.label()
            report.protected.setdefault(config, f"remote-code trigger: {label}")
            for alternatives in trigger.modules:
                for entry in alternatives:
                    if entry not in closures:
                        closures[entry] = import_closure.python_closure(cached.read, entry)
                    closure = closures[entry]
                    for reached in sorted(closure.files.values(), key=lambda r: (not r.exact, len(r.chain))):
                        verb = "pulled in by" if reached.exact else "may be pulled in by (import superset)"
                        reason = f"{verb} {_chain_text(label, reached.chain)}"
                        previous = report.protected.get(reached.path)
                        if previous is None or (reached.exact and previous.startswith(("may be", "in folder"))):
                            report.protected[reached.path] = reason
                    if closure.truncated:
                        report.findings.append(Finding(
                            Verdict.UNSCANNABLE, _show(entry), DETECTOR,
                            f"import closure above {import_closure.MAX_CLOSURE_FILES} files", (label,)))
                    for big in closure.oversize:
                        report.findings.append(Finding(
                            Verdict.UNSCANNABLE, _show(big), DETECTOR,
                            f"Python file above {import_closure.MAX_SOURCE_BYTES} bytes: its imports were not "
                            f"followed", (label,)))
            if trigger.kind in _FOLDER_KINDS and trigger.follow_folder:
                folder_rules.append((posixpath.dirname(config), label))
    for path in changed_list:
        if path in report.protected or not path.endswith(b".py"):
            continue
        for folder, label in folder_rules:
            if not folder or path.startswith(folder + b"/"):
                report.protected[path] = (f"in folder of remote code loaded by {label}: any .py there may run "
                                          f"(dynamic imports cannot be ruled out)")
                break

    old_signatures = _old_signatures(old, [c for c, _ in per_config if c in changed_set])
    for config, triggers in per_config:
        if config in changed_set:
            _config_findings(report, config, triggers, closures, cached, old_signatures.get(config))
            if old_signatures.get(config) == frozenset(t.signature() for t in triggers):
                # Only other keys changed: the code this config makes run is what it was, so the edit needs only
                # the policy's own rules (the files its triggers name stay protected, and a change to them is
                # reviewed on its own).
                report.protected.pop(config, None)
                report.findings.append(Finding(
                    Verdict.HINT, _show(config), DETECTOR,
                    "config edited; its remote-code triggers are unchanged, so no extra approval is needed for it",
                    tuple(_trigger_line(t, closures, cached) for t in triggers)))
        else:
            _dangling_findings(report, config, triggers, cached, changed_set)
    flagged = {f.path for f in report.findings if f.verdict in (Verdict.REVIEW, Verdict.MALICIOUS)}
    hint_bytes = 0
    skipped: list[str] = []
    for path in changed_list:
        why = report.protected.get(path)
        if why is None and not (hints and path.endswith(b".py")):
            continue  # nothing to say about it (and no display form to build: most paths of a big push)
        shown = _show(path)
        if why is not None and shown not in flagged:
            dynamic = tuple(d for c in closures.values() for d in c.dynamic if d.startswith(shown + " "))
            exists = cached.read(path) is not None
            if why.startswith("remote-code trigger:"):
                what = "holds remote-code triggers (the triggers themselves are unchanged)"
            else:
                what = "runs when the model is loaded" if exists else "was deleted, but the model loads it"
            report.findings.append(Finding(Verdict.REVIEW, shown, DETECTOR, f"changed file {what}",
                                           (why, *dict.fromkeys(dynamic))))
        if hints and path.endswith(b".py"):
            data = cached.read(path)
            if data is None:
                continue
            hint_bytes += len(data)
            if hint_bytes > MAX_HINT_BYTES:
                skipped.append(shown)
                continue
            report.findings.extend(python_hints.python_hints(shown, data))
    if skipped:
        report.findings.append(Finding(Verdict.HINT, "(repository)", python_hints.DETECTOR,
                                       f"hints for {len(skipped)} more Python file(s) skipped (above "
                                       f"{MAX_HINT_BYTES} bytes of source per push)", tuple(skipped[:20])))
    report.findings.sort(key=lambda f: (f.path, f.verdict.value, f.message))
    return report


def _config_error(report: RemoteCodeReport, config: bytes, data: bytes, exc: ConfigError, changed: bool) -> None:
    shown = _show(config)
    if exc.cap:
        report.findings.append(Finding(Verdict.UNSCANNABLE, shown, DETECTOR,
                                       f"config cannot be analysed for remote-code triggers: {exc}"))
    elif changed:
        # Loaders use the same parsers (json, PyYAML), so an unparsable file is not loaded: but a loader with another
        # parser might, so a file that mentions trigger keys still needs a reviewer.
        needles = [n.decode() for n in (b"auto_map", b"_target_", b"custom_pipelines", b"class_path") if n in data]
        verdict = Verdict.REVIEW if needles else Verdict.HINT
        report.findings.append(Finding(verdict, shown, DETECTOR, f"config does not parse: {exc}",
                                       tuple(f"mentions {n}" for n in needles)))


def _old_signatures(old: TreeView | None, configs: list[bytes]) -> dict[bytes, frozenset[tuple[str, str, str]]]:
    out: dict[bytes, frozenset[tuple[str, str, str]]] = {}
    if old is None:
        return out
    old_locate = locator(old)
    for config in configs:
        data = old.read(config)
        if data is None:
            continue
        try:
            found = extract_triggers(config, data, old_locate)
        except ConfigError:
            continue
        out[config] = frozenset(t.signature() for t in found.triggers)
    return out


def _config_findings(report: RemoteCodeReport, config: bytes, triggers: list[Trigger],
                     closures: dict[bytes, import_closure.Closure], tree: _CachedTree,
                     old: frozenset[tuple[str, str, str]] | None) -> None:
    shown = _show(config)
    for trigger in triggers:
        if trigger.danger:
            report.findings.append(_danger_finding(shown, trigger))
        if trigger.external:
            report.findings.append(Finding(
                Verdict.REVIEW, shown, DETECTOR,
                f"external code: {trigger.key} loads {trigger.value} from repository {trigger.external} at a "
                f"floating revision (not in this push, not scannable)", (f"upstream {trigger.external}",)))
        if trigger.problem:
            report.findings.append(Finding(Verdict.REVIEW, shown, DETECTOR, f"{trigger.kind} {trigger.key}: "
                                           f"{trigger.problem}", (f"{trigger.key} = {trigger.value}",)))
    _dangling_findings(report, config, triggers, tree, None)
    new = frozenset(t.signature() for t in triggers)
    if old is not None and old == new:
        return
    added = set(new - old) if old is not None else None
    lines = tuple(("added: " if old is not None else "") + _trigger_line(t, closures, tree) for t in triggers
                  if added is None or t.signature() in added)
    removed = tuple(f"removed: {key} = {value}" for _, key, value in sorted(old - new)) if old is not None else ()
    what = ("added or changed" if old is None else "changed" if lines and removed else "added" if lines
            else "removed")
    report.findings.append(Finding(
        Verdict.REVIEW, shown, DETECTOR,
        f"remote-code trigger {what} ({len(lines) + len(removed)} trigger(s)): the code they name runs when the "
        f"model or config is loaded", lines + removed))


def _danger_finding(shown: str, trigger: Trigger) -> Finding:
    return Finding(Verdict.MALICIOUS, shown, DETECTOR,
                   f"{trigger.kind} target {trigger.value} calls a deny-listed function when the config is "
                   "instantiated",
                   (f"key {trigger.key}", str(trigger.danger)))


def dangerous_config_findings(config: bytes, data: bytes) -> list[Finding]:
    """Configs that are malicious in themselves (a Hydra ``_target_`` that is a shell call), judged from the one file
    alone, for every ref: no tree, no import closure. A file that cannot be parsed is no finding here (the protected
    refs' full analysis reports it)."""
    if not is_config_name(config):
        return []
    try:
        triggers = extract_triggers(config, data).triggers
    except (ConfigError, RecursionError, ValueError) as exc:
        # Fail closed where it matters: a file that may hold a trigger but cannot be parsed (a cap, a parser quirk)
        # could still be instantiated by a more lenient loader; one without any trigger word is no finding.
        if not may_hold_trigger(data, yaml_file=config.lower().endswith((b".yaml", b".yml"))):
            return []
        return [Finding(Verdict.UNSCANNABLE, _show(config), DETECTOR,
                        "config may name code to run but could not be parsed to check it",
                        (str(exc)[:200] or type(exc).__name__,))]
    return [_danger_finding(_show(config), t) for t in triggers if t.danger]


def _dangling_findings(report: RemoteCodeReport, config: bytes, triggers: list[Trigger], tree: _CachedTree,
                       changed: set[bytes] | None) -> None:
    for trigger in triggers:
        if trigger.kind not in _MUST_RESOLVE or trigger.external:
            continue
        for alternatives in trigger.modules:
            if any(tree.exists(p) for p in alternatives):
                continue
            if changed is not None and not changed.intersection(alternatives):
                continue
            report.findings.append(Finding(
                Verdict.REVIEW, _show(config), DETECTOR,
                f"dangling reference: {trigger.key} = {trigger.value} names a module that is not in the repository",
                tuple(f"looked for {_show(p)}" for p in alternatives)))


def implicit_protected_paths(changes: Iterable[Change], is_protected: Callable[[bytes], bool], *,
                             read_blob: Callable[[str], bytes | None] | None = None) -> dict[bytes, str]:
    """Plumbing rule (see ``gatekeeper.detectors.plumbing``): path -> reason such as ``plumbing: .gitattributes``."""
    from gatekeeper.detectors import plumbing

    return plumbing.implicit_protected_paths(changes, is_protected, read_blob=read_blob)


# --- adapters -------------------------------------------------------------------------------------------------------


class RepoReader(Protocol):
    """The part of ``gatekeeper.push.gitrepo.Repo`` the tree adapter needs (duck-typed: no import of the git module)."""

    def iter_tree(self, tree: str) -> Iterator[tuple[bytes, int, Any]]: ...

    def tree_entry(self, tree: str, path: bytes) -> tuple[int, Any] | None: ...

    def read_blob(self, oid: str, *, max_bytes: int | None = None) -> bytes: ...

    def tree_entries(self, tree: str) -> list[tuple[bytes, int, Any]]: ...

    def folders_spelled_alike(self, root: str, folder: bytes) -> list[tuple[bytes, str]]: ...


class RepoTreeView:
    """A :class:`TreeView` over one tree of the hook's repository.

    ``paths()`` walks the tree once (names only) and later lookups use that index; before it, ``read``/``mode`` look a
    single path up, so an analysis that never needs the listing never pays for it. Symlinks and submodules are not
    blobs to ``read`` (None): a module path that is a symlink is not followed into another file.
    """

    def __init__(self, repo: RepoReader, tree: str, *, max_blob_bytes: int | None = None,
                 listings: object | None = None) -> None:
        self.repo = repo
        self.tree = tree
        self.max_blob_bytes = max_blob_bytes
        self.listings = listings  # remembered tree listings for the repository's tree_paths_where, if any
        self._index: dict[bytes, tuple[int, str]] | None = None
        self._kept: tuple[Callable[[bytes], bool], dict[bytes, tuple[int, str]]] | None = None  # paths_where's

    def paths(self) -> list[bytes]:
        if self._index is None:
            self._index = {p: (mode, str(oid)) for p, mode, oid in self.repo.iter_tree(self.tree)}
        return list(self._index)

    def paths_where(self, keep: Callable[[bytes], bool]) -> list[bytes]:
        """The paths of :meth:`paths` that pass ``keep``, a test of a path's ending that no ``/`` can change (so it
        says the same of a file name and of its path). Lists only those when the repository can: a push of 50,000
        files with no config among them then builds no index of 50,000 entries. Later lookups of such paths use
        that listing, other lookups the full index (built then), exactly as after :meth:`paths`."""
        if self._index is None and self._kept is None:
            lister = getattr(self.repo, "tree_paths_where", None)
            if lister is not None:
                kept = (lister(self.tree, keep) if self.listings is None
                        else lister(self.tree, keep, listings=self.listings))
                self._kept = (keep, kept)
        if self._kept is not None and self._kept[0] is keep:
            return list(self._kept[1])
        return [p for p in self.paths() if keep(p)]

    def _entry(self, path: bytes) -> tuple[int, str] | None:
        if self._index is not None:
            return self._index.get(path)
        if self._kept is not None:
            keep, kept = self._kept
            if keep(path):
                return kept.get(path)
            self.paths()  # a lookup the partial listing cannot answer: as after paths()
            assert self._index is not None
            return self._index.get(path)
        found = self.repo.tree_entry(self.tree, path)
        return None if found is None else (found[0], str(found[1]))

    def read(self, path: bytes) -> bytes | None:
        entry = self._entry(path)
        if entry is None or entry[0] not in (MODE_BLOB, MODE_EXEC):
            return None
        return self.repo.read_blob(entry[1], max_bytes=self.max_blob_bytes)

    def mode(self, path: bytes) -> int | None:
        entry = self._entry(path)
        return None if entry is None else entry[0]

    def locate(self, path: bytes) -> bytes | None:
        """Where a checkout finds ``path``: itself, else (macOS and Windows fold case) an entry spelled alike, looked
        for folder by folder, every folder spelled alike included, without listing the whole tree."""
        if self.mode(path) is not None:
            return path
        folder, _, name = path.rpartition(b"/")
        want = fold_path(name)
        for found, tree in self.repo.folders_spelled_alike(self.tree, folder):
            for entry, mode, _ in self.repo.tree_entries(tree):
                if mode != MODE_TREE and fold_path(entry) == want:
                    return (found + b"/" if found else b"") + entry
        return None


# --- gatekeeper scan: files and folders outside git -------------------------------------------------------------------


class ScanInputError(ScanError):
    """A path given to ``gatekeeper scan`` does not exist or cannot be listed."""

    default_hint = "pass existing files or folders"


class FsTree:
    """A folder on disk seen as a :class:`TreeView` (symlinks are reported, never followed)."""

    def __init__(self, root: Path, *, shallow: bool = False) -> None:
        self.root = root
        self._real = os.path.realpath(root)
        self._shallow = shallow  # a single file given on the command line: list its folder, not the whole subtree

    def paths(self) -> Iterator[bytes]:
        base = os.fsencode(self.root)
        if self._shallow:
            with os.scandir(base) as entries:
                yield from sorted(e.name for e in entries if not e.is_dir(follow_symlinks=False))
            return
        for folder, dirs, files in os.walk(base, followlinks=False):
            dirs[:] = sorted(d for d in dirs if d != b".git")
            rel = os.path.relpath(folder, base)
            for name in sorted(files) + [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
                yield name if rel == b"." else rel + b"/" + name

    def _full(self, path: bytes) -> bytes | None:
        if path.startswith(b"/") or b".." in path.split(b"/"):
            return None
        full = os.path.join(os.fsencode(self.root), path)
        # every component must stay inside the root (no symlinked folders on the way)
        if os.path.realpath(os.path.dirname(full)) != os.path.join(os.fsencode(self._real),
                                                                    os.path.dirname(path)).rstrip(b"/"):
            return None
        return full

    def read(self, path: bytes) -> bytes | None:
        full = self._full(path)
        if full is None:
            return None
        try:
            fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            with os.fdopen(fd, "rb", closefd=False) as fh:
                return fh.read()
        finally:
            os.close(fd)

    def mode(self, path: bytes) -> int | None:
        full = self._full(path)
        if full is None:
            return None
        try:
            st = os.lstat(full)
        except OSError:
            return None
        if stat.S_ISLNK(st.st_mode):
            return MODE_LINK
        if stat.S_ISREG(st.st_mode):
            return MODE_EXEC if st.st_mode & 0o111 else MODE_BLOB
        return None


_TEXT_SUFFIXES = (".py", ".json", ".yaml", ".yml", ".md", ".txt", ".cfg", ".toml", ".ini", ".gitattributes",
                  ".gitmodules", ".lfsconfig", ".gitignore")


@contextmanager
def _mapped(path: Path) -> Iterator[bytes | mmap.mmap]:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        if os.fstat(fd).st_size == 0:
            yield b""
            return
        with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as mapped:
            yield mapped
    finally:
        os.close(fd)


class _BinaryScanner:
    """Calls the binary detectors (``gatekeeper.detectors.content``), imported on first use.

    Without them nothing but known text files can be cleared: every other file is unscannable (fail closed).
    """

    def __init__(self, options: Any) -> None:
        self.options = options
        self.content: Any = None
        self.missing = False

    def max_bytes(self) -> int | None:
        """The binary detectors' size cap (``ScanOptions.max_bytes``), if known."""
        self._load()
        options = self.options if self.options is not None or self.content is None else self.content.ScanOptions()
        value = getattr(options, "max_bytes", None)
        return value if isinstance(value, int) else None

    def _load(self) -> None:
        if self.content is None and not self.missing:
            try:
                # by name: the module is built on branch "pickle" and may not be installed
                self.content = importlib.import_module("gatekeeper.detectors.content")
            except ImportError:
                self.missing = True

    def __call__(self, path: str, data: bytes | memoryview | mmap.mmap) -> list[Finding]:
        self._load()
        if self.content is None:
            name = path.split("!lfs:")[0]  # an LFS object is judged by the name of its pointer file
            if name.lower().endswith(_TEXT_SUFFIXES) and b"\0" not in bytes(data[:65536]):
                return []
            return [Finding(Verdict.UNSCANNABLE, path, "content",
                            "binary detectors are not installed (gatekeeper.detectors.content): cannot scan this file")]
        options = self.options if self.options is not None else self.content.ScanOptions()
        return list(self.content.scan_blob(path, data, options))


def _collect(paths: Iterable[Path]) -> list[tuple[Path, FsTree, list[bytes]]]:
    """(folder shown to the user, tree, relative paths) per argument."""
    out: list[tuple[Path, FsTree, list[bytes]]] = []
    for given in paths:
        if os.path.islink(given) or given.is_file():
            name = [os.fsencode(given.name)]
            out.append((given.parent, FsTree(given.parent, shallow=True), name))
        elif given.is_dir():
            tree = FsTree(given)
            out.append((given, tree, list(tree.paths())))
        elif not os.path.lexists(given):
            raise ScanInputError(f"no such file or folder: {given}")
        else:
            raise ScanInputError(f"not a regular file or folder: {given}")
    return out


def scan_files(paths: Iterable[Path], *, options: Any = None, lfs_store: Path | None = None) -> list[Finding]:
    """Run every detector on files and folders outside git (``gatekeeper scan``).

    Each folder is analysed as a tree in which every file changed; a single file as a tree of its folder (listed, not
    walked) in which only it changed. Findings name paths as given on the command line.

    Args:
        paths: files and folders.
        options: ``gatekeeper.detectors.content.ScanOptions`` (profile, extra allowed globals, caps); None: defaults.
        lfs_store: an LFS object store (Gitea ``data/lfs``, GitLab ``shared/lfs-objects``) to resolve pointers in.

    Raises:
        ScanInputError: a path does not exist.
    """
    binary = _BinaryScanner(options)
    findings: list[Finding] = []
    lfs_cache: dict[str, tuple[str, list[Finding]]] = {}
    for shown_root, fs, rels in _collect(paths):
        def shown(rel: bytes | str, _root: Path = shown_root) -> str:
            text = rel if isinstance(rel, str) else display_path(rel)
            return text if str(_root) in ("", ".") else f"{_root}/{text}"

        report = analyse_remote_code(fs, rels)
        findings.extend(dataclasses.replace(f, path=shown(f.path)) for f in report.findings)
        for rel in rels:
            full = fs.root / os.fsdecode(rel)
            findings.extend(_scan_one(full, shown(rel), binary, lfs_store, lfs_cache))
    return findings


def _scan_one(full: Path, shown: str, binary: _BinaryScanner, lfs_store: Path | None,
              lfs_cache: dict[str, tuple[str, list[Finding]]]) -> list[Finding]:
    try:
        st = os.lstat(full)
    except OSError as exc:
        return [Finding(Verdict.UNSCANNABLE, shown, "scan", f"cannot read: {exc.strerror}")]
    if stat.S_ISLNK(st.st_mode):
        return [Finding(Verdict.HINT, shown, "scan", f"symlink to {os.readlink(full)} not followed")]
    if not stat.S_ISREG(st.st_mode):
        return [Finding(Verdict.HINT, shown, "scan", "not a regular file: skipped")]
    from gatekeeper.detectors import lfs

    try:
        with _mapped(full) as data:
            try:
                pointer = lfs.parse_pointer(data)
            except lfs.MalformedPointer as exc:
                return [lfs.malformed_finding(shown, exc)]
            if pointer is None:
                return binary(shown, data)
            extra = binary(shown, data) if len(data) > lfs.BLOB_SIZE_CUTOFF else []
    except OSError as exc:
        return [Finding(Verdict.UNSCANNABLE, shown, "scan", f"cannot read: {exc.strerror}")]
    # verdicts are cached by oid: the same object behind many pointers is hashed and scanned once
    if pointer.oid not in lfs_cache:
        lfs_cache[pointer.oid] = (shown, lfs.scan_pointer(shown, pointer, lfs_store=lfs_store, scan_blob=binary,
                                                          max_object_bytes=binary.max_bytes()))
    first, cached = lfs_cache[pointer.oid]
    return [*extra, *(dataclasses.replace(f, path=shown + f.path[len(first):]) for f in cached)]
