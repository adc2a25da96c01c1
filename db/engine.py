"""Connections to the store: one engine per URL and process, with SQLite made safe for threads.

:func:`open_store` is how the services get the store: the engine of
``ENSO_DATABASE_URL``, made once per process (:func:`shared_engine`; its pool is
shared by every task and thread) and disposed at interpreter exit.
:func:`make_engine` and :func:`opened_engine` make engines of their own (tests,
migrations, one-off tools).

PostgreSQL URLs must use psycopg 3 (``postgresql+psycopg://``); a plain
``postgresql://`` URL is rewritten to it, since psycopg2 is not installed.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

if TYPE_CHECKING:
    from enso.config import Settings


class StoreUnavailable(RuntimeError):
    """The database cannot be reached; nothing was written."""


def normalise_url(url: str) -> str:
    u = make_url(url)
    if u.drivername in ("postgresql", "postgres"):
        u = u.set(drivername="postgresql+psycopg")
    return u.render_as_string(hide_password=False)


def redacted(url: str) -> str:
    """The URL with any password hidden, for messages and logs."""
    return make_url(url).render_as_string(hide_password=True)


def make_engine(url: str, *, pool_size: int = 8) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout and foreign keys."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 60})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.close()

        return engine
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        connect_args={"connect_timeout": 10},
    )


@contextmanager
def opened_engine(url: str) -> Iterator[Engine]:
    """:func:`make_engine` for a ``with`` block: its connections are closed when the block ends."""
    engine = make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


_ENGINES: dict[str, Engine] = {}
_ENGINES_LOCK = threading.Lock()


def shared_engine(url: str) -> Engine:
    """This process's engine for ``url``: made on first use, then the same one (disposed at interpreter exit)."""
    key = normalise_url(url)
    with _ENGINES_LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            engine = _ENGINES[key] = make_engine(key)
        return engine


@atexit.register
def dispose_shared_engines() -> None:
    """Close the connections of every :func:`shared_engine` (at exit; a later call makes new engines)."""
    with _ENGINES_LOCK:
        engines = list(_ENGINES.values())
        _ENGINES.clear()
    for engine in engines:
        engine.dispose()


def open_store(settings: Settings, *, check: bool = True) -> Engine:
    """The process's engine for ``ENSO_DATABASE_URL``; with ``check``, insists the schema is current."""
    engine = shared_engine(settings.resolved_database_url())
    if check:
        from db.migrate import check_current  # db.migrate builds on this module

        check_current(engine)
    return engine
