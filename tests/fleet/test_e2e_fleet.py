"""End to end: three gate nodes (real bare repositories with the hook installed, real `git push`) ship their local
logs to one PostgreSQL while people push concurrently; the database is stopped mid-stream and restarted; the fleet
verbs then answer across nodes, and the export verifies without the database."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from gitserver import DEFAULT_POLICY, Clone, Server, seed_content
from pgserver import PgServer

from .fleetlib import gatekeeper, spawn

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]

NODES = ("git-a", "git-b", "git-c")


def _node(root: Path, name: str, db_url: str) -> Server:
    srv = Server(root / name)
    seed_content(srv.clone("seeder"))
    policy = DEFAULT_POLICY.format(mode="enforce").replace("repository: ml/llama-train", f"repository: ml/{name}")
    srv.write_policy(policy + f"  database: {db_url}\n")
    (srv.etc / "allowed_signers").write_text(f"bob@example.com {_public_key()}\n")
    srv.install()
    return srv


def _public_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


def _pushes(srv: Server, name: str, clone: Clone, round_: int, errors: list[str]) -> None:
    try:
        for i in range(3):
            clone.write(f"src/{round_}-{i}.py", f"print({i})\n")
            clone.commit(f"{name} round {round_} change {i}")
            result = clone.push(env={"GATEKEEPER_USER": "alice"})
            if not result.ok:
                errors.append(f"{name}: allowed push refused: {result.output}")
        clone.write("models/llama/modeling.py", f"class Llama:  # {round_}\n    pass\n")
        clone.commit(f"{name} round {round_} unreviewed model change")
        denied = clone.push(env={"GATEKEEPER_USER": "carol"})
        if denied.ok:
            errors.append(f"{name}: unreviewed model change was let in")
        if name == "git-c" and round_ == 2:
            glass = clone.push(options=["gatekeeper.break-glass=prod down, INC-7"], env={"GATEKEEPER_USER": "dave"})
            if not glass.ok:
                errors.append(f"{name}: break-glass refused: {glass.output}")
        else:
            clone.git("reset", "-q", "--hard", "HEAD~1")
    except Exception as exc:  # noqa: BLE001  (reported by the main thread)
        errors.append(f"{name}: {exc!r}")


def _round(servers: dict[str, Server], clones: dict[str, Clone], round_: int) -> None:
    errors: list[str] = []
    threads = [threading.Thread(target=_pushes, args=(servers[n], n, clones[n], round_, errors)) for n in NODES]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def _central_counts(pg: PgServer, db: str) -> dict[str, int]:
    try:
        rows = pg.sql("SELECT node, count(*) FROM audit_record GROUP BY node", db=db)
    except Exception:  # noqa: BLE001  (the database may be restarting)
        return {}
    return {str(node): int(count) for node, count in rows}  # type: ignore[call-overload]


def test_three_nodes_ship_to_one_database_through_an_outage(tmp_path: Path, clean_env: Path) -> None:
    pg = PgServer()
    shippers: list[subprocess.Popen[str]] = []
    try:
        db = pg.new_database()
        servers = {n: _node(tmp_path, n, db.writer_url) for n in NODES}
        clones = {n: servers[n].clone("work") for n in NODES}
        shippers = [spawn("audit", "ship", "--config", servers[n].config, "--db", "--node", n, "--follow",
                          "--interval", "0.2") for n in NODES]
        _round(servers, clones, 1)

        pg.stop()  # the database goes away mid-stream: pushes go on, records wait in the local logs
        _round(servers, clones, 2)
        offline = gatekeeper("audit", "ship", "--config", servers["git-a"].config, "--db", "--node", "git-a")
        assert offline.returncode == 1 and "unavailable" in offline.stderr, offline.stderr
        pg.start()

        local = {n: servers[n].log.read_bytes().splitlines() for n in NODES}
        deadline = time.monotonic() + 90
        while _central_counts(pg, db.name) != {n: len(local[n]) for n in NODES} and time.monotonic() < deadline:
            time.sleep(0.3)
        assert _central_counts(pg, db.name) == {n: len(local[n]) for n in NODES}
        for proc in shippers:
            proc.send_signal(signal.SIGTERM)
        outputs = [proc.communicate(timeout=30)[0] for proc in shippers]
        assert any("retrying" in out for out in outputs), outputs  # the services noticed the outage and waited
        for n in NODES:  # byte-exact copies, nothing lost, nothing twice
            rows = pg.sql("SELECT raw FROM audit_record WHERE node = %s ORDER BY seq", db=db.name, params=(n,))
            assert [bytes(r[0]) for r in rows] == local[n]  # type: ignore[arg-type]

        vkeys = [arg for n in NODES for arg in ("--vkey-file", str(servers[n].etc / "audit" / "audit-signing.key.pub"))]
        verify = gatekeeper("audit", "verify", "--db", db.reader_url, *vkeys, check=True)
        assert [line.split(":")[1].strip() for line in verify.stdout.splitlines() if line.startswith("OK: node")] \
            == [f"node {n}" for n in NODES], verify.stdout

        denies = gatekeeper("audit", "query", "--db", db.reader_url, "--decision", "deny", "--format", "json",
                            check=True)
        found = [json.loads(line) for line in denies.stdout.splitlines()]
        assert sorted((r["fleet_node"], r["event"]["repo"]) for r in found) == sorted(
            [(n, f"ml/{n}") for n in NODES] * 2)
        assert all(r["event"]["pusher"]["user"] == "carol" for r in found)
        models = gatekeeper("audit", "query", "--db", db.reader_url, "--path", "models/**", "--repo", "ml/git-b",
                            "--format", "csv", check=True)
        assert models.stdout.splitlines()[0].startswith("node,seq,ts")
        assert [ln.split(",")[0] for ln in models.stdout.splitlines()[1:]] == ["git-b", "git-b"], models.stdout
        unreviewed = gatekeeper("audit", "query", "--db", db.reader_url, "--break-glass", "--unreviewed",
                                "--format", "json", check=True)
        assert [(json.loads(ln)["fleet_node"], json.loads(ln)["event"]["break_glass"]["by"])
                for ln in unreviewed.stdout.splitlines()] == [("git-c", "dave")]

        # verify --approvals per node from the database: every allow re-checked, the break-glass listed unreviewed.
        policies = [arg for n in NODES for arg in ("--policy", str(servers[n].config))]
        approvals = gatekeeper("audit", "verify", "--db", db.reader_url, *vkeys, "--approvals", *policies)
        assert approvals.returncode == 0, approvals.stdout + approvals.stderr
        assert approvals.stdout.count("APPROVALS OK") == 3, approvals.stdout
        assert "UNREVIEWED: refs/heads/main" in approvals.stdout and "by dave" in approvals.stdout

        bundle = tmp_path / "evidence"
        gatekeeper("audit", "export", "--db", db.reader_url, "--out", bundle, check=True)
        manifest = json.loads((bundle / "MANIFEST.json").read_text())
        assert manifest["nodes"] == {n: len(local[n]) for n in NODES}
        # Each node archived its policy and trust store (by SHA-256, as the records name them).
        policy_shas = {json.loads(ln)["event"]["config_sha256"] for ln in denies.stdout.splitlines()}
        assert {p.stem for p in (bundle / "policies").iterdir()} == policy_shas
        assert len(list((bundle / "trust").iterdir())) == 3
        pg.stop()  # the bundle verifies without the database
        for n in NODES:
            folder = bundle / "nodes" / n
            assert (folder / "audit.jsonl").read_bytes().splitlines() == local[n]
            offline_verify = gatekeeper("audit", "verify", "--log", folder / "audit.jsonl", "--vkey-file",
                                        servers[n].etc / "audit" / "audit-signing.key.pub", check=True)
            assert offline_verify.stdout.startswith("OK:"), offline_verify.stdout
    finally:
        for proc in shippers:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        pg.destroy()
