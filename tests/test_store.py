"""The store: migrations, grid codec, cube loading, index vintages (on SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from db import codec, store
from db.engine import StoreUnavailable, make_engine
from db.migrate import check_current, current_revision, head_revision, upgrade
from db.schema import Base
from enso import grids
from enso.grids import SSTGrid
from enso.months import Month, month_range


def _grid(month: Month, nlat: int = 180, nlon: int = 360, offset: float = 0.0) -> SSTGrid:
    lat = np.linspace(-89.5, 89.5, nlat)
    lon = np.linspace(0.5, 359.5, nlon)
    values = (20 + 8 * np.cos(np.deg2rad(lat))[:, None] + 0 * lon[None, :] + offset + month.month / 10)
    values = values.astype(np.float32)
    values[: nlat // 6, :] = np.nan  # "Antarctica"
    values[:, 10:40] = np.nan
    return SSTGrid(month, lat, lon, values)


def test_migrations_create_exactly_the_models(engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    assert current_revision(engine) == head_revision()


def test_check_current_refuses_an_unmigrated_store(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.sqlite'}")
    with pytest.raises(RuntimeError, match="enso db upgrade"):
        check_current(engine)


def test_unreachable_postgres_is_a_clear_error() -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1:1/nothing"
    with pytest.raises(StoreUnavailable, match="cannot reach the store"):
        upgrade(url)


def test_codec_round_trip_keeps_nan_and_mask() -> None:
    g = _grid(Month.of(2000, 1))
    back = codec.unpack_float32(codec.pack_float32(g.values), g.shape)
    np.testing.assert_array_equal(np.isnan(back), g.land_mask)
    np.testing.assert_array_equal(back[~g.land_mask], g.values[~g.land_mask])
    np.testing.assert_array_equal(codec.unpack_mask(codec.pack_mask(g.land_mask), g.shape), g.land_mask)
    assert len(codec.pack_float32(g.values)) < g.values.nbytes / 2


def test_insert_is_once_and_load_cube_crops_coarsens_and_takes_anomalies(engine) -> None:
    months = month_range("1991-01", "1992-12")
    with engine.begin() as conn:
        for m in months:
            assert store.insert_grid(conn, "cobe", store.pack_grid(_grid(m), source_url=f"u/{m}", sha256="a" * 64,
                                                                  file_size=1, product_version="cobe-sst v1"))
        assert not store.insert_grid(conn, "cobe", store.pack_grid(_grid(months[0]), source_url="x",
                                                                   sha256="b" * 64, file_size=1,
                                                                   product_version="cobe-sst v1"))
    cube = store.load_cube(engine, "cobe", "1991-01", "1992-12")
    assert cube.shape == (24, 115, 360)
    assert float(cube.lat.min()) == -54.5 and float(cube.lat.max()) == 59.5
    coarse = store.load_cube(engine, "cobe", "1991-01", "1991-12", coarsen_deg=5)
    assert coarse.shape == (12, 23, 72)
    anom = store.load_cube(engine, "cobe", "1991-01", "1992-12", anomaly_base=(1991, 1992))
    ocean = ~np.isnan(anom.values)
    np.testing.assert_allclose(anom.values[ocean], 0.0, atol=1e-5)
    mask = grids.land_mask(cube)
    assert mask.dtype == bool and float(mask.mean()) == pytest.approx(30 / 360)  # the cropped-in land columns


def test_load_cube_names_missing_months(engine) -> None:
    with engine.begin() as conn:
        for m in month_range("2000-01", "2000-06"):
            if m != Month.of(2000, 3):
                store.insert_grid(conn, "cobe", store.pack_grid(_grid(m), source_url="u", sha256="a" * 64, file_size=1,
                                                                product_version="cobe-sst v1"))
    with pytest.raises(LookupError, match="2000-03"):
        store.load_cube(engine, "cobe", "2000-01", "2000-06")


def _index(values: list[float], start: str = "2000-01") -> pd.DataFrame:
    idx = pd.period_range(start, periods=len(values), freq="M", name="month")
    return pd.DataFrame({"nino34": values, "anomaly": np.array(values) - 27, "oni": np.nan,
                         "phase": [None] * len(values)}, index=idx)


def _file(sha: str) -> store.VintageFile:
    return store.VintageFile(url="u", sha256=sha * 64, format="cpc-monthly",
                             downloaded_at=dt.datetime.now(dt.timezone.utc))


def test_vintages_are_kept_whole_and_the_newest_is_the_current_index(engine) -> None:
    with engine.begin() as conn:
        first = store.append_vintage(conn, "nino34", _index([27.0, 27.5, 28.0]), _file("1"), seq=1,
                                     base_period="1991-2020")
        store.append_vintage(conn, "nino34", _index([27.0, 27.6, 28.0, 28.2]), _file("2"), seq=2,
                             base_period="1991-2020", changes="1 new")
        store.append_vintage(conn, "relative", _index([-0.5, -0.4], start="1990-01"), _file("3"), seq=1,
                             base_period="1991-2020")
    table = store.load_index(engine)
    assert list(table["nino34"]) == [27.0, 27.6, 28.0, 28.2] and table.attrs["vintage_seq"] == 2
    assert list(store.load_index(engine, vintage_id=first)["nino34"]) == [27.0, 27.5, 28.0]
    relative = store.load_index(engine, product="relative")
    assert list(relative["nino34"]) == [-0.5, -0.4] and str(relative.index[0]) == "1990-01"
    with engine.connect() as conn:
        assert store.current_vintage(conn).sha256 == "2" * 64
        assert [v.seq for v in store.vintages(conn)] == [2, 1]
        assert store.index_products(conn) == ["nino34", "relative"]
        # the view SQL users and the verification read: the current Niño 3.4 vintage only
        rows = conn.execute(text("SELECT month, nino34 FROM index_observation ORDER BY month")).all()
    assert [r.nino34 for r in rows] == [27.0, 27.6, 28.0, 28.2]


def test_two_appends_of_the_same_successor_cannot_both_win(engine) -> None:
    with engine.begin() as conn:
        store.append_vintage(conn, "nino34", _index([27.0]), _file("1"), seq=1, base_period="1991-2020")
    with pytest.raises(IntegrityError):
        with engine.begin() as conn:
            store.append_vintage(conn, "nino34", _index([27.1]), _file("2"), seq=1, base_period="1991-2020")
    assert list(store.load_index(engine)["nino34"]) == [27.0]


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_migrating_a_store_keeps_its_index_as_the_newest_vintage_and_back(dialect: str, tmp_path) -> None:
    """0005 turns the one stored index into vintage data (append-only); downgrading restores the table."""
    from contextlib import nullcontext

    from alembic import command

    from db.migrate import alembic_config
    from tests.pgcluster import session_database

    with (session_database() if dialect == "postgresql" else nullcontext(f"sqlite:///{tmp_path / 's.sqlite'}")) as url:
        upgrade(url, "0004")
        engine = make_engine(url)
        with engine.begin() as conn:
            for sha in ("a", "b"):  # an older vintage (no values kept before 0005), then the held one
                conn.execute(text(
                    "INSERT INTO index_vintage (sha256, url, format, downloaded_at, first_month, last_month, "
                    "n_months, base_period) VALUES (:sha, 'u', 'cpc-monthly', '2020-03-05', '2020-01-01', "
                    "'2020-02-01', 2, '1991-2020')"), {"sha": sha * 64})
            for month, value in (("2020-01-01", 0.5), ("2020-02-01", 0.7)):
                conn.execute(text(
                    "INSERT INTO index_observation (month, nino34, anomaly, oni, phase, source, vintage_id, "
                    "updated_at) VALUES (:m, 27.0, :a, NULL, NULL, 'cpc-monthly', 2, '2020-03-05')"),
                    {"m": month, "a": value})
        upgrade(url)
        table = store.load_index(engine)
        assert list(table["anomaly"]) == [0.5, 0.7] and table.attrs["vintage_id"] == 2
        with engine.connect() as conn:
            assert store.current_vintage(conn).sha256 == "b" * 64
        command.downgrade(alembic_config(url), "0004")
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT anomaly FROM index_observation ORDER BY month")).scalars().all()
        assert rows == [0.5, 0.7]
        engine.dispose()


def test_views_sql_holds_the_views_the_migrations_create(tmp_path) -> None:
    """db/sql/views.sql documents the current views: it must say what a migrated store has."""
    from pathlib import Path

    def normal(sql: str) -> str:
        return " ".join(sql.split())

    text_ = (Path(__file__).resolve().parents[1] / "db" / "sql" / "views.sql").read_text()
    code = "\n".join(line for line in text_.splitlines() if not line.strip().startswith("--"))
    documented = [normal(s) for s in code.split(";") if normal(s)]
    url = f"sqlite:///{tmp_path / 'views.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    with engine.connect() as conn:
        created = [normal(sql) for sql in conn.execute(text("SELECT sql FROM sqlite_master WHERE type = 'view'"))
                   .scalars()]
    engine.dispose()
    assert sorted(documented) == sorted(created)


def _model_row(version: str) -> dict:
    return dict(version=version, preset="tiny", config={}, sst_source="ersst", train_start=dt.date(1960, 1, 1),
                train_end=dt.date(1989, 12, 1), valid_end=dt.date(1999, 12, 1), base_period="1991-2020",
                normalisation={}, metrics={}, data_fingerprint="f" * 64, weights=b"w")


def _forecast_frame(init: str, spread: list[float] | None) -> pd.DataFrame:
    leads = [1, 2, 3]
    init_month = pd.Period(init, "M")
    frame = pd.DataFrame({
        "init_month": [init_month] * 3, "target_month": [init_month + k for k in leads], "lead": leads,
        "nino34": [27.0, 27.1, 27.2], "nino34_anomaly": [0.4, 0.5, 0.6], "p_la_nina": [0.1] * 3,
        "p_neutral": [0.5] * 3, "p_el_nino": [0.4] * 3, "phase": ["neutral"] * 3})
    if spread is not None:
        frame["nino34_anomaly_sd"] = spread
    return frame


def test_forecasts_store_their_gaussian_spread_or_null(engine) -> None:
    """forecast.nino34_anomaly_sd (migration 0009): written when the frame has it (NaN as NULL), NULL when not,
    shown by the views; a spread that is not positive is refused."""
    from db.forecast_rows import load_forecasts, write_forecasts
    from db.schema import Model

    with engine.begin() as conn:
        conn.execute(Model.__table__.insert().values(_model_row("m-spread")))
        write_forecasts(conn, _forecast_frame("2020-01", [0.25, float("nan"), 0.41]), model_version="m-spread",
                        kind="operational", base_period="1991-2020")
        write_forecasts(conn, _forecast_frame("2020-02", None), model_version="m-spread", kind="operational",
                        base_period="1991-2020")
    loaded = load_forecasts(engine, model_version="m-spread")
    spread = loaded.set_index(["init_month", "lead"])["nino34_anomaly_sd"]
    assert spread.dtype == float
    assert spread[(pd.Period("2020-01", "M"), 1)] == 0.25 and spread[(pd.Period("2020-01", "M"), 3)] == 0.41
    assert spread.isna().sum() == 4  # lead 2 of January, and all of February
    with engine.connect() as conn:
        latest = conn.execute(text("SELECT lead_months, nino34_anomaly_sd FROM latest_forecast "
                                   "ORDER BY lead_months")).all()
        joined = conn.execute(text("SELECT forecast_anomaly_sd FROM forecast_verification "
                                   "WHERE init_month = :m ORDER BY lead_months"), {"m": dt.date(2020, 1, 1)}).all()
    assert latest == [(1, None), (2, None), (3, None)]  # February's forecast is the newest
    assert [r[0] for r in joined] == [0.25, None, 0.41]
    with pytest.raises(ValueError, match="positive"), engine.begin() as conn:
        write_forecasts(conn, _forecast_frame("2020-03", [0.2, 0.0, 0.3]), model_version="m-spread",
                        kind="operational", base_period="1991-2020")


def test_migration_0009_adds_the_spread_and_goes_back(tmp_path) -> None:
    from alembic import command

    from db.migrate import alembic_config

    url = f"sqlite:///{tmp_path / 'spread.sqlite'}"
    upgrade(url, "0008")
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO model (version, preset, config, sst_source, train_start, train_end, "
                          "valid_end, base_period, normalisation, metrics, data_fingerprint, weights, status, "
                          "device, created_at) VALUES ('m', 'tiny', '{}', 'ersst', '1960-01-01', '1989-12-01', "
                          "'1999-12-01', '1991-2020', '{}', '{}', 'f', x'00', 'candidate', 'cpu', '2020-01-01')"))
        conn.execute(text("INSERT INTO forecast (model_version, kind, init_month, target_month, lead_months, nino34, "
                          "nino34_anomaly, p_la_nina, p_neutral, p_el_nino, phase, base_period, created_at) VALUES "
                          "('m', 'operational', '2020-01-01', '2020-02-01', 1, 27.0, 0.5, 0.1, 0.5, 0.4, "
                          "'neutral', '1991-2020', '2020-02-05')"))
    upgrade(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT nino34_anomaly, nino34_anomaly_sd FROM latest_forecast")).all() == [(0.5, None)]
    command.downgrade(alembic_config(url), "0008")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT nino34_anomaly FROM latest_forecast")).all() == [(0.5,)]
        columns = [r[1] for r in conn.execute(text("PRAGMA table_info(forecast)"))]
    assert "nino34_anomaly_sd" not in columns
    engine.dispose()
