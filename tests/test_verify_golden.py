"""Golden numbers: every reference number of ``verification.md`` from the real McNoldy file.

Validation target months 1990-07 .. 2020-08 (362 months: the reference method's
validation set after its 6-month input window). A forecast of month t uses
what is known at t-1: the monthly anomaly ANOM(t-1) and mean MEAN(t-1), and
ONI(t-2) (ONI(t-1) needs month t). The tables of ``verification.md`` are
predicted x observed in the order E, L, N.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from enso.baselines import DampedPersistence, Persistence
from enso.nino34 import EL_NINO, LA_NINA, NEUTRAL, phases_of
from enso.sources.index import parse_mcnoldy
from enso.verify import (
    accuracy,
    acc,
    attach_observations,
    contingency_from_matrix,
    contingency_table,
    gerrity,
    heidke,
    peirce,
    rmse,
    score_table,
)
from tests.realdata import REALDATA, need

MCNOLDY_2020 = REALDATA / "mcnoldy_ONI_NINO34_1854-2020.txt"
#: Row and column order of the tables in verification.md and reference-method.md.
ELN = (EL_NINO, LA_NINA, NEUTRAL)
TRAINING = ("1891-01", "1989-12")


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return parse_mcnoldy(need(MCNOLDY_2020).read_text(encoding="utf-8"), str(MCNOLDY_2020), with_climatology=True)


@pytest.fixture(scope="module")
def valid(table: pd.DataFrame) -> pd.DataFrame:
    out = table.loc["1990-07":"2020-08"]
    assert len(out) == 362 and out["phase"].notna().all()
    return out


def previous(table: pd.DataFrame, valid: pd.DataFrame, column: str, months: int = 1) -> pd.Series:
    """The value of ``column`` ``months`` before each validation month."""
    return table[column].reindex(valid.index - months)


def assert_scores(tab: pd.DataFrame, expected_accuracy: float, expected_heidke: float) -> None:
    assert round(accuracy(tab).value, 3) == expected_accuracy
    assert round(heidke(tab).value, 3) == expected_heidke
    assert accuracy(tab).n == heidke(tab).n == 362


def test_published_convlstm_matrix() -> None:
    tab = contingency_from_matrix([[70, 0, 43], [0, 47, 10], [23, 46, 123]], order=ELN)
    assert tab.loc[EL_NINO, NEUTRAL] == 43 and tab.loc[NEUTRAL, LA_NINA] == 46
    assert_scores(tab, 0.663, 0.458)
    assert round(gerrity(tab).value, 3) == 0.531
    assert round(peirce(tab).value, 3) == 0.450


def test_phase_of_oni_two_months_before(table: pd.DataFrame, valid: pd.DataFrame) -> None:
    tab = contingency_table(previous(table, valid, "phase", 2), valid["phase"])
    expected = contingency_from_matrix([[71, 0, 22], [0, 73, 19], [22, 20, 135]], order=ELN)
    pd.testing.assert_frame_equal(tab, expected)
    assert_scores(tab, 0.771, 0.637)


def test_threshold_of_last_monthly_anomaly(table: pd.DataFrame, valid: pd.DataFrame) -> None:
    tab = contingency_table(phases_of(previous(table, valid, "anomaly")), valid["phase"])
    expected = contingency_from_matrix([[83, 0, 10], [0, 83, 13], [10, 10, 153]], order=ELN)
    pd.testing.assert_frame_equal(tab, expected)
    assert_scores(tab, 0.881, 0.813)


def test_always_neutral(valid: pd.DataFrame) -> None:
    assert_scores(contingency_table([NEUTRAL] * len(valid), valid["phase"]), 0.486, 0.000)


def lead_one(model: Persistence | DampedPersistence, table: pd.DataFrame, valid: pd.DataFrame) -> pd.DataFrame:
    """Lead-1 forecasts of the validation months from the init months before them."""
    frame = model.fit(table["anomaly"], *TRAINING).predict(table["anomaly"], valid.index - 1)
    assert (frame["target_month"].to_numpy() == valid.index.to_numpy()).all()
    return frame


def test_anomaly_persistence(table: pd.DataFrame, valid: pd.DataFrame) -> None:
    frame = lead_one(Persistence(leads=(1,)), table, valid)
    absolute = valid["climatology"].to_numpy() + frame["nino34_anomaly"].to_numpy()  # CLIM(t) + ANOM(t-1)
    assert round(rmse(absolute, valid["nino34"]).value, 3) == 0.250
    assert round(acc(absolute - valid["climatology"], valid["nino34"] - valid["climatology"]).value, 3) == 0.958


def test_anomaly_persistence_through_score_table(table: pd.DataFrame, valid: pd.DataFrame) -> None:
    """The same numbers, and the anomaly-threshold phase scores, from the tidy score table."""
    frame = lead_one(Persistence(leads=(1,)), table, valid)
    scores = score_table(attach_observations(frame, table["anomaly"], table["phase"]))
    overall = scores[scores["target_calendar_month"].isna()].set_index("metric")
    assert (overall["lead"] == 1).all() and (overall["n"] == 362).all()
    expected = {"acc": 0.958, "rmse": 0.250, "accuracy": 0.881, "heidke": 0.813}
    assert {m: round(overall.loc[m, "value"], 3) for m in expected} == expected


@pytest.mark.parametrize("centred", [False, True], ids=["through-the-origin", "centred"])
def test_damped_persistence(table: pd.DataFrame, valid: pd.DataFrame, centred: bool) -> None:
    """The reference figure is the slope through the origin (``centred=False``, kept for it); the centred
    regression of the baselines gives the same three digits on McNoldy's anomalies, whose mean over the
    training period is -0.005 °C."""
    model = DampedPersistence(per_init_month=False, centred=centred, leads=(1,))
    frame = lead_one(model, table, valid)
    assert model.damping is not None and round(model.damping.loc[1, 1], 3) == 0.932
    assert model.target_mean is not None and abs(model.target_mean.loc[1, 1]) < (0.01 if centred else 1e-12)
    absolute = valid["climatology"].to_numpy() + frame["nino34_anomaly"].to_numpy()  # CLIM(t) + r ANOM(t-1)
    assert round(rmse(absolute, valid["nino34"]).value, 3) == 0.249


def test_absolute_persistence_and_climatology(table: pd.DataFrame, valid: pd.DataFrame) -> None:
    assert round(rmse(previous(table, valid, "nino34"), valid["nino34"]).value, 3) == 0.389
    assert round(rmse(valid["climatology"], valid["nino34"]).value, 3) == 0.864
    assert np.isnan(acc(valid["climatology"] - valid["climatology"], valid["anomaly"]).value)


def test_the_file_climatology_is_the_mean_minus_the_anomaly(table: pd.DataFrame, valid: pd.DataFrame) -> None:
    """parse_mcnoldy(with_climatology=True) keeps NINO34_CLIM: MEAN - CLIM = ANOM up to the file's rounding."""
    assert list(table.columns) == ["nino34", "anomaly", "oni", "phase", "climatology"]
    residual = table["nino34"] - table["climatology"] - table["anomaly"]
    assert residual.abs().max() <= 0.0101
