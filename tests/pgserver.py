"""A real PostgreSQL server for tests and benchmarks: Debian's binaries, a temporary data directory, a Unix socket in
it, no TCP. Started by the tests themselves (``initdb`` + ``pg_ctl``); as an unprivileged user when running as root
(PostgreSQL refuses to run as root), created with ``useradd`` if missing.

Under ``CI=true`` a missing PostgreSQL (or psycopg) fails the test instead of skipping it: CI installs both
(``.ci/run``: the ``postgresql`` package; ``psycopg[binary]`` is in the ``test`` extra).

A module with its own name (not ``conftest``), like ``gitserver``: import ``PgServer`` or the fixtures from here.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

SERVICE_USER = "gkpgtest"
SUPERUSER = "postgres"
WRITER = "gk_writer"
READER = "gk_reader"


def unavailable(reason: str) -> None:
    """Skip locally, fail under CI (these tests must run there)."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: PostgreSQL tests must not skip; .ci/run installs the postgresql package)")
    pytest.skip(reason)


def find_bindir() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if candidates:
        return Path(candidates[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _ensure_service_user() -> None:
    try:
        import pwd

        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVICE_USER],
                       check=True, capture_output=True)


class PgServer:
    """One PostgreSQL cluster in a temporary directory. :meth:`stop`/:meth:`start` simulate an outage."""

    def __init__(self, *, fsync: bool = False) -> None:
        bindir = find_bindir()
        if bindir is None:
            unavailable("PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql")
        try:
            import psycopg  # noqa: F401
        except ImportError:
            unavailable("psycopg is not installed: pip install -e '.[test]'")
        assert bindir is not None
        self.bindir = bindir
        self.as_root = os.geteuid() == 0
        if self.as_root:
            _ensure_service_user()
        # Not under pytest's tmp_path: that is 0700 root-owned, and the server runs as another user.
        self.root = Path(tempfile.mkdtemp(prefix="gk-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root
        self.logfile = self.root / "server.log"
        if self.as_root:
            shutil.chown(self.root, SERVICE_USER)
        self.options = f"-k {self.socket_dir} -c listen_addresses='' -c max_connections=60"
        if not fsync:
            self.options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
                  "--locale=C.UTF-8", "-N")
        self.start()

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bindir / tool), *args]
        if self.as_root:
            cmd = ["runuser", "-u", SERVICE_USER, "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=self.root)
        if check and proc.returncode != 0:
            log = self.logfile.read_text(errors="replace")[-2000:] if self.logfile.exists() else ""
            raise AssertionError(f"{tool} failed ({proc.returncode}): {proc.stdout}{proc.stderr}\n{log}")
        return proc

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.logfile), "-o", self.options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def destroy(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, db: str = "postgres", user: str = SUPERUSER) -> str:
        return f"postgresql://{user}@/{db}?host={self.socket_dir}"

    def sql(self, statement: str, *, db: str = "postgres", params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        """Run one statement as the superuser (autocommit) and return its rows."""
        import psycopg

        with psycopg.connect(self.url(db), autocommit=True) as conn:
            cur = conn.execute(statement, params)
            return cur.fetchall() if cur.description else []

    def new_database(self) -> FleetDb:
        """A fresh database with the gatekeeper schema, a writer role (INSERT only) and a reader role."""
        from gatekeeper.audit import pgstore

        name = "gk_" + uuid.uuid4().hex[:12]
        for role in (WRITER, READER):
            if not self.sql("SELECT 1 FROM pg_roles WHERE rolname = %s", params=(role,)):
                self.sql(f"CREATE ROLE {role} LOGIN")
        self.sql(f"CREATE DATABASE {name}")
        conn = pgstore.connect(self.url(name))
        try:
            pgstore.install_schema(conn, writer=WRITER, reader=READER)
        finally:
            conn.close()
        return FleetDb(self, name)


class FleetDb:
    def __init__(self, server: PgServer, name: str) -> None:
        self.server = server
        self.name = name

    @property
    def writer_url(self) -> str:
        return self.server.url(self.name, WRITER)

    @property
    def reader_url(self) -> str:
        return self.server.url(self.name, READER)

    @property
    def owner_url(self) -> str:
        return self.server.url(self.name)

    def sql(self, statement: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        return self.server.sql(statement, db=self.name, params=params)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    server = PgServer()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def fleet_db(pg_server: PgServer) -> FleetDb:
    if not pg_server.data.exists():
        unavailable("the PostgreSQL test cluster is gone")
    return pg_server.new_database()
