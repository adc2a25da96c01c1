"""SST grids: one month's field, its orientation, crops, coarsening, anomalies.

Conventions, defined here once:

* A grid's latitudes ascend (south -> north) and its longitudes ascend within
  [0, 360) (east of Greenwich), whatever order the file used.
* Values are °C as float32; **land is NaN** (the land mask is ``isnan``). Sea ice
  is a value (about -1.8 °C), never missing.
* A *cube* is an ``xarray.DataArray`` with dims ``(month, lat, lon)``; its
  ``month`` coordinate holds ``pandas.Period`` values of frequency ``M``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import xarray as xr

from enso.months import Month

#: Default crop of the reference method: 55°S .. 60°N.
DEFAULT_LAT_RANGE: tuple[float, float] = (-55.0, 60.0)

#: Niño 3.4 box: 5°S-5°N, 170°W-120°W (190-240°E).
NINO34_LAT: tuple[float, float] = (-5.0, 5.0)
NINO34_LON: tuple[float, float] = (190.0, 240.0)


@dataclass(frozen=True)
class SSTGrid:
    """One month of sea surface temperature on a regular lat/lon grid (°C, NaN on land)."""

    month: Month
    lat: np.ndarray
    lon: np.ndarray
    values: np.ndarray
    attrs: dict[str, object] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.lat.size), int(self.lon.size))

    @property
    def land_mask(self) -> np.ndarray:
        """True on land (cells without an SST value)."""
        return np.isnan(self.values)

    @property
    def land_fraction(self) -> float:
        return float(self.land_mask.mean())


def normalise_orientation(
    lat: np.ndarray, lon: np.ndarray, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (lat ascending, lon ascending in [0, 360), values reordered to match)."""
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.mod(np.asarray(lon, dtype=np.float64), 360.0)
    values = np.asarray(values)
    lat_order = np.argsort(lat, kind="stable")
    lon_order = np.argsort(lon, kind="stable")
    return lat[lat_order], lon[lon_order], values[np.ix_(lat_order, lon_order)]


def box_mean(values: np.ndarray, lat: np.ndarray, lon: np.ndarray,
             lat_range: tuple[float, float] = NINO34_LAT,
             lon_range: tuple[float, float] = NINO34_LON) -> np.ndarray:
    """Cos(latitude)-weighted mean over a box of the last two axes, skipping NaN (land).

    Cells whose centres lie inside the box (bounds inclusive) count; works on a
    single grid (lat, lon) or a stack (..., lat, lon).
    """
    lat = np.asarray(lat)
    lon = np.mod(np.asarray(lon), 360.0)
    in_lat = (lat >= lat_range[0]) & (lat <= lat_range[1])
    in_lon = (lon >= lon_range[0]) & (lon <= lon_range[1])
    if not in_lat.any() or not in_lon.any():
        raise ValueError(f"box lat {lat_range} lon {lon_range} holds no grid cell")
    sub = np.asarray(values)[..., in_lat, :][..., in_lon]
    weights = np.broadcast_to(np.cos(np.deg2rad(lat[in_lat]))[:, None], sub.shape[-2:])
    valid = ~np.isnan(sub)
    num = np.where(valid, sub * weights, 0.0).sum(axis=(-2, -1))
    den = np.where(valid, weights, 0.0).sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / den


def nino34_mean(grid: SSTGrid) -> float:
    """Niño 3.4 box mean SST of one grid (°C)."""
    return float(box_mean(grid.values, grid.lat, grid.lon))


def stack(grids: Sequence[SSTGrid]) -> xr.DataArray:
    """Stack grids of one shape into a cube with dims (month, lat, lon)."""
    if not grids:
        raise ValueError("no grids to stack")
    first = grids[0]
    for g in grids[1:]:
        if g.shape != first.shape or not np.array_equal(g.lat, first.lat) or not np.array_equal(g.lon, first.lon):
            raise ValueError(f"grid of {g.month} has another shape or coordinates than {first.month}")
    import pandas as pd

    months = pd.PeriodIndex([pd.Period(str(g.month), freq="M") for g in grids], name="month")
    data = np.stack([g.values for g in grids]).astype(np.float32, copy=False)
    return xr.DataArray(
        data, dims=("month", "lat", "lon"),
        coords={"month": months, "lat": first.lat, "lon": first.lon},
        name="sst", attrs={"units": "degC"},
    )


def crop(cube: xr.DataArray, lat_range: tuple[float, float] = DEFAULT_LAT_RANGE,
         lon_range: tuple[float, float] | None = None) -> xr.DataArray:
    """Keep cells whose centres lie in the latitude (and optionally longitude) range."""
    out = cube.sel(lat=slice(lat_range[0], lat_range[1]))
    if lon_range is not None:
        lo, hi = lon_range[0] % 360.0, lon_range[1] % 360.0
        if lo <= hi:
            out = out.sel(lon=slice(lo, hi))
        else:
            out = out.where((out.lon >= lo) | (out.lon <= hi), drop=True)
    return out


def coarsen(cube: xr.DataArray, degrees: float) -> xr.DataArray:
    """Average onto a coarser grid of ``degrees`` spacing (area-weighted, NaN-aware).

    The factor is ``degrees / native spacing`` and must be a whole number
    (1° COBE -> 2°, 4°, 5°; 2° ERSST -> 4°, 6°). A coarse cell is land only when
    all of its fine cells are land. Trailing rows/columns that do not fill a
    whole coarse cell are dropped.
    """
    native = float(abs(cube.lat[1] - cube.lat[0]))
    factor = degrees / native
    if factor < 1 or abs(factor - round(factor)) > 1e-6:
        raise ValueError(f"cannot coarsen a {native}° grid to {degrees}°: not a whole multiple")
    k = int(round(factor))
    if k == 1:
        return cube
    weights = np.cos(np.deg2rad(cube.lat)).astype(np.float32) * xr.ones_like(cube.lon, dtype=np.float32)
    valid = cube.notnull()
    num = (cube.fillna(0.0) * weights).coarsen(lat=k, lon=k, boundary="trim").sum()
    den = (valid * weights).coarsen(lat=k, lon=k, boundary="trim").sum()
    out = (num / den.where(den > 0)).astype(np.float32)
    out = out.assign_coords(
        lat=cube.lat.coarsen(lat=k, boundary="trim").mean().values,
        lon=cube.lon.coarsen(lon=k, boundary="trim").mean().values,
    )
    out.name = cube.name
    out.attrs = dict(cube.attrs, resolution_deg=degrees)
    return out


def land_mask(cube: xr.DataArray) -> xr.DataArray:
    """True where a cell is land in every month of the cube (the static land mask)."""
    return cube.isnull().all("month")


def monthly_climatology(cube: xr.DataArray, base_start: int, base_end: int) -> xr.DataArray:
    """Mean of each calendar month over the years base_start..base_end (inclusive)."""
    years = np.array([p.year for p in cube.month.values])
    sel = cube.isel(month=np.flatnonzero((years >= base_start) & (years <= base_end)))
    if sel.sizes["month"] == 0:
        raise ValueError(f"no month of base period {base_start}-{base_end} in the cube")
    cal = xr.DataArray([p.month for p in sel.month.values], dims="month")
    clim = sel.groupby(cal.rename("calendar_month")).mean("month")
    missing = sorted(set(range(1, 13)) - set(int(m) for m in clim.calendar_month.values))
    if missing:
        raise ValueError(f"base period {base_start}-{base_end} lacks calendar months {missing}")
    return clim


def anomalies(cube: xr.DataArray, base_start: int, base_end: int,
              climatology: xr.DataArray | None = None) -> xr.DataArray:
    """SST anomalies against the monthly climatology of a stated base period."""
    clim = climatology if climatology is not None else monthly_climatology(cube, base_start, base_end)
    cal = xr.DataArray([p.month for p in cube.month.values], dims="month", coords={"month": cube.month})
    out = cube - clim.sel(calendar_month=cal).drop_vars("calendar_month")
    out.name = "sst_anomaly"
    out.attrs = dict(cube.attrs, base_period=f"{base_start}-{base_end}")
    return out
