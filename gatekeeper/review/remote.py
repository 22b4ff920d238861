"""Remote code for the reviewer: which files run when the model is loaded, through which trigger, before and after.

The gate's remote-code analysis (:func:`gatekeeper.detectors.scan.analyse_remote_code`) is run on both sides of the
change; every config it names as holding a trigger (``auto_map``, ``custom_pipelines``, Hydra ``_target_``,
``modules.json``, ``hubconf.py`` ...) is read on both sides with the same trigger extractor, and each trigger's
Python import closure is computed with the gate's closure walker. The reviewer then sees, per trigger, the value and
the files it makes run before and after: a swapped ``auto_map`` target is a new closure, even when no ``.py`` file
changed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from gatekeeper.detectors.remote_code import Trigger, TreeView
from gatekeeper.model import display_path

__all__ = ["TriggerReview", "remote_code_review"]

_TRIGGER_REASON = "remote-code trigger:"


@dataclass
class TriggerReview:
    config: bytes
    kind: str  # auto_map, custom_pipelines, hydra, sentence-transformers, hubconf, ...
    key: str  # e.g. auto_map.AutoModel
    before: str | None  # the trigger's value before (None: no such trigger)
    after: str | None
    files_before: list[bytes] = field(default_factory=list)  # the closure: files that run on load
    files_after: list[bytes] = field(default_factory=list)
    external: str | None = None  # another repository's code at a floating revision
    danger: str | None = None
    entered_content: dict[bytes, list[str]] = field(default_factory=dict)  # unchanged files that now run, in full

    @property
    def changed(self) -> bool:
        return self.before != self.after or self.files_before != self.files_after

    @property
    def entered(self) -> list[bytes]:
        return [f for f in self.files_after if f not in self.files_before]

    @property
    def left(self) -> list[bytes]:
        return [f for f in self.files_before if f not in self.files_after]

    def to_dict(self) -> dict[str, object]:
        return {
            "config": display_path(self.config), "trigger": self.kind, "key": self.key, "before": self.before,
            "after": self.after, "runs_before": [display_path(f) for f in self.files_before],
            "runs_after": [display_path(f) for f in self.files_after],
            "entered": [display_path(f) for f in self.entered], "left": [display_path(f) for f in self.left],
            "external": self.external, "danger": self.danger,
            "entered_content": {display_path(p): lines for p, lines in self.entered_content.items()},
        }


def remote_code_review(new: TreeView | None, old: TreeView | None, changed: Iterable[bytes]) -> list[TriggerReview]:
    """Triggers (in configs the analysis names on either side) with their closures before and after."""
    from gatekeeper.detectors.scan import analyse_remote_code

    changed = list(changed)
    configs: set[bytes] = set()
    for tree in (new, old):
        if tree is None:
            continue
        report = analyse_remote_code(tree, changed, hints=False)
        configs.update(p for p, why in report.protected.items() if why.startswith(_TRIGGER_REASON))
    out: list[TriggerReview] = []
    for config in sorted(configs):
        after = _triggers(new, config)
        before = _triggers(old, config)
        for key in dict.fromkeys([*after, *before]):
            a, b = after.get(key), before.get(key)
            any_ = a or b
            assert any_ is not None
            out.append(TriggerReview(
                config=config, kind=any_.kind, key=any_.key,
                before=b.value if b else None, after=a.value if a else None,
                files_before=_closure(old, b) if b else [], files_after=_closure(new, a) if a else [],
                external=(a.external if a else None), danger=(a.danger if a else None),
            ))
    return out


def _triggers(tree: TreeView | None, config: bytes) -> dict[tuple[str, str], Trigger]:
    from gatekeeper.detectors.remote_code import ConfigError, extract_triggers
    from gatekeeper.detectors.scan import locator

    if tree is None:
        return {}
    data = tree.read(config)
    if data is None:
        return {}
    try:
        found = extract_triggers(config, data, locator(tree))
    except ConfigError:
        return {}  # the gate reports an unparsable config as its own finding; nothing runs from it here
    return {(t.kind, t.key): t for t in found.triggers}


def _closure(tree: TreeView | None, trigger: Trigger) -> list[bytes]:
    from gatekeeper.detectors.import_closure import python_closure

    if tree is None:
        return []
    read: Callable[[bytes], bytes | None] = tree.read
    files: list[bytes] = []
    for alternatives in trigger.modules:
        for entry in alternatives:
            if tree.mode(entry) is None:
                continue
            for path in python_closure(read, entry).files:
                if path not in files:
                    files.append(path)
    return files
