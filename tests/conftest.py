"""Shared fixtures: a PostgreSQL database per session, a fresh store per test (SQLite and PostgreSQL),
settings pointing at a loopback mirror, an ephemeral Prefect harness and a real Prefect server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy import Engine, text

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

from db.engine import make_engine, opened_engine  # noqa: E402
from db.migrate import upgrade  # noqa: E402
from db.schema import Base  # noqa: E402
from tests.pgcluster import session_database  # noqa: E402


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """This session's own PostgreSQL database, migrated to head; dropped at the end."""
    with session_database() as url:
        upgrade(url)
        yield url


def _truncate(engine: Engine) -> None:
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"))
        else:
            for t in tables:
                conn.execute(text(f'DELETE FROM "{t}"'))


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty, migrated store: a fresh SQLite file, or this session's PostgreSQL database emptied."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.sqlite'}"
        upgrade(url)
        yield url
    else:
        url = request.getfixturevalue("pg_url")
        with opened_engine(url) as engine:
            _truncate(engine)
            yield url
            _truncate(engine)


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    with opened_engine(store_url) as eng:
        yield eng


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One ephemeral Prefect server for the whole session (it takes 12-20 s to start)."""
    os.environ["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect-home"))
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


PREFECT_SERVER_STARTUP_SECONDS = 120


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _stop_process_group(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group (uvicorn and its services), SIGKILL it if it lingers."""
    if proc.poll() is not None:
        return
    for sig, grace in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``prefect server start`` for the session: SQLite in its own PREFECT_HOME, a free loopback
    port, analytics off, UI off. Yields its API URL (``http://127.0.0.1:<port>/api``).

    Clients talk to it with ``prefect.settings.temporary_settings({PREFECT_API_URL: url})``
    in-process, or ``PREFECT_API_URL=url`` in a subprocess (e.g. a worker). On a failed start
    the error carries the server log; the process group is killed at the end.
    """
    home = tmp_path_factory.mktemp("prefect-server")
    port = _free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update({
        "PREFECT_HOME": str(home),
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / 'prefect.db'}",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_UI_ENABLED": "false",
    })
    log_path = home / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env, cwd=home, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + PREFECT_SERVER_STARTUP_SECONDS
        while not _healthy(api_url):
            if proc.poll() is not None or time.monotonic() > deadline:
                reason = (f"exited with code {proc.returncode}" if proc.poll() is not None
                          else f"not healthy after {PREFECT_SERVER_STARTUP_SECONDS} s")
                raise RuntimeError(f"prefect server on port {port} {reason}; its log ({log_path}):\n"
                                   + log_path.read_text(errors="replace")[-6000:])
            time.sleep(0.5)
        yield api_url
    finally:
        _stop_process_group(proc)


@pytest.fixture(scope="session")
def trained_store(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A filled SQLite store shared by the model, verification and report tests (build once: ~1-2 min).

    Synthetic COBE grids 1961-01..2020-06, the CPC-format index and CPC's relative index (RONI),
    backfilled from a loopback mirror; a `tiny` model trained to 1994-12, selected on 1995-01..2004-12 and promoted;
    hindcasts 2005-01..2019-12; the operational forecast from 2020-06. Tests that write must
    copy ``path`` first (see ``copy_store``).
    """
    from db import registry
    from db.forecasting import forecast, hindcast, train_and_register
    from db.ingest import backfill, ingest_index, ingest_relative
    from enso.config import Settings
    from enso.mirror import MirrorServer, write_mirror
    from enso.months import Month

    root = tmp_path_factory.mktemp("trained-store")
    write_mirror(root / "mirror", Month.of(1961, 1), Month.of(2020, 6), seed=11, relative_index=True)
    path = root / "store.sqlite"
    url = f"sqlite:///{path}"
    upgrade(url)
    engine = make_engine(url)
    with MirrorServer(root / "mirror") as srv:
        settings = Settings(database_url=url, cobe_base_url=srv.cobe_base_url, index_url=srv.index_url,
                            index_format="cpc-monthly", relative_index_url=srv.relative_index_url,
                            data_dir=root / "var", report_dir=root / "reports")
        backfill(engine, settings, "cobe", Month.of(1961, 1), Month.of(2020, 6), workers=2, progress=False)
        assert ingest_index(engine, settings).ok
        assert [r.outcome for r in ingest_relative(engine, settings)] == ["stored"]
    training = train_and_register(engine, settings, "tiny", train_end=Month.of(1994, 12),
                                  valid_end=Month.of(2004, 12), progress=False, max_epochs=2)
    if not training.promoted:  # a 2-epoch tiny model need not beat every baseline; the tests need a champion
        registry.promote(engine, training.version)
    hindcast(engine, Month.of(2005, 1), Month.of(2019, 12), version=training.version)
    operational = forecast(engine, init_month=Month.of(2020, 6), version=training.version)
    engine.dispose()
    return {"path": path, "url": url, "settings": settings, "version": training.version, "training": training,
            "operational": operational, "mirror_root": root / "mirror"}


@pytest.fixture
def copy_store(trained_store: dict, tmp_path: Path) -> dict:
    """A private copy of the trained store for a test that writes."""
    import shutil

    path = tmp_path / "store.sqlite"
    shutil.copy(trained_store["path"], path)
    url = f"sqlite:///{path}"
    return {**trained_store, "path": path, "url": url,
            "settings": trained_store["settings"].model_copy(update={"database_url": url,
                                                                     "report_dir": tmp_path / "reports"})}


def worker_env(api_url: str, home: Path, enso: dict[str, str]) -> dict[str, str]:
    """The environment of a process worker (and so of its flow runs): this one without PREFECT_*/ENSO_*, the
    server's API URL, its own PREFECT_HOME, analytics off, a 2-second poll, and the given ENSO_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "ENSO_"))}
    env.update({"PREFECT_API_URL": api_url, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "DO_NOT_TRACK": "1", "PREFECT_WORKER_QUERY_SECONDS": "2", **enso})
    return env


@contextmanager
def process_worker(pool: str, env: dict[str, str], log: Path, *, name: str | None = None,
                   limit: int | None = None) -> Iterator[subprocess.Popen]:
    """``prefect worker start --pool POOL --type process`` (stderr to ``log``) until the block ends; it is online
    (its pool lists it) when the block starts."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import WorkerFilter, WorkerFilterStatus
    from prefect.settings import PREFECT_API_URL, temporary_settings

    command = [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--type", "process",
               "--install-policy", "never"]
    name = name or f"{pool}-{os.getpid()}-{time.monotonic_ns()}"
    command += ["--name", name] + (["--limit", str(limit)] if limit else [])
    with open(log, "ab") as stream:
        proc = subprocess.Popen(command, env=env, cwd=log.parent, stdout=subprocess.DEVNULL, stderr=stream,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        with temporary_settings(updates={PREFECT_API_URL: env["PREFECT_API_URL"]}):
            with get_client(sync_client=True) as client:
                while not any(w.name == name for w in client.read_workers_for_work_pool(
                        pool, worker_filter=WorkerFilter(status=WorkerFilterStatus(any_=["ONLINE"])))):
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"worker {name} on pool {pool} is not online; its log ({log}):\n"
                                           + log.read_text(errors="replace")[-4000:])
                    time.sleep(1)
        yield proc
    finally:
        _stop_process_group(proc)
