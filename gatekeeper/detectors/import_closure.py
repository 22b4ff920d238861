"""The set of Python files that run when a remote-code trigger loads its entry module.

Two layers (ml-artifacts.md §5.1 "Rule"):

* **exact**: transformers' own ``get_relative_import_files`` (``dynamic_module_utils.py``), emulated quirk for quirk:
  two regexes over the whole text (indented, lazy imports inside functions match too), every match resolved against the
  directory of the *first* module, ``from . import c`` not matched, ``from .a.b import c`` giving ``a.b.py``. Files
  reached this way WILL run when the model loads.
* **superset** (ast): real Python import semantics relative to each file, package ``__init__.py`` files, absolute
  imports resolving to files of the repository (a cloned model folder or ``torch.hub`` puts its own folder on
  ``sys.path``; the root and a ``src/`` layout are tried too), literal
  ``importlib.import_module``/``__import__``/``runpy`` targets, files a module ``open``s when it also calls
  ``exec``/``eval``/``compile``, and any string literal naming a ``.py`` file. Files reached this way MAY run.
  Non-literal dynamic imports are reported, since no static closure can follow them. A file that does not parse
  (attackers can ship those: the import machinery of an older or newer Python may still accept it) falls back to a
  line-based scan of import statements.

Only files that exist in the tree are returned; reads go through a caller-supplied function, so cost is proportional
to the closure, never to the tree.
"""

from __future__ import annotations

import ast
import posixpath
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

# transformers dynamic_module_utils.get_relative_imports, verbatim.
_TF_IMPORT = re.compile(r"^\s*import\s+\.(\S+)\s*$", re.MULTILINE)
_TF_FROM = re.compile(r"^\s*from\s+\.(\S+)\s+import", re.MULTILINE)

# Fallback for files that do not parse: statements at any indentation.
_FALLBACK_FROM = re.compile(r"^\s*from\s+(\.*)([\w.]*)\s+import\s+\(?\s*([\w ,\\]+)", re.MULTILINE)
_FALLBACK_IMPORT = re.compile(r"^\s*import\s+([\w., ]+)", re.MULTILINE)
_PY_LITERAL = re.compile(r"^[\w./-]+\.py$")
_LFS_POINTER = re.compile(rb"\s*version https?://(?:git-lfs\.github\.com|hawser\.github\.com|git-media\.io)/")

# Python source bigger than this is not handed to ast (memory/time cap); the line-based scan still runs.
MAX_AST_BYTES = 8 * 1024 * 1024
# A module bigger than this is protected but its imports are not followed (reported: unscannable).
MAX_SOURCE_BYTES = 16 * 1024 * 1024
# A closure larger than this is reported as truncated (the caller turns it into an unscannable finding).
MAX_CLOSURE_FILES = 5000

_DYNAMIC_IMPORTERS = frozenset({"import_module", "__import__", "run_path", "run_module", "exec", "eval", "compile"})


@dataclass(frozen=True)
class Reached:
    """One file of a closure: how it is reached from the entry module."""

    path: bytes
    chain: tuple[bytes, ...]  # entry ... path (inclusive)
    exact: bool  # True: transformers' closure (will run); False: AST superset (may run)


@dataclass(frozen=True)
class Closure:
    files: dict[bytes, Reached]
    dynamic: tuple[str, ...]  # "modeling_x.py line 12: importlib.import_module(<expression>)"
    truncated: bool
    oversize: tuple[bytes, ...] = ()  # files too big to follow


def _norm(path: bytes) -> bytes | None:
    """Normalise a repository-relative path; None if it leaves the repository."""
    if not path or path.startswith(b"/"):
        return None
    norm = posixpath.normpath(path)
    if norm == b"." or norm.startswith(b"../") or norm == b"..":
        return None
    return norm


def _join(base: bytes, rel: bytes) -> bytes | None:
    return _norm(posixpath.join(base, rel) if base else rel)


def transformers_relative_imports(text: str) -> list[str]:
    """The module names transformers' regexes extract (sorted for determinism; transformers uses a set)."""
    return sorted(set(_TF_IMPORT.findall(text)) | set(_TF_FROM.findall(text)))


def _module_files(base: bytes, dotted: str) -> list[bytes]:
    """Candidate files for importing ``dotted`` from folder ``base``: the module, and each package ``__init__``."""
    parts = [p for p in dotted.split(".") if p]
    out: list[bytes] = []
    for i in range(1, len(parts) + 1):
        rel = "/".join(parts[:i]).encode("utf-8", "surrogateescape")
        for cand in (rel + b"/__init__.py", rel + b".py") if i < len(parts) else (rel + b".py", rel + b"/__init__.py"):
            joined = _join(base, cand)
            if joined is not None:
                out.append(joined)
    return out


class _Edges(ast.NodeVisitor):
    """Collects candidate files a module may import, for the AST superset."""

    def __init__(self, here: bytes, bases: tuple[bytes, ...]) -> None:
        self.here = here  # folder of the file being read
        self.bases = bases  # folders absolute imports may resolve against (file's folder, entry's folder, root)
        self.targets: list[bytes] = []
        self.dynamic: list[str] = []
        self.opened: list[str] = []  # literal open() paths: code if this module also calls exec/eval/compile
        self.executes = False

    def _absolute(self, dotted: str) -> None:
        for base in self.bases:
            self.targets.extend(_module_files(base, dotted))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._absolute(alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if node.level:
            base: bytes | None = self.here
            for _ in range(node.level - 1):
                base = posixpath.dirname(base) if base else None
                if base is None:
                    break
            if base is None:
                return
            bases: tuple[bytes, ...] = (base,)
        else:
            bases = self.bases
        for b in bases:
            if module:
                self.targets.extend(_module_files(b, module))
            for alias in node.names:
                if alias.name != "*":
                    self.targets.extend(_module_files(b, f"{module}.{alias.name}" if module else alias.name))

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if name in {"exec", "eval", "compile"}:
            self.executes = True
        if name == "open" and node.args and isinstance(node.args[0], ast.Constant) and isinstance(
                node.args[0].value, str) and len(node.args[0].value) < 512:
            self.opened.append(node.args[0].value)
        if name in _DYNAMIC_IMPORTERS:
            arg = node.args[0] if node.args else None
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                if name in {"import_module", "__import__", "run_module"}:
                    self._absolute(arg.value)
                elif name == "run_path":
                    self._literal_path(arg.value)
            elif name in {"import_module", "__import__", "run_path", "run_module"} or (
                name in {"exec", "eval", "compile"} and isinstance(func, ast.Name)
            ):
                self.dynamic.append(f"line {node.lineno}: {name}(<expression>)")
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and len(node.value) < 512 and _PY_LITERAL.match(node.value):
            self._literal_path(node.value)

    def _literal_path(self, value: str) -> None:
        rel = value.encode("utf-8", "surrogateescape")
        for base in self.bases:
            joined = _join(base, rel)
            if joined is not None:
                self.targets.append(joined)


def _superset_edges(path: bytes, data: bytes, bases: tuple[bytes, ...]) -> tuple[list[bytes], list[str]]:
    here = posixpath.dirname(path)
    visitor = _Edges(here, bases)
    tree: ast.AST | None = None
    if len(data) <= MAX_AST_BYTES:
        try:
            # bytes, so a PEP 263 coding cookie is honoured exactly as the interpreter would honour it
            tree = ast.parse(data, filename=path.decode("utf-8", "replace"))
        except (SyntaxError, ValueError, RecursionError, MemoryError, UnicodeDecodeError):
            tree = None
    if tree is not None:
        visitor.visit(tree)
        if visitor.executes:  # exec(open("payload.txt").read()): the opened file is code, whatever its name
            for opened in visitor.opened:
                visitor._literal_path(opened)
        return visitor.targets, visitor.dynamic
    text = data.decode("utf-8", "replace")
    for dots, module, names in _FALLBACK_FROM.findall(text):
        level = len(dots)
        name_list = [n.strip() for n in names.replace("\\", " ").split(",") if n.strip()]
        fake = ast.ImportFrom(module=module or None, names=[ast.alias(n.split()[0]) for n in name_list], level=level)
        visitor.visit_ImportFrom(fake)
    for names in _FALLBACK_IMPORT.findall(text):
        for name in names.split(","):
            token = name.strip().split(" ")[0]
            if token and not token.startswith("."):
                visitor._absolute(token)
    visitor.dynamic.append("does not parse as Python: imports found by a line scan only")
    return visitor.targets, visitor.dynamic


def python_closure(read: Callable[[bytes], bytes | None], entry: bytes, *, superset: bool = True) -> Closure:
    """Files that run (or may run) when ``entry`` is imported as a transformers dynamic module.

    Args:
        read: returns a blob's bytes, or None when the path is absent or not a file.
        entry: repository path of the entry module (``modeling_x.py``).
        superset: also follow the AST superset (``False`` gives transformers' exact closure only).

    Returns:
        A :class:`Closure`; ``files`` includes the entry itself when it exists.
    """
    entry_dir = posixpath.dirname(entry)
    # absolute imports may resolve against the root, a src/ layout, the entry's folder and (below) each file's folder
    bases = tuple(dict.fromkeys((b"", b"src", entry_dir)))
    files: dict[bytes, Reached] = {}
    dynamic: list[str] = []
    first = read(entry)
    if first is None:
        return Closure(files, (), False)
    oversize: list[bytes] = []
    files[entry] = Reached(entry, (entry,), True)
    queue: deque[tuple[bytes, bytes]] = deque([(entry, first)])
    truncated = False
    while queue:
        path, data = queue.popleft()
        here = files[path]
        if len(data) > MAX_SOURCE_BYTES:
            oversize.append(path)
            continue
        if _LFS_POINTER.match(data):
            # The tree holds a pointer; the code that runs is the LFS object, which the tree does not show.
            dynamic.append(f"{path.decode('utf-8', 'backslashreplace')} is a Git LFS pointer: the code that runs is "
                           f"the LFS object, whose imports are not followed")
            continue
        text = data.decode("utf-8", "replace")
        candidates: list[tuple[bytes, bool]] = []
        if here.exact:
            for module in transformers_relative_imports(text):
                target = _join(entry_dir, module.encode("utf-8", "surrogateescape") + b".py")
                if target is not None:
                    candidates.append((target, True))
        if superset:
            targets, dyn = _superset_edges(path, data, tuple(dict.fromkeys((posixpath.dirname(path), *bases))))
            candidates.extend((t, False) for t in targets)
            dynamic.extend(f"{path.decode('utf-8', 'backslashreplace')} {d}" for d in dyn)
        for target, exact in candidates:
            known = files.get(target)
            if known is not None and (known.exact or not exact):
                continue
            blob = read(target)
            if blob is None:
                continue
            if len(files) >= MAX_CLOSURE_FILES and known is None:
                truncated = True
                continue
            files[target] = Reached(target, (*here.chain, target), exact)
            if known is None or exact:
                queue.append((target, blob))
    return Closure(files, tuple(dynamic), truncated, tuple(oversize))
