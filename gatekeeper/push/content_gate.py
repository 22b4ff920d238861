"""ML artifacts are code: run the content detectors over a push and say what they demand of each ref.

Which content (DESIGN.md "Net diff of each protected ref" and issue "ML artifacts are code"):

* every blob the push brings: the entries that each new commit (``git rev-list new --not <all refs>``) adds or changes
  relative to each parent, so a malicious pickle added and removed again inside one push is still seen;
* every blob in a protected ref's net change set, even if it is not new to the repository (a commit first pushed to a
  feature branch and then to ``main`` brings no new objects);
* for protected refs, the remote-code analysis (``auto_map``, Hydra ``_target_``, ... and the Python files those make
  run) and the repository plumbing rule (``.gitattributes``, ``.gitmodules``, ``.lfsconfig``, symlinks into protected
  paths, submodules under them).

What the verdicts demand:

* ``malicious`` anywhere in what a ref update brings: that ref is refused; no approval and no break-glass lifts it;
* ``unscannable``: the same, unless the policy says ``scan.unscannable: review``;
* ``review-required`` (and files a trigger makes run, and plumbing): on a protected ref, a built-in requirement that
  needs approval exactly like a rule would; on other refs, recorded only;
* ``hint``: recorded, shown to reviewers, never blocking.

Verdicts are cached by blob id (outside the repository) so a re-push of the same content costs nothing.

Which objects (issue 8, "every object a push brings is scanned, whatever points at it"): a pushed ref may point at a
commit, a tree or a blob, directly or through tags nested to any depth, in any namespace; commits are walked, a tree
is scanned whole, a blob on its own. Configs that are malicious in themselves (``dangerous_config_findings``) refuse
every ref, like malicious pickles.

What git makes of the objects (:mod:`gatekeeper.checkout`): modes are canonical before anything is judged, and on
protected refs two things no reviewer can judge are refused outright (``Verdict.REFUSED``):

* a non-canonical tree entry mode (``100600``, ``120755``, ``040755``): no git since 2005 writes one, so only crafted
  objects carry it; readers disagree on its meaning (libgit2 reads ``120755`` as an executable file, git's checkout as
  a symlink), and an approval statement records canonical modes, so a reviewer would approve something other than
  what some reader gets. On other refs it is recorded as a hint, and the entry is scanned as git checks it out;
* a name a Windows checkout writes to a place the gate cannot know (an 8.3 short name such as ``MODELI~1.PY``, a
  component of dots and spaces only). Names whose Windows or macOS alias is knowable are matched as that alias by the
  policy instead (``Policy.rules_for``).
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from gatekeeper.checkout import (
    DOTFILE_NEEDLES,
    WINDOWS_NAME_NEEDLES,
    describe_mode,
    flagged_paths,
    fold_path,
    may_have_windows_name_problem,
    windows_name_problem,
)
from gatekeeper.detectors.checkout_forms import NO_DIRECTIVES, Directives
from gatekeeper.detectors.inert import INERT_MAX, plainly_inert  # light: the lane every small blob takes
from gatekeeper.detectors.lfs import BLOB_SIZE_CUTOFF, lfs_findings, may_be_pointer
from gatekeeper.detectors.pathfacts import path_facts
from gatekeeper.detectors.plumbing import dotfile_kind
from gatekeeper.detectors.remote_code import is_config_name
from gatekeeper.errors import GatekeeperError
from gatekeeper.model import (
    MODE_ABSENT,
    MODE_BLOB,
    MODE_EXEC,
    MODE_LINK,
    MODE_TREE,
    Change,
    Finding,
    ObjectId,
    OddMode,
    UpdateKind,
    Verdict,
    display_path,
    is_null,
)
from gatekeeper.push.analysis import LimitExceeded, RefAnalysis
from gatekeeper.push.gate import Requirement, builtin_requirement
from gatekeeper.push.gitrepo import Repo

if TYPE_CHECKING:  # the detectors and the policy module load only when a push needs them
    import mmap

    from gatekeeper.detectors.cache import CleanIndex, VerdictCache
    from gatekeeper.detectors.options import ScanOptions
    from gatekeeper.policy.config import Policy
    from gatekeeper.push.checkout_filters import FilterLine, FilterMap
    from gatekeeper.push.tree_listings import TreeListings

MAX_NEW_COMMITS = 20_000  # per push; above it the push is refused (never a partial scan)
MAX_BLOBS = 200_000
MAX_INCOMING_OBJECTS = 2_000_000  # objects in one push's quarantine checked for malformed trees
# Verdicts are cached only for blobs at least this big: below it, reading and sniffing the blob costs less than a
# cache lookup (a file per entry), and a big push of source files must not turn into 100k cache files.
CACHE_MIN_BYTES = 256 * 1024

REMOTE_CODE_RULE = "remote-code"
PLUMBING_RULE = "repository-plumbing"
ARTIFACT_RULE = "ml-artifacts"
TREE_MODE_DETECTOR = "tree-mode"
CHECKOUT_NAME_DETECTOR = "checkout-name"
SYMLINK_ESCAPE_DETECTOR = "symlink-escape"
OBJECT_TYPE_DETECTOR = "object-type"
EXPORT_SUBST_DETECTOR = "export-subst"
CHECKOUT_CONVERSION_DETECTOR = "checkout-conversion"
CHECKOUT_FILTER_DETECTOR = "checkout-filter"
CONFIG_READ_CAP = 1 << 20  # configs bigger than this are left to the protected refs' full remote-code analysis


@dataclass
class RefContent:
    """What the detectors found for one ref update."""

    blocking: list[Finding] = field(default_factory=list)  # refuse, no override
    review: dict[str, dict[bytes, str]] = field(default_factory=dict)  # built-in rule -> path -> reason
    findings: list[Finding] = field(default_factory=list)  # everything, for the record


@dataclass
class ContentReport:
    refs: dict[str, RefContent] = field(default_factory=dict)
    blobs_scanned: int = 0
    cache_hits: int = 0

    def for_ref(self, ref: str) -> RefContent:
        return self.refs.setdefault(ref, RefContent())


def scan_push(
    repo: Repo,
    policy: Policy,
    analyses: Sequence[RefAnalysis],
    *,
    cache_dir: Path | None,
) -> ContentReport:
    from gatekeeper.detectors.options import ScanOptions

    scan_cfg = policy.scan
    options = ScanOptions(extra_globals=frozenset(scan_cfg.extra_pickle_globals))
    unscannable_blocks = scan_cfg.unscannable != "review"
    cache = _open_cache(cache_dir)
    # Big blobs are spooled next to the cache (on the server's disk, owner-only), else in the system's temp dir.
    spool_dir = cache_dir if cache is not None else None
    clean = _open_clean_index(cache, options, scan_cfg.lfs_store)
    listings = _open_tree_listings(cache)
    report = ContentReport()
    hide = _existing_tips(repo)
    # One scan per blob and per set of path facts the verdict depends on (a blob at ``notes.txt`` and at
    # ``weights.pkl`` is judged twice; see detectors.pathfacts).
    seen: dict[Directives, dict[tuple[str, str], list[Finding]]] = {}  # keyed by directives first: hashed per ref
    commits_total = 0
    for analysis in analyses:
        if analysis.kind in (UpdateKind.DELETE, UpdateKind.NOOP):
            continue
        content = report.for_ref(analysis.update.ref)
        blobs: dict[tuple[str, str], bytes] = {}  # (blob id, path facts) -> a path it appears at (the first seen)
        odd: list[OddMode] = list(analysis.odd_modes)
        configs: dict[tuple[str, bytes], None] = {}  # (blob id, path) of config-named files, in order
        links: dict[str, bytes] = {}  # symlink entries: object id -> a path (only their type is checked)
        attributes: dict[str, bytes] = {}  # .gitattributes blobs the push touches (either side) -> a path
        # Where those changes are: (commit whose tree holds the new side, None for the ref's new tip; the change)
        attribute_sites: list[tuple[str | None, Change]] = []
        # (path, blob id) pairs collected already: the net change of a new ref and its root commit's diff are the
        # same list, and a path's facts follow from the path alone, so a pair met again adds nothing.
        met: set[tuple[bytes, str]] = set()
        # The ref's net change first: a finding is routed to the first path its blob is met at, and only net-change
        # paths can carry a requirement (content_requirements). Met first in a commit the push undoes again
        # (tmp/saved_model.pb, deleted by the next commit), it would ask for nothing.
        tip_suspects = _dotfile_suspects(analysis.changes)
        for change in analysis.changes:
            _collect(blobs, change, configs, links, attributes, met, tip_suspects, attribute_sites)
        sites_at_tip = len(attribute_sites)
        kind, new_object = repo.peel(analysis.update.new)
        if kind == "commit" and new_object is not None:
            commits = repo.walk_new_commits(new_object, hide, limit=MAX_NEW_COMMITS - commits_total)
            commits_total += len(commits)
            for commit in commits:
                changes = repo.commit_blob_changes(commit, odd=odd)
                if tip_suspects is not None and not tip_suspects and _same_changes(changes, analysis.changes):
                    # The net change again (a new ref's root commit; one commit on the old tip), the very same
                    # entries (Repo.diff_trees remembers): every pair is met and none is a .gitattributes, so
                    # collecting them again would change nothing.
                    continue
                suspects = _dotfile_suspects(changes)
                sites_before = len(attribute_sites)
                for change in changes:
                    _collect(blobs, change, configs, links, attributes, met, suspects, attribute_sites)
                attribute_sites[sites_before:] = [(commit, c) for _, c in attribute_sites[sites_before:]]
        elif kind == "tree" and new_object is not None:
            for path, mode, oid in repo.iter_tree(new_object, odd=odd, each_tree_once=True):
                _collect(blobs, Change(path, MODE_ABSENT, "", mode, oid), configs, links, attributes, met, None)
                if len(blobs) > MAX_BLOBS:
                    break
        elif kind == "blob" and new_object is not None:
            blobs[(new_object, path_facts(analysis.update.ref))] = analysis.update.ref.encode()
        if len(blobs) > MAX_BLOBS:
            raise LimitExceeded(f"this push brings more than {MAX_BLOBS} blobs to scan")
        directives, filters, tip_attributes = _checkout_directives(repo, analysis, kind, new_object, blobs,
                                                                   attributes, content, unscannable_blocks)
        if filters is not None:
            for (blob_id, _), path in blobs.items():
                line = filters.applies(path)
                if line is not None:
                    _route(content, analysis, path, [_filtered(line, path, blob_id)], unscannable_blocks)
        if attribute_sites:
            _case_variant_attributes(repo, attribute_sites, content, analysis, unscannable_blocks)
        judged = seen.setdefault(directives, {})
        for key, path in blobs.items():
            findings = judged.get(key)
            if findings is None:
                findings, hit = _scan_blob(repo, key[0], display_path(path), options, scan_cfg.lfs_store, cache,
                                           spool_dir, clean, directives)
                judged[key] = findings
                report.blobs_scanned += 1
                report.cache_hits += int(hit)
            elif findings:
                findings = [_at(f, display_path(path)) for f in findings]
            _route(content, analysis, path, findings, unscannable_blocks)
        if directives and attribute_sites:
            tip_tree = _tree(repo, analysis.update.new)
            for path, blob_id, why in _blobs_under_new_conversions(repo, attribute_sites[:sites_at_tip], tip_tree,
                                                                   attribute_sites[sites_at_tip:], blobs):
                findings = _forms_of_existing_blob(repo, blob_id, display_path(path), options, directives,
                                                   spool_dir, display_path(why))
                _route(content, analysis, path, findings, unscannable_blocks)
        if attribute_sites:
            tip_tree = _tree(repo, analysis.update.new)
            for path, blob_id, line in _files_newly_filtered(repo, attribute_sites, tip_tree, blobs):
                _route(content, analysis, path, [_filtered(line, path, blob_id, "; the file was already on the "
                                                           "branch")], unscannable_blocks)
            for path, finding in _new_filter_macros(repo, attribute_sites):
                _route(content, analysis, path, [finding], unscannable_blocks)
        for blob_id, path in configs:
            _route(content, analysis, path, _dangerous_config(repo, blob_id, path), unscannable_blocks)
        for link_id, path in links.items():
            link_kind = repo.object_type(link_id)
            if link_kind != "blob":
                _route(content, analysis, path, [_not_a_blob(link_kind, display_path(path), "symlink")],
                       unscannable_blocks)
        _odd_modes(content, analysis, odd)
        if analysis.protected:
            _windows_names(content, analysis)
            _remote_code(repo, policy, analysis, content, unscannable_blocks, listings)
            _export_substitutions(repo, analysis, content, spool_dir, tip_attributes)
    if clean is not None:
        clean.flush()
    if listings is not None:
        listings.flush()
    return report


_WHY = {
    REMOTE_CODE_RULE: "code that configs make run on load",
    PLUMBING_RULE: "repository plumbing that changes what runs or is fetched",
    ARTIFACT_RULE: "model files that run code on load",
}


def content_requirements(policy: Policy, report: ContentReport, analysis: RefAnalysis) -> list[Requirement]:
    """The built-in requirements the detectors impose on one protected ref update."""
    content = report.refs.get(analysis.update.ref)
    if content is None or not analysis.protected:
        return []
    out: list[Requirement] = []
    for rule, paths in content.review.items():
        changes = [c for c in analysis.changes if c.path in paths]
        if changes:
            out.append(builtin_requirement(policy, rule, changes, _WHY.get(rule, rule), paths))
    return out


def attributes_file(path: bytes) -> bool:
    """A path a checkout reads as a folder's ``.gitattributes`` (any alias: ``.GITATTRIBUTES``, ``GI7D29~1``)."""
    return dotfile_kind(path) == ".gitattributes"


def _same_changes(a: Sequence[Change], b: Sequence[Change]) -> bool:
    return len(a) == len(b) and all(map(operator.is_, a, b))


def _dotfile_suspects(changes: Sequence[Change]) -> set[bytes] | None:
    """The paths of ``changes`` that may stand for a git dotfile (``checkout.flagged_paths``): only these are asked
    :func:`attributes_file`. None: ask every path."""
    return flagged_paths([change.path for change in changes], DOTFILE_NEEDLES, non_ascii=True)


def _collect(blobs: dict[tuple[str, str], bytes], change: Change, configs: dict[tuple[str, bytes], None],
             links: dict[str, bytes], attributes: dict[str, bytes], met: set[tuple[bytes, str]],
             dotfile_suspects: set[bytes] | None,
             attribute_sites: list[tuple[str | None, Change]] | None = None) -> None:
    # Either side: a checkout of an earlier commit of the push reads the old one.
    if (dotfile_suspects is None or change.path in dotfile_suspects) and attributes_file(change.path):
        if attribute_sites is not None and change.new_mode in (MODE_BLOB, MODE_EXEC):
            attribute_sites.append((None, change))
        for oid in (change.old_id, change.new_id):
            if oid and not is_null(oid):
                attributes.setdefault(oid, change.path)
    if change.new_mode == MODE_LINK:
        links.setdefault(change.new_id, change.path)
    elif change.new_mode in (MODE_BLOB, MODE_EXEC):
        pair = (change.path, change.new_id)
        if pair in met:
            return
        met.add(pair)
        key = (change.new_id, path_facts(display_path(change.path)))
        if key not in blobs:
            blobs[key] = change.path
        if is_config_name(change.path):
            configs[(change.new_id, change.path)] = None


def _dangerous_config(repo: Repo, blob_id: str, path: bytes) -> list[Finding]:
    from gatekeeper.detectors.scan import dangerous_config_findings

    try:
        data = repo.read_blob(blob_id, max_bytes=CONFIG_READ_CAP)
    except GatekeeperError:
        return []  # too big or unreadable: the content scan above already judged the blob
    return [_with_blob(f, blob_id) for f in dangerous_config_findings(path, data)]


class CraftedTreeError(GatekeeperError):
    default_hint = ("git's fsck rejects such trees; recreate the commits with ordinary git "
                    "(git fast-export | git fast-import)")


def refuse_malformed_trees(repo: Repo) -> None:
    """Refuse the whole push when it brings a tree no git writes and readers disagree on (duplicate or unsorted
    entries, a name with '/', '.git' under some checkout's rules): which entry a reader takes decides what it shows,
    so no diff of it can be trusted. Runs before any diff (libgit2 itself trips over such trees).

    Raises:
        CraftedTreeError: naming the first such tree.
    """
    found = repo.malformed_incoming_trees(limit=MAX_INCOMING_OBJECTS)
    if found:
        tree, problem = found[0]
        more = f" (and {len(found) - 1} more trees)" if len(found) > 1 else ""
        raise CraftedTreeError(f"crafted tree {tree[:12]}: {problem}{more}")


def _odd_modes(content: RefContent, analysis: RefAnalysis, odd: Sequence[OddMode]) -> None:
    """Non-canonical tree entry modes: refused on protected refs, recorded elsewhere (module docstring)."""
    done: set[bytes] = set()
    for entry in odd:
        if entry.path in done:
            continue
        done.add(entry.path)
        message = (f"tree entry mode {entry.mode:06o} is not one git writes; git checks it out as "
                   f"{describe_mode(entry.mode)}")
        if analysis.protected:
            finding = Finding(Verdict.REFUSED, display_path(entry.path), TREE_MODE_DETECTOR,
                              message + "; crafted modes are refused on protected refs", (), entry.id)
            content.blocking.append(finding)
        else:
            finding = Finding(Verdict.HINT, display_path(entry.path), TREE_MODE_DETECTOR, message, (), entry.id)
        content.findings.append(finding)


def _windows_names(content: RefContent, analysis: RefAnalysis) -> None:
    suspects = flagged_paths([change.path for change in analysis.changes], WINDOWS_NAME_NEEDLES, non_ascii=False)
    for change in analysis.changes:
        if suspects is not None and change.path not in suspects:
            continue
        if change.new_mode == MODE_ABSENT or not may_have_windows_name_problem(change.path):
            continue
        problem = windows_name_problem(change.path)
        if problem is not None:
            finding = Finding(Verdict.REFUSED, display_path(change.path), CHECKOUT_NAME_DETECTOR,
                              problem + "; such names are refused on protected refs")
            content.blocking.append(finding)
            content.findings.append(finding)


def _existing_tips(repo: Repo) -> list[ObjectId]:
    """What the repository already has: under quarantine, refs still hold their pre-push values, so hiding them all
    equals ``--not --all``. Only branches and tags: forges keep huge numbers of internal refs (keep-around, merge
    requests, pulls) whose commits are reachable from branches anyway."""
    tips = [oid for _, oid in repo.refs_with_prefix("refs/heads/")]
    tips += [oid for _, oid in repo.refs_with_prefix("refs/tags/")]
    return tips


def _open_cache(cache_dir: Path | None) -> VerdictCache | None:
    if cache_dir is None:
        return None
    try:
        from gatekeeper.detectors.cache import VerdictCache

        return VerdictCache(cache_dir)
    except Exception:  # noqa: BLE001 -- a broken cache only costs time; scanning still happens
        return None


def _open_clean_index(cache: VerdictCache | None, options: ScanOptions, lfs_store: Path | None) -> CleanIndex | None:
    """Clean verdicts of small blobs, in the verdict cache's (ownership-checked) directory; None without a cache."""
    if cache is None:
        return None
    from gatekeeper.detectors.cache import CleanIndex

    return CleanIndex(cache, options, salt=str(lfs_store or ""))


def _open_tree_listings(cache: VerdictCache | None) -> TreeListings | None:
    """Remembered config listings of trees, in the verdict cache's (ownership-checked) directory; None without it."""
    if cache is None:
        return None
    from gatekeeper.detectors.scan import CONFIG_NAME_TEST, CONFIG_NAME_TEST_VERSION
    from gatekeeper.push.tree_listings import TreeListings

    return TreeListings(cache.directory, CONFIG_NAME_TEST, CONFIG_NAME_TEST_VERSION)


def _scan_blob(
    repo: Repo, blob_id: str, path: str, options: ScanOptions, lfs_store: Path | None, cache: VerdictCache | None,
    spool_dir: Path | None = None, clean: CleanIndex | None = None, directives: Directives = NO_DIRECTIVES,
) -> tuple[list[Finding], bool]:
    if directives:  # verdicts under .gitattributes conversions are not what the caches hold: judge afresh
        cache, clean = None, None
    clean_key: bytes | None = None
    if clean is not None:
        # Before the header: only small blobs that were read as blobs and found clean are in the index, and an id
        # names one blob's content (git's connectivity check has made sure the push holds every object it names).
        clean_key = clean.key(blob_id, path)
        if clean_key in clean:
            return [], True
    size = repo.blob_size(blob_id)
    if size is None:
        cache, clean_key = None, None
    elif size < CACHE_MIN_BYTES:
        cache = None  # a small blob's clean verdict lives in the clean index, not in the verdict cache
    else:
        clean_key = None
    if cache is not None:
        try:
            cached = cache.get(blob_id, options, path)
        except Exception:  # noqa: BLE001
            cached = None
        if cached is not None:
            return cached, True
    max_bytes = int(options.max_bytes)
    if size is None:
        return [_not_a_blob(repo.object_type(blob_id), path, "file")], False
    if size > max_bytes:
        return [Finding(Verdict.UNSCANNABLE, path, "content",
                        f"blob of {size} bytes is over the scan cap of {max_bytes} bytes")], False
    small: bytes | None = None
    if size <= INERT_MAX and not directives:
        small = repo.read_small_blob(blob_id, size)
        # Plain text (most files of a big push): nothing the scanner could find, and not an LFS pointer. The
        # scanner is not even imported for it.
        if plainly_inert(small, path) and not may_be_pointer(small):
            if clean is not None and clean_key is not None:
                clean.add(clean_key)
            return [], False
    # One module each, not ``from gatekeeper.detectors import ...``: importing names from a package runs Python code
    # (importlib's _handle_fromlist) on every call. The scanner only for what the short-text lane did not settle.
    from gatekeeper.detectors.content import scan_blob

    findings: list[Finding] | None = None
    # Bounded memory whatever the size: big blobs are streamed to an unlinked temporary file and mapped.
    source = nullcontext(small) if small is not None else repo.scannable_blob(blob_id, size, spool_dir=spool_dir)
    with source as data:
        if size <= BLOB_SIZE_CUTOFF:
            findings = lfs_findings(
                path, bytes(data), lfs_store=lfs_store,
                scan_blob=lambda p, d: scan_blob(p, d, options),
                max_object_bytes=max_bytes,
            )
        if findings is None:
            findings = scan_blob(path, data, options)
        if directives:
            findings = findings + _form_findings(data, blob_id, path, directives, options)
    findings = [_with_blob(f, blob_id) for f in findings]
    if clean is not None and clean_key is not None and not findings:
        clean.add(clean_key)
    if cache is not None:
        try:
            cache.put(blob_id, options, path, findings)
        except Exception:  # noqa: BLE001 -- the cache is an optimisation only
            pass
    return findings, False


def _form_findings(data: bytes | mmap.mmap, blob_id: str, path: str, directives: Directives,
                   options: ScanOptions) -> list[Finding]:
    """What the files ``.gitattributes`` conversions make of this blob at checkout (detectors/checkout_forms).

    The directives are a superset (read without patterns), so this runs for files no conversion really touches; it
    reads only what it must. Past ``AUTOCRLF_CAP`` the line-end and ident forms of the first ``AUTOCRLF_CAP`` bytes
    are judged (a pickle runs from byte 0); a re-encoding of a file that big is refused as unscannable."""
    from gatekeeper.detectors import checkout_forms
    from gatekeeper.detectors.content import scan_forms

    cap = checkout_forms.AUTOCRLF_CAP
    view = memoryview(data)
    big = len(view) > cap
    window = view[:cap] if big else view
    where = f" (its first {cap >> 20} MiB)" if big else ""
    forms: list[tuple[str, bytes]] = []
    findings: list[Finding] = []
    if directives.crlf and (form := checkout_forms.crlf_form(window)) is not None:
        forms.append((f"as a text eol=crlf checkout writes it{where}", form))
    if directives.ident and (form := checkout_forms.ident_form(window, blob_id)) is not None:
        forms.append((f"with $Id$ expanded (ident){where}", form))
    if directives.encodings and big:
        findings.append(Finding(Verdict.UNSCANNABLE, path, "content",
                                f"too big ({len(view)} bytes) to judge as working-tree-encoding="
                                f"{', '.join(sorted(directives.encodings))} makes a checkout write it"))
    elif directives.encodings:
        raw = bytes(view)
        unknown: list[str] = []
        for encoding in sorted(directives.encodings):
            encoded = checkout_forms.encoded_forms(raw, encoding)
            if encoded is None:
                unknown.append(encoding)
                continue
            forms.extend((f"as checked out with working-tree-encoding={name}", form) for name, form in encoded)
        if unknown:
            findings.append(Finding(Verdict.UNSCANNABLE, path, "content",
                                    f"working-tree-encoding={', '.join(unknown)} is not an encoding the gate knows, "
                                    "so it cannot see what a checkout writes",
                                    ("use UTF-8, or an encoding Python knows",)))
    return (scan_forms(path, forms, options) if forms else []) + findings


_ATTRIBUTES_READ_CAP = 1 << 20  # git itself ignores attribute lines over 2 KiB and files over 100 MB


def _checkout_directives(repo: Repo, analysis: RefAnalysis, kind: str, new_object: ObjectId | None,
                         blobs: dict[tuple[str, str], bytes], touched: dict[str, bytes], content: RefContent,
                         unscannable_blocks: bool) -> tuple[Directives, FilterMap | None, list[bytes]]:
    """The checkout conversions any ``.gitattributes`` that can apply to this ref's blobs asks for: those the push
    touches (``touched``: id -> path, any alias) and those already in the folders of the new tree that hold a
    scanned path. A superset, read without patterns (detectors/checkout_forms). An alias that asks for a conversion
    is refused: case-insensitive and Windows checkouts read it, and later pushes look for the exact name only.
    Also the filter drivers those files (each read in its folder) set (push/checkout_filters), and the texts of those
    in the new tree (for _export_substitutions)."""
    from gatekeeper.detectors.checkout_forms import parse_attributes

    ids = dict(touched)
    sites: list[tuple[bytes, str]] = [(path, oid) for oid, path in touched.items()]
    tip_ids: list[str] = []
    tree = repo.commit_tree(new_object) if kind == "commit" and new_object is not None else (
        new_object if kind == "tree" else None)
    if tree is not None:
        for path, along in _attributes_along(repo, tree, blobs.values()).items():
            ids.setdefault(along, b".gitattributes")
            sites.append((path, along))
            tip_ids.append(along)
    directives = NO_DIRECTIVES
    texts: dict[str, bytes] = {}
    for oid, path in sorted(ids.items()):
        size = repo.blob_size(oid)
        if size is None:
            continue  # a symlink or a crafted entry: judged elsewhere (plumbing, object type)
        if size > _ATTRIBUTES_READ_CAP:
            _route(content, analysis, path, [Finding(
                Verdict.UNSCANNABLE, display_path(path), "content",
                f"a .gitattributes of {size} bytes: too big to read which checkout conversions it asks for", (),
                oid)], unscannable_blocks)
            continue
        texts[oid] = repo.read_blob(oid, max_bytes=_ATTRIBUTES_READ_CAP)
        found = parse_attributes([texts[oid]])
        directives = directives.union(found)
    for oid, path in sorted(ids.items()):
        if oid not in texts or path.rsplit(b"/", 1)[-1] == b".gitattributes":
            continue
        asks = _asks_for(path, texts[oid], texts.values())
        if asks:
            _route(content, analysis, path, [Finding(
                Verdict.REFUSED, display_path(path), CHECKOUT_CONVERSION_DETECTOR,
                f"read as .gitattributes by case-insensitive and Windows checkouts, it asks for checkout "
                f"conversions ({asks})", (), oid)], unscannable_blocks)
    tip_texts = [texts[oid] for oid in tip_ids if oid in texts]
    return directives, _filter_map((path, texts[oid]) for path, oid in sites if oid in texts), tip_texts


def _asks_for(path: bytes, data: bytes, macro_sources: Iterable[bytes]) -> str:
    """What the ``.gitattributes`` text ``data`` at ``path`` makes checkouts do to files: its conversions and the
    filter drivers it sets (macros read from ``macro_sources`` too); "" for nothing."""
    from gatekeeper.detectors.checkout_forms import parse_attributes

    parts = [described] if (described := parse_attributes([data]).describe()) else []
    sources = [text for text in macro_sources if b"filter" in text.lower()]
    if sources or b"filter" in data.lower():
        from gatekeeper.push.checkout_filters import filter_lines

        lines = filter_lines([*((b"\0macros", text) for text in sources), (path, data)])
        parts += sorted({f"filter={line.driver}" for line in lines if line.attributes == path})
    return ", ".join(parts)


def _filter_map(files: Iterable[tuple[bytes, bytes]]) -> FilterMap | None:
    """The filter drivers these ``.gitattributes`` files set, None when they set none (as most do: LFS aside)."""
    # Every file, not only those naming a filter: a macro one file defines may be used in another.
    files = list(files)
    if not any(b"filter" in data.lower() for _, data in files):
        return None
    from gatekeeper.push.checkout_filters import FilterMap, filter_lines

    found = FilterMap(filter_lines(files))
    return found if found else None


def _filtered(line: FilterLine, path: bytes, blob_id: str, why: str = "") -> Finding:
    return Finding(Verdict.UNSCANNABLE, display_path(path), CHECKOUT_FILTER_DETECTOR,
                   f"checkouts pass it through filter={line.driver} ({display_path(line.attributes)}: "
                   f"{line.pattern}), a program the gate cannot run: what they write is not what was scanned{why}",
                   ("keep model files and configs out of filtered (e.g. encrypted) paths, or ask an admin",), blob_id)


def _blobs_under_new_conversions(repo: Repo, at_tip: list[tuple[str | None, Change]], tip_tree: str | None,
                                 in_commits: list[tuple[str | None, Change]],
                                 scanned: dict[tuple[str, str], bytes]) -> Iterator[tuple[bytes, str, bytes]]:
    """(path, blob id, the .gitattributes) of the files already in the folders of ``.gitattributes`` files that this
    push makes ask for a conversion they did not ask for before (added, or edited to ask for more): those files were
    judged without it (round 3: a pickle landed harmless as stored, then a later push added only
    ``working-tree-encoding``). Each folder is walked in the tree that holds the file (the new tip's, or the pushed
    commit's), with every folder a case-insensitive checkout merges with it; blobs the push scans anyway are left
    out, and each distinct folder tree is walked once."""
    from gatekeeper.detectors.checkout_forms import parse_attributes

    def asks(oid: str) -> Directives:
        size = repo.blob_size(oid)
        if size is None or size > _ATTRIBUTES_READ_CAP:
            return NO_DIRECTIVES  # judged by _checkout_directives (unscannable, or not a blob)
        return parse_attributes([repo.read_blob(oid, max_bytes=_ATTRIBUTES_READ_CAP)])

    done = {blob_id for blob_id, _ in scanned}
    walked: set[str] = set()
    for site, change in [*at_tip, *in_commits]:
        new = asks(change.new_id)
        if not new:
            continue
        if change.old_mode in (MODE_BLOB, MODE_EXEC) and change.old_id and not is_null(change.old_id):
            if asks(change.old_id).union(new) == asks(change.old_id):
                continue  # asks for nothing new: the files below were judged under these conversions already
        root = tip_tree if site is None else repo.commit_tree(site)
        if root is None:
            continue
        for path, oid in _files_below(repo, root, change.path.rpartition(b"/")[0], walked):
            if oid not in done:
                done.add(oid)
                yield path, oid, change.path


def _files_below(repo: Repo, root: str, folder: bytes, walked: set[str]) -> Iterator[tuple[bytes, str]]:
    """(path, blob id) of the files in ``folder`` of ``root`` and in every folder a case-insensitive checkout merges
    with it, skipping folder trees in ``walked`` (and adding those it walks)."""
    for found, tree in repo.folders_spelled_alike(root, folder):
        if tree in walked:
            continue
        walked.add(tree)
        prefix = found + b"/" if found else b""
        for path, mode, oid in repo.iter_tree(tree, each_tree_once=True):
            if mode in (MODE_BLOB, MODE_EXEC):
                yield prefix + path, oid


def _new_filter_macros(repo: Repo, sites: list[tuple[str | None, Change]]) -> list[tuple[bytes, Finding]]:
    """A ``.gitattributes`` this push adds or edits to define a macro that sets a filter driver (``[attr]secret
    filter=crypt``) arms every file whose pattern line names the macro, in any folder, possibly in files pushed when
    the macro set nothing: the gate does not search the whole tree for them, so such a definition is unscannable."""
    from gatekeeper.push.checkout_filters import macro_drivers

    out = []
    for _, change in sites:
        new = _attributes_text(repo, change.new_id)
        if b"[attr]" not in new or b"filter" not in new.lower():
            continue
        old = _attributes_text(repo, change.old_id) if change.old_mode in (MODE_BLOB, MODE_EXEC) else b""
        for name, driver in sorted(macro_drivers(new) - macro_drivers(old)):
            out.append((change.path, Finding(
                Verdict.UNSCANNABLE, display_path(change.path), CHECKOUT_FILTER_DETECTOR,
                f"defines macro {name.decode('utf-8', 'backslashreplace')} to set filter={driver}: files whose "
                "attribute lines name it would pass through a program the gate cannot run", (
                    "set filter= on the pattern lines themselves, so the gate sees which files it applies to",),
                change.new_id)))
    return out


def _attributes_text(repo: Repo, oid: str) -> bytes:
    """A ``.gitattributes`` blob's text, b"" for none, a non-blob or one over the cap (_checkout_directives judges
    those)."""
    if not oid or is_null(oid):
        return b""
    size = repo.blob_size(oid)
    if size is None or size > _ATTRIBUTES_READ_CAP:
        return b""
    return repo.read_blob(oid, max_bytes=_ATTRIBUTES_READ_CAP)


def _root_attributes(repo: Repo, tree: str | None) -> list[bytes]:
    """The text of ``tree``'s root ``.gitattributes`` (where git reads macros from), as a list of none or one."""
    root_file = repo.ids_at(tree, [b".gitattributes"]).get(b".gitattributes") if tree else None
    text = _attributes_text(repo, root_file) if root_file else b""
    return [text] if text else []


def _files_newly_filtered(repo: Repo, sites: list[tuple[str | None, Change]], tip_tree: str | None,
                          scanned: dict[tuple[str, str], bytes]) -> Iterator[tuple[bytes, str, FilterLine]]:
    """(path, blob id, line) of the files already in the folders of ``.gitattributes`` files this push adds or edits
    to set a filter driver (a line, pattern and driver, the old file did not have): they were judged as stored, and
    checkouts would now write what the driver makes of them. Macros are read from the same file and the tip's root
    ``.gitattributes``. Blobs the push scans anyway are judged by scan_push with the filter map."""
    from gatekeeper.push.checkout_filters import FilterMap, filter_lines

    # Under a path no line of the file itself can have; only a root file that names a filter can define one.
    macros = [(b"\0macros", text) for text in _root_attributes(repo, tip_tree) if b"filter" in text.lower()]
    done = {path for path in scanned.values()}
    walked: set[str] = set()
    for site, change in sites:
        new = _attributes_text(repo, change.new_id)
        if b"filter" not in new.lower() and not macros:
            continue
        old = _attributes_text(repo, change.old_id) if change.old_mode in (MODE_BLOB, MODE_EXEC) else b""
        had = {(line.pattern, line.driver) for line in filter_lines([*macros, (change.path, old)])
               if line.attributes == change.path}
        added = [line for line in filter_lines([*macros, (change.path, new)])
                 if line.attributes == change.path and (line.pattern, line.driver) not in had]
        if not added:
            continue
        root = tip_tree if site is None else repo.commit_tree(site)
        if root is None:
            continue
        lines = FilterMap(added)
        for path, oid in _files_below(repo, root, change.path.rpartition(b"/")[0], walked):
            line = lines.applies(path)
            if line is not None and path not in done:
                done.add(path)
                yield path, oid, line


def _case_variant_attributes(repo: Repo, sites: list[tuple[str | None, Change]], content: RefContent,
                             analysis: RefAnalysis, unscannable_blocks: bool) -> None:
    """Refuse a ``.gitattributes`` this push adds or edits that asks for a conversion from a folder whose spelling
    is not its folded one (``MODELS/``): git reads a folder's file from the working tree when the index has none at
    that exact path, and Windows and macOS checkouts merge ``MODELS/`` and ``models/``, so it would convert files in
    every folder spelled alike, which later pushes cannot look up (they look for the folded spelling). Filter drivers
    count as conversions here (macros read from the new tip's root file too)."""
    done: set[tuple[bytes, str]] = set()
    macros: list[bytes] | None = None  # the new tip's root file, read for the first case-variant folder only
    for _, change in sites:
        folder, _, name = change.path.rpartition(b"/")
        if (not folder or name != b".gitattributes" or fold_path(folder) == folder
                or (change.path, change.new_id) in done):
            continue  # aliases of the name itself are refused by _checkout_directives
        done.add((change.path, change.new_id))
        if macros is None:
            macros = _root_attributes(repo, _tree(repo, analysis.update.new))
        asks = _asks_for(change.path, _attributes_text(repo, change.new_id), macros)
        if asks:
            shown = display_path(fold_path(folder))
            _route(content, analysis, change.path, [Finding(
                Verdict.REFUSED, display_path(change.path), CHECKOUT_CONVERSION_DETECTOR,
                f"asks for checkout conversions ({asks}) from a folder that case-insensitive checkouts "
                f"(Windows, macOS) merge with every folder spelled alike; put it in {shown}/.gitattributes or the "
                "root .gitattributes", (), change.new_id)], unscannable_blocks)


def _forms_of_existing_blob(repo: Repo, blob_id: str, path: str, options: ScanOptions, directives: Directives,
                            spool_dir: Path | None, attributes: str) -> list[Finding]:
    """What the conversions make of a blob already on the branch (its stored form was judged when it came)."""
    why = (f"the file was already on the branch; this push's {attributes} makes checkouts convert it: drop that "
           "conversion or the file",)
    size = repo.blob_size(blob_id)
    if size is None:
        return []  # a crafted entry: judged when it came (object type)
    if size > int(options.max_bytes):
        return [Finding(Verdict.UNSCANNABLE, path, "content", f"blob of {size} bytes is over the scan cap of "
                        f"{int(options.max_bytes)} bytes", (), blob_id)]
    with repo.scannable_blob(blob_id, size, spool_dir=spool_dir) as data:
        return [Finding(f.verdict, f.path, f.detector, f.message, why + f.evidence, blob_id)
                for f in _form_findings(data, blob_id, path, directives, options)]


def _attributes_along(repo: Repo, root: str, paths: Iterable[bytes]) -> dict[bytes, ObjectId]:
    """Path -> id of the ``.gitattributes`` files in the folders of ``root`` that hold one of ``paths`` (git reads every
    folder's file up to the root). Exact names only, looked up in C: an alias a case-insensitive or Windows checkout
    reads (``.GITATTRIBUTES``, ``GI7D29~1``) is caught when it is pushed (``_alias_directives``), so it never sits
    unseen on a branch."""
    folders: set[bytes] = {b""}
    # Siblings share their folders: each distinct folder is split once (a big push has far fewer folders than paths).
    for folder in {path[:path.rfind(b"/") + 1] for path in paths}:
        parts = folder.split(b"/")[:-1]
        folders.update(b"/".join(parts[:i]) for i in range(1, len(parts) + 1))
    # Windows and macOS checkouts merge folders spelled alike (MODELS/ and models/); a conversion may only sit in the
    # folded spelling (_case_variant_attributes), so that is where to look too.
    folders.update([folded for folder in folders if (folded := fold_path(folder)) != folder])
    wanted = [folder + b"/.gitattributes" if folder else b".gitattributes" for folder in folders]
    return repo.ids_at(root, wanted)


def _export_substitutions(repo: Repo, analysis: RefAnalysis, content: RefContent, spool_dir: Path | None,
                          tip_attributes: Sequence[bytes]) -> None:
    """Refuse, on a protected ref, files ``git archive`` fills with text the pusher writes (detectors/export_subst):
    a file this push changes under a ``.gitattributes`` that sets ``export-subst``, and every file in the folder of a
    ``.gitattributes`` this push makes set it (they were reviewed without it). No approval binds a commit message, so
    none can lift this. Only exact names: the server's git archive reads the tree as stored, on a case-sensitive
    disk. ``tip_attributes``: the texts of the ``.gitattributes`` files in the folders of the new tree that hold a path
    the push brings (_checkout_directives read them)."""
    set_here = any(b"export-subst" in text.lower() for text in tip_attributes)  # as _EXPORT_SUBST: any case
    if not set_here and not any(c.path.endswith(b".gitattributes") for c in analysis.changes):
        return  # the common case, decided without the detector or a pass over the changes' modes
    from gatekeeper.detectors.export_subst import asks_export_subst, pusher_text_placeholders

    tree = _tree(repo, analysis.update.new)
    files = [c for c in analysis.changes if c.new_mode in (MODE_BLOB, MODE_EXEC)]
    if tree is None or not files:
        return

    def asks(oid: str) -> bool:
        return asks_export_subst(_attributes_text(repo, oid))  # not a blob or too big: _checkout_directives judges

    to_check: dict[str, bytes] = {}  # blob id -> a path
    if set_here and any(asks_export_subst(text) for text in tip_attributes):
        to_check.update((c.new_id, c.path) for c in files)
    for change in files:
        if not change.path.endswith(b".gitattributes"):  # most paths: one C call, no split
            continue
        folder, _, name = change.path.rpartition(b"/")
        if name != b".gitattributes" or not asks(change.new_id):
            continue
        if change.old_mode in (MODE_BLOB, MODE_EXEC) and asks(change.old_id):
            continue  # set before: the files below were checked when they came
        found = repo.tree_entry(tree, folder) if folder else (MODE_TREE, tree)
        below = found[1] if found is not None and found[0] == MODE_TREE else None
        if below is None or repo.object_type(below) != "tree":
            continue
        prefix = folder + b"/" if folder else b""
        for path, mode, entry_id in repo.iter_tree(below, each_tree_once=True):
            if mode in (MODE_BLOB, MODE_EXEC):
                to_check.setdefault(entry_id, prefix + path)
    for blob_id, path in to_check.items():
        size = repo.blob_size(blob_id)
        if size is None:
            continue  # a crafted entry: judged as an object type
        with repo.scannable_blob(blob_id, size, spool_dir=spool_dir) as data:
            placeholders = pusher_text_placeholders(data)
        if placeholders:
            finding = Finding(
                Verdict.REFUSED, display_path(path), EXPORT_SUBST_DETECTOR,
                f"git archive (forge downloads, release tarballs) replaces {placeholders[0]} here (export-subst) with "
                "text the pusher writes (commit message, names, ref names), which no approval covers; use only hash "
                "and date placeholders (%H, %h, %ad, %cs) or drop export-subst for this file", tuple(placeholders),
                blob_id)
            content.blocking.append(finding)
            content.findings.append(finding)


def _not_a_blob(kind: str | None, path: str, entry: str) -> Finding:
    """A file or symlink entry that names no blob. receive-pack's connectivity check never reads an object named by
    a file mode, and stock ``git push`` sends such trees; then ``git checkout`` refuses the entry while ``git archive``
    (release tarballs, forges' downloads) writes the object's bytes as the file: readers disagree, and no git writes
    this. Refused on every ref, like any object only a crafter makes."""
    if kind is None:
        return Finding(Verdict.UNSCANNABLE, path, "content", "blob is missing from the repository")
    return Finding(Verdict.REFUSED, path, OBJECT_TYPE_DETECTOR,
                   f"a {kind} object where the tree says a {entry}: git checkout refuses it, git archive and forge "
                   "downloads write its bytes; no git writes this")


def _with_blob(finding: Finding, blob_id: str) -> Finding:
    return Finding(finding.verdict, finding.path, finding.detector, finding.message, finding.evidence, blob_id)


def _at(finding: Finding, path: str) -> Finding:
    """The same blob's finding, reported at another path (members keep their ``!inner`` suffix)."""
    _, sep, member = finding.path.partition("!")
    return Finding(finding.verdict, path + (sep + member if sep else ""), finding.detector, finding.message,
                   finding.evidence, finding.blob_id)


def _route(content: RefContent, analysis: RefAnalysis, path: bytes, findings: list[Finding],
           unscannable_blocks: bool) -> None:
    for finding in findings:
        content.findings.append(finding)
        if finding.verdict in (Verdict.MALICIOUS, Verdict.REFUSED) or (
                finding.verdict == Verdict.UNSCANNABLE and unscannable_blocks):
            content.blocking.append(finding)
        elif finding.verdict in (Verdict.REVIEW, Verdict.UNSCANNABLE) and analysis.protected:
            content.review.setdefault(ARTIFACT_RULE, {})[path] = f"{finding.verdict.value}: {finding.message}"


def _remote_code(repo: Repo, policy: Policy, analysis: RefAnalysis, content: RefContent,
                 unscannable_blocks: bool, listings: TreeListings | None = None) -> None:
    from gatekeeper.detectors.plumbing import escaping_symlinks
    from gatekeeper.detectors.scan import RepoTreeView, analyse_remote_code, implicit_protected_paths

    changed = [c.path for c in analysis.changes]
    if not changed:
        return
    new_tree = _tree(repo, analysis.update.new)
    old_tree = _tree(repo, analysis.base) if analysis.base else None
    if new_tree is not None:
        new_view = RepoTreeView(repo, new_tree, listings=listings)
        old_view = RepoTreeView(repo, old_tree, listings=listings) if old_tree else None
        # Hints (risky loader calls) are for reviewers: `gatekeeper check`/`scan` show them; the hook skips them so a
        # big push of Python files does not parse every file.
        result = analyse_remote_code(new_view, changed, old=old_view, hints=False)
        already = {(f.path, f.message) for f in content.blocking}
        for finding in result.findings:
            if (finding.path, finding.message) in already:
                continue  # a dangerous config, already found by the every-ref check
            content.findings.append(finding)
            if finding.verdict == Verdict.MALICIOUS or (
                finding.verdict == Verdict.UNSCANNABLE and unscannable_blocks
            ):
                content.blocking.append(finding)
            elif finding.verdict in (Verdict.REVIEW, Verdict.UNSCANNABLE):
                for change in analysis.changes:
                    if display_path(change.path) == finding.path:
                        said = "; ".join((finding.message.partition(":")[0], *finding.evidence[:3]))
                        content.review.setdefault(REMOTE_CODE_RULE, {}).setdefault(change.path, said)
        changed_set = set(changed)
        for path, reason in result.protected.items():
            if path in changed_set:
                content.review.setdefault(REMOTE_CODE_RULE, {}).setdefault(path, reason)

    def is_protected(path: bytes) -> bool:
        return bool(policy.rules_for(path)) or bool(policy.rules_below(path))

    def read_blob(oid: str) -> bytes | None:
        try:
            return repo.read_blob(oid, max_bytes=1 << 20)
        except Exception:  # noqa: BLE001
            return None

    for path, reason in implicit_protected_paths(analysis.changes, is_protected, read_blob=read_blob).items():
        content.review.setdefault(PLUMBING_RULE, {})[path] = reason
    # Refused, not reviewed: an approval would bind the link while the content it stands for lives in a file
    # without rules (detectors/plumbing.py).

    def matched(path: bytes) -> bool:
        return bool(policy.rules_for(path))

    for path, reason in escaping_symlinks(analysis.changes, matched, read_blob=read_blob).items():
        finding = Finding(Verdict.REFUSED, display_path(path), SYMLINK_ESCAPE_DETECTOR,
                          reason + "; such symlinks are refused on protected refs")
        content.blocking.append(finding)
        content.findings.append(finding)


def _tree(repo: Repo, oid: str | None) -> str | None:
    if not oid:
        return None
    kind, peeled = repo.peel(oid)
    if kind == "commit" and peeled:
        return repo.commit_tree(peeled)
    if kind == "tree" and peeled:
        return peeled
    return None
