"""Prefect tasks and flows for forecasts: the operational forecast (a task of the monthly run) and hindcasts.

Each task wraps one library call of :mod:`db.forecasting`.

**Hindcast fan-out.** A hindcast of decades is cut into chunks of
``ENSO_HINDCAST_CHUNK_MONTHS`` init months (parameter ``chunk_months``), all with
the model pinned when the run starts (a promotion meanwhile changes nothing), and
the chunks run at once:

* a ``hindcast`` run started from its deployment submits each chunk as a child run
  of the same deployment, so every worker of the pool takes chunks; the parent
  waits for them and fails, naming each failed chunk and how to rerun it, if any
  failed (the chunks leave their alerts to it);
* a run in-process (the monthly run's hindcast, ``enso``'s callers) runs the chunks
  as concurrent task runs, :data:`HINDCAST_THREADS` at a time.

Each chunk writes its rows in one transaction; forecasts of an init month depend on
that month's inputs only, so the rows are those of one chunk over the whole range.
A failed run is rerun as it stands: rows are replaced, never duplicated.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from uuid import UUID

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.futures import wait
from prefect.task_runners import ThreadPoolTaskRunner

from db.engine import open_store
from db.forecast_rows import load_forecasts
from db.forecasting import ForecastResult, forecast, hindcast, hindcast_model
from enso.months import Month, month_chunks
from flows.alerts import ALERTS_VIA_PARENT
from flows.hooks import RUN_HOOKS
from flows.ingest import current_deployment_id, current_run_id
from flows.settings import run_settings

#: Chunks an in-process hindcast runs at once (task runs in threads; torch releases the GIL while it computes).
HINDCAST_THREADS = 4
#: Seconds between looks at the chunk runs a fanned-out hindcast waits for.
CHUNK_POLL_SECONDS = 5.0


@task(retries=2, retry_delay_seconds=30)
def forecast_task(init_month: Month | None, model: str | None) -> ForecastResult:
    settings = run_settings()
    return forecast(open_store(settings), init_month=init_month, version=model, flow_run_id=current_run_id(),
                    phase_index=settings.phase_index)


def forecast_artifact(result: ForecastResult) -> None:
    create_table_artifact(
        key="forecast",
        table=[{"lead": int(r.lead), "target_month": str(r.target_month),
                "nino34_anomaly": round(float(r.nino34_anomaly), 2), "phase": r.phase,
                "p_la_nina": round(float(r.p_la_nina), 2), "p_neutral": round(float(r.p_neutral), 2),
                "p_el_nino": round(float(r.p_el_nino), 2)} for r in result.frame.itertuples(index=False)],
        description=f"Niño 3.4 forecast from {result.init_month}, model {result.choice.info.version} "
                    f"({result.choice.reason})",
    )


@dataclass(frozen=True)
class HindcastSummary:
    """What a hindcast run wrote: the model, the init months, the rows, in how many chunks (and where)."""

    model: str
    start: Month
    end: Month
    rows: int
    chunks: int
    #: ``tasks`` (in this process), ``pool`` (child runs on the deployment's work pool) or ``one`` (no fan-out).
    fan_out: str


@task
def hindcast_model_task(start: Month, model: str | None) -> str:
    """The model version the whole hindcast uses (checked to be out of sample from ``start``)."""
    return hindcast_model(open_store(run_settings()), start, model).info.version


@task
def hindcast_task(start: Month, end: Month, model: str) -> int:
    """One chunk: the hindcast rows of start..end written; returns how many."""
    settings = run_settings()
    return hindcast(open_store(settings), start, end, version=model,
                    flow_run_id=current_run_id(), phase_index=settings.phase_index).rows


def _wait_for(run_ids: list[UUID]) -> list[FlowRun]:
    """The runs, once every one of them is in a final state."""
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=run_ids)))
            if len(runs) == len(run_ids) and all(r.state and r.state.is_final() for r in runs):
                return runs
            time.sleep(CHUNK_POLL_SECONDS)


def _raise_for_failed_chunks(failed: list[tuple[str, str, str]], total: int, model: str) -> None:
    """Fail the hindcast naming each failed chunk (first, last month, what happened) and the command rerunning it."""
    if failed:
        raise RuntimeError(
            f"{len(failed)} of {total} hindcast chunks failed (the other chunks' rows are stored):\n"
            + "\n".join(f"  {a}..{b}: {what}\n    rerun: prefect deployment run hindcast/hindcast -p start={a} "
                        f"-p end={b} -p model={model}" for a, b, what in failed))


def _first_line(text: str | None) -> str:
    return text.strip().splitlines()[0] if text and text.strip() else "no message"


def _chunks_as_tasks(chunks: list[tuple[Month, Month]], model: str) -> None:
    """Run each chunk as a task run in this process, :data:`HINDCAST_THREADS` at once; raise if any failed."""
    futures = [hindcast_task.submit(a, b, model) for a, b in chunks]
    wait(futures)
    _raise_for_failed_chunks([(str(a), str(b), f"{f.state.name}: {_first_line(f.state.message)}")
                              for (a, b), f in zip(chunks, futures) if not f.state.is_completed()],
                             len(chunks), model)


def _chunks_on_pool(deployment_id: UUID, chunks: list[tuple[Month, Month]], model: str, chunk_months: int) -> None:
    """Run each chunk as a child run of this deployment (any worker of its pool takes it); raise if any failed."""
    parent = current_run_id()
    submitted = [run_deployment(deployment_id, parameters={"start": str(a), "end": str(b), "model": model,
                                                           "chunk_months": chunk_months},
                                timeout=0, as_subflow=True, tags=[ALERTS_VIA_PARENT],
                                idempotency_key=f"{parent}-chunk-{a}" if parent else None)
                 for a, b in chunks]
    get_run_logger().info("hindcast fanned out to %d chunk runs: %s", len(submitted),
                          ", ".join(r.name for r in submitted))
    finished = _wait_for([r.id for r in submitted])
    _raise_for_failed_chunks([(r.parameters["start"], r.parameters["end"],
                               f"run {r.name} ({r.id}) ended {r.state.name}: {_first_line(r.state.message)}")
                              for r in finished if not r.state.is_completed()], len(chunks), model)


@flow(name="hindcast", log_prints=True, task_runner=ThreadPoolTaskRunner(max_workers=HINDCAST_THREADS), **RUN_HOOKS)
def hindcast_flow(start: Month, end: Month, model: str | None = None, chunk_months: int | None = None
                  ) -> HindcastSummary:
    """Out-of-sample forecasts for every init month of start..end, in chunks run at once (see the module)."""
    if end < start:
        raise ValueError(f"hindcast range {start}..{end} is empty: the end comes before the start")
    size = chunk_months or run_settings().hindcast_chunk_months
    version = hindcast_model_task(start, model)
    chunks = month_chunks(start, end, size)
    deployment_id = current_deployment_id()
    if len(chunks) == 1:
        fan_out = "one"
        hindcast_task(start, end, version)
    elif deployment_id is not None:
        fan_out = "pool"
        _chunks_on_pool(deployment_id, chunks, version, size)
    else:
        fan_out = "tasks"
        _chunks_as_tasks(chunks, version)
    rows = len(load_forecasts(open_store(run_settings()), model_version=version, kind="hindcast",
                              init_start=start, init_end=end))
    summary = HindcastSummary(version, start, end, rows, len(chunks), fan_out)
    print(f"model {version}: {rows} hindcast rows for {start}..{end} ({len(chunks)} chunk(s) of at most "
          f"{size} months, fan-out: {fan_out})")
    return summary
