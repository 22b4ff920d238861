"""The package layout is the architecture: statically, over the AST of every module, no import cycle and no import
against the flow.

Every ``import`` counts, wherever it sits: at module level, inside a function (a lazy import is still a dependency),
and under ``if TYPE_CHECKING:`` for the direction rules (a type is a dependency of the design even when it costs
nothing at run time). Cycles are looked for between modules on the imports that run (``TYPE_CHECKING`` blocks are
left out there, since they exist precisely to name a type without importing at run time).

The layers, bottom up (a package may import from its own layer and the layers below it only)::

    errors, fsutil, model, checkout, __init__      shared vocabulary and pure rules, no dependencies
    trust, detectors                               signatures and keys; content detectors
    policy                                         the server-side policy (reads trust stores to lint them)
    push, approvals, audit, review                 the push path; approvals it evaluates; the log it writes; what
                                                   a reviewer is shown of a change
    hosting                                        install, forges, SSH forced command, trust sync (the network)
    cli, demo; main                                verbs over the library; the dispatcher

Third-party gateways: only ``push.gitrepo`` touches pygit2; ``requests`` (and the rest of the network stack) only in
``hosting``. The runtime side of the network rule (nothing of it loads during a real pre-receive) is
tests/test_import_graph.py.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from gitserver import REPO_ROOT

PACKAGE = REPO_ROOT / "gatekeeper"

# package (first component below gatekeeper) -> the gatekeeper packages it may import
BASE = {"errors", "fsutil", "model", "checkout", ""}  # "" is gatekeeper/__init__.py (__version__)
LOWER = BASE | {"trust", "detectors", "policy"}
MIDDLE = {"push", "approvals", "audit", "review"}  # one layer: the hook calls approvals and audit, they read its types
ALLOWED: dict[str, set[str]] = {
    "": set(),
    "errors": set(),
    "fsutil": {"errors"},
    "model": {"errors"},
    "checkout": {"errors", "model"},
    "trust": BASE,
    "detectors": BASE,
    "policy": BASE | {"trust"},
    **{package: LOWER | MIDDLE for package in MIDDLE},
    "hosting": LOWER | MIDDLE,
    "cli": LOWER | MIDDLE | {"hosting", "demo"},
    "demo": LOWER | MIDDLE | {"hosting", "cli"},
    "main": BASE | {"cli"},
    "__main__": {"main"},
}
# third-party module -> the gatekeeper modules (or packages) that may import it
GATEWAYS: dict[str, tuple[str, ...]] = {
    "pygit2": ("gatekeeper.push.gitrepo",),
    "requests": ("gatekeeper.hosting",),
    "urllib3": ("gatekeeper.hosting",),
    "http.client": ("gatekeeper.hosting",),
}


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported module (for ``from X import y``: X, and X.y when that is a module)
    line: int
    type_only: bool  # under ``if TYPE_CHECKING:``


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return isinstance(test, ast.Name) and test.id == "TYPE_CHECKING" or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(source: str, name: str, is_package: bool, known: set[str]) -> Iterator[Import]:
    """Every import in ``source`` (module ``name``), relative ones resolved."""

    def resolve(node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        base = name.split(".") if is_package else name.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        return ".".join(base + ([node.module] if node.module else []))

    def walk(node: ast.AST, type_only: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.body:
                    yield from walk_stmt(stmt, True)
                for stmt in child.orelse:
                    yield from walk_stmt(stmt, type_only)
                continue
            yield from walk_stmt(child, type_only)

    def walk_stmt(node: ast.AST, type_only: bool) -> Iterator[Import]:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(name, alias.name, node.lineno, type_only)
        elif isinstance(node, ast.ImportFrom):
            target = resolve(node)
            yield Import(name, target, node.lineno, type_only)
            for alias in node.names:
                if f"{target}.{alias.name}" in known:  # `from gatekeeper.audit import canonical` imports a module
                    yield Import(name, f"{target}.{alias.name}", node.lineno, type_only)
        else:
            yield from walk(node, type_only)

    yield from walk(ast.parse(source), False)


def all_imports(root: Path = PACKAGE) -> list[Import]:
    paths = sorted(root.rglob("*.py"))
    known = {module_name(p) for p in paths}
    return [imp for p in paths
            for imp in imports_of(p.read_text(encoding="utf-8"), module_name(p), p.name == "__init__.py", known)]


def layer(module: str) -> str:
    """``gatekeeper.push.hook`` -> ``push``; ``gatekeeper.errors`` -> ``errors``; ``gatekeeper`` -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def direction_violations(imports: list[Import]) -> list[str]:
    out = []
    for imp in imports:
        if imp.target != "gatekeeper" and not imp.target.startswith("gatekeeper."):
            continue
        src, dst = layer(imp.source), layer(imp.target)
        if src != dst and dst not in ALLOWED[src]:
            out.append(f"{imp.source}:{imp.line} imports {imp.target} ({src} may import only "
                       f"{', '.join(sorted(x or 'gatekeeper' for x in ALLOWED[src])) or 'nothing of gatekeeper'})")
    return out


def gateway_violations(imports: list[Import]) -> list[str]:
    out = []
    for imp in imports:
        for third_party, owners in GATEWAYS.items():
            if imp.target == third_party or imp.target.startswith(third_party + "."):
                if not any(imp.source == o or imp.source.startswith(o + ".") for o in owners):
                    out.append(f"{imp.source}:{imp.line} imports {imp.target} (only {', '.join(owners)} may)")
    return out


def cycles(imports: list[Import]) -> list[list[str]]:
    """Strongly connected components of more than one module, over the imports that run."""
    graph: dict[str, set[str]] = {}
    modules = {imp.source for imp in imports}
    for imp in imports:
        graph.setdefault(imp.source, set())
        if not imp.type_only and imp.target in modules and imp.target != imp.source:
            graph[imp.source].add(imp.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan; the module graph is a few hundred nodes deep at most
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


@pytest.fixture(scope="module")
def tree_imports() -> list[Import]:
    return all_imports()


def test_every_package_has_a_layer(tree_imports: list[Import]) -> None:
    assert {layer(imp.source) for imp in tree_imports} <= set(ALLOWED)


def test_no_import_against_the_flow(tree_imports: list[Import]) -> None:
    assert direction_violations(tree_imports) == []


def test_third_party_gateways(tree_imports: list[Import]) -> None:
    assert gateway_violations(tree_imports) == []


def test_no_import_cycles(tree_imports: list[Import]) -> None:
    assert cycles(tree_imports) == []


# -- the checks can fail ----------------------------------------------------------------------------------------------


def _fake_tree(tmp_path: Path, files: dict[str, str]) -> list[Import]:
    for rel, text in files.items():
        path = tmp_path / "gatekeeper" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    paths = sorted((tmp_path / "gatekeeper").rglob("*.py"))
    known = {".".join(p.relative_to(tmp_path).with_suffix("").parts).removesuffix(".__init__") for p in paths}
    return [imp for p in paths for imp in imports_of(
        p.read_text(), ".".join(p.relative_to(tmp_path).with_suffix("").parts).removesuffix(".__init__"),
        p.name == "__init__.py", known)]


def test_a_push_module_importing_hosting_lazily_is_caught(tmp_path: Path) -> None:
    imports = _fake_tree(tmp_path, {
        "push/__init__.py": "",
        "push/hook.py": "def run():\n    from gatekeeper.hosting import trustsync\n",
        "hosting/__init__.py": "",
        "hosting/trustsync.py": "import requests\n",
    })
    assert direction_violations(imports) == [
        "gatekeeper.push.hook:2 imports gatekeeper.hosting (push may import only approvals, audit, checkout, "
        "detectors, errors, fsutil, gatekeeper, model, policy, push, review, trust)",
        "gatekeeper.push.hook:2 imports gatekeeper.hosting.trustsync (push may import only approvals, audit, "
        "checkout, detectors, errors, fsutil, gatekeeper, model, policy, push, review, trust)",
    ]
    assert gateway_violations(imports) == []


def test_a_detector_importing_the_audit_log_under_type_checking_is_caught(tmp_path: Path) -> None:
    imports = _fake_tree(tmp_path, {
        "detectors/__init__.py": "",
        "detectors/scan.py": "from typing import TYPE_CHECKING\n"
                             "if TYPE_CHECKING:\n    from ..audit.log import AuditLog\n",
    })
    assert [v.split(" (")[0] for v in direction_violations(imports)] == [
        "gatekeeper.detectors.scan:3 imports gatekeeper.audit.log"]


def test_pygit2_outside_the_git_gateway_is_caught(tmp_path: Path) -> None:
    imports = _fake_tree(tmp_path, {"push/__init__.py": "", "push/analysis.py": "import pygit2.enums\n"})
    assert gateway_violations(imports) == [
        "gatekeeper.push.analysis:1 imports pygit2.enums (only gatekeeper.push.gitrepo may)"]


def test_a_cycle_through_a_lazy_import_is_caught_and_type_checking_is_not_one(tmp_path: Path) -> None:
    imports = _fake_tree(tmp_path, {
        "cli/__init__.py": "",
        "cli/install.py": "def run():\n    from gatekeeper.cli import forges\n",
        "cli/forges.py": "from gatekeeper.cli.install import run\n",
        "cli/audit.py": "from typing import TYPE_CHECKING\n"
                        "if TYPE_CHECKING:\n    from gatekeeper.cli.policy import x\n",
        "cli/policy.py": "from gatekeeper.cli import audit\n",
    })
    assert cycles(imports) == [["gatekeeper.cli.forges", "gatekeeper.cli.install"]]
