"""What a monthly report is rendered from: plain, typed dataclasses, no SQL.

``flows/`` assembles a :class:`ReportData` from the store; :mod:`reports.render`
turns it into HTML. Everything that may be missing in the first operational month
(verification history, last month's forecast, maps) is optional, and the report
says so instead of failing.

Shapes, defined here once:

* Months are :class:`enso.months.Month`; monthly series are ``pandas.Series`` on
  a monthly ``PeriodIndex``.
* A forecast is a :class:`ForecastTable`: one row per lead with the columns
  :data:`FORECAST_COLUMNS` (optionally ``anomaly_low``/``anomaly_high``, the
  uncertainty range named by ``ForecastTable.uncertainty``).
* Scores are a tidy frame with :data:`SCORE_COLUMNS`, metric names as
  :mod:`enso.verify` spells them (``acc``, ``rmse``, ``heidke``, ...) and
  ``target_calendar_month`` 0 for "all months" (``None``/NaN are read as 0).
* A contingency table is 3 x 3, rows forecast, columns observed, both in
  :data:`enso.nino34.PHASES` order (as :func:`enso.verify.contingency_table`).
* A reliability table has :data:`RELIABILITY_COLUMNS`, one row per phase and
  probability bin (as :func:`enso.verify.phase_reliability`).

:func:`example_report_data` builds a realistic report from the synthetic climate
for tests and the demo.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
import numpy as np
import pandas as pd

from enso.config import DEFAULT_COBE_BASE_URL, DEFAULT_INDEX_URL
from enso.months import Month, from_period, month_range, to_period, to_periods
from enso.nino34 import DEFAULT_BASE_PERIOD, PHASE_INDEX_LABELS, PHASE_THRESHOLD, PHASES, oni, phases_of

if TYPE_CHECKING:
    from enso.synthetic import SyntheticClimate

#: Columns every forecast table has (``target_month`` holds monthly Periods).
FORECAST_COLUMNS: tuple[str, ...] = ("lead", "target_month", "nino34_anomaly", "phase",
                                     "p_la_nina", "p_neutral", "p_el_nino")
#: Optional columns of a forecast table: the uncertainty range of the anomaly (°C).
RANGE_COLUMNS: tuple[str, str] = ("anomaly_low", "anomaly_high")
#: Columns of the tidy verification scores.
SCORE_COLUMNS: tuple[str, ...] = ("forecaster", "lead", "target_calendar_month", "metric", "value", "n")
#: Columns of the table of past forecasts whose target month is now observed.
OUTCOME_COLUMNS: tuple[str, ...] = ("init_month", "lead", "target_month", "forecast_anomaly",
                                    "observed_anomaly", "forecast_phase", "observed_phase")
#: Columns of a reliability table (per phase and forecast-probability bin).
RELIABILITY_COLUMNS: tuple[str, ...] = ("phase", "bin_centre", "mean_probability", "observed_frequency", "count")
#: Columns of a seasonal outlook table, one row per season (as :func:`enso.outlook.seasonal_outlook` gives them).
SEASONAL_OUTLOOK_COLUMNS: tuple[str, ...] = ("season", "season_label", "first_month", "last_month", "mean", "sd",
                                             "p_la_nina", "p_neutral", "p_el_nino")
#: Baseline forecasters the report knows by name (others are shown as named).
BASELINE_LABELS: dict[str, str] = {
    "persistence": "Persistence",
    "damped_persistence": "Damped persistence",
    "climatology": "Climatology",
    "linear_eof": "Linear EOF model",
}


@dataclass(frozen=True)
class MonthSpan:
    """An inclusive range of months, e.g. a training or scoring period."""

    first: Month
    last: Month

    def __post_init__(self) -> None:
        if self.last < self.first:
            raise ValueError(f"month span ends ({self.last}) before it starts ({self.first})")

    @classmethod
    def parse(cls, first: Month | str, last: Month | str) -> "MonthSpan":
        return cls(Month.parse(first), Month.parse(last))

    @property
    def n_months(self) -> int:
        return self.last.months_since(self.first) + 1

    def __str__(self) -> str:
        return f"{self.first} to {self.last}"


@dataclass(frozen=True)
class SourceCutoff:
    """The newest data used from one source, and where it came from."""

    name: str
    last_month: Month
    url: str
    sha256: str | None = None
    downloaded_at: dt.datetime | None = None


@dataclass(frozen=True)
class StaleInput:
    """An input whose provider has not published a month it usually has by now (the report's banner)."""

    name: str
    newest_month: Month | None
    #: The newest month that is due: every month after ``newest_month`` up to it is missing.
    overdue_month: Month
    url: str
    advice: str


@dataclass(frozen=True)
class ProvisionalNote:
    """A value in the report that may still change, and why (e.g. a preliminary SST month)."""

    month: Month
    what: str


@dataclass(frozen=True)
class ReportModel:
    """The model that made the forecast, and the periods it was built on."""

    version: str
    preset: str
    training: MonthSpan
    selection: MonthSpan | None
    is_champion: bool
    sst_source: str = ""
    created_at: dt.datetime | None = None
    data_fingerprint: str | None = None

    @property
    def status_text(self) -> str:
        return "champion" if self.is_champion else "no champion yet: newest model used"


@dataclass(frozen=True)
class CurrentState:
    """The observed Niño 3.4 state at the init month: ONI and RONI side by side, and the observed phase.

    ``oni_month`` trails ``anomaly_month`` by one: the ONI of the newest month
    needs the next month; so does RONI (``roni_month``, the 3-month mean of the
    relative Niño 3.4 anomaly). ``phase_index`` (``roni`` or ``oni``, the
    setting ENSO_PHASE_INDEX) says which of them defines ``observed_phase``;
    ``phase_source`` says where that index's values come from.
    ``recent_anomalies`` (and optionally ``recent_oni``, ``recent_roni``) are the
    last months (48 by convention) on a monthly ``PeriodIndex``.
    """

    anomaly_month: Month
    nino34_anomaly: float
    oni_month: Month | None
    oni: float | None
    observed_phase: str | None
    recent_anomalies: pd.Series
    recent_oni: pd.Series | None = None
    roni_month: Month | None = None
    roni: float | None = None
    recent_roni: pd.Series | None = None
    phase_index: str = "oni"
    phase_source: str = ""

    def __post_init__(self) -> None:
        _require_period_index(self.recent_anomalies, "recent_anomalies")
        for name in ("recent_oni", "recent_roni"):
            if getattr(self, name) is not None:
                _require_period_index(getattr(self, name), name)
        if self.phase_index not in PHASE_INDEX_LABELS:
            raise ValueError(f"phase index {self.phase_index!r}: expected one of {', '.join(PHASE_INDEX_LABELS)}")
        if self.observed_phase is not None and self.observed_phase not in PHASES:
            raise ValueError(f"observed phase of {self.phase_month}: unknown phase {self.observed_phase!r}")

    @property
    def phase_index_label(self) -> str:
        """``RONI`` or ``ONI``: the index that defines the observed phase."""
        return PHASE_INDEX_LABELS[self.phase_index]

    @property
    def phase_month(self) -> Month | None:
        """The month of ``observed_phase``: the newest month with a value of the phase index."""
        return self.roni_month if self.phase_index == "roni" else self.oni_month

    @property
    def provisional_months(self) -> tuple[Month, ...]:
        """Index months without a value of the phase index (ONI or RONI), so no observed phase, yet."""
        first = self.phase_month + 1 if self.phase_month is not None else self.anomaly_month
        return tuple(Month(i) for i in range(first.ordinal, self.anomaly_month.ordinal + 1))


@dataclass(frozen=True)
class ForecastTable:
    """One forecast: a row per lead with :data:`FORECAST_COLUMNS` (+ optional :data:`RANGE_COLUMNS`)."""

    init_month: Month
    model_version: str
    leads: pd.DataFrame
    uncertainty: str = ""

    def __post_init__(self) -> None:
        where = f"forecast from {self.init_month} ({self.model_version})"
        missing = [c for c in FORECAST_COLUMNS if c not in self.leads.columns]
        if missing:
            raise ValueError(f"{where}: lacks columns {missing}")
        leads = self.leads["lead"].to_numpy()
        if len(leads) == 0 or np.any(np.diff(leads) <= 0) or leads[0] < 1:
            raise ValueError(f"{where}: leads must be positive and ascending, got {[int(k) for k in leads]}")
        targets = to_periods(self.leads["target_month"])
        expected = pd.PeriodIndex([to_period(self.init_month + int(k)) for k in leads])
        if not targets.equals(expected):
            raise ValueError(f"{where}: target months {list(map(str, targets))} are not init month + lead")
        bad_phase = set(self.leads["phase"]) - set(PHASES)
        if bad_phase:
            raise ValueError(f"{where}: unknown phases {sorted(map(str, bad_phase))}")
        sums = self.leads[["p_la_nina", "p_neutral", "p_el_nino"]].sum(axis=1).to_numpy()
        if np.any(np.abs(sums - 1.0) > 1e-6):
            bad = [int(k) for k in leads[np.abs(sums - 1.0) > 1e-6]]
            raise ValueError(f"{where}: phase probabilities do not sum to 1 at leads {bad}")
        if any(c in self.leads.columns for c in RANGE_COLUMNS) and not self.has_range:
            raise ValueError(f"{where}: give both {RANGE_COLUMNS} or neither")

    @property
    def has_range(self) -> bool:
        return all(c in self.leads.columns for c in RANGE_COLUMNS)

    @property
    def target_months(self) -> list[Month]:
        return [from_period(p) for p in self.leads["target_month"]]


@dataclass(frozen=True)
class SeasonalOutlookTable:
    """A forecast's CPC-style seasonal outlook: a row per season with :data:`SEASONAL_OUTLOOK_COLUMNS`.

    Season s covers ``first_month`` = init + s .. ``last_month`` = init + s + 2
    (monthly Periods); ``mean`` and ``sd`` (°C) are of the 3-month mean of
    ``phase_index`` (``roni`` or ``oni``), the probabilities its phases'.
    """

    init_month: Month
    phase_index: str
    seasons: pd.DataFrame

    def __post_init__(self) -> None:
        where = f"seasonal outlook from {self.init_month}"
        missing = [c for c in SEASONAL_OUTLOOK_COLUMNS if c not in self.seasons.columns]
        if missing:
            raise ValueError(f"{where}: lacks columns {missing}")
        if self.phase_index not in PHASE_INDEX_LABELS:
            raise ValueError(f"{where}: phase index {self.phase_index!r}, expected one of "
                             f"{', '.join(PHASE_INDEX_LABELS)}")
        seasons = self.seasons["season"].to_numpy()
        if len(seasons) == 0 or np.any(np.diff(seasons) <= 0) or seasons[0] < 1:
            raise ValueError(f"{where}: seasons must be positive and ascending, got {[int(s) for s in seasons]}")
        first = to_periods(self.seasons["first_month"])
        if not first.equals(pd.PeriodIndex([to_period(self.init_month + int(s)) for s in seasons])):
            raise ValueError(f"{where}: first months {list(map(str, first))} are not init month + season")
        sums = self.seasons[["p_la_nina", "p_neutral", "p_el_nino"]].sum(axis=1).to_numpy()
        if np.any(np.abs(sums - 1.0) > 1e-6):
            raise ValueError(f"{where}: phase probabilities do not sum to 1 in seasons "
                             f"{[int(s) for s in seasons[np.abs(sums - 1.0) > 1e-6]]}")

    @property
    def phase_index_label(self) -> str:
        """``RONI`` or ``ONI``: the index whose 3-month means the outlook forecasts."""
        return PHASE_INDEX_LABELS[self.phase_index]


@dataclass(frozen=True)
class SstMap:
    """An SST anomaly field (°C, NaN on land) on a regular grid, for one month."""

    month: Month
    lat: np.ndarray
    lon: np.ndarray
    anomaly: np.ndarray
    title: str

    def __post_init__(self) -> None:
        if self.anomaly.shape != (np.size(self.lat), np.size(self.lon)):
            raise ValueError(f"map {self.title!r} of {self.month}: values have shape {self.anomaly.shape}, "
                             f"expected (lat, lon) = {(np.size(self.lat), np.size(self.lon))}")


@dataclass(frozen=True)
class Verification:
    """Scores of the model and the baselines on the same months.

    ``model_forecaster`` is the ``forecaster`` value of the model's rows (its
    version); every other forecaster is a baseline. ``period`` is the span of
    init months scored (the same for every forecaster). ``contingency`` is the
    phase table of the model at ``contingency_lead`` over the same period;
    ``reliability`` the model's reliability table per phase over the same
    forecasts, all leads pooled (:data:`RELIABILITY_COLUMNS`);
    ``reference_climatology`` says which months the phase frequencies of the
    RPSS and Brier-skill reference (the climatology baseline) come from. The
    seasonal outlook's scores are rows of ``scores`` with metrics ``seasonal_*``
    whose ``lead`` is the season (:mod:`db.verification`);
    ``seasonal_reliability`` is its reliability table, all seasons pooled.
    """

    scores: pd.DataFrame
    model_forecaster: str
    period: MonthSpan
    kind: str = "hindcast"
    contingency: pd.DataFrame | None = None
    contingency_lead: int | None = None
    reliability: pd.DataFrame | None = None
    reference_climatology: str = ""
    seasonal_reliability: pd.DataFrame | None = None

    def __post_init__(self) -> None:
        missing = [c for c in SCORE_COLUMNS if c not in self.scores.columns]
        if missing:
            raise ValueError(f"verification scores over {self.period}: lack columns {missing}")
        scores = self.scores.copy()
        scores["target_calendar_month"] = (pd.to_numeric(scores["target_calendar_month"], errors="coerce")
                                           .fillna(0).astype(int))
        scores["value"] = pd.to_numeric(scores["value"], errors="coerce").astype(float)
        object.__setattr__(self, "scores", scores)
        if self.model_forecaster not in set(scores["forecaster"]):
            raise ValueError(f"verification scores over {self.period}: no rows for the model "
                             f"{self.model_forecaster!r}")
        table = self.contingency
        if table is not None and (list(table.index) != list(PHASES) or list(table.columns) != list(PHASES)):
            raise ValueError(f"contingency table over {self.period}: rows and columns must be {PHASES} "
                             "(rows forecast, columns observed)")
        for what, reliability in (("reliability", self.reliability),
                                  ("seasonal reliability", self.seasonal_reliability)):
            if reliability is None:
                continue
            missing = [c for c in RELIABILITY_COLUMNS if c not in reliability.columns]
            if missing:
                raise ValueError(f"{what} table over {self.period}: lacks columns {missing}")
            unknown = set(reliability["phase"]) - set(PHASES)
            if unknown:
                raise ValueError(f"{what} table over {self.period}: unknown phases {sorted(map(str, unknown))}")

    @property
    def has_reliability(self) -> bool:
        """Whether the model's reliability table has a populated bin."""
        return self.reliability is not None and bool((self.reliability["count"] > 0).any())

    @property
    def has_seasonal_scores(self) -> bool:
        """Whether the model's seasonal outlooks were scored (a ``seasonal_rpss`` row of the model)."""
        rows = self.scores[(self.scores["metric"] == "seasonal_rpss")
                           & (self.scores["forecaster"] == self.model_forecaster)]
        return bool(rows["value"].notna().any())

    def by_lead(self, metric: str) -> pd.DataFrame:
        """One metric over all target months: rows lead, one column per forecaster (NaN where missing)."""
        rows = self.scores[(self.scores["target_calendar_month"] == 0) & (self.scores["metric"] == metric)]
        return rows.pivot_table(index="lead", columns="forecaster", values="value", aggfunc="first", dropna=False)

    @property
    def baselines(self) -> list[str]:
        """Forecasters other than the model, in a stable order (known baselines first)."""
        names = [f for f in dict.fromkeys(self.scores["forecaster"]) if f != self.model_forecaster]
        known = [b for b in BASELINE_LABELS if b in names]
        return known + sorted(n for n in names if n not in BASELINE_LABELS)


@dataclass(frozen=True)
class MethodInfo:
    """Definitions the report states in its method section."""

    base_period: tuple[int, int] = DEFAULT_BASE_PERIOD
    phase_threshold: float = PHASE_THRESHOLD
    caveats: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReportData:
    """Everything one monthly report shows.

    ``phase_climatology`` holds the climatological phase frequencies per target
    calendar month (index 1..12, columns :data:`~enso.nino34.PHASES`, as
    :func:`enso.verify.phase_climatology`). ``baselines`` holds baseline anomaly
    forecasts (index lead, one column per baseline, e.g. ``persistence``,
    ``damped_persistence``). ``outcomes`` lists past forecasts whose target month
    is now observed (:data:`OUTCOME_COLUMNS`; ``observed_phase`` None while
    provisional). ``stale_inputs`` (a banner at the top) are the inputs that were
    beyond their provider's usual publication day when the report was made.
    ``seasonal_outlook`` is the forecast's CPC-style outlook (None when none is
    stored, e.g. a model that states no ONI spread).
    """

    init_month: Month
    issued_at: dt.datetime
    sources: tuple[SourceCutoff, ...]
    model: ReportModel
    current: CurrentState
    forecast: ForecastTable
    method: MethodInfo = field(default_factory=MethodInfo)
    phase_climatology: pd.DataFrame | None = None
    baselines: pd.DataFrame | None = None
    previous_forecast: ForecastTable | None = None
    observed_map: SstMap | None = None
    predicted_map: SstMap | None = None
    verification: Verification | None = None
    outcomes: pd.DataFrame | None = None
    provisional: tuple[ProvisionalNote, ...] = ()
    stale_inputs: tuple[StaleInput, ...] = ()
    seasonal_outlook: SeasonalOutlookTable | None = None

    def __post_init__(self) -> None:
        if self.issued_at.tzinfo is None:
            raise ValueError(f"report {self.init_month}: issued_at must be timezone-aware (UTC)")
        if self.forecast.init_month != self.init_month:
            raise ValueError(f"report {self.init_month}: forecast is from {self.forecast.init_month}")
        if self.seasonal_outlook is not None and self.seasonal_outlook.init_month != self.init_month:
            raise ValueError(f"report {self.init_month}: seasonal outlook is from {self.seasonal_outlook.init_month}")
        if self.outcomes is not None:
            missing = [c for c in OUTCOME_COLUMNS if c not in self.outcomes.columns]
            if missing:
                raise ValueError(f"report {self.init_month}: outcomes lack columns {missing}")
        if self.phase_climatology is not None and list(self.phase_climatology.columns) != list(PHASES):
            raise ValueError(f"report {self.init_month}: phase climatology columns must be {PHASES}")

    @property
    def provisional_notes(self) -> tuple[ProvisionalNote, ...]:
        """The given notes, plus one per index month that has no value of the phase index (observed phase) yet."""
        label = self.current.phase_index_label
        derived = tuple(
            ProvisionalNote(m, f"Niño 3.4 anomaly of {m} is in, but its {label} and observed phase need {m + 1}")
            for m in self.current.provisional_months)
        return derived + self.provisional

    @property
    def scores_out_of_sample(self) -> bool | None:
        """Whether the scored init months all come after the training and selection periods (None: no scores)."""
        if self.verification is None:
            return None
        used = self.model.selection.last if self.model.selection else self.model.training.last
        return self.verification.period.first > max(used, self.model.training.last)

    @property
    def file_name(self) -> str:
        return report_file_name(self.init_month)


def report_file_name(init_month: Month) -> str:
    """``enso-report-YYYY-MM.html``: the report's file and attachment name."""
    return f"enso-report-{init_month}.html"


def _require_period_index(series: pd.Series, what: str) -> None:
    if not isinstance(series.index, pd.PeriodIndex):
        raise ValueError(f"{what}: expected a monthly PeriodIndex, got {type(series.index).__name__}")


# --------------------------------------------------------------------------- example data

@functools.lru_cache(maxsize=8)
def _example_relative(seed: int, last: Month) -> pd.DataFrame:
    """The relative index of the synthetic 2° fields of ``seed``, 1950-01..``last`` (cached: a few seconds)."""
    from enso.relative import relative_index_from_grids
    from enso.synthetic import synthetic_climate

    return relative_index_from_grids(synthetic_climate(seed, 2.0).grids(Month.of(1950, 1), last)).table


def _example_anomaly_map(climate: "SyntheticClimate", month: Month, base: tuple[int, int]) -> np.ndarray:
    """A synthetic month's SST anomaly field against its calendar month's mean over the base years."""
    mean = np.mean([climate.grid(Month.of(year, month.month)).values for year in range(base[0], base[1] + 1)],
                   axis=0)
    return climate.grid(month).values - mean


def example_report_data(*, init_month: Month | str = "2025-12", seed: int = 8,
                        model_version: str = "convlstm-example-0001", index_url: str = DEFAULT_INDEX_URL,
                        with_history: bool = True, issued_at: dt.datetime | None = None) -> ReportData:
    """A realistic :class:`ReportData` from the synthetic climate (:mod:`enso.synthetic`), for tests and demos.

    The Niño 3.4 anomalies and SST maps are those of the synthetic climate of
    ``seed`` on its 2° grid (seed 8 has an El Niño peaking in 2025-12);
    ``init_month`` must be 2001-01 or later (scores start in 2000). The
    baselines are the real :mod:`enso.baselines`, fitted on the training period;
    the example *model* is damped persistence nudged towards the synthetic
    future, with skill fading with lead, and its lead-1 map is half today's
    anomaly, half next month's. ``with_history=False`` gives a first operational
    month: no verification, no last month's forecast, no outcomes. Hostile
    strings can be injected through ``model_version`` and ``index_url`` (or
    :func:`dataclasses.replace`).
    """
    from enso.baselines import Climatology, DampedPersistence, Persistence, causal_base, gaussian_phase_probabilities
    from enso.outlook import (
        RelativeOffset,
        climatological_outlook,
        outlook_forecast_frame,
        seasonal_outlook,
        seasonal_scores,
    )
    from enso.synthetic import synthetic_climate
    from enso.verify import attach_observations, contingency_table, forecast_frame, phase_reliability, score_table

    init = Month.parse(init_month)
    base = DEFAULT_BASE_PERIOD
    first = Month.of(1950, 1)
    climate = synthetic_climate(seed, 2.0)
    truth = climate.index_table(first, init + 12, base)["anomaly"].round(2)
    observed = truth.loc[:to_period(init)]
    training, selection = MonthSpan.parse("1951-01", "1989-12"), MonthSpan.parse("1990-01", "1999-12")
    scoring = MonthSpan(selection.last + 1, init - 13)
    oni_series = oni(observed)
    # The phase is RONI's (the system's default ENSO_PHASE_INDEX): the relative index of the same fields.
    relative = _example_relative(seed, Month.of(max(init.year, 2020) // 10 * 10 + 9, 12))
    roni_series = oni(relative["relative_anomaly"].loc[:to_period(init)].round(2)).reindex(observed.index)
    phase = pd.Series(phases_of(roni_series).to_numpy(), index=observed.index, dtype=object)
    clim_years = (max(base[0], first.year + 1), min(base[1], init.year - 1))
    climatology = Climatology().fit(phase, f"{clim_years[0]}-01", f"{clim_years[1]}-12")  # shown beside the forecast
    # The RPSS/BSS reference, as db.verification takes it: the 30 years of phases ending with the selection period.
    reference_years = causal_base(phase.dropna().index, str(selection.last))
    reference = Climatology().fit(phase, f"{reference_years[0]}-01", f"{reference_years[1]}-12")
    persistence = Persistence(probabilities="gaussian").fit(observed, str(training.first), str(training.last))
    damped = DampedPersistence(probabilities="gaussian", level_years=30).fit(observed, str(training.first),
                                                                            str(training.last))
    rng = np.random.default_rng(seed + 1)
    leads = np.arange(1, 13)
    spread = 0.2 + 0.07 * leads  # the example model's error standard deviation by lead
    # Its seasonal outlook of RONI: an ONI error sd per (target month, lead), the observed offset ONI - RONI.
    oni_spread = np.tile(0.8 * spread, (12, 1))
    offset = RelativeOffset.observed(observed, relative["relative_anomaly"].loc[:to_period(init)].round(2))

    def outlook_of(frame: pd.DataFrame) -> pd.DataFrame:
        return seasonal_outlook(frame, oni_spread, phase_index="roni", offset=offset)

    def model_frame(inits: pd.PeriodIndex) -> pd.DataFrame:
        start = damped.predict(truth, inits)["nino34_anomaly"].to_numpy().reshape(inits.size, leads.size)
        future = truth.reindex([i + int(k) for i in inits for k in leads]).to_numpy().reshape(inits.size, -1)
        weight = 0.55 * np.exp(-leads / 8.0)
        known = np.where(np.isfinite(future), future, start)
        drift = rng.normal(0.0, 0.08, (inits.size, leads.size)).cumsum(axis=1)
        anomaly = start + weight * (known - start) + drift
        return forecast_frame(inits, leads, anomaly, gaussian_phase_probabilities(anomaly, spread), sd=spread)

    def forecast_table(at: Month) -> ForecastTable:
        frame = model_frame(to_periods([at]))
        table = pd.DataFrame({
            "lead": frame["lead"], "target_month": frame["target_month"],
            "nino34_anomaly": frame["nino34_anomaly"].round(2),
            "phase": phases_of(frame["nino34_anomaly"]).to_numpy(),
            "p_la_nina": frame["p_la_nina"], "p_neutral": frame["p_neutral"], "p_el_nino": frame["p_el_nino"],
            "anomaly_low": (frame["nino34_anomaly"] - 1.2816 * spread).round(2),
            "anomaly_high": (frame["nino34_anomaly"] + 1.2816 * spread).round(2),
        })
        return ForecastTable(at, model_version, table, uncertainty="10-90 % range")

    at_init = to_periods([init])
    baselines = pd.DataFrame({
        "persistence": persistence.predict(observed, at_init)["nino34_anomaly"].to_numpy(),
        "damped_persistence": damped.predict(observed, at_init)["nino34_anomaly"].to_numpy(),
    }, index=pd.Index(leads, name="lead"))

    verification = outcomes = previous = None
    if with_history:
        inits = to_periods(month_range(scoring.first, scoring.last))
        frames = {
            model_version: model_frame(inits),
            "persistence": persistence.predict(observed, inits),
            "damped_persistence": damped.predict(observed, inits),
            "climatology": reference.predict(inits),
        }
        parts = []
        for name, frame in frames.items():
            scored = score_table(attach_observations(frame, observed, phase), reference.frequencies)
            parts.append(scored.assign(forecaster=name))
        seasons = outlook_forecast_frame(outlook_of(frames[model_version]), roni_series, phase)
        seasons = seasons[seasons["observed_phase"].notna().to_numpy()]
        parts += [seasonal_scores(seasons, reference.frequencies).assign(forecaster=model_version),
                  seasonal_scores(climatological_outlook(seasons, reference.frequencies), reference.frequencies)
                  .assign(forecaster="climatology")]
        scores = pd.concat(parts, ignore_index=True)[list(SCORE_COLUMNS)]
        joined = attach_observations(frames[model_version], observed, phase)
        lead1 = joined.query("lead == 1")
        verification = Verification(
            scores=scores, model_forecaster=model_version, period=scoring, kind="hindcast",
            contingency=contingency_table(phases_of(lead1["nino34_anomaly"]), lead1["observed_phase"]),
            contingency_lead=1,
            reliability=phase_reliability(joined[["p_la_nina", "p_neutral", "p_el_nino"]].to_numpy(),
                                          joined["observed_phase"].to_numpy(object)),
            reference_climatology=f"observed phase frequencies per calendar month over "
                                  f"{reference_years[0]}-01 to {reference_years[1]}-12",
            seasonal_reliability=phase_reliability(seasons[["p_la_nina", "p_neutral", "p_el_nino"]].to_numpy(),
                                                   seasons["observed_phase"].to_numpy(object)))
        previous = forecast_table(init - 1)
        past = pd.concat([model_frame(to_periods([target - k])).query(f"lead == {k}")
                          for target in (init - 1, init) for k in (1, 3, 6)])
        past = attach_observations(past, observed, phase)
        outcomes = pd.DataFrame({
            "init_month": past["init_month"], "lead": past["lead"], "target_month": past["target_month"],
            "forecast_anomaly": past["nino34_anomaly"].round(2), "observed_anomaly": past["observed_anomaly"],
            "forecast_phase": phases_of(past["nino34_anomaly"]).to_numpy(), "observed_phase": past["observed_phase"],
        }).reset_index(drop=True)

    oni_month = init - 1
    oni_value = float(oni_series.loc[to_period(oni_month)])
    recent = observed.iloc[-48:]
    current = CurrentState(
        anomaly_month=init, nino34_anomaly=float(observed.iloc[-1]), oni_month=oni_month,
        oni=round(oni_value, 2), observed_phase=phase.loc[to_period(oni_month)],
        recent_anomalies=recent, recent_oni=oni_series.iloc[-48:], roni_month=oni_month,
        roni=round(float(roni_series.loc[to_period(oni_month)]), 2), recent_roni=roni_series.iloc[-48:],
        phase_index="roni", phase_source=f"RONI: CPC's relative Niño 3.4 file 1950-01..{init}")
    issued = issued_at or dt.datetime.combine((init + 1).first_day, dt.time(9, 30), dt.timezone.utc) \
        + dt.timedelta(days=7)
    downloaded = issued - dt.timedelta(hours=2)
    sources = (
        SourceCutoff("CPC Niño 3.4 monthly index (ERSSTv6, 1991-2020 base)", init, index_url,
                     "3f5a" * 16, downloaded),
        SourceCutoff("JMA COBE-SST monthly SST grids (cobe-sst v1)", init, DEFAULT_COBE_BASE_URL, "9c0e" * 16,
                     downloaded),
    )
    model = ReportModel(version=model_version, preset="small", training=training, selection=selection,
                        is_champion=with_history, sst_source="cobe",
                        created_at=dt.datetime(2024, 1, 3, 12, 0, tzinfo=dt.timezone.utc),
                        data_fingerprint="b7c1" * 16)
    forecast = forecast_table(init)
    outlook = outlook_of(forecast.leads.assign(init_month=to_period(init)))
    pacific_lat = (climate.lat >= -30) & (climate.lat <= 30)
    pacific_lon = (climate.lon >= 100) & (climate.lon <= 300)
    now = _example_anomaly_map(climate, init, base)[np.ix_(pacific_lat, pacific_lon)]
    after = _example_anomaly_map(climate, init + 1, base)[np.ix_(pacific_lat, pacific_lon)]
    lat, lon = climate.lat[pacific_lat], climate.lon[pacific_lon]
    return ReportData(
        init_month=init, issued_at=issued, sources=sources, model=model, current=current, forecast=forecast,
        method=MethodInfo(base_period=base, caveats=(
            "Trained on observations alone (about 1,200 monthly samples): skill beyond a few months is modest.",
            "Phase probabilities refer to the monthly anomaly; the observed phase comes from RONI.",
        )),
        phase_climatology=climatology.frequencies,
        baselines=baselines, previous_forecast=previous,
        observed_map=SstMap(init, lat, lon, now, f"Observed SST anomaly, {init}"),
        predicted_map=SstMap(init + 1, lat, lon, (now + after) / 2, f"Predicted SST anomaly, {init + 1} (lead 1)"),
        verification=verification, outcomes=outcomes,
        provisional=(ProvisionalNote(init, "SST grids of the newest month are preliminary and may be revised"),),
        seasonal_outlook=SeasonalOutlookTable(init, "roni", outlook.drop(columns=["init_month", "phase_index"])),
    )

