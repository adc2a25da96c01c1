"""Reference forecasts anyone could make without the model: the bar every model score stands beside.

Each baseline is fitted on a stated training period only (``fit``) and then
forecasts leads 1..12 for given init months (``predict``) as a forecast frame
(:func:`enso.verify.forecast_frame`: ``init_month``, ``lead``, ``target_month``,
``nino34_anomaly``, ``p_la_nina``, ``p_neutral``, ``p_el_nino``, and with
``"gaussian"`` probabilities ``nino34_anomaly_sd``).

* :class:`Climatology` - anomaly 0; phase probabilities = observed phase
  frequencies of the target calendar month over the months it is fitted on
  (the caller states them: :mod:`db.verification` uses the reference years of
  :func:`causal_base`, the 30 years before the scored init months).
* :class:`Persistence` - the init month's anomaly, held for every lead.
* :class:`DampedPersistence` - a centred lag regression per lead:
  forecast = mean_target + r · (anomaly(init) - mean_init), slope and means
  fitted per init calendar month where there are enough pairs (the default),
  else pooled over all init months (``per_init_month=False``). The means may
  come from the last ``level_years`` of the training period (the level of the
  most recent climate, not that of an early record with another trend level).
  ``centred=False`` is the slope through the origin of the reference figures
  (``tests/test_baselines.py``).
* :class:`LinearEOFModel` - ridge regression per lead on the leading EOFs of
  tropical Pacific SST anomalies and the current Niño 3.4 anomaly
  (the reference's statistical baseline), its anomalies against a causal base
  (:func:`causal_base`; ``nino34_base`` re-bases the Niño 3.4 series).

Phase probabilities of deterministic baselines are either ``"one_hot"`` (the
forecast anomaly thresholded at ±0.5) or ``"gaussian"``: a normal distribution
centred on the forecast anomaly with the baseline's error spread for that lead
on its fitting period (the validation period for the EOF model), integrated
beyond ±0.5; that spread is the frame's ``nino34_anomaly_sd``. Either way the
probabilities refer to the monthly anomaly, while the observed phase comes
from the ONI (or RONI).

Causality: training pairs never reach past the period they are fitted on (an
(init, target) pair counts only if both months lie in it), and no fitted
quantity (slope, mean, spread, EOF, anomaly base, phase frequency) depends on a
month after the fit's end: ``tests/test_baselines.py`` changes every value after
it and checks that nothing moves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Literal

import numpy as np
import pandas as pd
import xarray as xr
from scipy.special import ndtr

from enso.grids import anomalies, box_mean, crop
from enso.months import to_period, to_periods
from enso import nino34
from enso.nino34 import PHASE_THRESHOLD, PHASES, phase_index, phases_of
from enso.verify import forecast_frame, phase_climatology

#: Leads every baseline forecasts (months after the init month).
LEADS: tuple[int, ...] = tuple(range(1, 13))

PhaseProbabilities = Literal["one_hot", "gaussian"]


def threshold_phase_probabilities(anomaly: np.ndarray) -> np.ndarray:
    """One-hot phase probabilities (..., 3) of anomalies thresholded at ±0.5; NaN where missing."""
    values = np.asarray(anomaly, dtype=np.float64)
    out = np.zeros(values.shape + (len(PHASES),))
    flat = out.reshape(-1, len(PHASES))
    for row, phase in enumerate(phases_of(values.ravel())):
        if phase is None:
            flat[row] = np.nan
        else:
            flat[row, phase_index(phase)] = 1.0
    return out


def gaussian_phase_probabilities(anomaly: np.ndarray, sd: np.ndarray | float,
                                 threshold: float = PHASE_THRESHOLD) -> np.ndarray:
    """Phase probabilities (..., 3) of N(anomaly, sd²) falling below -threshold, between, above +threshold."""
    mean = np.asarray(anomaly, dtype=np.float64)
    spread = np.broadcast_to(np.asarray(sd, dtype=np.float64), mean.shape)
    if (spread <= 0).any():
        raise ValueError("the spread of gaussian phase probabilities must be positive")
    p_la_nina = ndtr((-threshold - mean) / spread)
    p_el_nino = 1.0 - ndtr((threshold - mean) / spread)
    return np.stack([p_la_nina, 1.0 - p_la_nina - p_el_nino, p_el_nino], axis=-1)


#: Length (years) of a causal base period, and the fewest years accepted when the data are shorter.
BASE_YEARS = 30
MIN_BASE_YEARS = 15


def causal_base(months: Iterable[object], end: object, length: int = BASE_YEARS,
                minimum: int = MIN_BASE_YEARS) -> tuple[int, int]:
    """The ``length`` complete calendar years that end last at ``end``: a base period no later month can move.

    ``months`` are the months the data hold (Months, Periods or ``YYYY-MM``); a
    year counts when all 12 of its months are there, and the years taken are the
    contiguous run of complete years that ends with the last complete year up to
    ``end`` (December of ``end``'s year if ``end`` is a December, else the year
    before), its last ``length`` years, or all of them if shorter. Raises
    :class:`ValueError` when fewer than ``minimum`` (at most ``length``) years are there.
    """
    last_month = to_period(end)
    last_year = last_month.year if last_month.month == 12 else last_month.year - 1
    have = set(to_periods(list(months)))
    complete = {y for y in {p.year for p in have} if y <= last_year
                and all(pd.Period(year=y, month=k, freq="M") in have for k in range(1, 13))}
    if last_year not in complete:
        newest = max(complete, default=None)
        raise ValueError(f"no causal base period ending {last_year}: the data lack months of {last_year} "
                         f"(newest complete year up to {last_month}: {newest})")
    first = last_year
    while first - 1 in complete and last_year - (first - 1) < length:
        first -= 1
    if last_year - first + 1 < min(minimum, length):
        raise ValueError(f"a causal base period ending {last_year} needs at least {minimum} complete years of data; "
                         f"only {first}-{last_year} ({last_year - first + 1}) are there")
    return first, last_year


def calendar_means(series: pd.Series, years: tuple[int, int]) -> pd.Series:
    """Mean of a monthly series per calendar month (index 1..12) over the given years; raises on an empty month."""
    sel = series.loc[f"{years[0]}-01":f"{years[1]}-12"].dropna()  # type: ignore[misc]
    means = sel.groupby(sel.index.month).mean().reindex(range(1, 13))
    if means.isna().any():
        raise ValueError(f"no value in {years[0]}-{years[1]} for calendar months "
                         f"{[int(m) for m in means.index[means.isna()]]}")
    return means


def _values_at(series: pd.Series, months: pd.PeriodIndex, what: str) -> np.ndarray:
    """Values of a monthly series at the given months; a clear error naming the first missing month."""
    values = series.reindex(months).to_numpy(dtype=np.float64)
    missing = ~np.isfinite(values)
    if missing.any():
        raise ValueError(f"{what} is missing for {months[np.flatnonzero(missing)[0]]}")
    return values


def _lagged_pairs(series: pd.Series, lead: int, first: object | None, last: object) -> pd.DataFrame:
    """Pairs (init value, value ``lead`` months later) with both months in first..last, both finite.

    Returns columns ``init`` and ``target`` indexed by the init month.
    """
    full = series.reindex(pd.period_range(series.index.min(), series.index.max(), freq="M"))
    pairs = pd.DataFrame({"init": full, "target": full.shift(-lead)})
    lo = to_period(first) if first is not None else None
    pairs = pairs.loc[lo:to_period(last) - lead].dropna()  # type: ignore[operator]
    return pairs


def _spread(errors: np.ndarray, lead: int, period: str) -> float:
    """Root mean square of forecast errors, refusing an empty or degenerate sample."""
    if errors.size < 2 or not np.any(errors):
        raise ValueError(f"too few training pairs at lead {lead} in {period} to estimate an error spread")
    return float(np.sqrt(np.mean(errors ** 2)))


def _probabilities(anomaly: np.ndarray, kind: PhaseProbabilities, spread: np.ndarray | None) -> np.ndarray:
    if kind == "one_hot":
        return threshold_phase_probabilities(anomaly)
    if kind == "gaussian":
        return gaussian_phase_probabilities(anomaly, spread)  # type: ignore[arg-type]
    raise ValueError(f"unknown phase probabilities {kind!r}: use 'one_hot' or 'gaussian'")


def _frame(inits: pd.PeriodIndex, leads: tuple[int, ...], anomaly: np.ndarray, kind: PhaseProbabilities,
           spread: np.ndarray) -> pd.DataFrame:
    """A baseline's forecast frame; ``"gaussian"`` ones carry their spread per lead (``nino34_anomaly_sd``)."""
    probabilities = _probabilities(anomaly, kind, spread)
    return forecast_frame(inits, leads, anomaly, probabilities, sd=spread if kind == "gaussian" else None)


@dataclass
class Climatology:
    """Anomaly 0 for every lead; phase probabilities = observed phase frequencies of the target calendar month.

    The frequencies are those of the months ``fit`` is given, and they are the
    reference of RPSS and the Brier skill scores: take them from the most recent
    months before the scored init months (:func:`causal_base`), not from an
    early record at another trend level, whose phase frequencies differ from the
    scored period's by up to 0.2 per class.
    """

    leads: tuple[int, ...] = LEADS
    frequencies: pd.DataFrame | None = field(default=None, init=False)

    def fit(self, observed_phase: pd.Series, train_start: object, train_end: object) -> "Climatology":
        """Phase frequencies per calendar month over train_start..train_end (e.g. the base period)."""
        self.frequencies = phase_climatology(observed_phase, train_start, train_end)
        return self

    def predict(self, init_months: Iterable[object]) -> pd.DataFrame:
        if self.frequencies is None:
            raise RuntimeError("Climatology.predict before fit")
        inits = to_periods(init_months)
        targets = np.array([[(i + k).month for k in self.leads] for i in inits], dtype=np.int64).reshape(-1)
        probs = self.frequencies.loc[targets, list(PHASES)].to_numpy()
        return forecast_frame(inits, self.leads, np.zeros((inits.size, len(self.leads))),
                              probs.reshape(inits.size, len(self.leads), len(PHASES)))


@dataclass
class Persistence:
    """The init month's Niño 3.4 anomaly held for every lead.

    ``fit`` records the root-mean-square persistence error per lead on the
    training period (``error_sd``), which ``"gaussian"`` phase probabilities use.
    """

    probabilities: PhaseProbabilities = "one_hot"
    leads: tuple[int, ...] = LEADS
    error_sd: dict[int, float] = field(default_factory=dict, init=False)

    def fit(self, nino34_anomaly: pd.Series, train_start: object | None, train_end: object) -> "Persistence":
        """Record the persistence error spread per lead on pairs with both months in train_start..train_end."""
        period = f"{train_start or 'start'}..{train_end}"
        self.error_sd = {}
        for lead in self.leads:
            pairs = _lagged_pairs(nino34_anomaly, lead, train_start, train_end)
            self.error_sd[lead] = _spread((pairs["init"] - pairs["target"]).to_numpy(), lead, period)
        return self

    def predict(self, nino34_anomaly: pd.Series, init_months: Iterable[object]) -> pd.DataFrame:
        if not self.error_sd:
            raise RuntimeError("Persistence.predict before fit")
        inits = to_periods(init_months)
        start = _values_at(nino34_anomaly, inits, "Niño 3.4 anomaly at the init month")
        anomaly = np.repeat(start[:, None], len(self.leads), axis=1)
        spread = np.array([self.error_sd[k] for k in self.leads])
        return _frame(inits, self.leads, anomaly, self.probabilities, spread)


@dataclass
class DampedPersistence:
    """A centred lag regression per lead: forecast = mean_target + r · (anomaly(init) - mean_init).

    For each lead, r is the least-squares slope of anomaly(init + lead) on
    anomaly(init) over the training pairs (each side centred on its mean over
    those pairs), and mean_init / mean_target are the means of the two sides:
    over all training pairs, or with ``level_years`` over the pairs whose init
    month lies in the last ``level_years`` years of the training period (the
    recent level of a record with a trend). With ``per_init_month`` slope and
    means are fitted separately for each init calendar month that has at least
    ``min_pairs`` training pairs (and ``min_pairs // 3``, at least 5, in the
    level window); the other months use the values pooled over all init months.
    A centred regression per init calendar month does not depend on the base
    period of the anomalies it is given: adding any constant per calendar month
    moves its forecasts exactly as it moves the observations.

    ``centred=False`` fits the slope through the origin (means 0): the damped
    persistence of the reference figures (``tests/test_baselines.py``).

    Fitted: ``damping`` (slopes; rows lead, columns init calendar month 1..12),
    ``init_mean`` and ``target_mean`` (the same shape; zeros when not centred)
    and ``error_sd``, the training RMS error per lead (for ``"gaussian"``).
    """

    per_init_month: bool = True
    min_pairs: int = 30
    probabilities: PhaseProbabilities = "one_hot"
    leads: tuple[int, ...] = LEADS
    centred: bool = True
    level_years: int | None = None
    damping: pd.DataFrame | None = field(default=None, init=False)
    init_mean: pd.DataFrame | None = field(default=None, init=False)
    target_mean: pd.DataFrame | None = field(default=None, init=False)
    error_sd: dict[int, float] = field(default_factory=dict, init=False)

    def _regression(self, x: np.ndarray, y: np.ndarray, level: np.ndarray) -> tuple[float, float, float] | None:
        """(slope, init mean, target mean) of pairs x -> y, the means over ``level``; None if degenerate."""
        if self.centred:
            if x.size < 3 or level.sum() < 1:
                return None
            dx = x - x.mean()
            if not np.any(dx):
                return None
            return float(dx @ (y - y.mean()) / (dx @ dx)), float(x[level].mean()), float(y[level].mean())
        if x.size < 2 or not np.any(x):
            return None
        return float(x @ y / (x @ x)), 0.0, 0.0

    def fit(self, nino34_anomaly: pd.Series, train_start: object | None, train_end: object) -> "DampedPersistence":
        """Fit slopes and means per lead (and init calendar month) on pairs with both months in train_start..train_end."""
        period = f"{train_start or 'start'}..{train_end}"
        if self.level_years is not None and self.level_years < 1:
            raise ValueError(f"level_years must be positive (or None for all training pairs), not {self.level_years}")
        level_from = (to_period(train_end) - 12 * self.level_years + 1) if self.level_years else None
        tables: dict[str, dict[int, np.ndarray]] = {"damping": {}, "init_mean": {}, "target_mean": {}}
        self.error_sd = {}
        for lead in self.leads:
            pairs = _lagged_pairs(nino34_anomaly, lead, train_start, train_end)
            x, y = pairs["init"].to_numpy(), pairs["target"].to_numpy()
            level = np.ones(x.size, dtype=bool) if level_from is None else (pairs.index >= level_from)
            pooled = self._regression(x, y, level)
            if pooled is None:
                raise ValueError(f"too few training pairs at lead {lead} in {period} to fit damped persistence"
                                 + (f" (level from {level_from})" if level_from is not None else ""))
            fitted = np.tile(np.asarray(pooled), (12, 1))
            init_calendar = pairs.index.month.to_numpy()
            if self.per_init_month:
                for m in range(1, 13):
                    sel = init_calendar == m
                    if sel.sum() < self.min_pairs or (level_from is not None
                                                      and level[sel].sum() < max(5, self.min_pairs // 3)):
                        continue
                    own = self._regression(x[sel], y[sel], level[sel])
                    if own is not None:
                        fitted[m - 1] = own
            for k, name in enumerate(tables):
                tables[name][lead] = fitted[:, k]
            slope, x_mean, y_mean = (fitted[init_calendar - 1, k] for k in range(3))
            self.error_sd[lead] = _spread(y_mean + slope * (x - x_mean) - y, lead, period)
        for name, rows in tables.items():
            table = pd.DataFrame.from_dict(rows, orient="index", columns=range(1, 13))
            table.index.name, table.columns.name = "lead", "init_calendar_month"
            setattr(self, name, table)
        return self

    def predict(self, nino34_anomaly: pd.Series, init_months: Iterable[object]) -> pd.DataFrame:
        if self.damping is None or self.init_mean is None or self.target_mean is None:
            raise RuntimeError("DampedPersistence.predict before fit")
        inits = to_periods(init_months)
        start = _values_at(nino34_anomaly, inits, "Niño 3.4 anomaly at the init month")
        column = inits.month.to_numpy() - 1

        def at_inits(table: pd.DataFrame) -> np.ndarray:
            return table.loc[list(self.leads)].to_numpy()[:, column].T

        anomaly = at_inits(self.target_mean) + at_inits(self.damping) * (start[:, None] - at_inits(self.init_mean))
        spread = np.array([self.error_sd[k] for k in self.leads])
        return _frame(inits, self.leads, anomaly, self.probabilities, spread)


@dataclass
class _EOFBasis:
    """Leading EOFs of area-weighted SST anomalies on the ocean cells of a region."""

    cells: np.ndarray  # boolean mask over the flattened (lat, lon) region
    weights: np.ndarray  # sqrt(cos(lat)) per kept cell
    mean: np.ndarray  # fit-period mean per kept cell
    patterns: np.ndarray  # (n_eofs, n_cells)

    @classmethod
    def fit(cls, region: xr.DataArray, n_eofs: int) -> "_EOFBasis":
        """EOFs of the region's months by SVD, on the cells that are ocean in every one of them."""
        values = region.values.reshape(region.sizes["month"], -1).astype(np.float64)
        cells = np.isfinite(values).all(axis=0)
        if cells.sum() < n_eofs or values.shape[0] < n_eofs:
            raise ValueError(f"too few ocean cells ({cells.sum()}) or months ({values.shape[0]}) "
                             f"for {n_eofs} EOFs")
        weights = np.sqrt(np.cos(np.deg2rad(np.broadcast_to(region.lat.values[:, None], region.shape[1:]))))
        weights = weights.reshape(-1)[cells]
        x = values[:, cells] * weights
        mean = x.mean(axis=0)
        _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
        return cls(cells=cells, weights=weights, mean=mean, patterns=vt[:n_eofs])

    def project(self, region: xr.DataArray) -> pd.DataFrame:
        """Principal components per month (NaN for a month missing any EOF cell)."""
        values = region.values.reshape(region.sizes["month"], -1).astype(np.float64)[:, self.cells]
        pcs = (values * self.weights - self.mean) @ self.patterns.T
        return pd.DataFrame(pcs, index=to_periods(region.month.values))


@dataclass
class _Ridge:
    """Ridge regression on standardised features with an unpenalised intercept."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    @staticmethod
    def path(x: np.ndarray, y: np.ndarray, alphas: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Coefficients for every alpha at once (via one SVD): (mean, scale, coefs (n_alpha, p), y mean)."""
        mean, scale = x.mean(axis=0), x.std(axis=0)
        scale[scale == 0] = 1.0
        u, s, vt = np.linalg.svd((x - mean) / scale, full_matrices=False)
        uty = u.T @ (y - y.mean())
        coefs = np.stack([vt.T @ (s / (s ** 2 + a) * uty) for a in alphas])
        return mean, scale, coefs, np.full(len(alphas), y.mean())

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, alpha: float) -> "_Ridge":
        mean, scale, coefs, intercepts = cls.path(x, y, np.array([alpha]))
        return cls(mean=mean, scale=scale, coef=coefs[0], intercept=float(intercepts[0]))

    def predict(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.scale) @ self.coef + self.intercept


@dataclass
class LinearEOFModel:
    """Ridge regression per lead on EOFs of tropical Pacific SST anomalies (the reference's statistical baseline).

    Predictors at init month t: the principal components of the ``n_eofs``
    leading EOFs (area-weighted by sqrt(cos lat), ocean cells of the region) in
    months t, t-1, ..., t-(n_lags-1), plus the Niño 3.4 anomaly at t and that
    anomaly times sin and cos of the init calendar month (the seasonal modulation
    of persistence). Features are standardised; the intercept is not penalised.

    ``fit`` picks alpha per lead from ``alphas`` by the MSE on the validation
    samples (init after ``train_end``, target up to ``valid_end``) of a fit on
    the training samples (target up to ``train_end``) with EOFs of the training
    months only; then EOFs and regressions are refitted on all samples with
    targets up to ``valid_end``. The RMSE of the first fit on the validation
    samples (``validation_rmse``, per lead) is the spread of ``"gaussian"``
    phase probabilities. Months before the first month of the cube or series
    simply do not exist for it: slice the inputs to set the training start.

    Causal anomalies: the SST anomalies must be taken against a base period
    that ends before the scored init months (:func:`causal_base`, e.g. the 30
    years ending at ``train_end``): a base inside the
    scored years hands the model the later warming. ``nino34_base`` does the
    same for the Niño 3.4 series: with it, ``fit`` subtracts the series' mean per
    calendar month over those years (which must end by ``train_end``), the model
    works on those causal anomalies, and ``predict`` adds the mean of the
    target's calendar month back, so forecasts are in the given series'
    convention (e.g. an index file's 1991-2020 base) and comparable with it.
    """

    n_eofs: int = 12
    n_lags: int = 3
    lat_range: tuple[float, float] = (-20.0, 20.0)
    lon_range: tuple[float, float] = (120.0, 290.0)
    alphas: tuple[float, ...] = tuple(float(a) for a in np.logspace(-2, 5, 29))
    probabilities: PhaseProbabilities = "gaussian"
    leads: tuple[int, ...] = LEADS
    nino34_base: tuple[int, int] | None = None
    #: Refit EOFs and regressions on the selection samples too (the default); False keeps the fit on the
    #: training samples, so that scores on the selection months are out of sample (promotion compares so).
    refit: bool = True
    alpha: dict[int, float] = field(default_factory=dict, init=False)
    validation_rmse: dict[int, float] = field(default_factory=dict, init=False)
    #: The Niño 3.4 series' mean per calendar month over ``nino34_base`` (zeros without it).
    nino34_offset: pd.Series | None = field(default=None, init=False)
    _basis: _EOFBasis | None = field(default=None, init=False, repr=False)
    _ridges: dict[int, _Ridge] = field(default_factory=dict, init=False, repr=False)

    def inputs(self, sst_cube: xr.DataArray, base: tuple[int, int] = (1981, 2010)) -> tuple[xr.DataArray, pd.Series]:
        """The model's inputs from an absolute SST cube: its region's SST anomalies and the cube's own Niño 3.4 anomaly.

        Both are taken against the monthly climatology of the ``base`` years of
        the cube itself, so predictor and target need no index file (the real
        ERSSTv5 record reaches back before any Niño 3.4 table's fixed base).
        The months are the cube's: slice it to set the training start. Pass a
        causal ``base`` (:func:`causal_base` of the cube's months and the
        training end): the default 1981-2010 lies inside a 1990-2010 test.
        """
        region = self._region(sst_cube)
        index = pd.Series(box_mean(region.values, region.lat.values, region.lon.values),
                          index=to_periods(region.month.values))
        return anomalies(region, *base), nino34.anomaly(index, base)

    def _region(self, sst_anomaly_cube: xr.DataArray) -> xr.DataArray:
        region = crop(sst_anomaly_cube, self.lat_range, self.lon_range)
        if region.sizes["lat"] == 0 or region.sizes["lon"] == 0:
            raise ValueError(f"the SST cube has no cells in lat {self.lat_range}, lon {self.lon_range}")
        return region

    def _features(self, pcs: pd.DataFrame, nino34_anomaly: pd.Series, inits: pd.PeriodIndex) -> np.ndarray:
        """(n_init, n_features); rows with any missing input are NaN."""
        lagged = [pcs.reindex(inits - lag).to_numpy() for lag in range(self.n_lags)]
        nino = nino34_anomaly.reindex(inits).to_numpy(dtype=np.float64)
        phase = 2.0 * np.pi * (inits.month.to_numpy() - 1) / 12.0
        return np.column_stack(lagged + [nino, nino * np.sin(phase), nino * np.cos(phase)])

    def _samples(self, pcs: pd.DataFrame, nino34_anomaly: pd.Series, lead: int,
                 after: pd.Period | None, last: pd.Period) -> tuple[np.ndarray, np.ndarray]:
        """Samples whose init month comes after ``after`` (if given) and whose target is at most ``last``."""
        inits = pcs.index[pcs.index <= last - lead]
        if after is not None:
            inits = inits[inits > after]
        x = self._features(pcs, nino34_anomaly, inits)
        y = nino34_anomaly.reindex(inits + lead).to_numpy(dtype=np.float64)
        keep = np.isfinite(x).all(axis=1) & np.isfinite(y)
        return x[keep], y[keep]

    def fit(self, sst_anomaly_cube: xr.DataArray, nino34_anomaly: pd.Series,
            train_end: object, valid_end: object) -> "LinearEOFModel":
        """Fit up to ``train_end``, choose alpha per lead up to ``valid_end``, refit on both periods.

        ``sst_anomaly_cube`` has dims (month, lat, lon) (see :mod:`enso.grids`);
        ``nino34_anomaly`` (predictor and target) is indexed by a monthly
        ``PeriodIndex``. Data after ``valid_end`` is never used.
        """
        train_end, valid_end = to_period(train_end), to_period(valid_end)
        if valid_end <= train_end:
            raise ValueError(f"validation end {valid_end} must come after training end {train_end}")
        nino34_anomaly = self._rebase(nino34_anomaly, train_end)
        region = self._region(sst_anomaly_cube)
        months = to_periods(region.month.values)
        alphas = np.asarray(self.alphas, dtype=np.float64)

        basis = _EOFBasis.fit(region.isel(month=np.flatnonzero(months <= train_end)), self.n_eofs)
        pcs = basis.project(region)
        for lead in self.leads:
            x, y = self._samples(pcs, nino34_anomaly, lead, None, train_end)
            xv, yv = self._samples(pcs, nino34_anomaly, lead, train_end, valid_end)
            if len(y) <= x.shape[1] or len(yv) < 2:
                raise ValueError(f"lead {lead}: {len(y)} training and {len(yv)} validation samples "
                                 f"up to {train_end} / {valid_end} are too few")
            mean, scale, coefs, intercepts = _Ridge.path(x, y, alphas)
            errors = ((xv - mean) / scale) @ coefs.T + intercepts - yv[:, None]
            mse = np.mean(errors ** 2, axis=0)
            best = int(np.argmin(mse))
            self.alpha[lead] = float(alphas[best])
            self.validation_rmse[lead] = float(np.sqrt(mse[best]))

        fit_end = valid_end if self.refit else train_end
        self._basis = _EOFBasis.fit(region.isel(month=np.flatnonzero(months <= fit_end)), self.n_eofs)
        pcs = self._basis.project(region)
        self._ridges = {
            lead: _Ridge.fit(*self._samples(pcs, nino34_anomaly, lead, None, fit_end), self.alpha[lead])
            for lead in self.leads
        }
        return self

    def _rebase(self, nino34_anomaly: pd.Series, train_end: pd.Period) -> pd.Series:
        """Fix ``nino34_offset`` (the series' calendar-month means over ``nino34_base``) and subtract it."""
        if self.nino34_base is None:
            self.nino34_offset = pd.Series(0.0, index=pd.Index(range(1, 13), name="calendar_month"))
            return nino34_anomaly
        first, last = self.nino34_base
        if pd.Period(year=last, month=12, freq="M") > train_end:
            raise ValueError(f"the Niño 3.4 base period {first}-{last} reaches past the training end {train_end}: "
                             f"it would not be causal (see causal_base)")
        self.nino34_offset = calendar_means(nino34_anomaly, (first, last)).rename_axis("calendar_month")
        return self._shifted(nino34_anomaly, -1.0)

    def _shifted(self, series: pd.Series, sign: float) -> pd.Series:
        assert self.nino34_offset is not None
        offset = self.nino34_offset.reindex(to_periods(series.index).month).to_numpy()
        return series + sign * offset

    def predict(self, sst_anomaly_cube: xr.DataArray, nino34_anomaly: pd.Series,
                init_months: Iterable[object]) -> pd.DataFrame:
        """Forecast frame for the init months; every input month must be present.

        ``nino34_anomaly`` is in the convention ``fit`` was given (the offsets of
        ``nino34_base`` are applied here as there).
        """
        if self._basis is None or self.nino34_offset is None:
            raise RuntimeError("LinearEOFModel.predict before fit")
        nino34_anomaly = self._shifted(nino34_anomaly, -1.0)
        inits = to_periods(init_months)
        region = self._region(sst_anomaly_cube)
        needed = pd.PeriodIndex(sorted({i - lag for i in inits for lag in range(self.n_lags)}), freq="M")
        present = to_periods(region.month.values)
        absent = needed.difference(present)
        if len(absent):
            raise ValueError(f"SST anomaly grid missing for {absent[0]} "
                             f"(needed by init months {inits[0]}..{inits[-1]})")
        pcs = self._basis.project(region.isel(month=present.get_indexer(needed)))
        bad = pcs.index[~np.isfinite(pcs.to_numpy()).all(axis=1)]
        if len(bad):
            raise ValueError(f"SST anomaly grid of {bad[0]} lacks values at ocean cells the EOFs use")
        _values_at(nino34_anomaly, inits, "Niño 3.4 anomaly at the init month")  # raises naming a gap
        x = self._features(pcs, nino34_anomaly, inits)
        anomaly = np.column_stack([self._ridges[lead].predict(x) for lead in self.leads])
        targets = np.array([[(i + k).month for k in self.leads] for i in inits], dtype=np.int64)
        anomaly = anomaly + self.nino34_offset.reindex(targets.ravel()).to_numpy().reshape(anomaly.shape)
        spread = np.array([self.validation_rmse[k] for k in self.leads])
        return _frame(inits, self.leads, anomaly, self.probabilities, spread)
