"""Phase probabilities of the residual design: a Gaussian on the forecast ONI, calibrated on validation errors.

The phase of a target month is defined by the ONI centred on it (its anomaly
averaged with the months before and after). The forecast ONI of lead L is the
mean of the forecast anomalies of leads L-1, L, L+1, where lead 0 is the
observed anomaly of the init month and lead 13, not forecast, is left out.

The probability of each phase is the mass of N(forecast ONI, sigma_L^2) below
-0.5, between, and above +0.5 (:func:`enso.baselines.gaussian_phase_probabilities`),
with sigma_L the RMSE of the ensemble-mean ONI forecast of lead L over the
validation period (never the test period). The
ensemble spread is not used: a few seeds of one network are far less spread
than their error. sigma is made non-decreasing in lead (errors grow with lead;
this also fills a lead that the validation period cannot score).
"""

from __future__ import annotations

import numpy as np

#: Smallest sigma (°C) used, so that a perfect validation score cannot give certainties.
MIN_SIGMA = 0.05


def forecast_oni(anomaly: np.ndarray, init_anomaly: np.ndarray) -> np.ndarray:
    """(n, 12) ONI of each target month from (n, 12) forecast anomalies and the (n,) observed init anomaly.

    A missing init anomaly (NaN) leaves lead 1's ONI the mean of leads 1 and 2.
    """
    n = anomaly.shape[0]
    padded = np.concatenate([init_anomaly[:, None], anomaly, np.full((n, 1), np.nan)], axis=1)
    stacked = np.stack([padded[:, :-2], padded[:, 1:-1], padded[:, 2:]])
    known = np.isfinite(stacked)
    return np.where(known, stacked, 0.0).sum(axis=0) / known.sum(axis=0)


def calibrate_sigma(oni_forecast: np.ndarray, oni_observed: np.ndarray) -> np.ndarray:
    """Per-lead sigma (12,) from (n, 12) forecast and observed ONI (NaN where unknown)."""
    error = oni_forecast - oni_observed
    known = np.isfinite(error)
    count = known.sum(axis=0)
    if count[0] == 0:
        raise ValueError("the validation period holds no observed ONI at lead 1: too short to calibrate "
                         "phase probabilities")
    with np.errstate(invalid="ignore", divide="ignore"):
        rmse = np.sqrt((np.where(known, error, 0.0) ** 2).sum(axis=0) / count)
    rmse = np.where(count > 0, rmse, 0.0)
    return np.maximum.accumulate(np.maximum(rmse, MIN_SIGMA))
