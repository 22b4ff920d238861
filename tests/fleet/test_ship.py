"""Shipping a node's local log into PostgreSQL: idempotent, resumable, and the database's insert-only rules."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from audit.helpers import decision, make_env, outcome
from gatekeeper.audit import pgstore
from gatekeeper.audit.fleet import verify_db
from gatekeeper.audit.ship import ShipConflict, ship
from pgserver import FleetDb


def _fill(tmp_path: Path, n: int, name: str = "n1"):
    env = make_env(tmp_path / name) if (tmp_path / name).mkdir() is None else None
    log = env.writer()
    for i in range(n):
        log.append(decision(i, repo=f"ml/{name}") if i % 3 else outcome(repo=f"ml/{name}"))
    return env


def test_ship_is_idempotent_and_verifies(tmp_path: Path, fleet_db: FleetDb) -> None:
    env = _fill(tmp_path, 25)
    with pgstore.connect(fleet_db.writer_url) as conn:
        first = ship(env.log_path, conn, node="n1", batch=10)
        again = ship(env.log_path, conn, node="n1", batch=10)
    assert (first.shipped, first.head, first.checkpoint_size) == (25, 25, 25)
    assert (again.shipped, again.head) == (0, 25)
    assert fleet_db.sql("SELECT count(*), min(seq), max(seq) FROM audit_record") == [(25, 0, 24)]
    with pgstore.connect(fleet_db.reader_url) as conn:
        report = verify_db(conn, database=fleet_db.reader_url, vkeys=[env.vkey])
    assert report.ok, report.to_dict()
    assert report.nodes[0].report.records == 25
