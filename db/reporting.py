"""The monthly report from the store: assemble, render and store it, and email it once.

:func:`assemble_report` builds every part of :class:`reports.data.ReportData`
from the store (``reports/`` itself knows no SQL):

* **forecast**: the operational forecast of the init month (default: the newest
  init month with one). Of several models' forecasts for that month, the model
  :func:`db.registry.choose_model` picks (champion, else newest) if it made one,
  else the one written last. Its **uncertainty** is the anomaly ± 1.2816 × the
  model's validation RMSE at that lead (``model.metrics``): the 10-90 % range if
  errors were normal and as large as on the selection period;
* **sources**: per SST source the newest stored month up to the init month (its
  URL, checksum and when it was stored), and the current vintage of each index
  product (the Niño 3.4 index, CPC's relative index, the relative index computed
  from the grids: URL, checksum, download time);
* **current state**: the last 48 months of index anomalies up to the init month,
  the newest ONI and RONI side by side, and the observed phase of the phase index
  (ENSO_PHASE_INDEX, :mod:`db.phase`; the report says which). Every phase in the
  report (current state, phase climatology, contingency table, outcomes) is the
  phase index's; anomalies are the traditional Niño 3.4 index's. Index months
  without a phase yet are reported as provisional
  (:attr:`reports.data.ReportData.provisional_notes`);
* **baselines**: persistence and damped persistence for leads 1-12, fitted on
  the model's training period (:class:`db.verification.IndexBaselines`; the
  caveats state the periods and the linear EOF model's causal anomaly base);
  ``phase_climatology`` (shown beside the forecast probabilities) is the observed
  phase frequencies over the base period, omitted unless the index has a phase
  for every month of it;
* **maps**: the observed SST anomaly of the init month (the model's SST source)
  against the base period's climatology of that calendar month if the store
  holds the base period, else against the latest 30 complete years it holds
  (the title says which); the predicted lead-1 map from ``forecast_grid``
  (its title says how the model made it); both cut to :data:`MAP_LAT` x :data:`MAP_LON`;
* **verification**: the model's stored hindcast scores (:func:`db.verification.load_scores`,
  with the Brier skill scores per phase and the CRPS where a forecaster states a
  spread), its lead-1 phase contingency table and its reliability table per phase
  (all leads pooled, :func:`db.verification.model_reliability`) over the same
  init months, and which months the RPSS/BSS reference climatology comes from;
  the stored seasonal scores (``seasonal_*``) come with the scores, and the
  reliability of the seasonal outlooks of the same init months
  (:func:`db.verification.seasonal_verification`);
* **seasonal outlook**: the stored CPC-style outlook of the report's model and
  init month (table ``seasonal_outlook``, :mod:`enso.outlook`), none when it has none;
* **outcomes**: operational forecasts at leads :data:`OUTCOME_LEADS` whose target
  is the init month or the month before, beside what was observed.

:func:`render_and_store` renders and writes the file and the ``report`` row;
:func:`email_report` sends the stored report once per init month.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from dataclasses import dataclass, replace
from email.utils import parseaddr
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from sqlalchemy import Engine, delete, desc, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from db import registry, store
from db.forecast_rows import load_forecast_grid, load_forecasts
from db.phase import PhaseIndex, load_relative_index
from db.registry import ModelInfo as RegistryModelInfo
from db.seasonal_outlook import load_seasonal_outlook
from db.schema import (
    EmailDelivery,
    Forecast,
    IndexObservation,
    Model,
    Report,
    SstGrid,
    utcnow,
)
from db.status import input_freshness
from db.verification import (
    IndexBaselines,
    climatology_years,
    eof_base,
    load_scores,
    model_reliability,
    parse_base_period,
    scored_period,
    seasonal_verification,
)
from enso import grids
from enso.config import Settings
from enso.files import atomic_write
from enso.model.predict import lead1_map_description
from enso.model.presets import Preset
from enso.months import Month, from_period, month_range, to_period, to_periods
from enso.sources.index_products import DEFAULT_PRODUCT, GRIDS_RELATIVE_PRODUCT, RELATIVE_PRODUCT
from enso.verify import attach_observations, contingency_table, phase_climatology
from reports.data import (
    CurrentState,
    ForecastTable,
    MethodInfo,
    MonthSpan,
    ReportData,
    ReportModel,
    SeasonalOutlookTable,
    SourceCutoff,
    SstMap,
    StaleInput,
    Verification,
    report_file_name,
)
from reports.email import EmailDeliveryError, SmtpSettings, build_message, send_message
from reports.render import RenderedReport, render_report

#: Latitude and longitude ranges of the report's SST maps (the tropical Pacific).
MAP_LAT: tuple[float, float] = (-30.0, 30.0)
MAP_LON: tuple[float, float] = (100.0, 300.0)
#: Months of index history the report shows.
HISTORY_MONTHS = 48
#: Leads of the past forecasts shown against what happened.
OUTCOME_LEADS: tuple[int, ...] = (1, 3, 6)
#: The normal quantile of the 10-90 % range: anomaly ± Z × RMSE.
RANGE_Z = 1.2816
SOURCE_NAMES = {"cobe": "JMA COBE-SST", "ersst": "NOAA ERSST"}
#: The index products in the report's data provenance, by product.
INDEX_SOURCE_NAMES = {DEFAULT_PRODUCT: "Niño 3.4 monthly index", RELATIVE_PRODUCT: "Relative Niño 3.4 monthly index",
                      GRIDS_RELATIVE_PRODUCT: "Relative Niño 3.4 index computed from the stored grids"}


def _utc(when: dt.datetime) -> dt.datetime:
    """A stored timestamp as aware UTC (SQLite hands back naive UTC values)."""
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)


# --------------------------------------------------------------------------- the forecast

def newest_operational_init(engine: Engine) -> Month:
    """The newest init month with an operational forecast; a clear error when there is none."""
    with engine.connect() as conn:
        newest = conn.execute(select(Forecast.init_month).where(Forecast.kind == "operational")
                              .order_by(desc(Forecast.init_month)).limit(1)).scalar()
    if newest is None:
        raise LookupError("the store holds no operational forecast yet: run `enso forecast --init YYYY-MM` "
                          "(the newest month of data by default)")
    return store.date_month(newest)


def _operational_rows(engine: Engine, init: Month) -> pd.DataFrame:
    rows = load_forecasts(engine, kind="operational", init_start=init, init_end=init)
    if rows.empty:
        raise LookupError(f"no operational forecast for init month {init} in the store: "
                          f"run `enso forecast --init {init}`")
    return rows


def _report_model(engine: Engine, rows: pd.DataFrame) -> RegistryModelInfo:
    """The chosen model (champion, else newest) if it forecast this month, else the model written last."""
    try:
        chosen = registry.choose_model(engine).info.version
    except LookupError:
        chosen = None
    versions = set(rows["model_version"])
    version = chosen if chosen in versions else rows.sort_values("created_at")["model_version"].iloc[-1]
    return registry.model_info(engine, version)


def _validation_rmse(info: RegistryModelInfo) -> dict[int, float]:
    validation = info.metrics.get("validation", {})
    return {int(k): float(r) for k, r in zip(validation.get("lead", []), validation.get("rmse", []))
            if r is not None and np.isfinite(r)}


def forecast_table(rows: pd.DataFrame, info: RegistryModelInfo) -> ForecastTable:
    """One model's stored forecast of one init month, with its 10-90 % range when every lead has a validation RMSE."""
    mine = rows[rows["model_version"] == info.version].sort_values("lead")
    init = from_period(mine["init_month"].iloc[0])
    leads = mine[["lead", "target_month", "nino34_anomaly", "phase", "p_la_nina", "p_neutral", "p_el_nino"]]
    leads = leads.reset_index(drop=True)
    rmse = _validation_rmse(info)
    uncertainty = ""
    if all(int(k) in rmse for k in leads["lead"]):
        spread = np.array([rmse[int(k)] for k in leads["lead"]])
        leads = leads.assign(anomaly_low=leads["nino34_anomaly"] - RANGE_Z * spread,
                             anomaly_high=leads["nino34_anomaly"] + RANGE_Z * spread)
        uncertainty = "10-90 % range: ± 1.28 × the model's validation RMSE at each lead"
    return ForecastTable(init, info.version, leads, uncertainty=uncertainty)


def _previous_forecast(engine: Engine, init: Month, info: RegistryModelInfo) -> ForecastTable | None:
    """Last month's operational forecast: the same model's if stored, else the one written last."""
    rows = load_forecasts(engine, kind="operational", init_start=init - 1, init_end=init - 1)
    if rows.empty:
        return None
    previous = info if info.version in set(rows["model_version"]) else registry.model_info(
        engine, rows.sort_values("created_at")["model_version"].iloc[-1])
    return forecast_table(rows, previous)


# --------------------------------------------------------------------------- observations and sources

def _sources(engine: Engine, init: Month) -> tuple[SourceCutoff, ...]:
    out = []
    with engine.connect() as conn:
        for source in conn.execute(select(SstGrid.source).distinct().order_by(SstGrid.source)).scalars():
            row = conn.execute(select(SstGrid.month, SstGrid.source_url, SstGrid.sha256, SstGrid.updated_at,
                                      SstGrid.product_version)
                               .where(SstGrid.source == source, SstGrid.month <= store.month_date(init))
                               .order_by(desc(SstGrid.month)).limit(1)).first()
            if row is not None:
                name = f"{SOURCE_NAMES.get(source, source)} monthly SST grids ({row.product_version})"
                out.append(SourceCutoff(name, store.date_month(row.month), row.source_url, row.sha256,
                                        _utc(row.updated_at)))
        vintages = [(name, store.current_vintage(conn, product)) for product, name in INDEX_SOURCE_NAMES.items()]
    for name, vintage in vintages:
        if vintage is not None:
            out.append(SourceCutoff(f"{name} ({vintage.format}, {vintage.base_period} base)",
                                    min(store.date_month(vintage.last_month), init), vintage.url, vintage.sha256,
                                    _utc(vintage.downloaded_at)))
    return tuple(out)


def _current_state(index: pd.DataFrame, relative: pd.DataFrame, phase: PhaseIndex, init: Month) -> CurrentState:
    """ONI and RONI side by side up to ``init``, and the observed phase of the phase index (its newest month)."""
    upto = index.loc[:to_period(init)]
    anomaly = upto["anomaly"].dropna()
    if anomaly.empty or anomaly.index[-1] != to_period(init):
        raise LookupError(f"the index holds no Niño 3.4 anomaly for init month {init}: run `enso ingest`")
    oni = upto["oni"].dropna()
    roni = relative["roni"].loc[:to_period(init)].dropna()
    phased = phase.phase.loc[:to_period(init)].dropna()
    window = upto.iloc[-HISTORY_MONTHS:]
    return CurrentState(
        anomaly_month=init, nino34_anomaly=float(anomaly.iloc[-1]),
        oni_month=_month(oni.index[-1]) if len(oni) else None, oni=float(oni.iloc[-1]) if len(oni) else None,
        observed_phase=phased.iloc[-1] if len(phased) else None,
        recent_anomalies=window["anomaly"], recent_oni=window["oni"],
        roni_month=_month(roni.index[-1]) if len(roni) else None, roni=float(roni.iloc[-1]) if len(roni) else None,
        recent_roni=relative["roni"].reindex(window.index) if len(relative) else None,
        phase_index=phase.name, phase_source=phase.describe())


def _month(period: pd.Period) -> Month:
    return Month.of(period.year, period.month)


def _map_region(field: xr.DataArray) -> xr.DataArray:
    return grids.crop(field, MAP_LAT, MAP_LON)


def _observed_map(engine: Engine, source: str, init: Month,
                  base: tuple[int, int]) -> tuple[SstMap | None, tuple[int, int] | None]:
    """The init month's SST anomaly against its calendar month's mean over the base (or latest 30) years,
    and those years."""
    stored = store.stored_months(engine, source)
    if init not in stored:
        return None, None
    years = climatology_years(stored, base)
    same_month = [g for y in range(years[0], years[1] + 1)
                  for g in store.load_grids(engine, source, Month.of(y, init.month), Month.of(y, init.month))]
    now = store.load_grids(engine, source, init, init)[0]
    climatology = np.mean([g.values for g in same_month], axis=0)
    field = _map_region(xr.DataArray(now.values - climatology, dims=("lat", "lon"),
                                     coords={"lat": now.lat, "lon": now.lon}))
    against = f"{years[0]}-{years[1]}" + ("" if years == base else f", as the store lacks {base[0]}-{base[1]}")
    return SstMap(init, field.lat.values, field.lon.values, field.values,
                  f"Observed SST anomaly, {init} (vs {against})"), years


def _predicted_map(engine: Engine, info: RegistryModelInfo, init: Month) -> SstMap | None:
    """The stored lead-1 map, titled with how the model made it."""
    grid = load_forecast_grid(engine, model_version=info.version, kind="operational", init_month=init)
    if grid is None:
        return None
    field = _map_region(grid)
    target = Month.parse(grid.attrs.get("target_month", str(init + 1)))
    how = lead1_map_description(Preset.from_dict(info.config))
    return SstMap(target, field.lat.values, field.lon.values, field.values,
                  f"Predicted SST anomaly, {target} (lead 1; {how})")


def _base_phase_climatology(index: pd.DataFrame, base: tuple[int, int]) -> pd.DataFrame | None:
    """Observed phase frequencies per calendar month over the base period; None unless every month of it has a phase."""
    phases = index["phase"].reindex(to_periods(month_range(Month.of(base[0], 1), Month.of(base[1], 12))))
    return None if phases.isna().any() else phase_climatology(phases, f"{base[0]}-01", f"{base[1]}-12")


# --------------------------------------------------------------------------- verification and outcomes

def _verification(engine: Engine, info: RegistryModelInfo, index: pd.DataFrame,
                  phase: PhaseIndex) -> Verification | None:
    """The model's stored scores: of its hindcasts when scored, else of its selection forecasts (a model
    trained on rolling windows has no later months to hindcast until they arrive); with the reliability of its
    seasonal outlooks of the same kind and init months against the phase index ``phase``."""
    version = info.version
    kind, period = "hindcast", scored_period(engine, version, "hindcast")
    if period is None:
        kind, period = "selection", scored_period(engine, version, "selection")
    if period is None:
        return None
    baselines = IndexBaselines.fit(index, info, kind)
    scores = load_scores(engine, version, kind, period)
    stored = load_forecasts(engine, model_version=version, kind=kind, init_start=period[0], init_end=period[1])
    joined = attach_observations(stored, index["anomaly"], index["phase"])
    joined = joined[np.isfinite(joined["observed_anomaly"].to_numpy(dtype=np.float64))]
    lead1 = joined[joined["lead"] == 1]
    years = baselines.reference_years
    reference = (f"observed phase frequencies per calendar month over {years[0]}-01 to {years[1]}-12, the "
                 f"{years[1] - years[0] + 1} years before the scored init months" if years else "")
    seasonal = seasonal_verification(engine, version, kind, period, phase, baselines.phase_climatology)
    return Verification(scores=scores, model_forecaster=version, period=MonthSpan(*period), kind=kind,
                        contingency=contingency_table(lead1["phase"], lead1["observed_phase"]), contingency_lead=1,
                        reliability=model_reliability(joined), reference_climatology=reference,
                        seasonal_reliability=seasonal.reliability)


def _seasonal_outlook(engine: Engine, info: RegistryModelInfo, init: Month) -> SeasonalOutlookTable | None:
    """The stored seasonal outlook of the model's operational forecast from ``init`` (None when there is none)."""
    rows = load_seasonal_outlook(engine, model_version=info.version, kind="operational", init_start=init,
                                 init_end=init)
    if rows.empty:
        return None
    return SeasonalOutlookTable(init, str(rows["phase_index"].iloc[0]), rows.reset_index(drop=True))


def _outcomes(engine: Engine, init: Month, version: str, observed_phase: pd.Series) -> pd.DataFrame | None:
    """Operational forecasts for the init month and the month before, beside the observations
    (``observed_phase``: the phase index's phase by month).

    Per init month, the report's model if it forecast then, else the model written last.
    """
    stmt = (select(Forecast.model_version, Forecast.created_at, Forecast.init_month, Forecast.lead_months,
                   Forecast.target_month, Forecast.nino34_anomaly, Forecast.phase, IndexObservation.anomaly)
            .join(IndexObservation, IndexObservation.month == Forecast.target_month)
            .where(Forecast.kind == "operational", Forecast.lead_months.in_(OUTCOME_LEADS),
                   Forecast.target_month.in_([store.month_date(init - 1), store.month_date(init)]),
                   IndexObservation.anomaly.is_not(None)))
    with engine.connect() as conn:
        rows = pd.DataFrame(conn.execute(stmt).all())
    if rows.empty:
        return None
    rows["_theirs"] = rows["model_version"] != version
    rows = rows.sort_values(["_theirs", "created_at"], ascending=[True, False])
    rows = rows.drop_duplicates(["init_month", "lead_months"]).sort_values(["target_month", "lead_months"])
    targets = to_periods([Month.from_date(d) for d in rows["target_month"]])
    return pd.DataFrame({
        "init_month": [Month.from_date(d) for d in rows["init_month"]],
        "lead": rows["lead_months"].astype(int).to_numpy(),
        "target_month": targets,
        "forecast_anomaly": rows["nino34_anomaly"].astype(float).to_numpy(),
        "observed_anomaly": rows["anomaly"].astype(float).to_numpy(),
        "forecast_phase": rows["phase"].to_numpy(),
        "observed_phase": observed_phase.reindex(targets).to_numpy(),
    })


# --------------------------------------------------------------------------- assembly

def _report_model_info(engine: Engine, info: RegistryModelInfo) -> ReportModel:
    with engine.connect() as conn:
        fingerprint = conn.execute(select(Model.data_fingerprint).where(Model.version == info.version)).scalar()
    return ReportModel(version=info.version, preset=info.preset, training=MonthSpan(info.train_start, info.train_end),
                       selection=MonthSpan(info.train_end + 1, info.valid_end), is_champion=info.status == "champion",
                       sst_source=info.sst_source, created_at=_utc(info.created_at), data_fingerprint=fingerprint)


def assemble_report(engine: Engine, settings: Settings, init_month: Month | None = None, *,
                    issued_at: dt.datetime | None = None) -> ReportData:
    """Every part of the report of ``init_month`` (default: the newest operational forecast's) from the store.

    The stale-input banner judges the inputs at ``issued_at`` (ENSO_STALE_INPUT_AS_OF where set)."""
    init = init_month or newest_operational_init(engine)
    rows = _operational_rows(engine, init)
    info = _report_model(engine, rows)
    nino34, relative = store.load_index(engine), load_relative_index(engine)
    phase = PhaseIndex.of(settings.phase_index, nino34, relative)
    index = phase.observed(nino34)  # the phases below are the phase index's (ENSO_PHASE_INDEX)
    base = parse_base_period(info.base_period, (settings.anomaly_base_start, settings.anomaly_base_end))
    baselines = IndexBaselines.fit(index, info)
    at_init = to_periods([init])
    forecast = forecast_table(rows, info)
    baseline_leads = pd.DataFrame({
        "persistence": baselines.persistence.predict(index["anomaly"], at_init)["nino34_anomaly"].to_numpy(),
        "damped_persistence": baselines.damped_persistence.predict(index["anomaly"], at_init)["nino34_anomaly"]
        .to_numpy(),
    }, index=pd.Index(baselines.persistence.leads, name="lead"))
    verification = _verification(engine, info, index, phase)
    caveats = [
        f"Baselines (persistence, damped persistence, climatology, linear EOF model) are fitted on the model's "
        f"training period {info.train_start} to {info.train_end}; none sees a scored month.",
        f"Baselines in detail: {baselines.describe(info)}.",
        *_eof_caveat(engine, info, index),
        f"The observed phase of a month comes from its {phase.label} (ENSO_PHASE_INDEX), so the newest month's "
        "phase is provisional; forecast anomalies are scored against the traditional Niño 3.4 index.",
    ]
    observed_map, map_years = _observed_map(engine, info.sst_source, init, base)
    if map_years is not None and map_years != base:
        caveats.append(f"The observed SST map is against {map_years[0]}-{map_years[1]}: the store does not hold "
                       f"the grids of the base period {base[0]}-{base[1]}.")
    if forecast.has_range:
        caveats.append("The forecast range is the anomaly ± 1.28 × the model's validation RMSE at each lead "
                       "(10-90 % if errors are normal).")
    if verification is None:
        caveats.append("No hindcast of this model is verified yet: run `enso hindcast` and `enso verify`.")
    return ReportData(
        init_month=init, issued_at=issued_at or utcnow(), sources=_sources(engine, init),
        model=_report_model_info(engine, info), current=_current_state(index, relative, phase, init), forecast=forecast,
        method=MethodInfo(base_period=base, caveats=tuple(caveats)),
        phase_climatology=_base_phase_climatology(index, base), baselines=baseline_leads,
        previous_forecast=_previous_forecast(engine, init, info),
        observed_map=observed_map,
        predicted_map=_predicted_map(engine, info, init),
        verification=verification, outcomes=_outcomes(engine, init, info.version, index["phase"]),
        stale_inputs=stale_inputs(engine, settings, info.sst_source, settings.stale_input_as_of or issued_at),
        seasonal_outlook=_seasonal_outlook(engine, info, init),
    )


def _eof_caveat(engine: Engine, info: RegistryModelInfo, index: pd.DataFrame) -> list[str]:
    """The linear EOF model's causal anomaly base, as a caveat (none when the store cannot give one)."""
    try:
        base = eof_base(engine, info.sst_source, info.train_end, index)
    except (LookupError, ValueError) as error:
        return [f"No causal base period for the linear EOF baseline: {error}."]
    return [f"The linear EOF model's SST and Niño 3.4 anomalies are taken against {base[0]}-{base[1]}, the "
            f"{base[1] - base[0] + 1} years ending with the training period (a base inside the scored years "
            f"would hand it the later warming)."]


def stale_inputs(engine: Engine, settings: Settings, source: str,
                 now: dt.datetime | None = None) -> tuple[StaleInput, ...]:
    """The report's banner: the model's SST source and the index file where stale at ``now``."""
    return tuple(StaleInput(f.name, f.newest, f.due, f.url, f.advice)
                 for f in input_freshness(engine, settings, now, sources=(source,)) if f.stale)


# --------------------------------------------------------------------------- rendering and storing

@dataclass(frozen=True)
class StoredReport:
    """A rendered report written to ``path`` and to the ``report`` row of its init month."""

    init_month: Month
    path: Path
    sha256: str
    model_version: str
    created_at: dt.datetime
    data: ReportData
    rendered: RenderedReport


def render_and_store(engine: Engine, settings: Settings, init_month: Month | None = None, out: Path | None = None,
                     flow_run_id: str | None = None) -> StoredReport:
    """Assemble and render the report, write the HTML file and upsert its ``report`` row (one per init month).

    ``out`` defaults to ``settings.report_dir / enso-report-YYYY-MM.html``; an
    existing folder gets that file name inside it.
    """
    now = utcnow()
    data = assemble_report(engine, settings, init_month, issued_at=now)
    rendered = render_report(data)
    path = Path(out) if out is not None else settings.report_dir / report_file_name(data.init_month)
    if path.is_dir():
        path = path / report_file_name(data.init_month)
    digest = hashlib.sha256(rendered.html.encode("utf-8")).hexdigest()
    values = dict(model_version=data.model.version, path=str(path.resolve()), html=rendered.html, sha256=digest,
                  created_at=now, flow_run_id=flow_run_id)
    with engine.begin() as conn:
        stmt = store.dialect_insert(conn, Report).values(init_month=store.month_date(data.init_month), **values)
        conn.execute(stmt.on_conflict_do_update(index_elements=["init_month"], set_=values))
        atomic_write(path, lambda tmp: tmp.write_text(rendered.html, encoding="utf-8", newline=""))
    return StoredReport(data.init_month, path, digest, data.model.version, now, data, rendered)


# --------------------------------------------------------------------------- email

#: A claim older than this is taken for a send that was interrupted (a crashed or killed process).
CLAIM_STALE_AFTER = dt.timedelta(hours=1)


@dataclass(frozen=True)
class EmailOutcome:
    """What :func:`email_report` did: ``status`` is 'sent', 'already sent' or 'in progress' (nothing sent)."""

    init_month: Month
    status: str
    recipients: tuple[str, ...]
    message_id: str | None
    attempts: int
    since: dt.datetime | None = None
    #: Recipients the server refused although it accepted the message for the others, with its reply.
    refused: str = ""

    def __str__(self) -> str:
        if self.status == "already sent":
            return (f"report {self.init_month} was already emailed (message {self.message_id}); "
                    "nothing sent (use --force-email to send again)")
        if self.status == "in progress":
            return (f"report {self.init_month} is being emailed by another run (since {self.since:%Y-%m-%d %H:%M} "
                    "UTC); nothing sent by this one")
        return (f"report {self.init_month} emailed to {', '.join(self.recipients)} "
                f"(message {self.message_id}, {self.attempts} attempt(s))"
                + (f"; but the server {self.refused}: they did not get it" if self.refused else ""))


def recipient_key(recipients: list[str]) -> str:
    """The normalised recipients of a delivery: addresses, lower-case, sorted, without duplicates."""
    addresses = {parseaddr(r)[1].strip().lower() or r.strip().lower() for r in recipients}
    return ", ".join(sorted(addresses))


def _claim(engine: Engine, init: Month, key: str, *, force: bool, stale_after: dt.timedelta
           ) -> int | EmailOutcome:
    """Claim the delivery of (init month, recipients) for this sender: the claim's id, or why not to send.

    Race-free: the claim is a row in state 'sending' under a partial unique index,
    so of two senders only one inserts it; the 'already sent' check runs after the
    insert, so a delivery completed meanwhile is seen too.
    """
    month = store.month_date(init)
    mine = (EmailDelivery.init_month == month, EmailDelivery.recipients == key)
    backed_off = EmailOutcome(init, "in progress", tuple(key.split(", ")), None, 0)
    with engine.begin() as conn:
        live = conn.execute(select(EmailDelivery).where(*mine, EmailDelivery.status == "sending")).first()
        if live is not None:
            since = _utc(live.at)
            if utcnow() - since < stale_after:
                return replace(backed_off, since=since)
            if not force:
                raise EmailDeliveryError(
                    f"report {init} was being emailed at {since:%Y-%m-%d %H:%M} UTC and that send never finished "
                    f"(the process was stopped): it may or may not have been delivered. Ask a recipient; to send "
                    f"it (again), run `enso report --init {init} --email --force-email`", 0)
            conn.execute(update(EmailDelivery).where(EmailDelivery.id == live.id).values(
                status="failed", at=utcnow(),
                message=f"interrupted send (claimed {since:%Y-%m-%d %H:%M} UTC) taken over by --force-email"))
    try:
        with engine.begin() as conn:
            claim = conn.execute(insert(EmailDelivery).values(
                init_month=month, recipients=key, status="sending", attempts=0, message="", at=utcnow())
                .returning(EmailDelivery.id)).scalar_one()
    except IntegrityError:
        with engine.connect() as conn:
            since = conn.execute(select(EmailDelivery.at).where(*mine, EmailDelivery.status == "sending")).scalar()
        return replace(backed_off, since=_utc(since) if since else utcnow())
    if not force:
        with engine.begin() as conn:
            sent = conn.execute(select(EmailDelivery).where(*mine, EmailDelivery.status == "sent")
                                .order_by(desc(EmailDelivery.at)).limit(1)).first()
            if sent is not None:
                conn.execute(delete(EmailDelivery).where(EmailDelivery.id == claim))
                return EmailOutcome(init, "already sent", tuple(key.split(", ")), sent.message_id, 0)
    return claim


def _finish(engine: Engine, claim: int, **values: object) -> None:
    with engine.begin() as conn:
        conn.execute(update(EmailDelivery).where(EmailDelivery.id == claim).values(at=utcnow(), **values))


def email_report(engine: Engine, settings: Settings, init_month: Month, *, force: bool = False,
                 retries: int = 3, backoff: float = 5.0,
                 stale_after: dt.timedelta = CLAIM_STALE_AFTER) -> EmailOutcome:
    """Email the stored report of ``init_month`` to ``settings.report_to``, exactly once unless ``force``.

    The delivery of (init month, recipients) is claimed in ``email_delivery``
    before anything is sent (:func:`_claim`): a concurrent sender backs off
    ('in progress'), a completed delivery is not repeated ('already sent'). The
    claim then becomes 'sent' (with the Message-ID) or 'failed' (with the error,
    which never contains the SMTP password; re-raised as
    :class:`reports.email.EmailDeliveryError`). Transient failures before the
    server accepts the message are retried by :func:`reports.email.send_message`
    (``retries``/``backoff``); nothing else retries. A claim left 'sending' for
    longer than ``stale_after`` by a stopped process blocks the month with a
    message saying so until ``force`` (the interrupted send may have been delivered).
    The attachment is the stored HTML byte for byte; the email body is rendered
    again from the store with the stored issue time.
    """
    recipients = list(settings.report_to)
    if not recipients:
        raise ValueError(f"report {init_month}: no recipients: set ENSO_REPORT_TO (comma-separated addresses)")
    with engine.connect() as conn:
        stored = conn.execute(select(Report.html, Report.created_at)
                              .where(Report.init_month == store.month_date(init_month))).first()
    if stored is None:
        raise LookupError(f"no stored report for init month {init_month}: run `enso report --init {init_month}`")
    data = assemble_report(engine, settings, init_month, issued_at=_utc(stored.created_at))
    rendered = replace(render_report(data), html=stored.html)
    message = build_message(rendered, data, sender=settings.report_from, recipients=recipients)
    claim = _claim(engine, init_month, recipient_key(recipients), force=force, stale_after=stale_after)
    if isinstance(claim, EmailOutcome):
        return claim
    try:
        delivery = send_message(message, SmtpSettings.from_settings(settings), retries=retries, backoff=backoff)
    except EmailDeliveryError as error:
        password = settings.smtp_password.get_secret_value()
        reason = str(error).replace(password, "***") if password else str(error)
        _finish(engine, claim, status="failed", attempts=error.attempts, message=reason)
        raise EmailDeliveryError(f"report {init_month} was not emailed: {reason}", error.attempts) from None
    except BaseException:
        _finish(engine, claim, status="failed", attempts=0, message="the send was interrupted before the server "
                "accepted the message")
        raise
    refused = "; ".join(f"refused {rcpt}: {code} {text.decode(errors='replace')}"
                        for rcpt, (code, text) in delivery.refused.items())
    try:
        _finish(engine, claim, status="sent", attempts=delivery.attempts, message_id=delivery.message_id,
                message=refused)
    except DBAPIError as error:
        # The mail is out: raising would make a retry send it again. Say so loudly instead.
        logging.getLogger(__name__).error(
            "report %s was emailed (message %s) but recording the delivery failed: %s; the claim stays "
            "'sending', so no run sends it again without --force-email", init_month, delivery.message_id,
            error.orig)
    return EmailOutcome(init_month, "sent", tuple(recipients), delivery.message_id, delivery.attempts,
                        refused=refused)
