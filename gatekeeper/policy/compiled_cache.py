"""pre-receive's compiled policy: the parsed document and the pattern translations of a policy that loaded cleanly.

Loading the policy on every push cost the YAML parser (import and parse) and pathspec (import and one translation per
path pattern). Neither depends on anything but the policy's bytes and the versions of the code that did the work, so
after a clean load the hook stores both, and the next load of the *same bytes* starts from them:

- the document exactly as :func:`gatekeeper.policy.yamlsafe.load_yaml` returned it (values, ``YMap``/``YList`` with
  every line number), and
- each rule pattern's (kind, expression) parts as :mod:`gatekeeper.policy.pathmatch` translated them.

Nothing else is taken on trust: the document is validated again by the same checker into the same typed ``Policy``
(every check runs, including that the trust store and the log's directory exist *now*), and the expressions are
compiled by ``re`` as on a cold load. The entry is keyed, authenticated and permission-checked by
:mod:`gatekeeper.policy.digest_cache`, with the versions of what it bakes in (Python and its Unicode tables, PyYAML,
pathspec, and the source of the gatekeeper modules that parse and translate) in its key. Any doubt is a miss, and a
miss is the full load. JSON only; nothing here raises.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import NamedTuple

from gatekeeper.policy import digest_cache
from gatekeeper.policy.pathmatch import MatchOptions, Parts
from gatekeeper.policy.yamlsafe import MAX_DEPTH, YList, YMap

KIND = "compiled-policy"
_MAX_ENTRY_BYTES = 8 << 20  # a policy is at most 1 MiB; its document and translations stay well below this
_KINDS = (0, 1, 2)  # pathmatch's _ANCHORED, _FLOATING, _COMPONENT


class CompiledPolicy(NamedTuple):
    document: object
    options: MatchOptions
    parts: dict[str, Parts]


def recall(cache_dir: Path | None, config: Path, policy_sha256: str) -> CompiledPolicy | None:
    """What a clean load of these exact policy bytes left behind, or None (no entry, or any doubt about it)."""
    if cache_dir is None:
        return None
    baked = _baked()
    if baked is None:
        return None
    payload = digest_cache.recall(cache_dir, KIND, config, policy_sha256, baked=baked, max_bytes=_MAX_ENTRY_BYTES)
    if not isinstance(payload, dict) or set(payload) != {"document", "case_insensitive", "unicode_nfc", "parts"}:
        return None
    case_insensitive, unicode_nfc = payload["case_insensitive"], payload["unicode_nfc"]
    if type(case_insensitive) is not bool or type(unicode_nfc) is not bool:
        return None
    parts = _decode_parts(payload["parts"])
    document = _decode(payload["document"], 0)
    if parts is None or document is _INVALID:
        return None
    return CompiledPolicy(document, MatchOptions(case_insensitive, unicode_nfc), parts)


def remember(cache_dir: Path | None, config: Path, policy_sha256: str, document: object, options: MatchOptions,
             parts: dict[str, Parts]) -> None:
    """Store what the clean load of the policy whose bytes hash to ``policy_sha256`` parsed and translated."""
    if cache_dir is None:
        return
    baked = _baked()
    if baked is None:
        return
    try:
        encoded = _encode(document)
    except (TypeError, RecursionError):
        return
    payload = {"document": encoded, "case_insensitive": options.case_insensitive,
               "unicode_nfc": options.unicode_nfc,
               "parts": {pattern: [[kind, regex] for kind, regex in value] for pattern, value in parts.items()}}
    digest_cache.remember(cache_dir, KIND, config, policy_sha256, payload, baked=baked)


# -- what the stored form depends on ---------------------------------------------------------------------------------


def _baked() -> list[str] | None:
    """Versions of everything whose behaviour the entry bakes in; None when one cannot be told (then: no cache)."""
    global _baked_memo
    if _baked_memo is None:  # once per process: a miss asks twice (recall, then remember)
        _baked_memo = (_versions(),)
    return _baked_memo[0]


_baked_memo: tuple[list[str] | None] | None = None


def _versions() -> list[str] | None:
    import unicodedata

    from gatekeeper import checkout
    from gatekeeper.policy import pathmatch, yamlsafe

    sources = [checkout.__file__, pathmatch.__file__, yamlsafe.__file__, __file__]
    for package, member in (("yaml", "__init__.py"), ("pathspec", "_version.py")):
        location = _package_dir(package)
        if location is None:
            return None
        sources.append(str(location / member))
    digest = hashlib.sha256()
    try:
        for source in sources:
            with open(source, "rb") as f:
                digest.update(hashlib.sha256(f.read()).digest())
    except OSError:
        return None
    return [sys.version, unicodedata.unidata_version, digest.hexdigest()]


def _package_dir(name: str) -> Path | None:
    """Where ``import name`` would load the package from, without importing it."""
    module = sys.modules.get(name)
    if module is not None and getattr(module, "__file__", None):
        return Path(module.__file__).parent  # type: ignore[arg-type]
    from importlib.machinery import PathFinder

    spec = PathFinder.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


# -- the document as JSON --------------------------------------------------------------------------------------------
# A mapping is {"map": line, "items": [[key, key line, value], ...]}, a list {"list": line, "items": [[line, value],
# ...]}; scalars are themselves (JSON keeps str, int, float, bool and null apart). Order is kept.

_INVALID = object()


def _encode(value: object) -> object:
    if isinstance(value, YMap):
        return {"map": value.line, "items": [[key, value.lines[key], _encode(item)] for key, item in value.items()]}
    if isinstance(value, YList):
        return {"list": value.line, "items": [[line, _encode(item)] for line, item in zip(value.lines, value)]}
    if value is None or type(value) in (str, int, float, bool):
        return value
    raise TypeError(f"not a policy document value: {type(value).__name__}")


def _decode(data: object, depth: int) -> object:
    if data is None or type(data) in (str, int, float, bool):
        return data
    if not isinstance(data, dict) or depth > MAX_DEPTH:
        return _INVALID
    if set(data) == {"map", "items"} and _is_line(data["map"]) and isinstance(data["items"], list):
        mapping = YMap(data["map"])
        for item in data["items"]:
            if not (isinstance(item, list) and len(item) == 3 and type(item[0]) is str and _is_line(item[1])):
                return _INVALID
            key, line, raw = item
            value = _decode(raw, depth + 1)
            if value is _INVALID or key in mapping:
                return _INVALID
            mapping[key] = value
            mapping.lines[key] = line
        return mapping
    if set(data) == {"list", "items"} and _is_line(data["list"]) and isinstance(data["items"], list):
        sequence = YList(data["list"])
        for item in data["items"]:
            if not (isinstance(item, list) and len(item) == 2 and _is_line(item[0])):
                return _INVALID
            value = _decode(item[1], depth + 1)
            if value is _INVALID:
                return _INVALID
            sequence.append(value)
            sequence.lines.append(item[0])
        return sequence
    return _INVALID


def _is_line(value: object) -> bool:
    return type(value) is int and value >= 1


def _decode_parts(data: object) -> dict[str, Parts] | None:
    if not isinstance(data, dict):
        return None
    parts: dict[str, Parts] = {}
    for pattern, value in data.items():
        if not isinstance(value, list) or not 1 <= len(value) <= 2:
            return None
        items = []
        for part in value:
            if not (isinstance(part, list) and len(part) == 2 and type(part[0]) is int and part[0] in _KINDS
                    and type(part[1]) is str):
                return None
            items.append((part[0], part[1]))
        parts[pattern] = tuple(items)
    return parts
