"""Alembic environment: runs migrations on the URL given by db.migrate."""

from alembic import context
from sqlalchemy import event

from db.engine import make_engine
from db.schema import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    engine = make_engine(config.get_main_option("sqlalchemy.url"))
    if engine.dialect.name == "sqlite":
        # SQLite alters a table by copying it (batch mode); a referenced table could not be dropped
        # with foreign keys enforced (it is checked afterwards instead).
        event.listen(engine, "connect", lambda dbapi_conn, _record: dbapi_conn.execute("PRAGMA foreign_keys=OFF"))
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            transaction_per_migration=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        if connection.dialect.name == "sqlite":
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
            if broken:
                raise RuntimeError(f"the migration left {len(broken)} row(s) with a broken foreign key: {broken[:5]}")
    engine.dispose()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
