"""End to end: real pushes through the installed hooks (this checkout's code), real ssh-keygen approvals, then the
auditor's commands on the real log: break-glass until reviewed, an approved push that re-verifies offline, and a
hand-forged allow (properly chained through AuditLog) that ``verify --approvals`` flags."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import secrets
from pathlib import Path
from typing import Any

import pytest
from gitserver import Clone, Server, run_git, seed_content

from approvals.approvals_testlib import Trust, approve, as_person, gatekeeper, use_this_checkout
from gatekeeper.approvals.statement import parse_statement
from gatekeeper.audit.log import AuditLog
from gatekeeper.push.hook import audit_origin

from .semlib import evidence


@pytest.fixture
def srv(tmp_path: Path, clean_env: Path, sem_keys: dict[str, Path]) -> Server:
    server = Server(tmp_path / "srv")
    seed_content(server.clone("seeder"))
    server.write_policy()
    server.install()
    post = (server.bare / "hooks" / "post-receive").read_text()
    use_this_checkout(server)  # pre-receive runs this checkout; it drops post-receive, which we keep (outcomes)
    wrapper = server.root / "python-this-checkout"
    (server.bare / "hooks" / "post-receive").write_text(
        re.sub(r"(?m)^GATEKEEPER_PYTHON=.*$", f"GATEKEEPER_PYTHON={wrapper}", post))
    (server.bare / "hooks" / "post-receive").chmod(0o755)
    trust = Trust(server)
    for person, key in sem_keys.items():
        trust.add(person, key)
    return server


def audit(srv: Server, *args: str) -> tuple[int, str]:
    proc = gatekeeper("audit", *args, cwd=srv.root)
    assert "Traceback" not in proc.stderr, proc.stderr
    if os.environ.get("AUDITSEM_SHOW"):  # pragma: no cover -- for a human reading the commands' output
        print(f"$ gatekeeper audit {' '.join(args)}\n{proc.stdout}{proc.stderr}")
    return proc.returncode, proc.stdout + proc.stderr


def unreviewed(srv: Server) -> list[int]:
    code, out = audit(srv, "query", "--log", str(srv.log), "--break-glass", "--unreviewed", "--format", "json")
    assert code == 0, out
    return [json.loads(line)["seq"] for line in out.splitlines() if line.startswith("{")]


def change_model(srv: Server, who: str, text: str) -> Clone:
    c = srv.clone(who)
    as_person(c, who)
    c.write("models/llama/modeling.py", text)
    c.commit("emergency fix", author=who)
    return c


def test_break_glass_listed_until_approved_after_the_fact(srv: Server, sem_keys: dict[str, Path]) -> None:
    dave = change_model(srv, "dave", "class Llama:\n    hotfix = True\n")
    old = srv.ref("refs/heads/main")
    result = dave.push(options=["gatekeeper.break-glass=prod is down"], env={"REMOTE_USER": "dave"})
    assert result.ok, result.output
    record = srv.records()[-2]  # the decision, then post-receive's outcome
    assert record["event"]["decision"] == "break-glass"  # type: ignore[index]
    assert unreviewed(srv) == [record["seq"]]

    alice = srv.clone("alice")
    as_person(alice, "alice")
    approve(alice, "origin/main", sem_keys["alice"], "alice", "--base", str(old))
    approval: Any = srv.decisions()[-1]
    (upd,) = approval["updates"]
    assert upd["ref"].startswith("refs/gatekeeper/approvals/alice/")
    assert upd["approval"]["person"] == "alice" and upd["approval"]["commit"] == upd["new"]
    assert json.loads(upd["approval"]["statement"])["head"] == dave.head()
    assert unreviewed(srv) == []
    code, out = audit(srv, "query", "--log", str(srv.log), "--break-glass", "--format", "json")
    assert code == 0 and [json.loads(line)["seq"] for line in out.splitlines()] == [record["seq"]]

    code, out = audit(srv, "verify", "--config", str(srv.config), "--approvals")
    assert code == 0, out
    assert f"seq {record['seq']} " in out and "by dave reason 'prod is down': reviewed by alice (seq" in out


def test_break_glass_self_approval_does_not_review(srv: Server, sem_keys: dict[str, Path]) -> None:
    dave = change_model(srv, "dave", "class Llama:\n    hotfix = 2\n")
    old = srv.ref("refs/heads/main")
    assert dave.push(options=["gatekeeper.break-glass=again"], env={"REMOTE_USER": "dave"}).ok
    seq = srv.records()[-2]["seq"]
    # dave is trusted, but he pushed it; and he reviews nothing under the policy, so the server does not even store it.
    refused = approve(dave, "HEAD", sem_keys["dave"], "dave", "--base", str(old), ok=False)
    assert "dave may not review anything under this policy" in refused.stderr
    assert unreviewed(srv) == [seq]
    code, out = audit(srv, "verify", "--config", str(srv.config), "--approvals")
    assert code == 0, out  # break-glass is justified by itself; the missing review is a warning
    assert f"warning: [break-glass-unreviewed] seq {seq}: break-glass by dave ('again') on refs/heads/main has no " \
           "approval recorded after the fact" in out
    code, out = audit(srv, "verify", "--config", str(srv.config), "--approvals", "--strict")
    assert code == 1


def test_approved_push_reverifies_and_a_forged_allow_is_flagged(srv: Server, sem_keys: dict[str, Path]) -> None:
    dave = change_model(srv, "dave", "class Llama:\n    layers = 64\n")

    run_git("fetch", "-q", str(dave.path), "HEAD:refs/heads/feature", cwd=srv.bare)
    alice = srv.clone("alice")
    as_person(alice, "alice")
    approve(alice, "origin/feature", sem_keys["alice"], "alice")
    result = dave.push(env={"REMOTE_USER": "dave"})
    assert result.ok, result.output
    allow = srv.records()[-2]
    event = allow["event"]
    assert event["decision"] == "allow"  # type: ignore[index]
    used = event["updates"][0]["approvals"]  # type: ignore[index]
    assert [(u["person"], u["rule"]) for u in used] == [("alice", "model-code")]

    code, out = audit(srv, "verify", "--config", str(srv.config), "--approvals")
    assert code == 0, out
    assert out.splitlines()[0].startswith("OK: ")
    assert "APPROVALS OK: 2 allow(s) re-verified" in out  # the approval ref push and the approved push

    # A forged allow: dave's own approval (validly signed by his trusted key) in place of alice's, appended through
    # the real writer, so chain, Merkle root and checkpoint are all fine.
    real = parse_statement(used[0]["statement"].encode("ascii"))
    mine = dataclasses.replace(real, approver="dave", nonce=secrets.token_hex(16))
    forged = json.loads(json.dumps(event))
    forged["updates"][0]["approvals"] = [evidence(mine, sem_keys["dave"])]
    forged["push_id"] = "forged"
    key = srv.log.parent / "audit-signing.key"
    record = AuditLog(srv.log, signing_key=key if key.exists() else None, origin=audit_origin()).append(forged)

    code, out = audit(srv, "verify", "--config", str(srv.config), "--approvals")
    assert code == 1, out
    lines = out.splitlines()
    assert lines[0].startswith("OK: ")  # the log itself is intact
    seq = record["seq"]
    assert f"APPROVALS FAIL: 2 error(s) in 1 record(s): seq {seq}" in lines
    assert f"error: [bad-approval] seq {seq}: refs/heads/main: approval by dave does not count: is the pusher" in lines
    assert (f"error: [unjustified] seq {seq}: refs/heads/main: rule model-code needs 1 approval(s), 0 re-verified "
            "(none)") in lines
    code, out = audit(srv, "verify", "--config", str(srv.config), "--approvals", "--format", "json")
    doc = json.loads(out[: out.rindex("}") + 1])
    assert code == 1 and doc["ok"] is True and doc["approvals"]["ok"] is False
    assert {e["seq"] for e in doc["approvals"]["errors"]} == {seq}
