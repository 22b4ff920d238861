"""Remote-code triggers: configuration that makes a model loader import and run Python code.

Recognised (ml-artifacts.md §5):

* transformers ``auto_map`` at the top level of **any** JSON file, in every value shape (string; list ``[slow, fast]``
  with nulls; dict of strings or lists), with both rewrites (``FeatureExtractor -> ImageProcessor`` and
  ``ImageProcessor -> VideoProcessor``, applied to the whole reference as transformers does, so a rewritten reference
  may name another file); ``repo--module.Class`` references are external code at a floating revision;
* peft ``auto_mapping.parent_library`` (``AutoPeftModel`` imports it when ``task_type`` is null);
* ``custom_pipelines.<task>.impl``; ``custom_generate/generate.py`` and ``custom_generate/requirements.txt``;
* diffusers ``model_index.json`` (list ``_class_name``, components whose library is not diffusers/transformers, a
  ``<component>/<library>.py`` file) and a ``pipeline.py`` at the root or next to a ``model_index.json``;
* sentence-transformers ``modules.json`` ``type`` outside ``sentence_transformers.``;
* Hydra/OmegaConf ``_target_`` at any depth (dict values and list items), jsonargparse ``class_path``, MMEngine
  ``custom_imports``, ``${eval:...}`` and other non-builtin resolvers, targets inside the nodes that the built-in
  ``oc.create``/``oc.decode`` resolvers build (Hydra resolves before it instantiates); ``hubconf.py`` (``torch.hub``).

A Hydra target that resolves to a deny-listed callable is ``malicious``: ``instantiate`` calls the target with
arguments from the same file, so ``_target_: os.system`` plus ``_args_: [...]`` *is* a command, there is no benign use
of such a target in a training config, and Hydra's own block list (v1.3.4+) is bypassed by attribute traversal
(``shutil.os.system``) and missing in v1.3.2/1.3.3. Any other target is ``review-required`` when added or changed: the
2024 sabotage swapped optimizers, which no deny list catches (§0).

This module only reads the config bytes it is given; resolving references to files is done by ``scan``.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from gatekeeper.checkout import fold_path

# --- the tree the hook hands us -------------------------------------------------------------------------------------


class TreeView(Protocol):
    """Read access to one git tree (the NEW tree of a ref update) or a folder on disk."""

    def paths(self) -> Iterable[bytes]:
        """All blob paths of the tree (symlinks and submodules included)."""

    def read(self, path: bytes) -> bytes | None:
        """Blob contents; None if absent or not a blob."""

    def mode(self, path: bytes) -> int | None:
        """Git file mode; None if absent."""


Locate = Callable[[bytes], "bytes | None"]


def checkout_locator(tree: TreeView) -> Locate:
    """Where a checkout finds a file of a given path: the path itself, else (case-folding file systems: macOS,
    Windows) a path of ``tree`` spelled alike; None for none. The folded listing of the whole tree is built on first
    need only, which is rare (a lookup that misses)."""
    folded: dict[bytes, bytes] | None = None

    def locate(path: bytes) -> bytes | None:
        nonlocal folded
        if tree.mode(path) is not None:
            return path
        if folded is None:
            folded = {}
            for found in tree.paths():
                folded.setdefault(fold_path(found), found)
        return folded.get(fold_path(path))

    return locate


# --- caps -------------------------------------------------------------------------------------------------------------

MAX_CONFIG_BYTES = 32 * 1024 * 1024  # a config bigger than this is not parsed (unscannable if it may hold a trigger)
MAX_NODES = 2_000_000  # YAML aliases can make a small file a huge graph: count nodes visited
MAX_DEPTH = 500

# Text that must appear in a config holding a trigger. A JSON string may spell a key with \u escapes (json.loads decodes
# "auto\u005fmap" to "auto_map"), so escapes of letters, digits, "_", "$", ":", "{", "." and "-" force a full parse;
# ordinary JSON (tokenizer.json included) escapes only non-ASCII or control characters.
_NEEDLES = (b"auto_map", b"custom_pipelines", b"_target_", b"class_path", b"custom_imports", b"${",
            b"trust_remote_code", b"allow_pickle", b"weights_only", b"safe_mode")
_ALWAYS_PARSED = (b"model_index.json", b"modular_model_index.json", b"modules.json")  # small, fixed-name files
_JSON_SUSPECT_ESCAPE = re.compile(rb"\\u00(?:2[4dDeE]|3[0-9aA]|[4-6][0-9a-fA-F]|7[0-9aAbB])")


class ConfigError(Exception):
    """A config could not be analysed (too big, too deep, not parseable)."""

    def __init__(self, message: str, *, cap: bool = False) -> None:
        super().__init__(message)
        self.cap = cap


# --- trigger values -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Trigger:
    """One place in a config that makes code run.

    ``modules`` lists, per referenced module, the alternative repository paths it may be loaded from (all existing
    alternatives are protected; none existing makes the reference dangling). ``external`` names another repository
    whose code runs at a floating revision. ``danger`` explains a deny-listed target (verdict malicious).
    """

    config: bytes
    kind: str
    key: str
    value: str
    modules: tuple[tuple[bytes, ...], ...] = ()
    external: str | None = None
    danger: str | None = None
    problem: str | None = None
    follow_folder: bool = True  # HF-style: every .py under the config's folder may run (§5.1 rule 3)

    def label(self) -> str:
        return f"{self.config.decode('utf-8', 'backslashreplace')} {self.key}"

    def signature(self) -> tuple[str, str, str]:
        return (self.kind, self.key, self.value)


@dataclass(frozen=True)
class ConfigTriggers:
    config: bytes
    triggers: tuple[Trigger, ...] = ()
    hints: tuple[str, ...] = ()  # settings a reviewer should see (``trust_remote_code: true``), never blocking


# --- file-name classification ----------------------------------------------------------------------------------------


_CONFIG_SUFFIXES = (b".json", b".yaml", b".yml")
_CONFIG_FILES = (b"/hubconf.py", b"/pipeline.py", b"custom_generate/generate.py", b"custom_generate/requirements.txt")


def is_config_name(path: bytes) -> bool:
    """Files whose contents may hold a trigger (read when changed, or when they may reference a changed .py).

    Called for every path of a tree when a ``.py`` file changes, so it avoids allocations for the common miss.
    """
    tail = path[-5:].lower()
    if tail.endswith(_CONFIG_SUFFIXES):
        return True
    if not path.endswith((b".py", b".txt")):
        return False
    return (b"/" + path).endswith(_CONFIG_FILES)


_WIDE_BOMS = (b"\xff\xfe", b"\xfe\xff")  # UTF-16 (and UTF-32 LE) byte order marks


def _wide_text(data: bytes) -> bool:
    """UTF-16/32 text, which ``json.loads`` and PyYAML decode from bytes (PyYAML by its BOM; ``yaml.safe_load`` of a
    file opened in binary mode does so): ASCII needles are not in its bytes. NULs in the first four bytes, or a BOM,
    whatever follows it (a BOM then a character with no zero byte, such as U+4E4E, has no NUL up front)."""
    return b"\0" in data[:4] or data.startswith(_WIDE_BOMS)


def may_hold_trigger(data: bytes, *, yaml_file: bool) -> bool:
    """Cheap pre-filter: False only when no trigger can be in ``data``."""
    if any(n in data for n in _NEEDLES) or _wide_text(data):
        return True
    if yaml_file:
        # YAML double-quoted scalars have \x, \u escapes and escaped line breaks that join words; any backslash or
        # tag may hide a key, so only backslash-free, tag-free YAML skips the parse.
        return b"\\" in data or b"!" in data
    return _JSON_SUSPECT_ESCAPE.search(data) is not None


# --- module references ----------------------------------------------------------------------------------------------


def _name_bytes(name: str) -> bytes | None:
    """A module name from a parsed config as repository path bytes, or None when no path can spell it.

    Parsers hand us text; bytes that were not UTF-8 come back as surrogate escapes and map to those bytes again. A
    lone surrogate written as a JSON ``\\ud800`` escape has no byte form at all, so no file in a checkout can be that
    module (the caller reports the reference as a problem instead of failing the whole scan).
    """
    try:
        return name.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return None


def _mod_path(base: bytes, module: str) -> bytes | None:
    name = _name_bytes(module)
    if name is None:
        return None
    rel = name + b".py"
    if rel.startswith(b"/"):
        return None
    joined = posixpath.normpath(posixpath.join(base, rel)) if base else posixpath.normpath(rel)
    if joined.startswith(b"../") or joined == b"..":
        return None
    return joined


def class_reference(config: bytes, kind: str, key: str, ref: str) -> Trigger:
    """Parse a transformers class reference ``[org/repo--]module.Class`` (``get_class_from_dynamic_module``)."""
    here = posixpath.dirname(config)
    external: str | None = None
    problem: str | None = None
    body = ref
    if "--" in ref:
        parts = ref.split("--")
        if len(parts) != 2:
            problem = f"malformed reference {ref!r}: more than one '--' (transformers refuses it)"
            return Trigger(config, kind, key, ref, problem=problem)
        external, body = parts
    pieces = body.split(".")
    if len(pieces) != 2 or not all(pieces):
        problem = f"malformed reference {ref!r}: expected module.ClassName (transformers refuses it)"
        return Trigger(config, kind, key, ref, external=external, problem=problem)
    if external is not None:
        # the module lives in another repository: nothing here to protect, and its revision floats
        return Trigger(config, kind, key, ref, external=external)
    module = pieces[0]
    alternatives = tuple(dict.fromkeys(p for p in (_mod_path(here, module), _mod_path(b"", module)) if p is not None))
    if _name_bytes(module) is None:
        problem = f"reference {ref!r} names a module no file can hold (not valid text); its loader cannot resolve it"
    elif not alternatives:
        problem = f"reference {ref!r} points outside the repository"
    return Trigger(config, kind, key, ref, modules=(alternatives,) if alternatives else (), problem=problem)


def _auto_map_values(value: object, key: str) -> Iterator[tuple[str, str]]:
    """(key path, reference) for every string in an auto_map value (string, list with nulls, nested lists)."""
    if isinstance(value, str):
        yield key, value
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from _auto_map_values(item, f"{key}[{i}]")
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _auto_map_values(v, f"{key}.{k}")


def auto_map_triggers(config: bytes, auto_map: object) -> list[Trigger]:
    out: list[Trigger] = []
    if isinstance(auto_map, list):  # legacy tokenizer_config.json form: [slow, fast]
        pairs = list(_auto_map_values(auto_map, "auto_map(AutoTokenizer)"))
    else:
        pairs = list(_auto_map_values(auto_map, "auto_map"))
    seen: set[tuple[str, str]] = set()
    for key, ref in pairs:
        variants = [(key, ref)]
        # AutoImageProcessor reads a legacy AutoFeatureExtractor entry with this rewrite; AutoVideoProcessor reads
        # AutoImageProcessor with the next one. Both apply to the whole string, so the module name may change too.
        if "FeatureExtractor" in ref:
            variants.append((f"{key} (as ImageProcessor)", ref.replace("FeatureExtractor", "ImageProcessor")))
        image = variants[-1][1]
        if "ImageProcessor" in image:
            variants.append((f"{key} (as VideoProcessor)", image.replace("ImageProcessor", "VideoProcessor")))
        for k, r in variants:
            if (k, r) not in seen:
                seen.add((k, r))
                out.append(class_reference(config, "auto_map", k, r))
    return out


# --- Hydra and friends ----------------------------------------------------------------------------------------------

# Modules whose every attribute runs code or changes the system (checked from the first component). Kept to names no
# project would give its own package (``code``, ``timeit`` or ``pdb`` could be a local package: only their dangerous
# functions are listed below), and to callables with no plausible place in a training config, since a malicious
# verdict cannot be approved away: ``torch.load``, ``functools.partial``, ``shutil.copy``, ``builtins.open`` or
# ``urllib.request.urlretrieve`` appear in real configs and stay review-required like any other target.
_DENY_MODULES = frozenset({
    "os", "subprocess", "pty", "runpy", "ctypes", "importlib", "marshal", "pickle", "_pickle", "cPickle", "dill",
    "cloudpickle", "shelve", "commands", "popen2", "webbrowser", "pkgutil", "_posixsubprocess", "ensurepip", "pip",
    "venv", "imp", "zipimport", "sys", "torch.hub", "numpy.f2py", "numpy.distutils", "asyncio.subprocess",
    "multiprocessing.util", "http.server", "socket", "_thread", "signal", "_interpreters", "posix", "nt",
})
# Inert corners of deny-listed modules (path arithmetic).
_ALLOW_PREFIXES = ("os.path.",)
# Modules reachable by attribute traversal from another module (``shutil.os.system``): checked at any position.
_TRAVERSAL_MODULES = frozenset({
    "os", "subprocess", "pty", "runpy", "ctypes", "importlib", "marshal", "pickle", "_pickle", "sys", "builtins",
    "__builtins__", "_posixsubprocess",
})
_DENY_NAMES = frozenset({
    "builtins.eval", "builtins.exec", "builtins.compile", "builtins.__import__", "builtins.exit",
    "builtins.quit", "builtins.help", "builtins.breakpoint", "builtins.input", "builtins.getattr", "builtins.setattr",
    "builtins.delattr", "builtins.globals", "builtins.locals", "builtins.vars",
    "shutil.rmtree", "shutil.move", "shutil.chown", "shutil.unpack_archive",
    "operator.methodcaller", "operator.attrgetter", "_operator.methodcaller", "_operator.attrgetter",
    "torch.storage._load_from_bytes",
    "code.interact", "code.InteractiveInterpreter", "code.InteractiveConsole", "code.compile_command",
    "timeit.timeit", "timeit.repeat", "timeit.Timer", "pdb.run", "pdb.runeval", "pdb.runcall", "pdb.Pdb",
    "trace.Trace", "profile.run", "cProfile.run", "doctest.debug_script", "doctest.script_from_examples",
})
# Bare names Hydra cannot import alone but whose intent is plain.
_DENY_BARE = frozenset({"eval", "exec", "compile", "__import__", "system", "popen"})
_DUNDER_DENY = frozenset({
    "__builtins__", "__globals__", "__import__", "__subclasses__", "__code__", "__reduce__", "__reduce_ex__",
    "__getattribute__", "__dict__", "__class__", "__bases__", "__mro__", "__loader__", "__spec__",
})


def dangerous_target(dotted: str) -> str | None:
    """Why a Hydra/jsonargparse target is deny-listed, or None.

    Every suffix of the dotted path is tested, since ``_locate`` getattr-walks attributes (``shutil.os.system`` is
    ``os.system``); ``posix.``/``nt.`` are canonicalised to ``os.`` as Hydra does. Whole components only: ``evaluate``
    is not ``eval``.
    """
    parts = dotted.strip().split(".")
    if not all(parts):
        return None
    if len(parts) == 1 and parts[0] in _DENY_BARE:
        return f"{dotted} is a code-execution builtin"
    for part in parts[1:]:
        if part in _DUNDER_DENY:
            return f"attribute {part} reaches interpreter internals"
    for i in range(len(parts)):
        sub = list(parts[i:])
        if sub[0] in {"posix", "nt"}:
            sub[0] = "os"
        whole = ".".join(sub)
        if (whole + ".").startswith(_ALLOW_PREFIXES):
            continue
        via = "" if i == 0 else f" (reached by attribute traversal through {'.'.join(parts[:i])})"
        for j in range(1, len(sub) + 1):
            prefix = ".".join(sub[:j])
            if prefix in _DENY_NAMES:
                return f"{dotted} resolves to {prefix}{via}"
            if i == 0 and prefix in _DENY_MODULES:
                return f"{dotted} resolves into module {prefix}"
            if i > 0 and j == 1 and len(sub) > 1 and prefix in _TRAVERSAL_MODULES:
                return f"{dotted} resolves into module {prefix}{via}"
    return None


# Resolvers OmegaConf and Hydra register themselves (interpolation ``${name:...}``); anything else is project code.
_BUILTIN_RESOLVERS = frozenset({
    "oc.env", "oc.create", "oc.deprecated", "oc.decode", "oc.select", "oc.dict.keys", "oc.dict.values", "now",
    "hydra", "oc.to_container",
})
_RESOLVER = re.compile(r"\$\{\s*([A-Za-z_][\w.]*)\s*:")
# Built-in resolvers that turn their argument into config nodes (``${oc.create:{_target_: x}}``; ``oc.decode`` of a
# string holding a dict). Hydra's ``instantiate`` runs ``OmegaConf.resolve`` on the config first and then
# instantiates every ``_target_`` in the nodes they built, recursively: a target there is a target like any other.
_NODE_BUILDERS = frozenset({"oc.create", "oc.decode"})
_BUILT_TARGET = re.compile(r"""(?:^|[{,\s'"])['"]?(_target_|class_path)['"]?\s*:\s*['"]?([^'",{}\[\]\s]*)""")
_MAX_BUILDER_CALLS = 50  # per string; above: one "cannot be checked" trigger (review), never a partial pass
_MAX_EXPANDED = 10_000  # characters of an expanded builder argument


def _module_candidates(dotted: str) -> tuple[bytes, ...]:
    """Repository files a dotted import path may load (package inits and the module), under the root or ``src/``."""
    parts = [p for p in dotted.split(".") if p]
    out: list[bytes] = []
    for root in (b"", b"src/"):
        for i in range(1, len(parts) + 1):
            name = _name_bytes("/".join(parts[:i]))
            if name is None:  # no file can have this name: nothing more under it to protect
                break
            rel = root + name
            out.extend((rel + b".py", rel + b"/__init__.py"))
    return tuple(out)


def _walk(doc: object) -> Iterator[tuple[str, object, object]]:
    """(location, parent, node) for every node; shared (aliased) nodes once; caps on size and depth."""
    stack: list[tuple[str, object, object, int]] = [("", None, doc, 0)]
    seen: set[int] = set()
    count = 0
    while stack:
        loc, parent, node, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise ConfigError(f"more than {MAX_NODES} nodes", cap=True)
        if depth > MAX_DEPTH:
            raise ConfigError(f"nested deeper than {MAX_DEPTH} levels", cap=True)
        if isinstance(node, dict | list):
            if id(node) in seen:  # an alias of a node already walked: once is enough (no exponential blow-up)
                continue
            seen.add(id(node))
        yield loc, parent, node
        if isinstance(node, dict | list):
            items = node.items() if isinstance(node, dict) else enumerate(node)
            for k, v in reversed(list(items)):
                stack.append((f"{loc}.{k}" if loc else str(k), node, v, depth + 1))


_INTERPOLATION = re.compile(r"\$\{([^${}]*)\}")


def _lookup(doc: object, dotted: str) -> object:
    node = doc
    for part in dotted.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def _interpolate(doc: object, value: str) -> tuple[str, str | None]:
    """Resolve OmegaConf ``${a.b}`` node interpolations in a target (``_target_: os.${fn}`` with ``fn: system``).

    Returns the resolved text and the first interpolation that could not be resolved statically (a resolver call,
    a relative or missing key), if any. Bounded: at most 20 substitutions, 1,000 characters.
    """
    for _ in range(20):
        match = _INTERPOLATION.search(value)
        if match is None:
            return value, None
        key = match.group(1).strip()
        found = _lookup(doc, key) if key and ":" not in key and not key.startswith(".") else None
        if not isinstance(found, str | int | float) or isinstance(found, bool):
            return value, match.group(0)
        value = value[:match.start()] + str(found) + value[match.end():]
        if len(value) > 1000:
            break
    return value, value


def _lookup_from(doc: object, loc: str, key: str) -> object:
    """An OmegaConf node interpolation ``key`` seen from the node at ``loc``: absolute (``a.b``) or relative
    (``.b`` is a sibling, ``..b`` a sibling of the parent). None when it cannot be found statically."""
    if not key.startswith("."):
        return _lookup(doc, key)
    dots = len(key) - len(key.lstrip("."))
    parts = loc.split(".") if loc else []
    if dots > len(parts):
        return None
    rest = key[dots:]
    dotted = ".".join(parts[:len(parts) - dots] + ([rest] if rest else []))
    return _lookup(doc, dotted) if dotted else doc


def _builder_calls(text: str) -> Iterator[tuple[str, str]]:
    """(resolver, argument text) for every ``oc.create``/``oc.decode`` call in ``text``, nested ones included.

    The argument ends at the brace that closes the call; braces inside quoted strings (OmegaConf's grammar allows
    ``'...'`` and ``"..."`` with backslash escapes) do not count.
    """
    for match in _RESOLVER.finditer(text):
        if match.group(1) not in _NODE_BUILDERS:
            continue
        start = pos = match.end()
        depth, quote = 1, ""
        while pos < len(text):
            ch = text[pos]
            if ch == "\\":
                pos += 2
                continue
            if quote:
                quote = "" if ch == quote else quote
            elif ch in "'\"":
                quote = ch
            elif ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    break
            pos += 1
        yield match.group(1), text[start:pos]


def _expand(doc: object, loc: str, text: str) -> tuple[str, bool]:
    """``text`` with node interpolations replaced by the scalars they resolve to, innermost first, and whether
    anything remained that only the loader can compute (a resolver other than ``oc.env``, whose value comes from the
    machine, not the repository; a key not found statically; too much text)."""
    dynamic = False
    for _ in range(100):
        match = _INTERPOLATION.search(text)
        if match is None:  # an interpolation with braces in its arguments is left: only the loader computes it
            return text, dynamic or "${" in text
        key = match.group(1).strip()
        value = ""
        if ":" in key:
            dynamic = dynamic or key.split(":", 1)[0].strip() != "oc.env"
        else:
            found = _lookup_from(doc, loc, key)
            if isinstance(found, str | int | float) and not isinstance(found, bool):
                value = str(found)
            elif not isinstance(found, dict | list):  # a container node is walked on its own
                dynamic = True
        text = text[:match.start()] + value + text[match.end():]
        if len(text) > _MAX_EXPANDED:
            return text, True
    return text, True


def _built_node_triggers(config: bytes, doc: object, loc: str, text: str) -> list[Trigger]:
    """Targets inside the nodes ``oc.create``/``oc.decode`` build from ``text`` (a string value of the config)."""
    out: list[Trigger] = []
    where = loc or "(document)"
    for count, (name, arg) in enumerate(_builder_calls(text)):
        if count >= _MAX_BUILDER_CALLS:
            out.append(Trigger(config, "resolver", where, text[:200], follow_folder=False,
                               problem=f"more than {_MAX_BUILDER_CALLS} node-building resolver calls in one value"))
            break
        expanded, dynamic = _expand(doc, loc, arg)
        dynamic = dynamic or "\\" in arg  # grammar escapes: the text the loader decodes is not the text we read
        targets = list(_BUILT_TARGET.finditer(expanded))
        for match in targets:
            key, target = match.group(1), match.group(2)
            label = f"{where} (a node ${{{name}:...}} builds).{key}"
            if not target:
                out.append(Trigger(config, "hydra", label, expanded[:200], follow_folder=False,
                                   problem="target inside a node a resolver builds cannot be read statically"))
                continue
            out.append(Trigger(config, "hydra" if key == "_target_" else "jsonargparse", label, target,
                               modules=(_module_candidates(target),), danger=dangerous_target(target),
                               follow_folder=False,
                               problem="computed from text the loader decodes at load time" if dynamic else None))
        if not targets and (dynamic or "custom_imports" in expanded):
            out.append(Trigger(config, "resolver", where, text[:200], follow_folder=False,
                               problem=f"{name} builds config nodes from text computed when the config is loaded: "
                                       "Hydra instantiates any _target_ in them, which cannot be checked statically"))
    return out


def structured_triggers(config: bytes, doc: object) -> list[Trigger]:
    """Hydra ``_target_``, jsonargparse ``class_path``, MMEngine ``custom_imports`` and resolvers, at any depth."""
    out: list[Trigger] = []
    for loc, _parent, node in _walk(doc):
        if isinstance(node, dict):
            for key in ("_target_", "class_path"):
                target = node.get(key)
                if isinstance(target, str):
                    kind = "hydra" if key == "_target_" else "jsonargparse"
                    resolved, unresolved = _interpolate(doc, target)
                    danger = dangerous_target(resolved)
                    extra = [k for k in ("_args_", "_partial_", "_recursive_", "init_args") if k in node]
                    where = f"{loc}.{key}" if loc else key
                    label = f"{where}" + (f" (with {', '.join(extra)})" if extra else "")
                    shown = target if resolved == target else f"{target} (resolves to {resolved})"
                    problem = (f"target is computed by interpolation {unresolved} and cannot be checked statically"
                               if unresolved else None)
                    out.append(Trigger(config, kind, label, shown, modules=(_module_candidates(resolved),),
                                       danger=danger, problem=problem, follow_folder=False))
                elif target is not None:
                    out.append(Trigger(config, "hydra", f"{loc}.{key}", repr(target)[:200],
                                       problem="non-string target", follow_folder=False))
            imports = node.get("custom_imports")
            if isinstance(imports, dict):
                imports = imports.get("imports")
            if isinstance(imports, str):
                imports = [imports]
            if isinstance(imports, list):
                for i, mod in enumerate(imports):
                    if isinstance(mod, str):
                        out.append(Trigger(config, "custom_imports", f"{loc}.custom_imports[{i}]".lstrip("."), mod,
                                           modules=(_module_candidates(mod),), danger=dangerous_target(mod),
                                           follow_folder=False))
        elif isinstance(node, str) and "${" in node:
            for name in _RESOLVER.findall(node):
                if name not in _BUILTIN_RESOLVERS:
                    what = "eval resolver: the string is Python code" if name in {"eval", "python.eval"} else (
                        f"custom resolver {name!r} runs project code")
                    out.append(Trigger(config, "resolver", loc or "(document)", node[:200], problem=what,
                                       follow_folder=False))
            out.extend(_built_node_triggers(config, doc, loc, node))
    return out


# key -> (risky value, what it means); loaders read these settings from training configs
_RISKY_SETTINGS: dict[str, tuple[object, str]] = {
    "trust_remote_code": (True, "runs code shipped with the model it loads"),
    "allow_pickle": (True, "numpy unpickles object arrays"),
    "weights_only": (False, "torch.load unpickles arbitrary objects"),
    "safe_mode": (False, "Keras runs Lambda-layer bytecode"),
}


def config_hints(doc: object) -> list[str]:
    """Risky loader settings anywhere in a parsed config (for reviewers)."""
    out: list[str] = []
    for loc, _parent, node in _walk(doc):
        if isinstance(node, dict):
            for key, (risky, meaning) in _RISKY_SETTINGS.items():
                value = node.get(key)
                if value is risky:
                    where = f"{loc}.{key}" if loc else key
                    out.append(f"{where}: {str(value).lower()} ({meaning})")
    return out


# --- diffusers and sentence-transformers ----------------------------------------------------------------------------

_DIFFUSERS_LIBS = frozenset({"diffusers", "transformers", "onnxruntime.training"})
# diffusers.pipelines sub-package names used as component libraries in published model_index.json files.
_DIFFUSERS_PIPELINE_MODULES = frozenset({
    "stable_diffusion", "stable_diffusion_xl", "stable_diffusion_3", "stable_diffusion_2", "kandinsky",
    "kandinsky2_2", "kandinsky3", "deepfloyd_if", "pixart_alpha", "flux", "controlnet", "latent_diffusion", "ddpm",
    "ddim", "dance_diffusion", "audioldm", "audioldm2", "musicldm", "wuerstchen", "stable_cascade",
    "stable_video_diffusion", "i2vgen_xl", "animatediff", "text_to_video_synthesis", "unclip", "versatile_diffusion",
    "paint_by_example", "shap_e", "consistency_models", "dit", "lumina", "hunyuandit", "aura_flow", "sana",
    "cogvideo", "ltx", "mochi", "wan", "allegro", "amused", "blip_diffusion", "stable_audio", "kolors", "pag",
    "marigold", "semantic_stable_diffusion", "ledits_pp", "alt_diffusion", "latent_consistency_models",
    "stable_diffusion_safe", "pndm", "score_sde_ve", "karras_ve", "repaint", "unidiffuser", "stable_unclip",
})


def peft_auto_mapping_trigger(config: bytes, mapping: dict[object, object]) -> Trigger:
    """peft's ``adapter_config.json`` ``auto_mapping``: with no ``task_type``, ``AutoPeftModel.from_pretrained`` runs
    ``importlib.import_module(auto_mapping["parent_library"])`` and calls ``from_pretrained`` on its
    ``base_model_class``, without ``trust_remote_code``: any module on the path, the repository's own included."""
    library, name = mapping.get("parent_library"), mapping.get("base_model_class")
    if not isinstance(library, str):
        return Trigger(config, "peft", "auto_mapping.parent_library", repr(library)[:200],
                       problem="non-string module name", follow_folder=False)
    dotted = f"{library}.{name}" if isinstance(name, str) else library
    return Trigger(config, "peft", "auto_mapping.parent_library (AutoPeftModel imports it)", dotted,
                   modules=(_module_candidates(library),), danger=dangerous_target(dotted), follow_folder=False)


def diffusers_triggers(config: bytes, doc: object, locate: Locate) -> list[Trigger]:
    """``model_index.json`` / ``modular_model_index.json``: custom pipeline class and custom components.

    diffusers (``_get_custom_components_and_folders``) loads ``<component>/<library>.py`` when ``os.path.isfile``
    finds it, otherwise ``importlib.import_module(library)`` unless the library is diffusers, transformers or a
    diffusers pipeline module. ``locate`` finds the file as checkouts do: on macOS and Windows ``unet/Diffusers.py``
    answers for ``unet/diffusers.py`` (attack round 4).
    """
    out: list[Trigger] = []
    if not isinstance(doc, dict):
        return out
    here = posixpath.dirname(config)
    name = doc.get("_class_name")
    if isinstance(name, list) and name and isinstance(name[0], str):
        mod = _mod_path(here, name[0])
        out.append(Trigger(config, "diffusers", "_class_name", json.dumps(name),
                           modules=((mod,),) if mod else (),
                           problem=None if mod else "custom pipeline module outside the repository"))
    for component, value in doc.items():
        if not isinstance(component, str) or component.startswith("_") or not isinstance(value, list):
            continue
        if len(value) < 2 or not isinstance(value[0], str):
            continue
        lib = value[0]
        comp_file = _mod_path(here, f"{component}/{lib}")
        found = locate(comp_file) if comp_file is not None else None
        if found is not None:
            out.append(Trigger(config, "diffusers-component", component, json.dumps(value), modules=((found,),)))
        elif lib not in _DIFFUSERS_LIBS and lib not in _DIFFUSERS_PIPELINE_MODULES:
            out.append(Trigger(config, "diffusers-component", component, json.dumps(value),
                               problem=f"library {lib!r} is neither diffusers nor transformers: an installed module "
                                       f"of that name is imported and its top-level code runs"))
    return out


def sentence_transformers_triggers(config: bytes, doc: object) -> list[Trigger]:
    out: list[Trigger] = []
    if not isinstance(doc, list):
        return out
    for i, module in enumerate(doc):
        if not isinstance(module, dict):
            continue
        type_ = module.get("type")
        if not isinstance(type_, str) or type_.startswith("sentence_transformers."):
            continue
        key = f"[{i}].type"
        body = type_.split("--")[-1]
        if body.count(".") == 1:
            out.append(class_reference(config, "sentence-transformers", key, type_))
        else:
            out.append(Trigger(config, "sentence-transformers", key, type_,
                               modules=(_module_candidates(type_),),
                               problem=f"type {type_!r} is imported from an installed module or the repository"))
    return out


# --- entry point ------------------------------------------------------------------------------------------------------


_QUICK_TARGET = re.compile(
    rb"""(?:^|[\s{,\-])['"]?_target_['"]?[ \t]*:[ \t]*['"]?([A-Za-z_][\w.]*)['"]?[ \t]*(?=$|[,}#\s])""", re.MULTILINE)


def quick_targets(config: bytes, data: bytes) -> list[Trigger] | None:
    """``_target_`` values of plain YAML by regular expression; None when the file needs a real parse."""
    if any(n in data for n in (b"\\", b"!", b"class_path", b"custom_imports", b"${", b"auto_map", b"&", b"*")):
        return None
    if _wide_text(data):
        return None  # the regular expression reads bytes as ASCII: UTF-16/32 text needs the parser
    matches = list(_QUICK_TARGET.finditer(data))
    if len(matches) != data.count(b"_target_"):
        return None
    out = []
    for match in matches:
        target = match.group(1).decode("ascii")
        line = data.count(b"\n", 0, match.start(1)) + 1
        out.append(Trigger(config, "hydra", f"_target_ (line {line})", target, modules=(_module_candidates(target),),
                           danger=dangerous_target(target), follow_folder=False))
    return out


def _load(config: bytes, data: bytes) -> object:
    base = posixpath.basename(config).lower()
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{len(data)} bytes, above the {MAX_CONFIG_BYTES}-byte cap for configs", cap=True)
    if base.endswith(b".json"):
        try:
            return json.loads(data)
        except RecursionError as exc:
            raise ConfigError("JSON nested too deeply", cap=True) from exc
        except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            raise ConfigError(f"not valid JSON: {exc}") from exc
    import yaml  # lazy: only when a YAML config is in the push

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        docs = list(yaml.load_all(data, Loader=loader))
    except RecursionError as exc:
        raise ConfigError("YAML nested too deeply", cap=True) from exc
    except (yaml.YAMLError, ValueError) as exc:
        raise ConfigError(f"not valid YAML: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
    return docs[0] if len(docs) == 1 else docs


def extract_triggers(config: bytes, data: bytes, locate: Locate = lambda _p: None, *,
                     quick: bool = False) -> ConfigTriggers:
    """All triggers in one config file (JSON, YAML, ``hubconf.py``, ``pipeline.py``, ``custom_generate/*``).

    ``locate``: where a checkout finds a file of a given path in the tree, if anywhere (:func:`checkout_locator`).

    ``quick`` (for unchanged configs read only to learn which modules they load): plain YAML whose only trigger keys
    are ``_target_`` is read with a regular expression instead of a YAML parser.

    Raises:
        ConfigError: the file may hold a trigger but cannot be analysed (``cap`` tells a resource cap from a parse
            error).
    """
    base = posixpath.basename(config)
    if base == b"hubconf.py":
        return ConfigTriggers(config, (Trigger(config, "hubconf", "torch.hub entry points",
                                               "hubconf.py", modules=((config,),)),))
    if config.endswith(b"custom_generate/generate.py"):
        return ConfigTriggers(config, (Trigger(config, "custom_generate", "generate(custom_generate=...)",
                                               "generate.py", modules=((config,),)),))
    if config.endswith(b"custom_generate/requirements.txt"):
        return ConfigTriggers(config, (Trigger(config, "custom_generate", "requirements installed for custom_generate",
                                               "requirements.txt"),))
    if base == b"pipeline.py":
        return ConfigTriggers(config, (Trigger(config, "diffusers-pipeline", "custom_pipeline=<repo>",
                                               "pipeline.py", modules=((config,),)),))
    lower = base.lower()
    if not lower.endswith((b".json", b".yaml", b".yml")):
        return ConfigTriggers(config)
    yaml_file = not lower.endswith(b".json")
    if lower not in _ALWAYS_PARSED and not may_hold_trigger(data, yaml_file=yaml_file):
        return ConfigTriggers(config)
    if quick and yaml_file:
        found = quick_targets(config, data)
        if found is not None:
            return ConfigTriggers(config, tuple(found))
    doc = _load(config, data)
    try:
        return ConfigTriggers(config, tuple(_document_triggers(config, lower, doc, locate)), tuple(config_hints(doc)))
    except RecursionError as exc:  # auto_map values nested close to the parser's own limit
        raise ConfigError("nested too deeply", cap=True) from exc


def _document_triggers(config: bytes, lower: bytes, doc: object, locate: Locate) -> list[Trigger]:
    triggers: list[Trigger] = []
    if isinstance(doc, dict):
        if "auto_map" in doc:
            triggers.extend(auto_map_triggers(config, doc["auto_map"]))
        mapping = doc.get("auto_mapping")
        if isinstance(mapping, dict) and "parent_library" in mapping:
            triggers.append(peft_auto_mapping_trigger(config, mapping))
        pipelines = doc.get("custom_pipelines")
        if isinstance(pipelines, dict):
            for task, spec in pipelines.items():
                impl = spec.get("impl") if isinstance(spec, dict) else None
                if isinstance(impl, str):
                    triggers.append(class_reference(config, "custom_pipelines", f"custom_pipelines.{task}.impl", impl))
    if lower in (b"model_index.json", b"modular_model_index.json"):
        triggers.extend(diffusers_triggers(config, doc, locate))
    if lower == b"modules.json":
        triggers.extend(sentence_transformers_triggers(config, doc))
    triggers.extend(structured_triggers(config, doc))
    return triggers
