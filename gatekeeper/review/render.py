"""The review as text for a terminal (or a pipe) and as JSON for tools.

Everything shown comes from the repository, so it is attacker-controlled: every line passes through :func:`safe`,
which escapes control and bidi characters (no terminal escape sequences, no Trojan-Source reordering) before any
colour is added. Colour only when the caller says so (a terminal without ``NO_COLOR``).
"""

from __future__ import annotations

from gatekeeper.model import display_path
from gatekeeper.review.build import FileReview, Review

__all__ = ["JSON_SCHEMA", "render_json", "render_text", "safe"]

JSON_SCHEMA = "gatekeeper.review/1"
MAX_DIFF_LINES = 400  # per file in text output; JSON carries the same lines (diffs are already size-capped)

_RESET = "\033[0m"
_STYLE = {"+": "\033[32m", "-": "\033[31m", "@": "\033[36m", "head": "\033[1m", "warn": "\033[33m"}


def safe(text: str) -> str:
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch == "\t" else repr(ch)[1:-1] for ch in text)


class _Out:
    def __init__(self, color: bool) -> None:
        self.color = color
        self.lines: list[str] = []

    def add(self, text: str, style: str = "") -> None:
        text = safe(text)
        self.lines.append(f"{_STYLE[style]}{text}{_RESET}" if self.color and style else text)

    def diff(self, lines: list[str], indent: str = "    ") -> None:
        for line in lines[:MAX_DIFF_LINES]:
            style = "" if line.startswith(("+++", "---")) else {"+": "+", "-": "-", "@": "@"}.get(line[:1], "")
            self.add(indent + line, style)
        if len(lines) > MAX_DIFF_LINES:
            self.add(f"{indent}... {len(lines) - MAX_DIFF_LINES} more diff lines (use --format json for all)")


def render_text(review: Review, *, color: bool = False, full_diff: bool = False) -> list[str]:
    out = _Out(color)
    base = review.base[:12] if review.base else "(empty tree)"
    out.add(f"Review of {review.ref}: {base}..{review.head[:12]}", "head")
    if not review.policy_known:
        out.add("Every changed file (without --config the rules are unknown here: they live on the server)")
    else:
        if not review.protected_ref:
            out.add("The policy does not protect this ref: pushes to it need no approval (content is still scanned)")
        else:
            _requirements(out, review)
    for file in review.files:
        _file(out, file, full_diff)
    if review.triggers:
        out.add("")
        out.add("Remote code: files that run when the model is loaded", "head")
        for trig in review.triggers:
            out.add(f"  {display_path(trig.config)}: {trig.key} ({trig.kind})")
            out.add(f"    before: {trig.before if trig.before is not None else '(no such trigger)'}"
                    + _runs(trig.files_before), "-" if trig.before != trig.after else "")
            out.add(f"    after:  {trig.after if trig.after is not None else '(removed)'}" + _runs(trig.files_after),
                    "+" if trig.before != trig.after else "")
            for path in trig.entered:
                unchanged = " (unchanged file, shown whole)" if path in trig.entered_content else ""
                out.add(f"    + now runs: {display_path(path)}{unchanged}", "+")
                out.diff(trig.entered_content.get(path, []), "      ")
            for path in trig.left:
                out.add(f"    - no longer runs: {display_path(path)}", "-")
            if trig.external:
                out.add(f"    runs code from repository {trig.external} at a floating revision", "warn")
            if trig.danger:
                out.add(f"    DANGER: {trig.danger}", "warn")
    if review.findings:
        out.add("")
        out.add("Findings in this change set (the server's detectors, run here)", "head")
        for tagged in review.findings:
            f = tagged.finding
            out.add(f"  {f.verdict.value}: {f.path}: {f.message}  [{tagged.requirement}]",
                    "warn" if f.verdict.value in ("malicious", "unscannable") else "")
            for line in f.evidence[:5]:
                out.add(f"      {line}")
    if review.unprotected:
        shown = ", ".join(display_path(c.path) for c in review.unprotected[:10])
        more = f" and {len(review.unprotected) - 10} more" if len(review.unprotected) > 10 else ""
        out.add("")
        out.add(f"Not protected ({len(review.unprotected)}): {shown}{more}")
    return out.lines


def _requirements(out: _Out, review: Review) -> None:
    if not review.requirements:
        out.add("No protected paths changed: this change needs no approval.")
        return
    out.add("Requirements this change triggers:")
    for req in review.requirements:
        why = f" ({req.why})" if req.why else ""
        who = ", ".join(req.reviewer_spec) or "nobody"
        out.add(f"  {req.rule}{why}: {req.approvals} approval(s) from {who}; {len(req.changes)} path(s)")


def _runs(files: list[bytes]) -> str:
    return " -> runs " + ", ".join(display_path(f) for f in files) if files else ""


def _file(out: _Out, file: FileReview, full_diff: bool) -> None:
    out.add("")
    tags = f"  [{', '.join(file.rules)}]" if file.rules else ""
    out.add(f"{file.status} {file.path}{tags}", "head")
    if file.note:
        out.add(f"    {file.note}")
    if file.kind == "binary":
        for label, facts in (("before", file.old_facts), ("after", file.new_facts)):
            if facts is None:
                out.add(f"    {label}: (absent)")
                continue
            out.add(f"    {label}: {facts.summary()}")
            for name, dtype, shape in facts.tensors:
                out.add(f"      {name}: {dtype} {list(shape)}")
            if facts.tensor_count is not None and facts.tensor_count > len(facts.tensors) and facts.tensors:
                out.add(f"      ... {facts.tensor_count - len(facts.tensors)} more tensors")
            if facts.pickle_globals:
                out.add(f"      pickle globals: {', '.join(facts.pickle_globals)}", "warn")
            for note in facts.notes:
                out.add(f"      {note}")
        return
    if file.chat_template_diff:
        out.add("    chat template (Jinja code that runs on every prompt):", "warn")
        out.diff(file.chat_template_diff, "      ")
    if file.kind == "config":
        if file.config_note:
            out.add(f"    {file.config_note}; text diff:")
            out.diff(file.text_diff)
            return
        for change in file.config_changes:
            out.add(f"    {change.line()}", {"added": "+", "removed": "-"}.get(change.kind, "@"))
        if not file.config_changes and not file.chat_template_diff:
            out.add("    no value changed (formatting, comments or key order only)")
        if full_diff:
            out.diff(file.text_diff)
        return
    out.diff(file.text_diff)


def render_json(review: Review) -> dict[str, object]:
    doc = review.to_dict()
    doc["schema"] = JSON_SCHEMA
    return doc
