"""Forecast skill on the real NOAA ERSSTv5 record: the model against every baseline, out of sample.

The data take the operational path: the real 1854-01..2010-12 grids are written
as NCEI's per-month netCDF files into a local mirror (var/bench/ersst-mirror,
reused), served on 127.0.0.1 with McNoldy's real Niño 3.4 table (ERSSTv5,
1854-2022), and backfilled with source ``ersst`` into a fresh SQLite store
(var/bench/skill/store.sqlite). The store's index (McNoldy's) is the training
target; it reaches back to 1854, which the detrended anomalies need.

Periods: training on init months up to 1979-12; early stopping and every choice
on 1980-01..1989-12; scored on init months 1990-01..2010-12 (out of sample;
252 per lead) against CPC's monthly Niño 3.4 anomalies (1991-2020 base). A
forecast of absolute Niño 3.4 (the model's, the linear model's grid anomaly plus
its 1981-2010 grid climatology) becomes an anomaly by subtracting CPC's
1991-2020 climatology of the target month, so every forecaster is scored on the
same anomalies. Baselines: persistence and damped persistence (per lead and
init calendar month, fitted on the store's index 1891-1989), climatology
(anomaly 0), the linear EOF model of verification.md (fitted up to 1979, alpha
on 1980-1989, refit 1891-1989), and keydana2021 at lead 1.

Prints ACC/RMSE per lead, phase scores at leads 1-6 (observed phase from the ONI
of CPC's anomalies; RPSS against the training period's phase climatology), a
90% year-block bootstrap interval of the model's RMSE minus each baseline's,
and a MET/MISS line per goal. Writes benchmarks/results/skill.json.
About 15-50 minutes on 2 CPU cores (the cpu-small ensemble and one keydana2021 epoch dominate).

    make bench-skill             # or: python -m benchmarks.bench_skill --keydana-epochs 0
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from db import store
from db.engine import make_engine
from db.forecasting import load_model_cube
from db.ingest import backfill, ingest_index
from db.migrate import upgrade
from enso import nino34, verify
from enso.baselines import Climatology, DampedPersistence, LinearEOFModel, Persistence, gaussian_phase_probabilities
from enso.config import Settings
from enso.mirror import MirrorServer, write_grid_mirror
from enso.model import TrainedModel, get_preset, predict, train
from enso.model.phases import forecast_oni
from enso.model.predict import resolve_device
from enso.model.presets import FORECAST_LEADS, ResidualDesign
from enso.months import Month
from enso.sources.ersst import read_ersst_stack
from enso.sources.index import parse_cpc_monthly

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
ERSST_STACK = Path("realgrids/ersstv5_ncei_monthly/ersstv5_sst_monthly_1854-01_2010-12_2deg_global.nc")
MCNOLDY = Path("realdata/mcnoldy_ONI_NINO34_1854-2022.txt")
CPC_MONTHLY = Path("realdata/cpc_ersst5.nino.mth.91-20_1950-01_2025-07.ascii")

FIRST, LAST = Month.of(1854, 1), Month.of(2010, 12)
TRAIN_END, VALID_END = Month.of(1979, 12), Month.of(1989, 12)
#: The linear model's and the damped persistence's data start (verification.md: refit 1891-1989).
BASELINE_START = Month.of(1891, 1)
TEST_INITS = pd.period_range("1990-01", "2010-12", freq="M")
CPC_BASE = (1991, 2020)
PHASE_LEADS = tuple(range(1, 7))
LEADS = tuple(FORECAST_LEADS)
BASELINES = ("persistence", "damped_persistence", "linear_eof")
LABELS = {"model": "model", "persistence": "persistence", "damped_persistence": "damped pers.",
          "linear_eof": "linear EOF", "climatology": "climatology", "keydana2021": "keydana2021"}


def on_cpc_base(frame: pd.DataFrame, model: TrainedModel, cpc: pd.DataFrame) -> pd.DataFrame:
    """A model's forecast frame with anomalies against CPC's 1991-2020 climatology of each target month.

    The residual design's ONI, phase and Gaussian phase probabilities are derived
    again from those anomalies (and CPC's init-month anomaly); Keydana's phase
    head is kept, as the reference verified it.
    """
    out = frame.copy()
    out["nino34_anomaly"] = out["nino34"] - cpc_climatology(cpc).reindex(out["target_month"].dt.month).to_numpy()
    if isinstance(model.preset.design, ResidualDesign):
        anomaly = out["nino34_anomaly"].to_numpy().reshape(-1, len(LEADS))
        init = cpc["anomaly"].reindex(pd.PeriodIndex(out["init_month"].iloc[::len(LEADS)])).to_numpy()
        oni = forecast_oni(anomaly, init).ravel()
        out["oni"] = oni
        out[list(verify.PROBABILITY_COLUMNS)] = gaussian_phase_probabilities(
            oni, np.tile(model.statistics["oni_error_sd"], len(oni) // len(LEADS)))
        out["phase"] = nino34.phases_of(oni).to_numpy()
    return out


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


def build_store(args: argparse.Namespace, timings: dict[str, float]) -> tuple[object, dict]:
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
    return engine, source


def train_and_predict(engine, preset_name: str, index: pd.DataFrame, cpc: pd.DataFrame, *, device: str,
                      seed: int, epochs: int | None, batch_size: int, timings: dict[str, float],
                      label: str) -> tuple[TrainedModel, pd.DataFrame]:
    """Train a preset on the store's grids and index; forecast the test inits; anomalies on CPC's base."""
    preset = get_preset(preset_name)
    t0 = time.perf_counter()
    cube = load_model_cube(engine, "ersst", preset, FIRST, LAST)
    model = train(preset, cube, index, train_end=TRAIN_END, valid_end=VALID_END, device=device, seed=seed,
                  max_epochs=epochs)
    t0 = stage(timings, f"{label}_train", t0)
    frame = predict(model, cube, index, [str(p) for p in TEST_INITS], device=device, batch_size=batch_size)
    stage(timings, f"{label}_predict", t0)
    return model, on_cpc_base(frame, model, cpc)


def linear_eof_forecasts(engine, cpc: pd.DataFrame) -> tuple[LinearEOFModel, pd.DataFrame]:
    """The linear EOF model on the store's grids, its anomalies moved from the grids' 1981-2010 base to CPC's."""
    model = LinearEOFModel()
    cube = store.load_cube(engine, "ersst", BASELINE_START, LAST, lat_range=model.lat_range,
                           lon_range=model.lon_range)
    sst, grid_anomaly = model.inputs(cube, base=(1981, 2010))
    model.fit(sst, grid_anomaly, TRAIN_END, VALID_END)
    frame = model.predict(sst, grid_anomaly, TEST_INITS)
    grid_climatology = nino34.climatology(store.grid_nino34(engine, "ersst"), (1981, 2010))
    shift = (grid_climatology - cpc_climatology(cpc)).reindex(frame["target_month"].dt.month).to_numpy()
    frame["nino34_anomaly"] += shift
    return model, frame


def validation_baselines(index: pd.DataFrame, persistence: Persistence, damped: DampedPersistence,
                         model: TrainedModel) -> dict[str, dict[str, list]]:
    """Validation-period (selection) scores of the model and the persistence baselines on the store's index."""
    window = model.data_window
    inits = pd.period_range(window["valid_first_init"], window["valid_last_init"], freq="M")
    observed = index["anomaly"].loc[:str(VALID_END)]
    out = {"model": {k: model.validation[k] for k in ("lead", "acc", "rmse")}}
    for name, baseline in (("persistence", persistence), ("damped_persistence", damped)):
        frame = verify.attach_observations(baseline.predict(index["anomaly"], inits), observed)
        by_lead = frame.groupby("lead")
        out[name] = {"lead": list(LEADS),
                     "acc": [verify.acc(g["nino34_anomaly"], g["observed_anomaly"]).value for _, g in by_lead],
                     "rmse": [verify.rmse(g["nino34_anomaly"], g["observed_anomaly"]).value for _, g in by_lead]}
    return out


def fmt(value: float, width: int = 6, digits: int = 2) -> str:
    return f"{value:{width}.{digits}f}" if np.isfinite(value) else " " * (width - 1) + "-"


def leads_where(mask: np.ndarray, leads: tuple[int, ...]) -> list[int]:
    return [lead for lead, bad in zip(leads, mask) if bad]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared",
                        help="the shared data folder (realgrids/, realdata/); default: the repository's sibling")
    parser.add_argument("--preset", default=None, help="model preset (default: cpu-small; residual-anomaly on CUDA)")
    parser.add_argument("--keydana-epochs", type=int, default=None,
                        help="epochs of keydana2021 (default: 50 on CUDA, 1 on CPU; 0 = skip)")
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, ...")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bootstrap", type=int, default=1000, help="year-block bootstrap resamples (0 = none)")
    parser.add_argument("--workers", type=int, default=4, help="concurrent downloads of the backfill")
    parser.add_argument("--mirror", type=Path, default=Path("var/bench/ersst-mirror"),
                        help="where the mirror of the real grids is written (reused when present)")
    parser.add_argument("--work", type=Path, default=Path("var/bench/skill"), help="store and downloads")
    args = parser.parse_args()
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    preset_name = args.preset or ("residual-anomaly" if cuda else "cpu-small")
    keydana_epochs = args.keydana_epochs if args.keydana_epochs is not None else (50 if cuda else 1)
    device_text = (f"cuda ({torch.cuda.get_device_name(device)})" if cuda
                   else f"cpu ({platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()})")
    print(f"device {device_text}; model {preset_name}; keydana2021 epochs {keydana_epochs}")
    timings: dict[str, float] = {}
    start = time.perf_counter()

    engine, data_source = build_store(args, timings)
    index = store.load_index(engine)
    cpc = parse_cpc_monthly((args.shared / CPC_MONTHLY).read_text(encoding="utf-8"), str(CPC_MONTHLY))
    observed = cpc["anomaly"]
    observed_phase = nino34.phases_of(nino34.oni(observed))

    model, model_frame = train_and_predict(engine, preset_name, index, cpc, device=str(device), seed=args.seed,
                                           epochs=None, batch_size=64, timings=timings, label="model")
    train_period = (model.data_window["train_first_init"], str(TRAIN_END))
    phase_reference = verify.phase_climatology(index["phase"], *train_period)

    t0 = time.perf_counter()
    persistence = Persistence(probabilities="gaussian").fit(index["anomaly"], BASELINE_START, VALID_END)
    damped = DampedPersistence().fit(index["anomaly"], BASELINE_START, VALID_END)
    eof, eof_frame = linear_eof_forecasts(engine, cpc)
    frames = {
        "model": model_frame,
        "persistence": persistence.predict(observed, TEST_INITS),
        "damped_persistence": damped.predict(observed, TEST_INITS),
        "linear_eof": eof_frame,
        "climatology": Climatology().fit(index["phase"], *train_period).predict(TEST_INITS),
    }
    stage(timings, "baselines", t0)

    keydana_model = None
    if keydana_epochs > 0:
        keydana_model, keydana_frame = train_and_predict(
            engine, "keydana2021", index, cpc, device=str(device), seed=args.seed, epochs=keydana_epochs,
            batch_size=16, timings=timings, label="keydana2021")
        frames["keydana2021"] = keydana_frame[keydana_frame["lead"] == 1]

    scores = {name: lead_scores(frame, observed, observed_phase, phase_reference) for name, frame in frames.items()}
    errors = {name: squared_errors(frames[name], observed) for name in ("model",) + BASELINES}
    years = TEST_INITS.year.to_numpy()
    rng = np.random.default_rng(args.seed)
    intervals = ({name: year_block_interval(errors["model"], errors[name], years, args.bootstrap, rng)
                  for name in BASELINES} if args.bootstrap > 0 else {})
    differences = {name: np.sqrt(errors["model"].mean(axis=0)) - np.sqrt(errors[name].mean(axis=0))
                   for name in BASELINES}
    timings["total"] = round(time.perf_counter() - start, 1)

    def column(name: str, metric: str, leads: tuple[int, ...] = LEADS) -> np.ndarray:
        table = scores[name]
        return np.array([table.loc[lead, metric] if lead in table.index else np.nan for lead in leads])

    print(f"\nNiño 3.4 anomaly, init months {TEST_INITS[0]}..{TEST_INITS[-1]} (n = 252 per lead), against CPC "
          f"(1991-2020 base). ACC / RMSE °C. Model: {preset_name}.")
    names = ["model", *BASELINES, "climatology"] + (["keydana2021"] if keydana_model else [])
    print("lead" + "".join(f"{LABELS[n]:>13}" for n in names))
    for k, lead in enumerate(LEADS):
        cells = "".join(f"  {fmt(column(n, 'acc')[k], 5)}/{fmt(column(n, 'rmse')[k], 4)}"
                        if lead in scores[n].index else " " * 13 for n in names)
        print(f"{lead:>4}{cells}")
    if intervals:
        print(f"\nRMSE of the model minus each baseline's, with the 90% interval of {args.bootstrap} "
              "year-block bootstrap resamples (negative: the model is better)")
        print("lead" + "".join(f"{LABELS[n]:>26}" for n in BASELINES))
        for k, lead in enumerate(LEADS):
            cells = "".join(f"  {differences[n][k]:+.3f} [{intervals[n][k, 0]:+.3f}, {intervals[n][k, 1]:+.3f}]"
                            for n in BASELINES)
            print(f"{lead:>4}{cells}")

    phase_names = ["model", "persistence"] + (["keydana2021"] if keydana_model else [])
    print(f"\nPhase: accuracy / HSS / RPSS (observed: ONI of CPC's anomalies; RPSS against the phase climatology "
          f"of {train_period[0]}..{train_period[1]}). Persistence: the init anomaly thresholded at ±0.5, "
          "Gaussian probabilities.")
    print("lead" + "".join(f"{LABELS[n]:>21}" for n in phase_names))
    for lead in PHASE_LEADS:
        cells = "".join(f"  {fmt(scores[n].loc[lead, 'accuracy'], 5)} {fmt(scores[n].loc[lead, 'heidke'], 5)} "
                        f"{fmt(scores[n].loc[lead, 'rpss'], 5)}" if lead in scores[n].index else " " * 21
                        for n in phase_names)
        print(f"{lead:>4}{cells}")

    rmse_best = np.min([column(n, "rmse") for n in BASELINES], axis=0)
    acc_best = np.max([column(n, "acc") for n in BASELINES], axis=0)
    rmse_miss = leads_where(column("model", "rmse") >= rmse_best, LEADS)
    acc_leads = tuple(range(3, 13))
    acc_miss = leads_where(column("model", "acc", acc_leads) <= acc_best[2:], acc_leads)
    hss_model, hss_bar = scores["model"].loc[1, "heidke"], scores["persistence"].loc[1, "heidke"]
    goals = [
        ("beats persistence, damped persistence and the linear model in RMSE at every lead 1-12", rmse_miss),
        ("beats persistence, damped persistence and the linear model in ACC at leads 3-12", acc_miss),
        (f"HSS at lead 1 vs anomaly-threshold persistence ({hss_model:.3f} vs {hss_bar:.3f})",
         [] if hss_model > hss_bar else [1]),
    ]
    print()
    for text, missed in goals:
        print(f"  {'MISS' if missed else 'MET '} {text}" + (f" (misses at leads {missed})" if missed else ""))

    result = {
        "device": device_text,
        "model": {"preset": preset_name, "seed": args.seed, "members": model.preset.n_members,
                  "epochs_run": [len(h) for h in model.history], "max_epochs": model.preset.max_epochs,
                  "data_window": model.data_window},
        "keydana2021": None if keydana_model is None else {
            "epochs": keydana_epochs, "data_window": keydana_model.data_window, "scored_leads": [1]},
        "periods": {"train_inits_until": str(TRAIN_END), "selection": "1980-01..1989-12 (early stopping, "
                    "alpha of the linear model, phase-probability calibration)", "test_inits": "1990-01..2010-12",
                    "baselines_fitted": f"{BASELINE_START}..{VALID_END} (store's index; linear model: grids)",
                    "phase_climatology": f"{train_period[0]}..{train_period[1]}"},
        "observed": f"CPC monthly Niño 3.4 anomaly, base {CPC_BASE[0]}-{CPC_BASE[1]} ({CPC_MONTHLY.name})",
        "data": data_source,
        "scores": {name: {metric: [None if not np.isfinite(v) else round(float(v), 4) for v in column(name, metric)]
                          for metric in ("acc", "rmse", "msss", "accuracy", "heidke", "rpss")} for name in scores},
        "rmse_minus_baseline": {name: np.round(d, 4).tolist() for name, d in differences.items()},
        "rmse_minus_baseline_90pct": {name: np.round(ci, 4).tolist() for name, ci in intervals.items()},
        "bootstrap": {"resamples": args.bootstrap, "block": "init year"},
        "validation": validation_baselines(index, persistence, damped, model),
        "linear_eof_alpha": eof.alpha,
        "goals": [{"goal": text, "met": not missed, "missed_leads": missed} for text, missed in goals],
        "seconds": timings,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "skill.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwritten {RESULTS / 'skill.json'}; {timings['total']:.0f} s in all: {timings}")
    engine.dispose()


if __name__ == "__main__":
    main()
