"""The monthly flow: the whole month, by itself.

ingest the init month's SST grid and the index -> retrain if there is no champion
or it is due -> forecast leads 1-12 -> verify -> render the report -> email it.

The init month defaults to the newest complete month at the scheduled time. When
its SST file (or its index value) is not published yet, the ingest task raises
:class:`DataNotPublishedYet` and waits in Prefect's AwaitingRetry state, retried
``ENSO_MONTHLY_RETRIES`` times ``ENSO_MONTHLY_RETRY_DELAY`` seconds apart (only
that condition is retried so; other failures fail the run at once, clearly). Months
missing before the init month (an earlier outage) are backfilled first. Every step
is idempotent, so a rerun replaces rather than duplicates, and a report is emailed
once per init month unless ``force_email``.

Before any of that, :func:`check_inputs_task` stops the run at once with
:class:`db.status.StaleInputs` when an input lacks the init month beyond its
provider's usual publication day (the stale-input alarm): waiting would not help.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_table_artifact
from prefect.runtime import flow_run

from db import registry, store
from db.ingest import IngestResult, backfill, ingest_index, ingest_relative, ingest_sst_month
from db.migrate import open_store
from db.reporting import email_report, render_and_store
from db.status import check_inputs
from db.verification import verify
from enso.config import load_settings
from enso.months import Month, last_complete_month
from flows.forecast import forecast_artifact, forecast_task, hindcast_flow
from flows.ingest import current_run_id
from flows.train import retrain_flow

_SETTINGS = load_settings()


class DataNotPublishedYet(RuntimeError):
    """The init month's data is not out yet: the run waits (retries later) instead of forecasting from stale data."""


def scheduled_init_month() -> Month:
    """The newest complete month at the run's scheduled time (now, when run by hand)."""
    scheduled = flow_run.get_scheduled_start_time()
    when = dt.datetime.fromtimestamp(scheduled.timestamp(), dt.timezone.utc) if scheduled else None
    return last_complete_month(when)


#: How far back the monthly run fills gaps before the init month (covers every preset's input window).
GAP_FILL_MONTHS = 24


def _only_when_unpublished(task, task_run, state) -> bool:  # type: ignore[no-untyped-def]
    """Prefect retry condition: wait and retry only while the data is not published yet."""
    try:
        state.result()
    except DataNotPublishedYet:
        return True
    except Exception:
        return False
    return False


@task(retries=_SETTINGS.monthly_retries, retry_delay_seconds=_SETTINGS.monthly_retry_delay,
      retry_condition_fn=_only_when_unpublished)
def ingest_month_task(init: Month) -> list[IngestResult]:
    """Gaps before the init month, the init month's SST grid, the whole index file and the relative index.

    Waits (DataNotPublishedYet) when the grid or the index lacks the init month.
    """
    settings = load_settings()
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
        raise DataNotPublishedYet(f"{settings.sst_source} {init} is not published yet ({sst.url}); "
                                  "the monthly run will retry later")
    if not sst.ok:
        raise RuntimeError(f"the SST grid of {init} was {sst.outcome}: {sst.message}")
    index = ingest_index(engine, settings, run_id=current_run_id())
    if not index.ok:
        raise RuntimeError(f"the Niño 3.4 index file was {index.outcome}: {index.message}")
    anomaly = store.load_index(engine)["anomaly"]
    period = pd.Period(str(init), freq="M")
    if period not in anomaly.index or pd.isna(anomaly[period]):
        raise DataNotPublishedYet(f"the Niño 3.4 index ({index.url}) has no value for {init} yet; "
                                  "the monthly run will retry later")
    # The relative index defines the observed phase (ENSO_PHASE_INDEX); the forecast does not need it, so its
    # failures never stop the run (the flow logs them, the report's banner names a stale one).
    return [sst, index, *ingest_relative(engine, settings, run_id=current_run_id())]


@task
def check_inputs_task(init: Month) -> None:
    """The stale-input alarm: raises :class:`db.status.StaleInputs` (not retried) when an input is stale."""
    settings = load_settings()
    check_inputs(open_store(settings), settings, init, run_id=current_run_id())


@task
def retraining_due() -> str | None:
    """Why the monthly run must train a model first; None if not.

    Due when the registry holds no model, or its newest model is older than
    ``ENSO_RETRAIN_AFTER_MONTHS``. A trained model that was not promoted still counts:
    the run then forecasts with the newest model (and says so) instead of retraining
    every month.
    """
    settings = load_settings()
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
    settings = load_settings()
    return verify(open_store(settings), phase_index=settings.phase_index).n_scores


@task
def report_task(init: Month) -> str:
    settings = load_settings()
    return str(render_and_store(open_store(settings), settings, init, flow_run_id=current_run_id()).path)


@task  # one retry layer: send_message retries what failed before the server accepted the message
def email_task(init: Month, force: bool) -> str:
    settings = load_settings()
    if not settings.report_to:
        return "not emailed: ENSO_REPORT_TO is empty"
    return str(email_report(open_store(settings), settings, init, force=force))


@flow(name="monthly", log_prints=True)
def monthly_flow(init_month: str | None = None, force_email: bool = False) -> dict[str, str]:
    """One month: ingest -> (retrain) -> forecast -> verify -> report -> email."""
    logger = get_run_logger()
    init = Month.parse(init_month) if init_month else scheduled_init_month()
    logger.info("monthly run for init month %s", init)
    check_inputs_task(init)  # stale inputs end the run here, in minutes, saying what to change
    for result in ingest_month_task(init):
        if not result.ok:  # only the relative index may fail here without stopping the run
            logger.warning("%s", result)
    why = retraining_due()
    if why:
        logger.info("training first: %s", why)
        settings = load_settings()
        trained = retrain_flow()
        hindcast_flow(start=str(Month.parse(settings.valid_end) + 1), end=str(init - 1), model=trained.version)
    result = forecast_task(str(init), None)
    forecast_artifact(result)
    n_scores = verify_task()
    report_path = report_task(init)
    emailed = email_task(init, force_email)
    summary = {"init_month": str(init), "model": result.choice.info.version, "model_choice": result.choice.reason,
               "forecast_rows": str(result.rows), "scores": str(n_scores), "report": report_path,
               "email": emailed}
    create_table_artifact(key="monthly-summary", table=[{"item": k, "value": v} for k, v in summary.items()],
                          description=f"monthly run {init}")
    create_link_artifact(key="monthly-report", link=f"file://{report_path}", link_text=f"ENSO report {init}")
    print("\n".join(f"{k}: {v}" for k, v in summary.items()))
    return summary
