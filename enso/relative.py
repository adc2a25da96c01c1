"""The relative Niño 3.4 index and RONI, computed from SST grids.

Since 1 Feb 2026 CPC's official ENSO index is the Relative Oceanic Niño Index
(RONI; L'Heureux et al. 2024, J. Climate 37, 1197-1211). For a month ``m`` of
calendar month ``c``:

* ``N(m)``: Niño 3.4 box (5°S-5°N, 170°W-120°W) mean SST anomaly, and
  ``T(m)``: 20°S-20°N tropical-mean (all longitudes) SST anomaly, both
  cos(latitude)-weighted means over ocean cells, anomalies against the monthly
  climatology of one base period (1991-2020, CPC's);
* the relative anomaly ``R(m) = s_c * (N(m) - T(m))``, where ``s_c`` rescales
  the difference so that its amplitude matches the traditional index's;
* ``RONI(m)``: the centred 3-month running mean of ``R`` (as the ONI is of ``N``),
  and the phase from RONI (>= +0.5 El Niño, <= -0.5 La Niña, :mod:`enso.nino34`).

**The scaling.** CPC applies the factor to monthly values and it depends on
the calendar month, but the factors are not published (consumers back them out
of CPC's files: about 1.39 in April, 1.25 in June, 1.17 in August on ERSSTv6).
The public reference notebook of the index's author (github.com/michellelheureux/
Relative-SST, ``compute_relNino34_RONI_ERSSTv6.ipynb``) states the goal, "the
variance of the relative monthly index should equal the variance of the
traditional monthly index", over 1950-2020. This module reconstructs it as

    s_c = sd(N in calendar month c) / sd(N - T in calendar month c)

over the scale period (default 1950-2020), so that, per calendar month, the
relative index has exactly the traditional index's standard deviation over
that period. On the real ERSSTv5 record (scale period 1950-2010) this gives
1.34 in April, 1.22 in June and 1.17 in August, within 0.05 of the factors
backed out of CPC's ERSSTv6 files. Scaling over the base period alone gives
markedly smaller factors (1.07-1.23), so the scale period is its own argument.

Area means are taken over the ocean cells of the tropical band, which must be
the same in every grid (a cell that comes and goes would move the mean without
the ocean changing); then the anomaly of a mean equals the mean of the cell
anomalies. The grids of one product and resolution are expected: the function
refuses a change of grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
import pandas as pd

from enso import nino34
from enso.grids import NINO34_LAT, NINO34_LON, SSTGrid, box_mean
from enso.months import Month, to_periods

#: The tropical band whose mean SST anomaly is removed: 20°S-20°N, all longitudes.
TROPICS_LAT: tuple[float, float] = (-20.0, 20.0)
TROPICS_LON: tuple[float, float] = (0.0, 360.0)
#: Period over which the per-calendar-month scale factors equalise the standard deviations.
DEFAULT_SCALE_PERIOD: tuple[int, int] = (1950, 2020)


@dataclass(frozen=True)
class RelativeIndex:
    """The relative Niño 3.4 index of a run of months, with everything it was made of.

    ``table`` is indexed by a monthly ``PeriodIndex`` ``month`` with columns
    ``nino34`` and ``tropical_mean`` (area-mean SST, °C), ``nino34_anomaly`` and
    ``tropical_anomaly`` (against ``base``), ``difference`` (their difference,
    unscaled), ``relative_anomaly`` (scaled: CPC's ``Rnino34``), ``roni`` (its
    centred 3-month mean; NaN at the ends and next to gaps) and ``phase`` (from
    RONI; None where RONI is missing). ``scale`` holds the factor of each
    calendar month (index 1..12).
    """

    table: pd.DataFrame
    scale: pd.Series
    base: tuple[int, int]
    scale_period: tuple[int, int]

    def index_table(self) -> pd.DataFrame:
        """The relative index as an index table (:mod:`enso.sources.index`): ``anomaly`` is the relative
        anomaly, ``oni`` the RONI; ``attrs["relative"]`` is True, as for CPC's relative files."""
        table = pd.DataFrame({"nino34": np.nan, "anomaly": self.table["relative_anomaly"],
                              "oni": self.table["roni"], "phase": self.table["phase"]}, index=self.table.index)
        table.attrs.update({"format": "from-grids", "file": "computed from SST grids", "relative": True,
                            "anomaly_base": f"{self.base[0]}-{self.base[1]}",
                            "scale_period": f"{self.scale_period[0]}-{self.scale_period[1]}"})
        return table


def area_means(grids: Iterable[SSTGrid]) -> pd.DataFrame:
    """Niño 3.4 and 20°S-20°N mean SST (°C) of each grid: columns ``nino34``, ``tropical_mean``.

    Streams the grids (any order; one month each). Raises ValueError when a grid
    has other coordinates than the first, or other ocean cells in the tropical
    band, or when a month comes twice.
    """
    months: list[Month] = []
    nino34_means: list[float] = []
    tropical_means: list[float] = []
    reference: SSTGrid | None = None
    band_mask: np.ndarray | None = None
    for grid in grids:
        in_band = (grid.lat >= TROPICS_LAT[0]) & (grid.lat <= TROPICS_LAT[1])
        mask = np.isnan(grid.values[in_band])
        if reference is None:
            reference, band_mask = grid, mask
        elif not (np.array_equal(grid.lat, reference.lat) and np.array_equal(grid.lon, reference.lon)):
            raise ValueError(f"the grid of {grid.month} is not on the grid of {reference.month}: "
                             "compute the relative index from the grids of one product")
        elif not np.array_equal(mask, band_mask):
            changed = int((mask != band_mask).sum())
            raise ValueError(f"the grid of {grid.month} has {changed} land/ocean cell(s) in 20°S-20°N that differ "
                             f"from {reference.month}: the tropical mean needs the same ocean cells every month")
        months.append(grid.month)
        nino34_means.append(float(box_mean(grid.values, grid.lat, grid.lon, NINO34_LAT, NINO34_LON)))
        tropical_means.append(float(box_mean(grid.values, grid.lat, grid.lon, TROPICS_LAT, TROPICS_LON)))
    if reference is None:
        raise ValueError("no grid to compute the relative index from")
    if len(set(months)) != len(months):
        twice = sorted({m for m in months if months.count(m) > 1})
        raise ValueError(f"months given more than once: {', '.join(str(m) for m in twice[:12])}")
    index = to_periods(months).rename("month")
    return pd.DataFrame({"nino34": nino34_means, "tropical_mean": tropical_means}, index=index).sort_index()


def relative_index(means: pd.DataFrame, base: tuple[int, int] = nino34.DEFAULT_BASE_PERIOD,
                   scale_period: tuple[int, int] = DEFAULT_SCALE_PERIOD) -> RelativeIndex:
    """The relative index from monthly area means (columns ``nino34``, ``tropical_mean``, as :func:`area_means`).

    Every month of ``base`` and of ``scale_period`` must be present: when the
    means do not cover them, pass periods they cover (for instance base
    (1981, 2010) for a record that ends in 2010); a silently shortened base
    would shift every anomaly. Months outside may have gaps (RONI is NaN next
    to them).
    """
    for what, (first, last) in (("base period", base), ("scale period", scale_period)):
        _require_years(means, what, first, last)
    nino34_anomaly = nino34.anomaly(means["nino34"], base)
    tropical_anomaly = nino34.anomaly(means["tropical_mean"], base)
    difference = nino34_anomaly - tropical_anomaly
    years = means.index.year
    in_scale = (years >= scale_period[0]) & (years <= scale_period[1])
    calendar = pd.Index(means.index.month, name="calendar_month")
    scale = (nino34_anomaly[in_scale].groupby(calendar[in_scale]).std()
             / difference[in_scale].groupby(calendar[in_scale]).std()).rename("scale")
    relative_anomaly = difference * scale.reindex(calendar).to_numpy()
    roni = nino34.oni(relative_anomaly)
    table = pd.DataFrame({
        "nino34": means["nino34"], "tropical_mean": means["tropical_mean"],
        "nino34_anomaly": nino34_anomaly, "tropical_anomaly": tropical_anomaly, "difference": difference,
        "relative_anomaly": relative_anomaly, "roni": roni, "phase": nino34.phases_of(roni),
    }, index=means.index)
    return RelativeIndex(table, scale, tuple(base), tuple(scale_period))  # type: ignore[arg-type]


def relative_index_from_grids(grids: Iterable[SSTGrid], base: tuple[int, int] = nino34.DEFAULT_BASE_PERIOD,
                              scale_period: tuple[int, int] = DEFAULT_SCALE_PERIOD) -> RelativeIndex:
    """:func:`relative_index` of the grids' :func:`area_means`."""
    return relative_index(area_means(grids), base, scale_period)


def _require_years(means: pd.DataFrame, what: str, first: int, last: int) -> None:
    """ValueError unless every month of first..last has both area means."""
    if first > last:
        raise ValueError(f"{what} {first}-{last} ends before it starts")
    wanted = pd.period_range(f"{first}-01", f"{last}-12", freq="M")
    held = means.reindex(wanted)
    missing = held.index[held[["nino34", "tropical_mean"]].isna().any(axis=1)]
    if len(missing):
        span = f"{means.index.min()}..{means.index.max()}" if len(means) else "no month"
        raise ValueError(f"the grids ({span}) lack {len(missing)} month(s) of the {what} {first}-{last} "
                         f"(first {missing[0]}): pass a {what} the grids cover completely")
