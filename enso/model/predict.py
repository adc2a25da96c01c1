"""Forecasts from a trained model: one row per (init month, lead 1..12).

Columns of :func:`predict`'s frame:

* ``init_month``, ``target_month`` (``pandas.Period``, frequency M; target =
  init + lead), ``lead``.
* ``nino34`` (°C, in the index's convention: the grids' box-mean forecast plus the
  index bias of the target calendar month) and ``nino34_anomaly``: the anomaly against the index table's
  own climatology of the target month (its base period; for a target beyond the
  table, the latest value it states for that calendar month).
* ``oni``: the forecast ONI of the target month (see :mod:`enso.model.phases`).
* ``nino34_anomaly_sd``: the forecast's Gaussian error sd (°C) for its target
  calendar month and lead, calibrated on the selection period (NaN for Keydana).
* ``p_la_nina``, ``p_neutral``, ``p_el_nino`` (sum 1) and ``phase``. Keydana:
  the softmax of its phase head, averaged over members, and its argmax, as the
  reference verified them. Residual: Gaussian probabilities around the forecast
  ONI, and the ONI thresholded at ±0.5 (so the phase always agrees with the
  forecast anomalies).
* ``sst_anomaly_grid``: on lead-1 rows, an ``xarray.DataArray`` (lat, lon) on
  the model grid, NaN on land; None on other leads. Keydana: its predicted SST
  grid minus the training period's monthly climatology. Residual: the network
  forecasts the index only, so the map is per-cell damped persistence of the
  init month's anomaly against the preceding years (factors fitted on the
  training period, :func:`enso.model.data.fit_grid_damping`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
import pandas as pd
import torch
import xarray as xr

from enso.baselines import gaussian_phase_probabilities
from enso.model.data import ModelData, SampleTensors, Samples, build_samples, encode_field, prepare_data
from enso.model.phases import forecast_oni, spread_at
from enso.model.presets import FORECAST_LEADS, KeydanaDesign, Preset, ResidualDesign
from enso.model.trained import TrainedModel
from enso.months import Month
from enso.nino34 import PHASES, phase_of


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"``: CUDA when available, else CPU; anything else as given."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@dataclass
class CaseForecasts:
    """Ensemble-mean forecasts of a set of samples, (n, 12) per lead unless noted."""

    nino34: np.ndarray
    anomaly: np.ndarray
    oni: np.ndarray
    #: (n, 12, 3) from the network's phase head; None where the design derives them from the ONI.
    head_probabilities: np.ndarray | None
    #: (n, lat, lon) lead-1 SST anomaly map (°C, NaN on land); None for a model without one.
    grid_anomaly: np.ndarray | None


@torch.no_grad()
def forecast_cases(model: TrainedModel, data: ModelData, samples: Samples, device: torch.device,
                   batch_size: int = 64) -> CaseForecasts:
    """Run every ensemble member over the samples and average; convert to °C and anomalies.

    Each case is computed alike whatever other cases it is batched with (batches are
    padded to ``batch_size``), so its forecast does not depend on the range asked for.
    """
    preset, stats = model.preset, model.statistics
    field = encode_field(preset, data, stats)
    tensors = SampleTensors(preset, field, stats, data, samples, device)
    networks = model.networks(device)
    keydana = isinstance(preset.design, KeydanaDesign)
    n, n_leads = len(samples), len(FORECAST_LEADS)
    value = np.zeros((n, n_leads))
    probabilities = np.zeros((n, n_leads, len(PHASES))) if keydana else None
    grid = np.zeros((n,) + tuple(stats["land"].shape)) if keydana else None
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    for start in range(0, n, batch_size):
        rows = slice(start, min(start + batch_size, n))
        # Every batch has the full size (a short one padded with its last case, dropped after): the CPU
        # kernels differ for small batches, so a case's forecast would depend on the batch it fell in,
        # and a hindcast cut into chunks would not equal one piece. Costs at most one batch per call.
        idx = torch.arange(rows.start, rows.start + batch_size, device=device).clamp(max=n - 1)
        count = rows.stop - rows.start
        x = tensors.inputs(idx)
        for net in networks:
            with autocast:
                if keydana:
                    index_values, head_probabilities, lead1_grid = _keydana_rollout(net, x, tensors.land, n_leads)
                    value[rows] += index_values[:count]
                    probabilities[rows] += head_probabilities[:count]  # type: ignore[index]
                    grid[rows] += lead1_grid[:count]  # type: ignore[index]
                else:
                    pred = net(x, tensors.base[idx])
                    value[rows] += pred.float().cpu().numpy()[:count]
    members = len(networks)
    target_calendar = (samples.init_calendar[:, None] + np.asarray(FORECAST_LEADS)[None, :]) % 12
    # the grids' Niño 3.4 forecast in the index's convention (zero bias when the table's nino34 is the index)
    nino34 = value / members * samples.target_scale + samples.target_offset + stats["index_bias"][target_calendar]
    target_months = [[data.month(r) + lead for lead in FORECAST_LEADS] for r in samples.init_rows]
    climatology = data.climatology_of([m for row in target_months for m in row]).reshape(n, n_leads)
    anomaly = nino34 - climatology
    init_anomaly = data.anomaly[samples.init_rows]
    grid_anomaly = None
    if grid is not None:
        sst = grid / members * float(stats["sst_std"]) + float(stats["sst_mean"])
        calendar = (samples.init_calendar + 1) % 12
        grid_anomaly = np.where(stats["land"], np.nan, sst - stats["sst_climatology"][calendar])
    elif "grid_damping" in stats:  # models trained before the residual map existed have none
        grid_anomaly = np.where(stats["land"], np.nan,
                                stats["grid_damping"][samples.init_calendar] * field[samples.init_rows])
    return CaseForecasts(
        nino34=nino34, anomaly=anomaly, oni=forecast_oni(anomaly, init_anomaly),
        head_probabilities=None if probabilities is None else probabilities / members,
        grid_anomaly=grid_anomaly,
    )


def _keydana_rollout(net: torch.nn.Module, x: torch.Tensor, land: torch.Tensor,
                     n_leads: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Leads 1..n by feeding each predicted grid (land set to 0, as inputs have it) back into the window."""
    values, probabilities = [], []
    first_grid = None
    for _ in range(n_leads):
        grid, index, logits = net(x)
        values.append(index.float())
        probabilities.append(torch.softmax(logits.float(), dim=-1))
        if first_grid is None:
            first_grid = grid.float()
        next_input = grid.masked_fill(land, 0.0).to(x.dtype)
        x = torch.cat([x[:, 1:], next_input[:, None, None]], dim=1)
    return (torch.stack(values, 1).cpu().numpy(), torch.stack(probabilities, 1).cpu().numpy(),
            first_grid.cpu().numpy())  # type: ignore[union-attr]


def lead1_map_description(preset: Preset) -> str:
    """How :func:`predict` makes this preset's lead-1 map (``sst_anomaly_grid``), in words for its title."""
    design = preset.design
    if isinstance(design, ResidualDesign):
        return (f"damped persistence per cell of the init month's anomaly, against the "
                f"{design.detrend_years} preceding years")
    return "the network's SST grid, against its training period's climatology"


def input_history_months(preset: Preset) -> int:
    """How many months before an init month a forecast reads: the window, and the years behind its anomalies."""
    history = preset.n_timesteps - 1
    if isinstance(preset.design, ResidualDesign):
        history += 12 * preset.design.detrend_years
    return history


def predict(model: TrainedModel, cube: xr.DataArray, index: pd.DataFrame,
            init_months: Iterable[Month | str], *, device: str | torch.device = "auto",
            batch_size: int = 64) -> pd.DataFrame:
    """Forecast leads 1..12 from each init month (see the module docstring for the columns).

    Only the months the forecasts need are read from ``cube`` (from
    :func:`input_history_months` before the first init month on). Init months
    are sorted and deduplicated. A missing input month raises a ValueError
    naming it; so does a cube whose model grid differs from the training grid.
    """
    months = sorted({Month.parse(m) for m in init_months})
    if not months:
        raise ValueError("no init month to forecast")
    preset = model.preset
    data = prepare_data(cube, index, preset.grid, first=months[0] - input_history_months(preset),
                        last=months[-1] + 12)
    _check_grid(model, data)
    samples = build_samples(preset, data, model.statistics, months)
    cases = forecast_cases(model, data, samples, resolve_device(device), batch_size)
    return model_forecast_frame(model, data, samples, cases)


def _check_grid(model: TrainedModel, data: ModelData) -> None:
    lat, lon = model.statistics["lat"], model.statistics["lon"]
    if data.lat.shape != lat.shape or data.lon.shape != lon.shape or not (
            np.allclose(data.lat, lat) and np.allclose(data.lon, lon)):
        raise ValueError(
            f"the SST cube gives a {data.lat.size}x{data.lon.size} model grid "
            f"(lat {data.lat.min():g}..{data.lat.max():g}), but model {model.name} was trained on "
            f"{lat.size}x{lon.size} (lat {lat.min():g}..{lat.max():g}): use the SST source it was trained on")


def model_forecast_frame(model: TrainedModel, data: ModelData, samples: Samples, cases: CaseForecasts
                         ) -> pd.DataFrame:
    """The long forecast frame of :func:`predict` from a model's :func:`forecast_cases` output (its spreads and
    phase probabilities; :func:`enso.verify.forecast_frame` builds one from plain arrays)."""
    n, n_leads = cases.nino34.shape
    target_calendar = (samples.init_calendar[:, None] + np.asarray(FORECAST_LEADS)[None, :]) % 12
    spread = (spread_at(model.statistics["anomaly_error_sd"], target_calendar).ravel()
              if "anomaly_error_sd" in model.statistics else np.full(n * n_leads, np.nan))
    if cases.head_probabilities is not None:
        probabilities = cases.head_probabilities
        phases = [PHASES[k] for k in probabilities.reshape(-1, len(PHASES)).argmax(axis=1)]
    else:
        probabilities = gaussian_phase_probabilities(
            cases.oni, spread_at(model.statistics["oni_error_sd"], target_calendar))
        phases = [phase_of(v) for v in cases.oni.ravel()]
    init = [data.month(r) for r in samples.init_rows]
    lead = np.tile(np.asarray(FORECAST_LEADS), n)
    grids: list[xr.DataArray | None] = [None] * (n * n_leads)
    if cases.grid_anomaly is not None:
        for i in range(n):
            grids[i * n_leads] = xr.DataArray(
                cases.grid_anomaly[i].astype(np.float32), dims=("lat", "lon"),
                coords={"lat": data.lat, "lon": data.lon}, name="sst_anomaly",
                attrs={"units": "degC", "target_month": str(init[i] + 1)})
    flat = probabilities.reshape(-1, len(PHASES))
    frame = pd.DataFrame({
        "init_month": pd.PeriodIndex([str(m) for m in init for _ in FORECAST_LEADS], freq="M"),
        "lead": lead,
        "target_month": pd.PeriodIndex([str(m + int(L)) for m in init for L in FORECAST_LEADS], freq="M"),
        "nino34_anomaly": cases.anomaly.ravel(),
        "nino34_anomaly_sd": spread,
        "nino34": cases.nino34.ravel(),
        "oni": cases.oni.ravel(),
        **{f"p_{phase}": flat[:, k] for k, phase in enumerate(PHASES)},
        "phase": phases,
        "sst_anomaly_grid": pd.Series(grids, dtype=object),
    })
    return frame
