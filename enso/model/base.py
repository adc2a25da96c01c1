"""The linear base of the residual design: an EOF ridge regression per lead, fitted on the training period.

The residual network forecasts a correction of this base, so it starts from the best
linear forecast instead of damped persistence (issue 9; README, "Model, forecasts and hindcasts"):

* **EOFs** of the network's input field (the SST anomaly against the preceding
  years, on the model grid, ocean cells weighted by sqrt(cos(latitude))) over the
  training months: the ``ridge_eofs`` leading patterns, from the eigenvectors of the
  months' Gram matrix (cheap whatever the grid size).
* **Features** of an init month: the patterns' amplitudes (PCs) in the last
  ``ridge_lags`` months of its input window and its Niño 3.4 anomaly (model units);
  with ``ridge_seasonal``, that anomaly times sin and cos of the init calendar month
  too (persistence is strong from autumn and weak across the spring barrier, and one
  coefficient per lead cannot say so: 3-fold selection-decade RMSE over leads 1-12
  0.639 -> 0.609 °C with 12 EOFs, 0.599 with 16). All standardised with the training
  cases' mean and sd.
* **Ridge** per lead with an intercept, on the training cases; the penalty of each
  lead is chosen among :data:`ALPHAS` on the selection cases only (targets inside
  the selection window), then kept when the model is refitted on every month.

Everything is a plain array in the model's statistics (``base_*`` keys), stored with
the model, so a forecast recomputes the base exactly.
"""

from __future__ import annotations

import numpy as np

from enso.model.presets import FORECAST_LEADS

#: Ridge penalties tried per lead (on standardised features, per case).
ALPHAS: tuple[float, ...] = (0.01, 0.1, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)


def _weights(lat: np.ndarray, ocean: np.ndarray) -> np.ndarray:
    """sqrt(cos(latitude)) per ocean cell (flattened), so that each pattern is area-weighted."""
    weight = np.sqrt(np.clip(np.cos(np.deg2rad(lat)), 0.0, None))[:, None] * np.ones(ocean.shape)
    return weight[ocean]


def fit_patterns(field: np.ndarray, rows: np.ndarray, lat: np.ndarray, land: np.ndarray,
                 n_eofs: int) -> np.ndarray:
    """The ``n_eofs`` leading EOFs (n_eofs, ocean cells) of ``field[rows]``, weights folded in.

    Computed from the eigenvectors of the (months x months) Gram matrix: for a grid
    with more cells than months this is the same decomposition as an SVD, far cheaper.
    """
    ocean = ~land
    x = field[rows][:, ocean].astype(np.float64) * _weights(lat, ocean)
    x = x - x.mean(axis=0)
    if x.shape[0] < n_eofs + 1:
        raise ValueError(f"{x.shape[0]} training months are too few for {n_eofs} EOFs")
    values, vectors = np.linalg.eigh(x @ x.T)
    order = np.argsort(values)[::-1][:n_eofs]
    patterns = vectors[:, order].T @ x
    patterns /= np.linalg.norm(patterns, axis=1, keepdims=True)
    return patterns * _weights(lat, ocean)[None, :]


def project(field: np.ndarray, rows: np.ndarray, land: np.ndarray, patterns: np.ndarray) -> np.ndarray:
    """PCs (len(rows), n_eofs) of the field in those rows."""
    return field[rows][:, ~land].astype(np.float64) @ patterns.T


def features(field: np.ndarray, window: np.ndarray, persistence: np.ndarray, land: np.ndarray,
             patterns: np.ndarray, lags: int, init_calendar: np.ndarray | None = None) -> np.ndarray:
    """Raw features (n, lags * n_eofs + 1 [+ 2]): PCs of the window's last ``lags`` months, then persistence,
    then, when ``init_calendar`` (0..11 per case) is given, persistence times sin and cos of the init month."""
    columns = [project(field, window[:, -1 - lag], land, patterns) for lag in range(lags)]
    value = persistence.astype(np.float64)[:, None]
    columns.append(value)
    if init_calendar is not None:
        angle = 2.0 * np.pi * np.asarray(init_calendar, dtype=np.float64)[:, None] / 12.0
        columns += [value * np.sin(angle), value * np.cos(angle)]
    return np.concatenate(columns, axis=1)


def _solve(x: np.ndarray, y: np.ndarray, alpha: float) -> np.ndarray:
    """Ridge coefficients (features + intercept) on standardised x, for cases where y is known."""
    known = np.isfinite(y)
    xk, yk = x[known], y[known]
    design = np.concatenate([xk, np.ones((xk.shape[0], 1))], axis=1)
    penalty = alpha * xk.shape[0] * np.eye(design.shape[1])
    penalty[-1, -1] = 0.0
    return np.linalg.solve(design.T @ design + penalty, design.T @ yk)


def _apply(x: np.ndarray, coef: np.ndarray) -> np.ndarray:
    return x @ coef[:-1] + coef[-1]


def fit_ridge(train_x: np.ndarray, train_y: np.ndarray, select_x: np.ndarray | None,
              select_y: np.ndarray | None, alphas: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per-lead ridge on the training cases; the penalty per lead chosen on the selection cases.

    ``alphas`` (per lead) skips the choice: a refit on every month keeps the selected
    penalties. Returns the statistics ``base_mean``, ``base_sd`` (feature scaling),
    ``base_coef`` (leads, features + 1) and ``base_alpha`` (leads,).
    """
    mean, sd = train_x.mean(axis=0), train_x.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    xs = (train_x - mean) / sd
    n_leads = len(FORECAST_LEADS)
    chosen = np.empty(n_leads)
    coefs = np.empty((n_leads, xs.shape[1] + 1))
    for k in range(n_leads):
        if alphas is not None:
            chosen[k] = alphas[k]
        else:
            if select_x is None or select_y is None:
                raise ValueError("choosing the ridge penalty needs selection cases")
            sx = (select_x - mean) / sd
            known = np.isfinite(select_y[:, k])
            if not known.any():
                raise ValueError(f"no selection case has an observed target at lead {k + 1}")
            errors = [np.mean((_apply(sx[known], _solve(xs, train_y[:, k], a)) - select_y[known, k]) ** 2)
                      for a in ALPHAS]
            chosen[k] = ALPHAS[int(np.argmin(errors))]
        coefs[k] = _solve(xs, train_y[:, k], float(chosen[k]))
    return {"base_mean": mean, "base_sd": sd, "base_coef": coefs, "base_alpha": chosen}


def base_forecast(x: np.ndarray, stats: dict[str, np.ndarray]) -> np.ndarray:
    """The ridge forecast (n, leads) in model units from raw features."""
    xs = (x - stats["base_mean"]) / stats["base_sd"]
    return xs @ stats["base_coef"][:, :-1].T + stats["base_coef"][:, -1][None, :]
