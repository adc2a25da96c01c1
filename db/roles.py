"""Read-only SQL access to the store (PostgreSQL): the analyst group role and its logins.

Roles belong to the whole PostgreSQL cluster, not to one database, and creating them
needs the CREATEROLE privilege, so they are not part of the migrations: an administrator
applies ``db/sql/analyst_role.sql`` once per database (``enso db grant-analyst``), and
again only to add logins.
"""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from db.engine import StoreUnavailable, redacted

ANALYST_ROLE = "enso_analyst"
ANALYST_ROLE_SQL = Path(__file__).resolve().parent / "sql" / "analyst_role.sql"

#: psql's interpolation of the script's one variable: ``:"role"`` an identifier, ``:'role'`` a literal.
_ROLE_VARIABLE = re.compile(r""":(["'])role\1""")


def analyst_role_script(conn: psycopg.Connection, role: str) -> str:
    """``analyst_role.sql`` with ``role`` interpolated as psql ``-v role=...`` would, safely quoted."""
    quoted = {'"': sql.Identifier(role).as_string(conn), "'": sql.Literal(role).as_string(conn)}
    return _ROLE_VARIABLE.sub(lambda m: quoted[m.group(1)], ANALYST_ROLE_SQL.read_text())


def _ensure_login(conn: psycopg.Connection, user: str, password: str | None, role: str) -> None:
    """Create ``user`` as a login in ``role`` (or update its password); never touches a superuser."""
    row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (user,)).fetchone()
    if row is not None and row[0]:
        raise ValueError(f"refusing to turn superuser {user!r} into an analyst login")
    verb = "ALTER" if row is not None else "CREATE"
    statement = sql.SQL(verb + " ROLE {} LOGIN").format(sql.Identifier(user))
    if password is not None:
        statement = sql.SQL("{} PASSWORD {}").format(statement, sql.Literal(password))
    conn.execute(statement)
    conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(role), sql.Identifier(user)))


def grant_analyst(engine: Engine, role: str = ANALYST_ROLE, *, user: str | None = None,
                  password: str | None = None) -> None:
    """Create or refresh the read-only group ``role`` on the store's database, in one transaction;
    with ``user``, also a login that is a member of it (``password`` None: no password set).

    Run it as the tables' owner: then tables added by later migrations are readable too.
    """
    if engine.dialect.name != "postgresql":
        raise ValueError(f"SQL roles need PostgreSQL; the store is {engine.dialect.name} "
                         "(an SQLite file is shared read-only through file permissions)")
    try:
        with engine.begin() as connection:
            conn = connection.connection.driver_connection
            conn.execute(analyst_role_script(conn, role))
            if user:
                _ensure_login(conn, user, password, role)
    except OperationalError as exc:
        raise StoreUnavailable(f"cannot reach the store at {redacted(str(engine.url))}: {exc.orig}") from exc
    except psycopg.errors.InsufficientPrivilege as exc:
        raise RuntimeError(f"granting analyst access needs the tables' owner with CREATEROLE: {exc}") from exc
