"""Verification, the report and its email, from a store filled the real way.

One store is built per module (about 20 s): the synthetic climate's ERSST grids,
CPC index and CPC relative index for 1960-2020 written to a loopback mirror and backfilled over
HTTP, the ``tiny`` preset trained (up to 1989-12, selected on 1990-1999, two
epochs), hindcasts for init months 2000-01..2019-12, operational forecasts from
2020-05 and 2020-06, and one verification. Tests copy it: the SQLite file, or
its rows into this session's PostgreSQL database.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import pytest
import torch
from sqlalchemy import Engine, delete, func, insert, select, text

from db import codec
from db.engine import make_engine, opened_engine
from db.forecasting import forecast, hindcast, train_and_register
from db.ingest import backfill, ingest_index, ingest_relative
from db.migrate import upgrade
from db.phase import load_relative_index
from db.reporting import assemble_report, email_report, render_and_store
from db import registry
from db.phase import load_phase_index
from db.schema import Base, EmailDelivery, Forecast, ForecastGrid, Model, Report, SstGrid, VerificationScore
from db.store import VintageFile, append_vintage, load_index, month_date
from db.verification import (
    BASELINES,
    IndexBaselines,
    linear_eof_forecasts,
    climatology_years,
    eof_base,
    load_scores,
    verify,
)
from enso.config import Settings
from enso.mirror import MirrorServer, write_mirror
from enso.months import Month, month_range
from enso.nino34 import PHASES, oni, phases_of
from flows.cli import main
from reports.data import SCORE_COLUMNS, MonthSpan, Verification
from reports.email import EmailDeliveryError
from reports.render import render_report
from tests.conftest import _truncate
from tests.test_report_email import Recorder, smtp_server

FIRST, LAST = Month.of(1960, 1), Month.of(2020, 12)
HINDCAST = (Month.of(2000, 1), Month.of(2019, 12))
INIT = Month.of(2020, 6)
PASSWORD = "pa55-Word-never-shown"


@dataclass(frozen=True)
class Template:
    path: Path
    version: str


def settings_for(url: str, tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = dict(database_url=url, sst_source="ersst", data_dir=tmp_path / "var",
                                     report_dir=tmp_path / "reports", report_from="ENSO <enso@forecast.example>",
                                     report_to=["alice@example.org"], smtp_host="127.0.0.1", smtp_security="none")
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("filled-store")
    write_mirror(folder / "mirror", FIRST, LAST, seed=5, sst_sources=("ersst",), relative_index=True)
    url = f"sqlite:///{folder / 'store.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    with MirrorServer(folder / "mirror") as srv:
        settings = settings_for(url, folder, **srv.settings_overrides())
        assert backfill(engine, settings, "ersst", FIRST, LAST, progress=False).complete
        assert ingest_index(engine, settings).outcome == "stored"
        assert [r.outcome for r in ingest_relative(engine, settings)] == ["stored"]  # CPC's RONI file
    trained = train_and_register(engine, settings, "tiny", train_end=Month.of(1989, 12),
                                 valid_end=Month.of(1999, 12), max_epochs=2, progress=False)
    hindcast(engine, *HINDCAST)
    for init in (INIT - 1, INIT):
        forecast(engine, init_month=init)
    verify(engine)
    engine.dispose()
    return Template(folder / "store.sqlite", trained.version)


def _copy_rows(source: Engine, target: Engine) -> None:
    """Every table's rows from one store into an empty one (ids kept; PostgreSQL sequences moved on)."""
    with source.connect() as src, target.begin() as dst:
        for table in Base.metadata.sorted_tables:
            rows = [dict(r._mapping) for r in src.execute(table.select())]
            if rows:
                dst.execute(table.insert(), rows)
            if "id" in table.c:
                dst.execute(text(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                                 f"coalesce(max(id), 0) + 1, false) FROM {table.name}"))


@pytest.fixture(params=["sqlite", "postgresql"])
def filled_url(request: pytest.FixtureRequest, template: Template, tmp_path: Path) -> Iterator[str]:
    """A copy of the filled store in SQLite or PostgreSQL."""
    sqlite_url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    shutil.copy(template.path, tmp_path / "store.sqlite")
    if request.param == "sqlite":
        yield sqlite_url
        return
    url = request.getfixturevalue("pg_url")
    source, target = make_engine(sqlite_url), make_engine(url)
    _truncate(target)
    _copy_rows(source, target)
    source.dispose()
    yield url
    _truncate(target)
    target.dispose()


@pytest.fixture
def sqlite_url(template: Template, tmp_path: Path) -> str:
    shutil.copy(template.path, tmp_path / "store.sqlite")
    return f"sqlite:///{tmp_path / 'store.sqlite'}"


@pytest.fixture
def filled(filled_url: str) -> Iterator[Engine]:
    with opened_engine(filled_url) as engine:
        yield engine


@pytest.fixture
def store(sqlite_url: str) -> Iterator[Engine]:
    with opened_engine(sqlite_url) as engine:
        yield engine


def _count(engine: Engine, table: type, *where: object) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()


def _stored(engine: Engine, model_version: str, metric: str) -> pd.DataFrame:
    """Stored scores of a metric over all target months: rows lead, columns forecaster, value and n."""
    with engine.connect() as conn:
        rows = conn.execute(select(VerificationScore.forecaster, VerificationScore.lead_months,
                                   VerificationScore.value, VerificationScore.n).where(
            VerificationScore.model_version == model_version, VerificationScore.metric == metric,
            VerificationScore.kind == "hindcast", VerificationScore.target_calendar_month == 0)).all()
    return pd.DataFrame(rows, columns=["forecaster", "lead", "value", "n"]).pivot(
        index="lead", columns="forecaster", values=["value", "n"])


# --------------------------------------------------------------------------- verification

def test_verify_scores_the_model_and_every_baseline_on_the_same_pairs(filled: Engine, template: Template) -> None:
    before = _count(filled, VerificationScore)
    result = verify(filled)
    assert result.model_version == template.version and result.period == HINDCAST
    assert result.n_pairs == 240 * 12
    assert _count(filled, VerificationScore) == before == result.n_scores  # rerun replaced, not added

    rmse = _stored(filled, template.version, "rmse")
    forecasters = [template.version, *BASELINES]
    assert sorted(rmse["n"].columns) == sorted(forecasters)
    assert (rmse["n"].to_numpy() == 240).all()
    with filled.connect() as conn:
        periods = conn.execute(select(VerificationScore.period_start, VerificationScore.period_end).distinct()).all()
    assert periods == [(month_date(HINDCAST[0]), month_date(HINDCAST[1]))]

    scores = load_scores(filled, template.version)
    assert list(scores.columns) == list(SCORE_COLUMNS) and len(scores) == result.n_scores
    table = Verification(scores, template.version, MonthSpan(*HINDCAST)).by_lead("rmse")
    np.testing.assert_allclose(table[list(BASELINES)].to_numpy(), rmse["value"][list(BASELINES)].to_numpy())

    # Persistence and the model, by hand: index anomalies and the forecast_verification view.
    anomaly = load_index(filled)["anomaly"]
    for lead in (1, 6, 12):
        inits = pd.period_range(str(HINDCAST[0]), str(HINDCAST[1]), freq="M")
        errors = anomaly.reindex(inits).to_numpy() - anomaly.reindex(inits + lead).to_numpy()
        assert rmse.loc[lead, ("value", "persistence")] == pytest.approx(np.sqrt(np.mean(errors ** 2)), rel=1e-9)
    with filled.connect() as conn:
        view = pd.DataFrame(conn.execute(text(
            "SELECT lead_months, anomaly_error FROM forecast_verification "
            "WHERE kind = 'hindcast' AND observed_anomaly IS NOT NULL")).all(), columns=["lead", "error"])
    by_hand = view.groupby("lead")["error"].apply(lambda e: np.sqrt(np.mean(e.to_numpy() ** 2)))
    np.testing.assert_allclose(rmse[("value", template.version)].to_numpy(), by_hand.to_numpy(), rtol=1e-9)

    # The EOF model beats plain persistence at lead 1 on this climate; climatology has no correlation.
    acc = _stored(filled, template.version, "acc")
    assert acc.loc[1, ("value", "linear_eof")] > 0.8
    assert acc[("value", "climatology")].isna().all()
    rpss = _stored(filled, template.version, "rpss")
    assert rpss[("value", "climatology")].to_numpy() == pytest.approx(0.0, abs=1e-12)
    for phase in PHASES:  # the reference climatology has no Brier skill over itself
        bss = _stored(filled, template.version, f"bss_{phase}")
        assert bss[("value", "climatology")].to_numpy() == pytest.approx(0.0, abs=1e-12)
        assert np.isfinite(bss[("value", template.version)].to_numpy()).all()
    # CRPS for every forecaster that states a spread: the model (its calibrated sd) and the Gaussian baselines.
    crps = _stored(filled, template.version, "crps")
    assert sorted(crps["value"].columns) == sorted(["damped_persistence", "linear_eof", "persistence",
                                                    template.version])
    assert (crps["value"].to_numpy() < rmse["value"][list(crps["value"].columns)].to_numpy()).all()
    assert result.reliability is not None and set(result.reliability["phase"]) == set(PHASES)
    assert (result.reliability.groupby("phase")["count"].sum() > 0).all()


def test_the_table_shows_model_and_baselines(store: Engine, template: Template) -> None:
    result = verify(store)
    table = result.table()
    print(table)
    for text_ in ("ACC by lead", "RMSE (°C) by lead", "Heidke skill score by lead", "RPSS", *BASELINES,
                  "CRPS (°C)", "Brier skill score of la_nina", "Brier skill score of el_nino",
                  "Reliability of the model's phase probabilities", "largest gap"):
        assert text_ in table
    # The stated bases: the EOF model's 30 years ending with training, the reference's ending with selection.
    assert "anomalies against 1960-1989" in table and "over 1970-01..1999-12" in table
    lines = table.splitlines()
    acc = lines.index("ACC by lead:")
    assert lines[acc + 1].split() == ["forecaster", *map(str, range(1, 13))]
    assert lines[acc + 2].split()[0] == "model" and len(lines[acc + 2].split()) == 1 + 12


def test_verification_scores_observed_targets_only_and_grows_as_they_arrive(store: Engine,
                                                                             template: Template) -> None:
    late = pd.period_range("2020-07", str(LAST), freq="M")
    observed = load_index(store)
    unobserved = observed.copy()
    unobserved.loc[late, ["anomaly", "phase"]] = [np.nan, None]
    with store.begin() as conn:  # a vintage without the late months' anomalies, then the full one again
        file = VintageFile(url="u", sha256="e" * 64, format="cpc-monthly", downloaded_at=dt.datetime.now(dt.timezone.utc))
        append_vintage(conn, "nino34", unobserved, file, seq=observed.attrs["vintage_seq"] + 1, base_period="1991-2020")
    result = verify(store)
    assert result.n_pairs == 240 * 12 - 21  # targets 2020-07..12 from inits up to 2019-12: 6+5+4+3+2+1
    with store.begin() as conn:
        append_vintage(conn, "nino34", observed, file, seq=observed.attrs["vintage_seq"] + 2, base_period="1991-2020")
    rows = _count(store, VerificationScore)
    assert verify(store).n_pairs == 240 * 12  # the same verification, extended: its rows replaced, not added
    assert _count(store, VerificationScore) == rows


def test_two_models_keep_their_own_baseline_scores(store: Engine, template: Template) -> None:
    """Baselines are fitted on each model's training period, so each model has its own baseline rows."""
    with store.begin() as conn:
        model = dict(conn.execute(select(Model).where(Model.version == template.version)).first()._mapping)
        conn.execute(insert(Model).values(dict(model, version="older-training", status="candidate",
                                               train_end=month_date(Month.of(1979, 12)))))
        rows = [dict(r._mapping) for r in conn.execute(select(Forecast).where(Forecast.kind == "hindcast"))]
        conn.execute(insert(Forecast), [dict(r, id=None, model_version="older-training") for r in rows])
    verify(store, model_version="older-training")
    theirs, ours = _stored(store, "older-training", "rmse"), _stored(store, template.version, "rmse")
    pd.testing.assert_series_equal(theirs[("value", "persistence")], ours[("value", "persistence")])
    assert not np.allclose(theirs[("value", "damped_persistence")], ours[("value", "damped_persistence")])


def test_verify_without_observed_forecasts_names_what_to_run(store: Engine) -> None:
    with pytest.raises(LookupError, match=r"no hindcast forecast with init months 2021-01\.\.2021-12.*enso hindcast"):
        verify(store, start=Month.of(2021, 1), end=Month.of(2021, 12))


def test_the_observed_phase_follows_the_phase_index_and_the_anomaly_scores_do_not(store: Engine) -> None:
    """RONI (the default) or ONI defines the observed phase; the anomalies stay the traditional index's."""
    by_roni, by_oni = verify(store), verify(store, phase_index="oni")

    def overall(result, metric: str) -> pd.Series:
        scores = result.scores
        chosen = scores[(scores["metric"] == metric) & (scores["target_calendar_month"] == 0)]
        return chosen.set_index(["forecaster", "lead"])["value"].sort_index()

    for metric in ("acc", "rmse"):
        pd.testing.assert_series_equal(overall(by_roni, metric), overall(by_oni, metric))
    assert not overall(by_roni, "accuracy").equals(overall(by_oni, "accuracy"))
    assert "observed phase from RONI: CPC's relative Niño 3.4 file 1960-01..2020-12" in by_roni.notes
    assert "observed phase from ONI: the Niño 3.4 index 1960-01..2020-12" in by_oni.notes
    assert "note: observed phase from RONI" in by_roni.table()


def _change_after(engine: Engine, first: Month) -> None:
    """From ``first`` on, every stored grid 1.5 °C warmer and the index anomalies different (a new vintage, its
    ONI and phase recomputed): a later climate that no baseline may see."""
    with engine.begin() as conn:
        rows = conn.execute(select(SstGrid.id, SstGrid.nlat, SstGrid.nlon, SstGrid.values_zstd)
                            .where(SstGrid.month >= month_date(first))).all()
        for row in rows:
            values = codec.unpack_float32(row.values_zstd, (row.nlat, row.nlon)) + np.float32(1.5)
            conn.execute(SstGrid.__table__.update().where(SstGrid.id == row.id)
                         .values(values_zstd=codec.pack_float32(values)))
        index = load_index(engine)
        changed = index.copy()
        later = changed.index >= pd.Period(str(first), "M")
        changed.loc[later, "anomaly"] = changed.loc[later, "anomaly"] * -2.0 + 1.0
        touched = changed.index >= pd.Period(str(first - 1), "M")  # the ONI centred on first - 1 needs first
        recomputed = oni(changed["anomaly"]).round(2)
        changed.loc[touched, "oni"] = recomputed[touched]
        changed.loc[touched, "phase"] = phases_of(recomputed[touched]).to_numpy()
        file = VintageFile(url="u", sha256="c" * 64, format="cpc-monthly", downloaded_at=dt.datetime.now(dt.timezone.utc))
        append_vintage(conn, "nino34", changed, file, seq=index.attrs["vintage_seq"] + 1, base_period="1991-2020")


def test_no_baseline_of_verify_sees_a_month_after_the_first_scored_init(store: Engine, template: Template) -> None:
    """Grids and index changed from the month after the first scored init month (2000-01) on: the index
    baselines' fitted parameters and the linear EOF model's forecasts from init months whose inputs precede
    the change stay the same; the stated bases are causal. (The phase of the selection period's last month is
    the ONI centred on it, which needs the first scored init month: known when that forecast is made.)"""
    info = registry.model_info(store, template.version)
    inits = pd.period_range("1995-01", "1999-12", freq="M")

    def fitted() -> tuple[IndexBaselines, pd.DataFrame, tuple[int, int]]:
        index = load_phase_index(store, "oni", load_index(store)).observed(load_index(store))
        eof = linear_eof_forecasts(store, info.sst_source, index, inits, train_start=info.train_start,
                                   train_end=info.train_end, valid_end=info.valid_end)[0]
        return IndexBaselines.fit(index, info), eof, eof_base(store, info.sst_source, info.train_end, index)

    before, eof_before, base_before = fitted()
    assert base_before == (1960, 1989) and before.reference_years == (1970, 1999)
    _change_after(store, HINDCAST[0] + 1)
    after, eof_after, base_after = fitted()
    assert base_after == base_before and after.reference_years == before.reference_years
    pd.testing.assert_frame_equal(before.phase_climatology, after.phase_climatology)
    assert before.persistence.error_sd == after.persistence.error_sd
    for table in ("damping", "init_mean", "target_mean"):
        pd.testing.assert_frame_equal(getattr(before.damped_persistence, table),
                                      getattr(after.damped_persistence, table))
    assert before.damped_persistence.error_sd == after.damped_persistence.error_sd
    pd.testing.assert_frame_equal(eof_before, eof_after)
    assert "nino34_anomaly_sd" in eof_after and eof_after["nino34_anomaly_sd"].gt(0).all()


def test_too_short_a_record_for_a_causal_eof_base_is_a_clear_error(store: Engine, template: Template) -> None:
    with store.begin() as conn:
        conn.execute(Model.__table__.update().where(Model.version == template.version)
                     .values(train_end=month_date(Month.of(1969, 12))))  # 1960-1969: ten years
    with pytest.raises(ValueError, match=r"linear EOF baseline .*causal base period ending 1969 needs at least 15"):
        verify(store)


def test_climatology_years_fall_back_to_the_latest_complete_thirty() -> None:
    assert climatology_years(month_range("1960-01", "2020-12"), (1991, 2020)) == (1991, 2020)
    assert climatology_years(month_range("1950-01", "1985-06"), (1991, 2020)) == (1955, 1984)
    gappy = [m for m in month_range("1950-01", "2010-12") if m != Month.of(1990, 4)]
    assert climatology_years(gappy, (1991, 2020)) == (1960, 1989)  # the longer run, before the gap: its last 30


# --------------------------------------------------------------------------- the report

def test_the_report_assembled_from_the_store_renders_its_forecast(filled: Engine, template: Template,
                                                                   tmp_path: Path) -> None:
    data = assemble_report(filled, settings_for("sqlite://", tmp_path))
    assert data.init_month == INIT and data.model.version == template.version and data.model.is_champion
    with filled.connect() as conn:
        stored = conn.execute(select(Forecast.lead_months, Forecast.nino34_anomaly, Forecast.phase).where(
            Forecast.kind == "operational", Forecast.init_month == month_date(INIT))
            .order_by(Forecast.lead_months)).all()
    assert data.forecast.leads["nino34_anomaly"].tolist() == [r.nino34_anomaly for r in stored]
    assert data.forecast.leads["phase"].tolist() == [r.phase for r in stored]
    assert data.forecast.has_range and (data.forecast.leads["anomaly_low"] < data.forecast.leads["anomaly_high"]).all()

    index = load_index(filled)
    assert data.current.nino34_anomaly == index.loc[pd.Period(str(INIT), "M"), "anomaly"]
    assert len(data.current.recent_anomalies) == 48
    assert data.previous_forecast is not None and data.previous_forecast.init_month == INIT - 1
    assert data.baselines is not None and (data.baselines["persistence"] == data.current.nino34_anomaly).all()
    last_month = data.outcomes[(data.outcomes["lead"] == 1)].iloc[-1]
    assert last_month["init_month"] == INIT - 1
    assert last_month["observed_anomaly"] == data.current.nino34_anomaly
    assert data.verification is not None and data.verification.period.first == HINDCAST[0]
    lead1_with_phase = _count(filled, Forecast, Forecast.kind == "hindcast", Forecast.lead_months == 1)
    assert int(data.verification.contingency.to_numpy().sum()) == lead1_with_phase
    assert data.observed_map is not None and "1991-2020" in data.observed_map.title
    assert data.predicted_map is not None and data.predicted_map.month == INIT + 1
    assert "damped persistence per cell" in data.predicted_map.title
    assert {s.last_month for s in data.sources} == {INIT}

    assert data.verification.has_reliability
    with_phase = _count(filled, Forecast, Forecast.kind == "hindcast", Forecast.target_month <= month_date(LAST - 1))
    assert data.verification.reliability["count"].sum() == 3 * with_phase  # 2020-12 has no RONI yet
    assert "1970-01 to 1999-12" in data.verification.reference_climatology
    assert any("against 1960-1989" in c for c in data.method.caveats)

    rendered = render_report(data)
    for expected in (template.version, "Jun 2020", f"{data.forecast.leads['nino34_anomaly'].iloc[0]:+.2f}",
                     "Reliability of the phase probabilities", "Brier skill score, El Niño by lead",
                     "CRPS (°C) by lead"):
        assert expected in rendered.html
    assert "reliability.png" in rendered.images


def test_the_report_shows_oni_and_roni_and_its_phases_follow_the_phase_index(store: Engine,
                                                                             tmp_path: Path) -> None:
    by_roni = assemble_report(store, settings_for("sqlite://", tmp_path), INIT)
    by_oni = assemble_report(store, settings_for("sqlite://", tmp_path, phase_index="oni"), INIT)
    index, relative = load_index(store), load_relative_index(store)
    month = pd.Period(str(INIT), "M")  # the store holds July 2020 too, so the ONI and RONI of June are known
    for data in (by_roni, by_oni):  # both indices, side by side, whichever defines the phase
        assert (data.current.oni_month, data.current.roni_month) == (INIT, INIT)
        assert data.current.oni == index.loc[month, "oni"] and data.current.roni == relative.loc[month, "roni"]
    assert (by_roni.current.phase_index, by_oni.current.phase_index) == ("roni", "oni")
    assert by_roni.current.observed_phase == relative.loc[month, "phase"]
    assert by_oni.current.observed_phase == index.loc[month, "phase"]
    assert by_roni.current.phase_source == "RONI: CPC's relative Niño 3.4 file 1960-01..2020-12"
    by_roni_table, by_oni_table = by_roni.verification.contingency, by_oni.verification.contingency
    observed_el_nino = [relative.loc[pd.Period(str(m + 1), "M"), "phase"] == "el_nino"
                        for m in month_range(*HINDCAST)]
    assert int(by_roni_table["el_nino"].sum()) == sum(observed_el_nino)  # columns: the RONI phase of the target
    assert not by_roni_table.equals(by_oni_table)
    outcomes = by_roni.outcomes.dropna(subset=["observed_phase"])
    assert outcomes["observed_phase"].tolist() == [relative.loc[t, "phase"] for t in outcomes["target_month"]]
    assert "from its RONI (ENSO_PHASE_INDEX)" in " ".join(by_roni.method.caveats)
    assert "Observed phase (from ONI)" in render_report(by_oni).html


def test_a_stored_lead1_grid_becomes_the_predicted_map(store: Engine, tmp_path: Path, template: Template) -> None:
    lat, lon = np.arange(-40.0, 41.0, 2.0), np.arange(0.0, 360.0, 2.0)
    values = np.full((lat.size, lon.size), 0.5, dtype=np.float32)
    with store.begin() as conn:
        conn.execute(delete(ForecastGrid).where(ForecastGrid.model_version == template.version))
        conn.execute(insert(ForecastGrid).values(
            model_version=template.version, kind="operational", init_month=month_date(INIT),
            target_month=month_date(INIT + 1), nlat=lat.size, nlon=lon.size, lat=codec.pack_coords(lat),
            lon=codec.pack_coords(lon), values_zstd=codec.pack_float32(values)))
    predicted = assemble_report(store, settings_for("sqlite://", tmp_path), INIT).predicted_map
    assert predicted is not None and predicted.month == INIT + 1
    assert predicted.lat.min() >= -30 and predicted.lat.max() <= 30 and predicted.lon.min() >= 100
    assert np.all(predicted.anomaly == 0.5)


def test_a_month_without_forecast_is_a_clear_error(store: Engine, tmp_path: Path) -> None:
    with pytest.raises(LookupError, match=r"2020-07.*enso forecast --init 2020-07"):
        assemble_report(store, settings_for("sqlite://", tmp_path), Month.of(2020, 7))


def test_render_and_store_writes_the_file_and_one_row(filled: Engine, filled_url: str, tmp_path: Path,
                                                      template: Template) -> None:
    settings = settings_for(filled_url, tmp_path)
    first = render_and_store(filled, settings, flow_run_id="run-1")
    assert first.path == settings.report_dir / "enso-report-2020-06.html"
    second = render_and_store(filled, settings, INIT, flow_run_id="run-2")
    assert second.path.read_text(encoding="utf-8") == second.rendered.html
    assert [p.name for p in second.path.parent.iterdir()] == ["enso-report-2020-06.html"]  # no temp file left
    with filled.connect() as conn:
        rows = conn.execute(select(Report)).all()
    assert len(rows) == 1
    row = rows[0]
    assert row.model_version == template.version and row.flow_run_id == "run-2"
    assert row.sha256 == second.sha256
    assert row.html == second.path.read_text(encoding="utf-8")


# --------------------------------------------------------------------------- email

def test_the_report_is_emailed_once_unless_forced(store: Engine, sqlite_url: str, tmp_path: Path) -> None:
    handler = Recorder()
    with smtp_server(handler) as port:
        settings = settings_for(sqlite_url, tmp_path, smtp_port=port)
        stored = render_and_store(store, settings)
        sent = email_report(store, settings, INIT)
        assert sent.status == "sent" and sent.message_id and len(handler.received) == 1
        again = email_report(store, settings, INIT)
        assert again.status == "already sent" and again.message_id == sent.message_id
        assert len(handler.received) == 1
        forced = email_report(store, settings, INIT, force=True)
        assert forced.status == "sent" and len(handler.received) == 2
    message = email.message_from_bytes(handler.received[0][2], policy=email.policy.default)
    attachment = next(part for part in message.iter_attachments())
    assert attachment.get_filename() == "enso-report-2020-06.html"
    assert attachment.get_content() == stored.path.read_text(encoding="utf-8")
    assert _count(store, EmailDelivery, EmailDelivery.status == "sent") == 2


def test_a_refused_smtp_connection_is_recorded_and_raised_without_the_password(
        store: Engine, sqlite_url: str, tmp_path: Path) -> None:
    with smtp_server(Recorder()) as port:
        pass  # the port is closed again: connections are refused
    settings = settings_for(sqlite_url, tmp_path, smtp_port=port, smtp_user="reporter", smtp_password=PASSWORD)
    render_and_store(store, settings)
    with pytest.raises(EmailDeliveryError, match="2020-06") as raised:
        email_report(store, settings, INIT, retries=1, backoff=0.01)
    assert PASSWORD not in str(raised.value) and raised.value.__cause__ is None
    with store.connect() as conn:
        rows = conn.execute(select(EmailDelivery)).all()
    assert [(r.status, r.attempts) for r in rows] == [("failed", 2)]
    assert "refused" in rows[0].message.lower() and PASSWORD not in rows[0].message


def test_email_without_recipients_says_to_set_them(store: Engine, sqlite_url: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ENSO_REPORT_TO"):
        email_report(store, settings_for(sqlite_url, tmp_path, report_to=[]), INIT)
    assert _count(store, EmailDelivery) == 0


# --------------------------------------------------------------------------- SQL view and command line

def test_forecast_verification_view_joins_observations_on_postgresql(pg_url: str, template: Template,
                                                                     tmp_path: Path) -> None:
    shutil.copy(template.path, tmp_path / "store.sqlite")
    source, target = make_engine(f"sqlite:///{tmp_path / 'store.sqlite'}"), make_engine(pg_url)
    _truncate(target)
    try:
        _copy_rows(source, target)
        with target.connect() as conn:
            rows = conn.execute(text(
                "SELECT target_month, forecast_anomaly, observed_anomaly, observed_phase, anomaly_error, phase_hit "
                "FROM forecast_verification WHERE kind = 'operational' AND init_month = :init "
                "ORDER BY target_month"), {"init": month_date(INIT)}).all()
        index = load_index(target)
    finally:
        _truncate(target)
        source.dispose()
        target.dispose()
    assert [Month.from_date(r.target_month) for r in rows] == month_range(INIT + 1, INIT + 12)
    observed = [r for r in rows if Month.from_date(r.target_month) <= LAST]
    assert len(observed) == 6
    for r in observed:
        truth = index.loc[pd.Period(r.target_month, "M")]
        assert r.observed_anomaly == truth["anomaly"]
        assert r.anomaly_error == pytest.approx(r.forecast_anomaly - truth["anomaly"])
        assert (r.observed_phase is None) == (r.phase_hit is None)
    assert observed[-1].observed_phase is None  # 2020-12: its ONI needs 2021-01
    for r in rows[6:]:
        assert r.observed_anomaly is None and r.observed_phase is None and r.anomaly_error is None


def test_enso_verify_and_report_commands(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ENSO_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("ENSO_REPORT_DIR", str(tmp_path / "out"))
    monkeypatch.delenv("ENSO_REPORT_TO", raising=False)
    assert main(["verify", "--start", "2010-01", "--end", "2019-12"]) == 0
    out = capsys.readouterr().out
    assert "init months 2010-01..2019-12" in out and "linear_eof" in out and "written to table verification_score" in out
    with opened_engine(sqlite_url) as engine:
        with engine.connect() as conn:
            assert conn.execute(select(func.count(func.distinct(VerificationScore.period_start)))).scalar_one() == 2
            version = conn.execute(select(Model.version)).scalar_one()
        widest = load_scores(engine, version)  # the widest stored period, not the newest
    assert widest.query("lead == 1 and metric == 'rmse' and target_calendar_month == 0")["n"].tolist() == [240] * 5
    assert main(["report"]) == 0
    assert str(tmp_path / "out" / "enso-report-2020-06.html") in capsys.readouterr().out
    assert main(["report", "--init", "2020-07"]) == 2
    assert "enso forecast --init 2020-07" in capsys.readouterr().err
    assert main(["report", "--email"]) == 2
    assert "ENSO_REPORT_TO" in capsys.readouterr().err
