"""Schema migrations (Alembic), run programmatically by ``enso db upgrade``."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from db.engine import StoreUnavailable, normalise_url, opened_engine, redacted

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> str:
    """Create or migrate the schema to ``revision``; returns the revision now current."""
    try:
        command.upgrade(alembic_config(url), revision)
    except OperationalError as exc:
        raise StoreUnavailable(
            f"cannot reach the store at {redacted(url)}: {exc.orig}. "
            "Check ENSO_DATABASE_URL and that the database server is running."
        ) from exc
    with opened_engine(url) as engine:
        return current_revision(engine)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    head = script.get_current_head()
    assert head is not None
    return head


def check_current(engine: Engine) -> None:
    """Raise with a clear instruction when the store's schema is not at head."""
    try:
        rev = current_revision(engine)
    except OperationalError as exc:
        raise StoreUnavailable(
            f"cannot reach the store at {redacted(str(engine.url))}: {exc.orig}. "
            "Check ENSO_DATABASE_URL and that the database server is running."
        ) from exc
    if rev != head_revision():
        raise RuntimeError(
            f"the store at {redacted(str(engine.url))} is at schema revision {rev or 'none'}, "
            f"expected {head_revision()}: run `enso db upgrade`."
        )
