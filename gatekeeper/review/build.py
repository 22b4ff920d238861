"""The review of one ref update: per protected file, what a reviewer needs to judge it, plus the remote-code
triggers and the findings, each tied to the requirement it triggers.

Inputs are what the gate itself computes (the net change set of :func:`gatekeeper.push.analysis`, the requirements of
:func:`gatekeeper.push.gate.requirements_for` and :func:`gatekeeper.push.content_gate.content_requirements`, the content
report of :func:`gatekeeper.push.content_gate.scan_push`), so "protected" here means exactly what the server will ask
approval for: rules and built-in requirements alike. Nothing is rendered here (see :mod:`gatekeeper.review.render`).
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gatekeeper.push.analysis import RefAnalysis
from gatekeeper.push.gate import Requirement
from gatekeeper.push.gitrepo import Repo
from gatekeeper.model import (
    MODE_ABSENT, MODE_BLOB, MODE_EXEC, MODE_GITLINK, MODE_LINK, Change, Finding, Verdict, display_path,
)
from gatekeeper.review.artifacts import ArtifactFacts, artifact_facts
from gatekeeper.review.configdiff import (
    MISSING, ConfigChange, ConfigUnreadable, chat_templates, config_kind, parse_config, semantic_diff, unified_lines,
)
from gatekeeper.review.remote import TriggerReview, remote_code_review

if TYPE_CHECKING:
    from gatekeeper.push.content_gate import ContentReport

__all__ = ["FileReview", "Review", "TaggedFinding", "build_review"]

MAX_TEXT_BYTES = 1 << 20  # per side; a bigger text file is shown by size and hash, like a binary
MAX_FILES_DETAILED = 2000  # files read and diffed per review; the rest are listed (bounded time on a huge change)
MAX_READ_BYTES = 1 << 30  # blobs above this are not read for the review (the gate scanned them; size and id shown)
_RULE_OF_DETECTOR = {"remote-code": "remote-code", "plumbing": "repository-plumbing"}  # others: content detectors
_TEXT_PROBE = 8000  # git's own binary heuristic: a NUL in the first 8000 bytes


@dataclass
class TaggedFinding:
    finding: Finding
    requirement: str  # the rule it triggers, "refused" (no approval lifts it), "hint" or "recorded"

    def to_dict(self) -> dict[str, object]:
        f = self.finding
        return {"verdict": f.verdict.value, "path": f.path, "detector": f.detector, "message": f.message,
                "evidence": list(f.evidence), "requirement": self.requirement}


@dataclass
class FileReview:
    change: Change
    status: str  # added, deleted, modified, mode, type
    rules: list[str]  # rules and built-in requirements this path triggers
    kind: str  # text, config, binary, symlink, submodule, large, skipped
    text_diff: list[str] = field(default_factory=list)
    config_changes: list[ConfigChange] = field(default_factory=list)
    config_note: str = ""  # why there is no key-path diff
    chat_template_diff: list[str] = field(default_factory=list)
    old_facts: ArtifactFacts | None = None
    new_facts: ArtifactFacts | None = None
    note: str = ""

    @property
    def path(self) -> str:
        return display_path(self.change.path)

    def to_dict(self) -> dict[str, object]:
        c = self.change
        return {
            "path": self.path, "status": self.status, "kind": self.kind, "rules": list(self.rules),
            "old": {"mode": f"{c.old_mode:06o}", "id": c.old_id}, "new": {"mode": f"{c.new_mode:06o}", "id": c.new_id},
            "text_diff": list(self.text_diff),
            "config_changes": [{"path": x.path, "change": x.kind, "old": x.old, "new": x.new}
                               for x in self.config_changes],
            "config_note": self.config_note, "chat_template_diff": list(self.chat_template_diff),
            "old_artifact": self.old_facts.to_dict() if self.old_facts else None,
            "new_artifact": self.new_facts.to_dict() if self.new_facts else None,
            "note": self.note,
        }


@dataclass
class Review:
    ref: str
    base: str | None
    head: str
    protected_ref: bool
    requirements: list[Requirement]
    files: list[FileReview]  # the protected change set
    unprotected: list[Change]  # changed paths no rule or built-in requirement covers
    triggers: list[TriggerReview]
    findings: list[TaggedFinding]
    policy_known: bool = True  # False: no copy of the server's policy; every changed file is shown, rules unknown

    def to_dict(self) -> dict[str, object]:
        return {
            "ref": self.ref, "base": self.base, "head": self.head, "protected_ref": self.protected_ref,
            "policy_known": self.policy_known,
            "requirements": [
                {"rule": r.rule, "approvals": r.approvals, "reviewers": list(r.reviewer_spec),
                 "people": sorted(r.reviewers), "why": r.why, "paths": [display_path(c.path) for c in r.changes]}
                for r in self.requirements],
            "files": [f.to_dict() for f in self.files],
            "unprotected": [display_path(c.path) for c in self.unprotected],
            "remote_code": [t.to_dict() for t in self.triggers],
            "findings": [f.to_dict() for f in self.findings],
        }


def build_review(repo: Repo, analysis: RefAnalysis, requirements: Sequence[Requirement],
                 report: ContentReport | None) -> Review:
    """The review of ``analysis`` (its change set), given the gate's requirements and content report for it."""
    from gatekeeper.detectors.scan import RepoTreeView

    rules_of: dict[bytes, list[str]] = {}
    for req in requirements:
        for change in req.changes:
            names = rules_of.setdefault(change.path, [])
            if req.rule not in names:
                names.append(req.rule)
    files: list[FileReview] = []
    unprotected: list[Change] = []
    for change in analysis.changes:
        rules = rules_of.get(change.path)
        if rules and len(files) >= MAX_FILES_DETAILED:
            files.append(FileReview(change=change, status=status_of(change), rules=list(rules), kind="skipped",
                                    note=f"not shown: the review details the first {MAX_FILES_DETAILED} files"))
        elif rules:
            files.append(_file_review(repo, change, rules))
        else:
            unprotected.append(change)
    new_tree = repo.commit_tree(analysis.new_target) if analysis.new_target else None
    old_tree = repo.commit_tree(analysis.base) if analysis.base else None
    triggers = [t for t in remote_code_review(
        RepoTreeView(repo, new_tree) if new_tree else None, RepoTreeView(repo, old_tree) if old_tree else None,
        [c.path for c in analysis.changes]) if t.changed]
    changed_paths = {c.path for c in analysis.changes}
    for trig in triggers:
        # A file that starts to run without changing is not in the change set, so its diff is not above: show it
        # whole (a swapped auto_map target can point at any file already in the repository).
        for path in trig.entered:
            if path in changed_paths or new_tree is None:
                continue
            data = RepoTreeView(repo, new_tree).read(path)
            if data is not None and _is_text(data):
                trig.entered_content[path] = unified_lines("", data.decode("utf-8", "replace"), old_name="/dev/null",
                                                           new_name=f"b/{display_path(path)}")
    return Review(
        ref=analysis.update.ref, base=analysis.base, head=analysis.update.new, protected_ref=analysis.protected,
        requirements=list(requirements), files=files, unprotected=unprotected, triggers=triggers,
        findings=_tag_findings(analysis, requirements, report),
    )


def _tag_findings(analysis: RefAnalysis, requirements: Sequence[Requirement],
                  report: ContentReport | None) -> list[TaggedFinding]:
    """The findings for this change set only, each with the requirement it triggers."""
    content = report.refs.get(analysis.update.ref) if report is not None else None
    if content is None:
        return []
    in_change_set = {display_path(c.path) for c in analysis.changes}
    requirement_of: dict[str, str] = {}
    for req in requirements:
        for change in req.changes:
            requirement_of.setdefault(display_path(change.path), req.rule)
    # the built-in rule each path was routed to (content_gate's routing), by the detector family that put it there
    routed: dict[tuple[str, str], str] = {}
    for rule, paths in content.review.items():
        for path in paths:
            routed[(display_path(path), rule)] = rule
    blocking = {id(f) for f in content.blocking}
    out: list[TaggedFinding] = []
    seen: set[tuple[str, str, str]] = set()
    for finding in content.findings:
        outer = finding.path.partition("!")[0]
        key = (finding.path, finding.detector, finding.message)
        if key in seen:
            continue
        seen.add(key)
        if id(finding) in blocking:
            tag = "refused (no approval can override)"
        elif outer not in in_change_set:
            continue  # a file outside this change set (e.g. an unchanged config whose trigger is not new)
        elif finding.verdict == Verdict.HINT:
            tag = "hint (never blocks)"
        else:
            family = _RULE_OF_DETECTOR.get(finding.detector, "ml-artifacts")
            tag = routed.get((outer, family)) or requirement_of.get(
                outer, "recorded (not a protected ref)" if not analysis.protected else "recorded")
        out.append(TaggedFinding(finding, tag))
    return out


def status_of(change: Change) -> str:
    """added, deleted, modified, mode, type; with (symlink)/(submodule): the words the hook's messages use."""
    from gatekeeper.push.messages import _status

    return " ".join(_status(change).split())


def _read(repo: Repo, mode: int, oid: str) -> bytes | None:
    if mode not in (MODE_BLOB, MODE_EXEC, MODE_LINK):
        return None
    return repo.read_blob(oid)


def _is_text(data: bytes | None) -> bool:
    if data is None:
        return True
    if len(data) > MAX_TEXT_BYTES or b"\0" in data[:_TEXT_PROBE]:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    from gatekeeper.detectors.content import sniff

    # A protocol-0 pickle is valid UTF-8 text and still a model file. Other sniffed formats are not taken from text:
    # "x = 1" starts like a zlib stream (0x78 0x20 is a valid zlib header) and is still Python.
    return sniff(data) != "pickle"


def _file_review(repo: Repo, change: Change, rules: list[str]) -> FileReview:
    review = FileReview(change=change, status=status_of(change), rules=list(rules), kind="text")
    if MODE_GITLINK in (change.old_mode, change.new_mode):
        review.kind = "submodule"
        review.note = (f"submodule commit {change.old_id[:12] if change.old_mode == MODE_GITLINK else '(none)'} -> "
                       f"{change.new_id[:12] if change.new_mode == MODE_GITLINK else '(none)'}")
        return review
    sizes = [repo.blob_size(oid) or 0 for mode, oid in ((change.old_mode, change.old_id),
                                                        (change.new_mode, change.new_id)) if mode != MODE_ABSENT]
    if any(s > MAX_READ_BYTES for s in sizes):
        review.kind = "large"
        review.note = (f"over {MAX_READ_BYTES >> 20} MiB: not read for the review (the gate scanned it); "
                       f"blob {change.old_id[:12]} -> {change.new_id[:12]}, sizes {sizes}")
        return review
    old = _read(repo, change.old_mode, change.old_id) if change.old_mode != MODE_ABSENT else None
    new = _read(repo, change.new_mode, change.new_id) if change.new_mode != MODE_ABSENT else None
    name = display_path(change.path)
    if MODE_LINK in (change.old_mode, change.new_mode):
        review.kind = "symlink"
    elif not (_is_text(old) and _is_text(new)):
        review.kind = "binary"
        review.old_facts = artifact_facts(old) if old is not None else None
        review.new_facts = artifact_facts(new) if new is not None else None
        return review
    old_text = (old or b"").decode("utf-8", "replace")
    new_text = (new or b"").decode("utf-8", "replace")
    review.text_diff = unified_lines(old_text, new_text, old_name=f"a/{name}" if old is not None else "/dev/null",
                                     new_name=f"b/{name}" if new is not None else "/dev/null")
    kind = config_kind(change.path) if review.kind == "text" else None
    if kind is not None:
        review.kind = "config"
        _config(review, kind, old, new)
    return review


def _config(review: FileReview, kind: str, old: bytes | None, new: bytes | None) -> None:
    try:
        old_doc = parse_config(kind, old) if old is not None else MISSING
        new_doc = parse_config(kind, new) if new is not None else MISSING
    except ConfigUnreadable as exc:
        review.config_note = f"no key-path diff: {exc}"
        return
    base = posixpath.basename(review.change.path)
    templates_old = chat_templates(old_doc) if base == b"tokenizer_config.json" else {}
    templates_new = chat_templates(new_doc) if base == b"tokenizer_config.json" else {}
    if templates_old != templates_new:
        for name in dict.fromkeys([*templates_old, *templates_new]):
            review.chat_template_diff += unified_lines(
                templates_old.get(name, ""), templates_new.get(name, ""),
                old_name=f"a/chat_template[{name}]", new_name=f"b/chat_template[{name}]")
        # the template is shown as code above; in the key-path list it would be one unreadable line
        old_doc = _without_template(old_doc)
        new_doc = _without_template(new_doc)
    review.config_changes = semantic_diff(old_doc, new_doc)


def _without_template(doc: object) -> object:
    if isinstance(doc, dict) and "chat_template" in doc:
        doc = dict(doc)
        doc["chat_template"] = "(shown as code above)"
    return doc

