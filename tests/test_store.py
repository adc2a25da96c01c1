"""The store: migrations, grid codec, cube loading, index vintages (on SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
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
            assert store.insert_grid(conn, "cobe", _grid(m), source_url=f"u/{m}", sha256="a" * 64, file_size=1,
                                     product_version="cobe-sst v1")
        assert not store.insert_grid(conn, "cobe", _grid(months[0]), source_url="x", sha256="b" * 64, file_size=1,
                                     product_version="cobe-sst v1")
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
                store.insert_grid(conn, "cobe", _grid(m), source_url="u", sha256="a" * 64, file_size=1,
                                  product_version="cobe-sst v1")
    with pytest.raises(LookupError, match="2000-03"):
        store.load_cube(engine, "cobe", "2000-01", "2000-06")


def _index(values: list[float], start: str = "2000-01") -> pd.DataFrame:
    idx = pd.period_range(start, periods=len(values), freq="M", name="month")
    return pd.DataFrame({"nino34": values, "anomaly": np.array(values) - 27, "oni": np.nan,
                         "phase": [None] * len(values)}, index=idx)


def test_replace_index_keeps_one_vintage_and_reports_revisions(engine) -> None:
    now = dt.datetime.now(dt.timezone.utc)
    with engine.begin() as conn:
        change = store.replace_index(conn, _index([27.0, 27.5, 28.0]), source="cpc-monthly", url="u",
                                     sha256="1" * 64, downloaded_at=now, base_period="1991-2020")
    assert len(change.added) == 3 and not change.revised
    with engine.begin() as conn:
        change = store.replace_index(conn, _index([27.0, 27.6, 28.0, 28.2]), source="cpc-monthly", url="u",
                                     sha256="2" * 64, downloaded_at=now, base_period="1991-2020")
    assert change.revised == [Month.of(2000, 2)] and change.added == [Month.of(2000, 4)]
    table = store.load_index(engine)
    assert list(table["nino34"]) == [27.0, 27.6, 28.0, 28.2]
    with engine.connect() as conn:
        assert store.current_vintage(conn).sha256 == "2" * 64
