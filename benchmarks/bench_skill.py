"""Forecast skill on the real NOAA ERSSTv5 record: the production recipe against every baseline, out of sample.

The data take the operational path: the real 1854-01..2010-12 grids are written
as NCEI's per-month netCDF files into a local mirror (var/bench/ersst-mirror,
reused), served on 127.0.0.1 with McNoldy's real Niño 3.4 table (ERSSTv5,
1854-2022), and backfilled with source ``ersst`` into a fresh SQLite store
(var/bench/skill/store.sqlite).

The model is trained exactly as production trains it: ``db.forecasting.train_and_register``
(the grids' own Niño 3.4 as the target over the whole record, the EOF ridge base, the
preset's refit, promotion against the champion and the baselines) and forecasts with
``db.forecasting.hindcast``. Two recipes:

* **research**: train on init months up to 1979-12, select (early stopping, ridge
  penalties, spread calibration) on 1980-01..1989-12, refit up to 1989-12; scored on
  init months 1990-01..2010-12 (252 per lead).
* **operational**: the rolling windows of operation replayed on data up to 2010: a
  retrain every five years (Jan 1990, 1995, 2000, 2005) on all data up to the month
  before, selection on its last ``ENSO_VALID_YEARS`` (10) years, each model forecasting
  the five years that follow (252 init months in all).

Scored against CPC's monthly Niño 3.4 anomalies (1991-2020 base): every forecast of
absolute Niño 3.4 becomes an anomaly by subtracting CPC's 1991-2020 climatology of the
target month. Baselines, all causal (fitted on data before the scored inits only;
anomaly bases ending before them): persistence and centred damped persistence (per lead
and init calendar month, on CPC's anomalies up to the retrain), climatology, and the
linear EOF model of verification.md (its SST and Niño 3.4 anomalies against the 30
years ending at the retrain; fitted up to the training end, alpha on the selection
years, refit through them). Phase probabilities: RPSS and Brier skill against the
phase frequencies of the 30 years before the scored inits; reliability per phase.

Prints ACC/RMSE per lead, phase scores, a 90% year-block bootstrap interval of the
model's RMSE minus each baseline's, and a MET/MISS line per goal of issue 9, for
both recipes. Writes benchmarks/results/skill.json. About 45-60 minutes on 2 CPU
cores (five cpu-small trainings with their refits).

    make bench-skill             # or: python -m benchmarks.bench_skill --no-operational
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from db import store
from db.engine import make_engine
from db.forecasting import hindcast, train_and_register
from db.ingest import backfill, ingest_index
from db.migrate import upgrade
from enso import nino34, verify
from enso.baselines import (Climatology, DampedPersistence, LinearEOFModel, Persistence, causal_base,
                            gaussian_phase_probabilities)
from enso.config import Settings
from enso.mirror import MirrorServer, write_grid_mirror
from enso.model.phases import forecast_oni, spread_at
from enso.model.predict import resolve_device
from enso.model.presets import FORECAST_LEADS
from enso.months import Month
from enso.nino34 import PHASES
from enso.sources.ersst import read_ersst_stack
from enso.sources.index import parse_cpc_monthly

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
ERSST_STACK = Path("realgrids/ersstv5_ncei_monthly/ersstv5_sst_monthly_1854-01_2010-12_2deg_global.nc")
MCNOLDY = Path("realdata/mcnoldy_ONI_NINO34_1854-2022.txt")
CPC_MONTHLY = Path("realdata/cpc_ersst5.nino.mth.91-20_1950-01_2025-07.ascii")

FIRST, LAST = Month.of(1854, 1), Month.of(2010, 12)
RESEARCH = (Month.of(1979, 12), Month.of(1989, 12))
#: Operational replay: retrain at the start of each of these years, forecast until the next (or 2010-12).
RETRAIN_YEARS = (1990, 1995, 2000, 2005)
TEST_INITS = pd.period_range("1990-01", "2010-12", freq="M")
CPC_BASE = (1991, 2020)
PHASE_LEADS = tuple(range(1, 7))
LEADS = tuple(FORECAST_LEADS)
BASELINES = ("persistence", "damped_persistence", "linear_eof")
LABELS = {"model": "model", "persistence": "persistence", "damped_persistence": "damped pers.",
          "linear_eof": "linear EOF", "climatology": "climatology"}
#: Goal of issue 9: forecast probabilities within this of the observed frequency in every populated bin.
RELIABILITY_TOLERANCE = 0.1
#: Fewest forecasts a reliability bin needs to count as populated.
RELIABILITY_MIN_COUNT = 10


def cpc_climatology(cpc: pd.DataFrame) -> pd.Series:
    """CPC's stated 1991-2020 climatology (Niño 3.4 minus anomaly) per calendar month 1..12."""
    return nino34.climatology(cpc["nino34"] - cpc["anomaly"], CPC_BASE)


def lead_scores(frame: pd.DataFrame, observed: pd.Series, phase: pd.Series,
                phase_reference: pd.DataFrame) -> pd.DataFrame:
    """Every score of :func:`enso.verify.score_table` over all target months: rows lead, columns metric."""
    table = verify.score_table(verify.attach_observations(frame, observed, phase), phase_reference)
    overall = table[table["target_calendar_month"].isna()]
    return overall.pivot(index="lead", columns="metric", values="value")


def squared_errors(frame: pd.DataFrame, observed: pd.Series) -> np.ndarray:
    """(n_init, 12) squared errors of a forecast frame over the test inits, init by init."""
    joined = verify.attach_observations(frame, observed)
    return ((joined["nino34_anomaly"] - joined["observed_anomaly"]) ** 2).to_numpy().reshape(-1, len(LEADS))


def year_block_interval(model: np.ndarray, other: np.ndarray, years: np.ndarray, resamples: int,
                        rng: np.random.Generator) -> np.ndarray:
    """90% interval (12, 2) of RMSE(model) - RMSE(other) per lead, resampling whole init years.

    Years are drawn with replacement, so the autocorrelation of ENSO within a
    year stays inside each block.
    """
    unique = np.unique(years)
    sums = np.stack([np.stack([e[years == y].sum(axis=0) for y in unique]) for e in (model, other)])
    counts = np.array([(years == y).sum() for y in unique])
    draws = rng.integers(0, unique.size, size=(resamples, unique.size))
    n = counts[draws].sum(axis=1)[:, None]
    rmse = np.sqrt(sums[:, draws].sum(axis=2) / n)  # (2, resamples, 12)
    return np.percentile(rmse[0] - rmse[1], [5, 95], axis=0).T


def stage(timings: dict[str, float], name: str, t0: float) -> float:
    timings[name] = round(time.perf_counter() - t0, 1)
    print(f"[{name}: {timings[name]:.1f} s]", flush=True)
    return time.perf_counter()


def build_store(args: argparse.Namespace, timings: dict[str, float]) -> tuple[object, dict, Settings]:
    """Mirror of the real grids and index -> HTTP on 127.0.0.1 -> backfill into a fresh SQLite store."""
    t0 = time.perf_counter()
    manifest = write_grid_mirror(args.mirror, read_ersst_stack(args.shared / ERSST_STACK), "ersst",
                                 index_file=args.shared / MCNOLDY, progress=True)
    print(f"mirror {manifest.root}: {len(manifest.files)} files, {manifest.written} written, "
          f"{manifest.unchanged} unchanged")
    t0 = stage(timings, "mirror", t0)
    args.work.mkdir(parents=True, exist_ok=True)
    db_file = args.work / "store.sqlite"
    for leftover in args.work.glob("store.sqlite*"):
        leftover.unlink()
    url = f"sqlite:///{db_file.resolve()}"
    upgrade(url)
    engine = make_engine(url)
    assert manifest.index_file is not None
    with MirrorServer(manifest.root) as mirror:
        index_url = f"{mirror.url}/{manifest.index_file.relative_to(manifest.root).as_posix()}"
        settings = Settings(database_url=url, ersst_base_url=mirror.ersst_base_url, index_url=index_url,
                            index_format="mcnoldy", sst_source="ersst", data_dir=args.work, http_timeout=30)
        summary = backfill(engine, settings, "ersst", FIRST, LAST, workers=args.workers)
        print(summary.report())
        index_result = ingest_index(engine, settings)
        print(f"index: {index_result}")
    if not summary.complete or not index_result.ok:
        raise SystemExit("the store is incomplete: see the backfill report above")
    stage(timings, "ingest", t0)
    source = {"sst": f"ersst {FIRST}..{LAST} via {args.mirror} (real NOAA ERSSTv5, {args.shared / ERSST_STACK})",
              "index": f"mcnoldy ({args.shared / MCNOLDY}), served at {index_url}",
              "store": str(db_file), "backfill": summary.report().splitlines()[0]}
    return engine, source, settings


def fmt(value: float, width: int = 6, digits: int = 2) -> str:
    return f"{value:{width}.{digits}f}" if np.isfinite(value) else " " * (width - 1) + "-"


def leads_where(mask: np.ndarray, leads: tuple[int, ...]) -> list[int]:
    return [lead for lead, bad in zip(leads, mask) if bad]


def on_cpc_base(frame: pd.DataFrame, spread: np.ndarray, cpc: pd.DataFrame) -> pd.DataFrame:
    """A model's forecast frame with anomalies against CPC's 1991-2020 climatology of each target month;
    ONI, phase and Gaussian phase probabilities derived again from them (spread per target month and lead)."""
    out = frame.sort_values(["init_month", "lead"]).reset_index(drop=True)
    out["nino34_anomaly"] = out["nino34"] - cpc_climatology(cpc).reindex(out["target_month"].dt.month).to_numpy()
    anomaly = out["nino34_anomaly"].to_numpy().reshape(-1, len(LEADS))
    inits = pd.PeriodIndex(out["init_month"].iloc[::len(LEADS)])
    oni = forecast_oni(anomaly, cpc["anomaly"].reindex(inits).to_numpy())
    target_calendar = (inits.month.to_numpy()[:, None] - 1 + np.asarray(LEADS)[None, :]) % 12
    out["oni"] = oni.ravel()
    out[list(verify.PROBABILITY_COLUMNS)] = gaussian_phase_probabilities(
        oni, spread_at(spread, target_calendar)).reshape(-1, len(PHASES))
    out["phase"] = nino34.phases_of(oni.ravel()).to_numpy()
    return out[["init_month", "lead", "target_month", "nino34_anomaly", *verify.PROBABILITY_COLUMNS, "phase"]]


@dataclass
class Segment:
    """One trained model and the test inits it forecasts, with its baselines fitted on the same data."""

    train_end: Month
    valid_end: Month
    inits: pd.PeriodIndex
    version: str = ""
    metrics: dict = field(default_factory=dict)
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    seconds: float = 0.0


def baseline_frames(engine, segment: Segment, cpc: pd.DataFrame, grid_nino34: pd.Series) -> dict[str, pd.DataFrame]:
    """Persistence, centred damped persistence, climatology and the causal linear EOF model for the segment's
    inits, fitted on data up to its valid_end (the linear model: up to train_end, alpha on the selection)."""
    anomaly = cpc["anomaly"]
    fit_end = str(segment.valid_end)
    months = store.stored_months(engine, "ersst")
    base = causal_base(months, segment.train_end)
    eof = LinearEOFModel(nino34_base=base)
    cube = store.load_cube(engine, "ersst", FIRST, Month.parse(str(segment.inits[-1])), lat_range=eof.lat_range,
                           lon_range=eof.lon_range)
    sst, _ = eof.inputs(cube, base=base)
    eof.fit(sst, grid_nino34, str(segment.train_end), fit_end)
    eof_frame = eof.predict(sst, grid_nino34, segment.inits)
    # the linear model forecasts the grids' Niño 3.4 (°C, via its causal base): to CPC's anomaly like the model's
    eof_frame["nino34_anomaly"] -= cpc_climatology(cpc).reindex(eof_frame["target_month"].dt.month).to_numpy()
    eof_frame[list(verify.PROBABILITY_COLUMNS)] = gaussian_phase_probabilities(
        eof_frame["nino34_anomaly"].to_numpy(), eof_frame["nino34_anomaly_sd"].to_numpy())
    eof_frame["phase"] = nino34.phases_of(eof_frame["nino34_anomaly"].to_numpy()).to_numpy()
    phases = nino34.phases_of(nino34.oni(anomaly))
    reference = Month.of(base[0], 1), Month.of(base[1], 12)
    return {
        "persistence": Persistence(probabilities="gaussian").fit(anomaly, None, fit_end).predict(
            anomaly, segment.inits),
        "damped_persistence": DampedPersistence(probabilities="gaussian").fit(anomaly, None, fit_end).predict(
            anomaly, segment.inits),
        "linear_eof": eof_frame,
        "climatology": Climatology().fit(phases, str(reference[0]), str(reference[1])).predict(segment.inits),
    }


def run_segment(engine, settings: Settings, segment: Segment, cpc: pd.DataFrame, grid_nino34: pd.Series,
                device: str) -> Segment:
    """Train as production does (train_and_register), hindcast the segment's inits, fit its baselines."""
    t0 = time.perf_counter()
    result = train_and_register(engine, settings, train_end=segment.train_end, valid_end=segment.valid_end,
                                device=device)
    segment.version, segment.metrics = result.version, result.metrics
    print(f"model {result.version}: {result.reason}")
    first, last = Month.parse(str(segment.inits[0])), Month.parse(str(segment.inits[-1]))
    forecast = hindcast(engine, first, last, version=result.version)
    from db.registry import load_model

    spread = load_model(engine, result.version).statistics["oni_error_sd"]
    segment.frames = {"model": on_cpc_base(forecast.frame, spread, cpc),
                      **baseline_frames(engine, segment, cpc, grid_nino34)}
    segment.seconds = round(time.perf_counter() - t0, 1)
    print(f"[segment {first}..{last}: {segment.seconds:.0f} s]", flush=True)
    return segment


def reliability_gaps(frame: pd.DataFrame, observed_phase: pd.Series) -> dict[str, float]:
    """Per phase, the largest |observed frequency - mean probability| over bins with enough forecasts (leads 1-12)."""
    joined = frame.assign(observed_phase=observed_phase.reindex(pd.PeriodIndex(frame["target_month"])).to_numpy())
    joined = joined[joined["observed_phase"].notna()]
    gaps = {}
    for phase in PHASES:
        table = verify.reliability(joined[f"p_{phase}"], (joined["observed_phase"] == phase).astype(float))
        populated = table[table["count"] >= RELIABILITY_MIN_COUNT]
        gaps[phase] = float((populated["observed_frequency"] - populated["mean_probability"]).abs().max())
    return gaps


def report(title: str, frames: dict[str, pd.DataFrame], cpc: pd.DataFrame, years: np.ndarray, args,
           phase_reference: pd.DataFrame) -> dict:
    """Print the tables and goals of one recipe; return its figures for skill.json."""
    observed = cpc["anomaly"]
    observed_phase = nino34.phases_of(nino34.oni(observed))
    scores = {name: lead_scores(frame, observed, observed_phase, phase_reference) for name, frame in frames.items()}
    errors = {name: squared_errors(frames[name], observed) for name in ("model",) + BASELINES}
    rng = np.random.default_rng(args.seed)
    intervals = ({name: year_block_interval(errors["model"], errors[name], years, args.bootstrap, rng)
                  for name in BASELINES} if args.bootstrap > 0 else {})
    differences = {name: np.sqrt(errors["model"].mean(axis=0)) - np.sqrt(errors[name].mean(axis=0))
                   for name in BASELINES}

    def column(name: str, metric: str, leads: tuple[int, ...] = LEADS) -> np.ndarray:
        table = scores[name]
        return np.array([table.loc[lead, metric] if lead in table.index and metric in table.columns else np.nan
                         for lead in leads])

    print(f"\n=== {title} ===\nNiño 3.4 anomaly, init months {TEST_INITS[0]}..{TEST_INITS[-1]} "
          f"(n = {len(TEST_INITS)} per lead), against CPC (1991-2020 base). ACC / RMSE °C.")
    names = ["model", *BASELINES, "climatology"]
    print("lead" + "".join(f"{LABELS[n]:>13}" for n in names))
    for k, lead in enumerate(LEADS):
        print(f"{lead:>4}" + "".join(f"  {fmt(column(n, 'acc')[k], 5)}/{fmt(column(n, 'rmse')[k], 4)}" for n in names))
    if intervals:
        print(f"\nRMSE of the model minus each baseline's, 90% interval of {args.bootstrap} year-block bootstrap "
              "resamples (negative: the model is better)")
        print("lead" + "".join(f"{LABELS[n]:>26}" for n in BASELINES))
        for k, lead in enumerate(LEADS):
            print(f"{lead:>4}" + "".join(f"  {differences[n][k]:+.3f} [{intervals[n][k, 0]:+.3f}, "
                                         f"{intervals[n][k, 1]:+.3f}]" for n in BASELINES))
    print("\nPhase (observed: ONI of CPC's anomalies): accuracy / RPSS per forecaster")
    for lead in PHASE_LEADS:
        print(f"{lead:>4}" + "".join(
            f"  {LABELS[n]:>12} {fmt(column(n, 'accuracy')[lead - 1], 5)} {fmt(column(n, 'rpss')[lead - 1], 5)}"
            for n in ("model", "persistence", "linear_eof")))
    gaps = reliability_gaps(frames["model"], observed_phase)
    print("reliability (largest gap per phase over bins of >= "
          f"{RELIABILITY_MIN_COUNT} forecasts): " + ", ".join(f"{p} {g:.2f}" for p, g in gaps.items()))

    rmse_best = np.min([column(n, "rmse") for n in BASELINES], axis=0)
    acc_best = np.max([column(n, "acc") for n in BASELINES], axis=0)
    acc_leads = tuple(range(3, 13))
    model_acc = column("model", "acc")
    goals = [
        ("RMSE below persistence, damped persistence and the linear EOF model at every lead 1-12",
         leads_where(column("model", "rmse") >= rmse_best, LEADS)),
        ("ACC above all three at leads 3-12",
         leads_where(column("model", "acc", acc_leads) <= acc_best[2:], acc_leads)),
    ]
    if intervals:
        goals.append(("at leads >= 6 the bootstrap interval of the RMSE difference to the linear model excludes 0",
                      [lead for lead in range(6, 13) if intervals["linear_eof"][lead - 1, 1] >= 0]))
    goals += [
        (f"ACC >= 0.70 at lead 6 ({model_acc[5]:.2f})", [] if model_acc[5] >= 0.70 else [6]),
        (f"ACC >= 0.50 at lead 9 ({model_acc[8]:.2f})", [] if model_acc[8] >= 0.50 else [9]),
        (f"reliability within {RELIABILITY_TOLERANCE} of the diagonal in every populated bin "
         f"(worst {max(gaps.values()):.2f})", [p for p, g in gaps.items() if g > RELIABILITY_TOLERANCE]),
    ]
    for text, missed in goals:
        print(f"  {'MISS' if missed else 'MET '} {text}" + (f" (misses: {missed})" if missed else ""))
    return {
        "scores": {name: {metric: [None if not np.isfinite(v) else round(float(v), 4) for v in column(name, metric)]
                          for metric in ("acc", "rmse", "msss", "accuracy", "heidke", "rpss")} for name in scores},
        "rmse_minus_baseline": {name: np.round(d, 4).tolist() for name, d in differences.items()},
        "rmse_minus_baseline_90pct": {name: np.round(ci, 4).tolist() for name, ci in intervals.items()},
        "reliability_gap": gaps,
        "goals": [{"goal": text, "met": not missed, "missed": missed} for text, missed in goals],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared",
                        help="the shared data folder (realgrids/, realdata/); default: the repository's sibling")
    parser.add_argument("--preset", default=None, help="model preset (default: ENSO_MODEL_PRESET's default, "
                                                       "cpu-small; residual-anomaly on CUDA)")
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, ...")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bootstrap", type=int, default=1000, help="year-block bootstrap resamples (0 = none)")
    parser.add_argument("--no-operational", action="store_true", help="the research recipe only")
    parser.add_argument("--workers", type=int, default=4, help="concurrent downloads of the backfill")
    parser.add_argument("--mirror", type=Path, default=Path("var/bench/ersst-mirror"),
                        help="where the mirror of the real grids is written (reused when present)")
    parser.add_argument("--work", type=Path, default=Path("var/bench/skill"), help="store and downloads")
    args = parser.parse_args()
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    preset_name = args.preset or ("residual-anomaly" if cuda else Settings.model_fields["model_preset"].default)
    device_text = (f"cuda ({torch.cuda.get_device_name(device)})" if cuda
                   else f"cpu ({platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()})")
    print(f"device {device_text}; model {preset_name}")
    timings: dict[str, float] = {}
    start = time.perf_counter()

    engine, data_source, settings = build_store(args, timings)
    settings = settings.model_copy(update={"model_preset": preset_name})
    cpc = parse_cpc_monthly((args.shared / CPC_MONTHLY).read_text(encoding="utf-8"), str(CPC_MONTHLY))
    grid_nino34 = store.grid_nino34(engine, "ersst")
    observed_phase = nino34.phases_of(nino34.oni(cpc["anomaly"]))
    years = TEST_INITS.year.to_numpy()

    research = run_segment(engine, settings, Segment(*RESEARCH, TEST_INITS), cpc, grid_nino34, str(device))
    timings["research"] = research.seconds
    reference = verify.phase_climatology(observed_phase, "1960-01", "1989-12")
    result = {"device": device_text, "preset": preset_name, "data": data_source,
              "observed": f"CPC monthly Niño 3.4 anomaly, base {CPC_BASE[0]}-{CPC_BASE[1]} ({CPC_MONTHLY.name})",
              "phase_reference": "phase frequencies (ONI of CPC's anomalies) 1960-01..1989-12",
              "research": {"model": research.version, "periods": research.metrics["periods"],
                           "selection": research.metrics["selection"],
                           **report("research: train <= 1979-12, select 1980-89, refit <= 1989-12",
                                    research.frames, cpc, years, args, reference)}}
    if not args.no_operational:
        segments = []
        for k, year in enumerate(RETRAIN_YEARS):
            valid_end = Month.of(year - 1, 12)
            stop = Month.of(RETRAIN_YEARS[k + 1] - 1, 12) if k + 1 < len(RETRAIN_YEARS) else LAST
            inits = pd.period_range(f"{year}-01", str(stop), freq="M")
            train_end = valid_end - 12 * settings.valid_years
            segments.append(run_segment(engine, settings, Segment(train_end, valid_end, inits), cpc, grid_nino34,
                                        str(device)))
        timings["operational"] = round(sum(s.seconds for s in segments), 1)
        frames = {name: pd.concat([s.frames[name] for s in segments], ignore_index=True)
                  for name in segments[0].frames}
        result["operational"] = {
            "models": [{"version": s.version, "train_end": str(s.train_end), "valid_end": str(s.valid_end),
                        "inits": f"{s.inits[0]}..{s.inits[-1]}", "periods": s.metrics["periods"],
                        "margins": s.metrics["selection"]["margins"]} for s in segments],
            **report("operational: rolling windows, retrained every 5 years on all data before", frames, cpc,
                     years, args, reference)}
    timings["total"] = round(time.perf_counter() - start, 1)
    result["seconds"] = timings
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "skill.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"\nwritten {RESULTS / 'skill.json'}; {timings['total']:.0f} s in all: {timings}")
    engine.dispose()


if __name__ == "__main__":
    main()
