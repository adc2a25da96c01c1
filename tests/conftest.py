"""Shared fixtures: a PostgreSQL database per session, a fresh store per test (SQLite and PostgreSQL),
settings pointing at a loopback mirror."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy import Engine, text

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

from db.engine import make_engine  # noqa: E402
from db.migrate import upgrade  # noqa: E402
from db.schema import Base  # noqa: E402
from db.scratch import session_database  # noqa: E402


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
        engine = make_engine(url)
        _truncate(engine)
        engine.dispose()
        yield url
        engine = make_engine(url)
        _truncate(engine)
        engine.dispose()


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    eng = make_engine(store_url)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One ephemeral Prefect server for the whole session (it takes 12-20 s to start)."""
    os.environ["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect-home"))
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
