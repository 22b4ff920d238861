"""The server-side policy: YAML (version 1) -> a validated, frozen :class:`Policy`, and a linter that finds every
problem.

``load_policy`` is on the hook's hot path: it reads the file once, builds plain values with line numbers
(:mod:`gatekeeper.policy.yamlsafe`, libyaml events), validates everything, checks that the trust store and the audit
log's directory exist, and raises :class:`~gatekeeper.errors.ConfigError` listing *all* problems when anything is wrong,
so a push is refused (fail closed) rather than judged by a half-understood policy. ``lint_policy`` runs the same checks
without raising, and adds the slower ones the hook does not need (the contents of ``allowed_signers``) and warnings.

Decisions (see ``policy/README.md`` for the user-facing description):

- Unknown keys are errors at every level: a typo such as ``rule:`` for ``rules:`` must not silently drop protection.
  ``version`` is checked first; nothing else is interpreted under an unknown version.
- Reviewers and ``break_glass`` name people or groups; groups may contain people and other groups (nested, cycles are
  errors). People and groups share one namespace, so a name always means one thing.
- A rule that can never be satisfied (more approvals than people who may give them) is an error.
- Relative paths are relative to the directory of the policy file; ``~`` is refused (``HOME`` differs between the
  admin's shell and the git server's hook).
- ``protected_refs`` and ``rules`` must be non-empty: an empty list would protect nothing, which is never what a
  policy file is for.
"""

from __future__ import annotations

import hashlib
import os
import re
import types
from collections.abc import Iterable, Mapping
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from gatekeeper.checkout import NTFS_ALIAS_NEEDLES, flagged_paths, ntfs_alias
from gatekeeper.errors import ConfigError
from gatekeeper.fsutil import read_regular as _read_regular
from gatekeeper.policy.pathmatch import (
    MatchOptions,
    PathMatcher,
    PathNormaliser,
    RefMatcher,
    RuleIndex,
    check_path_pattern,
    check_ref_pattern,
    known_translations,
    translations,
)
from gatekeeper.policy.yamlsafe import MAX_BYTES, YamlProblem, YList, YMap, load_yaml

__all__ = [
    "DEFAULT_NAMESPACE",
    "AuditConfig",
    "Limits",
    "MatchingConfig",
    "Person",
    "Policy",
    "Problem",
    "Rule",
    "ScanConfig",
    "TrustConfig",
    "lint_and_load",
    "lint_policy",
    "load_policy",
]

SUPPORTED_VERSION = 1
# The SSHSIG namespace approvals are signed in (never "git": a commit signature must not double as an approval).
DEFAULT_NAMESPACE = "gatekeeper-approval@gatekeeper.dev"
DEFAULT_BRANCH = "refs/heads/main"
MODES = ("enforce", "monitor")
PLATFORMS = ("auto", "gitlab", "gitea", "gitolite", "http", "ssh", "plain")
UNSCANNABLE = ("refuse", "review")
DEFAULT_MAX_CHANGED_PATHS = 1_000_000
DEFAULT_TIMEOUT_SECONDS = 50.0
AUDIT_SIGNING_KEY_NAME = "audit-signing.key"
MAX_ALLOWED_SIGNERS_BYTES = 4 << 20
# Compiling the matcher grows with the number of patterns (about 1 s per 1000 on the reference machine); real policies
# have tens. The cap keeps a policy from making every push slow or time out.
MAX_PATTERNS = 2000
MAX_PATTERN_LENGTH = 1000

TOP_KEYS = (
    "version", "repository", "mode", "platform", "default_branch", "protected_refs", "rules", "people", "groups",
    "break_glass", "trust", "audit", "matching", "scan", "limits", "approvals",
)
RULE_KEYS = ("name", "description", "paths", "approvals", "reviewers")
PERSON_KEYS = ("emails", "accounts")
TRUST_KEYS = ("allowed_signers", "revoked_keys", "namespace")
AUDIT_KEYS = ("log", "signing_key", "origin", "database")
MATCHING_KEYS = ("case_insensitive", "unicode_nfc")
SCAN_KEYS = ("unscannable", "extra_pickle_globals", "lfs_store")
LIMITS_KEYS = ("max_changed_paths", "timeout_seconds")
APPROVALS_KEYS = ("admins", "max_live_per_person", "require_signed_commits")
DEFAULT_MAX_LIVE_PER_PERSON = 10

# People names are allowed_signers principals, so none of ssh's pattern characters ("*?!,") or white space.
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,99}\Z")
_RULE_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}\Z")
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\Z")
_GLOBAL_RE = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+\Z")
_NAMESPACE_RE = re.compile(r"[!-~]{1,200}\Z")


class Problem(NamedTuple):
    """One finding of the linter: ``FILE:LINE: message`` (warnings say so)."""

    file: str
    line: int
    message: str
    severity: str = "error"  # "error" | "warning"

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def __str__(self) -> str:
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{self.file}:{self.line}: {prefix}{self.message}"


@dataclass(frozen=True)
class Person:
    """Somebody who may review or push. ``name`` is their principal in ``allowed_signers``."""

    name: str
    emails: tuple[str, ...] = ()  # commit author/committer emails: who wrote a change
    accounts: tuple[str, ...] = ()  # platform user names (GL_USERNAME, GITEA_PUSHER_NAME, ...); default: the name


@dataclass(frozen=True)
class Rule:
    """A set of protected paths and who must approve changes to them."""

    name: str
    paths: tuple[str, ...]
    approvals: int
    reviewers: tuple[str, ...]
    description: str = ""
    normaliser: InitVar[PathNormaliser | None] = None
    _matcher: PathMatcher = field(init=False, repr=False, compare=False)

    def __post_init__(self, normaliser: PathNormaliser | None) -> None:
        object.__setattr__(self, "_matcher", PathMatcher(self.paths, normaliser or PathNormaliser(MatchOptions())))

    def matches(self, path: bytes) -> bool:
        """Whether any of the rule's patterns matches the raw git path."""
        return self._matcher.match(path)

    def matching_pattern(self, path: bytes) -> str | None:
        """The first of the rule's patterns that matches ``path`` (for explanations), else None."""
        return self._matcher.first_match(path)


@dataclass(frozen=True)
class TrustConfig:
    allowed_signers: Path
    revoked_keys: Path | None = None
    namespace: str = DEFAULT_NAMESPACE


@dataclass(frozen=True)
class AuditConfig:
    log: Path
    signing_key: Path
    # The checkpoint origin auditors pin. None: keep the log's current origin (else the signing key's name), so a
    # renamed host never changes it; set it explicitly when several nodes write one log.
    origin: str | None = None
    # The fleet's PostgreSQL trail (libpq URL, no password: use ~/.pgpass or PGPASSFILE). Read by `audit ship` and
    # the auditor's verbs only; the hook never connects to it.
    database: str | None = None


@dataclass(frozen=True)
class MatchingConfig:
    case_insensitive: bool = True
    unicode_nfc: bool = True

    def options(self) -> MatchOptions:
        return MatchOptions(case_insensitive=self.case_insensitive, unicode_nfc=self.unicode_nfc)


@dataclass(frozen=True)
class ScanConfig:
    unscannable: str = "refuse"  # "refuse" | "review"
    extra_pickle_globals: tuple[str, ...] = ()
    lfs_store: Path | None = None


@dataclass(frozen=True)
class Limits:
    max_changed_paths: int = DEFAULT_MAX_CHANGED_PATHS
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS


@dataclass(frozen=True)
class ApprovalsConfig:
    """How stored approvals are governed (issue 9): who may withdraw anyone's approval, how many unused approvals one
    person may hold per ref, and whether commits that change protected paths must carry a trusted SSH signature."""

    admins: tuple[str, ...] = ()  # people or groups who may withdraw any approval (approvers withdraw their own)
    max_live_per_person: int = DEFAULT_MAX_LIVE_PER_PERSON  # unused, unexpired approvals per person per ref
    require_signed_commits: bool = False


@dataclass(frozen=True, eq=False)
class Policy:
    """A validated policy. Build it with :func:`load_policy`; all fields are immutable.

    Compared and hashed by identity (``source_sha256`` identifies the content), so it can key caches.
    """

    version: int
    repository: str | None
    mode: str
    platform: str
    default_branch: str
    protected_refs: tuple[str, ...]
    rules: tuple[Rule, ...]
    people: Mapping[str, Person]
    groups: Mapping[str, tuple[str, ...]]
    break_glass: tuple[str, ...]
    trust: TrustConfig
    audit: AuditConfig
    matching: MatchingConfig
    scan: ScanConfig
    limits: Limits
    source_path: Path
    source_sha256: str
    approvals: ApprovalsConfig = field(default_factory=ApprovalsConfig)
    _refs: RefMatcher = field(init=False, repr=False, compare=False)
    _index: RuleIndex | None = field(init=False, repr=False, compare=False)
    _by_account: Mapping[str, str] = field(init=False, repr=False, compare=False)
    _by_email: Mapping[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "people", types.MappingProxyType(dict(self.people)))
        set_(self, "groups", types.MappingProxyType(dict(self.groups)))
        set_(self, "_refs", RefMatcher(self.protected_refs, case_insensitive=self.matching.case_insensitive))
        # Most paths of a big push match no rule: the index answers that with one combined check of every pattern,
        # and otherwise asks only the rules that can match. All rules share one normaliser (one cache).
        if self.rules:
            normaliser = self.rules[0]._matcher.normalise
            set_(self, "_index", RuleIndex([rule._matcher for rule in self.rules], normaliser))
        else:
            set_(self, "_index", None)
        by_account: dict[str, str] = {}
        by_email: dict[str, str] = {}
        for person in self.people.values():
            for account in person.accounts or (person.name,):
                by_account.setdefault(account.casefold(), person.name)
            for email in person.emails:
                by_email.setdefault(email.casefold(), person.name)
        set_(self, "_by_account", types.MappingProxyType(by_account))
        set_(self, "_by_email", types.MappingProxyType(by_email))

    @property
    def enforcing(self) -> bool:
        return self.mode == "enforce"

    def is_protected_ref(self, ref: str) -> bool:
        """Whether pushes to ``ref`` (a full name such as ``refs/heads/main``) are gated."""
        return self._refs.match(ref)

    def protected_ref_pattern(self, ref: str) -> str | None:
        """The first ``protected_refs`` pattern matching ``ref``, for explanations."""
        return self._refs.first_match(ref)

    def rules_for(self, path: bytes) -> tuple[Rule, ...]:
        """All rules whose patterns match the raw git ``path`` (every one of them must be satisfied)."""
        if self._index is None:
            return ()
        rules = self.rules
        which = self._index.which(path)
        # A name a Windows checkout writes elsewhere is matched as where it lands too (gatekeeper/checkout.py).
        alias = ntfs_alias(path)
        if alias is not None:
            which = sorted(set(which) | set(self._index.which(alias)))
        return tuple([rules[index] for index in which])

    def rules_for_paths(self, paths: Iterable[bytes]) -> dict[bytes, tuple[Rule, ...]]:
        """:meth:`rules_for` of each of ``paths`` (path -> rules), for a whole change set: the same answers, for far
        less work per path (:meth:`RuleIndex.which_many`)."""
        unique = list(dict.fromkeys(paths))
        if self._index is None:
            return dict.fromkeys(unique, ())
        # Only a path that may have an NTFS alias can have one (the prefilter of ntfs_alias, over all paths at once).
        flagged = flagged_paths(unique, NTFS_ALIAS_NEEDLES, non_ascii=False)
        if flagged is None:  # a NUL in a path
            return {path: self.rules_for(path) for path in unique}
        plain = [path for path in unique if path not in flagged] if flagged else unique
        rules = self.rules
        by_which: dict[tuple[int, ...], tuple[Rule, ...]] = {}
        out: dict[bytes, tuple[Rule, ...]] = {}
        for path, which in zip(plain, self._index.which_many(plain)):
            found = by_which.get(which)
            if found is None:
                found = by_which[which] = tuple([rules[index] for index in which])
            out[path] = found
        for path in flagged:
            out[path] = self.rules_for(path)
        return out

    def rules_below(self, path: bytes) -> tuple[Rule, ...]:
        """Rules that match ``path`` or could match something inside it (conservative).

        For a submodule (gitlink) or a symlink at ``path``: the content it brings in is not part of the tree diff, so
        the gate should treat it as a change to every rule that could protect paths beneath it.
        """
        paths = [path] + [alias for alias in (ntfs_alias(path),) if alias is not None]
        return tuple(rule for rule in self.rules
                     if any(rule.matches(p) or rule._matcher.may_match_below(p) for p in paths))

    def rule(self, name: str) -> Rule:
        """The rule called ``name``; KeyError if there is none."""
        for rule in self.rules:
            if rule.name == name:
                return rule
        raise KeyError(name)

    def reviewers_of(self, rule: Rule) -> frozenset[str]:
        """The people (names) who may approve changes under ``rule``, groups expanded."""
        return self.members(rule.reviewers)

    def members(self, names: Iterable[str]) -> frozenset[str]:
        """Expand people and (nested) groups into people names. KeyError on a name that is neither."""
        return frozenset(_expand(names, self.people, self.groups, strict=True))

    def may_break_glass(self, person: str) -> bool:
        return person in self.members(self.break_glass)

    def person_for_account(self, account: str) -> str | None:
        """The person whose platform account is ``account`` (ignoring case), else None.

        Ignoring case errs on the safe side: an unmapped pusher would not be excluded from approving their own push.
        """
        return self._by_account.get(account.casefold())

    def person_for_email(self, email: str) -> str | None:
        """The person with this commit email (case-insensitive), else None."""
        return self._by_email.get(email.casefold())


# --------------------------------------------------------------------------------------------------------------------
# loading and validation


def load_policy(path: Path, *, cache_dir: Path | None = None) -> Policy:
    """Read, validate and compile the policy at ``path``.

    ``cache_dir`` (the hooks' owner-only policy cache): start from the document and pattern translations a clean load
    of the same bytes left there, instead of parsing YAML and translating patterns again; everything is validated as
    on a cold load (:mod:`gatekeeper.policy.compiled_cache`).

    Raises:
        ConfigError: on any problem (unreadable, YAML, schema, references, missing trust store or log directory);
            ``problems`` lists every one as ``FILE:LINE: message``.
    """
    policy, problems = _load(Path(path), deep=False, cache_dir=cache_dir)
    errors = sorted(p for p in problems if p.is_error)
    if errors or policy is None:
        raise ConfigError(
            f"invalid policy {path}: {len(errors)} problem{'s' if len(errors) != 1 else ''}",
            problems=[str(p) for p in errors],
        )
    return policy


def lint_policy(path: Path) -> list[Problem]:
    """Every problem (errors and warnings) in the policy at ``path``, sorted; [] when it is clean."""
    return sorted(_load(Path(path), deep=True)[1])


def lint_and_load(path: Path) -> tuple[Policy | None, list[Problem]]:
    """Both at once (for ``policy lint``'s summary): the policy if it has no errors, and all problems sorted."""
    policy, problems = _load(Path(path), deep=True)
    problems.sort()
    return (policy if not any(p.is_error for p in problems) else None), problems


def _load(path: Path, *, deep: bool, cache_dir: Path | None = None) -> tuple[Policy | None, list[Problem]]:
    shown = str(path)
    try:
        data = _read_regular(path, MAX_BYTES + 1)
    except OSError as exc:
        return None, [Problem(shown, 1, f"cannot read the policy: {exc.strerror or exc}")]
    sha256 = hashlib.sha256(data).hexdigest()
    source = Path(os.path.abspath(path))
    problems: list[Problem] = []
    checker = _Checker(shown, source.parent, problems)
    from gatekeeper.policy import compiled_cache

    compiled = None if deep else compiled_cache.recall(cache_dir, source, sha256)
    if compiled is not None:
        # The same bytes loaded cleanly before: their document and translations, validated again all the same.
        with known_translations(compiled.options, compiled.parts):
            return checker.check(compiled.document, source, sha256, deep=deep), problems
    yaml_problems: list[YamlProblem] = []
    try:
        doc = load_yaml(data, yaml_problems)
    except YamlProblem as exc:
        return None, [Problem(shown, exc.line, exc.message)]
    problems.extend(Problem(shown, p.line, p.message) for p in yaml_problems)
    policy = checker.check(doc, source, sha256, deep=deep)
    if cache_dir is not None and policy is not None:  # loaded cleanly (warnings do not stop a load)
        options = policy.matching.options()
        compiled_cache.remember(cache_dir, source, sha256, doc, options,
                                translations((p for rule in policy.rules for p in rule.paths), options))
    return policy, problems


def _show(label: str) -> tuple[str, str]:
    """("rule 'x': ", "'paths'") for "rule 'x': paths"; ("", "'mode'") for "mode"."""
    if ": " in label:
        prefix, key = label.rsplit(": ", 1)
        return prefix + ": ", f"'{key}'"
    return "", f"'{label}'"


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if value == "":
        return "empty"
    for kind, name in ((bool, "a boolean"), (int, "a number"), (float, "a number"), (str, "a string"),
                       (list, "a list"), (dict, "a mapping")):
        if isinstance(value, kind):
            return name
    return type(value).__name__  # pragma: no cover - the loader yields no other types


_MISSING = object()


class _Checker:
    """Validates the loaded document, collecting problems; builds the Policy when there are no errors."""

    def __init__(self, file: str, base: Path, problems: list[Problem]) -> None:
        self.file = file
        self.base = base
        self.problems = problems

    # -- reporting ------------------------------------------------------------------------------------------------

    def error(self, line: int, message: str) -> None:
        self.problems.append(Problem(self.file, line, message))

    def warn(self, line: int, message: str) -> None:
        self.problems.append(Problem(self.file, line, message, "warning"))

    @property
    def ok(self) -> bool:
        return not any(p.is_error for p in self.problems)

    # -- typed getters: report and return a default on a bad value -------------------------------------------------

    def section(self, parent: YMap, key: str, where: str, keys: tuple[str, ...], *, required: bool) -> YMap | None:
        value = parent.get(key, _MISSING)
        if value is _MISSING:
            if required:
                self.error(parent.line, f"missing required key '{key}'{where}")
            return None
        if not isinstance(value, YMap):
            self.error(parent.lines[key], f"'{key}' must be a mapping, not {_type_name(value)}")
            return None
        self.unknown_keys(value, keys, f" in '{key}'")
        return value

    def unknown_keys(self, mapping: YMap, known: tuple[str, ...], where: str) -> None:
        for key in mapping:
            if key not in known:
                hint = _closest(key, known)
                self.error(
                    mapping.lines[key],
                    f"unknown key '{key}'{where}" + (f" (did you mean '{hint}'?)" if hint else "")
                    + f"; allowed: {', '.join(known)}",
                )

    def string(self, parent: YMap, key: str, default: Any, *, required: bool = False, label: str = "") -> Any:
        value = parent.get(key, _MISSING)
        prefix, name = _show(label or key)
        if value is _MISSING:
            if required:
                self.error(parent.line, f"{prefix}missing required key {name}")
            return default
        if not isinstance(value, str) or not value:
            self.error(parent.lines[key], f"{prefix}{name} must be a non-empty string, not {_type_name(value)}")
            return default
        return value

    def choice(self, parent: YMap, key: str, choices: tuple[str, ...], default: str, label: str = "") -> str:
        value = parent.get(key, _MISSING)
        if value is _MISSING:
            return default
        if value not in choices or not isinstance(value, str):
            note = " (YAML reads unquoted yes/no/on/off as true/false: quote it)" if isinstance(value, bool) else ""
            self.error(parent.lines[key], f"'{label or key}' must be one of {', '.join(choices)}; got {value!r}{note}")
            return default
        return value

    def boolean(self, parent: YMap, key: str, default: bool, label: str) -> bool:
        value = parent.get(key, _MISSING)
        if value is _MISSING:
            return default
        if not isinstance(value, bool):
            self.error(parent.lines[key], f"'{label}' must be true or false, not {value!r}")
            return default
        return value

    def str_list(self, parent: YMap, key: str, label: str, *, required: bool) -> list[tuple[str, int]]:
        """A list of strings as (value, line) pairs; reports the list or each bad item."""
        value = parent.get(key, _MISSING)
        prefix, name = _show(label)
        if value is _MISSING:
            if required:
                self.error(parent.line, f"{prefix}missing required key {name}")
            return []
        line = parent.lines[key]
        if not isinstance(value, YList):
            self.error(line, f"{prefix}{name} must be a list, not {_type_name(value)}")
            return []
        if required and not value:
            self.error(line, f"{prefix}{name} must not be empty")
        out = []
        for item, item_line in zip(value, value.lines):
            if isinstance(item, str) and item:
                out.append((item, item_line))
            else:
                self.error(item_line, f"{prefix}items of {name} must be non-empty strings, not {_type_name(item)}")
        return out

    def path(self, parent: YMap, key: str, label: str, *, required: bool) -> tuple[Path | None, int]:
        value = self.string(parent, key, None, required=required, label=label)
        line = parent.lines.get(key, parent.line)
        if value is None:
            return None, line
        if "\x00" in value:
            self.error(line, f"'{label}' contains a NUL byte")
            return None, line
        if value.startswith("~"):
            self.error(line, f"'{label}' starts with '~'; write an absolute path (HOME differs on the server)")
            return None, line
        return Path(os.path.join(self.base, value)), line

    # -- the document ---------------------------------------------------------------------------------------------

    def check(self, doc: object, source: Path, sha256: str, *, deep: bool) -> Policy | None:
        if not isinstance(doc, YMap):
            self.error(getattr(doc, "line", 1), f"the policy must be a mapping of keys, not {_type_name(doc)}")
            return None
        # The version decides how everything else reads, so nothing else is interpreted under a wrong one.
        if "version" not in doc:
            self.error(doc.line, f"missing required key 'version' (this gatekeeper reads version {SUPPORTED_VERSION})")
            return None
        version = doc["version"]
        if type(version) is not int or version != SUPPORTED_VERSION:
            self.error(
                doc.lines["version"],
                f"unsupported policy version {version!r}; this gatekeeper reads version {SUPPORTED_VERSION}",
            )
            return None
        self.unknown_keys(doc, TOP_KEYS, " at the top level")

        repository = self.string(doc, "repository", None)
        if repository is not None and (any(ch.isspace() or not ch.isprintable() for ch in repository)
                                       or len(repository) > 200):
            self.error(doc.lines["repository"], f"'repository' {repository!r} must be printable, without white space")
        mode = self.choice(doc, "mode", MODES, "enforce")
        platform = self.choice(doc, "platform", PLATFORMS, "auto")
        default_branch = self.string(doc, "default_branch", DEFAULT_BRANCH)
        if "default_branch" in doc and isinstance(doc["default_branch"], str) and doc["default_branch"]:
            reason = check_ref_pattern(default_branch)
            if reason is None and (any(ch in default_branch for ch in "*?") or not default_branch.startswith(
                    "refs/heads/")):
                reason = f"'default_branch' must be one branch such as 'refs/heads/main', not {default_branch!r}"
            if reason:
                self.error(doc.lines["default_branch"], reason)
                default_branch = DEFAULT_BRANCH

        protected_refs = self._protected_refs(doc)
        matching = self._matching(doc)
        refs = (RefMatcher(protected_refs, case_insensitive=matching.case_insensitive) if self.ok and protected_refs
                else None)
        if refs is not None and not refs.match(default_branch):
            # analysis.py diffs a new protected ref against the default branch's tip only when that
            # branch is protected; otherwise every protected path in a new release branch needs approval.
            self.warn(doc.lines.get("protected_refs", doc.line),
                      f"the default branch {default_branch} is not protected: new protected refs are then diffed "
                      "against the empty tree, so every protected path in them needs approval; add it to "
                      "protected_refs (or set default_branch)")
        people = self._people(doc)
        groups = self._groups(doc, people)
        normaliser = PathNormaliser(matching.options())
        rules = self._rules(doc, people, groups, normaliser, deep=deep)
        break_glass = self._break_glass(doc, people, groups)
        trust = self._trust(doc, people, deep=deep)
        audit = self._audit(doc)
        scan = self._scan(doc)
        limits = self._limits(doc)
        approvals = self._approvals(doc, people, groups)
        if not self.ok or trust is None or audit is None:
            return None
        return Policy(
            version=SUPPORTED_VERSION, repository=repository, mode=mode, platform=platform,
            default_branch=default_branch, protected_refs=protected_refs, rules=rules, people=people,
            groups=groups, break_glass=break_glass, trust=trust, audit=audit, matching=matching, scan=scan,
            limits=limits, source_path=source, source_sha256=sha256, approvals=approvals,
        )

    def _protected_refs(self, doc: YMap) -> tuple[str, ...]:
        seen: dict[str, int] = {}
        for pattern, line in self.str_list(doc, "protected_refs", "protected_refs", required=True):
            reason = check_ref_pattern(pattern)
            if reason:
                self.error(line, reason)
            elif pattern in seen:
                self.warn(line, f"protected ref {pattern!r} is listed twice (first on line {seen[pattern]})")
            else:
                seen[pattern] = line
        return tuple(seen)

    def _matching(self, doc: YMap) -> MatchingConfig:
        section = self.section(doc, "matching", "", MATCHING_KEYS, required=False)
        if section is None:
            return MatchingConfig()
        return MatchingConfig(
            case_insensitive=self.boolean(section, "case_insensitive", True, "matching.case_insensitive"),
            unicode_nfc=self.boolean(section, "unicode_nfc", True, "matching.unicode_nfc"),
        )

    def _name(self, name: str, line: int, what: str, pattern: re.Pattern[str] = _NAME_RE) -> bool:
        if pattern.match(name):
            return True
        allowed = "._@+-" if pattern is _NAME_RE else "._-"
        self.error(line, f"{what} name {name!r} may only use letters, digits and '{allowed}' "
                         "(and must start with a letter or digit)")
        return False

    def _people(self, doc: YMap) -> dict[str, Person]:
        section = doc.get("people", _MISSING)
        if section is _MISSING:
            self.error(doc.line, "missing required key 'people' (rules need reviewers)")
            return {}
        if not isinstance(section, YMap):
            self.error(doc.lines["people"], f"'people' must be a mapping of names, not {_type_name(section)}")
            return {}
        people: dict[str, Person] = {}
        emails: dict[str, tuple[str, int]] = {}
        accounts: dict[str, tuple[str, int]] = {}
        folded_names: dict[str, str] = {}
        for name, entry in section.items():
            line = section.lines[name]
            self._name(name, line, "person")
            other = folded_names.setdefault(name.casefold(), name)
            if other != name:
                # Two entries for one human would count as two approvals.
                self.error(line, f"person names '{other}' and '{name}' differ only in case; use one name per person")
            if entry is None:
                entry = YMap(line)
            if not isinstance(entry, YMap):
                self.error(line,
                           f"person '{name}' must be a mapping such as {{emails: [...]}}, not {_type_name(entry)}")
                people[name] = Person(name)
                continue
            self.unknown_keys(entry, PERSON_KEYS, f" for person '{name}'")
            person_emails = []
            for email, email_line in self.str_list(entry, "emails", f"people.{name}.emails", required=False):
                if not _EMAIL_RE.match(email):
                    self.error(email_line, f"person '{name}': {email!r} is not an email address")
                    continue
                folded = email.casefold()
                if folded in emails and emails[folded][0] != name:
                    self.error(email_line, f"email {email!r} belongs to both '{emails[folded][0]}' (line "
                                           f"{emails[folded][1]}) and '{name}'")
                emails.setdefault(folded, (name, email_line))
                person_emails.append(email)
            account_items = self.str_list(entry, "accounts", f"people.{name}.accounts", required=False)
            for account, account_line in account_items or [(name, line)]:
                folded = account.casefold()
                if folded in accounts and accounts[folded][0] != name:
                    self.error(account_line, f"account {account!r} belongs to both '{accounts[folded][0]}' (line "
                                             f"{accounts[folded][1]}) and '{name}'")
                accounts.setdefault(folded, (name, account_line))
            person_accounts = [account for account, _ in account_items]
            people[name] = Person(name, tuple(person_emails), tuple(person_accounts) or (name,))
        return people

    def _groups(self, doc: YMap, people: dict[str, Person]) -> dict[str, tuple[str, ...]]:
        section = doc.get("groups", _MISSING)
        if section is _MISSING:
            return {}
        if not isinstance(section, YMap):
            self.error(doc.lines["groups"], f"'groups' must be a mapping of names to lists, not {_type_name(section)}")
            return {}
        groups: dict[str, tuple[str, ...]] = {}
        member_lines: dict[str, list[tuple[str, int]]] = {}
        for name, members in section.items():
            line = section.lines[name]
            self._name(name, line, "group")
            same = [person for person in people if person.casefold() == name.casefold()]
            if same:
                self.error(line, f"'{name}' is both a person and a group ('{same[0]}'); use distinct names")
            items = self.str_list(section, name, f"groups.{name}", required=False)
            if isinstance(members, YList) and not members:
                self.warn(line, f"group '{name}' is empty")
            member_lines[name] = items
            groups[name] = tuple(dict.fromkeys(m for m, _ in items))
        for name, items in member_lines.items():
            for member, line in items:
                if member not in people and member not in groups:
                    self.error(line, f"group '{name}' names '{member}', who is neither a person nor a group"
                               + _did_you_mean(member, [*people, *groups]))
        # Nested groups are allowed; a cycle is an error (it is always a mistake, and would make expansion ambiguous).
        for cycle in _group_cycles(groups):
            self.error(section.lines[cycle[0]], "groups form a cycle: " + " -> ".join([*cycle, cycle[0]]))
        return groups

    def _resolve_names(self, items: list[tuple[str, int]], people: dict[str, Person],
                       groups: dict[str, tuple[str, ...]], where: str) -> bool:
        """Report names that are neither people nor groups; True when all are known."""
        known = True
        for name, line in items:
            if name not in people and name not in groups:
                known = False
                self.error(line, f"{where} names '{name}', who is neither a person nor a group"
                           + _did_you_mean(name, [*people, *groups]))
        return known

    def _rules(self, doc: YMap, people: dict[str, Person], groups: dict[str, tuple[str, ...]],
               normaliser: PathNormaliser, *, deep: bool) -> tuple[Rule, ...]:
        options = normaliser.options
        section = doc.get("rules", _MISSING)
        if section is _MISSING:
            self.error(doc.line, "missing required key 'rules'")
            return ()
        if not isinstance(section, YList):
            self.error(doc.lines["rules"], f"'rules' must be a list, not {_type_name(section)}")
            return ()
        if not section:
            self.error(doc.lines["rules"], "'rules' is empty: the policy would protect nothing")
        rules: list[Rule] = []
        names: dict[str, int] = {}
        total_patterns = 0
        for index, (entry, line) in enumerate(zip(section, section.lines), start=1):
            if not isinstance(entry, YMap):
                self.error(line, f"rule #{index} must be a mapping, not {_type_name(entry)}")
                continue
            name = self.string(entry, "name", None, required=True, label=f"rule #{index}: name")
            label = f"rule '{name}'" if name else f"rule #{index}"
            if name is not None:
                if self._name(name, entry.lines["name"], "rule", _RULE_NAME_RE) and name in names:
                    self.error(entry.lines["name"], f"duplicate rule name '{name}' (first on line {names[name]})")
                names.setdefault(name, entry.lines["name"])
            self.unknown_keys(entry, RULE_KEYS, f" in {label}")
            description = self.string(entry, "description", "", label=f"{label}: description")
            good_paths = True
            paths: dict[str, None] = {}  # ordered set
            for pattern, pattern_line in self.str_list(entry, "paths", f"{label}: paths", required=True):
                total_patterns += 1
                if total_patterns == MAX_PATTERNS + 1:
                    self.error(pattern_line, f"more than {MAX_PATTERNS} path patterns in all rules; use '**' and "
                                             "directory patterns to say the same with fewer")
                if total_patterns > MAX_PATTERNS:
                    good_paths = False
                    continue
                reason = check_path_pattern(pattern, options, compile=deep)
                if reason is None and len(pattern) > MAX_PATTERN_LENGTH:
                    reason = f"path pattern is longer than {MAX_PATTERN_LENGTH} characters"
                if reason:
                    self.error(pattern_line, f"{label}: {reason}")
                    good_paths = False
                elif pattern in paths:
                    self.warn(pattern_line, f"{label}: path pattern {pattern!r} is listed twice")
                else:
                    paths[pattern] = None
            approvals = entry.get("approvals", _MISSING)
            good_approvals = False
            if approvals is _MISSING:
                self.error(line, f"{label}: missing required key 'approvals'")
                approvals = 1
            elif isinstance(approvals, bool) or not isinstance(approvals, int) or approvals < 1:
                self.error(entry.lines["approvals"],
                           f"{label}: 'approvals' must be a whole number >= 1, not {approvals!r}")
                approvals = 1
            elif approvals > 100:
                self.error(entry.lines["approvals"], f"{label}: 'approvals' {approvals} is more than 100")
                approvals = 1
            else:
                good_approvals = True
            reviewer_items = self.str_list(entry, "reviewers", f"{label}: reviewers", required=True)
            known = self._resolve_names(reviewer_items, people, groups, label)
            reviewers = tuple(dict.fromkeys(r for r, _ in reviewer_items))
            eligible = _expand(reviewers, people, groups, strict=False)
            if reviewer_items and known and good_approvals and approvals > len(eligible):
                self.error(entry.lines["approvals"], f"{label} needs {approvals} approval"
                           f"{'s' if approvals != 1 else ''} but only {len(eligible)} "
                           f"{'person' if len(eligible) == 1 else 'people'} may give them: it can never be satisfied")
            if name is None or not paths or not good_paths or not reviewers:
                continue
            rules.append(Rule(name=name, paths=tuple(paths), approvals=approvals, reviewers=reviewers,
                              description=description, normaliser=normaliser))
        return tuple(rules)

    def _break_glass(self, doc: YMap, people: dict[str, Person], groups: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
        items = self.str_list(doc, "break_glass", "break_glass", required=False)
        self._resolve_names(items, people, groups, "break_glass")
        return tuple(dict.fromkeys(name for name, _ in items))

    def _trust(self, doc: YMap, people: dict[str, Person], *, deep: bool) -> TrustConfig | None:
        section = self.section(doc, "trust", "", TRUST_KEYS, required=True)
        if section is None:
            return None
        signers, signers_line = self.path(section, "allowed_signers", "trust.allowed_signers", required=True)
        revoked, revoked_line = self.path(section, "revoked_keys", "trust.revoked_keys", required=False)
        namespace = self.string(section, "namespace", DEFAULT_NAMESPACE, label="trust.namespace")
        if "namespace" in section and isinstance(section["namespace"], str) and section["namespace"]:
            if not _NAMESPACE_RE.match(namespace):
                self.error(section.lines["namespace"], f"'trust.namespace' {namespace!r} must be printable ASCII "
                                                       "without spaces")
            elif namespace in ("git", "file", "file@openssh.com"):
                self.error(section.lines["namespace"], f"'trust.namespace' must not be {namespace!r}: signatures "
                           "made for that purpose would count as approvals")
        for path, line, label in ((signers, signers_line, "trust.allowed_signers"),
                                  (revoked, revoked_line, "trust.revoked_keys")):
            if path is not None:
                self._require_file(path, line, label)
        if signers is None:
            return None
        if deep and os.path.isfile(signers):
            from gatekeeper.trust import _signers_lint

            found = _signers_lint.check(signers, people, namespace, MAX_ALLOWED_SIGNERS_BYTES, _read_regular)
            self.problems.extend(Problem(str(signers), line, message, severity) for line, message, severity in found)
        return TrustConfig(allowed_signers=signers, revoked_keys=revoked, namespace=namespace)

    def _require_file(self, path: Path, line: int, label: str) -> None:
        try:
            _read_regular(path, 0)
        except FileNotFoundError:
            self.error(line, f"'{label}' {str(path)!r} does not exist")
        except IsADirectoryError:
            self.error(line, f"'{label}' {str(path)!r} is a directory, not a file")
        except OSError as exc:
            self.error(line, f"'{label}' {str(path)!r} cannot be read: {exc.strerror or exc}")

    def _audit(self, doc: YMap) -> AuditConfig | None:
        section = self.section(doc, "audit", "", AUDIT_KEYS, required=True)
        if section is None:
            return None
        log, log_line = self.path(section, "log", "audit.log", required=True)
        key, _ = self.path(section, "signing_key", "audit.signing_key", required=False)
        origin = self.string(section, "origin", None, label="audit.origin")
        if origin is not None and (any(ch.isspace() or not ch.isprintable() for ch in origin) or len(origin) > 200):
            self.error(section.lines["origin"], f"'audit.origin' {origin!r} must be printable, without white space "
                       "(a name like git.example.com/gatekeeper-audit)")
            origin = None
        database = self.string(section, "database", None, label="audit.database")
        if log is None:
            return None
        if not os.path.isdir(log.parent):
            self.error(log_line, f"the directory of 'audit.log' {str(log.parent)!r} does not exist")
        elif os.path.isdir(log):
            self.error(log_line, f"'audit.log' {str(log)!r} is a directory; name the log file")
        return AuditConfig(log=log, signing_key=key or log.parent / AUDIT_SIGNING_KEY_NAME, origin=origin,
                           database=database)

    def _scan(self, doc: YMap) -> ScanConfig:
        section = self.section(doc, "scan", "", SCAN_KEYS, required=False)
        if section is None:
            return ScanConfig()
        unscannable = self.choice(section, "unscannable", UNSCANNABLE, "refuse", "scan.unscannable")
        globals_ = []
        for name, line in self.str_list(section, "extra_pickle_globals", "scan.extra_pickle_globals", required=False):
            if _GLOBAL_RE.match(name):
                globals_.append(name)
            else:
                self.error(line,
                           f"'scan.extra_pickle_globals': {name!r} is not a dotted name like 'mypkg.module.Class'")
        lfs_store, lfs_line = self.path(section, "lfs_store", "scan.lfs_store", required=False)
        if lfs_store is not None and not os.path.isdir(lfs_store):
            self.warn(lfs_line, f"'scan.lfs_store' {str(lfs_store)!r} is not a directory: LFS objects will be "
                                "unscannable")
        return ScanConfig(unscannable=unscannable, extra_pickle_globals=tuple(globals_), lfs_store=lfs_store)

    def _approvals(self, doc: YMap, people: dict[str, Person], groups: dict[str, tuple[str, ...]],
                   ) -> ApprovalsConfig:
        section = self.section(doc, "approvals", "", APPROVALS_KEYS, required=False)
        if section is None:
            return ApprovalsConfig()
        admins = self.str_list(section, "admins", "approvals.admins", required=False)
        self._resolve_names(admins, people, groups, "approvals.admins")
        live = section.get("max_live_per_person", DEFAULT_MAX_LIVE_PER_PERSON)
        if isinstance(live, bool) or not isinstance(live, int) or not 1 <= live <= 1000:
            self.error(section.lines["max_live_per_person"],
                       f"'approvals.max_live_per_person' must be a whole number from 1 to 1000, not {live!r}")
            live = DEFAULT_MAX_LIVE_PER_PERSON
        signed = self.boolean(section, "require_signed_commits", False, "approvals.require_signed_commits")
        return ApprovalsConfig(admins=tuple(dict.fromkeys(name for name, _ in admins)), max_live_per_person=live,
                               require_signed_commits=signed)

    def _limits(self, doc: YMap) -> Limits:
        section = self.section(doc, "limits", "", LIMITS_KEYS, required=False)
        if section is None:
            return Limits()
        max_paths = section.get("max_changed_paths", DEFAULT_MAX_CHANGED_PATHS)
        if isinstance(max_paths, bool) or not isinstance(max_paths, int) or max_paths < 1:
            self.error(section.lines["max_changed_paths"],
                       f"'limits.max_changed_paths' must be a whole number >= 1, not {max_paths!r}")
            max_paths = DEFAULT_MAX_CHANGED_PATHS
        timeout = section.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 86400:
            self.error(section.lines["timeout_seconds"],
                       f"'limits.timeout_seconds' must be a number of seconds > 0 and <= 86400, not {timeout!r}")
            timeout = DEFAULT_TIMEOUT_SECONDS
        return Limits(max_changed_paths=max_paths, timeout_seconds=float(timeout))


def _expand(names: Iterable[str], people: Mapping[str, Person], groups: Mapping[str, tuple[str, ...]], *,
            strict: bool) -> set[str]:
    """People named directly or through (nested) groups; unknown names raise KeyError if ``strict``."""
    out: set[str] = set()
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in people:
            out.add(name)
        elif name in groups:
            todo.extend(groups[name])
        elif strict:
            raise KeyError(name)
    return out


def _group_cycles(groups: Mapping[str, tuple[str, ...]]) -> list[list[str]]:
    """Cycles in the group graph, each as a list of groups starting at the one first reached; O(groups + members).

    An iterative depth-first search with the usual three colours (a plain path search from every group would be
    quadratic on long chains and exponential on diamonds).
    """
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(groups, white)
    cycles: list[list[str]] = []
    for root in groups:
        if colour[root] != white:
            continue
        colour[root] = grey
        path = [root]
        iters = [iter(groups[root])]
        while iters:
            for member in iters[-1]:
                state = colour.get(member)
                if state == grey:
                    cycles.append(path[path.index(member):])
                elif state == white:
                    colour[member] = grey
                    path.append(member)
                    iters.append(iter(groups[member]))
                    break
            else:
                iters.pop()
                colour[path.pop()] = black
    return cycles


def _closest(word: str, choices: Iterable[str]) -> str | None:
    import difflib

    found = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return found[0] if found else None


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    hint = _closest(word, choices)
    return f" (did you mean '{hint}'?)" if hint else ""
