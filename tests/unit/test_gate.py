"""The gate is pure: typed inputs in, a decision out. Tested here without git."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass, field

from gatekeeper.push.analysis import RefAnalysis
from gatekeeper.push.gate import HISTORY_RULE, ApprovalResult, Requirement, decide
from gatekeeper.push.messages import render_decision
from gatekeeper.model import MODE_ABSENT, MODE_BLOB, Change, Identity, ObjectId, RefUpdate, UpdateKind

Z = "0" * 40


@dataclass(frozen=True)
class FakeRule:
    name: str
    paths: tuple[str, ...]
    approvals: int
    reviewers: tuple[str, ...]


@dataclass
class FakePolicy:
    rules: list[FakeRule]
    groups: dict[str, tuple[str, ...]]
    mode: str = "enforce"
    break_glass: tuple[str, ...] = ("admins",)
    calls: list[bytes] = field(default_factory=list)

    def rules_for(self, path: bytes) -> list[FakeRule]:
        self.calls.append(path)
        return [r for r in self.rules if any(fnmatch.fnmatch(path.decode(), p) for p in r.paths)]

    def rules_for_paths(self, paths: Iterable[bytes]) -> dict[bytes, list[FakeRule]]:
        return {path: self.rules_for(path) for path in dict.fromkeys(paths)}

    def members(self, names: Iterable[str]) -> frozenset[str]:
        out: set[str] = set()
        for n in names:
            out |= set(self.groups.get(n, (n,)))
        return frozenset(out)

    def may_break_glass(self, person: str) -> bool:
        return person in self.members(self.break_glass)

    def person_for_account(self, account: str) -> str | None:
        # Logins differ from person names: "dave-gl" is dave's account; "dave" is an unmapped login.
        return {"dave-gl": "dave", "carol": "carol", "alice": "alice", "bob": "bob"}.get(account)


POLICY = FakePolicy(
    rules=[FakeRule("model-code", ("models/*",), 1, ("ml-leads",)),
           FakeRule("strict", ("models/core/*",), 2, ("ml-leads",))],
    groups={"ml-leads": ("alice", "bob"), "admins": ("dave",)},
)
CAROL = Identity("carol", "test")


def change(path: str) -> Change:
    return Change(path.encode(), MODE_BLOB, "1" * 40, MODE_BLOB, "2" * 40)


def analysis(*paths: str, kind: UpdateKind = UpdateKind.FAST_FORWARD, protected: bool = True,
             ref: str = "refs/heads/main") -> RefAnalysis:
    return RefAnalysis(RefUpdate(ObjectId("a" * 40), ObjectId("b" * 40), ref), kind, protected, None, "",
                       None, tuple(change(p) for p in paths))


class Approve:
    def __init__(self, *people: str) -> None:
        self.people = frozenset(people)

    def evaluate(self, requirement: Requirement, analysis: RefAnalysis) -> ApprovalResult:
        return ApprovalResult(approvers=self.people & requirement.reviewers)


def test_unprotected_ref_and_unprotected_paths_are_allowed() -> None:
    d = decide(POLICY, [analysis("models/x.py", protected=False), analysis("src/a.py")], pusher=CAROL)
    assert d.verdict == "allow" and not d.blocked


def test_all_matching_rules_must_hold_a_loose_rule_never_overrides_a_strict_one() -> None:
    a = analysis("models/core/x")
    assert decide(POLICY, [a], pusher=CAROL, approvals=Approve("alice")).verdict == "deny"
    assert decide(POLICY, [a], pusher=CAROL, approvals=Approve("alice", "bob")).verdict == "allow"
    d = decide(POLICY, [a], pusher=CAROL, approvals=Approve("alice"))
    outcomes = {o.requirement.rule: o.satisfied for o in d.refs[0].outcomes}
    assert outcomes == {"model-code": True, "strict": False}


def test_one_denied_ref_blocks_the_whole_push() -> None:
    d = decide(POLICY, [analysis("src/ok"), analysis("models/x", ref="refs/heads/release/1")], pusher=CAROL)
    assert d.verdict == "deny" and d.blocked
    assert [r.allowed for r in d.refs] == [True, False]


def test_delete_and_force_need_the_history_requirement() -> None:
    for kind in (UpdateKind.DELETE, UpdateKind.FORCE):
        d = decide(POLICY, [analysis(kind=kind)], pusher=CAROL)
        assert d.verdict == "deny"
        req = d.refs[0].outcomes[0].requirement
        assert req.rule == HISTORY_RULE and req.approvals == 2 and req.reviewers == {"alice", "bob"}


def test_noop_is_allowed() -> None:
    assert decide(POLICY, [analysis("models/x", kind=UpdateKind.NOOP)], pusher=CAROL).verdict == "allow"


def test_monitor_mode_decides_but_never_blocks() -> None:
    monitor = FakePolicy(POLICY.rules, POLICY.groups, mode="monitor")
    d = decide(monitor, [analysis("models/x")], pusher=CAROL)
    assert d.verdict == "deny" and not d.blocked


def test_break_glass_only_for_listed_people_with_a_reason_never_deploy_keys() -> None:
    a = [analysis("models/x")]
    assert decide(POLICY, a, pusher=Identity("dave-gl", "t"), break_glass_reason="outage").verdict == "break-glass"
    assert decide(POLICY, a, pusher=Identity("dave", "t"), break_glass_reason="outage").verdict == "deny"
    assert decide(POLICY, a, pusher=Identity("dave-gl", "t"), break_glass_reason=" ").verdict == "deny"
    assert decide(POLICY, a, pusher=CAROL, break_glass_reason="outage").verdict == "deny"
    assert decide(POLICY, a, pusher=Identity("dave-gl", "t", is_deploy_key=True),
                  break_glass_reason="x").verdict == "deny"


def test_rules_are_evaluated_once_per_path() -> None:
    policy = FakePolicy(POLICY.rules, POLICY.groups)
    decide(policy, [analysis(*[f"models/{i}" for i in range(50)])], pusher=CAROL)
    assert len(policy.calls) == 50


def test_message_names_rule_paths_count_people_and_command() -> None:
    d = decide(POLICY, [analysis(*[f"models/f{i}.py" for i in range(8)])], pusher=CAROL)
    text = "\n".join(render_decision(d, audit_seq=7, pusher="carol"))
    assert "push REFUSED (audit record #7)" in text
    assert "rule model-code needs 1 approval from ml-leads" in text
    assert "modified models/f0.py" in text and "... and 3 more protected paths" in text
    assert "next: ask alice or bob" in text
    # The refused commit is not on the server: the message first has it published on an unprotected review ref.
    assert "you:      git push origin bbbbbbbbbbbb:refs/heads/review/bbbbbbbbbbbb" in text
    assert ("reviewer: git fetch origin refs/heads/review/bbbbbbbbbbbb && gatekeeper approve FETCH_HEAD "
            "--ref refs/heads/main") in text
    protected = "\n".join(render_decision(d, audit_seq=7, pusher="carol", is_protected=lambda r: "heads" in r))
    assert "you:      git push origin bbbbbbbbbbbb:refs/review/bbbbbbbbbbbb" in protected


def test_added_and_deleted_statuses() -> None:
    a = RefAnalysis(RefUpdate(ObjectId("a" * 40), ObjectId("b" * 40), "refs/heads/main"), UpdateKind.FAST_FORWARD,
                    True, None, "", None,
                    (Change(b"models/new", MODE_ABSENT, Z, MODE_BLOB, "1" * 40),
                     Change(b"models/old", MODE_BLOB, "1" * 40, MODE_ABSENT, Z)))
    text = "\n".join(render_decision(decide(POLICY, [a], pusher=CAROL), audit_seq=None, pusher="carol"))
    assert "added    models/new" in text and "deleted  models/old" in text
