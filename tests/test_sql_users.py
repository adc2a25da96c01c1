"""Read-only SQL access on PostgreSQL: the analyst role reads every table and view and changes
nothing; the README's example queries are the files in db/sql/examples, and run as the analyst."""

from __future__ import annotations

import datetime as dt
import math
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Iterator

import psycopg
import pytest
from sqlalchemy import Engine, insert, text
from sqlalchemy.engine import make_url

from db.engine import make_engine
from db.roles import grant_analyst
from db.schema import Base, Forecast, IndexValue, IndexVintage, Model, SeasonalOutlook
from enso.months import Month
from enso.nino34 import phase_of

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "db" / "sql" / "examples"
POSTGRES = pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)

INITS = [Month.of(2024, 9), Month.of(2024, 10), Month.of(2024, 11)]
LEADS = (1, 2, 3)
#: observed anomaly per target month; later targets are not observed yet
OBSERVED = {Month.of(2024, 10): -0.3, Month.of(2024, 11): -0.6, Month.of(2024, 12): -0.8}
#: the relative index (RONI) of the same months: cooler than the tropics, so La Niña from October
RELATIVE = {Month.of(2024, 10): -0.6, Month.of(2024, 11): -0.8, Month.of(2024, 12): -1.0}


def forecast_anomaly(init: Month, lead: int) -> float:
    return round(-0.2 - 0.15 * lead - 0.1 * INITS.index(init), 3)


class Analyst:
    """The module's group role and a login in it."""

    def __init__(self, pg_url: str) -> None:
        tag = uuid.uuid4().hex[:10]
        self.role, self.user, self.password = f"enso_analyst_{tag}", f"enso_reader_{tag}", f"pw-{tag}"
        self.pg_url = pg_url

    def conninfo(self, user: str | None = None) -> str:
        url = make_url(self.pg_url).set(drivername="postgresql", username=user or self.user, password=self.password)
        return url.render_as_string(hide_password=False)

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.conninfo(), autocommit=True)


@pytest.fixture(scope="module")
def analyst(pg_url: str) -> Iterator[Analyst]:
    """Created through ``enso db grant-analyst`` with a unique name per session; dropped after."""
    a = Analyst(pg_url)
    env = {**os.environ, "ENSO_DATABASE_URL": pg_url, "READER_PASSWORD": a.password}
    proc = subprocess.run([sys.executable, "-m", "flows.cli", "db", "grant-analyst", "--role", a.role, "--user",
                           a.user, "--password-env", "READER_PASSWORD"], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    try:
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert a.role in proc.stdout and a.user in proc.stdout
        yield a
    finally:
        owner = make_engine(pg_url)
        with owner.begin() as conn:
            conn.execute(text(f'DROP OWNED BY "{a.user}", "{a.role}"'))
            conn.execute(text(f'DROP ROLE IF EXISTS "{a.user}", "{a.role}"'))
        owner.dispose()


def outlook_p_el_nino(init: Month, season: int) -> float:
    return round(0.05 * season + 0.01 * INITS.index(init), 3)


def insert_rows(engine: Engine) -> None:
    """A model, index vintages (Niño 3.4 and CPC's relative index) with three observed months, three init
    months of forecasts, and the seasonal outlooks of the last two."""
    now = dt.datetime(2024, 12, 10, tzinfo=dt.timezone.utc)
    with engine.begin() as conn:
        conn.execute(insert(Model).values(
            version="m1", preset="tiny", config={}, sst_source="cobe", train_start=dt.date(1891, 1, 1),
            train_end=dt.date(1979, 12, 1), valid_end=dt.date(1989, 12, 1), base_period="1991-2020",
            normalisation={}, metrics={}, data_fingerprint="0" * 64, weights=b"", status="champion"))
        vintage = conn.execute(insert(IndexVintage).values(
            product="nino34", seq=1, sha256="f" * 64, url="http://127.0.0.1/index", format="cpc-monthly",
            downloaded_at=now, stored_at=now, first_month=min(OBSERVED).first_day,
            last_month=max(OBSERVED).first_day, n_months=len(OBSERVED), base_period="1991-2020")
            .returning(IndexVintage.id)).scalar_one()
        conn.execute(insert(IndexValue), [
            {"month": m.first_day, "nino34": 26.5 + a, "anomaly": a, "oni": a, "phase": phase_of(a),
             "vintage_id": vintage} for m, a in OBSERVED.items()])
        relative = conn.execute(insert(IndexVintage).values(
            product="relative", seq=1, sha256="e" * 64, url="http://127.0.0.1/Rnino34", format="cpc-rnino34",
            downloaded_at=now, stored_at=now, first_month=min(RELATIVE).first_day,
            last_month=max(RELATIVE).first_day, n_months=len(RELATIVE), base_period="1991-2020")
            .returning(IndexVintage.id)).scalar_one()
        conn.execute(insert(IndexValue), [
            {"month": m.first_day, "anomaly": a, "oni": a, "phase": phase_of(a), "vintage_id": relative}
            for m, a in RELATIVE.items()])
        rows = []
        for i, init in enumerate(INITS):
            for lead in LEADS:
                anomaly = forecast_anomaly(init, lead)
                rows.append({"model_version": "m1", "kind": "operational", "init_month": init.first_day,
                             "target_month": (init + lead).first_day, "lead_months": lead,
                             "nino34": 26.5 + anomaly, "nino34_anomaly": anomaly, "p_la_nina": 0.5,
                             "p_neutral": 0.3, "p_el_nino": 0.2, "phase": phase_of(anomaly),
                             "base_period": "1991-2020", "created_at": now + dt.timedelta(days=i)})
        conn.execute(insert(Forecast), rows)
        conn.execute(insert(SeasonalOutlook), [
            {"model_version": "m1", "kind": "operational", "init_month": init.first_day, "season": s,
             "season_label": "XYZ", "first_month": (init + s).first_day, "last_month": (init + s + 2).first_day,
             "phase_index": "roni", "mean": 0.1 * s, "sd": 0.4, "p_la_nina": 0.2,
             "p_neutral": round(0.8 - outlook_p_el_nino(init, s), 3), "p_el_nino": outlook_p_el_nino(init, s),
             "created_at": now + dt.timedelta(days=i)}
            for i, init in enumerate(INITS) if i > 0 for s in range(1, 10)])


def example_queries() -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(EXAMPLES.glob("*.sql"))}


def run_as(analyst: Analyst, query: str) -> list[dict]:
    with analyst.connect() as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        cur.execute(query)
        return cur.fetchall()


@POSTGRES
def test_analyst_reads_every_table_and_both_views(analyst: Analyst, engine: Engine) -> None:
    insert_rows(engine)
    with analyst.connect() as conn:
        for table in Base.metadata.sorted_tables:
            conn.execute(f'SELECT * FROM "{table.name}" LIMIT 1')
        assert conn.execute("SELECT count(*) FROM forecast").fetchone()[0] == len(INITS) * len(LEADS)
        assert conn.execute("SELECT count(*) FROM latest_forecast").fetchone()[0] == len(LEADS)
        verified = conn.execute("SELECT count(*) FROM forecast_verification WHERE anomaly_error IS NOT NULL")
        assert verified.fetchone()[0] == 6  # targets 2024-10..12 are observed


@pytest.mark.faults
@POSTGRES
@pytest.mark.parametrize("statement", [
    "INSERT INTO index_vintage (sha256, url, format, downloaded_at, first_month, last_month, n_months, base_period)"
    " VALUES ('x', 'u', 'f', now(), '2024-01-01', '2024-01-01', 1, 'b')",
    "UPDATE forecast SET nino34_anomaly = 9",
    "DELETE FROM index_value",
    "TRUNCATE forecast CASCADE",
    "DROP VIEW latest_forecast",
    "ALTER TABLE forecast ADD COLUMN note text",
    "CREATE TABLE scratch (x int)",
    "CREATE VIEW scratch_view AS SELECT 1 AS one",
    "CREATE TEMP TABLE scratch (x int)",
])
def test_analyst_cannot_write_or_create(analyst: Analyst, engine: Engine, statement: str) -> None:
    insert_rows(engine)
    with analyst.connect() as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(statement)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM forecast WHERE nino34_anomaly = 9")).scalar_one() == 0
        assert conn.execute(text("SELECT count(*) FROM index_observation")).scalar_one() == len(OBSERVED)
        assert conn.execute(text("SELECT to_regclass('scratch'), to_regclass('scratch_view')")).one() == (None, None)


def test_the_group_role_cannot_log_in(analyst: Analyst) -> None:
    with pytest.raises(psycopg.OperationalError, match="not permitted to log in|password authentication failed"):
        psycopg.connect(analyst.conninfo(user=analyst.role))


def test_tables_created_later_by_the_owner_are_readable(analyst: Analyst, pg_url: str) -> None:
    table = f"later_{uuid.uuid4().hex[:8]}"
    owner = make_engine(pg_url)
    with owner.begin() as conn:
        conn.execute(text(f"CREATE TABLE {table} (x int)"))
        conn.execute(text(f"INSERT INTO {table} VALUES (7)"))
    try:
        assert run_as(analyst, f"SELECT x FROM {table}") == [{"x": 7}]
    finally:
        with owner.begin() as conn:
            conn.execute(text(f"DROP TABLE {table}"))
        owner.dispose()


def test_granting_again_changes_nothing(analyst: Analyst, pg_url: str) -> None:
    owner = make_engine(pg_url)
    grant_analyst(owner, analyst.role, user=analyst.user, password=analyst.password)
    with owner.connect() as conn:
        memberships = conn.execute(text(
            "SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid "
            "JOIN pg_roles u ON u.oid = m.member WHERE r.rolname = :role AND u.rolname = :user"),
            {"role": analyst.role, "user": analyst.user}).scalar_one()
        login = conn.execute(text("SELECT rolcanlogin FROM pg_roles WHERE rolname = :r"), {"r": analyst.role})
        assert login.scalar_one() is False
    owner.dispose()
    assert memberships == 1
    assert run_as(analyst, "SELECT 1 AS one") == [{"one": 1}]


@pytest.mark.faults
@pytest.mark.parametrize("make_role", [
    "CREATE ROLE {role} SUPERUSER",
    "CREATE ROLE {role}; GRANT INSERT ON forecast TO {role}",
    "CREATE ROLE {role} CREATEROLE",
])
def test_granting_analyst_access_to_a_role_that_may_write_is_refused(pg_url: str, make_role: str) -> None:
    """`enso db grant-analyst --role postgres` must not report a superuser (or any writer) as read-only."""
    role = f"writer_{uuid.uuid4().hex[:8]}"
    owner = make_engine(pg_url)
    with owner.begin() as conn:
        for statement in make_role.format(role=role).split(";"):
            conn.execute(text(statement))
    try:
        for flag in ("--role", "--user"):
            proc = subprocess.run([sys.executable, "-m", "flows.cli", "db", "grant-analyst", flag, role],
                                  env={**os.environ, "ENSO_DATABASE_URL": pg_url}, cwd=REPO, capture_output=True,
                                  text=True, timeout=120)
            assert proc.returncode == 2, proc.stdout + proc.stderr
            assert f"refusing to use {role!r}" in proc.stderr and "Traceback" not in proc.stderr
            assert re.search(r"superuser|may write to 1 table|CREATEROLE", proc.stderr)
        with owner.connect() as conn:  # nothing was granted
            assert not conn.execute(text("SELECT has_table_privilege(:r, 'model', 'SELECT')"),
                                    {"r": role}).scalar_one() or "SUPERUSER" in make_role
    finally:
        with owner.begin() as conn:
            conn.execute(text(f'DROP OWNED BY "{role}"'))
            conn.execute(text(f'DROP ROLE "{role}"'))
        owner.dispose()


def test_readme_shows_exactly_the_example_files() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("\n## SQL access"):]
    section = section[:section.find("\n## ", 1)] if "\n## " in section[1:] else section
    shown = dict(re.findall(r"`db/sql/examples/([\w.]+)`[^\n]*\n+```sql\n(.*?)```", section, flags=re.S))
    assert shown == example_queries()
    assert len(re.findall(r"```sql\n", section)) == len(shown), "an SQL block in the README is not an example file"


@POSTGRES
def test_example_queries_answer_as_the_analyst(analyst: Analyst, engine: Engine) -> None:
    insert_rows(engine)
    queries = example_queries()

    latest = run_as(analyst, queries["latest_forecast.sql"])
    newest = INITS[-1]
    assert [(r["init_month"], r["lead_months"], r["nino34_anomaly"]) for r in latest] == [
        (newest.first_day, lead, forecast_anomaly(newest, lead)) for lead in LEADS]

    history = run_as(analyst, queries["forecast_history.sql"])
    target = Month.of(2024, 12)
    assert [(r["init_month"], r["lead_months"]) for r in history] == [
        (init.first_day, target - init) for init in INITS]

    disagree = run_as(analyst, queries["oni_and_roni.sql"])
    assert [(r["month"], r["oni"], r["oni_phase"], r["roni"], r["roni_phase"], r["roni_from"]) for r in disagree] == [
        (Month.of(2024, 10).first_day, -0.3, "neutral", -0.6, "la_nina", "relative")]

    outlook = run_as(analyst, queries["seasonal_outlook.sql"])
    assert [(r["init_month"], r["season"], r["first_month"], r["el_nino_pct"]) for r in outlook] == [
        (newest.first_day, s, (newest + s).first_day, round(100 * outlook_p_el_nino(newest, s))) for s in range(1, 10)]

    skill = run_as(analyst, queries["skill_by_lead.sql"])
    assert [r["lead_months"] for r in skill] == list(LEADS)
    for row in skill:
        lead = row["lead_months"]
        errors = [forecast_anomaly(i, lead) - OBSERVED[i + lead] for i in INITS if i + lead in OBSERVED]
        hits = [phase_of(forecast_anomaly(i, lead)) == phase_of(OBSERVED[i + lead]) for i in INITS
                if i + lead in OBSERVED]
        assert row["n"] == len(errors)
        assert row["rmse"] == pytest.approx(math.sqrt(sum(e * e for e in errors) / len(errors)))
        assert float(row["phase_hit_rate"]) == pytest.approx(sum(hits) / len(hits))
