"""Training, the registry, forecasts and hindcasts against a store (the `tiny` preset on synthetic data)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select, text

from db import registry, store
from db.engine import make_engine
from db.forecast_rows import load_forecasts
from db.forecasting import forecast, hindcast
from db.schema import Forecast
from enso.months import Month


def test_training_registers_the_model_with_its_recipe_samples_and_promotion_margins(trained_store) -> None:
    engine = make_engine(trained_store["url"])
    [info] = registry.list_models(engine)
    assert info.version == trained_store["version"] and info.preset == "tiny"
    assert (info.train_end, info.valid_end) == (Month.of(1994, 12), Month.of(2004, 12))
    metrics = info.metrics
    assert len(metrics["validation"]["rmse"]) == 12 and all(n > 100 for n in metrics["validation"]["n"])
    assert metrics["test"]["period"].startswith("2005-01")
    # the whole record trains: the grids start in 1961 (the first inits follow the 10-year anomaly warm-up)
    periods = metrics["periods"]
    assert periods["train_first_init"] < "1972-01" and periods["n_train"] > 250 and periods["n_valid"] == 119
    assert periods["refit"] and periods["n_refit"] > periods["n_train"] + periods["n_valid"] - 24
    # promotion compares the candidate with four rivals on the same selection cases; the decision follows
    selection = metrics["selection"]
    assert set(selection["margins"]) == {"persistence", "damped_persistence", "linear_eof"}  # no champion yet
    for name, margin in selection["margins"].items():
        assert margin == pytest.approx(selection[name]["mean_rmse"] - selection["candidate"]["mean_rmse"], abs=1e-4)
        assert all(n <= 119 for n in selection[name]["n"])  # targets inside the selection window only
    training = trained_store["training"]
    assert training.promoted == all(m > 0 for m in selection["margins"].values())
    assert training.reason.startswith("promoted" if training.promoted else "not promoted")
    model = registry.load_model(engine, info.version)
    assert model.preset.name == "tiny" and model.data_fingerprint
    assert model.as_selected().member_states is not model.member_states
    # the checkpoints of a registered model are gone
    assert not any((trained_store["settings"].data_dir / "checkpoints").glob("tiny-*"))


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


def test_retraining_after_a_new_month_in_the_same_data_directory_uses_rolling_windows(copy_store) -> None:
    """`enso train` with no periods, twice in one data directory with a month added between: each run has
    its own checkpoint folder (removed once registered), and the second learns from the new month."""
    from db.forecasting import train_and_register

    engine = make_engine(copy_store["url"])
    settings = copy_store["settings"].model_copy(update={"model_preset": "tiny", "model_members": 1})
    with engine.begin() as conn:  # hold the newest month back, as if not yet published
        conn.execute(text("CREATE TABLE held AS SELECT * FROM sst_grid WHERE month = '2020-06-01'"))
        conn.execute(text("DELETE FROM sst_grid WHERE month = '2020-06-01'"))
    first = train_and_register(engine, settings, progress=False, max_epochs=1)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO sst_grid SELECT * FROM held"))
    second = train_and_register(engine, settings, progress=False, max_epochs=1)
    windows = [r.metrics["periods"] for r in (first, second)]
    assert [w["valid_end"] for w in windows] == ["2020-05", "2020-06"]
    assert [w["train_end"] for w in windows] == ["2010-05", "2010-06"]  # ENSO_VALID_YEARS = 10
    assert all(w["refit"] for w in windows) and windows[1]["n_refit"] == windows[0]["n_refit"] + 1
    assert first.version != second.version
    assert registry.load_model(engine, second.version).data_fingerprint != \
        registry.load_model(engine, first.version).data_fingerprint
    assert not any((settings.data_dir / "checkpoints").glob("tiny-*"))
