"""Niño 3.4 index conventions: anomaly, ONI and phase, defined once.

* Anomaly: monthly Niño 3.4 minus the mean of the same calendar month over a
  stated base period (default 1991-2020, as CPC's monthly file).
* ONI(t): centred 3-month running mean of the anomalies (t-1, t, t+1); the
  newest month has none yet.
* Phase of a month: ONI >= +0.5 -> El Niño, ONI <= -0.5 -> La Niña, else neutral
  (the reference method's per-month rule, not NOAA's 5-season event rule).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

EL_NINO = "el_nino"
NEUTRAL = "neutral"
LA_NINA = "la_nina"
#: Ordered categories: La Niña < neutral < El Niño (the order Gerrity scores use).
PHASES: tuple[str, str, str] = (LA_NINA, NEUTRAL, EL_NINO)
PHASE_THRESHOLD = 0.5
#: The indices that may define the phase (ENSO_PHASE_INDEX), by their names: the Relative Oceanic Niño Index
#: (CPC's official one since February 2026, :mod:`enso.relative`) and the traditional Oceanic Niño Index.
PHASE_INDEX_LABELS: dict[str, str] = {"roni": "RONI", "oni": "ONI"}

#: Single-letter codes used by McNoldy's table and the reference method.
PHASE_CODES = {"E": EL_NINO, "L": LA_NINA, "N": NEUTRAL}
DEFAULT_BASE_PERIOD: tuple[int, int] = (1991, 2020)


def phase_of(value: float | None, threshold: float = PHASE_THRESHOLD) -> str | None:
    """Phase for an ONI (or anomaly) value; None when the value is missing."""
    if value is None or not np.isfinite(value):
        return None
    if value >= threshold:
        return EL_NINO
    if value <= -threshold:
        return LA_NINA
    return NEUTRAL


def phases_of(values: pd.Series | np.ndarray, threshold: float = PHASE_THRESHOLD) -> pd.Series:
    """Vectorised :func:`phase_of` (None where missing)."""
    s = pd.Series(values)
    return pd.Series([phase_of(v, threshold) for v in s], index=s.index, dtype=object)


def phase_index(phase: str) -> int:
    """0, 1, 2 for La Niña, neutral, El Niño."""
    return PHASES.index(phase)


def climatology(nino34: pd.Series, base: tuple[int, int] = DEFAULT_BASE_PERIOD) -> pd.Series:
    """Mean Niño 3.4 per calendar month (index 1..12) over the base years.

    ``nino34`` is indexed by a monthly ``PeriodIndex``.
    """
    idx = nino34.index
    in_base = (idx.year >= base[0]) & (idx.year <= base[1])
    sel = nino34[in_base].dropna()
    clim = sel.groupby(sel.index.month).mean()
    missing = sorted(set(range(1, 13)) - set(clim.index))
    if missing:
        raise ValueError(
            f"base period {base[0]}-{base[1]} lacks Niño 3.4 values for calendar months {missing}"
        )
    return clim


def anomaly(nino34: pd.Series, base: tuple[int, int] = DEFAULT_BASE_PERIOD,
            clim: pd.Series | None = None) -> pd.Series:
    """Niño 3.4 anomaly against the monthly climatology of the base period."""
    clim = clim if clim is not None else climatology(nino34, base)
    return nino34 - clim.reindex(nino34.index.month).to_numpy()


def oni(anom: pd.Series) -> pd.Series:
    """Centred 3-month running mean; NaN where a neighbour month is missing.

    The series must be on a gap-free monthly ``PeriodIndex`` (reindex first).
    """
    full = anom.reindex(pd.period_range(anom.index.min(), anom.index.max(), freq="M"))
    out = full.rolling(3, center=True, min_periods=3).mean()
    return out.reindex(anom.index)
