"""The synthetic climate: deterministic, realistic fields (land, seasons, trend) and a realistic ENSO."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from enso import nino34
from enso.grids import box_mean, nino34_mean
from enso.months import Month
from enso.synthetic import (
    SEA_ICE_SST,
    SyntheticClimate,
    grid_axes,
    synthetic_climate,
    synthetic_grids,
    synthetic_index_table,
    synthetic_nino34,
)

SEED = 11


@pytest.fixture(scope="module")
def climate() -> SyntheticClimate:
    return synthetic_climate(SEED)


def ocean_mean(values: np.ndarray, climate: SyntheticClimate, lat_range: tuple[float, float]) -> float:
    """Area-weighted mean over the ocean cells of a latitude band."""
    return float(box_mean(values, climate.lat, climate.lon, lat_range, (0.0, 360.0)))


def detrended_anomaly(seed: int) -> pd.Series:
    """Niño 3.4 anomaly 1891-2020 (1991-2020 base) minus its linear trend."""
    anomaly = synthetic_index_table("1891-01", "2020-12", seed)["anomaly"]
    t = np.arange(anomaly.size)
    return anomaly - np.polyval(np.polyfit(t, anomaly.to_numpy(), 1), t)


def test_a_month_is_the_same_alone_in_a_range_and_in_a_new_instance(climate: SyntheticClimate) -> None:
    in_range = list(synthetic_grids("1999-11", "2000-06", seed=SEED))
    assert [str(g.month) for g in in_range] == [str(m) for m in (Month.of(1999, 11) + k for k in range(8))]
    alone = SyntheticClimate(seed=SEED).grid("2000-05")
    np.testing.assert_array_equal(in_range[6].values, alone.values)
    assert in_range[6].values.dtype == np.float32
    other_seed = SyntheticClimate(seed=SEED + 1).grid("2000-05")
    assert np.nanmax(np.abs(other_seed.values - alone.values)) > 0.5
    with pytest.raises(ValueError, match="1849-12 is outside"):
        climate.grid("1849-12")


def test_land_is_realistic_and_constant(climate: SyntheticClimate) -> None:
    grids = [climate.grid(m) for m in ("1891-01", "1955-07", "2020-12", "2100-12")]
    for grid in grids:
        np.testing.assert_array_equal(grid.land_mask, grids[0].land_mask)
    land, lat, lon = grids[0].land_mask, climate.lat, climate.lon
    assert grids[0].shape == (180, 360) and lat[0] == -89.5 and lon[0] == 0.5
    assert 0.29 <= land.mean() <= 0.33
    nino34_box = np.ix_((lat >= -5) & (lat <= 5), (lon >= 190) & (lon <= 240))
    assert not land[nino34_box].any()
    equatorial_pacific = np.ix_(np.abs(lat) <= 2, (lon >= 120) & (lon <= 280))
    assert not land[equatorial_pacific].any()
    assert land[lat < -79].all() and land[lat < -70].mean() > 0.8  # the Ross and Weddell Seas reach 78°S
    assert land[lat > 85].mean() < 0.1  # Arctic Ocean
    for name, lat0, lon0 in (("Sahara", 22.5, 10.5), ("Siberia", 60.5, 100.5), ("Amazon", -5.5, 300.5),
                             ("North America", 40.5, 260.5), ("Australia", -25.5, 130.5)):
        assert land[lat == lat0, lon == lon0].all(), name
    for name, lat0, lon0 in (("Atlantic", 30.5, 320.5), ("Indian Ocean", -20.5, 80.5), ("Pacific", 30.5, 200.5)):
        assert not land[lat == lat0, lon == lon0].any(), name


def test_values_lie_between_sea_ice_and_33_degrees(climate: SyntheticClimate) -> None:
    for grid in climate.grids("2019-01", "2020-12"):
        assert np.nanmin(grid.values) >= SEA_ICE_SST
        assert np.nanmax(grid.values) <= 33.0
    february, august = climate.grid("2020-02"), climate.grid("2020-08")
    assert np.nanmin(february.values[climate.lat > 70]) == pytest.approx(SEA_ICE_SST)  # Arctic sea ice
    assert np.nanmin(august.values[climate.lat < -60]) == pytest.approx(SEA_ICE_SST)  # Antarctic sea ice
    tropics = climate.grid("2020-03").values[np.abs(climate.lat) < 10]
    assert 27.0 < np.nanmean(tropics) < 29.5


def test_seasonal_cycle_is_opposite_in_the_hemispheres(climate: SyntheticClimate) -> None:
    february, august = climate.grid("2005-02").values, climate.grid("2005-08").values
    assert ocean_mean(august, climate, (30, 60)) - ocean_mean(february, climate, (30, 60)) > 3.0
    assert ocean_mean(february, climate, (-60, -30)) - ocean_mean(august, climate, (-60, -30)) > 1.5
    assert abs(ocean_mean(august, climate, (-5, 5)) - ocean_mean(february, climate, (-5, 5))) < 1.0


def test_tropical_pacific_has_a_warm_pool_and_a_cold_tongue(climate: SyntheticClimate) -> None:
    mean = np.mean([climate.grid(f"{year}-{m:02d}").values for year in range(2001, 2011) for m in (1, 4, 7, 10)],
                      axis=0)
    lat, lon = climate.lat, climate.lon
    warm_pool = float(box_mean(mean, lat, lon, (-5, 5), (130, 160)))
    cold_tongue = float(box_mean(mean, lat, lon, (-3, 3), (250, 270)))
    assert 28.5 < warm_pool < 30.5
    assert warm_pool - cold_tongue > 2.5


def test_warming_of_about_six_tenths_since_1891_1920(climate: SyntheticClimate) -> None:
    def period_mean(first: int, last: int) -> float:
        return np.mean([ocean_mean(climate.grid(f"{y}-{m:02d}").values, climate, (-60, 60))
                        for y in range(first, last + 1) for m in (1, 7)])

    assert 0.3 <= period_mean(1991, 2020) - period_mean(1891, 1920) <= 1.0


def test_nino34_series_equals_the_box_mean_of_the_fields(climate: SyntheticClimate) -> None:
    series = synthetic_nino34("2015-01", "2016-12", seed=SEED)
    assert series.index.name == "month" and series.index.freqstr == "M" and series.size == 24
    from_fields = [nino34_mean(g) for g in synthetic_grids("2015-01", "2016-12", seed=SEED)]
    np.testing.assert_allclose(series.to_numpy(), from_fields, atol=1e-3)
    assert 25.0 < series.min() and series.max() < 31.0


def test_index_table_is_an_index_table_on_the_1991_2020_base() -> None:
    table = synthetic_index_table("1891-01", "2020-12", seed=SEED)
    assert list(table.columns) == ["nino34", "anomaly", "oni", "phase"]
    assert table.index.name == "month" and isinstance(table.index, pd.PeriodIndex)
    assert table.index[0] == pd.Period("1891-01", "M") and table.index[-1] == pd.Period("2020-12", "M")
    assert table.attrs["anomaly_base"] == "1991-2020"
    base = table.loc["1991":"2020"]
    np.testing.assert_allclose(base["anomaly"].groupby(base.index.month).mean(), 0.0, atol=1e-9)
    np.testing.assert_allclose(table["anomaly"], nino34.anomaly(table["nino34"]), atol=1e-9)
    np.testing.assert_allclose(table["oni"].iloc[1:-1],
                               table["anomaly"].rolling(3, center=True).mean().iloc[1:-1], atol=1e-9)
    assert np.isnan(table["oni"].iloc[-1]) and table["phase"].iloc[-1] is None
    assert list(table["phase"].iloc[:-1]) == list(nino34.phases_of(table["oni"].iloc[:-1]))

    short = synthetic_index_table("2000-01", "2003-06", seed=SEED)
    assert short.attrs["anomaly_base"] == "1991-2020"
    pd.testing.assert_frame_equal(short.iloc[:-1], table.loc["2000-01":"2003-05"], check_freq=False)
    assert not np.isnan(short["oni"].iloc[0])  # the month before the range is known to the generator


@pytest.mark.parametrize("seed", [0, 1])
def test_enso_statistics_over_1891_2020_are_realistic(seed: int) -> None:
    raw = synthetic_index_table("1891-01", "2020-12", seed)["anomaly"]
    assert 0.6 <= raw.std() <= 1.1
    anomaly = detrended_anomaly(seed)
    x, calendar = anomaly.to_numpy(), anomaly.index.month.to_numpy()

    autocorrelation = [np.corrcoef(x[:-lag], x[lag:])[0, 1] for lag in range(1, 37)]
    first_negative = next(lag for lag, r in enumerate(autocorrelation, start=1) if r < 0)
    assert 8 <= first_negative <= 30
    assert autocorrelation[0] > 0.9

    frequency = np.fft.rfftfreq(x.size, d=1 / 12)  # cycles per year
    power = np.convolve(np.abs(np.fft.rfft(x)) ** 2, np.ones(7) / 7, mode="same")
    band = (frequency > 1 / 15) & (frequency < 2)
    assert 2.0 <= 1 / frequency[band][np.argmax(power[band])] <= 7.0

    std_by_month = pd.Series(x).groupby(calendar).std()
    assert std_by_month.idxmax() in (11, 12, 1)
    assert std_by_month[12] > 1.3 * std_by_month[[4, 5]].mean()

    def lag3_correlation(init_month: int) -> float:
        starts = np.flatnonzero(calendar == init_month)
        starts = starts[starts + 3 < x.size]
        return float(np.corrcoef(x[starts], x[starts + 3])[0, 1])

    assert lag3_correlation(4) < lag3_correlation(9) - 0.1

    oni = pd.Series(x).rolling(3, center=True).mean().dropna()
    assert 0.15 <= (oni >= 0.5).mean() <= 0.35
    assert 0.15 <= (oni <= -0.5).mean() <= 0.35


def test_two_degree_grid_has_the_ersst_layout_and_the_same_enso(climate: SyntheticClimate) -> None:
    lat, lon = grid_axes(2.0)
    assert (lat[0], lat[-1], lat.size, lon[0], lon[-1], lon.size) == (-88.0, 88.0, 89, 0.0, 358.0, 180)
    coarse = next(synthetic_grids("1997-12", "1997-12", seed=SEED, resolution_deg=2.0))
    assert coarse.shape == (89, 180) and 0.28 <= coarse.land_fraction <= 0.34
    fine = synthetic_nino34("1980-01", "2000-12", seed=SEED)
    on_coarse = synthetic_nino34("1980-01", "2000-12", seed=SEED, resolution_deg=2.0)
    assert np.corrcoef(fine, on_coarse)[0, 1] > 0.98
    assert nino34_mean(coarse) == pytest.approx(on_coarse["1997-12"], abs=1e-3)
    with pytest.raises(ValueError, match="must divide 180"):
        grid_axes(7.0)
