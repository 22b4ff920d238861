"""``gatekeeper policy lint|explain``: check a policy file; show which rules protect given paths on a ref.

    gatekeeper policy lint --config FILE [--format json]
    gatekeeper policy explain --config FILE --ref REF [--stdin [-z]] [--format json] [PATH...]

``lint`` prints every problem as ``FILE:LINE: message`` and exits 1 when there is an error (warnings alone exit 0),
else prints a one-line summary. ``explain`` loads the policy like the hook does (any error refuses, exit 1) and, per
path, lists the rules that protect it and the gate's built-in requirements that apply to it (by name: plumbing files,
remote-code configs and model files; by content: whatever the detectors find when the path is pushed), with the
approvals they need computed by the same function the hook uses.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from gatekeeper.cli._output import add_format, emit_json, full_ref

if TYPE_CHECKING:
    from gatekeeper.policy.config import Policy

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_USAGE = 2


def configure(parser: argparse.ArgumentParser, verb: str) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    lint = sub.add_parser("lint", help="report every problem in a policy file (FILE:LINE: message)")
    lint.add_argument("--config", required=True, type=Path, metavar="FILE", help="the policy file (YAML)")
    add_format(lint)
    explain = sub.add_parser("explain", help="show which rules protect the given paths on a ref")
    explain.add_argument("--config", required=True, type=Path, metavar="FILE", help="the policy file (YAML)")
    explain.add_argument("--ref", required=True, type=full_ref, help="the ref: main means refs/heads/main")
    explain.add_argument("--stdin", action="store_true", help="also read paths from stdin, one per line")
    explain.add_argument("-z", dest="nul", action="store_true", help="with --stdin: paths are NUL-separated")
    explain.add_argument("paths", nargs="*", metavar="PATH", help="repository paths (as git stores them)")
    add_format(explain)


def run(args: argparse.Namespace, verb: str) -> int:
    if args.action == "lint":
        return lint(config=args.config, fmt=args.format)
    paths = [os.fsencode(p) for p in args.paths]
    if args.stdin:
        paths.extend(_split(sys.stdin.buffer.read(), b"\0" if args.nul else b"\n"))
    elif args.nul:
        print("gatekeeper policy explain: error: -z needs --stdin", file=sys.stderr)
        return EXIT_USAGE
    if not paths:
        print("gatekeeper policy explain: error: give at least one PATH (or --stdin)", file=sys.stderr)
        return EXIT_USAGE
    return explain(config=args.config, ref=args.ref, paths=paths, fmt=args.format)


def _split(data: bytes, sep: bytes) -> list[bytes]:
    items = data.split(sep)
    if sep == b"\n":
        items = [item[:-1] if item.endswith(b"\r") else item for item in items]
    return [item for item in items if item]


def lint(*, config: Path, out: TextIO | None = None, fmt: str = "text") -> int:
    """Print every problem of the policy at ``config``; 1 if any is an error, else 0 with a summary."""
    from gatekeeper.policy.config import lint_and_load

    out = out or sys.stdout
    policy, problems = lint_and_load(config)
    if fmt == "json":
        ok = policy is not None and not any(p.is_error for p in problems)
        emit_json({"config": str(config), "ok": ok,
                   "problems": [{"file": p.file, "line": p.line, "severity": p.severity, "message": p.message}
                                for p in problems]}, "gatekeeper.policy-lint/1", out)
        return EXIT_OK if ok else EXIT_FAIL
    for problem in problems:
        print(problem, file=out)
    errors = sum(1 for p in problems if p.is_error)
    warnings = len(problems) - errors
    if errors or policy is None:
        print(f"{config}: {_count(errors, 'error')}, {_count(warnings, 'warning')}", file=out)
        return EXIT_FAIL
    print(
        f"{config}: ok: version {policy.version}, mode {policy.mode}, "
        f"{_count(len(policy.protected_refs), 'protected ref pattern')}, {_count(len(policy.rules), 'rule')}, "
        f"{_count(len(policy.people), 'person', 'people')}, {_count(len(policy.groups), 'group')}"
        + (f"; {_count(warnings, 'warning')}" if warnings else ""),
        file=out,
    )
    return EXIT_OK


def explain(*, config: Path, ref: str, paths: Sequence[bytes], out: TextIO | None = None, fmt: str = "text") -> int:
    """Print, per path, the rules and built-in requirements protecting it on ``ref``. Raises ConfigError when the
    policy is invalid."""
    from gatekeeper.model import display_path
    from gatekeeper.policy.config import load_policy

    out = out or sys.stdout
    policy = load_policy(config)
    ref_pattern = policy.protected_ref_pattern(ref)
    history = _builtin(policy, "protected-ref-history", "force pushes and deletions of this ref")
    items: list[dict[str, Any]] = []
    for path in paths:
        rules = [{"rule": rule.name, "approvals": rule.approvals, "reviewers": list(rule.reviewers),
                  "people": sorted(policy.reviewers_of(rule)), "pattern": rule.matching_pattern(path)}
                 for rule in policy.rules_for(path)]
        items.append({"path": display_path(path), "rules": rules, "builtin": builtin_requirements_for(policy, path)})
    if fmt == "json":
        emit_json({"policy": str(policy.source_path), "policy_sha256": policy.source_sha256, "mode": policy.mode,
                   "ref": ref, "protected": ref_pattern is not None, "ref_pattern": ref_pattern,
                   "ref_builtin": [history] if ref_pattern is not None else [], "paths": items},
                  "gatekeeper.policy-explain/1", out)
        return EXIT_OK
    print(f"policy {policy.source_path} (sha256 {policy.source_sha256[:12]}), mode {policy.mode}", file=out)
    if ref_pattern is not None:
        print(f"ref {ref}: protected (matches {ref_pattern!r})", file=out)
        print(f"    {_builtin_line(history)}", file=out)
    else:
        print(f"ref {ref}: NOT protected: pushes to it need no approvals (content scanning still applies); "
              "rules shown are those that apply on protected refs", file=out)
    for item in items:
        print(item["path"], file=out)
        for rule in item["rules"]:
            print(f"    {rule['rule']}: {_count(rule['approvals'], 'approval')} from {', '.join(rule['reviewers'])} "
                  f"({', '.join(rule['people'])})  [pattern {rule['pattern']!r}]", file=out)
        for builtin in item["builtin"]:
            print(f"    {_builtin_line(builtin)}", file=out)
        if not item["rules"] and not item["builtin"]:
            print("    no rule: changes need no approval", file=out)
    if items:
        print("(any path: the built-in ml-artifacts requirement applies when the detectors find a model file that "
              "runs code on load; repository-plumbing when it is a symlink into a protected path or a submodule "
              "under one)", file=out)
    return EXIT_OK


# Names under which model files usually travel. The gate decides by content, not by name (a pickle named
# weights.txt is still a pickle), so explain says "if"; these names only make the answer visible before a push.
_MODEL_SUFFIXES = (".pkl", ".pickle", ".pt", ".pth", ".bin", ".ckpt", ".joblib", ".npy", ".npz", ".h5", ".hdf5",
                   ".keras", ".dill", ".mar", ".safetensors", ".pb", ".zip", ".tar", ".gz")


def builtin_requirements_for(policy: Policy, path: bytes) -> list[dict[str, Any]]:
    """The gate's built-in requirements that apply to ``path`` by name, with the condition under which they do."""
    import posixpath

    from gatekeeper.push.content_gate import ARTIFACT_RULE, PLUMBING_RULE, REMOTE_CODE_RULE
    from gatekeeper.detectors.plumbing import dotfile_kind
    from gatekeeper.detectors.remote_code import is_config_name

    out = []
    kind = dotfile_kind(path)
    if kind is not None:
        out.append(_builtin(policy, PLUMBING_RULE, f"always: {kind} changes what runs or is fetched"))
    if is_config_name(path):
        out.append(_builtin(policy, REMOTE_CODE_RULE, "if it holds a trigger (auto_map, custom_pipelines, Hydra "
                            "_target_, modules.json, hubconf.py ...) that is added or changed"))
    elif path.endswith(b".py"):
        out.append(_builtin(policy, REMOTE_CODE_RULE, "if a config's trigger makes it run on load (its import "
                            "closure, or any .py in a Hugging Face model folder)"))
    if posixpath.basename(path).lower().endswith(tuple(s.encode() for s in _MODEL_SUFFIXES)):
        out.append(_builtin(policy, ARTIFACT_RULE, "if the detectors find content that runs code on load (pickle "
                            "globals outside the allow-list, TorchScript, Keras lambdas ...); malicious content is "
                            "refused whatever the approvals"))
    return out


def _builtin(policy: Policy, name: str, when: str) -> dict[str, Any]:
    from gatekeeper.push.gate import builtin_requirement

    req = builtin_requirement(policy, name, (), when)
    return {"rule": name, "approvals": req.approvals, "reviewers": list(req.reviewer_spec),
            "people": sorted(req.reviewers), "when": when}


def _builtin_line(b: dict[str, Any]) -> str:
    return (f"{b['rule']} (built-in): {_count(int(b['approvals']), 'approval')} from "
            f"{', '.join(b['reviewers']) or 'nobody'} ({', '.join(b['people'])}), {b['when']}")


def _count(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else (plural or word + 's')}"


