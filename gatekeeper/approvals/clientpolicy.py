"""Reading the server's policy in a clone (for ``gatekeeper approve --config`` and ``gatekeeper check --config``).

The policy is server-side: a clone gets a copy from the admin (or from wherever the team publishes it). The server's
loader also insists that the trust store and the audit log's directory exist, which they do not on a laptop; this
loader runs the same validation of everything else (rules, people, groups, refs) and skips only those two file checks.
A trust store given with ``--allowed-signers`` (or present at the policy's path) lets ``check`` verify signatures too.

NOTE: this reuses ``gatekeeper.policy.config``'s private checker; a ``load_policy(path, client=True)`` switch in that
module would be the cleaner home for it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from gatekeeper.errors import ConfigError
from gatekeeper.policy.config import AUDIT_KEYS, AUDIT_SIGNING_KEY_NAME, AuditConfig, Policy, Problem, _Checker
from gatekeeper.policy.yamlsafe import YamlProblem, YMap, load_yaml

__all__ = ["load_client_policy"]


class _ClientChecker(_Checker):
    def _require_file(self, path: Path, line: int, label: str) -> None:
        return None  # the trust store lives on the server

    def _audit(self, doc: YMap) -> AuditConfig | None:
        # Every key the server accepts (an archived policy may name its origin and fleet database); only the log is
        # used here.
        section = self.section(doc, "audit", "", AUDIT_KEYS, required=True)
        if section is None:
            return None
        log, _ = self.path(section, "log", "audit.log", required=True)
        if log is None:
            return None
        return AuditConfig(log=log, signing_key=log.parent / AUDIT_SIGNING_KEY_NAME)


def load_client_policy(path: Path) -> Policy:
    """The policy at ``path``, validated except for server-only files.

    Raises:
        ConfigError: unreadable or invalid (all problems listed).
    """
    shown = str(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read(8 * 1024 * 1024)
    except OSError as exc:
        raise ConfigError(f"cannot read the policy {shown}: {exc.strerror or exc}",
                          hint="ask your gatekeeper admin for a copy of the server's policy") from exc
    problems: list[Problem] = []
    yaml_problems: list[YamlProblem] = []
    try:
        doc = load_yaml(data, yaml_problems)
    except YamlProblem as exc:
        raise ConfigError(f"invalid policy {shown}", problems=[f"{shown}:{exc.line}: {exc.message}"]) from exc
    problems.extend(Problem(shown, p.line, p.message) for p in yaml_problems)
    checker = _ClientChecker(shown, Path(os.path.abspath(path)).parent, problems)
    policy = checker.check(doc, Path(os.path.abspath(path)), hashlib.sha256(data).hexdigest(), deep=False)
    errors = [p for p in problems if p.is_error]
    if errors or policy is None:
        raise ConfigError(f"invalid policy {shown}", problems=[str(p) for p in errors])
    return policy
