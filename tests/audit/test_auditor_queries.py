"""Issue 12.5 and the outcome pairing of 8.8: auditor filters on query and export, untruncated CSV, monitor-mode
labels (a real push in monitor mode), and outcome records that carry their decision's push_id (real pushes with the
post-receive hook)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from gitserver import REPO_ROOT, Server, seed_content

from gatekeeper.audit.query import Filters

from .helpers import Env, decision


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gatekeeper", "audit", *args], capture_output=True, text=True,
                          cwd=REPO_ROOT, check=False)


def _approved(i: int, person: str, rule: str) -> dict[str, object]:
    event = decision(i, paths=tuple(f"models/m{i}/f{k}.py" for k in range(1500)))
    upd = event["updates"][0]  # type: ignore[index]
    upd["rules"] = [rule]
    upd["approvals"] = [{"person": person, "rule": rule}]
    upd["paths_total"] = 1500
    return event


def test_filters_on_query_and_export(env: Env, tmp_path: Path) -> None:
    w = env.writer()
    w.append(_approved(0, "bob", "model-code"))
    w.append(_approved(1, "carol", "training-configs"))
    w.append(decision(2, decision="break-glass"))
    log = str(env.log_path)
    for index in ("", "--no-index"):
        args = [a for a in (index,) if a]
        out = cli("query", "--log", log, "--approver", "bob", "--format", "json", *args).stdout
        assert [json.loads(line)["seq"] for line in out.splitlines()] == [0]
        out = cli("query", "--log", log, "--rule", "training-configs", "--format", "json", *args).stdout
        assert [json.loads(line)["seq"] for line in out.splitlines()] == [1]
        out = cli("query", "--log", log, "--break-glass", "--format", "json", *args).stdout
        assert [json.loads(line)["seq"] for line in out.splitlines()] == [2]
        out = cli("query", "--log", log, "--since", "2000-01-01", "--until", "2000-01-02", *args).stderr
        assert out == "(0 records)\n"
    rows = list(csv.reader(io.StringIO(cli("query", "--log", log, "--approver", "carol", "--format", "csv").stdout)))
    assert len(rows[1][-1].split("\n")) == 1500 and rows[1][-2] == "1500"  # every recorded path, no "+N more"
    assert rows[1][rows[0].index("approvers")] == "carol"

    dest = tmp_path / "evidence"
    proc = cli("export", "--log", log, "--out", str(dest), "--rule", "model-code")
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((dest / "MANIFEST.json").read_text())
    assert manifest["selection"] == {"filters": {"rule": "model-code"}, "records": 2}  # seq 0 and 2 (helper's rule)
    full = (dest / "audit.jsonl").read_bytes().splitlines()
    for line in (dest / "selection.jsonl").read_bytes().splitlines():
        assert line in full  # byte-identical to its line in the (verifiable) log
    assert len(list(csv.reader(io.StringIO((dest / "selection.csv").read_text())))) == 3
    assert cli("verify", "--log", str(dest / "audit.jsonl"), "--vkey", env.vkey).returncode == 0


def test_filters_describe_round_trips_for_other_backends() -> None:
    flt = Filters.build(approver="bob", rule="r", break_glass=True, since="2026-01-01", path="models/**")
    assert flt.describe() == {"approver": "bob", "rule": "r", "break_glass": True,
                              "since": "2026-01-01T00:00:00.000000Z", "path": "models/**"}
    assert Filters.build(**{k: v for k, v in flt.describe().items() if k != "since"}, since="2026-01-01") == flt


def test_monitor_push_reads_would_deny_allowed(tmp_path: Path) -> None:
    srv = Server(tmp_path / "srv")
    seed_content(srv.clone("seeder"))
    srv.write_policy(mode="monitor")
    srv.install()
    clone = srv.clone("mallory")
    clone.write("models/llama/modeling.py", "class Llama:\n    changed = True\n")
    clone.commit()
    assert clone.push().ok  # monitor mode never blocks
    out = cli("query", "--log", str(srv.log), "--type", "push.decision", "--format", "csv").stdout
    row = list(csv.reader(io.StringIO(out)))[-1]
    assert row[7] == "would deny, allowed (monitor)"
    table = cli("query", "--log", str(srv.log), "--type", "push.decision").stdout
    assert "would deny, allowed (monitor)" in table


def test_outcome_records_carry_the_push_id_of_their_decision(server: Server) -> None:
    clone = server.clone("alice")
    for name in ("src/a.py", "src/b.py"):
        clone.write(name)
        clone.commit(name)
        assert clone.push().ok
    records = [r["event"] for r in server.records()]
    outcomes = [e for e in records if e["type"] == "push.outcome"]  # type: ignore[index]
    decisions = {e["push_id"]: e for e in records if e["type"] == "push.decision"}  # type: ignore[index]
    assert len(outcomes) >= 2
    for outcome in outcomes:
        assert outcome["push_id"] in decisions  # type: ignore[index]
        decided = decisions[outcome["push_id"]]  # type: ignore[index]
        assert {(u["ref"], u["new"]) for u in outcome["updates"]} <= {  # type: ignore[index]
            (u["ref"], u["new"]) for u in decided["updates"]}  # type: ignore[index]


@pytest.mark.parametrize("refused", [False, True])
def test_index_is_kept_current_by_the_hook_without_a_query(server: Server, refused: bool) -> None:
    """Issue 12.6: after a push the index already covers the log, so the first query has nothing to build. An accepted
    push is indexed by its post-receive (decision and outcome), a refused one by its pre-receive."""
    import sqlite3
    import time

    clone = server.clone("alice")
    clone.write("models/c.py" if refused else "src/c.py")
    clone.commit()
    assert clone.push().ok is not refused
    assert server.records()[-1]["event"]["type"] == ("push.decision" if refused else "push.outcome")  # type: ignore[index]
    index = server.log.with_name("audit.jsonl.index.sqlite")
    deadline = time.monotonic() + 20
    covered = -1
    while time.monotonic() < deadline:
        if index.exists():
            try:
                with sqlite3.connect(index) as conn:
                    covered = int(dict(conn.execute("SELECT key, value FROM meta").fetchall()).get("bytes", -1))
            except sqlite3.Error:
                covered = -1
            if covered == server.log.stat().st_size:
                break
        time.sleep(0.1)
    assert covered == server.log.stat().st_size
