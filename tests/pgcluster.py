"""Scratch PostgreSQL databases for tests and benchmarks: find a server, make a database, drop it.

Order: ``ENSO_TEST_DATABASE_URL`` (a server URL; its database is only used to
connect), else a server on 127.0.0.1:5432 (user ``postgres``, trust auth), else a
throwaway cluster started from the installed server binaries. Each session
creates ``enso_test_<random>`` and drops it at the end.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from contextlib import contextmanager
from typing import Iterator

import psycopg
from sqlalchemy.engine import make_url

INSTALL_HINT = (
    "PostgreSQL is needed for the tests: set ENSO_TEST_DATABASE_URL=postgresql://user@host:port/db, "
    "run a server on 127.0.0.1:5432, or install the server binaries (Debian: apt-get install postgresql) "
    "so a throwaway cluster can be started."
)


def _reachable(url: str) -> bool:
    try:
        with psycopg.connect(_conninfo(url), connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


def _conninfo(url: str, dbname: str | None = None) -> str:
    u = make_url(url)
    parts = {"host": u.host or "127.0.0.1", "port": u.port or 5432, "user": u.username or "postgres",
             "dbname": dbname or u.database or "postgres"}
    if u.password:
        parts["password"] = u.password
    return " ".join(f"{k}={v}" for k, v in parts.items())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ThrowawayCluster:
    """A temporary PostgreSQL cluster (run as user postgres when we are root), for tests and fault drills."""

    def __init__(self) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        initdb = bins[-1] if bins else shutil.which("initdb")
        if not initdb:
            raise RuntimeError(INSTALL_HINT)
        self.bindir = os.path.dirname(initdb)
        self.datadir = tempfile.mkdtemp(prefix="enso-pg-")
        self.port = _free_port()
        self._as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as_postgres:
            shutil.chown(self.datadir, "postgres")
        subprocess.run([*self._as_postgres, initdb, "-D", self.datadir, "-A", "trust", "-U", "postgres"],
                       check=True, capture_output=True)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _pg_ctl(self, *args: str, check: bool = True) -> None:
        subprocess.run([*self._as_postgres, f"{self.bindir}/pg_ctl", "-D", self.datadir, *args], check=check,
                       capture_output=True)

    def start(self) -> None:
        self._pg_ctl("-o", f"-p {self.port} -k {self.datadir} -c listen_addresses=127.0.0.1",
                     "-l", f"{self.datadir}/log", "-w", "start")

    def stop(self) -> None:
        self._pg_ctl("-m", "fast", "-w", "stop", check=False)

    def restart(self) -> None:
        """Stop (fast: open connections are cut) and start again on the same port."""
        self.stop()
        self.start()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.datadir, ignore_errors=True)


@contextmanager
def throwaway_cluster() -> Iterator[ThrowawayCluster]:
    """Start a temporary PostgreSQL cluster; yield it (``.url``, ``.restart()``); remove it afterwards."""
    cluster = ThrowawayCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


@contextmanager
def server_url() -> Iterator[str]:
    """A reachable PostgreSQL server URL, by the order in the module docstring."""
    explicit = os.environ.get("ENSO_TEST_DATABASE_URL")
    if explicit:
        if not _reachable(explicit):
            raise RuntimeError(f"ENSO_TEST_DATABASE_URL={make_url(explicit).render_as_string()} is not reachable. "
                               + INSTALL_HINT)
        yield explicit
        return
    local = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    if _reachable(local):
        yield local
        return
    with throwaway_cluster() as cluster:
        yield cluster.url


@contextmanager
def session_database() -> Iterator[str]:
    """Create a database for this test session; drop it afterwards. Yields its SQLAlchemy URL."""
    with server_url() as server:
        name = f"enso_test_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(_conninfo(server), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        u = make_url(server).set(drivername="postgresql+psycopg", database=name)
        try:
            yield u.render_as_string(hide_password=False)
        finally:
            with psycopg.connect(_conninfo(server), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
