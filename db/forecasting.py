"""Training, forecasting and hindcasting against the store (the work behind `enso train/forecast/hindcast`).

Data flows one way: the store's grids and index -> :mod:`enso.model` -> the
registry and the forecast table. Every write happens in one transaction after
all computation succeeded, so a failure leaves the store as it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from db import registry, store
from db.forecasts import write_forecasts
from db.registry import ModelChoice, ModelInfo
from enso import verify
from enso.baselines import Persistence
from enso.config import Settings
from enso.model.predict import input_history_months, predict, resolve_device
from enso.model.presets import FORECAST_LEADS, Preset, get_preset
from enso.model.train import train
from enso.model.trained import TrainedModel
from enso.months import Month


def load_model_cube(engine: Engine, source: str, preset: Preset, start: Month, end: Month) -> xr.DataArray:
    """The stored grids of start..end cut to the preset's grid (crop, then coarsen), land NaN."""
    grid = preset.grid
    return store.load_cube(engine, source, start, end, lat_range=grid.lat_range, lon_range=grid.lon_range,
                           coarsen_deg=grid.resolution_deg)


def data_range(engine: Engine, source: str) -> tuple[Month, Month]:
    """First and last month held by both the SST source and the index (with a Niño 3.4 anomaly)."""
    months = store.stored_months(engine, source)
    index = store.load_index(engine)
    known = index.index[index["anomaly"].notna()]
    if not months or known.empty:
        raise LookupError(f"the store needs {source} grids and the Niño 3.4 index first: run `enso backfill`")
    first = max(months[0], Month.parse(str(known[0])))
    last = min(months[-1], Month.parse(str(known[-1])))
    return first, last


def scores_by_lead(frame: pd.DataFrame, observed_anomaly: pd.Series) -> dict[str, list]:
    """ACC, RMSE and n per lead of a forecast frame against observed anomalies (NaN pairs dropped)."""
    target = pd.PeriodIndex(frame["target_month"], freq="M")
    observed = observed_anomaly.reindex(target).to_numpy(float)
    out: dict[str, list] = {"lead": [], "acc": [], "rmse": [], "n": []}
    for lead in FORECAST_LEADS:
        sel = frame["lead"].to_numpy() == lead
        a = verify.acc(frame["nino34_anomaly"].to_numpy(float)[sel], observed[sel])
        r = verify.rmse(frame["nino34_anomaly"].to_numpy(float)[sel], observed[sel])
        out["lead"].append(lead)
        out["acc"].append(None if not np.isfinite(a.value) else round(float(a.value), 4))
        out["rmse"].append(None if not np.isfinite(r.value) else round(float(r.value), 4))
        out["n"].append(int(r.n))
    return out


def _mean(values: list) -> float | None:
    finite = [v for v in values if v is not None]
    return float(np.mean(finite)) if finite else None


@dataclass(frozen=True)
class TrainingResult:
    version: str
    metrics: dict
    promoted: bool
    reason: str


def train_and_register(engine: Engine, settings: Settings, preset_name: str, *, train_end: Month,
                       valid_end: Month, device: str = "auto", seed: int = 0, progress: bool = True,
                       max_epochs: int | None = None, checkpoint_dir: Path | None = None,
                       flow_run_id: str | None = None) -> TrainingResult:
    """Train a preset on the store's data, score it, register it, and promote it if it earns it.

    Validation (model selection, promotion) uses init months after ``train_end`` up to
    ``valid_end``; the test scores use init months after ``valid_end`` only.
    """
    preset = get_preset(preset_name)
    if settings.model_members is not None:
        preset = preset.replace(n_members=settings.model_members)
    source = settings.sst_source
    first, last = data_range(engine, source)
    if not first < train_end < valid_end <= last:
        raise ValueError(f"need {first} < train_end {train_end} < valid_end {valid_end} <= {last} "
                         f"(the months the store holds)")
    cube = load_model_cube(engine, source, preset, first, last)
    index = store.load_index(engine)
    trained = train(preset, cube, index, train_end=train_end, valid_end=valid_end, device=device, seed=seed,
                    progress=progress, max_epochs=max_epochs,
                    checkpoint_dir=checkpoint_dir or settings.data_dir / "checkpoints")
    anomaly = index["anomaly"]
    valid_inits = [Month.parse(trained.data_window["valid_first_init"]) + i for i in range(
        Month.parse(trained.data_window["valid_last_init"]).months_since(
            Month.parse(trained.data_window["valid_first_init"])) + 1)]
    valid_frame = predict(trained, cube, index, valid_inits, device=device)
    persistence = Persistence().fit(anomaly, None, train_end)
    pers_frame = persistence.predict(anomaly, valid_inits)
    metrics = {"validation": scores_by_lead(valid_frame, anomaly),
               "validation_persistence": scores_by_lead(pers_frame, anomaly),
               "periods": trained.data_window}
    metrics["validation"]["mean_rmse"] = _mean(metrics["validation"]["rmse"])
    metrics["validation_persistence"]["mean_rmse"] = _mean(metrics["validation_persistence"]["rmse"])
    test_inits = [valid_end + 1 + i for i in range(max(0, last.months_since(valid_end) - 1))]
    if test_inits:
        metrics["test"] = scores_by_lead(predict(trained, cube, index, test_inits, device=device), anomaly)
        metrics["test"]["mean_rmse"] = _mean(metrics["test"]["rmse"])
        metrics["test"]["period"] = f"{test_inits[0]}..{test_inits[-1]}"
    champ = registry.champion(engine)
    champion_rmse = _champion_rmse(engine, champ, cube, index, valid_inits, device) if champ else None
    metrics["validation_champion_mean_rmse"] = champion_rmse
    promoted, reason = _promotion(metrics, champ, champion_rmse)
    def register(conn: Connection) -> str:
        return registry.register(conn, trained, sst_source=source, base_period=_base_period(index),
                                 metrics=metrics, device=str(resolve_device(device)), flow_run_id=flow_run_id)

    try:
        with engine.begin() as conn:
            version = register(conn)
            if promoted:
                registry.promote_in(conn, version)
    except IntegrityError:
        if not promoted:
            raise
        # The one-champion index: a model was promoted while this one trained. Keep this one as a candidate.
        with engine.begin() as conn:
            version = register(conn)
        promoted, reason = False, ("another model became the champion while this one trained; compare them "
                                   "with `enso models list` and promote by hand if this one should win")
    return TrainingResult(version, metrics, promoted, reason)


def _base_period(index: pd.DataFrame) -> str:
    return str(index.attrs.get("base_period") or "1991-2020")


def _champion_rmse(engine: Engine, champ: ModelInfo, cube: xr.DataArray, index: pd.DataFrame,
                   inits: list[Month], device: str) -> float | None:
    """The champion's mean RMSE on the candidate's validation inits (None if its grid cannot be read)."""
    model = registry.load_model(engine, champ.version)
    try:
        frame = predict(model, load_model_cube(engine, champ.sst_source, model.preset, inits[0] - input_history_months(
            model.preset), inits[-1]), index, inits, device=device)
    except (LookupError, ValueError):
        return None
    return _mean(scores_by_lead(frame, index["anomaly"])["rmse"])


def _promotion(metrics: dict, champ: ModelInfo | None, champion_rmse: float | None) -> tuple[bool, str]:
    mine = metrics["validation"]["mean_rmse"]
    pers = metrics["validation_persistence"]["mean_rmse"]
    if mine is None or pers is None:
        return False, "not promoted: no validation score"
    if mine >= pers:
        return False, f"not promoted: validation RMSE {mine:.3f} does not beat persistence {pers:.3f}"
    if champ is not None and champion_rmse is not None and mine >= champion_rmse:
        return False, (f"not promoted: validation RMSE {mine:.3f} does not beat the champion "
                       f"{champ.version} ({champion_rmse:.3f})")
    return True, f"promoted: validation RMSE {mine:.3f} beats persistence {pers:.3f}" + (
        f" and the champion {champ.version} ({champion_rmse:.3f})" if champ is not None and champion_rmse else "")


@dataclass(frozen=True)
class ForecastResult:
    choice: ModelChoice
    init_month: Month
    frame: pd.DataFrame
    rows: int


def default_init_month(engine: Engine, source: str) -> Month:
    """The newest month both the SST grids and the index hold."""
    return data_range(engine, source)[1]


def _forecast_frame(engine: Engine, model: TrainedModel, info: ModelInfo, inits: list[Month]) -> pd.DataFrame:
    cube = load_model_cube(engine, info.sst_source, model.preset, inits[0] - input_history_months(model.preset),
                           inits[-1])
    return predict(model, cube, store.load_index(engine), inits)


def forecast(engine: Engine, *, init_month: Month | None = None, version: str | None = None,
             flow_run_id: str | None = None) -> ForecastResult:
    """Operational forecast for leads 1..12 from ``init_month`` (default: the newest complete data)."""
    choice = registry.choose_model(engine, version)
    init = init_month or default_init_month(engine, choice.info.sst_source)
    model = registry.load_model(engine, choice.info.version)
    frame = _forecast_frame(engine, model, choice.info, [init])
    with engine.begin() as conn:
        rows = write_forecasts(conn, frame, model_version=choice.info.version, kind="operational",
                               base_period=choice.info.base_period, flow_run_id=flow_run_id)
    return ForecastResult(choice, init, frame, rows)


def hindcast_model(engine: Engine, start: Month, version: str | None = None) -> ModelChoice:
    """The model a hindcast from ``start`` uses (``version``, else the champion, else the newest).

    Refuses a model whose training or selection data reach ``start``: its hindcasts
    would not be forecasts anyone could have made.
    """
    choice = registry.choose_model(engine, version)
    info = choice.info
    if start <= info.valid_end:
        raise ValueError(f"model {info.version} was trained and selected on data up to {info.valid_end}: "
                         f"hindcasts from {start} would not be out of sample; start after {info.valid_end}")
    return choice


def hindcast(engine: Engine, start: Month, end: Month, *, version: str | None = None, batch: int = 120,
             flow_run_id: str | None = None, progress: bool = False) -> ForecastResult:
    """Out-of-sample forecasts for every init month of start..end (kind 'hindcast'), written in one transaction.

    The model is :func:`hindcast_model`'s. Each init month's forecast depends on
    that month's inputs only, so a long range may be cut into chunks run apart
    (``flows.forecast.hindcast_flow``) with the same rows as one call.
    """
    choice = hindcast_model(engine, start, version)
    info = choice.info
    model = registry.load_model(engine, info.version)
    inits = [start + i for i in range(end.months_since(start) + 1)]
    frames = []
    chunks = [inits[i:i + batch] for i in range(0, len(inits), batch)]
    if progress:
        from tqdm import tqdm

        chunks = tqdm(chunks, unit="batch", desc=f"hindcast {start}..{end}")
    for chunk in chunks:
        frames.append(_forecast_frame(engine, model, info, chunk))
    frame = pd.concat(frames, ignore_index=True)
    with engine.begin() as conn:
        rows = write_forecasts(conn, frame, model_version=info.version, kind="hindcast",
                               base_period=info.base_period, flow_run_id=flow_run_id)
    return ForecastResult(choice, end, frame, rows)
