"""The monthly flow: the whole month, by itself.

ingest the init month's SST grid and the index -> retrain if there is no model
or it is due -> forecast leads 1-12 -> verify -> render the report -> email it.

The init month defaults to the newest complete month at the scheduled time.

**Stale inputs end the run at once.** Before anything else, :func:`check_inputs_task`
stops the run with :class:`db.status.StaleInputs` (a failure, alerted) when an input
lacks the init month beyond its provider's usual publication day: waiting would not
help, someone must look (the message names the URL, the newest month held and what to
change).

**Late data, without a held worker.** When the init month's SST file (or its index
value) is not published yet but still within the provider's usual lag, the run does
not sleep: it schedules a new run of its own deployment ``ENSO_MONTHLY_RETRY_DELAY``
seconds later, with the same parameters (the init month written out, so that the
later run cannot drift to another month), and ends in the state ``AwaitingData`` (a
Completed state: nothing failed, nothing was forecast; its message names the run it
scheduled). The later runs are tagged ``enso:data-wait=N``; the run that would
schedule number ``ENSO_MONTHLY_RETRIES + 1`` fails instead, and its failure alert
goes out (:mod:`flows.alerts`). A run not started from a deployment cannot schedule
itself, so it fails at once, saying to rerun when the data is out. Only that
condition is treated so: other failures fail the run at once, clearly.

**Retraining** runs on the GPU pool (:func:`flows.train.retrain_for_monthly`, with
``ENSO_RETRAIN_FALLBACK`` when that pool cannot); a new model is then hindcast for
the months after its validation period, so that the report can verify it.

Months missing before the init month (an earlier outage) are backfilled first. Every
step is idempotent, so a rerun replaces rather than duplicates, and a report is
emailed once per init month unless ``force_email``.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.deployments import run_deployment
from prefect.runtime import flow_run
from prefect.states import Completed, State

from db import registry, store
from db.engine import open_store
from db.ingest import IngestResult, backfill, ingest_index, ingest_relative, ingest_sst_month
from db.reporting import email_report, render_and_store
from db.status import check_inputs
from db.verification import verify
from enso.months import Month, last_complete_month, to_period
from flows.forecast import forecast_artifact, forecast_task, hindcast_flow
from flows.hooks import RUN_HOOKS
from flows.ingest import current_deployment_id, current_run_id
from flows.settings import run_settings
from flows.train import retrain_for_monthly

#: Name of the state a monthly run ends in when its data is not published yet (a Completed state).
AWAITING_DATA = "AwaitingData"
#: Tag prefix counting the later runs scheduled while waiting for data: ``enso:data-wait=2`` is the second.
DATA_WAIT_TAG = "enso:data-wait="


class DataNotPublishedYet(RuntimeError):
    """The init month's data is not out yet: the run waits (a later run) instead of forecasting from stale data."""


def scheduled_init_month() -> Month:
    """The newest complete month at the run's scheduled time (now, when run by hand)."""
    scheduled = flow_run.get_scheduled_start_time()
    when = dt.datetime.fromtimestamp(scheduled.timestamp(), dt.timezone.utc) if scheduled else None
    return last_complete_month(when)


#: How far back the monthly run fills gaps before the init month (covers every preset's input window).
GAP_FILL_MONTHS = 24


@task
def ingest_month_task(init: Month) -> list[IngestResult]:
    """Gaps before the init month, the init month's SST grid, the whole index file and the relative index.

    Raises :class:`DataNotPublishedYet` when the grid or the index lacks the init month.
    """
    settings = run_settings()
    engine = open_store(settings)
    source = settings.sst_source
    have = set(store.stored_months(engine, source))
    missing = [m for m in (init - k for k in range(GAP_FILL_MONTHS, 0, -1)) if m not in have]
    if missing:
        filled = backfill(engine, settings, source, missing[0], init - 1, progress=False,
                          run_id=current_run_id())
        if not filled.complete:
            raise RuntimeError(f"months before {init} are missing and could not be fetched:\n{filled.report()}")
    sst = ingest_sst_month(engine, settings, source, init, run_id=current_run_id())
    if sst.outcome == "not_published":
        raise DataNotPublishedYet(f"{settings.sst_source} {init} is not published yet ({sst.url})")
    if not sst.ok:
        raise RuntimeError(f"the SST grid of {init} was {sst.outcome}: {sst.message}")
    index = ingest_index(engine, settings, run_id=current_run_id())
    if not index.ok:
        raise RuntimeError(f"the Niño 3.4 index file was {index.outcome}: {index.message}")
    anomaly = store.load_index(engine)["anomaly"]
    period = to_period(init)
    if period not in anomaly.index or pd.isna(anomaly[period]):
        raise DataNotPublishedYet(f"the Niño 3.4 index ({index.url}) has no value for {init} yet")
    # The relative index defines the observed phase (ENSO_PHASE_INDEX); the forecast does not need it, so its
    # failures never stop the run (the flow logs them, the report's banner names a stale one).
    return [sst, index, *ingest_relative(engine, settings, run_id=current_run_id())]


@task
def check_inputs_task(init: Month) -> None:
    """The stale-input alarm: raises :class:`db.status.StaleInputs` (not retried) when an input is stale."""
    settings = run_settings()
    check_inputs(open_store(settings), settings, init, run_id=current_run_id())


@task
def retraining_due() -> str | None:
    """Why the monthly run must train a model first; None if not.

    Due when the registry holds no model, or its newest model is older than
    ``ENSO_RETRAIN_AFTER_MONTHS``. A trained model that was not promoted still counts:
    the run then forecasts with the newest model (and says so) instead of retraining
    every month.
    """
    settings = run_settings()
    models = registry.list_models(open_store(settings))
    if not models:
        return "no model in the registry yet"
    newest = models[0]
    age = Month.from_date(dt.datetime.now(dt.timezone.utc)).months_since(Month.from_date(newest.created_at))
    if age > settings.retrain_after_months:
        return f"the newest model {newest.version} is {age} months old (limit {settings.retrain_after_months})"
    return None


@task
def verify_task() -> int:
    settings = run_settings()
    return verify(open_store(settings), phase_index=settings.phase_index).n_scores


@task
def report_task(init: Month) -> str:
    settings = run_settings()
    return str(render_and_store(open_store(settings), settings, init, flow_run_id=current_run_id()).path)


@task  # one retry layer: send_message retries what failed before the server accepted the message
def email_task(init: Month, force: bool) -> str:
    settings = run_settings()
    if not settings.report_to:
        return "not emailed: ENSO_REPORT_TO is empty"
    return str(email_report(open_store(settings), settings, init, force=force))


def data_waits(tags: list[str]) -> int:
    """How many later runs were scheduled before this one while waiting for the data (from its tag)."""
    counts = [t[len(DATA_WAIT_TAG):] for t in tags if t.startswith(DATA_WAIT_TAG)]
    return max((int(c) for c in counts if c.isdigit()), default=0)


def await_data(init: Month, force_email: bool, missing: DataNotPublishedYet) -> State:
    """Schedule a later run of this deployment for ``init`` and end this run ``AwaitingData``; fail past the limit."""
    settings = run_settings()
    waits = data_waits(flow_run.get_tags())
    deployment_id = current_deployment_id()
    if deployment_id is None:
        raise DataNotPublishedYet(f"{missing}. This run was not started from a deployment, so it cannot schedule "
                                  f"itself: run it again once {init} is published")
    if waits >= settings.monthly_retries:
        raise DataNotPublishedYet(f"{missing}, after {waits + 1} monthly run(s) for {init} "
                                  f"{settings.monthly_retry_delay} s apart (ENSO_MONTHLY_RETRIES="
                                  f"{settings.monthly_retries}): giving up. Check the provider, then rerun the "
                                  "monthly deployment for this init month")
    when = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=settings.monthly_retry_delay)
    tags = [t for t in flow_run.get_tags() if not t.startswith(DATA_WAIT_TAG)] + [f"{DATA_WAIT_TAG}{waits + 1}"]
    later = run_deployment(deployment_id, parameters={"init_month": str(init), "force_email": force_email},
                           scheduled_time=when, timeout=0, as_subflow=False, tags=tags,
                           idempotency_key=f"{current_run_id()}-awaiting-data")
    message = (f"{missing}; scheduled monthly run {later.name} ({later.id}) for {when:%Y-%m-%d %H:%M} UTC, "
               f"retry {waits + 1} of {settings.monthly_retries}")
    get_run_logger().warning(message)
    return Completed(name=AWAITING_DATA, message=message)


def hindcast_for_verification(version: str, init: Month) -> str:
    """Hindcast a new model over the months after its validation period up to the init month, for the report."""
    info = registry.model_info(open_store(run_settings()), version)
    start, end = info.valid_end + 1, init - 1
    if end < start:
        return (f"no hindcast: {version} was selected on data up to {info.valid_end}; its selection forecasts "
                f"are verified until later months arrive")
    # As text: a flow's arguments are recorded in the Prefect API as JSON (the run's page, its failure
    # alert's rerun command), and FastAPI's encoder would record a Month as {"ordinal": n}.
    summary = hindcast_flow(start=str(start), end=str(end), model=version)
    return f"{summary.rows} hindcast rows {start}..{end}"


@flow(name="monthly", log_prints=True, **RUN_HOOKS)
def monthly_flow(init_month: Month | None = None, force_email: bool = False) -> dict[str, str] | State:
    """One month: ingest -> (retrain) -> forecast -> verify -> report -> email; ``AwaitingData`` if not out yet."""
    logger = get_run_logger()
    init = init_month or scheduled_init_month()
    logger.info("monthly run for init month %s", init)
    check_inputs_task(init)  # stale inputs end the run here, in minutes, saying what to change
    try:
        ingested = ingest_month_task(init)
    except DataNotPublishedYet as missing:
        return await_data(init, force_email, missing)
    for result in ingested:
        if not result.ok:  # only the relative index may fail here without stopping the run
            logger.warning("%s", result)
    retrained = "not due"
    if why := retraining_due():
        logger.info("retraining first: %s", why)
        retraining = retrain_for_monthly(why)
        retrained = retraining.summary
        if retraining.version:
            retrained += "; " + hindcast_for_verification(retraining.version, init)
    result = forecast_task(init, None)
    forecast_artifact(result)
    n_scores = verify_task()
    report_path = report_task(init)
    emailed = email_task(init, force_email)
    summary = {"init_month": str(init), "retraining": retrained, "model": result.choice.info.version,
               "model_choice": result.choice.reason, "forecast_rows": str(result.rows), "scores": str(n_scores),
               "report": report_path, "email": emailed}
    create_table_artifact(key="monthly-summary", table=[{"item": k, "value": v} for k, v in summary.items()],
                          description=f"monthly run {init}")
    create_markdown_artifact(
        key="monthly-report",
        markdown=f"ENSO report **{init}** is stored in the store's `report` table and was written to "
                 f"`{report_path}` on the worker that ran this flow. Anywhere the store is reachable: "
                 f"`enso report --init {init} --out enso-report-{init}.html`.",
        description=f"ENSO report {init}")
    print("\n".join(f"{k}: {v}" for k, v in summary.items()))
    return summary
