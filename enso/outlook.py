"""CPC-style seasonal outlook: phase probabilities for the nine overlapping 3-month seasons after the init month.

Users read CPC's official outlook as the probabilities of La Niña, neutral and
El Niño for nine overlapping seasons (``DJF``, ``JFM``, ...). Here season
``s`` = 1..9 of a forecast initialised in month ``init`` covers the target months
``init + s .. init + s + 2`` (leads s..s+2) and is labelled by its three
initials, as CPC's ``oni.ascii.txt`` labels the season centred on month
``init + s + 1`` (:data:`enso.sources.index.ONI_SEASONS`).

**Mean and spread of the traditional index.** The seasonal mean of the forecast
Niño 3.4 anomalies over leads s..s+2 *is* the model's forecast ONI of the
season's centre month, lead s+1 (:func:`enso.model.phases.forecast_oni`: the
mean of leads L-1, L, L+1), and the model's stored ``oni_error_sd`` (12 target
calendar months x 12 leads, calibrated on the selection months against the
observed ONI: :func:`enso.model.phases.calibrate_spread`) at that centre month
and lead s+1 is exactly the error sd of this seasonal mean. Both are reused; no
new statistic is fitted or stored. With the ONI as the phase index the outlook's
probabilities therefore equal the forecast's monthly probabilities at leads 2..10.

**RONI** (the default phase index, CPC's since February 2026) is the 3-month mean
of the relative anomaly ``R = s_c (N - T)`` (:mod:`enso.relative`). The model
forecasts the traditional anomaly ``N`` only, so the seasonal mean is moved to
the relative index by the **observed offset** ``d = N - R`` (traditional minus
relative monthly anomaly, as the store holds both) of the init month, persisted
over the leads: RONI forecast = ONI forecast - d(init). The offset is not
constant (it carries the tropical-mean anomaly and, since s_c > 1, a part
-(s_c - 1) N of the ENSO signal), so the spread is widened by the root mean
square change of the offset from a month to the mean of the season h months
later, over every such pair in the stored history that ends strictly before the
init month (a causal estimate; at least :data:`MIN_OFFSET_PAIRS` pairs):
sd = sqrt(sd_ONI^2 + sd_offset^2), taking the two errors as independent. When
the init month itself has no relative value, the newest month of the
:data:`MAX_OFFSET_AGE` before it is the origin and the change is taken over the
longer horizon. An init month without any (no relative index in reach, or too
short a history) keeps the ONI for its outlook: every row says which
``phase_index`` it is of.

Probabilities are the mass of N(mean, sd^2) below -0.5, between and above +0.5
(:func:`enso.baselines.gaussian_phase_probabilities`, as the monthly ones).

**Verification** (:func:`outlook_forecast_frame`, :func:`seasonal_scores`): the
observed value of a season is the phase index's 3-month mean centred on its
centre month (the ONI or RONI of that month), its phase the phase of that month,
and the climatological probabilities of a season those of its centre calendar
month, so the monthly RPSS's reference climatology
(:func:`enso.verify.phase_climatology`) serves unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from enso.baselines import LEADS, gaussian_phase_probabilities
from enso.model.phases import forecast_oni, spread_at
from enso.months import to_periods
from enso.nino34 import PHASE_INDEX_LABELS, PHASES, phases_of
from enso.sources.index import ONI_SEASONS
from enso.verify import PROBABILITY_COLUMNS, SPREAD_COLUMN, attach_observations, score_table

#: The seasons of an outlook: season s covers leads s, s+1, s+2 (centre lead s+1).
SEASONS: tuple[int, ...] = tuple(range(1, 10))
#: Columns of an outlook frame (:func:`seasonal_outlook`), one row per (init month, season).
OUTLOOK_COLUMNS: tuple[str, ...] = ("init_month", "season", "season_label", "first_month", "last_month",
                                    "phase_index", "mean", "sd", *PROBABILITY_COLUMNS)
#: Prefix of the seasonal verification metrics (``seasonal_rpss``, ...; their ``lead`` is the season).
SEASONAL_METRIC_PREFIX = "seasonal_"
#: Oldest origin (months before the init month) of the observed offset between the traditional and relative index.
MAX_OFFSET_AGE = 3
#: Fewest past (origin month, season) pairs for the spread of the offset's change.
MIN_OFFSET_PAIRS = 24

_CENTRE_LEADS = np.asarray(SEASONS) + 1
#: Forecast leads a season outlook needs: 1 .. the last season's last lead.
_NEEDED_LEADS = tuple(range(1, SEASONS[-1] + 3))


def season_label(centre_month: object) -> str:
    """CPC's name of the 3-month season centred on a month (Period, Month or ``YYYY-MM``): ``DJF`` for January."""
    return ONI_SEASONS[to_periods([centre_month])[0].month - 1]


def seasonal_means(anomaly: np.ndarray) -> np.ndarray:
    """(n, 9) mean anomaly of each season from (n, 12) monthly forecast anomalies of leads 1..12.

    Season s is the mean of leads s..s+2: the forecast ONI of lead s+1
    (:func:`enso.model.phases.forecast_oni`), which needs no observed month.
    """
    values = np.asarray(anomaly, dtype=np.float64)
    return forecast_oni(values, np.full(values.shape[0], np.nan))[:, _CENTRE_LEADS - 1]


def seasonal_spread(oni_error_sd: np.ndarray, init_months: pd.PeriodIndex) -> np.ndarray:
    """(n, 9) error sd of each season's mean: the model's ONI error sd at the season's centre month and lead s+1.

    ``oni_error_sd`` is the (12 target calendar months, 12 leads) table of
    :func:`enso.model.phases.calibrate_spread`.
    """
    table = np.asarray(oni_error_sd, dtype=np.float64)
    if table.ndim != 2 or table.shape[0] != 12 or table.shape[1] < _CENTRE_LEADS[-1]:
        raise ValueError(f"the ONI error sd must be a (12 target months, 12 leads) table, not {table.shape}")
    target_calendar = (np.asarray(init_months.month)[:, None] - 1 + np.asarray(LEADS)[None, :]) % 12
    return spread_at(table[:, :len(LEADS)], target_calendar)[:, _CENTRE_LEADS - 1]


@dataclass(frozen=True)
class RelativeOffset:
    """The observed offset between the traditional and the relative Niño 3.4 index, month by month (°C).

    ``offset`` = traditional anomaly - relative anomaly on a gap-free monthly
    PeriodIndex (NaN where either index lacks the month): subtracted from a
    forecast of the traditional index, it gives one of the relative index.
    """

    offset: pd.Series

    @classmethod
    def observed(cls, nino34_anomaly: pd.Series, relative_anomaly: pd.Series) -> "RelativeOffset":
        """From the traditional index's anomalies and the relative index's (both on monthly PeriodIndexes)."""
        difference = (nino34_anomaly.astype(float) - relative_anomaly.astype(float)).dropna()
        if difference.empty:
            return cls(pd.Series(dtype=float, index=pd.PeriodIndex([], freq="M")))
        months = pd.period_range(difference.index.min(), difference.index.max(), freq="M")
        return cls(difference.reindex(months))

    def persisted(self, init_months: pd.PeriodIndex) -> tuple[np.ndarray, np.ndarray]:
        """For each init month, the offset persisted (n,) and the sd of its change to each season's mean (n, 9).

        The origin is the init month, or the newest month of the
        :data:`MAX_OFFSET_AGE` before it with an offset; the sd is the root mean
        square, over the stored pairs (origin j, the mean of months j+h..j+h+2)
        that end before the init month, of the change, for the horizon h from
        the origin to the season's first month. NaN where there is no origin or
        fewer than :data:`MIN_OFFSET_PAIRS` pairs.
        """
        n = len(init_months)
        value, spread = np.full(n, np.nan), np.full((n, len(SEASONS)), np.nan)
        d = self.offset.to_numpy(dtype=np.float64)
        if d.size == 0 or n == 0:
            return value, spread
        first = self.offset.index[0]
        horizons = len(SEASONS) + MAX_OFFSET_AGE + 1
        padded = np.concatenate([d, np.full(horizons + 3, np.nan)])
        season_mean = (padded[:-2] + padded[1:-1] + padded[2:]) / 3.0  # NaN when a month is missing
        squares, counts = np.zeros((horizons, d.size)), np.zeros((horizons, d.size))
        for h in range(1, horizons):
            change = season_mean[h:h + d.size] - d
            known = np.isfinite(change)
            squares[h] = np.cumsum(np.where(known, change, 0.0) ** 2)
            counts[h] = np.cumsum(known)
        for row, init in enumerate(init_months):
            position = (init - first).n
            ages = [a for a in range(MAX_OFFSET_AGE + 1) if 0 <= position - a < d.size and np.isfinite(d[position - a])]
            if not ages:
                continue
            age = ages[0]
            value[row] = d[position - age]
            for k, season in enumerate(SEASONS):
                h = age + season
                last_origin = min(position - h - 3, d.size - 1)  # its season ends before the init month
                if last_origin >= 0 and counts[h, last_origin] >= MIN_OFFSET_PAIRS:
                    spread[row, k] = np.sqrt(squares[h, last_origin] / counts[h, last_origin])
        return value, spread


def seasonal_outlook(forecasts: pd.DataFrame, oni_error_sd: np.ndarray, *, phase_index: str = "roni",
                     offset: RelativeOffset | None = None) -> pd.DataFrame:
    """The outlook of every init month of a forecast frame: :data:`OUTLOOK_COLUMNS`, 9 rows per init month.

    ``forecasts`` is a forecast frame (``init_month``, ``lead``,
    ``nino34_anomaly``: the traditional anomaly, leads 1..11 at least);
    ``oni_error_sd`` the model's ONI error sd table; ``phase_index`` ``roni``
    (needs ``offset``, :meth:`RelativeOffset.observed`) or ``oni``. ``mean`` and
    ``sd`` are in °C of the row's ``phase_index`` (an init month the offset
    cannot reach keeps ``oni``, see the module docstring); months are monthly
    Periods. Raises ValueError for a frame that lacks a needed lead.
    """
    if phase_index not in PHASE_INDEX_LABELS:
        raise ValueError(f"unknown phase index {phase_index!r}: choose {' or '.join(PHASE_INDEX_LABELS)}")
    if phase_index == "roni" and offset is None:
        raise ValueError("a RONI outlook needs the observed offset between the traditional and relative index")
    cases = pd.DataFrame({"init_month": to_periods(forecasts["init_month"]),
                          "lead": forecasts["lead"].astype(int).to_numpy(),
                          "anomaly": forecasts["nino34_anomaly"].astype(float).to_numpy()})
    if cases.duplicated(["init_month", "lead"]).any():
        raise ValueError("the forecast frame holds a lead twice for one init month")
    wide = cases.pivot(index="init_month", columns="lead", values="anomaly").reindex(columns=list(LEADS))
    lacking = wide.index[wide[list(_NEEDED_LEADS)].isna().any(axis=1).to_numpy()]
    if len(lacking):
        raise ValueError(f"the forecast from {lacking[0]} lacks a lead of 1..{_NEEDED_LEADS[-1]}: a seasonal outlook "
                         "needs every lead its nine seasons cover")
    inits = pd.PeriodIndex(wide.index, freq="M")
    mean = seasonal_means(wide.to_numpy(dtype=np.float64))
    sd = seasonal_spread(oni_error_sd, inits)
    index_of = np.full(len(inits), "oni", dtype=object)
    if phase_index == "roni":
        value, change_sd = offset.persisted(inits)  # type: ignore[union-attr]
        known = np.isfinite(value) & np.isfinite(change_sd).all(axis=1)
        mean[known] -= value[known, None]
        sd[known] = np.hypot(sd[known], change_sd[known])
        index_of[known] = "roni"
    probabilities = gaussian_phase_probabilities(mean, sd)
    seasons = np.tile(np.asarray(SEASONS), len(inits))
    init_col = inits.repeat(len(SEASONS))
    first = pd.PeriodIndex([i + int(s) for i, s in zip(init_col, seasons)], freq="M")
    out = pd.DataFrame({
        "init_month": init_col, "season": seasons,
        "season_label": [season_label(m + 1) for m in first],
        "first_month": first, "last_month": first + 2,
        "phase_index": np.repeat(index_of, len(SEASONS)),
        "mean": mean.ravel(), "sd": sd.ravel(),
    })
    for k, column in enumerate(PROBABILITY_COLUMNS):
        out[column] = probabilities[..., k].ravel()
    return out[list(OUTLOOK_COLUMNS)]


# --------------------------------------------------------------------------- verification

def outlook_forecast_frame(outlook: pd.DataFrame, observed_mean: pd.Series | None = None,
                           observed_phase: pd.Series | None = None) -> pd.DataFrame:
    """The outlook as a forecast frame of :mod:`enso.verify`, to be scored with its functions.

    ``lead`` is the season, ``target_month`` its centre month,
    ``nino34_anomaly`` its mean and :data:`enso.verify.SPREAD_COLUMN` its sd (of
    the phase index), ``phase`` the phase of the mean. With ``observed_mean``
    (the phase index's 3-month means: ONI or RONI by centre month) and
    ``observed_phase`` (their phases) it carries ``observed_anomaly`` and
    ``observed_phase`` (:func:`enso.verify.attach_observations`).
    """
    frame = pd.DataFrame({
        "init_month": to_periods(outlook["init_month"]),
        "lead": outlook["season"].astype(int).to_numpy(),
        "target_month": to_periods(outlook["first_month"]) + 1,
        "nino34_anomaly": outlook["mean"].astype(float).to_numpy(),
        SPREAD_COLUMN: outlook["sd"].astype(float).to_numpy(),
        **{column: outlook[column].astype(float).to_numpy() for column in PROBABILITY_COLUMNS},
    })
    frame["phase"] = phases_of(frame["nino34_anomaly"]).to_numpy()
    if observed_mean is None:
        return frame
    return attach_observations(frame, observed_mean, observed_phase)


def climatological_outlook(frame: pd.DataFrame, climatology: pd.DataFrame) -> pd.DataFrame:
    """The climatological forecast of the same seasons as a forecast frame of :func:`outlook_forecast_frame`:
    mean 0, no spread, and the phase frequencies of each season's centre calendar month (``climatology``,
    :func:`enso.verify.phase_climatology`); its observations are kept."""
    out = frame.drop(columns=[SPREAD_COLUMN, "phase"], errors="ignore").copy()
    out["nino34_anomaly"] = 0.0
    centre = to_periods(out["target_month"]).month
    out[list(PROBABILITY_COLUMNS)] = climatology.loc[centre, list(PHASES)].to_numpy(dtype=np.float64)
    return out


def seasonal_scores(frame: pd.DataFrame, climatology: pd.DataFrame) -> pd.DataFrame:
    """Scores of an outlook frame with observations, by season over all target months: the columns of
    :func:`enso.verify.score_table` (``lead`` = season), each metric prefixed :data:`SEASONAL_METRIC_PREFIX`
    (``seasonal_rpss`` against ``climatology``, the reference phase frequencies per calendar month)."""
    scores = score_table(frame, climatology)
    scores = scores[scores["target_calendar_month"].isna()].reset_index(drop=True)
    scores["metric"] = SEASONAL_METRIC_PREFIX + scores["metric"].astype(str)
    return scores
