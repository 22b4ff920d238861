"""What post-receive needs from the policy, remembered per policy digest so it need not load the policy again.

post-receive only appends the outcome record: it needs the repository id, the platform and the audit log's target
(log, signing key, origin) and nothing else the policy compiles (rules, patterns, detectors, trust). Loading the whole
policy (YAML, pathspec, ~90 regular expressions, the validation) was most of its cost. Whenever a hook has loaded and
validated the policy, it stores those five values here; the next post-receive reads them back instead.

How an entry is keyed, authenticated and permission-checked is :mod:`gatekeeper.policy.digest_cache`; the policy file
is read and hashed on every recall, and any doubt is a miss (the full policy load). Nothing here raises.
"""

from __future__ import annotations

import os
from pathlib import Path

from gatekeeper.policy import digest_cache
from gatekeeper.policy.digest_cache import cache_dir_for

__all__ = ["AuditTarget", "OutcomeSettings", "cache_dir_for", "recall", "remember", "settings_of"]

KIND = "outcome"
_MAX_ENTRY_BYTES = 64 * 1024


class AuditTarget:
    """Where outcome records go: the same three attributes as the policy's ``audit`` section."""

    __slots__ = ("log", "signing_key", "origin")

    def __init__(self, log: Path, signing_key: Path, origin: str | None) -> None:
        self.log, self.signing_key, self.origin = log, signing_key, origin


class OutcomeSettings:
    """The part of a validated policy post-receive uses (``repository``, ``platform``, ``audit``), by the same names."""

    __slots__ = ("repository", "platform", "audit")

    def __init__(self, repository: str | None, platform: str, audit: AuditTarget) -> None:
        self.repository, self.platform, self.audit = repository, platform, audit

    def to_json(self) -> dict[str, object]:
        return {"repository": self.repository, "platform": self.platform, "audit_log": str(self.audit.log),
                "signing_key": str(self.audit.signing_key), "origin": self.audit.origin}

    @classmethod
    def from_json(cls, data: object) -> OutcomeSettings | None:
        if not isinstance(data, dict) or set(data) != {"repository", "platform", "audit_log", "signing_key", "origin"}:
            return None
        repository, platform, log, key, origin = (data["repository"], data["platform"], data["audit_log"],
                                                  data["signing_key"], data["origin"])
        if not (_optional_str(repository) and _optional_str(origin) and type(platform) is str
                and _absolute(log) and _absolute(key)):
            return None
        return cls(repository, platform, AuditTarget(Path(log), Path(key), origin))


def settings_of(policy: object) -> OutcomeSettings:
    """The settings of a loaded, validated :class:`~gatekeeper.policy.config.Policy`."""
    audit = policy.audit  # type: ignore[attr-defined]
    return OutcomeSettings(policy.repository, policy.platform,  # type: ignore[attr-defined]
                           AuditTarget(Path(os.path.abspath(audit.log)), Path(os.path.abspath(audit.signing_key)),
                                       audit.origin))


def recall(config: Path, cache_dir: Path | None) -> OutcomeSettings | None:
    """The settings stored for the policy file as it is now, or None (no entry, or any doubt about it)."""
    if cache_dir is None:
        return None
    try:
        digest = digest_cache.policy_digest(config)
    except (OSError, ValueError):
        return None
    return OutcomeSettings.from_json(digest_cache.recall(cache_dir, KIND, config, digest, max_bytes=_MAX_ENTRY_BYTES))


def remember(config: Path, policy_sha256: str, settings: OutcomeSettings, cache_dir: Path | None) -> None:
    """Store the settings of the policy whose bytes hash to ``policy_sha256`` (the loader's own digest). Best effort:
    a failure only means the next post-receive loads the policy in full."""
    digest_cache.remember(cache_dir, KIND, config, policy_sha256, settings.to_json())


def _optional_str(value: object) -> bool:
    return value is None or type(value) is str


def _absolute(value: object) -> bool:
    return type(value) is str and os.path.isabs(value) and "\0" not in value
