"""Break-glass reviews across nodes, and approvals re-verified from the database with the policies the nodes archived.

Two gate nodes hold one repository (as Gitaly nodes behind Praefect do: replication copies objects and refs without
running hooks). A break-glass push lands on node A; the after-the-fact approval is pushed through node B. Real pushes
with the real git client into bare repositories with the hook installed, real ssh-keygen approvals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from approvals.approvals_testlib import Trust, approve, as_person, keygen, make_server
from gatekeeper.audit import pgstore
from gatekeeper.audit.archive import archive_dir
from gatekeeper.audit.query import Filters
from gatekeeper.audit.report import collect_db
from gatekeeper.audit.ship import ship
from gitserver import Server, run_git
from pgserver import FleetDb

from .fleetlib import gatekeeper

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]


def _replicate(src: Server, dst: Server) -> None:
    """What Gitaly replication does: the objects and refs arrive, no hook runs."""
    run_git("fetch", "-q", str(src.bare), "+refs/heads/*:refs/heads/*", cwd=dst.bare)


def _ship(db: FleetDb, *nodes: tuple[str, Server]) -> None:
    with pgstore.connect(db.writer_url) as conn:
        for name, srv in nodes:
            ship(srv.log, conn, node=name)


def _unreviewed(db: FleetDb, *extra: str) -> list[tuple[str, int]]:
    out = gatekeeper("audit", "query", "--db", db.reader_url, "--break-glass", "--unreviewed", "--format", "json",
                     *extra, check=True)
    return [(json.loads(ln)["fleet_node"], json.loads(ln)["seq"]) for ln in out.stdout.splitlines()]


def _verify_unreviewed(db: FleetDb, *extra: str) -> dict[str, list[int]]:
    """The seqs verify --approvals --db warns about as unreviewed break-glass, per node."""
    out = gatekeeper("audit", "verify", "--db", db.reader_url, "--approvals", "--format", "json", *extra)
    nodes = json.loads(out.stdout)["approvals"]
    found = {node: [w["seq"] for w in r["warnings"] if w["code"] == "break-glass-unreviewed"]
             for node, r in nodes.items()}
    return {node: seqs for node, seqs in found.items() if seqs}


def _report_unreviewed(db: FleetDb) -> list[str]:
    with pgstore.connect(db.reader_url) as conn:
        data = collect_db(conn, Filters(), database=db.reader_url)
    return [row["where"] for row in data.unreviewed]


def test_break_glass_on_one_node_is_reviewed_by_an_approval_on_another(tmp_path: Path, clean_env: Path,
                                                                     fleet_db: FleetDb) -> None:
    keys = {person: keygen(tmp_path / "keys", person) for person in ("alice", "dave")}
    a, b = make_server(tmp_path / "git-a"), make_server(tmp_path / "git-b")
    for srv in (a, b):
        trust = Trust(srv)
        for person, key in keys.items():
            trust.add(person, key)
    _replicate(a, b)
    old = a.ref("refs/heads/main")

    dave = a.clone("dave")
    as_person(dave, "dave")
    dave.write("models/llama/modeling.py", "class Llama:\n    hotfix = True\n")
    dave.commit("emergency fix", author="dave")
    assert dave.push(options=["gatekeeper.break-glass=prod is down"], env={"REMOTE_USER": "dave"}).ok
    (glass,) = [r for r in a.records() if r["event"].get("decision") == "break-glass"]  # type: ignore[attr-defined]
    _replicate(a, b)
    _ship(fleet_db, ("git-a", a))
    assert _unreviewed(fleet_db) == [("git-a", glass["seq"])]
    assert _report_unreviewed(fleet_db) == [f"git-a seq {glass['seq']}"]
    assert _verify_unreviewed(fleet_db) == {"git-a": [glass["seq"]]}

    alice = b.clone("alice")  # the reviewer's remote is node B
    as_person(alice, "alice")
    approve(alice, "origin/main", keys["alice"], "alice", "--base", str(old))
    assert b.decisions()[-1]["updates"][0]["ref"].startswith("refs/gatekeeper/approvals/alice/")  # type: ignore[index]
    assert run_git("for-each-ref", "refs/gatekeeper", cwd=a.bare).stdout == b""  # node A never saw the approval
    _ship(fleet_db, ("git-b", b))

    assert _unreviewed(fleet_db) == []
    assert _unreviewed(fleet_db, "--node", "git-a") == []  # the review is found on git-b even when asking for git-a
    assert _report_unreviewed(fleet_db) == []

    # verify --approvals from the database needs no --policy: the nodes' hooks archived theirs, shipped with the log.
    for srv in (a, b):  # the live files are gone; only the archive can answer
        srv.config.unlink()
    approvals = gatekeeper("audit", "verify", "--db", fleet_db.reader_url, "--approvals")
    assert approvals.returncode == 0, approvals.stdout + approvals.stderr
    assert approvals.stdout.count("APPROVALS OK") == 2, approvals.stdout
    # ... and judges the break-glass push on git-a reviewed by the approval git-b recorded, as query does.
    assert _verify_unreviewed(fleet_db) == {}
    assert _verify_unreviewed(fleet_db, "--node", "git-a") == {}
    assert "reviewed by alice (node git-b seq 0)" in approvals.stdout, approvals.stdout


def test_verify_approvals_from_the_database_without_any_policy_says_what_to_pass(tmp_path: Path, clean_env: Path,
                                                                                 fleet_db: FleetDb) -> None:
    srv = make_server(tmp_path / "git-a")
    clone = srv.clone("alice")
    clone.write("src/a.py", "print(1)\n")
    clone.commit("a change")
    assert clone.push(env={"REMOTE_USER": "alice"}).ok
    shutil.rmtree(archive_dir(srv.log))  # a node whose hook kept no archive (and shipped without --config)
    with pgstore.connect(fleet_db.writer_url) as conn:
        ship(srv.log, conn, node="git-a")
    out = gatekeeper("audit", "verify", "--db", fleet_db.reader_url, "--approvals")
    assert out.returncode == 2, out.stdout + out.stderr
    assert "--approvals needs the policy in force" in out.stderr and "archived" in out.stderr, out.stderr
