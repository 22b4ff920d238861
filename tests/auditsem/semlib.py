"""Helpers for the semantic audit tests: a policy with real ssh-keygen keys in its trust store, statements signed by
``gatekeeper.approvals.sign``, and hook-shaped records written through the real :class:`AuditLog`."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from gitserver import DEFAULT_POLICY

from gatekeeper.approvals.sign import sign
from gatekeeper.approvals.statement import Statement, format_time
from gatekeeper.approvals.store import approval_ref
from gatekeeper.audit.log import AuditLog
from gatekeeper.model import MODE_BLOB, Change
from gatekeeper.policy.config import DEFAULT_NAMESPACE

REPOSITORY = "ml/llama-train"
OLD = "1" * 40
NEW = "2" * 40
MODEL_PATH = "models/llama/modeling.py"


def model_change(path: str = MODEL_PATH) -> Change:
    return Change(path.encode(), MODE_BLOB, "a" * 40, MODE_BLOB, "b" * 40)


def statement(person: str, *, ref: str = "refs/heads/main", head: str = NEW, base: str = OLD,
              repository: str = REPOSITORY, changes: tuple[Change, ...] = (), created: datetime | None = None,
              expires_in: timedelta = timedelta(days=1)) -> Statement:
    created = (created or datetime.now(timezone.utc) - timedelta(minutes=1)).replace(microsecond=0)
    return Statement(repository=repository, ref=ref, approver=person, base=base, head=head, created=created,
                     expires=created + expires_in, nonce=secrets.token_hex(16), note="",
                     changes=changes or (model_change(),))


def evidence(st: Statement, key: Path, *, rule: str | None = "model-code", namespace: str = DEFAULT_NAMESPACE,
             edit: object = None) -> dict[str, object]:
    """The evidence the hook records for a used approval (approvals/evaluate.py check_signature), signed for real."""
    data = st.to_bytes()
    signature = sign(data, key=str(key), namespace=namespace)
    if edit is not None:
        data = edit(data)  # type: ignore[operator]
    ev: dict[str, object] = {
        "ref": approval_ref(st.approver, st.nonce), "commit": "3" * 40, "person": st.approver,
        "key_fingerprint": "SHA256:test", "key_type": "ssh-ed25519",
        "statement_sha256": hashlib.sha256(data).hexdigest(), "signature": signature.decode("ascii"),
        "created": format_time(st.created), "expires": format_time(st.expires), "nonce": st.nonce,
        "statement": data.decode("ascii"),
    }
    if rule is not None:
        ev["rule"] = rule
    return ev


def update(*, ref: str = "refs/heads/main", old: str = OLD, new: str = NEW, decision: str = "allow",
           rules: tuple[str, ...] = ("model-code",), paths: tuple[str, ...] = (MODEL_PATH,),
           approvals: list[dict[str, object]] | None = None, kind: str = "fast-forward",
           protected: bool = True) -> dict[str, object]:
    entry: dict[str, object] = {
        "ref": ref, "old": old, "new": new, "kind": kind, "protected": protected, "decision": decision,
        "rules": list(rules), "paths": list(paths), "paths_total": len(paths), "reasons": [],
    }
    if approvals:
        entry["approvals"] = approvals
    return entry


@dataclass
class Setup:
    """A policy (DEFAULT_POLICY) whose trust store holds real keys, and its audit log."""

    etc: Path
    keys: dict[str, Path]
    config: Path = field(init=False)
    signers: Path = field(init=False)
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.config = self.etc / "policy.yaml"
        self.signers = self.etc / "allowed_signers"
        self.log_path = self.etc / "audit" / "audit.jsonl"
        (self.etc / "audit").mkdir(parents=True, exist_ok=True)
        self.write_signers()
        self.config.write_text(DEFAULT_POLICY.format(mode="enforce"))

    def write_signers(self, options: dict[str, str] | None = None) -> None:
        lines = []
        for person, key in self.keys.items():
            opts = f'namespaces="{DEFAULT_NAMESPACE}"' + ("," + options[person] if options and person in options
                                                          else "")
            lines.append(f"{person} {opts} {key.with_name(key.name + '.pub').read_text().strip()}\n")
        self.signers.write_text("".join(lines))

    @property
    def config_sha256(self) -> str:
        return hashlib.sha256(self.config.read_bytes()).hexdigest()

    @property
    def trust_sha256(self) -> str:
        return hashlib.sha256(self.signers.read_bytes()).hexdigest()

    def log(self) -> AuditLog:
        return AuditLog(self.log_path, signing_key=None, origin="test/gatekeeper")

    def decision(self, *updates: dict[str, object], pusher: str = "dave", decision: str = "allow",
                 blocked: bool | None = None, break_glass: dict[str, str] | None = None,
                 trust: bool = True, repo: str = REPOSITORY) -> dict[str, object]:
        event: dict[str, object] = {
            "type": "push.decision", "push_id": secrets.token_hex(8), "gate_version": "0.1.0", "repo": repo,
            "pusher": {"user": pusher, "source": "REMOTE_USER", "deploy_key": False}, "protocol": "file",
            "config_sha256": self.config_sha256, "mode": "enforce", "decision": decision,
            "blocked": (decision in ("deny", "error")) if blocked is None else blocked,
            "reasons": [], "updates": list(updates) or [update()],
        }
        if trust:
            event["trust_store_sha256"] = self.trust_sha256
        if break_glass is not None:
            event["break_glass"] = break_glass
        return event

    @staticmethod
    def outcome(*updates: dict[str, object], repo: str = REPOSITORY, pusher: str = "dave") -> dict[str, object]:
        return {"type": "push.outcome", "push_id": None, "gate_version": "0.1.0", "repo": repo,
                "pusher": {"user": pusher, "source": "REMOTE_USER", "deploy_key": False},
                "updates": [{"ref": u["ref"], "old": u["old"], "new": u["new"]} for u in updates] or
                           [{"ref": "refs/heads/main", "old": OLD, "new": NEW}]}

    def append(self, *events: dict[str, object]) -> list[int]:
        log = self.log()
        return [int(log.append(e)["seq"]) for e in events]  # type: ignore[call-overload]


BG = {"by": "dave", "reason": "prod is down"}
ANOTHER = "4" * 40


def break_glass(setup: Setup, *updates: dict[str, object]) -> dict[str, object]:
    return setup.decision(*(updates or (update(decision="deny"),)), decision="break-glass", blocked=False,
                          break_glass=BG)


def approval_push(setup: Setup, person: str, *, head: str = NEW, ref: str = "refs/heads/main",
                  blocked: bool = False, pusher: str | None = None, repository: str = REPOSITORY,
                  edit: object = None) -> dict[str, object]:
    """The record of a push that created an approval ref (the hook adds ``approval`` evidence to its update)."""
    st = statement(person, head=head, ref=ref, repository=repository)
    ev = evidence(st, setup.keys[person], rule=None, edit=edit)
    upd = update(ref=str(ev["ref"]), old="0" * 40, new=str(ev["commit"]), protected=False, rules=(), paths=())
    upd["approval"] = ev
    return setup.decision(upd, pusher=pusher or person, decision="deny" if blocked else "allow", blocked=blocked)
