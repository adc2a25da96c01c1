"""Phase probabilities of the residual design: a Gaussian on the forecast ONI, calibrated on validation errors.

The phase of a target month is defined by the ONI centred on it (its anomaly
averaged with the months before and after). The forecast ONI of lead L is the
mean of the forecast anomalies of leads L-1, L, L+1, where lead 0 is the
observed anomaly of the init month and lead 13, not forecast, is left out.

The probability of each phase is the mass of N(forecast ONI, sigma_L^2) below
-0.5, between, and above +0.5 (:func:`enso.baselines.gaussian_phase_probabilities`),
with sigma the RMSE of the ensemble-mean ONI forecast over the selection period
(never the test period) per target calendar month and lead
(:func:`calibrate_spread`). The ensemble spread is not used: a few seeds of one
network are far less spread than their error.
"""

from __future__ import annotations

import numpy as np

#: Smallest sigma (°C) used, so that a perfect validation score cannot give certainties.
MIN_SIGMA = 0.05
#: Weight, in cases, of a lead's all-season spread in each target month's spread.
SHRINK_CASES = 12


def forecast_oni(anomaly: np.ndarray, init_anomaly: np.ndarray) -> np.ndarray:
    """(n, 12) ONI of each target month from (n, 12) forecast anomalies and the (n,) observed init anomaly.

    A missing init anomaly (NaN) leaves lead 1's ONI the mean of leads 1 and 2.
    """
    n = anomaly.shape[0]
    padded = np.concatenate([init_anomaly[:, None], anomaly, np.full((n, 1), np.nan)], axis=1)
    stacked = np.stack([padded[:, :-2], padded[:, 1:-1], padded[:, 2:]])
    known = np.isfinite(stacked)
    return np.where(known, stacked, 0.0).sum(axis=0) / known.sum(axis=0)


def calibrate_spread(forecast: np.ndarray, observed: np.ndarray, target_calendar: np.ndarray) -> np.ndarray:
    """Error sd per target calendar month and lead (12, 12) from (n, 12) forecasts and observations.

    ``target_calendar`` (n, 12) is the calendar month (0..11) of each target. Errors
    depend on the season the forecast crosses (the spring barrier), but a selection
    window holds only ~10 cases per target month and lead; so each cell pools the
    target month and its two neighbours and is shrunk toward the lead's sd over all
    months (weight :data:`SHRINK_CASES` cases). The sd is made non-decreasing in
    lead for each target month (an earlier init cannot know more) and at least
    :data:`MIN_SIGMA`.
    """
    error = forecast - observed
    known = np.isfinite(error)
    if not known[:, 0].any():
        raise ValueError("the selection period holds no observed target at lead 1: too short to calibrate "
                         "phase probabilities")
    squared = np.where(known, error, 0.0) ** 2
    out = np.zeros((12, error.shape[1]))
    for k in range(error.shape[1]):
        n_lead = known[:, k].sum()
        var_lead = squared[:, k].sum() / n_lead if n_lead else np.nan
        for c in range(12):
            near = known[:, k] & (np.abs((target_calendar[:, k] - c + 6) % 12 - 6) <= 1)
            n = near.sum()
            var = (squared[near, k].sum() + SHRINK_CASES * var_lead) / (n + SHRINK_CASES) if n_lead else np.nan
            out[c, k] = np.sqrt(var)
    for k in range(1, out.shape[1]):  # a lead the period cannot score takes the previous lead's spread
        out[:, k] = np.where(np.isfinite(out[:, k]), out[:, k], out[:, k - 1])
    return np.maximum.accumulate(np.maximum(out, MIN_SIGMA), axis=1)


def spread_at(spread: np.ndarray, target_calendar: np.ndarray) -> np.ndarray:
    """(n, 12) sd of each case and lead from a (12 target months, 12 leads) table."""
    return spread[target_calendar, np.arange(spread.shape[1])[None, :]]
