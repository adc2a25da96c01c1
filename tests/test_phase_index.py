"""The relative index in the store and the phase index: CPC's Rnino34 file as the product ``relative``, the
relative index computed from the stored grids (``relative-grids``) for the months the file does not reach,
the view ``relative_index`` that joins them, and ENSO_PHASE_INDEX choosing what defines the observed phase."""

from __future__ import annotations

from pathlib import Path

import dataclasses
import datetime as dt

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, select, text

from db import store
from db.ingest import compute_relative_index, ingest_relative
from db.phase import PhaseIndex, load_phase_index, load_relative_index
from db.schema import IndexVintage, SstGrid
from enso.config import Settings
from enso.mirror import MirrorServer, write_mirror
from enso.months import Month, month_range
from enso.relative import relative_index_from_grids
from enso.synthetic import synthetic_climate

FIRST, LAST = Month.of(1948, 1), Month.of(2021, 12)
#: Where the mirror's CPC relative file starts: the grids reach two years further back.
FILE_FIRST = Month.of(1950, 1)
SEED = 4


@pytest.fixture(scope="module")
def climate_grids() -> list:
    """The synthetic climate's 2° grids of 1948-2021 (as NOAA ERSST would give them)."""
    return list(synthetic_climate(SEED, 2.0).grids(FIRST, LAST))


@pytest.fixture(scope="module")
def mirror_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CPC's files only: the Niño 3.4 table and the relative Rnino34 table from 1950-01."""
    root = tmp_path_factory.mktemp("relative-mirror")
    write_mirror(root, FILE_FIRST, LAST, seed=SEED, sst_sources=(), relative_index=True)
    return root


def _store_grids(engine: Engine, grids: list, version: str = "ersst v6") -> None:
    with engine.begin() as conn:
        store.insert_grids(conn, "ersst", [store.pack_grid(g, source_url=f"u/{g.month}", sha256=f"{g.month}" * 8,
                                                           file_size=1, product_version=version) for g in grids])


def settings_for(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = dict(sst_source="ersst", data_dir=tmp_path / "var", relative_index_url="",
                                     http_retries=0, http_timeout=5)
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def test_the_relative_index_is_computed_from_the_stored_grids_when_no_file_is_configured(
        engine: Engine, tmp_path: Path, climate_grids: list) -> None:
    _store_grids(engine, climate_grids)
    settings = settings_for(tmp_path)
    result = compute_relative_index(engine, settings)
    assert (result.source, result.outcome, result.month) == ("relative-grids", "stored", LAST)
    expected = relative_index_from_grids(climate_grids).table  # the definition, on the same grids
    stored = store.load_index(engine, "relative-grids")
    assert len(stored) == len(expected) == len(month_range(FIRST, LAST))
    np.testing.assert_allclose(stored["anomaly"], expected["relative_anomaly"], atol=1e-9)
    np.testing.assert_allclose(stored["oni"].dropna(), expected["roni"].dropna(), atol=1e-9)
    assert stored["phase"].tolist() == expected["phase"].tolist()
    with engine.connect() as conn:
        vintage = store.current_vintage(conn, "relative-grids")
    assert (vintage.format, vintage.base_period, vintage.seq) == ("from-grids", "1991-2020", 1)
    assert vintage.url == ("computed from the store's ersst grids (ersst v6) 1948-01..2021-12: base 1991-2020, "
                           "scaled over 1950-2020 (enso.relative)")
    # The same grids: unchanged, by the checksum of the inputs, without a new vintage.
    again = compute_relative_index(engine, settings)
    assert (again.outcome, again.message, again.sha256) == ("unchanged", "the grids are those of vintage 1",
                                                             result.sha256)
    # A revised grid (warmer in the Niño 3.4 box only: a warming of the whole band would cancel out):
    # a new vintage that says which months changed.
    revised = climate_grids[-1]
    box = (np.abs(revised.lat)[:, None] <= 5) & (revised.lon[None, :] >= 190) & (revised.lon[None, :] <= 240)
    with engine.begin() as conn:
        assert store.revise_grid(conn, "ersst", store.pack_grid(
            dataclasses.replace(revised, values=np.where(box, revised.values + 0.5, revised.values).astype("f4")),
            source_url="u/revised", sha256="r" * 64, file_size=1, product_version="ersst v6"),
            previous_sha256=f"{revised.month}" * 8)
    changed = compute_relative_index(engine, settings)
    assert changed.outcome == "revised" and "vintage 2" in changed.message and "2021-12 anomaly" in changed.message
    # The view: every month from the grids, as CPC's file is not configured.
    relative = load_relative_index(engine)
    assert set(relative["product"]) == {"relative-grids"} and relative.index[0] == pd.Period("1948-01", "M")


def test_grids_with_a_gap_or_short_of_the_periods_are_refused_saying_what_to_backfill(
        engine: Engine, tmp_path: Path, climate_grids: list) -> None:
    holed = [g for g in climate_grids if g.month not in (Month.of(1960, 3), Month.of(1960, 4))]
    _store_grids(engine, holed)
    settings = settings_for(tmp_path)
    result = compute_relative_index(engine, settings)
    assert result.outcome == "rejected"
    assert ("the store's ersst grids have 1 gap(s), first 1960-03..1960-04" in result.message
            and "enso backfill --source ersst --start 1960-03 --end 1960-04" in result.message)
    with engine.begin() as conn:
        conn.execute(SstGrid.__table__.delete().where(SstGrid.month < Month.of(1961, 1).first_day))
    short = compute_relative_index(engine, settings)
    assert short.outcome == "rejected" and "do not cover the base 1991-2020 and the scale period 1950-2020" \
        in short.message and "--start 1950-01" in short.message and "ENSO_PHASE_INDEX=oni" in short.message
    assert compute_relative_index(engine, settings.model_copy(update={"phase_index": "oni"})) is None
    with engine.connect() as conn:
        assert store.current_vintage(conn, "relative-grids") is None  # nothing stored
        logged = conn.execute(text("SELECT outcome FROM ingest_log WHERE source = 'relative-grids'")).scalars().all()
    assert logged == ["rejected", "rejected"]


def test_cpcs_file_is_the_relative_index_and_the_grids_fill_the_months_before_it(
        engine: Engine, tmp_path: Path, climate_grids: list, mirror_root: Path) -> None:
    _store_grids(engine, climate_grids)
    with MirrorServer(mirror_root) as srv:
        settings = settings_for(tmp_path, relative_index_url=srv.relative_index_url)
        first = ingest_relative(engine, settings)
        assert [(r.source, r.outcome) for r in first] == [("relative", "stored"), ("relative-grids", "stored")]
        srv.clear_log()
        again = ingest_relative(engine, settings)
        assert [(r.source, r.outcome) for r in again] == [("relative", "unchanged"), ("relative-grids", "unchanged")]
        assert [(r.path, r.status) for r in srv.request_log] == [("/index/Rnino34.ascii.txt", 304)]
    with engine.connect() as conn:
        vintage = store.current_vintage(conn, "relative")
    assert (vintage.format, vintage.base_period, store.date_month(vintage.first_month)) == (
        "cpc-rnino34", "1991-2020", FILE_FIRST)
    cpc = store.load_index(engine, "relative")
    grids = store.load_index(engine, "relative-grids")
    relative = load_relative_index(engine)
    before = relative.index < pd.Period(str(FILE_FIRST), "M")
    assert set(relative.loc[before, "product"]) == {"relative-grids"}
    assert set(relative.loc[~before, "product"]) == {"relative"}
    np.testing.assert_allclose(relative.loc[~before, "relative_anomaly"], cpc["anomaly"])  # never spliced
    np.testing.assert_allclose(relative.loc[before, "relative_anomaly"], grids["anomaly"].loc[:"1949-12"])
    phase = load_phase_index(engine, "roni", store.load_index(engine))
    assert phase.describe() == ("RONI: computed from the stored SST grids 1948-01..1949-12; "
                                "CPC's relative Niño 3.4 file 1950-01..2021-12")
    # A grid store that starts with the file needs nothing computed.
    with engine.begin() as conn:
        conn.execute(SstGrid.__table__.delete().where(SstGrid.month < FILE_FIRST.first_day))
    assert compute_relative_index(engine, settings) is None


def test_the_phase_index_decides_the_observed_phase_and_only_the_phase() -> None:
    months = pd.period_range("2020-01", "2020-06", freq="M", name="month")
    index = pd.DataFrame({"nino34": 27.0, "anomaly": [0.6, 0.7, 0.8, 0.6, 0.5, 0.4],
                          "oni": [np.nan, 0.7, 0.7, 0.63, 0.5, np.nan],
                          "phase": [None, "el_nino", "el_nino", "el_nino", "el_nino", None]}, index=months)
    relative = pd.DataFrame({"relative_anomaly": [0.3, 0.4, 0.5, 0.3, 0.2], "roni": [np.nan, 0.4, 0.4, 0.33, np.nan],
                             "phase": [None, "neutral", "neutral", "neutral", None],
                             "product": "relative"}, index=months[:5])
    roni = PhaseIndex.of("roni", index, relative)
    observed = roni.observed(index)
    assert observed["phase"].tolist() == [None, "neutral", "neutral", "neutral", None, None]
    assert observed[["nino34", "anomaly", "oni"]].equals(index[["nino34", "anomaly", "oni"]])
    assert PhaseIndex.of("oni", index, relative).observed(index)["phase"].tolist() == [
        None, "el_nino", "el_nino", "el_nino", "el_nino", None]
    assert roni.label == "RONI" and roni.describe() == "RONI: CPC's relative Niño 3.4 file 2020-01..2020-05"
    with pytest.raises(ValueError, match="unknown phase index 'nino34'"):
        PhaseIndex.of("nino34", index, relative)


def test_the_view_shows_the_newest_vintage_of_each_product(engine: Engine) -> None:
    """relative_index shows the newest vintage of each product: an older CPC vintage never leaks in."""
    months = pd.period_range("1950-01", "1950-04", freq="M", name="month")

    def table(values: list[float]) -> pd.DataFrame:
        out = pd.DataFrame({"nino34": np.nan, "anomaly": values, "oni": np.nan, "phase": None}, index=months)
        out.attrs["anomaly_base"] = "1991-2020"
        return out

    with engine.begin() as conn:
        for seq, values in ((1, [0.1, 0.2, 0.3, 0.4]), (2, [0.15, 0.2, 0.3, 0.45])):
            store.append_vintage(conn, "relative", table(values), store.VintageFile(
                f"u{seq}", f"{seq}" * 64, "cpc-rnino34", dt.datetime(2026, 12, seq, tzinfo=dt.timezone.utc)),
                seq=seq, base_period="1991-2020")
    relative = load_relative_index(engine)
    assert relative["relative_anomaly"].tolist() == [0.15, 0.2, 0.3, 0.45]
    with engine.connect() as conn:
        assert conn.execute(select(IndexVintage.seq).where(IndexVintage.product == "relative")
                            .order_by(IndexVintage.seq)).scalars().all() == [1, 2]
