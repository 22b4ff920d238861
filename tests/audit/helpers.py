"""Helpers for the audit tests: a signing key, a log writer, hook-shaped events and line tampering."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from gatekeeper.audit import canonical
from gatekeeper.audit.keys import generate_signing_key
from gatekeeper.audit.log import AuditLog
from gatekeeper.audit.merkle import leaf_hash

ORIGIN = "git.test.example/audit"


def decision(i: int = 0, *, user: str = "alice", repo: str = "ml/llama", decision: str = "allow",
             ref: str = "refs/heads/main", paths: tuple[str, ...] = ("models/x.py",)) -> dict[str, object]:
    """A push.decision event shaped like the hook's."""
    return {
        "type": "push.decision", "push_id": f"00000000-0000-4000-8000-{i:012d}", "repo": repo, "protocol": "ssh",
        "pusher": {"user": user, "source": "gitlab:GL_USERNAME", "deploy_key": False},
        "mode": "enforce", "decision": decision, "blocked": decision == "deny",
        "reasons": [] if decision == "allow" else ["rule model-code needs 1 approval"],
        "updates": [{"ref": ref, "old": "1" * 40, "new": "2" * 40, "kind": "fast-forward", "protected": True,
                     "decision": "allow" if decision == "allow" else "deny", "rules": ["model-code"],
                     "paths": list(paths), "paths_total": len(paths), "reasons": []}],
        "config_sha256": "c" * 64, "gate_version": "0.1.0",
    }


def outcome(*, user: str = "alice", repo: str = "ml/llama", ref: str = "refs/heads/main") -> dict[str, object]:
    return {"type": "push.outcome", "push_id": None, "repo": repo,
            "pusher": {"user": user, "source": "gitlab:GL_USERNAME", "deploy_key": False},
            "updates": [{"ref": ref, "old": "1" * 40, "new": "2" * 40}]}


@dataclass
class Env:
    dir: Path
    key: Path
    vkey: str
    log_path: Path

    def writer(self, **kwargs: object) -> AuditLog:
        return AuditLog(self.log_path, signing_key=self.key, origin=ORIGIN, **kwargs)  # type: ignore[arg-type]

    def fill(self, n: int) -> AuditLog:
        log = self.writer()
        for i in range(n):
            log.append(decision(i) if i % 3 else outcome())
        return log

    @property
    def checkpoint(self) -> Path:
        return self.log_path.with_name(self.log_path.name + ".checkpoint")

    @property
    def state(self) -> Path:
        return self.log_path.with_name(self.log_path.name + ".state.json")

    def lines(self) -> list[bytes]:
        return self.log_path.read_bytes().splitlines(keepends=True)

    def write_lines(self, lines: list[bytes]) -> None:
        self.log_path.write_bytes(b"".join(lines))


def make_env(tmp_path: Path) -> Env:
    key = tmp_path / "audit-signing.key"
    vkey = generate_signing_key(key, name=ORIGIN)
    return Env(tmp_path, key, vkey, tmp_path / "audit.jsonl")


def rechain(lines: list[bytes], start: int) -> list[bytes]:
    """Recompute seq and prev from ``start`` on, as an attacker without the signing key can."""
    out = lines[:start]
    prev = leaf_hash(out[-1].rstrip(b"\n")).hex() if out else "0" * 64
    for seq, line in enumerate(lines[start:], start):
        rec = json.loads(line)
        rec["seq"], rec["prev"] = seq, prev
        body = canonical.encode(rec)
        prev = leaf_hash(body).hex()
        out.append(body + b"\n")
    return out
