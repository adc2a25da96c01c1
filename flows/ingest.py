"""Prefect flows for the data foundation: ingest the newest month, backfill a range, report status.

Each flow wraps the same library functions the ``enso`` command calls
(:mod:`db.ingest`, :mod:`db.status`); tasks add retries and logging only.
"""

from __future__ import annotations

import sys
from uuid import UUID

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.context import FlowRunContext
from prefect.runtime import flow_run

from db.engine import open_store
from db.ingest import (
    BackfillSummary,
    IngestResult,
    backfill,
    ingest_index,
    ingest_newest,
    ingest_relative,
    ingest_sst_month,
)
from db.status import store_status
from enso.config import exit_on_invalid_settings
from enso.months import Month
from flows.hooks import RUN_HOOKS
from flows.settings import run_settings

exit_on_invalid_settings()  # a worker loads this file by path (not as flows.ingest): check the settings here too


def interactive() -> bool:
    """Show progress bars when a person watches (a terminal), not in a worker's log."""
    return sys.stderr.isatty()


def current_run_id() -> str | None:
    rid = flow_run.get_id()
    return str(rid) if rid else None


def current_deployment_id() -> UUID | None:
    """The deployment the current flow run was created from; None in-process and for subflows run in-process.

    (``prefect.runtime.deployment.get_id()`` answers the parent's deployment inside a subflow.)
    """
    context = FlowRunContext.get()
    return context.flow_run.deployment_id if context and context.flow_run else None


@task(retries=2, retry_delay_seconds=30)
def ingest_sst_task(source: str, month: Month | None) -> list[IngestResult]:
    settings = run_settings()
    engine = open_store(settings)
    if month:
        return [ingest_sst_month(engine, settings, source, month, run_id=current_run_id())]
    return ingest_newest(engine, settings, source, run_id=current_run_id())


@task(retries=2, retry_delay_seconds=30)
def ingest_index_task() -> list[IngestResult]:
    """The Niño 3.4 index file, then the relative index (CPC's file and/or computed from the grids)."""
    settings = run_settings()
    engine = open_store(settings)
    return [ingest_index(engine, settings, run_id=current_run_id()),
            *ingest_relative(engine, settings, run_id=current_run_id())]


@flow(name="ingest", log_prints=True, **RUN_HOOKS)
def ingest_flow(month: Month | None = None, source: str | None = None, index: bool = True) -> list[IngestResult]:
    """The newest available SST month (or ``month``) plus the whole index file (source: ENSO_SST_SOURCE)."""
    results = ingest_sst_task(source or run_settings().sst_source, month)
    if index:
        results = [*results, *ingest_index_task()]
    logger = get_run_logger()
    for r in results:
        logger.info(str(r))
    return results


@flow(name="backfill", log_prints=True, **RUN_HOOKS)
def backfill_flow(start: Month, end: Month, source: str | None = None, workers: int = 4, index: bool = True
                  ) -> BackfillSummary:
    """Every month of start..end (resumable: rerun after a failure to complete it)."""
    settings = run_settings()
    source = source or settings.sst_source
    engine = open_store(settings)
    summary = backfill(engine, settings, source, start, end, workers=workers,
                       progress=interactive(), run_id=current_run_id())
    if index:
        for result in (ingest_index(engine, settings, run_id=current_run_id()),
                       *ingest_relative(engine, settings, run_id=current_run_id())):
            print(result)
    print(summary.report())
    create_markdown_artifact(
        key="backfill-summary",
        markdown="```\n" + summary.report() + "\n```",
        description=f"backfill {source} {start}..{end}",
    )
    if not summary.complete:
        raise RuntimeError(f"backfill {source} {start}..{end} left months unstored:\n{summary.report()}")
    return summary


@flow(name="status", **RUN_HOOKS)
def status_flow() -> str:
    """What the store holds (also published as a markdown artifact)."""
    settings = run_settings()
    text = store_status(open_store(settings), settings=settings).render()
    create_markdown_artifact(key="store-status", markdown="```\n" + text + "\n```")
    return text
