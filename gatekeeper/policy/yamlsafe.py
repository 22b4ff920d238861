"""Load a small, trusted-shape YAML document from an untrusted file: plain data with a line number for every value.

Why not ``yaml.safe_load``: it expands aliases (a "billion laughs" document of a few hundred bytes becomes gigabytes),
silently keeps the last of duplicate keys (a second ``rules:`` would replace the first), recurses once per nesting
level (a deep ``[[[[...`` ends in ``RecursionError``) and forgets where each value came from, which a linter needs.

So this module builds the document itself from libyaml's *event* stream (``CSafeLoader`` when available; the pure
Python parser otherwise), iteratively, and refuses what a configuration file never needs: aliases, tags other than
the standard scalar/sequence/mapping ones (``!!python/object`` included), non-scalar or non-string keys, duplicate
keys, several documents, more than :data:`MAX_DEPTH` levels and more than :data:`MAX_BYTES` bytes.

Values come back as ``str``/``int``/``float``/``bool``/``None`` scalars, :class:`YList` and :class:`YMap`; containers
carry their own line (``.line``) and the line of each item (``.lines``). Lines are 1-based.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MAX_BYTES", "MAX_DEPTH", "YList", "YMap", "YamlProblem", "load_yaml"]

MAX_BYTES = 1 << 20  # a policy for thousands of rules fits in well under 1 MiB
MAX_DEPTH = 32  # the policy schema nests 4 levels; anything deeper is a mistake or an attack

_STD = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_STD + name for name in ("str", "int", "float", "bool", "null")}


class YamlProblem(Exception):
    """The document cannot be loaded; ``line`` (1-based) is where the problem was found."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


class YMap(dict[str, Any]):
    """A mapping that remembers its line and the line of each key."""

    __slots__ = ("line", "lines")

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.lines: dict[str, int] = {}


class YList(list[Any]):
    """A sequence that remembers its line and the line of each item."""

    __slots__ = ("line", "lines")

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.lines: list[int] = []


def _line(event: Any) -> int:
    mark = getattr(event, "start_mark", None)
    return int(mark.line) + 1 if mark is not None else 1


def _scalar(event: Any, resolver: Any, constructor: Any) -> object:
    import yaml

    tag = event.tag
    if tag is None and event.implicit[1] and not event.implicit[0]:
        return event.value  # quoted without a tag: a string (the common case; skips the resolver)
    line = _line(event)
    if tag is None or tag == "!":
        tag = resolver.resolve(yaml.ScalarNode, event.value, event.implicit)
    if tag not in _SCALAR_TAGS:
        raise YamlProblem(line, f"unsupported YAML value {event.value!r} (tag {tag}); use a plain string or number")
    node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
    try:
        return {
            _STD + "str": constructor.construct_yaml_str,
            _STD + "int": constructor.construct_yaml_int,
            _STD + "float": constructor.construct_yaml_float,
            _STD + "bool": constructor.construct_yaml_bool,
            _STD + "null": constructor.construct_yaml_null,
        }[tag](node)
    except (ValueError, KeyError, yaml.YAMLError) as exc:
        kind = tag.rsplit(":", 1)[-1]
        # Python refuses to convert ints of more than 4300 digits (CVE-2020-10735): say so briefly.
        reason = "too many digits" if kind == "int" and len(event.value) > 1000 else str(exc)
        raise YamlProblem(line, f"invalid {kind} value {event.value[:40]!r}: {reason}") from None


def _check_container_tag(event: Any, expected: str) -> None:
    if event.tag not in (None, "!", _STD + expected):
        raise YamlProblem(_line(event), f"unsupported YAML tag {event.tag}")


def load_yaml(data: bytes, problems: list[YamlProblem] | None = None) -> object:
    """Parse one YAML document from ``data`` into plain values (see the module docstring).

    Args:
        data: the file's bytes.
        problems: when given, duplicate keys are appended here (the first value is kept) instead of raised, so a
            linter can report them together with everything else.

    Raises:
        YamlProblem: on syntax errors and everything refused above, with the line.
    """
    import yaml

    if len(data) > MAX_BYTES:
        raise YamlProblem(1, f"file is too big ({len(data)} bytes; the limit is {MAX_BYTES})")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise YamlProblem(line, f"file is not UTF-8 (byte {data[exc.start]:#04x} at offset {exc.start})") from None

    loader_cls = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    loader = loader_cls(text)
    resolver = yaml.resolver.Resolver()
    constructor = yaml.constructor.SafeConstructor()
    # Stack of open containers: (container, pending key or None, key line). The root sits in a one-item list.
    root = YList(1)
    stack: list[tuple[YMap | YList, str | None, int]] = [(root, None, 1)]
    documents = 0
    try:
        while True:
            event = loader.get_event()
            if event is None or isinstance(event, yaml.StreamEndEvent):
                break
            if isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise YamlProblem(_line(event), "more than one YAML document; a policy is one document")
                continue
            if isinstance(event, (yaml.StreamStartEvent, yaml.DocumentEndEvent)):
                continue
            if isinstance(event, yaml.AliasEvent):
                raise YamlProblem(_line(event), f"YAML aliases (*{event.anchor}) are not allowed in a policy")
            if isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                container, pending, _ = stack.pop()
                if pending is not None:  # pragma: no cover - the parser never ends a mapping after a lone key
                    raise YamlProblem(_line(event), "mapping key without a value")
                _add(stack, container, container.line, problems)
                continue
            line = _line(event)
            if isinstance(event, yaml.ScalarEvent):
                _add(stack, _scalar(event, resolver, constructor), line, problems)
            elif isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                if len(stack) > MAX_DEPTH:
                    raise YamlProblem(line, f"nested more than {MAX_DEPTH} levels deep")
                if isinstance(event, yaml.MappingStartEvent):
                    _check_container_tag(event, "map")
                    new: YMap | YList = YMap(line)
                else:
                    _check_container_tag(event, "seq")
                    new = YList(line)
                top, pending, _ = stack[-1]
                if isinstance(top, YMap) and pending is None:
                    raise YamlProblem(line, "a mapping key must be a plain string, not a list or mapping")
                stack.append((new, None, line))
            else:  # pragma: no cover - no other event types exist
                raise YamlProblem(line, f"unexpected YAML event {type(event).__name__}")
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = int(mark.line) + 1 if mark is not None else 1
        what = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        raise YamlProblem(line, f"YAML syntax error: {what or exc}") from None
    except yaml.reader.ReaderError as exc:  # raised before parsing, with a character offset instead of a mark
        line = text.count("\n", 0, max(exc.position, 0)) + 1
        char = f"U+{exc.character:04X}" if isinstance(exc.character, int) else repr(exc.character)
        raise YamlProblem(line, f"YAML syntax error: unacceptable character {char}: {exc.reason}") from None
    except yaml.YAMLError as exc:  # pragma: no cover - every parser error is marked or a ReaderError
        raise YamlProblem(1, f"YAML error: {exc}") from None
    finally:
        loader.dispose()
    if not root:
        raise YamlProblem(1, "the file is empty")
    return root[0]


_DROP = "\x00dropped duplicate"  # a pending key that is a duplicate: its value is parsed and dropped


def _add(
    stack: list[tuple[YMap | YList, str | None, int]],
    value: object,
    line: int,
    problems: list[YamlProblem] | None,
) -> None:
    top, pending, key_line = stack[-1]
    if isinstance(top, YList):
        top.append(value)
        top.lines.append(line)
        return
    if pending is None:
        if not isinstance(value, str):
            raise YamlProblem(line, f"mapping keys must be strings, not {value!r}")
        if value in top:
            problem = YamlProblem(line, f"duplicate key {value!r} (first on line {top.lines[value]})")
            if problems is None:
                raise problem
            problems.append(problem)
            value = _DROP
        stack[-1] = (top, value, line)
        return
    if pending == _DROP:
        stack[-1] = (top, None, line)
        return
    if isinstance(value, (YMap, YList)):
        value.line = key_line  # "missing key" problems then point at "trust:", not at the mapping's first key
    top[pending] = value
    top.lines[pending] = key_line
    stack[-1] = (top, None, line)
