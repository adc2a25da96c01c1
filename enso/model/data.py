"""From an SST cube and a Niño 3.4 index table to model samples.

Conventions, defined here once for the model package:

* **Init month** ``t`` is the last month of the input window; the window holds
  the ``n_timesteps`` months ``t - n_timesteps + 1 .. t``. **Lead** ``L`` targets
  month ``t + L`` (``FORECAST_LEADS`` = 1..12).
* Cube and index table are put on one gap-free monthly axis (:class:`ModelData`);
  samples address it by row, so a month is never located by position in a list.
* Statistics that shape the inputs (normalisation, land mask, damping factors)
  are fitted on the training period only and stored with the model.
* The **training target** is the Niño 3.4 box mean of the SST grids themselves
  (column ``nino34`` of the model table, :func:`model_table`), so a model learns
  from the SST source's whole record (1854/1891 on) even where the index file
  starts later (CPC: 1950). The index stays the truth: ``index_nino34``,
  ``anomaly``, ``oni`` and ``phase`` come from it, and :func:`fit_index_bias`
  converts a forecast to the index's convention (a per-calendar-month bias,
  refused when the two disagree by more than :data:`MAX_INDEX_MISMATCH_SD`).
* The residual design works on **anomalies against the preceding years**: the
  anomaly of month ``m`` is its value minus the mean of the same calendar month
  over the ``detrend_years`` years before it (``m - 12, m - 24, ...``). This
  removes the seasonal cycle and the warming trend causally: every input and
  every target of an init month ``t`` (``t + L`` with ``L <= 12``) is compared
  with data up to ``t`` only, and a forecast adds that mean back.
"""

from __future__ import annotations

import hashlib
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Iterator

import numpy as np
import pandas as pd
import torch
import xarray as xr
from torch import Tensor

from enso import grids
from enso.model import base
from enso.model.presets import FORECAST_LEADS, GridSpec, KeydanaDesign, Preset, ResidualDesign
from enso.months import Month
from enso.nino34 import PHASES

INDEX_COLUMNS = ("nino34", "anomaly", "oni", "phase")
#: Largest sd (°C) of the monthly difference index - grid box mean (after the per-calendar-month bias)
#: for which a forecast of the grid's Niño 3.4 is converted to the index: beyond it they measure other things.
MAX_INDEX_MISMATCH_SD = 0.3
N_LEADS = len(FORECAST_LEADS)
#: Input channels of the residual design, per month (Keydana reads one: normalised SST).
RESIDUAL_CHANNELS = ("sst_anomaly", "land", "calendar_sin", "calendar_cos")


def prepare_grid(cube: xr.DataArray, grid: GridSpec) -> xr.DataArray:
    """The cube cut to the model grid: crop, then area-weighted coarsening if the preset asks."""
    if tuple(cube.dims) != ("month", "lat", "lon"):
        raise ValueError(f"SST cube must have dims (month, lat, lon), got {cube.dims}")
    out = grids.crop(cube, grid.lat_range, grid.lon_range)
    if grid.resolution_deg is not None:
        out = grids.coarsen(out, grid.resolution_deg)
    if out.sizes["lat"] == 0 or out.sizes["lon"] == 0:
        raise ValueError(f"the model grid {grid} holds no cell of the SST cube "
                         f"(lat {float(cube.lat.min())}..{float(cube.lat.max())})")
    return out


def _months_of(values: object) -> list[Month]:
    return [Month.of(p.year, p.month) for p in pd.PeriodIndex(values, freq="M")]


@dataclass
class ModelData:
    """The SST cube on the model grid and the index table, on one gap-free monthly axis (rows)."""

    first_month: Month
    lat: np.ndarray
    lon: np.ndarray
    #: (rows, lat, lon) float32 °C, NaN on land and in months without a grid.
    sst: np.ndarray
    has_grid: np.ndarray
    nino34: np.ndarray
    #: The table's anomaly, ONI and phase (PHASES index, -1 where unknown).
    anomaly: np.ndarray
    oni: np.ndarray
    phase: np.ndarray
    #: The table's climatology of each row's month (index °C - anomaly), NaN where unknown.
    table_climatology: np.ndarray
    #: The index's own Niño 3.4 (°C) where the table has it (``nino34`` may be the grids' box mean).
    index_nino34: np.ndarray

    @property
    def n_rows(self) -> int:
        return int(self.has_grid.size)

    @property
    def last_month(self) -> Month:
        return self.first_month + (self.n_rows - 1)

    @property
    def calendar(self) -> np.ndarray:
        """Calendar month (0..11) of each row."""
        return (self.first_month.ordinal + np.arange(self.n_rows)) % 12

    def row(self, month: Month) -> int:
        """Row of a month (may lie outside 0..n_rows-1)."""
        return month.months_since(self.first_month)

    def month(self, row: int) -> Month:
        return self.first_month + int(row)

    def climatology_of(self, months: list[Month]) -> np.ndarray:
        """Base-period Niño 3.4 climatology (°C) of each month, as the index table states it.

        Where the table has the month, its own ``nino34 - anomaly``; elsewhere (a
        forecast beyond the table) the latest stated value for that calendar
        month. Works for fixed bases (CPC) and for bases that move every few
        years (McNoldy's table).
        """
        known = np.isfinite(self.table_climatology)
        latest = {}
        for row in np.flatnonzero(known):
            latest[int(self.calendar[row])] = float(self.table_climatology[row])
        out = np.empty(len(months))
        for i, month in enumerate(months):
            row = self.row(month)
            if 0 <= row < self.n_rows and known[row]:
                out[i] = self.table_climatology[row]
            elif month.month - 1 in latest:
                out[i] = latest[month.month - 1]
            else:
                raise ValueError(f"the index table states no climatology for calendar month {month.month} "
                                 f"(needed for {month}): it lacks nino34 and anomaly for every such month")
        return out

    def fingerprint(self) -> str:
        """sha256 of every array the model reads (grid, SST, index columns) and the axis start."""
        digest = hashlib.sha256(str(self.first_month).encode())
        for array in (self.lat, self.lon, self.sst, self.has_grid, self.nino34, self.anomaly, self.oni, self.phase):
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()


def prepare_data(cube: xr.DataArray, index: pd.DataFrame, grid: GridSpec, *,
                 first: Month | None = None, last: Month | None = None) -> ModelData:
    """Cut the cube to the model grid and put it and the index table on one monthly axis.

    ``first``/``last`` bound the axis (inclusive); data outside is ignored, so a
    model trained with ``last = valid_end`` never sees the test period.
    """
    missing = [c for c in INDEX_COLUMNS if c not in index.columns]
    if missing:
        raise ValueError(f"Niño 3.4 index table lacks columns {missing} (needs {list(INDEX_COLUMNS)})")
    cube_months = _months_of(cube.month.values)
    index_months = _months_of(index.index)
    if len(set(cube_months)) != len(cube_months):
        raise ValueError("SST cube has a month more than once")
    if len(set(index_months)) != len(index_months):
        raise ValueError("Niño 3.4 index table has a month more than once")
    all_months = cube_months + index_months
    start = min(all_months) if first is None else max(min(all_months), first)
    end = max(all_months) if last is None else min(max(all_months), last)
    if end < start:
        raise ValueError(f"no month of the SST cube or index table lies in {first}..{last}")
    n_rows = end.months_since(start) + 1

    keep = [i for i, m in enumerate(cube_months) if start <= m <= end]
    field = prepare_grid(cube.isel(month=keep), grid)
    sst = np.full((n_rows, field.sizes["lat"], field.sizes["lon"]), np.nan, dtype=np.float32)
    rows = np.array([cube_months[i].months_since(start) for i in keep], dtype=np.int64)
    sst[rows] = field.values.astype(np.float32)
    has_grid = np.zeros(n_rows, dtype=bool)
    has_grid[rows] = ~np.isnan(sst[rows]).all(axis=(1, 2))

    axis = pd.period_range(str(start), str(end), freq="M")
    table = index.copy()
    table.index = pd.PeriodIndex(table.index, freq="M")
    table = table.reindex(axis)
    nino34 = table["nino34"].to_numpy(np.float64)
    index_nino34 = table["index_nino34"].to_numpy(np.float64) if "index_nino34" in table else nino34
    anomaly = table["anomaly"].to_numpy(np.float64)
    phase = np.array([PHASES.index(p) if p in PHASES else -1 for p in table["phase"]], dtype=np.int64)
    return ModelData(
        first_month=start, lat=field.lat.values.astype(np.float64), lon=field.lon.values.astype(np.float64),
        sst=sst, has_grid=has_grid, nino34=nino34, anomaly=anomaly,
        oni=table["oni"].to_numpy(np.float64), phase=phase, table_climatology=index_nino34 - anomaly,
        index_nino34=index_nino34,
    )


def model_table(grid_nino34: pd.Series, index: pd.DataFrame) -> pd.DataFrame:
    """The model's table: the grids' own Niño 3.4 box mean as ``nino34``, the index's columns beside it.

    Months run over both series (the grids usually reach far earlier); ``index_nino34``,
    ``anomaly``, ``oni`` and ``phase`` are NaN / None where the index has no value.
    """
    months = pd.PeriodIndex(grid_nino34.index, freq="M").union(pd.PeriodIndex(index.index, freq="M"))
    table = index.copy()
    table.index = pd.PeriodIndex(table.index, freq="M")
    table = table.reindex(months)
    grid = grid_nino34.copy()
    grid.index = pd.PeriodIndex(grid.index, freq="M")
    table["index_nino34"] = table["nino34"]
    table["nino34"] = grid.reindex(months).to_numpy(np.float64)
    table.attrs = dict(index.attrs)
    return table


def fit_index_bias(data: ModelData, last: Month) -> np.ndarray:
    """Per calendar month, the mean of index °C - grid box mean over rows up to ``last`` (12,).

    Zero when the table's ``nino34`` is the index itself. Raises when the residual sd
    exceeds :data:`MAX_INDEX_MISMATCH_SD` (the SST source and the index disagree too much
    to convert one into the other) or when a calendar month has no common value.
    """
    rows = np.arange(min(data.row(last), data.n_rows - 1) + 1)
    diff = data.index_nino34[rows] - data.nino34[rows]
    known = np.isfinite(diff)
    if not known.any():
        raise ValueError(f"the index and the SST grids share no month up to {last}: cannot relate the grids' "
                         f"Niño 3.4 to the index (ingest the index first: `enso backfill`)")
    calendar = data.calendar[rows]
    bias = np.zeros(12)
    for c in range(12):
        sel = known & (calendar == c)
        if not sel.any():
            raise ValueError(f"the index and the SST grids share no calendar month {c + 1} up to {last}")
        bias[c] = diff[sel].mean()
    residual = diff[known] - bias[calendar[known]]
    spread = float(residual.std())
    if spread > MAX_INDEX_MISMATCH_SD:
        raise ValueError(f"the SST grids' Niño 3.4 box mean and the index differ by {spread:.2f} °C (sd, after a "
                         f"monthly bias) up to {last}, more than {MAX_INDEX_MISMATCH_SD}: they do not measure the "
                         f"same thing; check ENSO_SST_SOURCE and ENSO_INDEX_URL")
    return bias


def trailing_climatology(values: np.ndarray, years: int, min_years: int) -> np.ndarray:
    """Mean of each row and the same calendar month in the ``years - 1`` years before it (row included).

    ``values`` has a gap-free monthly first axis (NaN = missing). Missing values
    are skipped; where fewer than ``min_years`` values remain the result is NaN.

    Every window is summed on its own, oldest year first, so a row's mean does not
    depend on where ``values`` starts: forecasts of an init month are the same to the
    last bit whatever range they were computed in (a hindcast cut into chunks equals
    one piece). A running sum would carry the rounding of every earlier row.
    """
    out = np.full(values.shape, np.nan, dtype=np.float64)
    for phase in range(min(12, values.shape[0])):
        series = values[phase::12].astype(np.float64)
        valid = ~np.isnan(series)
        filled = np.where(valid, series, 0.0)
        rows = series.shape[0]
        total = np.zeros(series.shape, dtype=np.float64)
        n = np.zeros(series.shape, dtype=np.int64)
        for lag in range(min(years, rows) - 1, -1, -1):
            total[lag:] += filled[:rows - lag]
            n[lag:] += valid[:rows - lag]
        with np.errstate(invalid="ignore", divide="ignore"):
            out[phase::12] = np.where(n >= min_years, total / n, np.nan)
    return out


def preceding_climatology(values: np.ndarray, years: int, min_years: int) -> np.ndarray:
    """Mean of the same calendar month over the ``years`` years before each row (row excluded).

    Row ``m`` gets :func:`trailing_climatology` of row ``m - 12``; the first
    twelve rows have no earlier year and get NaN.
    """
    trailing = trailing_climatology(values, years, min_years)
    out = np.full(trailing.shape, np.nan)
    out[12:] = trailing[:-12]
    return out


@dataclass
class Samples:
    """Forecast cases on a :class:`ModelData` axis, targets in model units (NaN / -1 where unknown).

    ``nino34 = target_scale * value + target_offset`` turns a model-unit value of
    lead L (target or forecast) into Niño 3.4 °C.
    """

    init_rows: np.ndarray  # (n,)
    init_calendar: np.ndarray  # (n,) calendar month 0..11 of the init month
    window: np.ndarray  # (n, n_timesteps) rows of the input months, oldest first
    target: np.ndarray  # (n, 12) float32
    phase: np.ndarray  # (n, 12) int64, PHASES index of the target month's phase
    target_scale: float
    target_offset: np.ndarray  # (n, 12) float64
    persistence: np.ndarray  # (n,) float32: the init month's value in model units
    grid_target: np.ndarray  # (n,) row of the lead-1 target grid, -1 when unknown

    def __len__(self) -> int:
        return int(self.init_rows.size)

    def subset(self, keep: np.ndarray) -> "Samples":
        """The cases selected by a boolean mask or index array."""
        return replace(self, **{f: getattr(self, f)[keep] for f in _PER_SAMPLE})

    def until(self, last_row: int) -> "Samples":
        """The same cases with every target after ``last_row`` made unknown (no peeking past a period).

        A phase is an ONI class and the ONI of a month needs the next month, so
        the phase of ``last_row`` itself is made unknown too.
        """
        target_rows = self.init_rows[:, None] + np.asarray(FORECAST_LEADS)[None, :]
        return replace(self, target=np.where(target_rows > last_row, np.nan, self.target).astype(np.float32),
                       phase=np.where(target_rows >= last_row, -1, self.phase),
                       grid_target=np.where(self.grid_target > last_row, -1, self.grid_target))

    def trainable(self, design: KeydanaDesign | ResidualDesign) -> "Samples":
        """The cases that carry a training target: lead 1 and its grid (Keydana), any lead (residual)."""
        if isinstance(design, KeydanaDesign):
            keep = np.isfinite(self.target[:, 0]) & (self.grid_target >= 0)
        else:
            keep = np.isfinite(self.target).any(axis=1)
        return self.subset(keep)


_PER_SAMPLE = ("init_rows", "init_calendar", "window", "target", "phase", "target_offset",
               "persistence", "grid_target")


@contextmanager
def _all_nan_cells_allowed() -> Iterator[None]:
    """Land cells are NaN in every month: their means are NaN by design, not worth a warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        yield


def fit_statistics(preset: Preset, data: ModelData, train_end: Month) -> dict[str, np.ndarray]:
    """Statistics from the training months (rows up to ``train_end``) only.

    Always: the model grid (``lat``, ``lon``) and its ``land`` mask (cells
    without SST in every training month). Keydana: the global ``sst_mean`` /
    ``sst_std`` over ocean cells and months, ``nino34_mean`` / ``nino34_std``,
    and the monthly ``sst_climatology`` (12, lat, lon) that turns a forecast
    grid into an anomaly map. The residual design's linear base is fitted by
    :mod:`enso.model.base` once the training samples exist, its ``grid_damping``
    (the lead-1 map) by :func:`fit_grid_damping`.
    """
    train_rows = np.flatnonzero(data.has_grid[: data.row(train_end) + 1])
    if train_rows.size == 0:
        raise ValueError(f"no SST grid on or before the end of training {train_end}")
    sst = data.sst[train_rows]
    stats: dict[str, np.ndarray] = {"lat": data.lat, "lon": data.lon, "land": np.isnan(sst).all(axis=0)}
    if isinstance(preset.design, KeydanaDesign):
        calendar = data.calendar[train_rows]
        with _all_nan_cells_allowed():
            climatology = np.stack([np.nanmean(sst[calendar == c], axis=0) for c in range(12)])
        nino34 = data.nino34[train_rows]
        stats.update(
            sst_mean=np.asarray(np.nanmean(sst), dtype=np.float64),
            sst_std=np.asarray(np.nanstd(sst), dtype=np.float64),
            nino34_mean=np.asarray(np.nanmean(nino34), dtype=np.float64),
            nino34_std=np.asarray(np.nanstd(nino34), dtype=np.float64),
            sst_climatology=climatology.astype(np.float32),
        )
    return stats


def fit_grid_damping(field: np.ndarray, data: ModelData, train_end: Month) -> np.ndarray:
    """Per-cell damped-persistence factors of the lead-1 SST anomaly (12 init calendar months, lat, lon).

    The residual network forecasts the Niño 3.4 index, not the SST field; its
    lead-1 map is the init month's anomaly (``field``, from :func:`encode_field`)
    times these factors: the lag-1 regression through the origin of each cell's
    anomaly, over the training months whose next month also has a grid. 0 on
    land and where a calendar month has no training pair.
    """
    last = data.row(train_end)
    rows = np.flatnonzero(data.has_grid[:last] & data.has_grid[1:last + 1])
    now, after = field[rows].astype(np.float64), field[rows + 1].astype(np.float64)
    calendar = data.calendar[rows]
    damping = np.zeros((12,) + field.shape[1:], dtype=np.float32)
    for c in range(12):
        sel = calendar == c
        num, den = (now[sel] * after[sel]).sum(axis=0), (now[sel] ** 2).sum(axis=0)
        damping[c] = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    return damping


def encode_field(preset: Preset, data: ModelData, stats: dict[str, np.ndarray]) -> np.ndarray:
    """The network's input field per row (float32, 0 on land and in months without a grid).

    Keydana: SST normalised by the training mean and sd. Residual: the SST
    anomaly against the preceding years (see the module docstring).
    """
    design = preset.design
    if isinstance(design, KeydanaDesign):
        field = (data.sst - stats["sst_mean"]) / stats["sst_std"]
    else:
        field = data.sst - preceding_climatology(data.sst, design.detrend_years, design.detrend_min_years)
    return np.nan_to_num(field, nan=0.0).astype(np.float32)


def build_samples(preset: Preset, data: ModelData, stats: dict[str, np.ndarray],
                  init_months: list[Month] | None = None) -> Samples:
    """Forecast cases with inputs ending at each init month and targets at init + lead.

    With ``init_months=None``: every usable init month of the axis (months that
    lack inputs, such as the first ``n_timesteps - 1``, are skipped). With a
    list: exactly those, and a ValueError names the first missing input.
    """
    rules = _InputRules(preset, data, stats)
    if init_months is None:
        rows = np.arange(preset.n_timesteps - 1, data.n_rows)
        rows = rows[rules.usable(rows)]
    else:
        rows = np.array([data.row(m) for m in init_months], dtype=np.int64)
        usable = rules.usable(rows)
        if not usable.all():
            raise ValueError(rules.problem(int(rows[np.flatnonzero(~usable)[0]])))

    target_rows = rows[:, None] + np.asarray(FORECAST_LEADS)[None, :]
    inside = target_rows < data.n_rows
    clipped = np.where(inside, target_rows, 0)
    offset = rules.offset(target_rows)
    target = np.where(inside, (data.nino34[clipped] - offset) / rules.scale, np.nan)
    lead1 = rows + 1
    grid_ok = (lead1 < data.n_rows) & data.has_grid[np.minimum(lead1, data.n_rows - 1)]
    return Samples(
        init_rows=rows,
        init_calendar=data.calendar[rows],
        window=rows[:, None] + np.arange(1 - preset.n_timesteps, 1)[None, :],
        target=target.astype(np.float32),
        phase=np.where(inside, data.phase[clipped], -1),
        target_scale=rules.scale,
        target_offset=offset,
        persistence=((data.nino34[rows] - rules.offset(rows)) / rules.scale).astype(np.float32),
        grid_target=np.where(grid_ok, lead1, -1),
    )


class _InputRules:
    """What an init month needs, per design, and the message when it lacks it.

    Keydana: the window's grids. Residual: also enough earlier years of SST for
    each window month's anomaly, the init month's Niño 3.4 value, and enough
    earlier years of the index for the anomalies of the init and target months.
    ``offset(rows)`` and ``scale`` map Niño 3.4 °C of those rows to model units.
    """

    def __init__(self, preset: Preset, data: ModelData, stats: dict[str, np.ndarray]) -> None:
        self.preset, self.data = preset, data
        design = preset.design
        if isinstance(design, KeydanaDesign):
            self.scale = float(stats["nino34_std"])
            self._mean = float(stats["nino34_mean"])
            self.history_ok = np.ones(data.n_rows, dtype=bool)
        else:
            self.scale = 1.0
            self._trailing = trailing_climatology(data.nino34, design.detrend_years, design.detrend_min_years)
            grids_held = np.where(data.has_grid, 1.0, np.nan)
            self.history_ok = np.isfinite(
                preceding_climatology(grids_held, design.detrend_years, design.detrend_min_years))

    def offset(self, rows: np.ndarray) -> np.ndarray:
        """Niño 3.4 °C that model value 0 stands for at each row (rows may reach 12 past the axis end)."""
        if isinstance(self.preset.design, KeydanaDesign):
            return np.full(rows.shape, self._mean)
        earlier = rows - 12
        inside = (earlier >= 0) & (earlier < self.data.n_rows)
        return np.where(inside, self._trailing[np.clip(earlier, 0, self.data.n_rows - 1)], np.nan)

    def usable(self, rows: np.ndarray) -> np.ndarray:
        """Which init rows have every input."""
        n = self.data.n_rows
        window = rows[:, None] + np.arange(1 - self.preset.n_timesteps, 1)[None, :]
        w = np.clip(window, 0, n - 1)
        ok = ((window >= 0) & (window < n) & self.data.has_grid[w] & self.history_ok[w]).all(axis=1)
        if isinstance(self.preset.design, ResidualDesign):
            targets = rows[:, None] + np.asarray(FORECAST_LEADS)[None, :]
            ok &= np.isfinite(self.data.nino34[np.clip(rows, 0, n - 1)]) & np.isfinite(self.offset(rows))
            ok &= np.isfinite(self.offset(targets)).all(axis=1)
        return ok

    def problem(self, row: int) -> str:
        """Why the init month at ``row`` cannot be forecast, naming the month that is missing."""
        data, steps, design = self.data, self.preset.n_timesteps, self.preset.design
        init = data.month(row)
        for r in range(row - steps + 1, row + 1):
            month = data.month(r)
            if not (0 <= r < data.n_rows) or not data.has_grid[r]:
                return (f"no SST grid for {month}, needed by the input window {init - (steps - 1)}..{init} "
                        f"of init month {init}")
            if not self.history_ok[r]:
                return (f"init month {init}: the SST anomaly of {month} needs grids of at least "
                        f"{design.detrend_min_years} of the {design.detrend_years} years before it "  # type: ignore[union-attr]
                        f"(preset {self.preset.name}); the data start at {data.first_month}")
        if not np.isfinite(data.nino34[row]):
            return f"init month {init}: the Niño 3.4 index table has no value for {init}"
        return (f"init month {init}: the Niño 3.4 anomalies need index values of at least "
                f"{design.detrend_min_years} of the {design.detrend_years} years before {init} "  # type: ignore[union-attr]
                f"(preset {self.preset.name})")


def base_features(preset: Preset, field: np.ndarray, stats: dict[str, np.ndarray], samples: Samples) -> np.ndarray:
    """The linear base's raw features of the samples (see :mod:`enso.model.base`)."""
    design = preset.design
    assert isinstance(design, ResidualDesign)
    return base.features(field, samples.window, samples.persistence, stats["land"], stats["base_patterns"],
                         design.ridge_lags, samples.init_calendar if design.ridge_seasonal else None)


def linear_base(preset: Preset, field: np.ndarray, stats: dict[str, np.ndarray], samples: Samples) -> np.ndarray:
    """(n, 12) the residual design's linear base forecast in model units; zeros for Keydana or before it is fitted."""
    if not isinstance(preset.design, ResidualDesign) or "base_coef" not in stats:
        return np.zeros((len(samples), N_LEADS), dtype=np.float32)
    return base.base_forecast(base_features(preset, field, stats, samples), stats).astype(np.float32)


def fit_linear_base(preset: Preset, field: np.ndarray, stats: dict[str, np.ndarray], train: Samples,
                    select: Samples | None, alphas: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Fit the EOF ridge base on the training cases (EOFs of their init months), penalties chosen on ``select``."""
    design = preset.design
    assert isinstance(design, ResidualDesign)
    if design.ridge_lags > preset.n_timesteps:
        raise ValueError(f"preset {preset.name}: ridge_lags {design.ridge_lags} exceeds the input window "
                         f"{preset.n_timesteps}")
    patterns = base.fit_patterns(field, np.unique(train.window), stats["lat"], stats["land"], design.ridge_eofs)
    fitted = {"base_patterns": patterns}
    scope = {**stats, **fitted}
    train_x = base_features(preset, field, scope, train)
    select_x = None if select is None else base_features(preset, field, scope, select)
    fitted.update(base.fit_ridge(train_x, train.target.astype(np.float64), select_x,
                                 None if select is None else select.target.astype(np.float64), alphas))
    return fitted


class SampleTensors:
    """A set of samples and the input field as tensors on one device, built once.

    Batches are index look-ups: ``inputs(idx)`` gathers the input windows of
    the cases ``idx`` into (B, T, C, H, W). Residual inputs carry the
    :data:`RESIDUAL_CHANNELS` per month; Keydana inputs one (normalised SST).
    """

    def __init__(self, preset: Preset, field: np.ndarray, stats: dict[str, np.ndarray], data: ModelData,
                 samples: Samples, device: torch.device) -> None:
        self.preset = preset
        self.device = device
        self.samples = samples
        self.field = torch.as_tensor(field, device=device)
        self.land = torch.as_tensor(stats["land"], device=device)
        angle = 2.0 * np.pi * data.calendar / 12.0
        self.calendar_sin = torch.as_tensor(np.sin(angle), dtype=torch.float32, device=device)
        self.calendar_cos = torch.as_tensor(np.cos(angle), dtype=torch.float32, device=device)
        self.window = torch.as_tensor(samples.window, device=device)
        self.target = torch.as_tensor(samples.target, device=device)
        self.phase = torch.as_tensor(samples.phase, device=device)
        self.persistence = torch.as_tensor(samples.persistence, device=device)
        self.init_calendar = torch.as_tensor(samples.init_calendar, device=device)
        self.base = torch.as_tensor(linear_base(preset, field, stats, samples), dtype=torch.float32, device=device)
        self.grid_target = torch.as_tensor(samples.grid_target, device=device)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def residual(self) -> bool:
        return isinstance(self.preset.design, ResidualDesign)

    def inputs(self, idx: Tensor, noise_sd: float = 0.0, generator: torch.Generator | None = None) -> Tensor:
        """Input windows of the cases ``idx``: (B, T, C, H, W); optional Gaussian noise on ocean cells."""
        rows = self.window[idx]
        x = self.field[rows]
        if noise_sd:
            noise = torch.randn(x.shape, generator=generator, device=self.device, dtype=x.dtype)
            x = x + noise_sd * noise * (~self.land)
        if not self.residual:
            return x[:, :, None]
        shape = x.shape
        land = self.land.to(x.dtype).expand(shape)
        sin = self.calendar_sin[rows][:, :, None, None].expand(shape)
        cos = self.calendar_cos[rows][:, :, None, None].expand(shape)
        return torch.stack([x, land, sin, cos], dim=2)
