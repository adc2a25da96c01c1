"""NOAA NCEI ERSST monthly netCDF: URLs, decoding, a writer of the same layout, and the stacked record.

NCEI serves one file per month, ``ersst.<version>.YYYYMM.nc``: variable ``sst``
(°C, float32) with dims (time=1, lev=1, lat=89, lon=180) on a 2° grid (lat
-88..88, lon 0..358), ``_FillValue`` -999 on land. The time encoding differs by
era (``minutes since 1854-01-01``, 360_day, up to 2007; ``days since
1854-01-15``, gregorian, from 2008), so the month is decoded from the numbers
here, without cftime, and checked against the month asked for.

Versions. NCEI discontinued ERSSTv5 in 2026 and CPC moved its indices to
ERSSTv6 (README, "The sources as NOAA and JMA publish them in 2026"). v5 files were observed (``../shared``); for v6
the folder ``/pub/data/cmb/ersst/v5/v6/`` and the names ``ersst.v6.YYYYMM.nc``
are inferred from public scripts that download them in 2025-2026, and the
layout (variable ``sst`` with a ``lev`` axis, 2° grid, v6 from 1850-01) from
the same scripts: nothing of v6 could be checked from here. So the version,
the folder, the file template and the names of the variables are settings
(:class:`ErsstLayout`), and any extra axis of length one (``lev``, ``zlev``) is
dropped whatever its name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import xarray as xr
from scipy.io import netcdf_file

from enso.config import ERSST_BASE_URLS
from enso.grids import SSTGrid, normalise_orientation
from enso.months import Month
from enso.sources import InvalidFile
from enso.sources.validate import check_month, validate_sst

#: The version of the files NCEI publishes now (where each version lies: ``enso.config.ERSST_BASE_URLS``).
DEFAULT_VERSION = "v6"
#: File name below the base URL; ``{version}``, ``{year}`` and ``{month}`` are filled in.
DEFAULT_TEMPLATE = "ersst.{version}.{year:04d}{month:02d}.nc"
#: First month of each version's record (v6 reaches back to 1850).
FIRST_MONTHS = {"v5": Month.of(1854, 1), "v6": Month.of(1850, 1)}
ERSST_SHAPE = (89, 180)
ERSST_LAT = np.arange(-88.0, 89.0, 2.0)
ERSST_LON = np.arange(0.0, 360.0, 2.0)
FILL_VALUE = np.float32(-999.0)
#: NCEI's own valid_min/valid_max of ``sst``: the real record reaches 42.3 °C
#: (Red Sea, 1871-06), so the generic -3..40 °C range would reject a real month.
ERSST_VALUE_RANGE = (-3.0, 45.0)
#: First month NCEI encodes as ``days since 1854-01-15`` (gregorian, mid-month).
GREGORIAN_ERA = Month.of(2008, 1)

_TIME_UNITS = re.compile(r"^\s*(seconds|minutes|hours|days)\s+since\s+(\d{1,4})-(\d{1,2})-(\d{1,2})")
_DAYS_PER_UNIT = {"seconds": 1 / 86400, "minutes": 1 / 1440, "hours": 1 / 24, "days": 1.0}
_STANDARD_CALENDARS = {"standard", "gregorian", "proleptic_gregorian"}


@dataclass(frozen=True)
class ErsstLayout:
    """The names inside an ERSST file: the SST variable and its time, latitude and longitude axes."""

    variable: str = "sst"
    time: str = "time"
    lat: str = "lat"
    lon: str = "lon"


#: NCEI's names (v5 observed, v6 inferred).
DEFAULT_LAYOUT = ErsstLayout()


def ersst_url(month: Month | str, base_url: str, template: str = DEFAULT_TEMPLATE,
              version: str = DEFAULT_VERSION) -> str:
    """URL of one month's file: ``<base>/<template filled with version, year and month>``."""
    month = Month.parse(month)
    return f"{base_url.rstrip('/')}/{template.format(version=version, year=month.year, month=month.month)}"


def ersst_base_url(version: str, configured: str = "") -> str:
    """The folder of a version's monthly files: ``configured`` if given, else NCEI's known folder."""
    if configured:
        return configured
    try:
        return ERSST_BASE_URLS[version]
    except KeyError:
        raise ValueError(f"no known NCEI folder for ERSST {version!r} (known: {', '.join(ERSST_BASE_URLS)}): "
                         "set ENSO_ERSST_BASE_URL to the folder of its monthly files") from None


def product_version(version: str) -> str:
    """The product version stored with every ERSST grid, e.g. ``ersst v6``."""
    return f"ersst {version}"


def decode_ersst(path: str | Path, month: Month, layout: ErsstLayout = DEFAULT_LAYOUT) -> SSTGrid:
    """Decode and validate one NCEI monthly file that must hold ``month``.

    Land (``_FillValue``) becomes NaN, orientation is normalised, and the grid is
    checked (89x180, -3..45 °C, land fraction). A file that is not netCDF, lacks
    ``sst``, holds several or another month raises :class:`InvalidFile`.
    """
    month = Month.parse(month)
    grids = _read_grids(path, month, layout)
    if len(grids) != 1:
        raise InvalidFile(path, month, f"holds {len(grids)} time steps, expected one month")
    check_month(grids[0].month, month, file=path)
    return _validate(grids[0], path)


def read_ersst_stack(path: str | Path, layout: ErsstLayout = DEFAULT_LAYOUT) -> Iterator[SSTGrid]:
    """Yield each month of a stacked ERSST file (dims time, lat, lon), validated, in file order.

    Reads the packed values once (the 1854-2010 record is int16, zlib) and
    unpacks one month at a time to float32.
    """
    for grid in _read_grids(path, None, layout):
        yield _validate(grid, path)


def write_ersst_netcdf(grid: SSTGrid, path: str | Path) -> None:
    """Write ``grid`` as an NCEI-style monthly file (netCDF3 classic, as the originals to 2007).

    Same variable, dims, attributes and fill value as the originals; the time is
    encoded as NCEI did for the month's era (360_day minutes since 1854-01-01 up
    to 2007, gregorian days since 1854-01-15 from 2008). Only ``sst`` is written
    (the originals' ``ssta`` needs NCEI's 1971-2000 climatology).
    """
    time_value, time_units, calendar = _encode_time(grid.month)
    values = np.where(np.isnan(grid.values), FILL_VALUE, grid.values).astype(np.float32)
    with netcdf_file(path, "w", version=1) as nc:
        nc.Conventions = "CF-1.6, ACDD-1.3"
        nc.title = "NOAA ERSSTv5 (in situ only)"
        nc.id = Path(path).stem
        for name, size in (("time", 1), ("lev", 1), ("lat", grid.lat.size), ("lon", grid.lon.size)):
            nc.createDimension(name, size)
        time = nc.createVariable("time", "d", ("time",))
        time[:] = [time_value]
        time.units, time.calendar, time.standard_name, time.axis = time_units, calendar, "time", "T"
        lev = nc.createVariable("lev", "d", ("lev",))
        lev[:] = [0.0]
        lev.units, lev.standard_name, lev.positive, lev.axis = "meters", "depth", "down", "Z"
        lat = nc.createVariable("lat", "d", ("lat",))
        lat[:] = grid.lat
        lat.units, lat.standard_name, lat.axis = "degrees_north", "latitude", "Y"
        lon = nc.createVariable("lon", "d", ("lon",))
        lon[:] = grid.lon
        lon.units, lon.standard_name, lon.axis = "degrees_east", "longitude", "X"
        sst = nc.createVariable("sst", "f", ("time", "lev", "lat", "lon"))
        sst._FillValue = FILL_VALUE
        sst.long_name = "Extended reconstructed sea surface temperature"
        sst.standard_name = "sea_surface_temperature"
        sst.units = "degree_C"
        sst.add_offset, sst.scale_factor = np.float32(0.0), np.float32(1.0)
        sst.valid_min, sst.valid_max = np.float32(-3.0), np.float32(45.0)
        sst[:] = values[None, None]


def _validate(grid: SSTGrid, path: str | Path) -> SSTGrid:
    return validate_sst(grid, file=path, expected_shape=ERSST_SHAPE, expected_lat=ERSST_LAT,
                        expected_lon=ERSST_LON, value_range=ERSST_VALUE_RANGE)


def _read_grids(path: str | Path, month: Month | None, layout: ErsstLayout = DEFAULT_LAYOUT) -> list[SSTGrid]:
    """Every time step of the SST variable as an (unvalidated) grid, land NaN, orientation normalised."""
    axes = (layout.time, layout.lat, layout.lon)
    try:
        with xr.open_dataset(path, decode_times=False, mask_and_scale=False) as ds:
            if layout.variable not in ds:
                raise InvalidFile(path, month, f"no variable {layout.variable!r} (has {sorted(ds.data_vars)}): "
                                               "not an ERSST file, or set ENSO_ERSST_VARIABLE")
            sst = ds[layout.variable]
            lacking = [axis for axis in axes if axis not in sst.dims]
            if lacking:
                raise InvalidFile(path, month, f"{layout.variable} has dims {sst.dims}, no axis {lacking[0]!r}: not "
                                               "an ERSST file, or set ENSO_ERSST_TIME_NAME / _LAT_NAME / _LON_NAME")
            sst = sst.isel({dim: 0 for dim in sst.dims if dim not in axes and sst.sizes[dim] == 1})
            if sst.dims != axes:
                raise InvalidFile(path, month, f"{layout.variable} has dims {sst.dims}, expected "
                                               f"({layout.time}, [lev,] {layout.lat}, {layout.lon})")
            packed = sst.values
            attrs = dict(sst.attrs)
            lat, lon = ds[layout.lat].values, ds[layout.lon].values
            times = ds[layout.time].values
            units = ds[layout.time].attrs.get("units", "")
            calendar = ds[layout.time].attrs.get("calendar", "standard")
    except KeyError as exc:
        raise InvalidFile(path, month, f"no coordinate variable {exc} beside {layout.variable!r}: not an ERSST "
                                       "file, or set ENSO_ERSST_TIME_NAME / _LAT_NAME / _LON_NAME") from exc
    except (OSError, ValueError) as exc:
        raise InvalidFile(path, month, f"not a readable netCDF file ({exc}): download it again") from exc
    months = [_decode_month(float(t), units, calendar, path, month) for t in times]
    grids = []
    for step, found in enumerate(months):
        values = _unpack(packed[step], attrs)
        lat_n, lon_n, values = normalise_orientation(lat, lon, values)
        grids.append(SSTGrid(month=found, lat=lat_n, lon=lon_n, values=np.ascontiguousarray(values),
                             attrs={"source": "ersst", "file": str(path)}))
    return grids


def _unpack(packed: np.ndarray, attrs: dict) -> np.ndarray:
    """CF unpacking to float32: fill/missing values -> NaN, then ``scale_factor`` and ``add_offset``."""
    missing = np.zeros(packed.shape, dtype=bool)
    for key in ("_FillValue", "missing_value"):
        if key in attrs:
            missing |= packed == attrs[key]
    values = packed.astype(np.float32) * np.float32(attrs.get("scale_factor", 1.0)) \
        + np.float32(attrs.get("add_offset", 0.0))
    values[missing] = np.nan
    return values


def _decode_month(value: float, units: str, calendar: str, path: str | Path, month: Month | None) -> Month:
    """The month of a CF time value, for the 360_day and standard calendars NCEI uses."""
    match = _TIME_UNITS.match(units)
    if not match:
        raise InvalidFile(path, month, f"time units {units!r} are not '<unit> since YYYY-MM-DD'")
    unit, year, mon, day = match.group(1), *(int(g) for g in match.groups()[1:])
    days = value * _DAYS_PER_UNIT[unit]
    calendar = calendar.lower()
    if calendar == "360_day":
        return Month.of(year, mon) + int(np.floor((day - 1 + days) / 30.0 + 1e-9))
    if calendar in _STANDARD_CALENDARS:
        when = pd.Timestamp(year=year, month=mon, day=day) + pd.to_timedelta(days, unit="D")
        return Month.of(when.year, when.month)
    raise InvalidFile(path, month, f"time calendar {calendar!r} is not supported (360_day or gregorian)")


def _encode_time(month: Month) -> tuple[float, str, str]:
    """NCEI's time value, units and calendar for ``month``."""
    if month < GREGORIAN_ERA:
        return float(month.months_since(Month.of(1854, 1)) * 30 * 1440), "minutes since 1854-01-01 00:00", "360_day"
    days = (pd.Timestamp(month.year, month.month, 15) - pd.Timestamp(1854, 1, 15)).days
    return float(days), "days since 1854-01-15 00:00", "gregorian"
