"""Verification of stored forecasts beside the baselines (the work behind ``enso verify``).

For one model (the champion by default, else the newest) and one forecast kind,
every stored forecast whose target month the index has observed is scored with
:func:`enso.verify.score_table`, by lead and by target calendar month, and so are
the baselines of :mod:`enso.baselines` on exactly the same (init month, lead)
pairs:

* ``climatology``: anomaly 0 and the observed phase frequencies of the target
  calendar month over the **reference years**: the 30 complete years that end
  with the model's selection period (``valid_end``; fewer if the phase index is
  shorter, at least 15), i.e. the most recent observed phases before the scored
  init months (:func:`enso.baselines.causal_base`). They are the reference of
  RPSS and of the Brier skill scores (``bss_<phase>``), not the phase
  frequencies of an early training record, whose trend level differs;
* ``persistence``: the init month's index anomaly held, with Gaussian phase
  probabilities whose spread is its RMS error per lead on the training period
  (it fits nothing else; its anomaly is the index's as published, against the
  file's base period, the same anomalies the model is scored on);
* ``damped_persistence``: a centred regression per init calendar month and lead
  fitted on the training period, its means over the training pairs of the
  last 30 years up to ``train_end`` (:class:`enso.baselines.DampedPersistence`,
  ``level_years``), Gaussian probabilities as persistence's;
* ``linear_eof``: ridge regression on EOFs of tropical Pacific SST anomalies
  (20°S-20°N, 120°E-70°W) of the model's own SST source in the store, coarsened
  to :data:`EOF_RESOLUTION_DEG` (a 1° COBE century reads and fits in seconds
  then, with the same large-scale patterns); alpha is chosen on the model's
  selection period, as the model's weights were. Its anomalies are causal: SST
  grids and the Niño 3.4 index alike are taken against the **EOF base**, the 30
  complete years that end with ``train_end`` and that both the store and the
  index hold (fewer if they are shorter, at least 15, else a clear error), and
  its forecasts are moved back to the index's convention by the index's mean
  anomaly of the target calendar month over those years.

Every baseline with Gaussian probabilities stores its spread per lead in its
frame's ``nino34_anomaly_sd``, so CRPS is scored for it (and for the model where
its forecasts carry a spread). Each baseline is fitted on the model's training
period only (``train_start`` .. ``train_end``; the EOF model also sees the
selection period, up to ``valid_end``; the reference years end with
``valid_end``), never on a scored month; the result's notes state the periods.
The observed phase is that of the phase index (``phase_index``,
ENSO_PHASE_INDEX: RONI by default, or ONI; :mod:`db.phase`), the anomalies those
of the traditional Niño 3.4 index. Categorical scores count only target months
whose phase is known, so their ``n`` can be smaller than the deterministic scores'.

The stored **seasonal outlooks** of the same kind and init months
(:mod:`enso.outlook`, table ``seasonal_outlook``) are scored too
(:func:`seasonal_verification`): against the phase index's observed 3-month
mean of each season and its phase, by season, beside the climatological
probabilities of the same reference climatology (the phase frequencies of the
season's centre month). Their metrics are the score table's prefixed
``seasonal_`` (``seasonal_rpss``, ``seasonal_rps``, ``seasonal_bss_el_nino``,
``seasonal_crps``, ...), stored with ``lead_months`` = the season 1..9, for the
model and ``climatology``.

Scores go to ``verification_score``: ``forecaster`` is the model version or the
baseline's name, ``model_version`` the model on every row, ``period_start`` /
``period_end`` the first and last init month scored, ``target_calendar_month``
0 for all months. A run replaces, in one transaction, the rows of the same model
and kind whose period starts in the same month and ends no later: the same
verification, extended as observations arrive (a sub-period verified on purpose
with a different first month is kept). :func:`load_scores` reads the widest
stored period.

When to re-verify: every month. Verifying is cheap (1.5 s for 20 years of
hindcasts on a 2° store; reading a century of 1° grids for the EOF model adds
seconds), so the monthly run simply re-verifies, which also picks up revisions
of months already observed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
import pandas as pd
import xarray as xr
from sqlalchemy import Connection, Engine, delete, func, insert, select

from db import registry, store
from db.forecast_rows import load_forecasts
from db.phase import DEFAULT_PHASE_INDEX, PhaseIndex, load_phase_index
from db.registry import ModelInfo
from db.seasonal_outlook import load_seasonal_outlook
from db.schema import FORECAST_KINDS, VerificationScore, utcnow
from enso import grids
from enso.baselines import BASE_YEARS, Climatology, DampedPersistence, LinearEOFModel, Persistence, causal_base
from enso.months import Month, from_period, month_range, to_period, to_periods
from enso.nino34 import PHASES
from enso.outlook import climatological_outlook, outlook_forecast_frame, seasonal_scores
from enso.verify import (
    PROBABILITY_COLUMNS,
    RELIABILITY_TOLERANCE,
    SPREAD_COLUMN,
    attach_observations,
    phase_reliability,
    reliability_gap,
    score_table,
)
from reports.data import SCORE_COLUMNS

#: Names of the baseline forecasters, as stored in ``verification_score.forecaster``.
BASELINES: tuple[str, ...] = ("climatology", "persistence", "damped_persistence", "linear_eof")
#: Grid spacing (°) the linear EOF model reads the SST source at.
EOF_RESOLUTION_DEG = 2.0
#: Months of grids decoded at once while building the EOF model's cube (bounds memory on 1° grids).
LOAD_CHUNK_MONTHS = 120
#: Length of the climatology period used when the store does not cover the base period.
CLIMATOLOGY_YEARS = 30

#: Bins of the reliability table (equal width on [0, 1]).
RELIABILITY_BINS = 10
#: Fewest cases in a reliability bin for its gap to the diagonal to be judged.
RELIABILITY_MIN_COUNT = 10
#: The seasonal outlook's scores `enso verify` prints, by season: (title, metric).
SEASONAL_SECTIONS: tuple[tuple[str, str], ...] = (
    ("Seasonal outlook (CPC style) RPSS vs the reference phase climatology", "seasonal_rpss"),
    ("Seasonal outlook (CPC style) RPS", "seasonal_rps"),
)

_FRAME_COLUMNS = ["init_month", "lead", "target_month", "nino34_anomaly", *PROBABILITY_COLUMNS, "phase",
                  SPREAD_COLUMN]


@dataclass(frozen=True)
class VerificationResult:
    """What :func:`verify` scored and stored.

    ``scores`` has :data:`reports.data.SCORE_COLUMNS` (``target_calendar_month``
    0 for all months); ``period`` is the first and last init month scored;
    ``n_pairs`` the number of (init month, lead) pairs with an observed target;
    ``n_scores`` the number of rows written to ``verification_score``;
    ``reliability`` the model's reliability table per phase, all leads pooled
    (:func:`enso.verify.phase_reliability`; None when it has no probabilities).
    The seasonal outlook's scores are in ``scores`` too, metrics ``seasonal_*``
    with ``lead`` the season (:func:`seasonal_verification`);
    ``seasonal_reliability`` is its reliability table, all seasons pooled.
    """

    model_version: str
    reason: str
    kind: str
    period: tuple[Month, Month]
    scores: pd.DataFrame
    n_pairs: int
    n_scores: int
    notes: tuple[str, ...] = ()
    reliability: pd.DataFrame | None = None
    seasonal_reliability: pd.DataFrame | None = None

    def by_lead(self, metric: str, leads: Iterable[int] | None = None) -> pd.DataFrame:
        """One metric over all target months: rows forecaster (model first), columns lead."""
        rows = self.scores[(self.scores["target_calendar_month"] == 0) & (self.scores["metric"] == metric)]
        table = rows.pivot_table(index="forecaster", columns="lead", values="value", aggfunc="first", dropna=False)
        order = [f for f in (self.model_version, *BASELINES) if f in table.index]
        table = table.loc[order]
        return table if leads is None else table.loc[:, [k for k in leads if k in table.columns]]

    def table(self) -> str:
        """The per-lead ACC/RMSE/CRPS of the model beside each baseline, the phase scores at leads 1-6 (accuracy,
        Heidke, RPSS and the Brier skill score per phase), the model's reliability table, and the seasonal
        outlook's RPSS and RPS by season beside climatology's, with its reliability."""
        first, last = self.period
        lines = [f"model {self.model_version} ({self.reason}); {self.kind} forecasts, init months {first}..{last}; "
                 f"{self.n_pairs} (init, lead) pairs with an observed target month"]
        phase_leads = range(1, 7)
        sections = [("ACC", "acc", None), ("RMSE (°C)", "rmse", None),
                    ("CRPS (°C) of the Gaussian forecast, where it has a spread", "crps", None),
                    ("phase accuracy", "accuracy", phase_leads), ("Heidke skill score", "heidke", phase_leads),
                    ("RPSS vs the reference phase climatology", "rpss", phase_leads)]
        sections += [(f"Brier skill score of {phase} vs the reference phase climatology", f"bss_{phase}", phase_leads)
                     for phase in PHASES]
        for title, metric, leads in sections:
            lines += self._metric_lines(f"{title} by lead", metric, leads)
        lines += self._reliability_lines(self.reliability, "phase probabilities", "all leads pooled")
        for title, metric in SEASONAL_SECTIONS:
            lines += self._metric_lines(f"{title} by season (season s: leads s..s+2)", metric)
        lines += self._reliability_lines(self.seasonal_reliability, "seasonal outlook probabilities",
                                         "all seasons pooled")
        lines += [""] + [f"note: {n}" for n in self.notes]
        return "\n".join(lines).rstrip()

    def _metric_lines(self, title: str, metric: str, leads: Iterable[int] | None = None) -> list[str]:
        """One metric by lead (or season): a header line and a row per forecaster; nothing when none has it."""
        table = self.by_lead(metric, leads).dropna(how="all")
        if table.empty:
            return []
        lines = ["", f"{title}:", f"  {'forecaster':<20}" + "".join(f"{k:>7}" for k in table.columns)]
        for name, values in table.iterrows():
            label = "model" if name == self.model_version else str(name)
            lines.append(f"  {label:<20}" + "".join("      -" if not np.isfinite(v) else f"{v:7.2f}"
                                                     for v in values.to_numpy(dtype=float)))
        return lines

    def _reliability_lines(self, reliability: pd.DataFrame | None, what: str, pooled: str) -> list[str]:
        """A reliability table of the model: populated bins per phase, and the largest gap to the diagonal."""
        if reliability is None or not (reliability["count"] > 0).any():
            return []
        width = 1.0 / RELIABILITY_BINS
        lines = ["", f"Reliability of the model's {what} ({pooled}; bins of {width:g}; "
                     f"gap = |observed frequency - forecast probability|, bins of >= {RELIABILITY_MIN_COUNT} cases):",
                 f"  {'phase':<10}{'bin':>10}{'forecast p':>12}{'observed':>10}{'n':>8}"]
        for phase, rows in reliability.groupby("phase", sort=False):
            for r in rows[rows["count"] > 0].itertuples(index=False):
                span = f"{r.bin_centre - width / 2:.1f}-{r.bin_centre + width / 2:.1f}"
                lines.append(f"  {str(phase):<10}{span:>10}{r.mean_probability:12.2f}{r.observed_frequency:10.2f}"
                             f"{int(r.count):8d}")
            gap = reliability_gap(rows, RELIABILITY_MIN_COUNT)
            verdict = "-" if not np.isfinite(gap) else (
                f"{gap:.2f} ({'within' if gap <= RELIABILITY_TOLERANCE else 'beyond'} {RELIABILITY_TOLERANCE:g})")
            lines.append(f"  {str(phase):<10}largest gap {verdict}")
        return lines


# --------------------------------------------------------------------------- helpers shared with reports

def climatology_years(months: Iterable[Month], base: tuple[int, int],
                      length: int = CLIMATOLOGY_YEARS) -> tuple[int, int]:
    """The years to take a monthly climatology over: ``base`` if every month of it is in ``months``,
    else the last ``length`` years of the longest run of complete years (latest on a tie; all of
    it if shorter). Raises when not one complete year is there."""
    have = set(months)
    complete = [y for y in sorted({m.year for m in have}) if all(Month.of(y, k) in have for k in range(1, 13))]
    if all(y in complete for y in range(base[0], base[1] + 1)):
        return base
    if not complete:
        raise LookupError(f"no complete year of grids in the store for a climatology (base period {base})")
    runs: list[list[int]] = []
    for y in complete:
        if runs and y == runs[-1][-1] + 1:
            runs[-1].append(y)
        else:
            runs.append([y])
    best = max(runs, key=lambda r: (len(r), r[-1]))[-length:]
    return best[0], best[-1]


def parse_base_period(text: str | None, default: tuple[int, int]) -> tuple[int, int]:
    """``"1991-2020"`` as (1991, 2020); ``default`` when missing or not of that form."""
    try:
        first, last = (int(part) for part in str(text).split("-"))
    except ValueError:
        return default
    return (first, last) if first <= last else default


@dataclass(frozen=True)
class IndexBaselines:
    """The index-only baselines of a model (shared by verification and reports), fitted causally.

    Persistence and damped persistence are fitted on the model's training period
    (damped persistence centred per init calendar month, its means over the last
    :data:`enso.baselines.BASE_YEARS` years of it); climatology's phase
    frequencies, the RPSS/BSS reference, over ``reference_years``: the 30
    complete years of observed phases that end with the model's ``valid_end``
    (``train_end`` for its selection forecasts): the most recent months before
    any scored init month; fewer if the phase index is shorter, at least 15.
    """

    climatology: Climatology
    persistence: Persistence
    damped_persistence: DampedPersistence
    reference_years: tuple[int, int] | None = None

    @classmethod
    def fit(cls, index: pd.DataFrame, info: ModelInfo, kind: str = "hindcast") -> "IndexBaselines":
        """Fitted for scoring the model's forecasts of ``kind``: the reference years end with its ``valid_end``,
        or with its ``train_end`` for its ``selection`` forecasts (which score the months after it)."""
        first, last = str(info.train_start), str(info.train_end)
        anomaly = index["anomaly"]
        phased = index.index[index["phase"].notna().to_numpy()]
        try:
            years = causal_base(phased, str(info.train_end if kind == "selection" else info.valid_end))
        except ValueError as error:
            raise ValueError(f"the reference phase climatology of model {info.version}: {error}") from None
        damped = DampedPersistence(probabilities="gaussian", level_years=BASE_YEARS)
        return cls(climatology=Climatology().fit(index["phase"], f"{years[0]}-01", f"{years[1]}-12"),
                   persistence=Persistence(probabilities="gaussian").fit(anomaly, first, last),
                   damped_persistence=damped.fit(anomaly, first, last), reference_years=years)

    @property
    def phase_climatology(self) -> pd.DataFrame:
        """Phase frequencies per calendar month over ``reference_years`` (the RPSS and BSS reference)."""
        assert self.climatology.frequencies is not None
        return self.climatology.frequencies

    def describe(self, info: ModelInfo) -> str:
        """What the index baselines were fitted on, for notes and reports."""
        years = self.reference_years
        return (f"persistence and damped persistence fitted on the training period {info.train_start}..{info.train_end} "
                f"(damped persistence: centred regression per init calendar month and lead, means over its last "
                f"{BASE_YEARS} years); climatology, the RPSS and Brier skill score reference, = the observed phase "
                f"frequencies per calendar month over {years[0]}-01..{years[1]}-12, the {years[1] - years[0] + 1} "
                f"years before the scored init months" if years else "")


def regional_anomaly_cube(engine: Engine, source: str, start: Month, end: Month, *,
                          lat_range: tuple[float, float], lon_range: tuple[float, float],
                          resolution_deg: float, base: tuple[int, int]) -> xr.DataArray:
    """Stored grids of start..end cut to a region and coarsened, as anomalies against ``base`` years.

    Read :data:`LOAD_CHUNK_MONTHS` at a time so a century of 1° grids never sits
    in memory at full size; the base years must lie inside start..end.
    """
    months = month_range(start, end)
    parts = [store.load_cube(engine, source, chunk[0], chunk[-1], lat_range=lat_range, lon_range=lon_range,
                             coarsen_deg=resolution_deg)
             for chunk in (months[i:i + LOAD_CHUNK_MONTHS] for i in range(0, len(months), LOAD_CHUNK_MONTHS))]
    cube = xr.concat(parts, dim="month") if len(parts) > 1 else parts[0]
    return grids.anomalies(cube, *base)


# --------------------------------------------------------------------------- verification

def _observed_forecasts(engine: Engine, version: str, kind: str, start: Month | None, end: Month | None,
                        index: pd.DataFrame) -> pd.DataFrame:
    """The model's stored forecasts whose target month has an observed anomaly, with the observations."""
    stored = load_forecasts(engine, model_version=version, kind=kind, init_start=start, init_end=end)
    if stored.empty:
        return stored
    joined = attach_observations(stored[_FRAME_COLUMNS], index["anomaly"], index["phase"])
    return joined[np.isfinite(joined["observed_anomaly"].to_numpy())].reset_index(drop=True)


def _on_pairs(frame: pd.DataFrame, pairs: pd.DataFrame, name: str) -> pd.DataFrame:
    """The rows of a forecast frame at exactly these (init_month, lead) pairs, in their order."""
    keyed = frame.assign(_key=[f"{i}/{k}" for i, k in zip(frame["init_month"], frame["lead"])]).set_index("_key")
    wanted = [f"{i}/{k}" for i, k in zip(pairs["init_month"], pairs["lead"])]
    missing = pd.Index(wanted).difference(keyed.index)
    if len(missing):
        raise ValueError(f"baseline {name} has no forecast for (init month/lead) {missing[0]}, "
                         f"which the model has ({len(missing)} such pairs)")
    return keyed.loc[wanted].reset_index(drop=True)


def eof_base(engine: Engine, source: str, train_end: Month, index: pd.DataFrame) -> tuple[int, int]:
    """The linear EOF model's causal base: the 30 complete years ending with ``train_end`` that both the
    store's grids of ``source`` and the index's anomalies hold (fewer, at least 15, else an error)."""
    stored = store.stored_months(engine, source)
    if not stored:
        raise LookupError(f"the store holds no {source} grids for the linear EOF baseline")
    indexed = set(index.index[np.isfinite(index["anomaly"].to_numpy(dtype=np.float64))])
    both = [m for m in to_periods(stored) if m in indexed]
    try:
        return causal_base(both, str(train_end))
    except ValueError as error:
        raise ValueError(f"linear EOF baseline ({source} grids and the index, training up to {train_end}): "
                         f"{error}") from None


def linear_eof_forecasts(engine: Engine, source: str, index: pd.DataFrame, inits: pd.PeriodIndex | list, *,
                         train_start: Month, train_end: Month, valid_end: Month,
                         refit: bool = True) -> tuple[pd.DataFrame, str]:
    """The linear EOF model on the store's grids (train ..train_end, alpha on ..valid_end, then refit on both
    unless ``refit`` is False), at ``inits``, with SST and Niño 3.4 anomalies against the causal :func:`eof_base`."""
    inits = to_periods(inits)
    base = eof_base(engine, source, train_end, index)
    model = LinearEOFModel(nino34_base=base, refit=refit)
    stored = store.stored_months(engine, source)
    first_input = max(train_start - (model.n_lags - 1), stored[0])
    last_init = from_period(inits.max())
    cube = regional_anomaly_cube(
        engine, source, min(first_input, Month.of(base[0], 1)), max(last_init, Month.of(base[1], 12)),
        lat_range=model.lat_range, lon_range=model.lon_range, resolution_deg=EOF_RESOLUTION_DEG, base=base)
    months = to_periods(cube.month.values)
    cube = cube.isel(month=np.flatnonzero(months >= to_period(first_input)))
    model.fit(cube, index["anomaly"], str(train_end), str(valid_end))
    note = (f"linear EOF model: {source} grids of 20°S-20°N, 120°E-70°W at {EOF_RESOLUTION_DEG:g}°; "
            f"SST and Niño 3.4 anomalies against {base[0]}-{base[1]} (causal: the {base[1] - base[0] + 1} years "
            f"ending with the training period), forecasts moved to the index's base by its mean anomaly of "
            f"{base[0]}-{base[1]}; trained {first_input + model.n_lags - 1}..{train_end}, "
            f"ridge alpha chosen on {train_end + 1}..{valid_end}" + ("" if refit else ", not refitted"))
    return model.predict(cube, index["anomaly"], inits), note


def verify(engine: Engine, *, model_version: str | None = None, kind: str | None = None,
           start: Month | None = None, end: Month | None = None,
           phase_index: str = DEFAULT_PHASE_INDEX) -> VerificationResult:
    """Score a model's stored forecasts of ``kind`` (init months start..end) and the baselines; store the scores.

    The model is ``model_version``, else the champion, else the newest model; the
    observed phase is ``phase_index``'s (``roni`` or ``oni``; the notes say which).
    ``kind`` None: its hindcasts when any is verifiable, else its ``selection`` forecasts
    (a model trained on rolling windows has no later months to hindcast until they arrive).
    Raises :class:`LookupError` when no forecast of it has an observed target month.
    """
    if kind is not None and kind not in FORECAST_KINDS:
        raise ValueError(f"forecast kind must be one of {FORECAST_KINDS}, not {kind!r}")
    choice = registry.choose_model(engine, model_version)
    info = choice.info
    index = store.load_index(engine)
    phase = load_phase_index(engine, phase_index, index)
    index = phase.observed(index)
    if kind is None:
        model_frame = _observed_forecasts(engine, info.version, "hindcast", start, end, index)
        kind = "hindcast"
        if model_frame.empty:
            selection = _observed_forecasts(engine, info.version, "selection", start, end, index)
            if not selection.empty:
                kind, model_frame = "selection", selection
    else:
        model_frame = _observed_forecasts(engine, info.version, kind, start, end, index)
    if model_frame.empty:
        span = f" with init months {start or '...'}..{end or '...'}" if start or end else ""
        command = "enso hindcast --start ... --end ..." if kind == "hindcast" else "enso forecast"
        raise LookupError(f"model {info.version} has no {kind} forecast{span} whose target month is observed yet: "
                          f"run `{command}` (and `enso ingest` for new observations)")
    pairs = model_frame[["init_month", "lead"]]
    inits = pd.PeriodIndex(sorted(set(model_frame["init_month"])), freq="M")
    baselines = IndexBaselines.fit(index, info, kind)
    anomaly = index["anomaly"]
    eof_frame, eof_note = linear_eof_forecasts(engine, info.sst_source, index, inits, train_start=info.train_start,
                                               train_end=info.train_end, valid_end=info.valid_end,
                                               refit=kind != "selection")
    frames = {
        info.version: model_frame,
        "climatology": baselines.climatology.predict(inits),
        "persistence": baselines.persistence.predict(anomaly, inits),
        "damped_persistence": baselines.damped_persistence.predict(anomaly, inits),
        "linear_eof": eof_frame,
    }
    parts = []
    for name, frame in frames.items():
        same = model_frame if name == info.version else attach_observations(
            _on_pairs(frame, pairs, name), anomaly, index["phase"])
        parts.append(score_table(same, baselines.phase_climatology).assign(forecaster=name))
    period = (from_period(inits[0]), from_period(inits[-1]))
    seasonal = seasonal_verification(engine, info.version, kind, period, phase, baselines.phase_climatology)
    scores = pd.concat(parts + ([seasonal.scores] if len(seasonal.scores) else []), ignore_index=True)
    scores["target_calendar_month"] = scores["target_calendar_month"].fillna(0).astype(int)
    scores = scores[list(SCORE_COLUMNS)]
    with engine.begin() as conn:
        written = _replace_scores(conn, scores, model_version=info.version, kind=kind, period=period)
    notes = (baselines.describe(info), eof_note, f"observed phase from {phase.describe()}", seasonal.note)
    return VerificationResult(info.version, choice.reason, kind, period, scores, len(model_frame), written, notes,
                              reliability=model_reliability(model_frame), seasonal_reliability=seasonal.reliability)


@dataclass(frozen=True)
class SeasonalVerification:
    """The stored seasonal outlooks scored: ``scores`` (columns of :func:`enso.verify.score_table` and
    ``forecaster``; metrics ``seasonal_*``, ``lead`` the season) of the model and of climatology, the model's
    ``reliability`` table (all seasons pooled; None when nothing was scored) and a ``note`` saying what was scored."""

    scores: pd.DataFrame
    reliability: pd.DataFrame | None
    note: str


def seasonal_verification(engine: Engine, model_version: str, kind: str, period: tuple[Month, Month],
                          phase: PhaseIndex, climatology: pd.DataFrame) -> SeasonalVerification:
    """Score the model's stored seasonal outlooks of ``kind`` with init months in ``period``.

    A season is observed once the phase index has its 3-month mean (the ONI or
    RONI of its centre month); its phase is that value's. The reference is
    ``climatology``, the phase frequencies per calendar month that the monthly
    RPSS uses (the reference years before the scored init months), taken at each
    season's centre month: the climatological probabilities of that season.
    Outlooks of another phase index than ``phase`` (written under another
    ENSO_PHASE_INDEX) are left out, and the note says so.
    """
    stored = load_seasonal_outlook(engine, model_version=model_version, kind=kind, init_start=period[0],
                                   init_end=period[1])
    mine = stored[stored["phase_index"] == phase.name]
    other = len(stored) - len(mine)
    skipped = (f"; {other} rows of another phase index left out (rerun the forecasts with ENSO_PHASE_INDEX="
               f"{phase.name})" if other else "")
    frame = mine if mine.empty else outlook_forecast_frame(mine, phase.table["value"], phase.phase)
    frame = frame if frame.empty else frame[pd.notna(frame["observed_phase"]).to_numpy()].reset_index(drop=True)
    if frame.empty:
        return SeasonalVerification(pd.DataFrame(columns=[*SCORE_COLUMNS]), None,
                                    f"seasonal outlook: no stored {kind} outlook of {phase.label} has an observed "
                                    f"season yet{skipped}")
    parts = [seasonal_scores(frame, climatology).assign(forecaster=model_version),
             seasonal_scores(climatological_outlook(frame, climatology), climatology).assign(forecaster="climatology")]
    inits = to_periods(frame["init_month"])
    note = (f"seasonal outlook (CPC style): {len(frame)} (init month, season) pairs with an observed 3-month mean "
            f"of {phase.label}, init months {inits.min()}..{inits.max()}; climatology's probabilities are the "
            f"reference phase frequencies of each season's centre month{skipped}")
    return SeasonalVerification(pd.concat(parts, ignore_index=True), model_reliability(frame), note)


def model_reliability(frame: pd.DataFrame) -> pd.DataFrame | None:
    """Reliability table per phase of a forecast frame with ``observed_phase`` (all leads pooled), or None
    when it has no phase probabilities."""
    if not set(PROBABILITY_COLUMNS) <= set(frame.columns) or "observed_phase" not in frame.columns:
        return None
    probabilities = frame[list(PROBABILITY_COLUMNS)].to_numpy(dtype=np.float64)
    return phase_reliability(probabilities, frame["observed_phase"].to_numpy(object), RELIABILITY_BINS)


def _replace_scores(conn: Connection, scores: pd.DataFrame, *, model_version: str, kind: str,
                    period: tuple[Month, Month]) -> int:
    conn.execute(delete(VerificationScore).where(
        VerificationScore.model_version == model_version, VerificationScore.kind == kind,
        VerificationScore.period_start == store.month_date(period[0]),
        VerificationScore.period_end <= store.month_date(period[1])))
    now = utcnow()
    rows = [dict(forecaster=str(r.forecaster), model_version=model_version, kind=kind,
                 period_start=store.month_date(period[0]), period_end=store.month_date(period[1]),
                 lead_months=int(r.lead), target_calendar_month=int(r.target_calendar_month), metric=str(r.metric),
                 value=float(r.value) if np.isfinite(r.value) else None, n=int(r.n), computed_at=now)
            for r in scores.itertuples(index=False)]
    if rows:
        conn.execute(insert(VerificationScore), rows)
    return len(rows)


# --------------------------------------------------------------------------- reading scores

def scored_period(engine: Engine, model_version: str, kind: str = "hindcast") -> tuple[Month, Month] | None:
    """The widest stored verification period of a model and kind (the newest on a tie), or None."""
    stmt = (select(VerificationScore.period_start, VerificationScore.period_end,
                   func.max(VerificationScore.computed_at).label("computed_at"))
            .where(VerificationScore.model_version == model_version, VerificationScore.kind == kind)
            .group_by(VerificationScore.period_start, VerificationScore.period_end))
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    if not rows:
        return None
    best = max(rows, key=lambda r: (r.period_end - r.period_start, r.computed_at))
    return store.date_month(best.period_start), store.date_month(best.period_end)


def load_scores(engine: Engine, model_version: str, kind: str = "hindcast",
                period: tuple[Month, Month] | None = None) -> pd.DataFrame:
    """Stored scores of a model and its baselines as the tidy frame of :class:`reports.data.Verification`.

    Columns :data:`reports.data.SCORE_COLUMNS` (``value`` NaN where undefined);
    ``period`` defaults to :func:`scored_period`. Empty when nothing is stored.
    """
    period = period or scored_period(engine, model_version, kind)
    if period is None:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in SCORE_COLUMNS})
    stmt = (select(VerificationScore.forecaster, VerificationScore.lead_months.label("lead"),
                   VerificationScore.target_calendar_month, VerificationScore.metric, VerificationScore.value,
                   VerificationScore.n)
            .where(VerificationScore.model_version == model_version, VerificationScore.kind == kind,
                   VerificationScore.period_start == store.month_date(period[0]),
                   VerificationScore.period_end == store.month_date(period[1]))
            .order_by(VerificationScore.forecaster, VerificationScore.lead_months,
                      VerificationScore.target_calendar_month, VerificationScore.metric))
    with engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(stmt).all(), columns=list(SCORE_COLUMNS))
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce").astype(float)
    return frame
