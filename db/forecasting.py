"""Training, forecasting and hindcasting against the store (the work behind `enso train/forecast/hindcast`).

Data flows one way: the store's grids and index -> :mod:`enso.model` -> the
registry, the forecast table and, beside every forecast, its seasonal outlook
(table ``seasonal_outlook``, :mod:`db.seasonal_outlook`). Every write happens in
one transaction after all computation succeeded, so a failure leaves the store
as it was.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from db import registry, store
from db.forecast_rows import write_forecasts
from db.phase import DEFAULT_PHASE_INDEX
from db.registry import ModelChoice, ModelInfo
from db.seasonal_outlook import forecast_outlook, write_seasonal_outlook
from enso import verify
from db.verification import linear_eof_forecasts
from enso.baselines import DampedPersistence, Persistence
from enso.config import Settings
from enso.model.data import model_table
from enso.model.predict import input_history_months, predict, resolve_device
from enso.model.presets import FORECAST_LEADS, Preset, get_preset
from enso.model.train import train
from enso.model.trained import TrainedModel
from enso.months import Month, from_period, month_range


def load_model_cube(engine: Engine, source: str, preset: Preset, start: Month, end: Month) -> xr.DataArray:
    """The stored grids of start..end cut to the preset's grid (crop, then coarsen), land NaN."""
    grid = preset.grid
    return store.load_cube(engine, source, start, end, lat_range=grid.lat_range, lon_range=grid.lon_range,
                           coarsen_deg=grid.resolution_deg)


def load_model_table(engine: Engine, source: str) -> pd.DataFrame:
    """The model's table (:func:`enso.model.data.model_table`): the stored grids' Niño 3.4 box mean as the
    training target, the current index beside it as the truth."""
    return model_table(store.grid_nino34(engine, source), store.load_index(engine))


def data_range(engine: Engine, source: str) -> tuple[Month, Month]:
    """The first month of the SST source's grids (training reaches back that far) and the newest month
    that both the grids and the index (with a Niño 3.4 anomaly) hold."""
    months = store.stored_months(engine, source)
    index = store.load_index(engine)
    known = index.index[index["anomaly"].notna()]
    if not months or known.empty:
        raise LookupError(f"the store needs {source} grids and the Niño 3.4 index first: run `enso backfill`")
    return months[0], min(months[-1], from_period(known[-1]))


def training_windows(settings: Settings, newest: Month) -> tuple[Month, Month]:
    """(train_end, valid_end) of a training run: the fixed research periods when ENSO_TRAIN_END/_VALID_END are
    set, else the rolling windows of operation: selection on the newest ENSO_VALID_YEARS years up to
    ``newest``, training on everything before."""
    if settings.train_end is not None and settings.valid_end is not None:
        return settings.train_end, settings.valid_end
    return newest - 12 * settings.valid_years, newest


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
    out["mean_rmse"] = _mean(out["rmse"])
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


def train_and_register(engine: Engine, settings: Settings, preset_name: str | None = None, *,
                       train_end: Month | None = None, valid_end: Month | None = None, device: str = "auto",
                       seed: int = 0, progress: bool = True, max_epochs: int | None = None,
                       checkpoint_dir: Path | None = None, flow_run_id: str | None = None) -> TrainingResult:
    """Train a preset on the store's data, score it, register it, and promote it if it earns it.

    Defaults come from ``settings`` (preset, members, windows: :func:`training_windows`), so
    `enso train` with no flags does what the monthly run and the ``retrain`` flow do. Training
    reads the SST source's whole record with the grids' own Niño 3.4 as its target; selection
    (early stopping, calibration, promotion) uses init months after ``train_end`` whose targets
    lie up to ``valid_end``; the forecasts of those init months by the weights selection scored are
    stored with the model (kind ``selection``), so its skill can be verified at once. The run's
    checkpoint folder is removed once the model is registered.
    """
    preset = get_preset(preset_name or settings.model_preset)
    if settings.model_members is not None:
        preset = preset.replace(n_members=settings.model_members)
    source = settings.sst_source
    first, last = data_range(engine, source)
    default_train_end, default_valid_end = training_windows(settings, last)
    train_end, valid_end = train_end or default_train_end, valid_end or default_valid_end
    if not first < train_end < valid_end <= last:
        raise ValueError(f"need {first} < train_end {train_end} < valid_end {valid_end} <= {last} "
                         f"(the months the store holds)")
    cube = load_model_cube(engine, source, preset, first, valid_end)
    table = load_model_table(engine, source)
    trained = train(preset, cube, table, train_end=train_end, valid_end=valid_end, device=device, seed=seed,
                    progress=progress, max_epochs=max_epochs,
                    checkpoint_dir=checkpoint_dir or settings.data_dir / "checkpoints")
    metrics: dict = {"validation": {**trained.validation, "mean_rmse": _mean(trained.validation["rmse"])},
                     "periods": trained.data_window}
    champ = registry.champion(engine)
    metrics["selection"] = selection_scores(engine, source, trained, table, champ, device)
    metrics["validation_persistence"] = metrics["selection"]["persistence"]
    promoted, reason = promotion(metrics["selection"], champ)
    test_inits = [valid_end + 1 + i for i in range(max(0, last.months_since(valid_end) - 1))]
    if test_inits:
        full_cube = load_model_cube(engine, source, preset, test_inits[0] - input_history_months(preset), last)
        metrics["test"] = scores_by_lead(predict(trained, full_cube, table, test_inits, device=device),
                                         table["anomaly"])
        metrics["test"]["period"] = f"{test_inits[0]}..{test_inits[-1]}"

    window = trained.data_window
    as_selected = trained.as_selected()
    selection_frame = predict(as_selected, cube, table,
                              month_range(window["valid_first_init"], window["valid_last_init"]), device=device)
    selection_outlook = forecast_outlook(engine, as_selected, selection_frame, settings.phase_index)

    def register(conn: Connection) -> str:
        version = registry.register(conn, trained, sst_source=source, base_period=_base_period(table),
                                    metrics=metrics, device=str(resolve_device(device)), flow_run_id=flow_run_id)
        write_forecasts_and_outlook(conn, selection_frame, selection_outlook, model_version=version,
                                    kind="selection", base_period=_base_period(table), flow_run_id=flow_run_id)
        return version

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
    remove_checkpoints(trained)
    return TrainingResult(version, metrics, promoted, reason)


def remove_checkpoints(trained: TrainedModel) -> None:
    """Delete a registered model's checkpoint folder (its weights are in the registry now)."""
    if trained.checkpoint_folder is not None:
        shutil.rmtree(trained.checkpoint_folder, ignore_errors=True)


def _base_period(index: pd.DataFrame) -> str:
    return str(index.attrs.get("base_period") or "1991-2020")


#: The forecasts a candidate must beat on its selection months to become the champion.
PROMOTION_RIVALS = ("champion", "persistence", "damped_persistence", "linear_eof")


def selection_scores(engine: Engine, source: str, trained: TrainedModel, table: pd.DataFrame,
                     champ: ModelInfo | None, device: str) -> dict:
    """Scores per lead of the candidate and its rivals on the same cases: the candidate's selection init
    months, targets up to its ``valid_end`` only.

    The candidate's are the scores selection saw (before any refit); the champion's are those of
    its weights as selected (:meth:`TrainedModel.as_selected`: the refitted weights have seen these
    months); the baselines are fitted on data up to the candidate's ``train_end``.
    """
    window = trained.data_window
    train_end, valid_end = Month.parse(window["train_end"]), Month.parse(window["valid_end"])
    inits = month_range(window["valid_first_init"], window["valid_last_init"])
    observed = table["anomaly"].where(pd.PeriodIndex(table.index, freq="M") <= pd.Period(str(valid_end), freq="M"))
    anomaly = table["anomaly"]
    out: dict = {"period": f"{inits[0]}..{inits[-1]}, targets up to {valid_end}",
                 "candidate": {**trained.validation, "mean_rmse": _mean(trained.validation["rmse"])}}
    out["persistence"] = scores_by_lead(Persistence().fit(anomaly, None, train_end).predict(anomaly, inits),
                                        observed)
    out["damped_persistence"] = scores_by_lead(
        DampedPersistence().fit(anomaly, None, train_end).predict(anomaly, inits), observed)
    eof_frame, _ = linear_eof_forecasts(engine, source, table, inits,
                                        train_start=Month.parse(window["train_first_init"]),
                                        train_end=train_end, valid_end=valid_end, refit=False)
    out["linear_eof"] = scores_by_lead(eof_frame, observed)
    if champ is not None:
        try:
            champion = registry.load_model(engine, champ.version).as_selected()
            cube = load_model_cube(engine, champ.sst_source, champion.preset,
                                   inits[0] - input_history_months(champion.preset), inits[-1])
            out["champion"] = {**scores_by_lead(predict(champion, cube, load_model_table(engine, champ.sst_source),
                                                        inits, device=device), observed),
                               "version": champ.version}
        except (LookupError, ValueError) as exc:
            out["champion"] = {"version": champ.version, "mean_rmse": None, "problem": str(exc)}
    return out


def promotion(selection: dict, champ: ModelInfo | None) -> tuple[bool, str]:
    """Promote when the candidate's mean RMSE over leads 1-12 beats every rival's on the selection cases.

    Records each margin (rival's mean RMSE minus the candidate's; positive = the candidate is better).
    """
    mine = selection["candidate"]["mean_rmse"]
    margins = {name: (None if mine is None or selection[name].get("mean_rmse") is None
                      else round(selection[name]["mean_rmse"] - mine, 4))
               for name in PROMOTION_RIVALS if name in selection}
    selection["margins"] = margins
    if mine is None:
        return False, "not promoted: no selection score"
    lost = [f"{name} ({selection[name]['mean_rmse']:.3f})" for name, margin in margins.items()
            if margin is not None and margin <= 0]
    if lost:
        return False, f"not promoted: selection mean RMSE {mine:.3f} does not beat " + ", ".join(lost)
    rivals = ", ".join(f"{name} by {margin:+.3f}" for name, margin in margins.items() if margin is not None)
    return True, f"promoted: selection mean RMSE {mine:.3f} beats {rivals}"


@dataclass(frozen=True)
class ForecastResult:
    choice: ModelChoice
    init_month: Month
    frame: pd.DataFrame
    rows: int
    #: The seasonal outlook written with the forecast (:func:`db.seasonal_outlook.forecast_outlook`).
    outlook: pd.DataFrame | None = None


def write_forecasts_and_outlook(conn: Connection, frame: pd.DataFrame, outlook: pd.DataFrame, *, model_version: str,
                                kind: str, base_period: str, flow_run_id: str | None = None) -> int:
    """Replace the forecast rows of every init month in ``frame`` and their seasonal outlook, in the caller's
    transaction (so the two are never out of step); returns the forecast rows written."""
    rows = write_forecasts(conn, frame, model_version=model_version, kind=kind, base_period=base_period,
                           flow_run_id=flow_run_id)
    write_seasonal_outlook(conn, outlook, model_version=model_version, kind=kind, init_months=frame["init_month"],
                           flow_run_id=flow_run_id)
    return rows


def default_init_month(engine: Engine, source: str) -> Month:
    """The newest month both the SST grids and the index hold."""
    return data_range(engine, source)[1]


def _forecast_frame(engine: Engine, model: TrainedModel, info: ModelInfo, inits: list[Month]) -> pd.DataFrame:
    cube = load_model_cube(engine, info.sst_source, model.preset, inits[0] - input_history_months(model.preset),
                           inits[-1])
    return predict(model, cube, load_model_table(engine, info.sst_source), inits)


def forecast(engine: Engine, *, init_month: Month | None = None, version: str | None = None,
             flow_run_id: str | None = None, phase_index: str = DEFAULT_PHASE_INDEX) -> ForecastResult:
    """Operational forecast for leads 1..12 from ``init_month`` (default: the newest complete data), with its
    seasonal outlook of ``phase_index`` (ENSO_PHASE_INDEX), written together."""
    choice = registry.choose_model(engine, version)
    init = init_month or default_init_month(engine, choice.info.sst_source)
    model = registry.load_model(engine, choice.info.version)
    frame = _forecast_frame(engine, model, choice.info, [init])
    outlook = forecast_outlook(engine, model, frame, phase_index)
    with engine.begin() as conn:
        rows = write_forecasts_and_outlook(conn, frame, outlook, model_version=choice.info.version,
                                           kind="operational", base_period=choice.info.base_period,
                                           flow_run_id=flow_run_id)
    return ForecastResult(choice, init, frame, rows, outlook)


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
             flow_run_id: str | None = None, progress: bool = False,
             phase_index: str = DEFAULT_PHASE_INDEX) -> ForecastResult:
    """Out-of-sample forecasts for every init month of start..end (kind 'hindcast'), with their seasonal outlooks
    of ``phase_index``, written in one transaction.

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
    outlook = forecast_outlook(engine, model, frame, phase_index)
    with engine.begin() as conn:
        rows = write_forecasts_and_outlook(conn, frame, outlook, model_version=info.version, kind="hindcast",
                                           base_period=info.base_period, flow_run_id=flow_run_id)
    return ForecastResult(choice, end, frame, rows, outlook)
