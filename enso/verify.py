"""Verification of Niño 3.4 forecasts: deterministic, categorical and probabilistic scores.

Pure numpy/pandas. Conventions, defined here once:

* Deterministic scores compare forecast and observed **anomalies** on aligned
  1-D arrays; pairs with a NaN on either side are dropped. Each returns a
  :class:`Score` ``(value, n)`` with ``n`` the number of pairs used.
* Phases are ordered La Niña < neutral < El Niño (:data:`enso.nino34.PHASES`).
  A **contingency table** is a 3 x 3 ``DataFrame`` of counts whose rows are the
  *forecast* phase and whose columns are the *observed* phase, both in
  :data:`~enso.nino34.PHASES` order (the reference method's orientation;
  ``xskillscore.Contingency.table`` is the transpose, observations x forecasts).
* Phase probabilities are ``(n, 3)`` arrays in :data:`~enso.nino34.PHASES` order;
  in forecast frames they are the columns :data:`PROBABILITY_COLUMNS`.
* A **forecast frame** is long: one row per (init_month, lead) with columns
  ``init_month``, ``lead``, ``target_month`` (``pandas.Period``, frequency M),
  ``nino34_anomaly`` (the forecast), optionally ``p_la_nina``, ``p_neutral``,
  ``p_el_nino``, a forecast ``phase`` and ``nino34_anomaly_sd`` (:data:`SPREAD_COLUMN`:
  the standard deviation of a Gaussian forecast distribution of the anomaly, °C;
  CRPS is scored where it is there).
* The **reference climatology** of the skill scores RPSS and BSS is a frame of
  phase frequencies per target calendar month (:func:`phase_climatology`); the
  caller states over which months it was taken. :func:`attach_observations` adds
  ``observed_anomaly`` and ``observed_phase``; :func:`score_table` scores it.
"""

from __future__ import annotations

from typing import Iterable, NamedTuple, Sequence

import numpy as np
import pandas as pd

from scipy.special import ndtr

from enso.months import to_period, to_periods
from enso.nino34 import PHASES, phases_of

#: Forecast-frame columns holding the probability of each phase, in PHASES order.
PROBABILITY_COLUMNS: tuple[str, str, str] = tuple(f"p_{phase}" for phase in PHASES)  # type: ignore[assignment]

#: Forecast-frame column of the Gaussian spread (standard deviation, °C) of the forecast anomaly.
SPREAD_COLUMN = "nino34_anomaly_sd"

DETERMINISTIC_METRICS = ("acc", "rmse", "mae", "bias", "msss")
CATEGORICAL_METRICS = ("accuracy", "heidke", "peirce", "gerrity")
#: Scored from the phase probabilities (RPSS and the Brier skill scores only against a reference climatology).
PROBABILISTIC_METRICS = (("rps", "rpss") + tuple(f"brier_{phase}" for phase in PHASES)
                         + tuple(f"bss_{phase}" for phase in PHASES))
#: Scored from the Gaussian spread column (:data:`SPREAD_COLUMN`) where a frame has it.
SPREAD_METRICS = ("crps",)
#: The largest gap between observed frequency and forecast probability, in any populated reliability bin,
#: that still counts as reliable (the project's goal: within 0.1 of the diagonal).
RELIABILITY_TOLERANCE = 0.1


class Score(NamedTuple):
    """A score and the number of cases it rests on."""

    value: float
    n: int


# --------------------------------------------------------------------------- deterministic

def _valid_pairs(*arrays: Iterable[float]) -> tuple[np.ndarray, ...]:
    """Float arrays of one length, keeping only positions where every array is finite."""
    arrs = [np.asarray(a, dtype=np.float64).ravel() for a in arrays]
    if len({a.size for a in arrs}) != 1:
        raise ValueError(f"arrays to score have different lengths: {[a.size for a in arrs]}")
    keep = np.logical_and.reduce([np.isfinite(a) for a in arrs])
    return tuple(a[keep] for a in arrs)


def acc(forecast: Iterable[float], observed: Iterable[float]) -> Score:
    """Anomaly correlation (Pearson r of forecast and observed anomalies).

    NaN when fewer than two pairs remain or when either side is constant (a
    constant forecast, such as climatology's zero, has no correlation).
    """
    f, o = _valid_pairs(forecast, observed)
    if f.size < 2 or np.ptp(f) == 0 or np.ptp(o) == 0:
        return Score(float("nan"), int(f.size))
    return Score(float(np.corrcoef(f, o)[0, 1]), int(f.size))


def rmse(forecast: Iterable[float], observed: Iterable[float]) -> Score:
    """Root mean squared error (°C)."""
    f, o = _valid_pairs(forecast, observed)
    return Score(float(np.sqrt(np.mean((f - o) ** 2))) if f.size else float("nan"), int(f.size))


def mae(forecast: Iterable[float], observed: Iterable[float]) -> Score:
    """Mean absolute error (°C)."""
    f, o = _valid_pairs(forecast, observed)
    return Score(float(np.mean(np.abs(f - o))) if f.size else float("nan"), int(f.size))


def bias(forecast: Iterable[float], observed: Iterable[float]) -> Score:
    """Mean error, forecast minus observed (°C): positive means too warm."""
    f, o = _valid_pairs(forecast, observed)
    return Score(float(np.mean(f - o)) if f.size else float("nan"), int(f.size))


def msss(forecast: Iterable[float], observed: Iterable[float],
         reference: Iterable[float] | None = None) -> Score:
    """Mean squared skill score 1 - MSE / MSE(reference).

    The reference defaults to climatology, i.e. a zero anomaly forecast. NaN when
    the reference is perfect (MSE 0).
    """
    if reference is None:
        f, o = _valid_pairs(forecast, observed)
        r = np.zeros_like(o)
    else:
        f, o, r = _valid_pairs(forecast, observed, reference)
    mse_ref = float(np.mean((r - o) ** 2)) if o.size else 0.0
    if mse_ref == 0.0:
        return Score(float("nan"), int(f.size))
    return Score(1.0 - float(np.mean((f - o) ** 2)) / mse_ref, int(f.size))


# --------------------------------------------------------------------------- categorical

def _phase_codes(phases: Iterable[object], what: str) -> np.ndarray:
    """0, 1, 2 for La Niña, neutral, El Niño; -1 where missing (None/NaN)."""
    codes = []
    for p in phases:
        if p is None or (not isinstance(p, str) and pd.isna(p)):
            codes.append(-1)
        elif p in PHASES:
            codes.append(PHASES.index(p))  # type: ignore[arg-type]
        else:
            raise ValueError(f"{what}: unknown phase {p!r} (expected one of {PHASES} or None)")
    return np.asarray(codes, dtype=np.int64)


def _table_frame(counts: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(counts, index=pd.Index(PHASES, name="forecast"),
                        columns=pd.Index(PHASES, name="observed"))


def contingency_table(forecast_phase: Iterable[object], observed_phase: Iterable[object]) -> pd.DataFrame:
    """Counts of (forecast phase, observed phase): rows forecast, columns observed, PHASES order.

    Pairs where either phase is missing (None/NaN) are left out.
    """
    f = _phase_codes(forecast_phase, "forecast phase")
    o = _phase_codes(observed_phase, "observed phase")
    if f.size != o.size:
        raise ValueError(f"forecast and observed phases differ in length: {f.size} vs {o.size}")
    keep = (f >= 0) & (o >= 0)
    counts = np.zeros((3, 3), dtype=np.int64)
    np.add.at(counts, (f[keep], o[keep]), 1)
    return _table_frame(counts)


def contingency_from_matrix(matrix: Sequence[Sequence[float]] | np.ndarray,
                            order: Sequence[str] = PHASES) -> pd.DataFrame:
    """A contingency table from a given matrix (rows forecast, columns observed).

    ``order`` names the phase of each row and column as the matrix has them, e.g.
    ``("el_nino", "la_nina", "neutral")`` for the reference method's E, L, N
    matrix; the result is reordered to PHASES. For an observations x forecasts
    matrix (``xskillscore.Contingency.table``) pass its transpose.
    """
    m = np.asarray(matrix)
    if m.shape != (3, 3) or sorted(order) != sorted(PHASES):
        raise ValueError(f"need a 3x3 matrix and an order of the phases {PHASES}; got {m.shape} and {tuple(order)}")
    pos = [list(order).index(p) for p in PHASES]
    return _table_frame(m[np.ix_(pos, pos)])


def _joint(table: pd.DataFrame) -> tuple[np.ndarray, int]:
    """Joint relative frequencies (forecast x observed) and the number of cases."""
    if list(table.index) != list(PHASES) or list(table.columns) != list(PHASES):
        raise ValueError("contingency table must have PHASES rows (forecast) and columns (observed); "
                         "build it with contingency_table or contingency_from_matrix")
    counts = table.to_numpy(dtype=np.float64)
    n = float(counts.sum())
    return (counts / n if n else counts), int(n)


def accuracy(table: pd.DataFrame) -> Score:
    """Proportion correct: the share of cases on the diagonal."""
    p, n = _joint(table)
    return Score(float(np.trace(p)) if n else float("nan"), n)


def heidke(table: pd.DataFrame) -> Score:
    """Heidke skill score (PC - E) / (1 - E), E = sum(row_i * col_i) / N^2."""
    p, n = _joint(table)
    expected = float(p.sum(axis=1) @ p.sum(axis=0))
    if not n or expected == 1.0:
        return Score(float("nan"), n)
    return Score((float(np.trace(p)) - expected) / (1.0 - expected), n)


def peirce(table: pd.DataFrame) -> Score:
    """Peirce skill score (PC - E) / (1 - sum(col_i^2 / N^2)): Heidke with an unbiased reference."""
    p, n = _joint(table)
    observed = p.sum(axis=0)
    denominator = 1.0 - float(observed @ observed)
    if not n or denominator == 0.0:
        return Score(float("nan"), n)
    return Score((float(np.trace(p)) - float(p.sum(axis=1) @ observed)) / denominator, n)


def gerrity_matrix(observed_frequencies: Sequence[float]) -> np.ndarray:
    """Gerrity (1992) scoring matrix for ordered categories from the observed marginal frequencies.

    With D_r the cumulative observed frequency up to category r and
    a_r = (1 - D_r) / D_r: s_ii = (sum_{r<i} 1/a_r + sum_{r>=i} a_r) / (K - 1) and,
    for i < j, s_ij = (sum_{r<i} 1/a_r - (j - i) + sum_{r>=j} a_r) / (K - 1).
    Misses two categories apart score lowest; rare categories hit right score highest.
    """
    freq = np.asarray(observed_frequencies, dtype=np.float64)
    k = freq.size
    cumulative = np.cumsum(freq)[:-1]
    a = (1.0 - cumulative) / cumulative
    s = np.empty((k, k))
    for i in range(k):
        for j in range(i, k):
            s[i, j] = s[j, i] = (np.sum(1.0 / a[:i]) - (j - i) + np.sum(a[j:])) / (k - 1)
    return s


def gerrity(table: pd.DataFrame) -> Score:
    """Gerrity skill score: the joint frequencies weighted by :func:`gerrity_matrix`.

    NaN when a category at either end of the order is never observed (its weight
    is undefined).
    """
    p, n = _joint(table)
    observed = p.sum(axis=0)
    if not n or observed[0] == 0 or observed[-1] == 0:
        return Score(float("nan"), n)
    return Score(float(np.sum(p * gerrity_matrix(observed))), n)


# --------------------------------------------------------------------------- probabilistic

def _probabilities(probabilities: np.ndarray | Sequence[Sequence[float]], n: int | None = None) -> np.ndarray:
    """Validate an (n, 3) array of phase probabilities (a single (3,) row is broadcast to n)."""
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim == 1 and n is not None:
        p = np.broadcast_to(p, (n, p.size))
    if p.ndim != 2 or p.shape[1] != len(PHASES):
        raise ValueError(f"phase probabilities must have shape (n, {len(PHASES)}), got {p.shape}")
    finite = np.isfinite(p).all(axis=1)
    sums = p[finite].sum(axis=1)
    if (p[finite] < -1e-9).any() or (np.abs(sums - 1.0) > 1e-6).any():
        raise ValueError("phase probabilities must be >= 0 and sum to 1 in each row")
    return p


def _one_hot(observed_phase: Iterable[object]) -> np.ndarray:
    """(n, 3) indicator of the observed phase; rows of NaN where it is missing."""
    codes = _phase_codes(observed_phase, "observed phase")
    out = np.full((codes.size, len(PHASES)), np.nan)
    ok = codes >= 0
    out[ok] = 0.0
    out[np.flatnonzero(ok), codes[ok]] = 1.0
    return out


def _rps_cases(p: np.ndarray, o: np.ndarray) -> np.ndarray:
    """Ranked probability score of each case (sum over categories of squared CDF differences)."""
    return np.sum((np.cumsum(p, axis=1) - np.cumsum(o, axis=1)) ** 2, axis=1)


def rps(probabilities: np.ndarray | Sequence[Sequence[float]], observed_phase: Iterable[object]) -> Score:
    """Mean ranked probability score of (n, 3) phase probabilities; 0 is perfect, 2 the worst.

    Not normalised by K - 1 (as ``xskillscore.rps``). Cases with a missing
    probability or observation are left out.
    """
    o = _one_hot(observed_phase)
    p = _probabilities(probabilities, o.shape[0])
    keep = np.isfinite(p).all(axis=1) & np.isfinite(o).all(axis=1)
    if not keep.any():
        return Score(float("nan"), 0)
    return Score(float(np.mean(_rps_cases(p[keep], o[keep]))), int(keep.sum()))


def rpss(probabilities: np.ndarray | Sequence[Sequence[float]], observed_phase: Iterable[object],
         reference: np.ndarray | Sequence[float]) -> Score:
    """Ranked probability skill score 1 - RPS / RPS(reference) on the same cases.

    ``reference`` is one (3,) row (e.g. climatological phase frequencies) or (n, 3).
    """
    o = _one_hot(observed_phase)
    p = _probabilities(probabilities, o.shape[0])
    r = _probabilities(reference, o.shape[0])
    keep = np.isfinite(p).all(axis=1) & np.isfinite(o).all(axis=1) & np.isfinite(r).all(axis=1)
    if not keep.any():
        return Score(float("nan"), 0)
    reference_rps = float(np.mean(_rps_cases(r[keep], o[keep])))
    if reference_rps == 0.0:
        return Score(float("nan"), int(keep.sum()))
    return Score(1.0 - float(np.mean(_rps_cases(p[keep], o[keep]))) / reference_rps, int(keep.sum()))


def brier(probability: Iterable[float], occurred: Iterable[float]) -> Score:
    """Brier score of the probability of one event (e.g. one phase); ``occurred`` is 0/1 (NaN = unknown)."""
    p, o = _valid_pairs(probability, occurred)
    return Score(float(np.mean((p - o) ** 2)) if p.size else float("nan"), int(p.size))


def reliability(probability: Iterable[float], occurred: Iterable[float],
                bins: int | Sequence[float] = 10) -> pd.DataFrame:
    """Reliability table of an event's forecast probability.

    ``bins`` is a number of equal-width bins on [0, 1] or the bin edges. One row
    per bin: ``bin_centre``, ``mean_probability`` (of the forecasts in the bin),
    ``observed_frequency`` (of the event among them) and ``count``; empty bins
    have NaN means and count 0. The last bin includes its right edge (p = 1).
    """
    p, o = _valid_pairs(probability, occurred)
    edges = np.linspace(0.0, 1.0, bins + 1) if isinstance(bins, int) else np.asarray(bins, dtype=np.float64)
    if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError(f"reliability bins must be a positive count or increasing edges, got {bins!r}")
    which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, edges.size - 2)
    count = np.bincount(which, minlength=edges.size - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.bincount(which, weights=p, minlength=edges.size - 1) / count
        freq = np.bincount(which, weights=o, minlength=edges.size - 1) / count
    return pd.DataFrame({
        "bin_centre": (edges[:-1] + edges[1:]) / 2.0,
        "mean_probability": mean_p,
        "observed_frequency": freq,
        "count": count.astype(np.int64),
    })


def brier_skill_score(probability: Iterable[float], occurred: Iterable[float],
                      reference: Iterable[float] | float) -> Score:
    """Brier skill score 1 - BS / BS(reference) of one event's probability, on the same cases.

    ``reference`` is the reference forecast's probability of the event (e.g. its
    climatological frequency), one value or one per case. 1 is perfect, 0 no
    better than the reference, negative worse. NaN when the reference is perfect.
    """
    p = np.asarray(probability, dtype=np.float64).ravel()
    r = np.broadcast_to(np.asarray(reference, dtype=np.float64), p.shape)
    p, o, r = _valid_pairs(p, occurred, r)
    if not p.size:
        return Score(float("nan"), 0)
    reference_bs = float(np.mean((r - o) ** 2))
    if reference_bs == 0.0:
        return Score(float("nan"), int(p.size))
    return Score(1.0 - float(np.mean((p - o) ** 2)) / reference_bs, int(p.size))


def crps_gaussian_cases(mean: Iterable[float], sd: Iterable[float], observed: Iterable[float]) -> np.ndarray:
    """CRPS of each case of a Gaussian forecast N(mean, sd²) against the observed value (closed form, °C).

    CRPS = sd · (z (2Φ(z) - 1) + 2φ(z) - 1/√π) with z = (observed - mean) / sd
    (Gneiting et al. 2005). Arrays broadcast; NaN where any input is missing.
    Raises for a spread that is not positive.
    """
    m, s, y = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (mean, sd, observed)))
    if (s[np.isfinite(s)] <= 0).any():
        raise ValueError("the spread (sd) of a Gaussian forecast must be positive")
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (y - m) / s
        density = np.exp(-0.5 * z ** 2) / np.sqrt(2.0 * np.pi)
        return s * (z * (2.0 * ndtr(z) - 1.0) + 2.0 * density - 1.0 / np.sqrt(np.pi))


def crps_gaussian(mean: Iterable[float], sd: Iterable[float], observed: Iterable[float]) -> Score:
    """Mean continuous ranked probability score of Gaussian forecasts N(mean, sd²) (°C; 0 is perfect).

    For sd -> 0 it becomes the mean absolute error of ``mean``. Arrays
    broadcast (e.g. one spread for all cases); cases with a missing mean,
    spread or observation are left out.
    """
    m, s, y = _valid_pairs(*np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (mean, sd, observed))))
    if not m.size:
        return Score(float("nan"), 0)
    return Score(float(np.mean(crps_gaussian_cases(m, s, y))), int(m.size))


def phase_reliability(probabilities: np.ndarray | Sequence[Sequence[float]], observed_phase: Iterable[object],
                      bins: int | Sequence[float] = 10) -> pd.DataFrame:
    """Reliability tables of the three phases stacked: :func:`reliability` of each phase's probability.

    ``probabilities`` is (n, 3) in PHASES order. Returns the columns ``phase``,
    ``bin_centre``, ``mean_probability``, ``observed_frequency``, ``count`` (one
    row per phase and bin; cases with a missing probability or observation left out).
    """
    o = _one_hot(observed_phase)
    p = _probabilities(probabilities, o.shape[0])
    keep = np.isfinite(p).all(axis=1) & np.isfinite(o).all(axis=1)
    parts = [reliability(p[keep, k], o[keep, k], bins).assign(phase=phase) for k, phase in enumerate(PHASES)]
    table = pd.concat(parts, ignore_index=True)
    return table[["phase", "bin_centre", "mean_probability", "observed_frequency", "count"]]


def reliability_gap(table: pd.DataFrame, min_count: int = 1) -> float:
    """The largest |observed frequency - mean forecast probability| over bins with at least ``min_count`` cases.

    ``table`` comes from :func:`reliability` or :func:`phase_reliability`; NaN
    when no bin is populated. Reliable forecasts have a gap near 0 (sampling
    noise aside); the goal is at most
    :data:`RELIABILITY_TOLERANCE` in every populated bin.
    """
    populated = table[table["count"] >= max(min_count, 1)]
    if populated.empty:
        return float("nan")
    return float(np.max(np.abs(populated["observed_frequency"] - populated["mean_probability"])))


def phase_climatology(observed_phase: pd.Series, first: object, last: object) -> pd.DataFrame:
    """Observed phase frequencies per calendar month over a period (the climatological forecast).

    ``observed_phase`` is indexed by a monthly ``PeriodIndex``; ``first`` and
    ``last`` (inclusive; Months, Periods or ``YYYY-MM``) bound the period, e.g.
    the base period or the training period. Returns a frame indexed by calendar
    month 1..12 with one column per phase (PHASES order), rows summing to 1.
    """
    sel = observed_phase.loc[to_period(first):to_period(last)].dropna()
    codes = _phase_codes(sel, "observed phase")
    counts = np.zeros((12, len(PHASES)))
    np.add.at(counts, (sel.index.month.to_numpy() - 1, codes), 1)
    missing = [m + 1 for m in range(12) if counts[m].sum() == 0]
    if missing:
        raise ValueError(f"no observed phase in {first}..{last} for calendar months {missing}")
    return pd.DataFrame(counts / counts.sum(axis=1, keepdims=True),
                        index=pd.Index(range(1, 13), name="calendar_month"), columns=list(PHASES))


# --------------------------------------------------------------------------- forecast frames

def forecast_frame(init_months: Iterable[object], leads: Sequence[int], anomaly: np.ndarray,
                   probabilities: np.ndarray | None = None, sd: np.ndarray | None = None) -> pd.DataFrame:
    """Build a forecast frame from (n_init, n_lead) anomalies and optional (n_init, n_lead, 3) probabilities.

    ``sd``, (n_init, n_lead) or (n_lead,), is the Gaussian spread of the
    anomaly (column :data:`SPREAD_COLUMN`). Rows run init month by init month,
    leads ascending within each; months become ``pandas.Period``
    (``target_month = init_month + lead``).
    """
    inits = to_periods(init_months)
    leads = np.asarray(leads, dtype=np.int64)
    values = np.asarray(anomaly, dtype=np.float64)
    if values.shape != (inits.size, leads.size):
        raise ValueError(f"forecast anomalies have shape {values.shape}, expected {(inits.size, leads.size)}")
    init_col = inits.repeat(leads.size)
    lead_col = np.tile(leads, inits.size)
    out = pd.DataFrame({
        "init_month": init_col,
        "lead": lead_col,
        "target_month": pd.PeriodIndex([i + int(k) for i, k in zip(init_col, lead_col)], freq="M"),
        "nino34_anomaly": values.ravel(),
    })
    if probabilities is not None:
        probs = np.asarray(probabilities, dtype=np.float64).reshape(inits.size * leads.size, len(PHASES))
        for k, column in enumerate(PROBABILITY_COLUMNS):
            out[column] = probs[:, k]
    if sd is not None:
        spread = np.broadcast_to(np.asarray(sd, dtype=np.float64), values.shape)
        if (spread[np.isfinite(spread)] <= 0).any():
            raise ValueError("the Gaussian spread of a forecast must be positive")
        out[SPREAD_COLUMN] = spread.ravel()
    return out


def attach_observations(forecasts: pd.DataFrame, nino34_anomaly: pd.Series,
                        observed_phase: pd.Series | None = None) -> pd.DataFrame:
    """The forecast frame with ``observed_anomaly`` (and ``observed_phase``) at each target month.

    Both series are indexed by a monthly ``PeriodIndex``; target months not in
    them get NaN/None (they are left out of the scores).
    """
    out = forecasts.copy()
    target = to_periods(out["target_month"])
    out["observed_anomaly"] = nino34_anomaly.reindex(target).to_numpy(dtype=np.float64)
    if observed_phase is not None:
        out["observed_phase"] = observed_phase.astype(object).reindex(target).to_numpy()
    return out


def _group_scores(group: pd.DataFrame, climatology: pd.DataFrame | None) -> list[tuple[str, Score]]:
    f, o = group["nino34_anomaly"].to_numpy(np.float64), group["observed_anomaly"].to_numpy(np.float64)
    scores = [("acc", acc(f, o)), ("rmse", rmse(f, o)), ("mae", mae(f, o)),
              ("bias", bias(f, o)), ("msss", msss(f, o))]
    if SPREAD_COLUMN in group:
        sd = pd.to_numeric(group[SPREAD_COLUMN], errors="coerce").to_numpy(np.float64)
        if np.isfinite(sd).any():
            scores.append(("crps", crps_gaussian(f, sd, o)))
    if "observed_phase" not in group:
        return scores
    observed = group["observed_phase"].to_numpy(object)
    forecast_phase = group["phase"] if "phase" in group else phases_of(f)
    table = contingency_table(forecast_phase, observed)
    scores += [("accuracy", accuracy(table)), ("heidke", heidke(table)),
               ("peirce", peirce(table)), ("gerrity", gerrity(table))]
    if not set(PROBABILITY_COLUMNS) <= set(group.columns):
        return scores
    probs = group[list(PROBABILITY_COLUMNS)].to_numpy(np.float64)
    scores.append(("rps", rps(probs, observed)))
    reference = None
    if climatology is not None:
        target_month = to_periods(group["target_month"]).month
        reference = climatology.loc[target_month, list(PHASES)].to_numpy()
        scores.append(("rpss", rpss(probs, observed, reference)))
    occurred = _one_hot(observed)
    scores += [(f"brier_{phase}", brier(probs[:, k], occurred[:, k])) for k, phase in enumerate(PHASES)]
    if reference is not None:
        scores += [(f"bss_{phase}", brier_skill_score(probs[:, k], occurred[:, k], reference[:, k]))
                   for k, phase in enumerate(PHASES)]
    return scores


def score_table(frame: pd.DataFrame, climatology: pd.DataFrame | None = None) -> pd.DataFrame:
    """Scores by lead and by (lead, target calendar month), as a tidy frame.

    ``frame`` is a forecast frame with ``observed_anomaly`` (see
    :func:`attach_observations`). Always scored: ACC, RMSE, MAE, bias, MSSS (vs a
    zero anomaly). With ``observed_phase``: the categorical scores, the forecast
    phase being the ``phase`` column if present, else the forecast anomaly
    thresholded at ±0.5. With the probability columns also: RPS, Brier per phase,
    and RPSS and the Brier skill score per phase (``bss_<phase>``) against
    ``climatology``, the phase frequencies per target calendar month (from
    :func:`phase_climatology`, over stated months before the scored ones;
    without it neither is computed: the phase frequencies of the scored months
    themselves are no forecast anyone could have made). With
    :data:`SPREAD_COLUMN` (finite somewhere): the CRPS of the Gaussian forecast.

    Returns columns ``lead``, ``target_calendar_month`` (None for all months),
    ``metric``, ``value``, ``n``.
    """
    missing = {"lead", "target_month", "nino34_anomaly", "observed_anomaly"} - set(frame.columns)
    if missing:
        raise ValueError(f"forecast frame lacks columns {sorted(missing)}")
    work = frame.reset_index(drop=True)
    calendar = to_periods(work["target_month"]).month.to_numpy()
    rows: list[tuple[int, int | None, str, float, int]] = []
    for lead, by_lead in work.groupby("lead", sort=True):
        groups = [(None, by_lead)] + [(int(m), g) for m, g in by_lead.groupby(calendar[by_lead.index], sort=True)]
        for month, group in groups:
            rows += [(int(lead), month, name, s.value, s.n) for name, s in _group_scores(group, climatology)]
    columns = list(zip(*rows)) if rows else [()] * 5
    return pd.DataFrame({
        "lead": np.asarray(columns[0], dtype=np.int64),
        "target_calendar_month": pd.Series(columns[1], dtype=object),
        "metric": pd.Series(columns[2], dtype=object),
        "value": np.asarray(columns[3], dtype=np.float64),
        "n": np.asarray(columns[4], dtype=np.int64),
    })
