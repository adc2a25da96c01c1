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


def write_rights(conn: psycopg.Connection, role: str) -> list[str]:
    """What ``role`` (directly or through its memberships) may do beyond reading; empty for a read-only role."""
    row = conn.execute("SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, oid FROM pg_roles "
                       "WHERE rolname = %s", (role,)).fetchone()
    if row is None:
        return []
    superuser, createrole, createdb, bypassrls, oid = row
    rights = [what for flag, what in ((superuser, "is a superuser"), (createrole, "may create roles (CREATEROLE)"),
                                      (createdb, "may create databases (CREATEDB)"),
                                      (bypassrls, "bypasses row security (BYPASSRLS)")) if flag]
    owned = conn.execute("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                         "WHERE n.nspname = 'public' AND c.relowner = %s", (oid,)).fetchone()[0]
    if owned:
        rights.append(f"owns {owned} table(s) or view(s) of schema public")
    writable = [name for (name,) in conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'f') "
        "AND has_table_privilege(%s, c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER') "
        "ORDER BY c.relname", (role,)).fetchall()]
    if writable and not owned:
        shown = ", ".join(writable[:5]) + (" ..." if len(writable) > 5 else "")
        rights.append(f"may write to {len(writable)} table(s) ({shown})")
    creates = conn.execute("SELECT has_schema_privilege(%s, 'public', 'CREATE'), "
                           "has_database_privilege(%s, current_database(), 'CREATE')", (role, role)).fetchone()
    if creates[0]:
        rights.append("may create objects in schema public")
    if creates[1]:
        rights.append("may create schemas in the database")
    return rights


def _refuse_writers(conn: psycopg.Connection, role: str, what: str) -> None:
    """Refuse to make ``role`` read-only access when it is a superuser or may write: that would be a lie."""
    rights = write_rights(conn, role)
    if rights:
        raise ValueError(f"refusing to use {role!r} as the {what}: it {'; it '.join(rights)}. The analyst "
                         "access must be read-only: choose a new role name (it is created for you)")


def _ensure_login(conn: psycopg.Connection, user: str, password: str | None, role: str) -> None:
    """Create ``user`` as a login in ``role`` (or update its password); the caller refused writers already."""
    row = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,)).fetchone()
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
            _refuse_writers(conn, role, "analyst role")
            if user:
                _refuse_writers(conn, user, "analyst login")
            conn.execute(analyst_role_script(conn, role))
            if user:
                _ensure_login(conn, user, password, role)
            _check_read_only(conn, role)
    except OperationalError as exc:
        raise StoreUnavailable(f"cannot reach the store at {redacted(str(engine.url))}: {exc.orig}") from exc
    except psycopg.errors.InsufficientPrivilege as exc:
        raise RuntimeError(f"granting analyst access needs the tables' owner with CREATEROLE: {exc}") from exc


def _check_read_only(conn: psycopg.Connection, role: str) -> None:
    """After granting: the role may read and nothing else, temporary tables included (else the run fails)."""
    rights = write_rights(conn, role)
    temp = conn.execute("SELECT has_database_privilege(%s, current_database(), 'TEMPORARY'), current_database()",
                        (role,)).fetchone()
    if temp[0]:
        rights.append(f"may create temporary tables (TEMPORARY on database {temp[1]} is granted to PUBLIC, and "
                      f"only the database owner can revoke it: run this as the owner of {temp[1]}, or have it run "
                      f"REVOKE TEMPORARY ON DATABASE {temp[1]} FROM PUBLIC)")
    if rights:
        raise RuntimeError(f"role {role} is not read-only after granting: it {'; it '.join(rights)}")
