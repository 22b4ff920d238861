"""lint_policy: every kind of problem, each reported with its line, all of them at once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from gatekeeper.policy.config import Problem, lint_policy

Lint = Callable[[str], list[str]]

ALLOWED_TOP = ("allowed: version, repository, mode, platform, default_branch, protected_refs, rules, people, groups, "
               "break_glass, trust, audit, matching, scan, limits")


def test_base_policy_is_clean(lint_text: Lint, base_text: str) -> None:
    assert lint_text(base_text) == []


def test_problem_formatting_and_order() -> None:
    problems = sorted([Problem("b.yaml", 1, "x"), Problem("a.yaml", 10, "y", "warning"), Problem("a.yaml", 2, "z")])
    assert [str(p) for p in problems] == ["a.yaml:2: z", "a.yaml:10: warning: y", "b.yaml:1: x"]
    assert problems[0].is_error and not problems[1].is_error


# --- version first -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("line", "message"), [
    ("version: 2", "1: unsupported policy version 2; this gatekeeper reads version 1"),
    ("version: '1'", "1: unsupported policy version '1'; this gatekeeper reads version 1"),
    ("version: true", "1: unsupported policy version True; this gatekeeper reads version 1"),
    ("version: 1.0", "1: unsupported policy version 1.0; this gatekeeper reads version 1"),
])
def test_version_is_checked_first_and_alone(lint_text: Lint, line: str, message: str) -> None:
    # Nothing else is interpreted under a wrong version: the unknown key is not reported.
    assert lint_text(f"{line}\nfrobnicate: 1\n") == [message]


def test_missing_version(lint_text: Lint, base_text: str) -> None:
    assert lint_text(base_text.replace("version: 1\n", "")) == [
        "1: missing required key 'version' (this gatekeeper reads version 1)"]


# --- unknown keys and wrong types -----------------------------------------------------------------------------------

def test_unknown_keys_everywhere(lint_text: Lint, base_text: str) -> None:
    text = (base_text
            .replace("protected_refs:", "protected_ref: [refs/heads/x]\nprotected_refs:")
            .replace("    approvals: 1", "    approvals: 1\n    reviewer: [bob]")
            .replace("  alice: {emails: [alice@example.com]}", "  alice: {email: [alice@example.com]}")
            .replace("  allowed_signers: allowed_signers", "  allowed_signers: allowed_signers\n  revoked: x")
            .replace("  log: log/audit.jsonl", "  log: log/audit.jsonl\n  path: y")
            + "matching: {case: true}\nscan: {unscanable: refuse}\nlimits: {timeout: 3}\n")
    assert lint_text(text) == [
        f"2: unknown key 'protected_ref' at the top level (did you mean 'protected_refs'?); {ALLOWED_TOP}",
        "8: unknown key 'reviewer' in rule 'model-code' (did you mean 'reviewers'?); allowed: name, description, "
        "paths, approvals, reviewers",
        "11: unknown key 'email' for person 'alice' (did you mean 'emails'?); allowed: emails, accounts",
        "17: unknown key 'revoked' in 'trust' (did you mean 'revoked_keys'?); "
        "allowed: allowed_signers, revoked_keys, namespace",
        "20: unknown key 'path' in 'audit'; allowed: log, signing_key, origin, database",
        "21: unknown key 'case' in 'matching'; allowed: case_insensitive, unicode_nfc",
        "22: unknown key 'unscanable' in 'scan' (did you mean 'unscannable'?); allowed: unscannable, "
        "extra_pickle_globals, lfs_store",
        "23: unknown key 'timeout' in 'limits' (did you mean 'timeout_seconds'?); "
        "allowed: max_changed_paths, timeout_seconds",
    ]


def test_wrong_types(lint_text: Lint) -> None:
    text = """\
        version: 1
        repository: [a]
        mode: 1
        platform: github
        default_branch: main
        protected_refs: refs/heads/main
        rules: {name: x}
        people: [alice]
        groups: [leads]
        break_glass: admins
        trust: /etc/allowed_signers
        audit: [log]
        matching: {case_insensitive: "yes", unicode_nfc: 1}
        scan: {unscannable: ignore, extra_pickle_globals: os.system, lfs_store: 5}
        limits: {max_changed_paths: -1, timeout_seconds: "50"}
        """
    assert lint_text(text) == [
        "2: 'repository' must be a non-empty string, not a list",
        "3: 'mode' must be one of enforce, monitor; got 1",
        "4: 'platform' must be one of auto, gitlab, gitea, gitolite, http, ssh, plain; got 'github'",
        "5: ref pattern 'main' must be a full ref name starting with 'refs/' (e.g. 'refs/heads/main')",
        "6: 'protected_refs' must be a list, not a string",
        "7: 'rules' must be a list, not a mapping",
        "8: 'people' must be a mapping of names, not a list",
        "9: 'groups' must be a mapping of names to lists, not a list",
        "10: 'break_glass' must be a list, not a string",
        "11: 'trust' must be a mapping, not a string",
        "12: 'audit' must be a mapping, not a list",
        "13: 'matching.case_insensitive' must be true or false, not 'yes'",
        "13: 'matching.unicode_nfc' must be true or false, not 1",
        "14: 'scan.extra_pickle_globals' must be a list, not a string",
        "14: 'scan.lfs_store' must be a non-empty string, not a number",
        "14: 'scan.unscannable' must be one of refuse, review; got 'ignore'",
        "15: 'limits.max_changed_paths' must be a whole number >= 1, not -1",
        "15: 'limits.timeout_seconds' must be a number of seconds > 0 and <= 86400, not '50'",
    ]


@pytest.mark.parametrize("doc", ["- a\n- b\n", "just a string\n", "42\n", "null\n"])
def test_top_level_must_be_a_mapping(lint_text: Lint, doc: str) -> None:
    kind = {"- a\n- b\n": "a list", "just a string\n": "a string", "42\n": "a number", "null\n": "null"}[doc]
    assert lint_text(doc) == [f"1: the policy must be a mapping of keys, not {kind}"]


def test_empty_sections(lint_text: Lint, base_text: str) -> None:
    text = base_text.replace('protected_refs: [refs/heads/main, "refs/heads/release/**"]', "protected_refs: []")
    text = text[:text.index("rules:")] + "rules: []\n" + text[text.index("people:"):]
    assert lint_text(text) == [
        "2: 'protected_refs' must not be empty",
        "3: 'rules' is empty: the policy would protect nothing",
    ]


def test_missing_required_sections(lint_text: Lint) -> None:
    assert lint_text("version: 1\n") == [
        "1: missing required key 'audit'",
        "1: missing required key 'people' (rules need reviewers)",
        "1: missing required key 'protected_refs'",
        "1: missing required key 'rules'",
        "1: missing required key 'trust'",
    ]


# --- rules ------------------------------------------------------------------------------------------------------------

RULES_DOC = """\
    version: 1
    protected_refs: [refs/heads/main]
    rules:
      - name: a
        paths: ["models/**"]
        approvals: 0
        reviewers: [leads]
      - name: a
        paths: ["x/**"]
        approvals: two
        reviewers: [laeds, mallory]
      - name: c
        paths: []
        approvals: 1.5
        reviewers: []
      - paths: "y/**"
        reviewers: leads
      - just-a-string
      - name: "bad name!"
        paths: [z]
        approvals: true
        reviewers: [alice]
      - name: e
        paths: [e]
        approvals: 3
        reviewers: [leads]
    people:
      alice: {}
      bob: {}
    groups:
      leads: [alice, bob]
    trust: {allowed_signers: allowed_signers}
    audit: {log: log/audit.jsonl}
    """


def test_rule_problems(lint_text: Lint) -> None:
    assert lint_text(RULES_DOC) == [
        "6: rule 'a': 'approvals' must be a whole number >= 1, not 0",
        "8: duplicate rule name 'a' (first on line 4)",
        "10: rule 'a': 'approvals' must be a whole number >= 1, not 'two'",
        "11: rule 'a' names 'laeds', who is neither a person nor a group (did you mean 'leads'?)",
        "11: rule 'a' names 'mallory', who is neither a person nor a group",
        "13: rule 'c': 'paths' must not be empty",
        "14: rule 'c': 'approvals' must be a whole number >= 1, not 1.5",
        "15: rule 'c': 'reviewers' must not be empty",
        "16: rule #4: 'paths' must be a list, not a string",
        "16: rule #4: missing required key 'approvals'",
        "16: rule #4: missing required key 'name'",
        "17: rule #4: 'reviewers' must be a list, not a string",
        "18: rule #5 must be a mapping, not a string",
        "19: rule name 'bad name!' may only use letters, digits and '._-' (and must start with a letter or digit)",
        "21: rule 'bad name!': 'approvals' must be a whole number >= 1, not True",
        "25: rule 'e' needs 3 approvals but only 2 people may give them: it can never be satisfied",
    ]


# --- path patterns ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("pattern", "message"), [
    ('"[abc"', "path pattern '[abc' is not a valid glob (unterminated '[' range?)"),
    ('"foo\\\\"', "path pattern 'foo\\\\' is not a valid glob (Invalid git pattern: 'foo\\\\')"),
    ('"[z-a]"', "path pattern '[z-a]' is not a valid glob (bad character range z-a)"),
    ('"[[:alpha:]]*"', "path pattern '[[:alpha:]]*' uses a POSIX bracket class ('[:alpha:]' etc.), which is not "
                      "supported"),
    ('"!models/**"', "path pattern '!models/**' is a negation; rules cannot exclude paths (every matching rule must "
                     "hold), write '\\!' for a literal '!'"),
    ('"#models"', "path pattern '#models' starts with '#', which gitignore reads as a comment; write '\\#'"),
    ('""', "items of 'paths' must be non-empty strings, not empty"),
    ('"   "', "empty path pattern (it would match nothing)"),
    ('"/"', "path pattern '/' matches nothing"),
    ('"a//b"', "path pattern 'a//b' has an empty, '.' or '..' component; git paths never do"),
    ('"./models"', "path pattern './models' has an empty, '.' or '..' component; git paths never do"),
    ('"models/../x"', "path pattern 'models/../x' has an empty, '.' or '..' component; git paths never do"),
    ('"models/** "', "path pattern 'models/** ' has leading or trailing white space; escape a real space as '\\ '"),
    ('" models"', "path pattern ' models' has leading or trailing white space; escape a real space as '\\ '"),
    ('"a\\0b"', "path pattern 'a\\x00b' contains a NUL byte (git paths never do)"),
    ("5", "items of 'paths' must be non-empty strings, not a number"),
])
def test_bad_path_patterns(lint_text: Lint, base_text: str, pattern: str, message: str) -> None:
    text = base_text.replace('paths: ["models/**", "**/modeling_*.py"]', f'paths: ["models/**", {pattern}]')
    prefix = "rule 'model-code': " if not message.startswith("items") else "rule 'model-code': "
    assert lint_text(text) == [f"5: {prefix}{message}"]


@pytest.mark.parametrize("pattern", ["foo\\\\ ", "a[!b]c", "*[.]bin", "[=]x", "[:]y", "\\\\#x", "\\\\!x", "/models",
                                     "models/", "**", "*/"])
def test_unusual_but_valid_patterns(lint_text: Lint, base_text: str, pattern: str) -> None:
    text = base_text.replace('paths: ["models/**", "**/modeling_*.py"]', f'paths: ["{pattern}"]')
    assert lint_text(text) == []


def test_duplicate_pattern_is_a_warning(lint_text: Lint, base_text: str) -> None:
    text = base_text.replace('"**/modeling_*.py"]', '"**/modeling_*.py", "models/**"]')
    assert lint_text(text) == ["5: warning: rule 'model-code': path pattern 'models/**' is listed twice"]


# --- refs -------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("pattern", "message"), [
    ("heads/main", "ref pattern 'heads/main' must be a full ref name starting with 'refs/' (e.g. 'refs/heads/main')"),
    ("refs/heads/ma**", "ref pattern 'refs/heads/ma**': '**' must be a whole component (like "
                        "'refs/heads/release/**')"),
    ("refs/heads/[ab]", "ref pattern 'refs/heads/[ab]' contains '[', which git forbids in ref names"),
    ("refs/heads/a b", "ref pattern 'refs/heads/a b' contains ' ', which git forbids in ref names"),
    ("refs//main", "ref pattern 'refs//main' has an empty, '.' or '..' component"),
    ("refs/heads/", "ref pattern 'refs/heads/' has an empty, '.' or '..' component"),
    ("refs/heads/x.lock", "ref pattern 'refs/heads/x.lock' cannot match a ref name (git forbids a trailing '.' or "
                          "'.lock')"),
])
def test_bad_ref_patterns(lint_text: Lint, base_text: str, pattern: str, message: str) -> None:
    text = base_text.replace('protected_refs: [refs/heads/main,', f'protected_refs: ["{pattern}",')
    assert lint_text(text) == [f"2: {message}"]


def test_duplicate_protected_ref_is_a_warning(lint_text: Lint, base_text: str) -> None:
    text = base_text.replace("protected_refs: [refs/heads/main,", "protected_refs: [refs/heads/main, refs/heads/main,")
    assert lint_text(text) == ["2: warning: protected ref 'refs/heads/main' is listed twice (first on line 2)"]


@pytest.mark.parametrize(("value", "message"), [
    ("main", "ref pattern 'main' must be a full ref name starting with 'refs/' (e.g. 'refs/heads/main')"),
    ("refs/heads/*", "'default_branch' must be one branch such as 'refs/heads/main', not 'refs/heads/*'"),
    ("refs/tags/v1", "'default_branch' must be one branch such as 'refs/heads/main', not 'refs/tags/v1'"),
])
def test_bad_default_branch(lint_text: Lint, base_text: str, value: str, message: str) -> None:
    assert lint_text(base_text + f'default_branch: "{value}"\n') == [f"17: {message}"]


# --- people and groups ------------------------------------------------------------------------------------------------

PEOPLE_DOC = """\
    version: 1
    protected_refs: [refs/heads/main]
    rules:
      - name: r
        paths: [x]
        approvals: 1
        reviewers: [leads]
    people:
      alice: {emails: [alice@example.com], accounts: [al]}
      bob: {emails: [ALICE@example.com, not-an-email], accounts: [AL]}
      "carol smith": {}
      dave: [dave@example.com]
      leads: {}
      Alice: {}
    groups:
      leads: [alice, bbo]
      ring1: [ring2]
      ring2: [ring1, alice]
      empty: []
      "bad*group": [alice]
    break_glass: [admins]
    trust: {allowed_signers: allowed_signers}
    audit: {log: log/audit.jsonl}
    """


def test_people_and_group_problems(lint_text: Lint) -> None:
    assert [p for p in lint_text(PEOPLE_DOC) if "allowed_signers" not in p] == [
        "10: account 'AL' belongs to both 'alice' (line 9) and 'bob'",
        "10: email 'ALICE@example.com' belongs to both 'alice' (line 9) and 'bob'",
        "10: person 'bob': 'not-an-email' is not an email address",
        "11: person name 'carol smith' may only use letters, digits and '._@+-' (and must start with a letter or "
        "digit)",
        "12: person 'dave' must be a mapping such as {emails: [...]}, not a list",
        "14: person names 'alice' and 'Alice' differ only in case; use one name per person",
        "16: 'leads' is both a person and a group ('leads'); use distinct names",
        "16: group 'leads' names 'bbo', who is neither a person nor a group (did you mean 'bob'?)",
        "17: groups form a cycle: ring1 -> ring2 -> ring1",
        "19: warning: group 'empty' is empty",
        "20: group name 'bad*group' may only use letters, digits and '._@+-' (and must start with a letter or digit)",
        "21: break_glass names 'admins', who is neither a person nor a group",
    ]


def test_nested_groups_expand(write_policy: Callable[[str], Path], base_text: str) -> None:
    from gatekeeper.policy.config import load_policy

    text = base_text.replace("  leads: [alice, bob]", "  leads: [core, bob]\n  core: [alice]")
    text = text.replace("people:", "people:\n  carol: {}")
    policy = load_policy(write_policy(text))
    assert policy.reviewers_of(policy.rules[0]) == frozenset({"alice", "bob"})


# --- trust, audit and the file system ---------------------------------------------------------------------------------

def test_missing_files_and_directories(lint_text: Lint, base_text: str, policy_dir: Path) -> None:
    text = base_text.replace("  allowed_signers: allowed_signers", "  allowed_signers: nope\n  revoked_keys: gone")
    text = text.replace("  log: log/audit.jsonl", "  log: nolog/audit.jsonl")
    assert lint_text(text) == [
        f"14: 'trust.allowed_signers' '{policy_dir / 'nope'}' does not exist",
        f"15: 'trust.revoked_keys' '{policy_dir / 'gone'}' does not exist",
        f"17: the directory of 'audit.log' '{policy_dir / 'nolog'}' does not exist",
    ]


def test_trust_and_audit_details(lint_text: Lint, base_text: str, policy_dir: Path) -> None:
    text = base_text.replace("  allowed_signers: allowed_signers", "  allowed_signers: log\n  namespace: git")
    text = text.replace("  log: log/audit.jsonl", "  log: log\n  signing_key: ~/key")
    assert lint_text(text) == [
        f"14: 'trust.allowed_signers' '{policy_dir / 'log'}' is a directory, not a file",
        "15: 'trust.namespace' must not be 'git': signatures made for that purpose would count as approvals",
        f"17: 'audit.log' '{policy_dir / 'log'}' is a directory; name the log file",
        "18: 'audit.signing_key' starts with '~'; write an absolute path (HOME differs on the server)",
    ]


def test_missing_trust_keys(lint_text: Lint, base_text: str) -> None:
    text = base_text.replace("  allowed_signers: allowed_signers", "  namespace: 'has space'")
    text = text.replace("  log: log/audit.jsonl", "  signing_key: k")
    assert lint_text(text) == [
        "13: missing required key 'trust.allowed_signers'",
        "14: 'trust.namespace' 'has space' must be printable ASCII without spaces",
        "15: missing required key 'audit.log'",
    ]


def test_scan_section(lint_text: Lint, base_text: str, policy_dir: Path) -> None:
    text = base_text + "scan:\n  extra_pickle_globals: [os.system, 'not a name', builtins]\n  lfs_store: lfs\n"
    assert lint_text(text) == [
        "18: 'scan.extra_pickle_globals': 'builtins' is not a dotted name like 'mypkg.module.Class'",
        "18: 'scan.extra_pickle_globals': 'not a name' is not a dotted name like 'mypkg.module.Class'",
        f"19: warning: 'scan.lfs_store' '{policy_dir / 'lfs'}' is not a directory: LFS objects will be unscannable",
    ]


# --- YAML level -------------------------------------------------------------------------------------------------------

def test_duplicate_keys_are_reported_with_both_lines(lint_text: Lint, base_text: str) -> None:
    text = base_text + "rules:\n  - name: x\n    paths: [x]\n    approvals: 1\n    reviewers: [bob]\n"
    text = text.replace("  bob: {emails: [bob@example.com]}", "  bob: {emails: [bob@example.com], emails: []}")
    assert lint_text(text) == [
        "10: duplicate key 'emails' (first on line 10)",
        "17: duplicate key 'rules' (first on line 3)",
    ]


def test_yaml_syntax_error_has_its_line(lint_text: Lint, base_text: str) -> None:
    text = base_text.replace("  leads: [alice, bob]", "  leads: [alice, bob")
    assert lint_text(text) == [
        "13: YAML syntax error: while parsing a flow sequence did not find expected ',' or ']'"]


def test_tab_indentation_is_a_syntax_error(lint_text: Lint, base_text: str) -> None:
    text = base_text.replace("  leads: [alice, bob]", "\tleads: [alice, bob]")
    problems = lint_text(text)
    assert len(problems) == 1 and problems[0].startswith("12: YAML syntax error:")


# --- allowed_signers contents -----------------------------------------------------------------------------------------

def test_allowed_signers_lint(lint_text: Lint, base_text: str, policy_dir: Path) -> None:
    signers = policy_dir / "allowed_signers"
    signers.write_text(
        "# comment\n"
        "\n"
        "alice ssh-ed25519 AAAA\n"
        '* ssh-ed25519 AAAA\n'
        'alice,!bob ssh-ed25519 AAAA\n'
        'zed ssh-ed25519 AAAA\n'
        'alice valid-after="20240101" ssh-ed25519 AAAA\n'
        'alice valid-after="20240101Z",valid-before="20230101Z" ssh-ed25519 AAAA\n'
        'alice namespaces="git",cert-authority ssh-ed25519 AAAA\n'
        'alice namespaces="gatekeeper-*" ssh-ed25519 AAAA\n'
        'alice nonsense="1" ssh-ed25519 AAAA\n'
        'alice cert-authority,cert-authority ssh-ed25519 AAAA\n'
        "alice ssh-dss AAAA\n"
        "alice\n"
        '"alice ssh-ed25519 AAAA\n'
    )
    f = str(signers)
    assert lint_text(base_text) == [
        f"{f}:1: warning: person 'bob' has no key in this file and cannot approve",
        f"{f}:4: principal '*' is a pattern or empty; gatekeeper principals must be exact people names (a pattern "
        "lets this key approve as anyone it matches)",
        f"{f}:5: principal '!bob' is a pattern or empty; gatekeeper principals must be exact people names (a pattern "
        "lets this key approve as anyone it matches)",
        f"{f}:6: warning: principal 'zed' is not a person in the policy; this key approves for nobody",
        f"{f}:7: valid-after=\"20240101\" has no 'Z': ssh-keygen reads it in the server's local time; append Z",
        f"{f}:8: valid-before is not after valid-after; ssh-keygen rejects the line",
        f"{f}:9: warning: namespaces='git' excludes 'gatekeeper-approval@gatekeeper.dev': this key cannot sign "
        "approvals",
        f"{f}:11: unknown option 'nonsense'; ssh-keygen rejects the line",
        f"{f}:12: option 'cert-authority' given twice; ssh-keygen rejects the line",
        f"{f}:13: unknown or missing key type ('AAAA'); ssh-keygen skips this line",
        f"{f}:14: malformed line (expected: principals [options] keytype base64-key); ssh-keygen skips it",
        f"{f}:15: malformed line (expected: principals [options] keytype base64-key); ssh-keygen skips it",
    ]


def test_allowed_signers_not_utf8(lint_text: Lint, base_text: str, policy_dir: Path) -> None:
    (policy_dir / "allowed_signers").write_bytes(b"alice ssh-ed25519 AAAA\nbob ssh-ed25519 AAAA \xff\n")
    assert lint_text(base_text) == [f"{policy_dir / 'allowed_signers'}:2: line is not UTF-8",
                                    f"{policy_dir / 'allowed_signers'}:1: warning: person 'bob' has no key in this "
                                    "file and cannot approve"][::-1]


def test_lint_reports_problems_from_every_section_at_once(lint_text: Lint, base_text: str) -> None:
    text = (base_text.replace("approvals: 1", "approvals: 0").replace("mode", "mode")
            .replace("  leads: [alice, bob]", "  leads: [alice, bob, eve]") + "mode: strict\n")
    assert lint_text(text) == [
        "6: rule 'model-code': 'approvals' must be a whole number >= 1, not 0",
        "12: group 'leads' names 'eve', who is neither a person nor a group",
        "17: 'mode' must be one of enforce, monitor; got 'strict'",
    ]


def test_lint_unreadable_policy(tmp_path: Path) -> None:
    assert [str(p) for p in lint_policy(tmp_path)] == [f"{tmp_path}:1: cannot read the policy: Is a directory"]


def test_allowed_signers_too_big(lint_text: Lint, base_text: str, policy_dir: Path) -> None:
    from gatekeeper.policy.config import MAX_ALLOWED_SIGNERS_BYTES

    with open(policy_dir / "allowed_signers", "wb") as fh:
        fh.truncate(MAX_ALLOWED_SIGNERS_BYTES + 1)
    assert lint_text(base_text) == [
        f"{policy_dir / 'allowed_signers'}:1: file is bigger than {MAX_ALLOWED_SIGNERS_BYTES} bytes"]
