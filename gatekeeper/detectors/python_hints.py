"""Risky loader calls in pushed Python, shown to reviewers as hints (ml-artifacts.md §6; never blocking).

``ast`` finds the calls with their import aliases (``import torch as t; t.load(f)``, ``from pickle import loads``).
A file that does not parse (null bytes, a syntax of another Python version, a deliberate error) is scanned line by line
with regular expressions instead, so an unparsable file cannot hide a ``torch.load`` from the reviewer; the hint says
which method found it.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from gatekeeper.model import Finding, Verdict

DETECTOR = "python-hints"
MAX_AST_BYTES = 8 * 1024 * 1024  # above: line scan
MAX_SCAN_BYTES = 64 * 1024 * 1024  # above: not scanned (hints never block, so this is reported as a hint)

# qualified callable -> what the reviewer should know
_PICKLE_LOADERS = {
    "pickle.load": "unpickles (runs code from the data)",
    "pickle.loads": "unpickles (runs code from the data)",
    "_pickle.load": "unpickles (runs code from the data)",
    "_pickle.loads": "unpickles (runs code from the data)",
    "cPickle.load": "unpickles (runs code from the data)",
    "cPickle.loads": "unpickles (runs code from the data)",
    "dill.load": "unpickles with dill (runs code from the data)",
    "dill.loads": "unpickles with dill (runs code from the data)",
    "cloudpickle.load": "unpickles with cloudpickle (runs code from the data)",
    "cloudpickle.loads": "unpickles with cloudpickle (runs code from the data)",
    "joblib.load": "joblib.load unpickles (runs code from the data)",
    "pandas.read_pickle": "pandas.read_pickle unpickles (runs code from the data)",
    "torch.serialization.add_safe_globals": "widens torch.load's weights-only allow-list",
    "keras.config.enable_unsafe_deserialization": "turns off Keras safe mode",
    "tf.keras.config.enable_unsafe_deserialization": "turns off Keras safe mode",
}


@dataclass(frozen=True)
class Hint:
    line: int
    text: str


def _qualname(node: ast.AST, aliases: dict[str, str]) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(aliases.get(node.id, node.id))
    return ".".join(reversed(parts))


def _kw(call: ast.Call, name: str) -> ast.expr | None:
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    return None


def _is_const(node: ast.expr | None, value: object) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


class _Visitor(ast.NodeVisitor):
    def __init__(self) -> None:
        self.aliases: dict[str, str] = {"np": "numpy", "pd": "pandas"}
        self.hints: list[Hint] = []

    def _add(self, node: ast.AST, text: str) -> None:
        self.hints.append(Hint(getattr(node, "lineno", 0), text))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.asname:
                self.aliases[alias.asname] = alias.name
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module and not node.level:
            for alias in node.names:
                self.aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        if node.name == "check_torch_load_is_safe":
            raises = any(isinstance(n, ast.Raise) for n in ast.walk(node))
            self._add(node, "defines check_torch_load_is_safe" + ("" if raises else " without raising: the torch>=2.6 "
                                                                   "check for .bin loading (CVE-2025-32434) is off"))
        self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef  # same check for async defs

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            name = _qualname(target, {})
            if name and name.split(".")[-1] == "check_torch_load_is_safe":
                self._add(node, f"replaces {name}: the torch>=2.6 check for .bin loading (CVE-2025-32434) may be off")
        self.generic_visit(node)

    def visit_Dict(self, node: ast.Dict) -> None:
        for key, value in zip(node.keys, node.values):
            if isinstance(key, ast.Constant) and key.value == "trust_remote_code" and _is_const(value, True):
                self._add(node, "trust_remote_code=True (in a dict): runs code shipped with the model")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        name = _qualname(node.func, self.aliases) or ""
        if _is_const(_kw(node, "trust_remote_code"), True):
            self._add(node, f"{name or 'call'}(trust_remote_code=True): runs code shipped with the model")
        if _kw(node, "custom_pipeline") is not None:
            self._add(node, f"{name or 'call'}(custom_pipeline=...): loads a diffusers pipeline from code")
        if name in {"torch.load", "torch.serialization.load"}:
            weights_only = _kw(node, "weights_only")
            if weights_only is None:
                self._add(node, f"{name} without weights_only=True: unpickles arbitrary objects on torch<2.6")
            elif not _is_const(weights_only, True):
                self._add(node, f"{name} with weights_only not True: unpickles arbitrary objects")
        elif name in {"numpy.load"} and _is_const(_kw(node, "allow_pickle"), True):
            self._add(node, "numpy.load(allow_pickle=True): object arrays are unpickled")
        elif name in _PICKLE_LOADERS:
            self._add(node, f"{name}: {_PICKLE_LOADERS[name]}")
        elif name.endswith("register_new_resolver") and len(node.args) >= 2:
            value = node.args[1]
            if isinstance(value, ast.Name) and value.id in {"eval", "exec"}:
                self._add(node, f"register_new_resolver(..., {value.id}): ${{...}} interpolations in configs are code")
        elif name.endswith(("load_model", "deserialize_keras_object")) and _is_const(_kw(node, "safe_mode"), False):
            self._add(node, f"{name}(safe_mode=False): Keras Lambda layers run marshalled code")
        whitelist = _kw(node, "_target_whitelist_")
        if whitelist is not None and "UNSAFE_ALLOW_ALL_TARGETS" in ast.dump(whitelist):
            self._add(node, "instantiate(_target_whitelist_=UNSAFE_ALLOW_ALL_TARGETS): any _target_ is allowed")
        self.generic_visit(node)


_REGEX_HINTS = (
    (re.compile(r"trust_remote_code\s*[=:]\s*True"), "trust_remote_code=True: runs code shipped with the model"),
    (re.compile(r"\btorch\s*\.\s*load\s*\((?![^\n]*weights_only\s*=\s*True)"),
     "torch.load without weights_only=True on the same line"),
    (re.compile(r"\b(?:c?[pP]ickle|_pickle|dill|cloudpickle)\s*\.\s*loads?\s*\("), "pickle load: runs code from data"),
    (re.compile(r"\bjoblib\s*\.\s*load\s*\(|read_pickle\s*\("), "joblib/pandas pickle load: runs code from data"),
    (re.compile(r"allow_pickle\s*=\s*True"), "allow_pickle=True: object arrays are unpickled"),
    (re.compile(r"check_torch_load_is_safe"), "mentions check_torch_load_is_safe (CVE-2025-32434 check)"),
    (re.compile(r"\bcustom_pipeline\s*="), "custom_pipeline=: loads a diffusers pipeline from code"),
    (re.compile(r"safe_mode\s*=\s*False|enable_unsafe_deserialization"), "Keras unsafe deserialization"),
)


def _regex_hints(data: bytes) -> list[Hint]:
    text = data.decode("utf-8", "replace")
    hints: list[Hint] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        for pattern, message in _REGEX_HINTS:
            if pattern.search(line):
                hints.append(Hint(lineno, message))
    return hints


# Every hint needs one of these byte strings in the source, unless a coding cookie re-encodes the text (utf-7 can spell
# "torch.load" without those bytes), so most files are cleared without building an AST (ast runs at ~1-3 MB/s).
_NEEDLES = (b"load", b"read_pickle", b"trust_remote_code", b"custom_pipeline", b"safe_mode", b"register_new_resolver",
            b"_target_whitelist_", b"add_safe_globals", b"enable_unsafe")
_COOKIE = re.compile(rb"^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)", re.MULTILINE)
_PLAIN_CODINGS = frozenset({
    b"utf-8", b"utf8", b"ascii", b"us-ascii", b"latin-1", b"iso-8859-1", b"latin1", b"utf-8-sig",
})


def _may_hint(data: bytes) -> bool:
    if any(n in data for n in _NEEDLES):
        return True
    head = b"\n".join(data.split(b"\n", 2)[:2])  # PEP 263: the cookie is on line 1 or 2
    cookie = _COOKIE.search(head)
    return cookie is not None and cookie.group(1).lower().replace(b"_", b"-") not in _PLAIN_CODINGS


def python_hints(path: str, data: bytes) -> list[Finding]:
    """Hint findings for one Python file (at most one finding per file; one evidence line per call)."""
    if not _may_hint(data):
        return []
    if len(data) > MAX_SCAN_BYTES:
        return [Finding(Verdict.HINT, path, DETECTOR, f"Python file above {MAX_SCAN_BYTES} bytes: not scanned for "
                                                      f"risky loader calls")]
    method = "ast"
    hints: list[Hint]
    try:
        if len(data) > MAX_AST_BYTES:
            raise ValueError("too large for ast")
        tree = ast.parse(data)  # bytes: the coding cookie is honoured as the interpreter would
        visitor = _Visitor()
        visitor.visit(tree)
        hints = visitor.hints
    except (SyntaxError, ValueError, RecursionError, MemoryError, UnicodeDecodeError):
        method = "line scan (the file does not parse as Python)"
        hints = _regex_hints(data)
    if not hints:
        return []
    evidence = tuple(f"line {h.line}: {h.text}" for h in sorted(hints, key=lambda h: h.line))
    return [Finding(Verdict.HINT, path, DETECTOR,
                    f"{len(hints)} risky loader call(s) for the reviewer to check (found by {method})", evidence)]
