"""A seeded synthetic climate: realistic monthly SST grids and their Niño 3.4 index.

Tests, the offline demo and the benchmarks share this generator, so that the
whole system can run without the providers. A month's field is the sum of

* a **climatology** that depends on latitude (about 28.5 °C at the thermal
  equator, sea ice at -1.8 °C near the poles), with a seasonal cycle that is
  opposite in the two hemispheres and largest in mid-latitudes, a west Pacific
  warm pool, an equatorial cold tongue and coastal upwelling;
* a **warming trend**, nonlinear in time (+0.6 °C from 1891-1920 to
  1991-2020 in the global ocean mean, weaker in the cold tongue);
* an **ENSO mode**: a recharge oscillator with seasonally varying growth rate
  and state-dependent noise (irregular events every 2-7 years, peaks locked to
  Nov-Jan, a spring persistence barrier), times a pattern centred in the central
  and eastern equatorial Pacific with a horseshoe of opposite sign;
* **red noise**: a few dozen regional patterns with AR(1) time series, plus
  small-scale noise, larger in mid-latitudes than in the equatorial Pacific;

with land (:mod:`enso.geography`) as NaN, constant in time, and values clipped
at the freezing point of sea water.

Every time series is simulated once for the whole span 1850-01..2100-12 from
the seed, so a month's field is the same whether it is generated alone or in a
range, and the Niño 3.4 index is computed from the components' box means
without building the fields (it equals :func:`enso.grids.nino34_mean` of the
fields to float32 rounding).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter
from scipy.signal import lfilter

from enso import nino34 as nino34_rules
from enso.geography import land_mask_on
from enso.grids import SSTGrid, box_mean
from enso.months import Month, month_range, to_periods

FIRST_MONTH = Month.of(1850, 1)
LAST_MONTH = Month.of(2100, 12)
#: Freezing point of sea water: the SST of sea ice, and the lowest value of a field.
SEA_ICE_SST = -1.8
#: Standard deviation of the ENSO mode's Niño 3.4 box mean over 1850-2100 (°C).
ENSO_STD = 0.8
#: Warming of the global ocean mean from 1891-1920 to 1991-2020 (°C).
WARMING_1891_1920_TO_1991_2020 = 0.6
#: e-folding time of the (exponential) warming curve, years.
WARMING_TIMESCALE_YEARS = 70.0

_N_MONTHS = LAST_MONTH.months_since(FIRST_MONTH) + 1
_SPIN_UP_MONTHS = 240  # whole years: the simulations start in a January
_N_MODES = 48
_N_TEXTURES = 32
#: Substreams of the seed: each component draws from its own, so changing one leaves the others alone.
_STREAM_ENSO, _STREAM_MODE_SERIES, _STREAM_MODE_SHAPES, _STREAM_TEXTURE_PICKS, _STREAM_TEXTURES = range(1, 6)


@dataclass(frozen=True)
class RechargeOscillator:
    """Parameters of the ENSO model (Jin's recharge oscillator), rates per month.

    ``dT = (R(t) T + F h) dt + noise``, ``dh = (-eps h - F T) dt``: T is the
    eastern Pacific temperature, h the western thermocline depth. The growth
    rate ``R`` peaks in ``coupling_peak_month`` (October) and is most negative in
    April, which locks events to the end of the year and makes spring forecasts
    hard. The noise is red (westerly wind bursts) and grows with T, so El Niño
    events are larger than La Niña events.
    """

    growth_mean: float = -0.1
    growth_seasonal: float = 0.17
    coupling_peak_month: float = 10.0
    recharge_coupling: float = 0.12
    thermocline_damping: float = 0.03
    noise: float = 0.12
    noise_memory: float = 0.5
    state_dependence: float = 0.25
    steps_per_month: int = 4

    def simulate(self, n_months: int, rng: np.random.Generator) -> np.ndarray:
        """Monthly means of T over ``n_months`` from a January, after a spin-up from rest (arbitrary units)."""
        steps = self.steps_per_month
        dt = 1.0 / steps
        memory = self.noise_memory ** dt
        innovation = np.sqrt(1.0 - memory ** 2)
        noise_scale = self.noise * np.sqrt(dt)
        shocks = rng.standard_normal((_SPIN_UP_MONTHS + n_months) * steps)
        phase = 2.0 * np.pi * (np.arange(12 * steps) * dt - (self.coupling_peak_month - 1.0)) / 12.0
        growth = self.growth_mean + self.growth_seasonal * np.cos(phase)
        temperature, depth, wind = 0.0, 0.0, 0.0
        out = np.empty(_SPIN_UP_MONTHS + n_months)
        for month in range(out.size):
            total = 0.0
            for step in range(steps):
                k = month * steps + step
                wind = memory * wind + innovation * shocks[k]
                forcing = noise_scale * (1.0 + self.state_dependence * temperature) * wind
                temperature, depth = (
                    temperature + (growth[k % growth.size] * temperature + self.recharge_coupling * depth) * dt
                    + forcing,
                    depth + (-self.thermocline_damping * depth - self.recharge_coupling * temperature) * dt,
                )
                total += temperature
            out[month] = total / steps
        return out[_SPIN_UP_MONTHS:]


def grid_axes(resolution_deg: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Latitudes and longitudes (ascending) of the generator's grid.

    1° gives the COBE-SST grid (cell centres -89.5..89.5, 0.5..359.5), 2° the
    ERSSTv5 grid (-88..88, 0..358); any other spacing that divides 180 gives
    cell centres like COBE's.
    """
    if resolution_deg <= 0 or abs(180.0 / resolution_deg - round(180.0 / resolution_deg)) > 1e-9:
        raise ValueError(f"resolution {resolution_deg}° must divide 180°")
    if resolution_deg == 2.0:
        return np.arange(-88.0, 88.0 + 1e-9, 2.0), np.arange(0.0, 360.0 - 1e-9, 2.0)
    half = resolution_deg / 2.0
    return (np.arange(-90.0 + half, 90.0, resolution_deg), np.arange(half, 360.0, resolution_deg))


class SyntheticClimate:
    """The synthetic climate of one seed on one grid: fields and Niño 3.4 for any month 1850-2100.

    Building it costs a fraction of a second (patterns, land mask, all time
    series); a month's field then costs about a millisecond. Use
    :func:`synthetic_climate` to share one instance per seed and resolution.
    """

    def __init__(self, seed: int = 0, resolution_deg: float = 1.0,
                 enso: RechargeOscillator = RechargeOscillator()) -> None:
        self.seed = seed
        self.resolution_deg = resolution_deg
        lat, lon = grid_axes(resolution_deg)
        self.lat, self.lon = _read_only(lat), _read_only(lon)
        self.land_mask = _read_only(land_mask_on(lat, lon, resolution_deg))
        lat2d, lon2d = np.meshgrid(lat, lon, indexing="ij")

        self._climatology = np.stack([_climatology(lat2d, lon2d, m) for m in range(1, 13)])
        self._climatology[:, self.land_mask] = np.nan
        self._climatology = self._climatology.astype(np.float32)
        self._trend_pattern = self._ocean_mean_one(_trend_shape(lat2d, lon2d)).astype(np.float32)
        self._enso_pattern = _enso_shape(lat2d, lon2d)
        self._enso_pattern = (self._enso_pattern / box_mean(self._enso_pattern, lat, lon)).astype(np.float32)
        amplitude = _noise_amplitude(lat2d, lon2d)
        self._modes = _mode_patterns(lat2d, lon2d, amplitude, _rng(seed, _STREAM_MODE_SHAPES))
        self._textures = _textures(self.shape, resolution_deg, amplitude, _rng(seed, _STREAM_TEXTURES,
                                                                              round(resolution_deg * 1000)))

        self.enso_index = _enso_series(seed, enso)
        self.warming = _warming_curve()
        self._mode_series = _mode_series(seed)
        picks = _rng(seed, _STREAM_TEXTURE_PICKS)
        self._texture_index = picks.integers(0, _N_TEXTURES, size=(_N_MONTHS, 2))
        self._texture_weight = (picks.standard_normal((_N_MONTHS, 2)) / np.sqrt(2.0)).astype(np.float32)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.lat.size, self.lon.size)

    @property
    def land_fraction(self) -> float:
        return float(self.land_mask.mean())

    def grid(self, month: Month | str) -> SSTGrid:
        """The SST field of one month (°C, float32, NaN on land)."""
        month = Month.parse(month)
        t = _position(month)
        values = self._climatology[month.month - 1].copy()
        values += np.float32(self.warming[t]) * self._trend_pattern
        values += np.float32(self.enso_index[t]) * self._enso_pattern
        values += (self._mode_series[t] @ self._modes).reshape(self.shape)
        for k in range(2):
            values += self._texture_weight[t, k] * self._textures[self._texture_index[t, k]]
        np.maximum(values, np.float32(SEA_ICE_SST), out=values)
        return SSTGrid(month=month, lat=self.lat, lon=self.lon, values=values,
                       attrs={"source": "synthetic", "seed": self.seed})

    def grids(self, start: Month | str, end: Month | str) -> Iterator[SSTGrid]:
        """The fields of ``start``..``end`` (inclusive), one at a time."""
        start, end = Month.parse(start), Month.parse(end)
        _position(start)
        _position(end)
        return (self.grid(month) for month in month_range(start, end))

    def nino34(self, start: Month | str, end: Month | str) -> pd.Series:
        """Monthly Niño 3.4 box mean (°C) of the fields of ``start``..``end``, without building them.

        The box (5°S-5°N, 190-240°E) is all ocean and far above freezing, so its
        mean is the sum of the components' box means.
        """
        first, last = _position(Month.parse(start)), _position(Month.parse(end))
        t = np.arange(first, last + 1)
        lat, lon = self.lat, self.lon
        calendar = (FIRST_MONTH.month - 1 + t) % 12
        texture_means = box_mean(self._textures, lat, lon)
        values = (box_mean(self._climatology, lat, lon)[calendar]
                  + self.warming[t] * box_mean(self._trend_pattern, lat, lon)
                  + self.enso_index[t] * box_mean(self._enso_pattern, lat, lon)
                  + self._mode_series[t] @ box_mean(self._modes.reshape(-1, *self.shape), lat, lon)
                  + (self._texture_weight[t] * texture_means[self._texture_index[t]]).sum(axis=1))
        index = to_periods(month_range(start, end)).rename("month")
        return pd.Series(values, index=index, name="nino34")

    def index_table(self, start: Month | str, end: Month | str,
                    base: tuple[int, int] = nino34_rules.DEFAULT_BASE_PERIOD) -> pd.DataFrame:
        """An index table (see :mod:`enso.sources.index`) of ``start``..``end``.

        Anomalies are against the synthetic climate's own monthly climatology of
        the ``base`` years, whatever range is asked for (as CPC's file is against
        1991-2020 however much of it one reads); ONI and phase follow
        the rules of :mod:`enso.nino34`, so the last month has no ONI yet, as in the real files.
        """
        start, end = Month.parse(start), Month.parse(end)
        climatology = nino34_rules.climatology(self.nino34(Month.of(base[0], 1), Month.of(base[1], 12)), base)
        padded = max(start - 1, FIRST_MONTH)
        mean = self.nino34(padded, end)
        anomaly = nino34_rules.anomaly(mean, base, climatology)
        oni = nino34_rules.oni(anomaly)
        table = pd.DataFrame({"nino34": mean, "anomaly": anomaly, "oni": oni,
                              "phase": nino34_rules.phases_of(oni)}).loc[pd.Period(str(start), freq="M"):]
        table.attrs.update({"format": "synthetic", "file": f"synthetic climate seed {self.seed}",
                            "anomaly_base": f"{base[0]}-{base[1]}"})
        return table

    def _ocean_mean_one(self, pattern: np.ndarray) -> np.ndarray:
        """``pattern`` scaled so that its area-weighted mean over the ocean is 1."""
        weights = np.where(self.land_mask, 0.0, np.cos(np.deg2rad(self.lat))[:, None])
        return pattern * weights.sum() / (pattern * weights).sum()


@functools.lru_cache(maxsize=4)
def synthetic_climate(seed: int = 0, resolution_deg: float = 1.0) -> SyntheticClimate:
    """The shared :class:`SyntheticClimate` of a seed and resolution (built once per process)."""
    return SyntheticClimate(seed, resolution_deg)


def synthetic_grids(start: Month | str, end: Month | str, seed: int = 0,
                    resolution_deg: float = 1.0) -> Iterator[SSTGrid]:
    """Stream the synthetic SST fields of ``start``..``end`` (1° = COBE-SST grid, 2° = ERSST grid)."""
    return synthetic_climate(seed, resolution_deg).grids(start, end)


def synthetic_nino34(start: Month | str, end: Month | str, seed: int = 0,
                     resolution_deg: float = 1.0) -> pd.Series:
    """Niño 3.4 box mean (°C) of the synthetic fields of ``start``..``end``, indexed by ``month``."""
    return synthetic_climate(seed, resolution_deg).nino34(start, end)


def synthetic_index_table(start: Month | str, end: Month | str, seed: int = 0,
                          base: tuple[int, int] = nino34_rules.DEFAULT_BASE_PERIOD,
                          resolution_deg: float = 1.0) -> pd.DataFrame:
    """Index table (nino34, anomaly, oni, phase) of the synthetic climate; anomalies against ``base``."""
    return synthetic_climate(seed, resolution_deg).index_table(start, end, base)


# ----------------------------------------------------------------------------- time series


def _rng(seed: int, stream: int, *extra: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, stream, *extra]))


def _position(month: Month) -> int:
    """Index of ``month`` in the simulated span; outside it, a clear error."""
    if not FIRST_MONTH <= month <= LAST_MONTH:
        raise ValueError(f"the synthetic climate covers {FIRST_MONTH}..{LAST_MONTH}; {month} is outside")
    return month.months_since(FIRST_MONTH)


def _enso_series(seed: int, enso: RechargeOscillator) -> np.ndarray:
    """The ENSO mode's Niño 3.4 contribution (°C), 1850-2100, scaled to :data:`ENSO_STD`."""
    series = enso.simulate(_N_MONTHS, _rng(seed, _STREAM_ENSO))
    series -= series.mean()
    return series * (ENSO_STD / series.std())


def _warming_curve() -> np.ndarray:
    """Global ocean warming (°C) of each month: ``c (exp((year - 1891) / tau) - 1)``, slow then faster."""
    years = FIRST_MONTH.year + (np.arange(_N_MONTHS) + 0.5) / 12.0
    shape = np.expm1((years - 1891.0) / WARMING_TIMESCALE_YEARS)
    recent = shape[(years >= 1991) & (years < 2021)].mean()
    early = shape[(years >= 1891) & (years < 1921)].mean()
    return shape * (WARMING_1891_1920_TO_1991_2020 / (recent - early))


def _mode_series(seed: int) -> np.ndarray:
    """Unit-variance AR(1) series (months x modes) with lag-1 correlations 0.7..0.97."""
    rng = _rng(seed, _STREAM_MODE_SERIES)
    memory = 1.0 - np.exp(rng.uniform(np.log(0.03), np.log(0.3), _N_MODES))
    shocks = rng.standard_normal((_SPIN_UP_MONTHS + _N_MONTHS, _N_MODES))
    series = np.empty_like(shocks)
    for k, r in enumerate(memory):
        series[:, k] = lfilter([np.sqrt(1.0 - r * r)], [1.0, -r], shocks[:, k])
    return series[_SPIN_UP_MONTHS:].astype(np.float32)


# ----------------------------------------------------------------------------- spatial patterns


def _smoothstep(x: np.ndarray, low: float, high: float) -> np.ndarray:
    """0 below ``low``, 1 above ``high``, a smooth ramp between."""
    s = np.clip((x - low) / (high - low), 0.0, 1.0)
    return s * s * (3.0 - 2.0 * s)


def _lon_distance(lon: np.ndarray, centre: float) -> np.ndarray:
    """Signed longitude difference to ``centre`` in -180..180 degrees."""
    return (lon - centre + 180.0) % 360.0 - 180.0


def _bump(lat: np.ndarray, lon: np.ndarray, lat0: float, lon0: float, lat_scale: float,
          lon_scale: float) -> np.ndarray:
    """Gaussian bump centred on (lat0, lon0) with the given e-folding scales (degrees)."""
    return np.exp(-0.5 * (((lat - lat0) / lat_scale) ** 2 + (_lon_distance(lon, lon0) / lon_scale) ** 2))


def _pacific(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Weight 1 in the tropical Pacific, fading to 0 across the Americas and west of 110°E."""
    east_coast = np.interp(lat, [-60.0, -10.0, 8.0, 20.0, 30.0], [292.0, 290.0, 282.0, 262.0, 245.0])
    return _smoothstep(lon, 100.0, 115.0) * (1.0 - _smoothstep(lon, east_coast - 3.0, east_coast + 3.0))


def _cold_tongue(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Shape (0..1) of the equatorial Pacific cold tongue."""
    return np.exp(-0.5 * ((lat + 0.5) / 3.5) ** 2) * _smoothstep(lon, 170.0, 255.0) * _pacific(lat, lon)


def _climatology(lat: np.ndarray, lon: np.ndarray, calendar_month: int) -> np.ndarray:
    """Mean SST (°C) of a calendar month, before the land mask and the freezing clip."""
    zonal = SEA_ICE_SST + 30.4 * np.exp(-(np.abs(lat - 3.0) / np.where(lat > 3.0, 50.0, 47.0)) ** 3.5)
    amplitude = ((0.3 + 4.5 * np.exp(-((np.abs(lat) - 40.0) / 15.0) ** 2) + _smoothstep(np.abs(lat), 50.0, 65.0))
                 * np.where(lat > 0, 1.0, 0.7))
    seasonal = -np.tanh(lat / 6.0) * amplitude * np.cos(2.0 * np.pi * (calendar_month - 2.5) / 12.0)
    cold_tongue_strength = 3.6 * (1.0 - 0.3 * np.cos(2.0 * np.pi * (calendar_month - 4.0) / 12.0))
    regional = (
        0.9 * _bump(lat, lon, 2.0, 150.0, 12.0, 30.0) * _pacific(lat, lon)  # west Pacific warm pool
        - cold_tongue_strength * _cold_tongue(lat, lon)
        - 2.5 * _bump(lat, lon, -12.0, 282.0, 8.0, 7.0)  # Peru upwelling
        - 2.0 * _bump(lat, lon, 30.0, 238.0, 8.0, 6.0)  # California
        - 2.5 * _bump(lat, lon, -22.0, 12.0, 8.0, 5.0)  # Benguela
        - 1.5 * _bump(lat, lon, 25.0, 343.0, 7.0, 5.0)  # Canary
        + 3.5 * _bump(lat, lon, 55.0, 340.0, 10.0, 30.0)  # North Atlantic Drift
    )
    return zonal + seasonal + regional


def _trend_shape(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Relative warming: more in northern mid/high latitudes, less in the cold tongue and Southern Ocean."""
    return (1.0 + 0.4 * _smoothstep(lat, 20.0, 60.0) - 0.9 * _cold_tongue(lat, lon)
            - 0.4 * _smoothstep(-lat, 40.0, 60.0))


def _enso_shape(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """El Niño's SST pattern: central/eastern equatorial Pacific warming, a cool horseshoe around it."""
    strength = np.interp(lon, [145.0, 200.0, 250.0, 275.0], [0.0, 1.0, 1.3, 1.2])
    width = np.interp(lon, [180.0, 270.0], [5.0, 8.0])
    core = strength * np.exp(-0.5 * (lat / width) ** 2) + 0.8 * _bump(lat, lon, -8.0, 278.0, 6.0, 6.0)
    horseshoe = (0.35 * (_bump(lat, lon, 22.0, 185.0, 8.0, 30.0) + _bump(lat, lon, -22.0, 185.0, 8.0, 30.0))
                 + 0.3 * _bump(lat, lon, 0.0, 140.0, 10.0, 12.0))
    return (core - horseshoe) * _pacific(lat, lon)


def _noise_amplitude(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Standard deviation (°C) of the non-ENSO variability: larger in mid-latitudes, small on the equator."""
    amplitude = 0.25 + 0.45 * np.exp(-((np.abs(lat) - 40.0) / 16.0) ** 2)
    quiet_equator = 0.5 * np.exp(-0.5 * (lat / 10.0) ** 2) * _pacific(lat, lon) * _smoothstep(lon, 150.0, 170.0)
    return amplitude * (1.0 - quiet_equator)


def _mode_patterns(lat: np.ndarray, lon: np.ndarray, amplitude: np.ndarray,
                   rng: np.random.Generator) -> np.ndarray:
    """Regional patterns (modes x cells, float32): wavy Gaussian blobs, summing to variance ``amplitude**2``.

    The blobs are drawn in geographic coordinates, so every resolution sees the same patterns.
    """
    centre_lat = np.rad2deg(np.arcsin(rng.uniform(np.sin(np.deg2rad(-65.0)), np.sin(np.deg2rad(70.0)), _N_MODES)))
    centre_lon = rng.uniform(0.0, 360.0, _N_MODES)
    radius = rng.uniform(10.0, 28.0, _N_MODES)
    waves = rng.normal(0.0, 1.0, (_N_MODES, 2))
    phase = rng.uniform(0.0, 2.0 * np.pi, _N_MODES)
    patterns = np.empty((_N_MODES, lat.size))
    for k in range(_N_MODES):
        dx = _lon_distance(lon, centre_lon[k]) * np.cos(np.deg2rad(centre_lat[k]))
        dy = lat - centre_lat[k]
        blob = np.exp(-0.5 * (dx * dx + dy * dy) / radius[k] ** 2)
        patterns[k] = (blob * np.cos((waves[k, 0] * dx + waves[k, 1] * dy) / radius[k] + phase[k])).ravel()
    norm = np.sqrt((patterns ** 2).sum(axis=0) + 0.25 ** 2)
    patterns *= amplitude.ravel() / norm
    patterns[np.abs(patterns) < 1e-6] = 0.0  # no float32 subnormals: they slow arithmetic a hundredfold
    return patterns.astype(np.float32)


def _textures(shape: tuple[int, int], resolution_deg: float, amplitude: np.ndarray,
              rng: np.random.Generator) -> np.ndarray:
    """Small-scale noise fields (textures x lat x lon, float32), about 1.5° across, 0.35 x ``amplitude``."""
    cells = 1.5 / resolution_deg
    fields = gaussian_filter(rng.standard_normal((_N_TEXTURES, *shape)), sigma=(0.0, cells, cells),
                             mode=("nearest", "nearest", "wrap"))
    fields /= fields.std(axis=(1, 2), keepdims=True)
    return (fields * (0.35 * amplitude)).astype(np.float32)


def _read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array
