"""The CPC-style seasonal outlook: its seasons, means, spreads and probabilities (enso.outlook), its rows in the
store beside every forecast (written and replaced with them), its view, and its verification."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, func, insert, select, text

from db import store
from db.engine import make_engine
from db.schema import Forecast, Model, SeasonalOutlook
from enso.baselines import gaussian_phase_probabilities
from enso.model.phases import forecast_oni, spread_at
from enso.months import Month
from enso.outlook import (
    MIN_OFFSET_PAIRS,
    OUTLOOK_COLUMNS,
    SEASONS,
    RelativeOffset,
    outlook_forecast_frame,
    seasonal_means,
    seasonal_outlook,
    seasonal_spread,
)
from enso.verify import PROBABILITY_COLUMNS, forecast_frame, phase_climatology, rpss

LEADS = list(range(1, 13))


def frame_of(inits: list[str], anomaly: np.ndarray) -> pd.DataFrame:
    values = np.asarray(anomaly, dtype=float).reshape(len(inits), 12)
    return forecast_frame(pd.PeriodIndex(inits, freq="M"), LEADS, values)


def spread_table(rng: np.random.Generator | None = None) -> np.ndarray:
    """An ONI error sd table (12 target months x 12 leads) growing with lead, different by target month."""
    rng = rng or np.random.default_rng(1)
    return np.sort(rng.uniform(0.1, 0.9, (12, 12)), axis=1)


def known_offset(last: str, value: float = 0.4, noise: float = 0.0, seed: int = 2) -> RelativeOffset:
    months = pd.period_range("1950-01", last, freq="M")
    values = value + np.random.default_rng(seed).normal(0.0, noise, len(months))
    return RelativeOffset(pd.Series(values, index=months))


# --------------------------------------------------------------------------- the seasons

def test_nine_overlapping_seasons_after_the_init_month_named_as_cpc_names_them() -> None:
    outlook = seasonal_outlook(frame_of(["2025-11"], np.zeros(12)), spread_table(), phase_index="oni")
    assert list(outlook.columns) == list(OUTLOOK_COLUMNS)
    assert list(outlook["season"]) == list(SEASONS) == list(range(1, 10))
    assert [str(m) for m in outlook["first_month"]] == [f"{y}-{m:02d}" for y, m in
                                                       [(2025, 12)] + [(2026, k) for k in range(1, 9)]]
    assert (str(outlook["first_month"].iloc[0]), str(outlook["last_month"].iloc[0])) == ("2025-12", "2026-02")
    # each label names the season's three months by their initials, centred on first month + 1 (DJF = Jan)
    assert list(outlook["season_label"]) == ["DJF", "JFM", "FMA", "MAM", "AMJ", "MJJ", "JJA", "JAS", "ASO"]
    assert (outlook["phase_index"] == "oni").all()


def test_the_seasonal_mean_is_the_forecast_oni_of_the_centre_month_and_its_spread_the_oni_error_sd() -> None:
    rng = np.random.default_rng(7)
    anomaly = rng.normal(0.0, 1.0, (3, 12))
    inits = pd.PeriodIndex(["2001-01", "2001-06", "2001-12"], freq="M")
    means = seasonal_means(anomaly)
    by_hand = np.stack([anomaly[:, s - 1:s + 2].mean(axis=1) for s in SEASONS], axis=1)
    np.testing.assert_allclose(means, by_hand, rtol=1e-12)
    # forecast_oni of lead s+1 (whatever the observed init anomaly: leads 2..10 do not use it)
    np.testing.assert_allclose(means, forecast_oni(anomaly, rng.normal(size=3))[:, 1:10], rtol=1e-12)
    table = spread_table(rng)
    centre_calendar = (inits.month.to_numpy()[:, None] - 1 + np.arange(1, 13)[None, :]) % 12
    np.testing.assert_array_equal(seasonal_spread(table, inits), spread_at(table, centre_calendar)[:, 1:10])
    # season 1 of a January init is FMA: ONI error sd of target calendar month March (index 2), lead 2
    assert seasonal_spread(table, inits)[0, 0] == table[2, 1]


def test_oni_outlook_probabilities_are_the_monthly_ones_at_the_centre_leads_and_sum_to_one() -> None:
    rng = np.random.default_rng(3)
    anomaly = rng.normal(0.0, 1.2, (4, 12))
    inits = ["1999-02", "1999-03", "1999-04", "1999-05"]
    table = spread_table(rng)
    outlook = seasonal_outlook(frame_of(inits, anomaly), table, phase_index="oni")
    probabilities = outlook[list(PROBABILITY_COLUMNS)].to_numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-12)
    assert (probabilities >= 0).all()
    periods = pd.PeriodIndex(inits, freq="M")
    target_calendar = (periods.month.to_numpy()[:, None] - 1 + np.arange(1, 13)[None, :]) % 12
    monthly = gaussian_phase_probabilities(forecast_oni(anomaly, np.zeros(4)), spread_at(table, target_calendar))
    np.testing.assert_allclose(probabilities, monthly[:, 1:10].reshape(-1, 3), rtol=1e-12)


def test_probabilities_move_the_right_way() -> None:
    table = np.full((12, 12), 0.4)
    cold, mild, warm = (seasonal_outlook(frame_of(["2010-05"], np.full(12, a)), table, phase_index="oni")
                        for a in (-1.0, 0.0, 1.0))
    assert (cold["p_la_nina"] > 0.8).all() and (warm["p_el_nino"] > 0.8).all() and (mild["p_neutral"] > 0.7).all()
    assert (warm["p_el_nino"] > mild["p_el_nino"]).all() and (warm["p_la_nina"] < mild["p_la_nina"]).all()
    wider = seasonal_outlook(frame_of(["2010-05"], np.zeros(12)), table * 2, phase_index="oni")
    assert (wider["p_neutral"] < mild["p_neutral"]).all()  # a wider spread is less sure of neutral


def test_a_forecast_without_every_needed_lead_is_refused() -> None:
    frame = frame_of(["2010-05"], np.zeros(12))
    with pytest.raises(ValueError, match="2010-05 lacks a lead of 1..11"):
        seasonal_outlook(frame[frame["lead"] != 7], spread_table(), phase_index="oni")
    with pytest.raises(ValueError, match="needs the observed offset"):
        seasonal_outlook(frame, spread_table(), phase_index="roni")


# --------------------------------------------------------------------------- RONI

def test_roni_outlook_subtracts_the_init_months_offset_and_a_constant_offset_keeps_the_spread() -> None:
    rng = np.random.default_rng(4)
    anomaly = rng.normal(0.0, 1.0, (2, 12))
    inits = ["2015-06", "2015-07"]
    table = spread_table(rng)
    oni = seasonal_outlook(frame_of(inits, anomaly), table, phase_index="oni")
    roni = seasonal_outlook(frame_of(inits, anomaly), table, phase_index="roni", offset=known_offset("2015-07", 0.4))
    assert (roni["phase_index"] == "roni").all()
    np.testing.assert_allclose(roni["mean"], oni["mean"] - 0.4, atol=1e-12)
    np.testing.assert_allclose(roni["sd"], oni["sd"], atol=1e-12)  # the offset never changed
    # the same ONI forecast is less often El Niño in RONI when the tropics are warm (offset > 0)
    assert (roni["p_el_nino"] <= oni["p_el_nino"] + 1e-12).all() and (roni["p_el_nino"] < oni["p_el_nino"]).any()


def test_the_spread_is_widened_by_the_offsets_change_over_the_season_before_the_init_month_only() -> None:
    offset = known_offset("2015-12", 0.3, noise=0.15)
    table = np.full((12, 12), 0.3)
    frame = frame_of(["2015-06"], np.zeros(12))
    roni = seasonal_outlook(frame, table, phase_index="roni", offset=offset)
    value, change_sd = offset.persisted(pd.PeriodIndex(["2015-06"], freq="M"))
    init = pd.Period("2015-06", freq="M")
    assert value[0] == offset.offset[init]
    d = offset.offset
    for season in (1, 5, 9):  # by hand: every origin whose season (origin + s .. + s + 2) ends before the init month
        origins = [m for m in d.index if m + season + 2 < init]
        changes = [d[m + season:m + season + 2].mean() - d[m] for m in origins]
        assert len(changes) >= MIN_OFFSET_PAIRS
        assert change_sd[0, season - 1] == pytest.approx(np.sqrt(np.mean(np.square(changes))), rel=1e-9)
    np.testing.assert_allclose(roni["sd"], np.hypot(0.3, change_sd[0]), rtol=1e-12)
    assert (roni["sd"] > 0.3).all()
    # nothing after the init month moves it (the offset of later months is not known at forecast time)
    later = RelativeOffset(d.where(d.index <= init, d + 5.0))
    pd.testing.assert_frame_equal(seasonal_outlook(frame, table, phase_index="roni", offset=later), roni)


def test_an_init_month_without_a_relative_value_takes_an_earlier_one_or_keeps_the_oni() -> None:
    d = known_offset("2015-12", 0.3, noise=0.1).offset
    table = np.full((12, 12), 0.3)
    frame = frame_of(["2015-06"], np.zeros(12))
    gap = RelativeOffset(d.where(d.index != pd.Period("2015-06", freq="M")))  # the newest value is 2015-05
    outlook = seasonal_outlook(frame, table, phase_index="roni", offset=gap)
    assert (outlook["phase_index"] == "roni").all()
    np.testing.assert_allclose(outlook["mean"], -d[pd.Period("2015-05", freq="M")])
    _, one_month_older = gap.persisted(pd.PeriodIndex(["2015-06"], freq="M"))
    _, from_may = gap.persisted(pd.PeriodIndex(["2015-05"], freq="M"))
    assert one_month_older[0, 0] != from_may[0, 0]  # a horizon one month longer
    far = RelativeOffset(d.loc[:"2014-12"])  # nothing within 3 months of the init month: the ONI outlook
    outlook = seasonal_outlook(frame, table, phase_index="roni", offset=far)
    assert (outlook["phase_index"] == "oni").all()
    np.testing.assert_allclose(outlook["mean"], 0.0)


def test_the_outlook_is_scored_against_the_phase_index_of_its_centre_month() -> None:
    outlook = seasonal_outlook(frame_of(["2001-01"], np.linspace(-1, 1, 12)), np.full((12, 12), 0.3),
                               phase_index="oni")
    months = pd.period_range("2000-01", "2002-12", freq="M")
    observed = pd.Series(np.arange(len(months)) / 10.0, index=months)
    phase = pd.Series(["neutral"] * len(months), index=months, dtype=object)
    frame = outlook_forecast_frame(outlook, observed, phase)
    assert [str(m) for m in frame["target_month"]][:2] == ["2001-03", "2001-04"]  # FMA, MAM
    assert frame["observed_anomaly"].iloc[0] == observed[pd.Period("2001-03", freq="M")]
    assert list(frame["lead"]) == list(SEASONS)


# --------------------------------------------------------------------------- the store

def _outlook_count(engine: Engine, *where: object) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(SeasonalOutlook).where(*where)).scalar_one()


def test_every_forecast_writes_nine_outlook_rows_per_init_month_of_the_phase_index(trained_store) -> None:
    from db.forecast_rows import load_forecasts
    from db.seasonal_outlook import load_seasonal_outlook

    engine = make_engine(trained_store["url"])
    for kind in ("operational", "hindcast", "selection"):
        inits = set(load_forecasts(engine, kind=kind)["init_month"])
        outlook = load_seasonal_outlook(engine, kind=kind)
        assert inits and set(outlook["init_month"]) == inits, kind
        assert (outlook.groupby("init_month")["season"].apply(list) == [list(SEASONS)] * len(inits)).all()
    operational = load_seasonal_outlook(engine, kind="operational")
    assert (operational["phase_index"] == "roni").all()  # the default ENSO_PHASE_INDEX, CPC's file in the mirror
    # RONI = the ONI forecast minus the observed offset (traditional - relative anomaly) of the init month
    forecast = load_forecasts(engine, kind="operational").set_index("lead")["nino34_anomaly"]
    init = pd.Period("2020-06", freq="M")
    from db.phase import load_relative_index

    offset = store.load_index(engine)["anomaly"][init] - load_relative_index(engine)["relative_anomaly"][init]
    expected = [forecast.loc[s:s + 2].mean() - offset for s in SEASONS]
    np.testing.assert_allclose(operational["mean"], expected, atol=1e-9)
    with engine.connect() as conn:
        latest = conn.execute(text("SELECT season, season_label, init_month FROM latest_seasonal_outlook "
                                   "ORDER BY season")).all()
    assert [r.season for r in latest] == list(SEASONS) and latest[0].season_label == "JAS"
    assert {str(r.init_month) for r in latest} == {"2020-06-01"}
    engine.dispose()


def test_an_oni_outlook_of_a_real_forecast_has_its_monthly_probabilities_at_leads_2_to_10(copy_store) -> None:
    from db.forecasting import forecast

    engine = make_engine(copy_store["url"])
    result = forecast(engine, init_month=Month.of(2020, 6), phase_index="oni")
    monthly = result.frame.set_index("lead")
    outlook = result.outlook.set_index("season")
    for season in SEASONS:
        np.testing.assert_allclose(outlook.loc[season, list(PROBABILITY_COLUMNS)].to_numpy(dtype=float),
                                   monthly.loc[season + 1, list(PROBABILITY_COLUMNS)].to_numpy(dtype=float),
                                   atol=1e-12)
        assert outlook.loc[season, "mean"] == pytest.approx(monthly.loc[season + 1, "oni"], abs=1e-12)
    assert _outlook_count(engine, SeasonalOutlook.kind == "operational", SeasonalOutlook.phase_index == "oni") == 9
    engine.dispose()


def test_a_rerun_replaces_the_outlook_and_a_failed_write_leaves_neither(copy_store, monkeypatch) -> None:
    import db.forecasting
    from db.forecasting import forecast

    engine = make_engine(copy_store["url"])
    operational = (SeasonalOutlook.kind == "operational",)
    with engine.connect() as conn:
        first = conn.execute(select(func.min(SeasonalOutlook.created_at)).where(*operational)).scalar_one()
    forecast(engine, init_month=Month.of(2020, 6))
    forecast(engine, init_month=Month.of(2020, 6))
    assert _outlook_count(engine, *operational) == 9
    with engine.connect() as conn:
        assert conn.execute(select(func.min(SeasonalOutlook.created_at)).where(*operational)).scalar_one() > first

    real = db.forecasting.write_seasonal_outlook

    def fails_after_writing(conn, outlook, **kwargs) -> int:  # type: ignore[no-untyped-def]
        real(conn, outlook, **kwargs)
        raise RuntimeError("the store went away")

    monkeypatch.setattr(db.forecasting, "write_seasonal_outlook", fails_after_writing)
    with engine.begin() as conn:  # no forecast of the month yet: a failed run must leave none of either
        conn.execute(SeasonalOutlook.__table__.delete().where(*operational))
        conn.execute(Forecast.__table__.delete().where(Forecast.kind == "operational"))
    with pytest.raises(RuntimeError, match="went away"):
        forecast(engine, init_month=Month.of(2020, 6))
    with engine.connect() as conn:
        forecasts = conn.execute(select(func.count()).select_from(Forecast)
                                 .where(Forecast.kind == "operational")).scalar_one()
    assert forecasts == 0 and _outlook_count(engine, *operational) == 0
    engine.dispose()


def test_the_view_shows_the_newest_operational_outlook_in_sql(engine: Engine) -> None:
    """On SQLite and PostgreSQL: written through the store's writer, read back with plain SQL."""
    from db.seasonal_outlook import write_seasonal_outlook

    with engine.begin() as conn:
        conn.execute(insert(Model).values(
            version="m-outlook", preset="tiny", config={}, sst_source="ersst", train_start=dt.date(1960, 1, 1),
            train_end=dt.date(1989, 12, 1), valid_end=dt.date(1999, 12, 1), base_period="1991-2020",
            normalisation={}, metrics={}, data_fingerprint="f" * 64, weights=b"w"))
        for k, init in enumerate(["2020-05", "2020-06"]):
            outlook = seasonal_outlook(frame_of([init], np.full(12, 0.2 * k)), np.full((12, 12), 0.4),
                                       phase_index="oni")
            assert write_seasonal_outlook(conn, outlook, model_version="m-outlook", kind="operational",
                                          init_months=[init]) == 9
        hindcast = seasonal_outlook(frame_of(["2020-07"], np.ones(12)), np.full((12, 12), 0.4), phase_index="oni")
        write_seasonal_outlook(conn, hindcast, model_version="m-outlook", kind="hindcast", init_months=["2020-07"])
    from pathlib import Path

    query = (Path(__file__).resolve().parents[1] / "db" / "sql" / "examples" / "seasonal_outlook.sql").read_text()
    with engine.connect() as conn:
        rows = conn.execute(text(query)).mappings().all()
        total = conn.execute(text("SELECT count(*) FROM seasonal_outlook")).scalar_one()
    assert total == 27
    assert [r["season"] for r in rows] == list(SEASONS)
    assert {str(r["init_month"]) for r in rows} == {"2020-06-01"}
    assert [str(r["first_month"]) for r in rows][0] == "2020-07-01" and rows[0]["season_label"] == "JAS"
    assert all(abs(r["la_nina_pct"] + r["neutral_pct"] + r["el_nino_pct"] - 100) <= 1 for r in rows)


# --------------------------------------------------------------------------- verification

def test_verify_scores_the_seasonal_outlook_beside_climatology_and_prints_it(copy_store) -> None:
    from db.phase import load_phase_index
    from db.seasonal_outlook import load_seasonal_outlook
    from db.verification import verify

    engine = make_engine(copy_store["url"])
    result = verify(engine)
    assert result.kind == "hindcast"
    scores = result.scores[result.scores["metric"] == "seasonal_rpss"].pivot(index="lead", columns="forecaster",
                                                                               values="value")
    assert list(scores.index) == list(SEASONS)
    assert scores["climatology"].to_numpy() == pytest.approx(0.0, abs=1e-12)
    assert np.isfinite(scores[result.model_version].to_numpy()).all()
    # season 4 by hand: the stored outlooks against RONI's 3-month mean, climatology of the reference years
    index = store.load_index(engine)
    phase = load_phase_index(engine, "roni", index)
    years = (1975, 2004)  # the 30 years ending with the model's selection period (valid_end 2004-12)
    reference = phase_climatology(phase.phase, f"{years[0]}-01", f"{years[1]}-12")
    outlook = load_seasonal_outlook(engine, kind="hindcast")
    season = outlook[outlook["season"] == 4]
    centre = pd.PeriodIndex(season["first_month"], freq="M") + 1
    observed = phase.phase.reindex(centre).to_numpy(object)
    known = np.array([isinstance(p, str) for p in observed])
    by_hand = rpss(season[list(PROBABILITY_COLUMNS)].to_numpy()[known], observed[known],
                   reference.loc[centre.month[known]].to_numpy())
    assert scores.loc[4, result.model_version] == pytest.approx(by_hand.value, rel=1e-9)
    n = result.scores.query("metric == 'seasonal_rpss' and lead == 4")["n"]
    assert (n == by_hand.n).all()
    assert result.seasonal_reliability is not None and (result.seasonal_reliability["count"] > 0).any()
    table = result.table()
    assert "Seasonal outlook (CPC style) RPSS vs the reference phase climatology by season" in table
    assert "Reliability of the model's seasonal outlook probabilities (all seasons pooled" in table
    assert any("seasonal outlook (CPC style):" in note and "of RONI" in note for note in result.notes)
    # the monthly output is still there, and the stored scores include the seasonal ones
    assert "RPSS vs the reference phase climatology by lead" in table
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT count(*) FROM verification_score WHERE metric = 'seasonal_rpss'"))
        assert stored.scalar_one() == 2 * len(SEASONS)
    # verified by ONI, the RONI outlooks are left out, and the note says so
    by_oni = verify(engine, phase_index="oni")
    assert not (by_oni.scores["metric"] == "seasonal_rpss").any()
    assert any("another phase index left out" in note for note in by_oni.notes)
    engine.dispose()


def test_the_report_from_the_store_shows_the_seasonal_outlook(copy_store) -> None:
    from db.reporting import assemble_report
    from db.verification import verify
    from reports.render import render_report

    engine = make_engine(copy_store["url"])
    verify(engine)
    data = assemble_report(engine, copy_store["settings"], Month.of(2020, 6))
    assert data.seasonal_outlook is not None and data.seasonal_outlook.phase_index == "roni"
    assert list(data.seasonal_outlook.seasons["season"]) == list(SEASONS)
    assert data.verification.has_seasonal_scores and data.verification.seasonal_reliability is not None
    rendered = render_report(data)
    assert "seasonal_outlook.png" in rendered.images
    assert "Seasonal outlook (CPC style)" in rendered.html and "Seasonal RPSS by season" in rendered.html
    engine.dispose()
