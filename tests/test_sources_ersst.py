"""ERSST netCDF: NCEI's real monthly originals, the writer of the same layout, and the stacked record."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy.io import netcdf_file

from enso.config import Settings
from enso.grids import SSTGrid, nino34_mean
from enso.months import Month
from enso.sources import InvalidFile
from enso.sources.ersst import (
    ERSST_LAT,
    ERSST_LON,
    ErsstLayout,
    decode_ersst,
    ersst_base_url,
    ersst_url,
    read_ersst_stack,
    write_ersst_netcdf,
)
from enso.sources.index import parse_cpc_monthly
from enso.sources.sst import sst_source
from enso.synthetic import synthetic_climate
from tests.realdata import ERSST_ORIGINALS, ERSST_STACK, REALDATA, need

#: month -> (time encoding, Niño 3.4 of CPC's monthly file for that month)
ORIGINALS = {
    Month.of(1854, 1): ("360_day", None),
    Month.of(1950, 1): ("360_day", 24.55),
    Month.of(1997, 12): ("360_day", 28.87),
    Month.of(2008, 1): ("gregorian", 24.86),
}


def original(month: Month) -> Path:
    return need(ERSST_ORIGINALS / f"ersst.v5.{month.year:04d}{month.month:02d}.nc")


def test_ersst_url_uses_the_configurable_version_folder_and_template() -> None:
    v5 = "https://www.ncei.noaa.gov/pub/data/cmb/ersst/v5/netcdf/"
    assert ersst_url("2008-01", v5, version="v5") == v5 + "ersst.v5.200801.nc"
    assert ersst_url(Month.of(2026, 7), "http://m/v6") == "http://m/v6/ersst.v6.202607.nc"  # v6 by default
    assert ersst_url(Month.of(2026, 7), "http://m", "sst_{year:04d}_{month:02d}.nc4") == "http://m/sst_2026_07.nc4"
    assert ersst_base_url("v5") == v5.rstrip("/")
    assert ersst_base_url("v6") == "https://www.ncei.noaa.gov/pub/data/cmb/ersst/v5/v6"
    assert ersst_base_url("v7", "https://example/v7") == "https://example/v7"
    with pytest.raises(ValueError, match="set ENSO_ERSST_BASE_URL"):
        ersst_base_url("v7")


def test_settings_choose_the_ersst_version_its_files_and_the_product_version() -> None:
    v6 = sst_source("ersst")
    settings = Settings()
    assert v6.url(Month.of(2026, 11), settings) == \
        "https://www.ncei.noaa.gov/pub/data/cmb/ersst/v5/v6/ersst.v6.202611.nc"
    assert v6.product_version(settings) == "ersst v6" and v6.first_month(settings) == Month.of(1850, 1)
    v5 = Settings(ersst_version="v5")
    assert v6.url(Month.of(2010, 12), v5) == "https://www.ncei.noaa.gov/pub/data/cmb/ersst/v5/netcdf/ersst.v5.201012.nc"
    assert v6.product_version(v5) == "ersst v5"
    assert sst_source("cobe").product_version(settings) == "cobe-sst v1"


def test_variable_names_and_extra_axes_are_configurable(tmp_path: Path) -> None:
    """A v6 file that names things otherwise (inferred layouts may differ) is read through ErsstLayout."""
    grid = synthetic_climate(3, 2.0).grid("2026-10")
    values = np.where(np.isnan(grid.values), np.float32(-999.0), grid.values)[None, None]
    renamed = xr.Dataset(
        {"sea_surface_temperature": (("t", "zlev", "latitude", "longitude"), values,
                                     {"_FillValue": np.float32(-999.0), "units": "degree_C"})},
        coords={"t": ("t", [63095.0], {"units": "days since 1854-01-15", "calendar": "gregorian"}),
                "zlev": [0.0], "latitude": grid.lat, "longitude": grid.lon})
    path = tmp_path / "ersst.v6.202610.nc"
    renamed.to_netcdf(path, engine="scipy")
    with pytest.raises(InvalidFile, match="no variable 'sst' .*set ENSO_ERSST_VARIABLE"):
        decode_ersst(path, Month.of(2026, 10))
    with pytest.raises(InvalidFile, match="no axis 'time': .*ENSO_ERSST_TIME_NAME"):
        decode_ersst(path, Month.of(2026, 10), ErsstLayout(variable="sea_surface_temperature"))
    layout = ErsstLayout(variable="sea_surface_temperature", time="t", lat="latitude", lon="longitude")
    decoded = decode_ersst(path, Month.of(2026, 10), layout)
    assert np.array_equal(decoded.values, grid.values, equal_nan=True)
    settings = Settings(ersst_variable="sea_surface_temperature", ersst_time_name="t", ersst_lat_name="latitude",
                        ersst_lon_name="longitude")
    assert sst_source("ersst").decode(path, Month.of(2026, 10), settings).month == Month.of(2026, 10)


@pytest.mark.parametrize("month", list(ORIGINALS))
def test_real_originals_decode(month: Month) -> None:
    path = original(month)
    calendar, cpc_nino34 = ORIGINALS[month]
    # NCEI's 1854-2007 files are netCDF3 classic, those from 2008 netCDF4/HDF5: both must decode.
    assert path.read_bytes()[:4] == (b"CDF\x01" if calendar == "360_day" else b"\x89HDF")
    grid = decode_ersst(path, month)
    assert grid.month == month and grid.shape == (89, 180) and grid.values.dtype == np.float32
    assert np.array_equal(grid.lat, ERSST_LAT) and np.array_equal(grid.lon, ERSST_LON)
    assert grid.land_fraction == pytest.approx(0.3141, abs=1e-4)
    sea = grid.values[~grid.land_mask]
    assert sea.min() == pytest.approx(-1.8) and 25.0 < sea.max() < 36.0
    box = nino34_mean(grid)
    assert 23.0 < box < 30.0
    if cpc_nino34 is not None:
        assert box == pytest.approx(cpc_nino34, abs=0.03)


@pytest.mark.parametrize("month", list(ORIGINALS))
def test_original_decoded_as_another_month_is_rejected(month: Month) -> None:
    asked = month + 1
    with pytest.raises(InvalidFile, match=f"the file holds {month}, not {asked}") as caught:
        decode_ersst(original(month), asked)
    assert caught.value.file == str(original(month)) and caught.value.month == asked


@pytest.mark.parametrize("month", [Month.of(1854, 1), Month.of(1997, 12), Month.of(2008, 1)])
def test_write_ersst_netcdf_round_trip(month: Month, tmp_path: Path) -> None:
    grid = decode_ersst(original(month), month)
    path = tmp_path / original(month).name
    write_ersst_netcdf(grid, path)
    back = decode_ersst(path, month)
    assert np.array_equal(back.values, grid.values, equal_nan=True)
    with netcdf_file(path, "r", mmap=False) as nc:
        assert nc.variables["sst"].dimensions == ("time", "lev", "lat", "lon")
        assert nc.variables["sst"]._FillValue == np.float32(-999.0)
        assert nc.variables["sst"].units == b"degree_C"
        with netcdf_file(original(Month.of(1854, 1)), "r", mmap=False) as real:
            if month < Month.of(2008, 1):
                for key in ("units", "calendar"):
                    assert getattr(nc.variables["time"], key) == getattr(real.variables["time"], key)
            else:
                assert nc.variables["time"].units == b"days since 1854-01-15 00:00"
                assert nc.variables["time"].calendar == b"gregorian"


def test_written_months_decode_in_both_eras(tmp_path: Path) -> None:
    grid = decode_ersst(original(Month.of(1950, 1)), Month.of(1950, 1))
    for month in (Month.of(1854, 2), Month.of(1900, 12), Month.of(2007, 12), Month.of(2008, 2), Month.of(2026, 3)):
        path = tmp_path / f"{month}.nc"
        write_ersst_netcdf(SSTGrid(month, grid.lat, grid.lon, grid.values), path)
        assert decode_ersst(path, month).month == month


def test_bad_ersst_files_are_rejected(tmp_path: Path) -> None:
    month = Month.of(1950, 1)
    grid = decode_ersst(original(month), month)
    not_netcdf = tmp_path / "ersst.v5.195001.nc"
    not_netcdf.write_text("<html>404</html>")
    with pytest.raises(InvalidFile, match="not a readable netCDF file") as caught:
        decode_ersst(not_netcdf, month)
    assert str(caught.value).startswith(f"{not_netcdf}: 1950-01: ")

    kelvin = tmp_path / "kelvin.nc"
    write_ersst_netcdf(SSTGrid(month, grid.lat, grid.lon, grid.values + np.float32(273.15)), kelvin)
    with pytest.raises(InvalidFile, match="look like Kelvin"):
        decode_ersst(kelvin, month)

    coarse = tmp_path / "coarse.nc"
    write_ersst_netcdf(SSTGrid(month, grid.lat[::2], grid.lon[::2], grid.values[::2, ::2]), coarse)
    with pytest.raises(InvalidFile, match="45x90 grid, expected 89x180"):
        decode_ersst(coarse, month)


def test_stacked_record_matches_originals_and_cpc_nino34() -> None:
    grids = list(read_ersst_stack(need(ERSST_STACK)))
    assert len(grids) == 1884 and grids[0].month == Month.of(1854, 1) and grids[-1].month == Month.of(2010, 12)
    assert all(b.month == a.month + 1 for a, b in zip(grids, grids[1:]))
    by_month = {g.month: g for g in grids}
    for month in ORIGINALS:
        real = decode_ersst(original(month), month)
        assert np.array_equal(by_month[month].land_mask, real.land_mask)
        assert np.nanmax(np.abs(by_month[month].values - real.values)) <= 0.0006  # int16 packing

    cpc = parse_cpc_monthly(need(REALDATA / "cpc_ersst5.nino.mth.91-20_1950-01_2025-07.ascii").read_text(), "cpc")
    ours = pd.Series({pd.Period(str(g.month), freq="M"): nino34_mean(g) for g in grids if g.month.year >= 1950})
    theirs = cpc["nino34"].reindex(ours.index)
    assert len(ours) == 732 and np.corrcoef(ours, theirs)[0, 1] > 0.9999
    assert np.sqrt(np.mean((ours - theirs) ** 2)) < 0.015
