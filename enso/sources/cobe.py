"""JMA Tokyo Climate Center COBE-SST monthly GRIB1: URLs, decoding, and a faithful stand-in writer.

One file is one month: a single GRIB1 message of WMO table 2 parameter 80
("water temperature", ecCodes paramId 3080) on a regular 1° grid (Ni = 360,
Nj = 180), first point 89.5°S 0.5°E, scanning west -> east then south -> north,
land as bitmap-missing points. **The metadata says K but the numbers are °C**:
they are never converted; the value range is validated instead.

Decoding uses the plain ecCodes API (about 1.4 ms per file); cfgrib/xarray are
several times slower and write index files.
"""

from __future__ import annotations

from pathlib import Path

import eccodes
import numpy as np

from enso.grids import SSTGrid, normalise_orientation
from enso.months import Month
from enso.sources import InvalidFile
from enso.sources.validate import check_month, validate_sst

#: WMO GRIB1 table 2 parameter "water temperature" and its ecCodes paramId.
WATER_TEMPERATURE_PARAMETER = 80
WATER_TEMPERATURE_PARAM_ID = 3080
#: JMA's WMO originating centre number (rjtd).
JMA_CENTRE = 34
COBE_SHAPE = (180, 360)
COBE_LAT = np.arange(-89.5, 90.0, 1.0)
COBE_LON = np.arange(0.5, 360.0, 1.0)
FIRST_YEAR = 1891
#: Value written for land where the bitmap marks a point missing.
_MISSING = 9999.0


def cobe_url(month: Month | str, base_url: str) -> str:
    """URL of one month's file: ``<base>/<decade>/sst<YYYYMM>.grb``.

    The decade folder is ``1891-1899`` for the first years, else ``D-(D+9)``
    with ``D`` the year rounded down to a multiple of ten.
    """
    month = Month.parse(month)
    if month.year < FIRST_YEAR:
        raise ValueError(f"COBE-SST starts {FIRST_YEAR}-01; there is no file for {month}")
    decade = 10 * (month.year // 10)
    folder = f"{FIRST_YEAR}-1899" if decade == 1890 else f"{decade}-{decade + 9}"
    return f"{base_url.rstrip('/')}/{folder}/sst{month.year:04d}{month.month:02d}.grb"


def decode_cobe(path: str | Path, month: Month) -> SSTGrid:
    """Decode and validate one COBE-SST GRIB1 file holding ``month``.

    Land (bitmap-missing points) becomes NaN; the grid is returned with latitudes
    ascending and longitudes 0.5..359.5 whatever the file's scanning order. A file
    that is not GRIB, is cut short, lacks the water-temperature message, holds
    another month, another grid, implausible values or land fraction raises
    :class:`InvalidFile`.
    """
    month = Month.parse(month)
    message = _read_water_temperature(path, month)
    try:
        found = Month.of(message["dataDate"] // 10000, message["dataDate"] // 100 % 100)
    except ValueError as exc:
        raise InvalidFile(path, month, f"dataDate {message['dataDate']} is not a date: {exc}") from exc
    check_month(found, month, file=path)
    lat, lon, values = normalise_orientation(message["lat"], message["lon"], message["values"])
    grid = SSTGrid(month=month, lat=lat, lon=lon, values=np.ascontiguousarray(values, dtype=np.float32),
                   attrs={"source": "cobe", "file": str(path)})
    return validate_sst(grid, file=path, expected_shape=COBE_SHAPE, expected_lat=COBE_LAT, expected_lon=COBE_LON)


def _read_water_temperature(path: str | Path, month: Month) -> dict:
    """The one parameter-80 message of the file: date, coordinates and values (NaN on land)."""
    found: list[dict] = []
    try:
        with open(path, "rb") as stream:
            while (handle := eccodes.codes_grib_new_from_file(stream)) is not None:
                try:
                    if _is_water_temperature(handle):
                        found.append(_message_fields(handle, path, month))
                finally:
                    eccodes.codes_release(handle)
    except eccodes.GribInternalError as exc:
        raise InvalidFile(path, month, f"not a readable GRIB file ({exc}): the download is corrupt or cut short; "
                                       "download it again") from exc
    if not found:
        raise InvalidFile(path, month, "holds no GRIB message of parameter 80 (water temperature): "
                                       "not a COBE-SST file")
    if len(found) > 1:
        raise InvalidFile(path, month, f"holds {len(found)} water-temperature messages, expected one")
    return found[0]


def _is_water_temperature(handle: int) -> bool:
    if eccodes.codes_get(handle, "paramId") == WATER_TEMPERATURE_PARAM_ID:
        return True
    return (eccodes.codes_get(handle, "edition") == 1
            and eccodes.codes_get(handle, "indicatorOfParameter") == WATER_TEMPERATURE_PARAMETER)


def _message_fields(handle: int, path: str | Path, month: Month) -> dict:
    grid_type = eccodes.codes_get(handle, "gridType")
    if grid_type != "regular_ll":
        raise InvalidFile(path, month, f"grid type {grid_type!r}, expected regular_ll: not a COBE-SST file")
    ni, nj = eccodes.codes_get(handle, "Ni"), eccodes.codes_get(handle, "Nj")
    lat = np.linspace(eccodes.codes_get(handle, "latitudeOfFirstGridPointInDegrees"),
                      eccodes.codes_get(handle, "latitudeOfLastGridPointInDegrees"), nj)
    lon = np.linspace(eccodes.codes_get(handle, "longitudeOfFirstGridPointInDegrees"),
                      eccodes.codes_get(handle, "longitudeOfLastGridPointInDegrees"), ni)
    values = eccodes.codes_get_values(handle)
    if eccodes.codes_get(handle, "bitmapPresent"):
        values = np.where(values == eccodes.codes_get(handle, "missingValue"), np.nan, values)
    if eccodes.codes_get(handle, "jPointsAreConsecutive"):
        values = values.reshape(ni, nj).T
    else:
        values = values.reshape(nj, ni)
    return {"dataDate": int(eccodes.codes_get(handle, "dataDate")), "lat": lat, "lon": lon, "values": values}


def write_cobe_grib(grid: SSTGrid, path: str | Path, **overrides: int | float | str) -> None:
    """Write ``grid`` as a COBE-SST-format GRIB1 file (the stand-in for tests and the mirror).

    The message copies the real files' layout: JMA centre 34, table 2 version 3,
    parameter 80 (whose metadata says K) holding °C, ``dataDate`` YYYYMM01,
    16-bit simple packing and a bitmap for land (NaN). The grid is written in the
    order of its own coordinates: an ascending-latitude grid gives the real
    south -> north scan (``jScansPositively = 1``), a descending one a north ->
    south file. Any regular grid is accepted, so tests can write wrong grids;
    ``overrides`` are ecCodes keys set last (e.g. ``dataDate=20200201``) to make bad files.
    """
    lat, lon = np.asarray(grid.lat, dtype=np.float64), np.asarray(grid.lon, dtype=np.float64)
    values = np.asarray(grid.values, dtype=np.float64)
    handle = eccodes.codes_grib_new_from_samples("regular_ll_sfc_grib1")
    try:
        eccodes.codes_set_key_vals(handle, {
            "centre": JMA_CENTRE,
            "table2Version": 3,
            "indicatorOfParameter": WATER_TEMPERATURE_PARAMETER,
            "dataDate": grid.month.year * 10000 + grid.month.month * 100 + 1,
            "dataTime": 0,
            "Ni": lon.size,
            "Nj": lat.size,
            "latitudeOfFirstGridPointInDegrees": lat[0],
            "longitudeOfFirstGridPointInDegrees": lon[0],
            "latitudeOfLastGridPointInDegrees": lat[-1],
            "longitudeOfLastGridPointInDegrees": lon[-1],
            "iDirectionIncrementInDegrees": abs(lon[1] - lon[0]) if lon.size > 1 else 1.0,
            "jDirectionIncrementInDegrees": abs(lat[1] - lat[0]) if lat.size > 1 else 1.0,
            "iScansNegatively": int(lon.size > 1 and lon[1] < lon[0]),
            "jScansPositively": int(lat.size > 1 and lat[1] > lat[0]),
            "bitmapPresent": 1,
            "missingValue": _MISSING,
            "bitsPerValue": 16,
        })
        if overrides:
            eccodes.codes_set_key_vals(handle, dict(overrides))
        eccodes.codes_set_values(handle, np.where(np.isnan(values), _MISSING, values).ravel())
        with open(path, "wb") as out:
            eccodes.codes_write(handle, out)
    finally:
        eccodes.codes_release(handle)
