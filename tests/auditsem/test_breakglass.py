"""Break-glass review tracking over hand-built logs, and the ``audit query --break-glass [--unreviewed]`` CLI."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

from gitserver import REPO_ROOT

from gatekeeper.audit.breakglass import track_break_glass
from gatekeeper.audit.query import query
from gatekeeper.policy.config import load_policy

from .semlib import ANOTHER, OLD, Setup, approval_push, break_glass, evidence, statement, update

def statuses(setup: Setup, with_policy: bool = False) -> list[tuple[int | None, bool, tuple[str, ...]]]:
    policy = load_policy(setup.config) if with_policy else None
    return [(s.seq, s.reviewed, s.unreviewed_refs)
            for s in track_break_glass(query(setup.log_path, index=False), policy=policy)]


def test_reviewed_by_a_later_approval_of_the_landed_head(setup: Setup) -> None:
    (bg,) = setup.append(break_glass(setup))
    assert statuses(setup) == [(bg, False, ("refs/heads/main",))]
    setup.append(approval_push(setup, "alice"))
    assert statuses(setup) == [(bg, True, ())]
    (s,) = track_break_glass(query(setup.log_path, index=False))
    assert [(r.seq, r.person, r.ref) for r in s.reviews] == [(bg + 1, "alice", "refs/heads/main")]


def test_what_does_not_review(setup: Setup) -> None:
    (bg,) = setup.append(
        approval_push(setup, "alice"),  # before the break-glass: not after the fact
        break_glass(setup),
    )[1:]
    setup.append(
        approval_push(setup, "dave"),  # the break-glass pusher himself
        approval_push(setup, "alice", head=ANOTHER),  # another commit
        approval_push(setup, "alice", ref="refs/heads/other"),  # another ref
        approval_push(setup, "alice", repository="ml/other"),  # another repository
        approval_push(setup, "bob", blocked=True),  # the approval push was refused: nothing was stored
    )
    assert statuses(setup) == [(bg, False, ("refs/heads/main",))]


def test_an_empty_change_set_reviews_nothing(setup: Setup) -> None:
    from .semlib import NEW, statement

    st = statement("alice", base=NEW, head=NEW)
    st = dataclasses.replace(st, changes=())
    ev = evidence(st, setup.keys["alice"], rule=None)
    push = approval_push(setup, "alice")
    push["updates"][0]["approval"] = ev  # type: ignore[index]
    (bg,) = setup.append(break_glass(setup), push)[:1]
    assert statuses(setup) == [(bg, False, ("refs/heads/main",))]


def test_a_ref_pattern_statement_covers_the_ref(setup: Setup) -> None:
    setup.append(break_glass(setup), approval_push(setup, "bob", ref="refs/heads/**"))
    assert statuses(setup)[0][1] is True


def test_only_updates_the_gate_would_have_denied_need_review(setup: Setup) -> None:
    allowed = update(ref="refs/heads/feature", protected=False, rules=(), paths=(), old=OLD, new=ANOTHER)
    (bg,) = setup.append(break_glass(setup, update(decision="deny"), allowed))
    assert statuses(setup) == [(bg, False, ("refs/heads/main",))]


def test_with_the_policy_the_approver_must_be_eligible_and_enough(setup: Setup) -> None:
    (bg,) = setup.append(break_glass(setup, update(decision="deny", rules=("model-code", "training-configs"),
                                                   paths=("models/llama/modeling.py", "configs/train.yaml"))))
    setup.append(approval_push(setup, "carol"))  # infra: training-configs only
    assert statuses(setup) == [(bg, True, ())]  # without a policy one approval by someone else is enough
    assert statuses(setup, with_policy=True) == [(bg, False, ("refs/heads/main",))]
    setup.append(approval_push(setup, "alice"))  # ml-leads: both rules
    assert statuses(setup, with_policy=True) == [(bg, True, ())]


def gk(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT)
    return subprocess.run([sys.executable, "-m", "gatekeeper", *args], env=env, capture_output=True, text=True,
                          check=False)


def test_cli_break_glass_and_unreviewed(setup: Setup) -> None:
    first, second = setup.append(break_glass(setup), break_glass(setup, update(decision="deny", new=ANOTHER)))
    setup.append(setup.decision(update(approvals=[evidence(statement("alice"), setup.keys["alice"])])))
    log = str(setup.log_path)
    every = gk("audit", "query", "--log", log, "--break-glass", "--format", "json")
    assert every.returncode == 0, every.stderr
    assert [json.loads(line)["seq"] for line in every.stdout.splitlines()] == [first, second]
    setup.append(approval_push(setup, "bob"))  # reviews the first one
    open_ = gk("audit", "query", "--log", log, "--break-glass", "--unreviewed", "--format", "json")
    assert open_.returncode == 0, open_.stderr
    assert [json.loads(line)["seq"] for line in open_.stdout.splitlines()] == [second]
    table = gk("audit", "query", "--config", str(setup.config), "--unreviewed")
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[0].split() == ["SEQ", "TS", "TYPE", "REPO", "PUSHER", "DECISION", "REFS",
                                                    "PATHS"]
    assert len(table.stdout.splitlines()) == 2 and "break-glass" in table.stdout
    assert table.stderr.strip() == "(1 record)"
    clash = gk("audit", "query", "--log", log, "--break-glass", "--decision", "allow")
    assert clash.returncode == 2  # contradicting options are a usage error (issue 11)
    assert "gatekeeper audit: error: --break-glass contradicts --decision allow" in clash.stderr
    since = gk("audit", "query", "--log", log, "--unreviewed", "--since", "2999-01-01", "--format", "json")
    assert since.returncode == 0 and since.stdout == ""
