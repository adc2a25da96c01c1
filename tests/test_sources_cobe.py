"""COBE-SST GRIB1: the URL rule against JMA's real list, and the stand-in writer against the decoder."""

from __future__ import annotations

import time
from pathlib import Path

import eccodes
import numpy as np
import pytest
import xarray as xr

from enso.grids import SSTGrid
from enso.months import Month, month_range
from enso.sources import InvalidFile
from enso.sources.cobe import COBE_LAT, COBE_LON, cobe_url, decode_cobe, write_cobe_grib
from enso.sources.ersst import decode_ersst
from tests.realdata import ERSST_ORIGINALS, REALDATA, need

JMA_BASE = "https://ds.data.jma.go.jp/tcc/tcc/products/elnino/cobesst/gpvdata"
MONTH = Month.of(1997, 12)


@pytest.fixture(scope="module")
def field() -> SSTGrid:
    """A realistic 1° field: the real ERSST 1997-12 grid (2°) repeated onto COBE's cell centres."""
    ersst = decode_ersst(need(ERSST_ORIGINALS / "ersst.v5.199712.nc"), MONTH)
    rows = np.clip(np.rint((COBE_LAT + 88.0) / 2.0).astype(int), 0, ersst.lat.size - 1)
    cols = np.floor((COBE_LON + 1.0) / 2.0).astype(int) % ersst.lon.size
    return SSTGrid(MONTH, COBE_LAT.copy(), COBE_LON.copy(), ersst.values[np.ix_(rows, cols)])


def written(grid: SSTGrid, path: Path, **overrides) -> Path:
    write_cobe_grib(grid, path, **overrides)
    return path


def test_cobe_url_reproduces_jma_list_of_1560_urls() -> None:
    urls = need(REALDATA / "tcc_cobesst_grb_urls_1891-01_2020-12.txt").read_text().split()
    assert len(urls) == 1560
    assert [cobe_url(m, JMA_BASE) for m in month_range("1891-01", "2020-12")] == urls
    assert cobe_url("2021-03", JMA_BASE + "/") == f"{JMA_BASE}/2020-2029/sst202103.grb"
    with pytest.raises(ValueError, match="starts 1891-01"):
        cobe_url("1890-12", JMA_BASE)


def test_write_then_decode_round_trip(field: SSTGrid, tmp_path: Path) -> None:
    grid = decode_cobe(written(field, tmp_path / "sst199712.grb"), MONTH)
    assert grid.month == MONTH and grid.shape == (180, 360) and grid.values.dtype == np.float32
    assert np.array_equal(grid.lat, COBE_LAT) and np.array_equal(grid.lon, COBE_LON)
    assert np.array_equal(grid.land_mask, field.land_mask)
    assert 0.3 < grid.land_fraction < 0.34
    assert np.nanmax(np.abs(grid.values - field.values)) < 1e-3  # 16-bit packing of a 35 °C range


def test_written_file_has_the_real_files_metadata(field: SSTGrid, tmp_path: Path) -> None:
    """Parameter 80 of JMA (centre 34), GRIB1, dated YYYYMM01, south -> north, and the misleading 'K'."""
    with open(written(field, tmp_path / "sst199712.grb"), "rb") as stream:
        handle = eccodes.codes_grib_new_from_file(stream)
        keys = {k: eccodes.codes_get(handle, k) for k in (
            "edition", "centre", "table2Version", "indicatorOfParameter", "paramId", "units", "dataDate",
            "Ni", "Nj", "jScansPositively", "latitudeOfFirstGridPointInDegrees",
            "longitudeOfFirstGridPointInDegrees", "numberOfMissing")}
        assert eccodes.codes_grib_new_from_file(stream) is None  # one message only
        eccodes.codes_release(handle)
    assert keys == {
        "edition": 1, "centre": "rjtd", "table2Version": 3, "indicatorOfParameter": 80, "paramId": 3080,
        "units": "K", "dataDate": 19971201, "Ni": 360, "Nj": 180, "jScansPositively": 1,
        "latitudeOfFirstGridPointInDegrees": -89.5, "longitudeOfFirstGridPointInDegrees": 0.5,
        "numberOfMissing": int(field.land_mask.sum()),
    }


def test_cfgrib_reads_the_stand_in_with_the_same_values(field: SSTGrid, tmp_path: Path) -> None:
    path = written(field, tmp_path / "sst199712.grb")
    with xr.open_dataset(path, engine="cfgrib", backend_kwargs={"indexpath": ""}) as ds:
        (name,) = ds.data_vars
        sst = ds[name].sortby("latitude")
        assert sst.attrs["GRIB_paramId"] == 3080
        assert np.array_equal(np.isnan(sst.values), field.land_mask)
        assert np.nanmax(np.abs(sst.values - field.values)) < 1e-3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sst199712.grb"]  # no .idx left behind


def test_north_to_south_file_is_normalised(field: SSTGrid, tmp_path: Path) -> None:
    flipped = SSTGrid(MONTH, field.lat[::-1].copy(), field.lon.copy(), field.values[::-1].copy())
    path = written(flipped, tmp_path / "north_first.grb")
    with open(path, "rb") as stream:
        handle = eccodes.codes_grib_new_from_file(stream)
        assert eccodes.codes_get(handle, "jScansPositively") == 0
        assert eccodes.codes_get(handle, "latitudeOfFirstGridPointInDegrees") == 89.5
        eccodes.codes_release(handle)
    grid = decode_cobe(path, MONTH)
    assert np.array_equal(grid.lat, COBE_LAT)
    assert np.array_equal(grid.land_mask, field.land_mask)
    assert np.nanmax(np.abs(grid.values - field.values)) < 1e-3


def assert_names_file_and_month(error: InvalidFile, path: Path, month: Month) -> None:
    assert error.file == str(path) and error.month == month
    assert str(error).startswith(f"{path}: {month}: ")


def test_kelvin_field_is_rejected(field: SSTGrid, tmp_path: Path) -> None:
    kelvin = SSTGrid(MONTH, field.lat, field.lon, field.values + np.float32(273.15))
    path = written(kelvin, tmp_path / "kelvin.grb")
    with pytest.raises(InvalidFile, match="look like Kelvin") as caught:
        decode_cobe(path, MONTH)
    assert_names_file_and_month(caught.value, path, MONTH)


def test_wrong_grid_is_rejected(field: SSTGrid, tmp_path: Path) -> None:
    coarse = SSTGrid(MONTH, field.lat[::2] + 0.5, field.lon[::2] + 0.5, field.values[::2, ::2])
    path = written(coarse, tmp_path / "two_degree.grb")
    with pytest.raises(InvalidFile, match="90x180 grid, expected 180x360") as caught:
        decode_cobe(path, MONTH)
    assert_names_file_and_month(caught.value, path, MONTH)

    shifted = SSTGrid(MONTH, field.lat - 0.5, field.lon - 0.5, field.values)
    path = written(shifted, tmp_path / "shifted.grb")
    with pytest.raises(InvalidFile, match="latitudes -90..89 differ from the expected -89.5..89.5"):
        decode_cobe(path, MONTH)


def test_another_month_is_rejected(field: SSTGrid, tmp_path: Path) -> None:
    path = written(field, tmp_path / "sst199712.grb", dataDate=19971101)
    with pytest.raises(InvalidFile, match="the file holds 1997-11, not 1997-12") as caught:
        decode_cobe(path, MONTH)
    assert_names_file_and_month(caught.value, path, MONTH)


def test_implausible_land_fraction_is_rejected(field: SSTGrid, tmp_path: Path) -> None:
    no_land = SSTGrid(MONTH, field.lat, field.lon, np.nan_to_num(field.values, nan=10.0))
    with pytest.raises(InvalidFile, match=r"land \(missing\) fraction 0.000"):
        decode_cobe(written(no_land, tmp_path / "no_land.grb"), MONTH)


def test_other_parameter_is_rejected(field: SSTGrid, tmp_path: Path) -> None:
    path = written(field, tmp_path / "air.grb", table2Version=128, centre=98, indicatorOfParameter=167)
    with pytest.raises(InvalidFile, match="no GRIB message of parameter 80") as caught:
        decode_cobe(path, MONTH)
    assert_names_file_and_month(caught.value, path, MONTH)


def test_non_grib_and_truncated_files_are_rejected(field: SSTGrid, tmp_path: Path) -> None:
    html = tmp_path / "error_page.grb"
    html.write_text("<html><body>503 Service Unavailable</body></html>")
    with pytest.raises(InvalidFile, match="not a COBE-SST file") as caught:
        decode_cobe(html, MONTH)
    assert_names_file_and_month(caught.value, html, MONTH)

    whole = written(field, tmp_path / "whole.grb").read_bytes()
    cut = tmp_path / "cut.grb"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(InvalidFile, match="not a readable GRIB file") as caught:
        decode_cobe(cut, MONTH)
    assert_names_file_and_month(caught.value, cut, MONTH)


def test_writing_and_decoding_is_fast_enough_for_1560_months(field: SSTGrid, tmp_path: Path) -> None:
    months = month_range("1997-01", "1998-12")
    start = time.perf_counter()
    for month in months:
        grid = SSTGrid(month, field.lat, field.lon, field.values)
        decode_cobe(written(grid, tmp_path / f"sst{month.year}{month.month:02d}.grb"), month)
    per_month = (time.perf_counter() - start) / len(months)
    assert per_month < 0.05, f"{per_month * 1000:.1f} ms per month"
