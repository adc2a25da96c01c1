"""The metrics of enso.verify agree with xskillscore on random inputs, and behave at the edges."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import xskillscore as xs

from enso.nino34 import EL_NINO, LA_NINA, NEUTRAL, PHASES
from scipy.integrate import quad
from scipy.stats import norm

from enso.verify import (
    CATEGORICAL_METRICS,
    DETERMINISTIC_METRICS,
    PROBABILISTIC_METRICS,
    PROBABILITY_COLUMNS,
    RELIABILITY_TOLERANCE,
    SPREAD_COLUMN,
    SPREAD_METRICS,
    acc,
    accuracy,
    attach_observations,
    bias,
    brier,
    brier_skill_score,
    contingency_from_matrix,
    contingency_table,
    crps_gaussian,
    crps_gaussian_cases,
    forecast_frame,
    gerrity,
    gerrity_matrix,
    heidke,
    mae,
    msss,
    peirce,
    phase_climatology,
    phase_reliability,
    reliability,
    reliability_gap,
    rmse,
    rps,
    rpss,
    score_table,
)

EDGES = np.array([-0.5, 0.5, 1.5, 2.5])


def da(values: np.ndarray, *dims: str) -> xr.DataArray:
    return xr.DataArray(values, dims=dims or ("time",))


@pytest.fixture(params=[0, 1, 2])
def rng(request: pytest.FixtureRequest) -> np.random.Generator:
    return np.random.default_rng(request.param)


def correlated_pair(rng: np.random.Generator, n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    observed = rng.normal(0, 1, n)
    forecast = 0.7 * observed + rng.normal(0.1, 0.5, n)
    forecast[rng.choice(n, 7, replace=False)] = np.nan
    observed[rng.choice(n, 5, replace=False)] = np.nan
    return forecast, observed


def test_deterministic_scores_match_xskillscore(rng: np.random.Generator) -> None:
    f, o = correlated_pair(rng)
    both = np.isfinite(f) & np.isfinite(o)
    assert acc(f, o).value == pytest.approx(float(xs.pearson_r(da(f), da(o), dim="time", skipna=True)))
    assert rmse(f, o).value == pytest.approx(float(xs.rmse(da(f), da(o), dim="time", skipna=True)))
    assert mae(f, o).value == pytest.approx(float(xs.mae(da(f), da(o), dim="time", skipna=True)))
    assert bias(f, o).value == pytest.approx(float(np.mean(f[both] - o[both])))
    assert acc(f, o).n == rmse(f, o).n == mae(f, o).n == bias(f, o).n == int(both.sum())


def test_msss_against_climatology_and_a_reference(rng: np.random.Generator) -> None:
    f, o = correlated_pair(rng)
    both = np.isfinite(f) & np.isfinite(o)
    mse = float(xs.mse(da(f), da(o), dim="time", skipna=True))
    assert msss(f, o).value == pytest.approx(1 - mse / np.mean(o[both] ** 2))
    assert msss(o, o).value == 1.0
    assert msss(np.zeros_like(o), o).value == pytest.approx(0.0)
    assert msss(f, o, reference=f).value == pytest.approx(0.0)


def test_deterministic_edge_cases() -> None:
    observed = np.array([0.1, -0.3, 0.8, np.nan])
    constant = acc(np.zeros(4), observed)
    assert np.isnan(constant.value) and constant.n == 3  # a constant forecast has no correlation
    assert np.isnan(acc([1.0], [2.0]).value) and acc([1.0], [2.0]).n == 1
    assert np.isnan(rmse([np.nan], [1.0]).value) and rmse([np.nan], [1.0]).n == 0
    assert np.isnan(msss([0.5, 0.5], [0.0, 0.0]).value)  # the reference is perfect
    with pytest.raises(ValueError, match="different lengths"):
        rmse([1.0, 2.0], [1.0])


def random_phases(rng: np.random.Generator, n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    observed = rng.choice(3, n, p=[0.25, 0.5, 0.25])
    forecast = np.where(rng.random(n) < 0.6, observed, rng.choice(3, n))
    return forecast, observed


def test_categorical_scores_match_xskillscore(rng: np.random.Generator) -> None:
    f, o = random_phases(rng)
    ours = contingency_table([PHASES[k] for k in f], [PHASES[k] for k in o])
    theirs = xs.Contingency(da(o), da(f), EDGES, EDGES, dim="time")
    # xskillscore's table is observations x forecasts; ours is forecasts x observations.
    np.testing.assert_array_equal(ours.to_numpy(), theirs.table.values.T)
    np.testing.assert_array_equal(contingency_from_matrix(theirs.table.values.T).to_numpy(), ours.to_numpy())
    assert accuracy(ours).value == pytest.approx(float(theirs.accuracy()))
    assert heidke(ours).value == pytest.approx(float(theirs.heidke_score()))
    assert peirce(ours).value == pytest.approx(float(theirs.peirce_score()))
    assert gerrity(ours).value == pytest.approx(float(theirs.gerrity_score()))
    assert accuracy(ours).n == len(o)


def test_contingency_orientation_and_missing_pairs() -> None:
    tab = contingency_table([EL_NINO, EL_NINO, None, LA_NINA, np.nan], [NEUTRAL, EL_NINO, LA_NINA, None, LA_NINA])
    assert tab.index.name == "forecast" and tab.columns.name == "observed"
    assert list(tab.index) == list(tab.columns) == list(PHASES)
    assert tab.loc[EL_NINO, NEUTRAL] == 1 and tab.loc[NEUTRAL, EL_NINO] == 0 and tab.to_numpy().sum() == 2
    with pytest.raises(ValueError, match="unknown phase 'E'"):
        contingency_table(["E"], [EL_NINO])
    reordered = contingency_from_matrix([[1, 2, 3], [4, 5, 6], [7, 8, 9]], order=(EL_NINO, LA_NINA, NEUTRAL))
    assert reordered.loc[EL_NINO, NEUTRAL] == 3 and reordered.loc[NEUTRAL, LA_NINA] == 8
    with pytest.raises(ValueError, match="3x3"):
        contingency_from_matrix(np.ones((2, 2)))


def test_gerrity_matrix_properties() -> None:
    s = gerrity_matrix([0.25, 0.5, 0.25])
    np.testing.assert_allclose(s, s.T)
    assert s[0, 2] == pytest.approx(-1.0)  # two categories apart: the worst miss
    assert np.all(np.diag(s) > 0) and s[0, 0] > s[1, 1]  # hitting a rare category scores more
    # Equitable: constant forecasts of any category, and random forecasts, score 0.
    for k in range(3):
        assert float(np.array([0.25, 0.5, 0.25]) @ s[k]) == pytest.approx(0.0)


def test_categorical_edge_cases() -> None:
    perfect = contingency_from_matrix(np.diag([3, 5, 2]))
    assert [f(perfect).value for f in (heidke, peirce, gerrity)] == pytest.approx([1.0, 1.0, 1.0])
    empty = contingency_from_matrix(np.zeros((3, 3)))
    assert all(np.isnan(f(empty).value) and f(empty).n == 0 for f in (accuracy, heidke, peirce, gerrity))
    no_la_nina = contingency_from_matrix([[0, 0, 0], [0, 5, 1], [0, 2, 4]])
    assert np.isnan(gerrity(no_la_nina).value) and np.isfinite(heidke(no_la_nina).value)


def random_probabilities(rng: np.random.Generator, n: int = 250) -> tuple[np.ndarray, np.ndarray]:
    raw = rng.gamma(1.0, size=(n, 3))
    observed = rng.choice(3, n, p=[0.3, 0.4, 0.3])
    return raw / raw.sum(axis=1, keepdims=True), observed


def test_rps_and_brier_match_xskillscore(rng: np.random.Generator) -> None:
    probs, o = random_probabilities(rng)
    observed = [PHASES[k] for k in o]
    one_hot = np.eye(3)[o]
    theirs = xs.rps(da(np.cumsum(one_hot, axis=1), "time", "category"),
                    da(np.cumsum(probs, axis=1), "time", "category"),
                    category_edges=None, dim="time", input_distributions="c")
    assert rps(probs, observed).value == pytest.approx(float(theirs))
    for k in range(3):
        their_brier = float(xs.brier_score(da(one_hot[:, k] == 1), da(probs[:, k]), dim="time"))
        assert brier(probs[:, k], one_hot[:, k]).value == pytest.approx(their_brier)


def test_rpss_against_a_climatology(rng: np.random.Generator) -> None:
    probs, o = random_probabilities(rng)
    observed = [PHASES[k] for k in o]
    clim = np.array([0.3, 0.4, 0.3])
    expected = 1 - rps(probs, observed).value / rps(np.tile(clim, (len(o), 1)), observed).value
    assert rpss(probs, observed, clim).value == pytest.approx(expected)
    assert rpss(np.eye(3)[o], observed, clim).value == 1.0
    assert rpss(np.tile(clim, (len(o), 1)), observed, clim).value == pytest.approx(0.0)


def test_probabilistic_edge_cases() -> None:
    probs = np.array([[0.2, 0.5, 0.3], [np.nan, np.nan, np.nan], [1.0, 0.0, 0.0]])
    result = rps(probs, [EL_NINO, NEUTRAL, None])
    assert result.n == 1 and result.value == pytest.approx(0.2 ** 2 + 0.7 ** 2)
    assert rps(probs, [None, None, None]) == (pytest.approx(np.nan, nan_ok=True), 0)
    with pytest.raises(ValueError, match="sum to 1"):
        rps([[0.5, 0.5, 0.5]], [NEUTRAL])
    with pytest.raises(ValueError, match=r"shape \(n, 3\)"):
        rps([[0.5, 0.5]], [NEUTRAL])


def test_reliability_sums_and_xskillscore(rng: np.random.Generator) -> None:
    p = rng.random(500)
    occurred = (rng.random(500) < p).astype(float)
    occurred[:4] = np.nan
    table = reliability(p, occurred, bins=5)
    known = np.isfinite(occurred)
    assert list(table.columns) == ["bin_centre", "mean_probability", "observed_frequency", "count"]
    assert table["count"].sum() == known.sum()
    weights = table["count"].to_numpy()
    assert np.nansum(weights * table["observed_frequency"]) == pytest.approx(occurred[known].sum())
    assert np.nansum(weights * table["mean_probability"]) == pytest.approx(p[known].sum())
    np.testing.assert_allclose(table["bin_centre"], [0.1, 0.3, 0.5, 0.7, 0.9])
    theirs = xs.reliability(da(occurred[known] == 1), da(p[known]), dim="time",
                            probability_bin_edges=np.linspace(0, 1, 6))
    np.testing.assert_allclose(table["observed_frequency"], theirs.values)
    np.testing.assert_array_equal(table["count"], theirs["samples"].values)


def test_reliability_edges_and_empty_bins() -> None:
    table = reliability([0.0, 1.0, 1.0], [0, 1, 0], bins=[0.0, 0.5, 0.9, 1.0])
    assert table["count"].tolist() == [1, 0, 2]  # p = 1 falls in the last bin
    assert np.isnan(table.loc[1, "observed_frequency"]) and table.loc[2, "observed_frequency"] == 0.5
    with pytest.raises(ValueError, match="increasing edges"):
        reliability([0.5], [1], bins=[0.5, 0.2])


def phase_series(rng: np.random.Generator, start: str, end: str) -> pd.Series:
    index = pd.period_range(start, end, freq="M", name="month")
    return pd.Series(rng.choice(PHASES, len(index)), index=index, dtype=object)


def test_phase_climatology_uses_only_its_period(rng: np.random.Generator) -> None:
    phases = phase_series(rng, "1961-01", "2020-12")
    clim = phase_climatology(phases, "1991-01", "2020-12")
    assert list(clim.index) == list(range(1, 13)) and list(clim.columns) == list(PHASES)
    np.testing.assert_allclose(clim.sum(axis=1), 1.0)
    march = phases.loc["1991-01":"2020-12"][phases.loc["1991-01":"2020-12"].index.month == 3]
    assert clim.loc[3, EL_NINO] == pytest.approx((march == EL_NINO).mean())
    changed = phases.copy()
    changed.loc[:"1990-12"] = EL_NINO
    pd.testing.assert_frame_equal(phase_climatology(changed, "1991-01", "2020-12"), clim)
    with pytest.raises(ValueError, match="calendar months"):
        phase_climatology(phases, "2000-01", "2000-06")


def synthetic_frame(rng: np.random.Generator) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    months = pd.period_range("1990-01", "2012-12", freq="M", name="month")
    observed = pd.Series(np.sin(np.arange(len(months)) / 6.0) + rng.normal(0, 0.3, len(months)), index=months)
    observed_phase = pd.Series([PHASES[int(v > -0.5) + int(v >= 0.5)] for v in observed], index=months, dtype=object)
    inits = pd.period_range("1990-01", "2009-12", freq="M")
    leads = [1, 2, 3]
    anomaly = np.array([[observed[i] * 0.9 ** k for k in leads] for i in inits])
    probs = np.full((len(inits), len(leads), 3), 1 / 3)
    return forecast_frame(inits, leads, anomaly, probs), observed, observed_phase


def test_score_table_by_lead_and_target_calendar_month(rng: np.random.Generator) -> None:
    frame, observed, observed_phase = synthetic_frame(rng)
    assert (frame["target_month"] == frame["init_month"] + frame["lead"]).all()
    joined = attach_observations(frame, observed, observed_phase)
    clim = phase_climatology(observed_phase, "1990-01", "2012-12")
    scores = score_table(joined, clim)
    assert list(scores.columns) == ["lead", "target_calendar_month", "metric", "value", "n"]
    metrics = DETERMINISTIC_METRICS + CATEGORICAL_METRICS + PROBABILISTIC_METRICS
    assert len(scores) == 3 * 13 * len(metrics)
    overall = scores[scores["target_calendar_month"].isna()]
    assert set(overall["metric"]) == set(metrics) and (overall["n"] == 240).all()
    lead2 = joined[joined["lead"] == 2]
    row = overall[(overall["lead"] == 2) & (overall["metric"] == "rmse")]
    assert row["value"].item() == pytest.approx(rmse(lead2["nino34_anomaly"], lead2["observed_anomaly"]).value)
    by_month = scores[(scores["lead"] == 2) & (scores["target_calendar_month"] == 7) & (scores["metric"] == "acc")]
    july = lead2[lead2["target_month"].dt.month == 7]
    assert by_month["n"].item() == 20
    assert by_month["value"].item() == pytest.approx(acc(july["nino34_anomaly"], july["observed_anomaly"]).value)
    assert {type(m) for m in scores["target_calendar_month"] if m is not None} == {int}


def test_score_table_scores_what_the_frame_has(rng: np.random.Generator) -> None:
    frame, observed, observed_phase = synthetic_frame(rng)
    anomalies_only = score_table(attach_observations(frame.drop(columns=list(PROBABILITY_COLUMNS)), observed))
    assert set(anomalies_only["metric"]) == set(DETERMINISTIC_METRICS)
    no_climatology = score_table(attach_observations(frame, observed, observed_phase))
    assert "rpss" not in set(no_climatology["metric"]) and "rps" in set(no_climatology["metric"])
    late = attach_observations(frame, observed.loc[:"2000-12"])
    counted = score_table(late).query("metric == 'rmse' and lead == 1 and target_calendar_month.isna()")
    assert counted["n"].item() == 131  # targets 1990-02 .. 2000-12
    with pytest.raises(ValueError, match="observed_anomaly"):
        score_table(frame)


# --------------------------------------------------------------------------- CRPS, Brier skill, reliability

def test_crps_gaussian_is_the_integral_of_the_squared_cdf_difference(rng: np.random.Generator) -> None:
    """The closed form against CRPS = ∫ (F(x) - 1{x >= y})² dx, integrated numerically."""
    for mean, sd, observed in zip(rng.normal(0, 1, 6), rng.uniform(0.1, 1.5, 6), rng.normal(0, 1.5, 6)):
        below, _ = quad(lambda x: norm.cdf(x, mean, sd) ** 2, -np.inf, observed)
        above, _ = quad(lambda x: norm.sf(x, mean, sd) ** 2, observed, np.inf)
        assert crps_gaussian(mean, sd, observed).value == pytest.approx(below + above, rel=1e-7)
    means, sds, obs = rng.normal(0, 1, 300), rng.uniform(0.2, 1.0, 300), rng.normal(0, 1, 300)
    theirs = float(xs.crps_gaussian(da(obs), da(means), da(sds), dim="time"))
    assert crps_gaussian(means, sds, obs).value == pytest.approx(theirs)


def test_crps_gaussian_edges() -> None:
    # A vanishing spread leaves the absolute error; a missing case is left out; the spread must be positive.
    assert crps_gaussian([0.3, 1.0], [1e-9, 1e-9], [1.0, 0.0]).value == pytest.approx(0.85)
    score = crps_gaussian([0.0, np.nan, 0.0], [1.0, 1.0, np.nan], [0.0, 0.0, 0.0])
    assert score.n == 1 and score.value == pytest.approx((np.sqrt(2.0) - 1.0) / np.sqrt(np.pi))
    assert crps_gaussian_cases(np.zeros(2), 1.0, np.array([0.0, 3.0])).shape == (2,)
    with pytest.raises(ValueError, match="positive"):
        crps_gaussian([0.0], [0.0], [1.0])
    # A sharper forecast of the right mean scores better; the same spread off by 1 °C worse.
    assert crps_gaussian([0.0], [0.2], [0.0]).value < crps_gaussian([0.0], [1.0], [0.0]).value
    assert crps_gaussian([1.0], [0.2], [0.0]).value > crps_gaussian([0.0], [0.2], [0.0]).value


def test_brier_skill_score_of_perfect_climatological_and_given_forecasts(rng: np.random.Generator) -> None:
    occurred = (rng.random(400) < 0.3).astype(float)
    climate = np.full(occurred.size, 0.3)
    assert brier_skill_score(occurred, occurred, 0.3).value == 1.0
    assert brier_skill_score(climate, occurred, 0.3) == (pytest.approx(0.0), 400)
    p = np.clip(occurred * 0.6 + rng.random(400) * 0.3, 0, 1)
    expected = 1 - np.mean((p - occurred) ** 2) / np.mean((0.3 - occurred) ** 2)
    assert brier_skill_score(p, occurred, climate).value == pytest.approx(expected)
    assert brier_skill_score(1 - occurred, occurred, 0.3).value < 0  # always wrong: worse than climatology
    missing = occurred.copy()
    missing[:10] = np.nan
    assert brier_skill_score(p, missing, 0.3).n == 390
    assert np.isnan(brier_skill_score([1.0, 0.0], [1.0, 0.0], [1.0, 0.0]).value)  # a perfect reference


def test_score_table_adds_brier_skill_per_phase_and_crps_where_there_is_a_spread(rng: np.random.Generator) -> None:
    frame, observed, observed_phase = synthetic_frame(rng)
    clim = phase_climatology(observed_phase, "1990-01", "2012-12")
    target = frame["target_month"].dt.month.to_numpy()
    climatological = frame.copy()
    climatological[list(PROBABILITY_COLUMNS)] = clim.loc[target, list(PHASES)].to_numpy()
    scores = score_table(attach_observations(climatological, observed, observed_phase), clim)
    bss = scores[scores["metric"].str.startswith("bss_") & scores["target_calendar_month"].isna()]
    assert len(bss) == 3 * 3 and np.allclose(bss["value"], 0.0, atol=1e-12)
    assert not set(SPREAD_METRICS) & set(scores["metric"])  # no spread, no CRPS
    spread = forecast_frame(frame["init_month"].unique(), [1, 2, 3],
                            frame["nino34_anomaly"].to_numpy().reshape(-1, 3), sd=np.array([0.3, 0.4, 0.5]))
    assert spread[SPREAD_COLUMN].tolist()[:3] == [0.3, 0.4, 0.5]
    crps = score_table(attach_observations(spread, observed)).query("metric == 'crps'")
    lead2 = attach_observations(spread, observed).query("lead == 2")
    assert crps.query("lead == 2 and target_calendar_month.isna()")["value"].item() == pytest.approx(
        crps_gaussian(lead2["nino34_anomaly"], 0.4, lead2["observed_anomaly"]).value)
    with pytest.raises(ValueError, match="positive"):
        forecast_frame(["2000-01"], [1], [[0.1]], sd=[0.0])


def _gaussian_phase_probabilities(mean: np.ndarray, sd: float) -> np.ndarray:
    p_la_nina, p_el_nino = norm.cdf(-0.5, mean, sd), norm.sf(0.5, mean, sd)
    return np.column_stack([p_la_nina, 1.0 - p_la_nina - p_el_nino, p_el_nino])


@pytest.mark.parametrize("assumed_sd, reliable", [(0.5, True), (0.2, False), (1.2, False)],
                         ids=["correct-spread", "over-confident", "under-confident"])
def test_reliability_check_fails_over_and_under_confident_probabilities(assumed_sd: float, reliable: bool) -> None:
    """Forecast means with errors of known spread 0.5 °C: phase probabilities from that spread are reliable
    (every populated bin within 0.1 of the diagonal), from too small or too large a spread they are not."""
    rng = np.random.default_rng(7)
    mean = rng.normal(0.0, 1.0, 60_000)
    observed = mean + rng.normal(0.0, 0.5, mean.size)
    observed_phase = [PHASES[int(v > -0.5) + int(v >= 0.5)] for v in observed]
    table = phase_reliability(_gaussian_phase_probabilities(mean, assumed_sd), observed_phase)
    assert list(table["phase"].unique()) == list(PHASES) and (table.groupby("phase")["count"].sum() == 60_000).all()
    gap = reliability_gap(table, min_count=200)
    assert (gap <= RELIABILITY_TOLERANCE) is reliable, gap
    if reliable:
        assert gap < 0.05
    else:
        assert gap > 0.15


def test_reliability_gap_ignores_thin_bins() -> None:
    table = reliability([0.05, 0.05, 0.95], [0, 0, 0], bins=10)
    assert reliability_gap(table) == pytest.approx(0.95)
    assert reliability_gap(table, min_count=2) == pytest.approx(0.05)
    assert np.isnan(reliability_gap(table, min_count=5))
