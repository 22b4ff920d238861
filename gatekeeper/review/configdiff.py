"""Semantic diffs of configuration files: what changed, by key path (``optimizer.lr: 0.0003 -> 0.003``).

A reviewer of a training config needs the value that changed, not a line of YAML that moved. Both sides are parsed
with bounded, code-free loaders (YAML through :mod:`gatekeeper.policy.yamlsafe`: no aliases, no tags, size- and
depth-capped; JSON with ``json``; TOML with ``tomllib``), flattened to ``key.path -> value`` and compared. List items
are addressed by index (``layers[2].dropout``); keys that are not plain identifiers are quoted
(``["a.b"]``) so two different keys can never print the same path.

A chat template (``tokenizer_config.json``'s ``chat_template``, a string or a list of named templates) is Jinja code
that runs on every prompt: :func:`chat_template_diff` returns it as a line diff of code, not as one long changed
string.
"""

from __future__ import annotations

import difflib
import json
import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["MISSING", "ConfigChange", "ConfigUnreadable", "chat_templates", "config_kind", "flatten", "parse_config",
           "semantic_diff", "unified_lines"]

MAX_CONFIG_BYTES = 1 << 20  # above this a config is shown as text only (the parsers' own caps are similar)
MAX_VALUE_CHARS = 200  # a value longer than this is shortened in the key-path diff (the text diff has it whole)
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
MISSING = object()


class ConfigUnreadable(ValueError):
    """A config that cannot be parsed; the review falls back to the text diff and says why."""


@dataclass(frozen=True)
class ConfigChange:
    """One key path whose value differs. ``old``/``new`` are JSON-style renderings; None means absent."""

    path: str
    old: str | None
    new: str | None

    @property
    def kind(self) -> str:
        return "added" if self.old is None else "removed" if self.new is None else "changed"

    def line(self) -> str:
        if self.old is None:
            return f"{self.path}: (absent) -> {self.new}"
        if self.new is None:
            return f"{self.path}: {self.old} -> (removed)"
        return f"{self.path}: {self.old} -> {self.new}"


def config_kind(path: bytes) -> str | None:
    """``yaml``, ``json`` or ``toml`` by file name; None for anything else."""
    name = posixpath.basename(path).lower()
    if name.endswith((b".yaml", b".yml")):
        return "yaml"
    if name.endswith(b".json"):
        return "json"
    if name.endswith(b".toml"):
        return "toml"
    return None


def parse_config(kind: str, data: bytes) -> object:
    """The document as plain values. Raises :class:`ConfigUnreadable` (never anything else) on bad input."""
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigUnreadable(f"{len(data)} bytes, above the {MAX_CONFIG_BYTES}-byte cap for a key-path diff")
    try:
        if kind == "json":
            return json.loads(data)
        if kind == "toml":
            import tomllib

            return tomllib.loads(data.decode("utf-8"))
        from gatekeeper.policy.yamlsafe import YamlProblem, load_yaml

        try:
            return load_yaml(data)
        except YamlProblem as exc:
            raise ConfigUnreadable(f"line {exc.line}: {exc.message}") from None
    except RecursionError:
        raise ConfigUnreadable("nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, TOMLDecodeError
        if isinstance(exc, ConfigUnreadable):
            raise
        raise ConfigUnreadable(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None


def _key(prefix: str, key: str) -> str:
    if _PLAIN_KEY.match(key):
        return f"{prefix}.{key}" if prefix else key
    return f"{prefix}[{json.dumps(key, ensure_ascii=True)}]"


def flatten(doc: object, prefix: str = "") -> Iterator[tuple[str, object]]:
    """``(key path, leaf value)`` pairs; an empty mapping or list is a leaf (so adding one is visible)."""
    stack: list[tuple[str, object]] = [(prefix, doc)]
    while stack:  # iterative: the parsers cap depth, but a walk must not depend on it
        where, value = stack.pop()
        if isinstance(value, dict) and value:
            for key in reversed(list(value)):
                stack.append((_key(where, str(key)), value[key]))
        elif isinstance(value, list) and value:
            for i in reversed(range(len(value))):
                stack.append((f"{where}[{i}]", value[i]))
        else:
            yield where or "(document)", value


def _render(value: object) -> str:
    try:
        text = json.dumps(value, ensure_ascii=True, sort_keys=True, default=str)
    except ValueError:  # nan/inf cannot be JSON: repr is unambiguous enough for a reviewer
        text = repr(value)
    if isinstance(value, float):
        text = repr(value)  # 0.0003, not 0.00030000000000000003-style surprises from a formatter
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS] + f"... ({len(text)} chars)"


def semantic_diff(old: object, new: object) -> list[ConfigChange]:
    """Every key path whose value was added, removed or changed, in the new document's order (removals last)."""
    before = dict(flatten(old)) if old is not MISSING else {}
    after = dict(flatten(new)) if new is not MISSING else {}
    out: list[ConfigChange] = []
    for path, value in after.items():
        prev = before.get(path, MISSING)
        if prev is MISSING:
            out.append(ConfigChange(path, None, _render(value)))
        elif prev != value or type(prev) is not type(value):
            out.append(ConfigChange(path, _render(prev), _render(value)))
    for path, value in before.items():
        if path not in after:
            out.append(ConfigChange(path, _render(value), None))
    return out


def chat_templates(doc: object) -> dict[str, str]:
    """``tokenizer_config.json``'s chat template(s): ``{"default": text}`` or one entry per named template."""
    if not isinstance(doc, dict):
        return {}
    value = doc.get("chat_template")
    if isinstance(value, str):
        return {"default": value}
    out: dict[str, str] = {}
    if isinstance(value, list):
        for item in value:
            if isinstance(item, dict) and isinstance(item.get("name"), str) and isinstance(item.get("template"), str):
                out[item["name"]] = item["template"]
    return out


def unified_lines(old: str, new: str, *, old_name: str, new_name: str, context: int = 3) -> list[str]:
    """A unified diff as lines without trailing newlines (what the renderers print)."""
    return [line.rstrip("\n") for line in difflib.unified_diff(
        old.splitlines(keepends=True), new.splitlines(keepends=True), fromfile=old_name, tofile=new_name, n=context,
        lineterm="\n")]
