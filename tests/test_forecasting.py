"""Training, the registry, forecasts and hindcasts against a store (the `tiny` preset on synthetic data)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select, text

from db import registry, store
from db.engine import make_engine
from db.forecasting import forecast, hindcast
from db.forecasts import load_forecasts
from db.schema import Forecast
from enso.months import Month


def test_training_registers_a_promoted_model_with_its_recipe_and_scores(trained_store) -> None:
    engine = make_engine(trained_store["url"])
    [info] = registry.list_models(engine)
    assert info.version == trained_store["version"] and info.preset == "tiny"
    assert info.status == "champion"  # it beat persistence on validation (the synthetic ENSO is predictable)
    assert (info.train_end, info.valid_end) == (Month.of(1994, 12), Month.of(2004, 12))
    metrics = info.metrics
    assert metrics["validation"]["mean_rmse"] < metrics["validation_persistence"]["mean_rmse"]
    assert len(metrics["validation"]["rmse"]) == 12 and all(n > 100 for n in metrics["validation"]["n"])
    assert metrics["test"]["period"].startswith("2005-01")
    model = registry.load_model(engine, info.version)
    assert model.preset.name == "tiny" and model.data_fingerprint


def test_operational_forecast_rows_per_lead(trained_store) -> None:
    engine = make_engine(trained_store["url"])
    rows = load_forecasts(engine, kind="operational")
    assert list(rows["lead"]) == list(range(1, 13))
    assert {str(m) for m in rows["init_month"]} == {"2020-06"}
    assert [str(m) for m in rows["target_month"]] == [str(Month.of(2020, 6) + k) for k in range(1, 13)]
    probs = rows[["p_la_nina", "p_neutral", "p_el_nino"]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)
    index = store.load_index(engine)
    offsets = index["nino34"] - index["anomaly"]  # the table's own climatology, month by month
    clim = offsets.groupby(offsets.index.month).mean()
    expected = rows["nino34_anomaly"].to_numpy() + clim.reindex([p.month for p in rows["target_month"]]).to_numpy()
    np.testing.assert_allclose(rows["nino34"].to_numpy(), expected, atol=0.01)  # the file rounds to 0.01 °C


def test_rerunning_a_forecast_replaces_never_duplicates(copy_store) -> None:
    engine = make_engine(copy_store["url"])
    forecast(engine, init_month=Month.of(2020, 6))
    forecast(engine, init_month=Month.of(2020, 6))
    with engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(Forecast).where(Forecast.kind == "operational")).scalar()
    assert n == 12


def test_a_missing_input_month_is_named_and_nothing_is_written(copy_store) -> None:
    engine = make_engine(copy_store["url"])
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM sst_grid WHERE month = '2020-04-01'"))
    before = len(load_forecasts(engine))
    with pytest.raises(LookupError, match="2020-04"):
        forecast(engine, init_month=Month.of(2020, 6))
    assert len(load_forecasts(engine)) == before


def test_hindcasts_are_out_of_sample_only(copy_store) -> None:
    engine = make_engine(copy_store["url"])
    with pytest.raises(ValueError, match="not be out of sample"):
        hindcast(engine, Month.of(2004, 1), Month.of(2006, 12))
    hind = load_forecasts(engine, kind="hindcast")
    assert str(hind["init_month"].min()) == "2005-01" and str(hind["init_month"].max()) == "2019-12"
    assert len(hind) == 15 * 12 * 12


def test_promote_by_hand_and_the_newest_model_without_champion(copy_store) -> None:
    engine = make_engine(copy_store["url"])
    version = copy_store["version"]
    with engine.begin() as conn:
        conn.execute(text("UPDATE model SET status = 'candidate'"))
    choice = registry.choose_model(engine)
    assert choice.info.version == version and "no champion" in choice.reason
    assert registry.promote(engine, version).status == "champion"
    assert registry.choose_model(engine).reason == "champion"
    with pytest.raises(LookupError, match="enso models list"):
        registry.promote(engine, "nope")


def test_the_forecast_table_is_queryable_as_documented(trained_store) -> None:
    engine = make_engine(trained_store["url"])
    frame = pd.read_sql("SELECT lead_months, nino34_anomaly, phase FROM latest_forecast ORDER BY lead_months",
                        engine)
    assert list(frame["lead_months"]) == list(range(1, 13))
