"""The relative Niño 3.4 index: CPC's RONI files (parsers, writers) and the index computed from SST grids.

No real RONI file is available offline: the samples below follow the documented
layouts (``data-formats.md`` 2e) in the style of CPC's real files in ../shared/realdata
(``oni.ascii.txt``, ``detrend.nino34.ascii.txt``). The index computed from grids is
checked against its definition on the real ERSSTv5 record.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from enso import nino34
from enso.grids import SSTGrid
from enso.mirror import RELATIVE_INDEX_FILE, MirrorServer, synthetic_relative_index, write_mirror
from enso.months import Month
from enso.relative import area_means, relative_index, relative_index_from_grids
from enso.sources import InvalidFile
from enso.sources.ersst import read_ersst_stack
from enso.sources.index import (
    FORMATS,
    complete_index,
    format_cpc_rnino34,
    format_cpc_roni,
    parse_cpc_oni,
    parse_cpc_rnino34,
    parse_cpc_roni,
    parse_index,
)
from enso.synthetic import synthetic_climate
from tests.realdata import ERSST_STACK, REALDATA, need

#: CPC's monthly relative Niño 3.4 (``Rnino34.ascii.txt``) starts in December 1949 so that DJF 1950 has a RONI.
RNINO34_SAMPLE = """\
 YR   MTH   ANOM
1949  12   -1.22
1950   1   -1.21
1950   2   -1.14
1950   3   -1.08
1950   4   -1.05
1950   5   -0.93
1950   6   -0.80
1950   7   -0.72
1950   8   -0.68
1950   9   -0.71
1950  10   -0.79
1950  11   -0.88
1950  12   -0.97
"""
#: The seasonal RONI of the same months (3-month means of the monthly values, rounded); NDJ 1950 needs 1951-01.
RONI_SAMPLE = """\
 SEAS  YR   ANOM
  DJF 1950  -1.19
  JFM 1950  -1.14
  FMA 1950  -1.09
  MAM 1950  -1.02
  AMJ 1950  -0.93
  MJJ 1950  -0.82
  JJA 1950  -0.73
  JAS 1950  -0.70
  ASO 1950  -0.73
  SON 1950  -0.79
  OND 1950  -0.88
"""
#: The newest rows as reported in 2026 (RONI MJJ 2026 = 0.98 while ONI MJJ 2026 = 1.39).
RONI_2026_TAIL = """\
 SEAS  YR   ANOM
  AMJ 2026   0.61
  MJJ 2026   0.98
  JJA 2026   1.21
"""


def p(text: str) -> pd.Period:
    return pd.Period(text, freq="M")


# ----------------------------------------------------------------------------- parsers


def test_monthly_relative_file_is_an_index_table_from_december_1949() -> None:
    table = parse_cpc_rnino34(RNINO34_SAMPLE, "Rnino34.ascii.txt")
    assert list(table.columns) == ["nino34", "anomaly", "oni", "phase"]
    assert (table.index[0], table.index[-1], len(table)) == (p("1949-12"), p("1950-12"), 13)
    assert table.loc[p("1949-12"), "anomaly"] == -1.22 and table.loc[p("1950-12"), "anomaly"] == -0.97
    assert table["nino34"].isna().all() and table["oni"].isna().all()
    assert table.attrs == {"format": "cpc-rnino34", "file": "Rnino34.ascii.txt", "relative": True,
                           "anomaly_base": "1991-2020"}


def test_seasonal_roni_maps_seasons_to_their_centre_month() -> None:
    table = parse_cpc_roni(RONI_SAMPLE, "RONI.ascii.txt")
    assert (table.index[0], table.index[-1], len(table)) == (p("1950-01"), p("1950-11"), 11)
    assert table.loc[p("1950-01"), "oni"] == -1.19  # DJF 1950: Dec 1949 .. Feb 1950
    assert table.loc[p("1950-11"), "oni"] == -0.88  # OND 1950
    assert table["anomaly"].isna().all() and table.attrs["relative"] is True
    tail = complete_index(parse_cpc_roni(RONI_2026_TAIL, "RONI.ascii.txt"))
    assert tail.loc[p("2026-06"), "oni"] == 0.98 and tail.loc[p("2026-06"), "phase"] == nino34.EL_NINO
    assert tail.loc[p("2026-05"), "phase"] == nino34.EL_NINO and tail.attrs["derived"] == ["phase"]


def test_roni_is_the_running_mean_of_the_monthly_relative_index() -> None:
    """CPC's two products agree: 3-month means of Rnino34 are RONI, up to the two files' 0.01 rounding."""
    monthly = complete_index(parse_index(RNINO34_SAMPLE, "cpc-rnino34", "Rnino34.ascii.txt"))
    seasonal = parse_index(RONI_SAMPLE, "cpc-roni", "RONI.ascii.txt")
    assert monthly.attrs["derived"] == ["oni", "phase"]
    diff = (monthly["oni"] - seasonal["oni"]).dropna()
    assert len(diff) == 11 and diff.abs().max() <= 0.005 + 1e-12
    assert (monthly.loc[p("1950-01"):p("1950-11"), "phase"] == nino34.LA_NINA).all()
    assert math.isnan(monthly.loc[p("1950-12"), "oni"]) and monthly.loc[p("1950-12"), "phase"] is None


def test_every_format_name_fits_the_stores_columns() -> None:
    assert {"cpc-rnino34", "cpc-roni", "cpc-detrend-sst"} <= set(FORMATS)
    assert all(len(name) <= 16 for name in FORMATS)  # index_vintage.format, index_observation.source


@pytest.mark.parametrize("parser, text, problem", [
    (parse_cpc_roni, RONI_SAMPLE.replace(" SEAS  YR   ANOM", " SEAS  YR   TOTAL   ANOM"),
     "line 1: expected the header 'SEAS  YR   ANOM'"),
    (parse_cpc_oni, RONI_SAMPLE, "line 1: expected the header 'SEAS  YR   TOTAL   ANOM'"),
    (parse_cpc_rnino34, RNINO34_SAMPLE.replace(" YR   MTH   ANOM", " YR   MON  TOTAL ClimAdjust ANOM"),
     "line 1: expected the header 'YR   MTH   ANOM'"),
    (parse_cpc_roni, RONI_SAMPLE.replace("  JFM 1950", "  JMF 1950"), "line 3: expected 'SEAS YR ANOM'"),
    (parse_cpc_roni, RONI_SAMPLE.replace("  JFM 1950  -1.14", "  JFM 1950  -1.14  0.3"),
     "line 3: expected 'SEAS YR ANOM'"),
    (parse_cpc_rnino34, RNINO34_SAMPLE.replace("1950   3   -1.08", "1950  13   -1.08"), "line 5: year '1950' month "),
    (parse_cpc_rnino34, RNINO34_SAMPLE.replace("1950   3   -1.08", "1950   3"), "line 5: 2 fields, expected 3"),
])
def test_changed_layouts_are_rejected_naming_the_line(parser, text: str, problem: str) -> None:
    with pytest.raises(InvalidFile, match=problem) as caught:
        parser(text, "cpc.txt")
    assert caught.value.file == "cpc.txt" and caught.value.month is None


@pytest.mark.parametrize("parser, text, month, problem", [
    (parse_cpc_rnino34, RNINO34_SAMPLE.replace("1950   3   -1.08", "1950   3   -1.o8"), "1950-03", "not a number"),
    (parse_cpc_rnino34, RNINO34_SAMPLE.replace("1950   3   -1.08", "1950   3   10.80"), "1950-03",
     "relative Niño 3.4 anomaly 10.8 is outside the plausible -6..6"),
    (parse_cpc_rnino34, RNINO34_SAMPLE.replace("1950   3   -1.08", "1950   2   -1.08"), "1950-02",
     "strictly increasing"),
    (parse_cpc_roni, RONI_SAMPLE.replace("  MAM 1950  -1.02", "  MAM 1950  -9.02"), "1950-04", "RONI -9.02 is outside"),
    (parse_cpc_roni, RONI_SAMPLE.replace("  MAM 1950", "  JFM 1950"), "1950-02", "strictly increasing"),
])
def test_bad_rows_name_the_file_month_and_problem(parser, text: str, month: str, problem: str) -> None:
    with pytest.raises(InvalidFile, match=problem) as caught:
        parser(text, "cpc.txt")
    assert caught.value.month == Month.parse(month) and str(caught.value).startswith(f"cpc.txt: {month}: ")


def test_missing_values_are_no_rows_and_an_empty_file_is_rejected() -> None:
    table = parse_cpc_rnino34(RNINO34_SAMPLE.replace("1950   6   -0.80", "1950   6  -99.99"), "x")
    assert p("1950-06") not in table.index and len(table) == 12
    assert complete_index(table)["oni"].loc[p("1950-05"):p("1950-07")].isna().all()  # no mean across a gap
    with pytest.raises(InvalidFile, match="holds no month with a value"):
        parse_cpc_rnino34(" YR   MTH   ANOM\n1950   1  -99.99\n", "x")


# ----------------------------------------------------------------------------- writers


def test_writers_round_trip_in_cpc_layout() -> None:
    monthly = parse_cpc_rnino34(RNINO34_SAMPLE, "x")
    assert format_cpc_rnino34(monthly["anomaly"]) == RNINO34_SAMPLE
    roni = complete_index(monthly)["oni"]
    text = format_cpc_roni(roni)
    assert text.splitlines()[:2] == RONI_SAMPLE.splitlines()[:2] and len(text.splitlines()) == 12
    pd.testing.assert_series_equal(parse_cpc_roni(text, "x")["oni"], roni.dropna().round(2), check_names=False)
    gap = pd.Series([0.123, np.nan, -0.456], index=pd.period_range("2026-01", "2026-03", freq="M"))
    assert format_cpc_rnino34(gap).splitlines()[1:] == ["2026   1    0.12", "2026   2  -99.99", "2026   3   -0.46"]


# ----------------------------------------------------------------------------- the index from grids (synthetic)


def _grid(month: Month, values: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> SSTGrid:
    return SSTGrid(month, lat, lon, values.astype(np.float32))


def test_area_means_refuse_a_changing_ocean_or_grid() -> None:
    climate = synthetic_climate(1, 2.0)
    first, second = climate.grid("2000-01"), climate.grid("2000-02")
    means = area_means([second, first])
    assert list(means.index) == [p("2000-01"), p("2000-02")]  # sorted
    assert means.loc[p("2000-01"), "nino34"] == pytest.approx(climate.nino34("2000-01", "2000-01").iloc[0], abs=1e-4)
    flooded = second.values.copy()
    flooded[np.isnan(flooded) & (np.abs(second.lat)[:, None] < 10)] = 27.0  # land cells of the tropics turn to sea
    with pytest.raises(ValueError, match="2000-02 has .* land/ocean cell"):
        area_means([first, _grid(Month.of(2000, 2), flooded, second.lat, second.lon)])
    with pytest.raises(ValueError, match="not on the grid of 2000-01"):
        area_means([first, synthetic_climate(1, 1.0).grid("2000-02")])
    with pytest.raises(ValueError, match="more than once: 2000-01"):
        area_means([first, first])


def test_the_base_and_scale_periods_must_be_covered() -> None:
    means = area_means(synthetic_climate(1, 2.0).grids("1991-01", "2000-12"))
    with pytest.raises(ValueError, match=r"lack 240 month\(s\) of the base period 1991-2020 \(first 2001-01\)"):
        relative_index(means, base=(1991, 2020), scale_period=(1991, 2000))
    with pytest.raises(ValueError, match="scale period 1950-2020"):
        relative_index(means, base=(1991, 2000))
    made = relative_index(means, base=(1991, 2000), scale_period=(1991, 2000))
    assert made.base == (1991, 2000) and made.index_table().attrs["anomaly_base"] == "1991-2000"


def test_a_uniform_warming_of_the_tropics_leaves_the_relative_difference_unchanged() -> None:
    """The definition: warming every cell by the same amount moves N and T alike, so N - T stays."""
    climate = synthetic_climate(2, 2.0)
    grids = list(climate.grids("1991-01", "2000-12"))
    warmed = [_grid(g.month, g.values + np.float32(0.02 * i / 12), g.lat, g.lon) for i, g in enumerate(grids)]
    plain = relative_index_from_grids(grids, base=(1991, 2000), scale_period=(1991, 2000)).table
    warm = relative_index_from_grids(warmed, base=(1991, 2000), scale_period=(1991, 2000)).table
    assert (warm["nino34_anomaly"] - plain["nino34_anomaly"]).iloc[-12:].mean() > 0.05
    np.testing.assert_allclose(warm["difference"], plain["difference"], atol=2e-4)
    assert warm["relative_anomaly"].corr(plain["relative_anomaly"]) > 0.9999


# ----------------------------------------------------------------------------- the index from grids (real ERSSTv5)

#: The ERSSTv5 record ends in 2010: CPC's 1991-2020 base and 1950-2020 scale period are cut to what it has.
BASE, SCALE = (1981, 2010), (1950, 2010)


@pytest.fixture(scope="module")
def ersst_relative():
    return relative_index_from_grids(read_ersst_stack(need(ERSST_STACK)), base=BASE, scale_period=SCALE)


@pytest.fixture(scope="module")
def independent() -> pd.DataFrame:
    """The definition computed with xarray alone from the stacked file: weighted box means, anomalies, scaling."""
    sst = xr.open_dataset(need(ERSST_STACK))["sst"].load()
    weights = np.cos(np.deg2rad(sst.lat))
    nino = sst.sel(lat=slice(-5, 5), lon=slice(190, 240)).weighted(weights).mean(("lat", "lon"))
    tropics = sst.sel(lat=slice(-20, 20)).weighted(weights).mean(("lat", "lon"))

    def anomaly(series: xr.DataArray) -> xr.DataArray:
        base = series.sel(time=slice(f"{BASE[0]}-01", f"{BASE[1]}-12"))
        return series.groupby("time.month") - base.groupby("time.month").mean()

    n, difference = anomaly(nino), anomaly(nino) - anomaly(tropics)
    in_scale = dict(time=slice(f"{SCALE[0]}-01", f"{SCALE[1]}-12"))
    factor = n.sel(**in_scale).groupby("time.month").std() / difference.sel(**in_scale).groupby("time.month").std()
    relative = difference.groupby("time.month") * factor
    roni = relative.rolling(time=3, center=True).mean()
    index = pd.PeriodIndex(pd.DatetimeIndex(sst.time.values), freq="M")
    return pd.DataFrame({"nino34_anomaly": n.values, "relative_anomaly": relative.values, "roni": roni.values,
                         "scale": factor.sel(month=sst.time.dt.month).values}, index=index)


def test_it_equals_an_independent_computation_of_the_definition(ersst_relative, independent) -> None:
    table = ersst_relative.table
    assert len(table) == 1884 and table.index[0] == p("1854-01") and table.index[-1] == p("2010-12")
    for column in ("nino34_anomaly", "relative_anomaly", "roni"):
        np.testing.assert_allclose(table[column], independent[column], atol=2e-5, err_msg=column)
    np.testing.assert_allclose(ersst_relative.scale.reindex(table.index.month), independent["scale"], rtol=1e-6)


def test_scaling_gives_each_calendar_month_the_traditional_indexs_spread(ersst_relative) -> None:
    table = ersst_relative.table.loc[p(f"{SCALE[0]}-01"):p(f"{SCALE[1]}-12")]
    by_month = table.groupby(table.index.month)
    np.testing.assert_allclose(by_month["relative_anomaly"].std(), by_month["nino34_anomaly"].std(), rtol=1e-9)
    scale = ersst_relative.scale
    # Physically: the tropical mean damps N - T most in boreal spring; CPC's factors (backed out of its
    # ERSSTv6 files) are about 1.39 in April, 1.25 in June and 1.17 in August.
    assert scale.between(1.1, 1.45).all() and scale[4] > scale[6] > scale[8]
    assert abs(scale[4] - 1.39) < 0.08 and abs(scale[6] - 1.25) < 0.05 and abs(scale[8] - 1.17) < 0.05


def test_it_follows_the_traditional_index_month_to_month(ersst_relative) -> None:
    table = ersst_relative.table.loc[p("1950-01"):p("2010-12")]
    assert table["relative_anomaly"].corr(table["nino34_anomaly"]) > 0.93
    oni = nino34.oni(ersst_relative.table["nino34_anomaly"]).loc[p("1950-01"):p("2010-12")]
    assert table["roni"].corr(oni) > 0.95
    cpc = parse_index(need(REALDATA / "cpc_ersst5.nino.mth.91-20_1950-01_2025-07.ascii").read_text(),
                      "cpc-monthly", "cpc")
    assert table["nino34"].corr(cpc["nino34"].loc[table.index]) > 0.9999  # the same Niño 3.4 as CPC's file


def test_it_differs_from_the_traditional_index_by_the_tropical_mean_trend(ersst_relative) -> None:
    table = ersst_relative.table.drop(columns="phase")
    decades = table.groupby(table.index.year // 10).mean()
    removed = decades["nino34_anomaly"] - decades["relative_anomaly"]
    assert removed.corr(decades["tropical_anomaly"]) > 0.95  # what RONI takes out is the tropical warming
    assert decades["relative_anomaly"].corr(decades["tropical_anomaly"]) < 0.0  # and none of it is left
    years = np.arange(len(table)) / 1200.0
    trend = {c: np.polyfit(years, table[c], 1)[0] for c in ("nino34_anomaly", "tropical_anomaly", "relative_anomaly")}
    assert trend["nino34_anomaly"] > 0.4 and trend["relative_anomaly"] < 0.4 * trend["nino34_anomaly"]  # °C/century
    early = table.loc[p("1854-01"):p("1900-12")]
    assert early["nino34_anomaly"].mean() < -0.5 and abs(early["relative_anomaly"].mean()) < 0.25
    roni_phases = ersst_relative.table["phase"].loc[p("1854-01"):p("1949-12")].value_counts()
    oni_phases = nino34.phases_of(nino34.oni(table["nino34_anomaly"])).loc[p("1854-01"):p("1949-12")].value_counts()
    assert oni_phases[nino34.LA_NINA] > 1.5 * roni_phases[nino34.LA_NINA]  # the cold past is not one long La Niña


# ----------------------------------------------------------------------------- the mirror's relative file


def test_the_mirror_serves_a_cpc_relative_file_made_from_its_grids(tmp_path) -> None:
    manifest = write_mirror(tmp_path, "2020-01", "2020-03", seed=4, relative_index=True)
    assert manifest.relative_index_file == tmp_path / RELATIVE_INDEX_FILE
    assert manifest.written == 5 and manifest.relative_index_file in manifest.files
    expected = synthetic_relative_index(4, "2020-01", "2020-03")
    with MirrorServer(tmp_path) as srv:
        import requests

        served = requests.get(srv.relative_index_url, timeout=10)
    assert served.status_code == 200
    table = parse_index(served.text, "cpc-rnino34", srv.relative_index_url)
    assert list(table.index) == list(expected.index)
    np.testing.assert_allclose(table["anomaly"], expected, atol=0.005)
    again = write_mirror(tmp_path, "2020-01", "2020-03", seed=4, relative_index=True)
    assert again.written == 0 and again.unchanged == 5
