"""Retraining: the ``retrain`` flow (for the GPU worker), and how the monthly run gets a new model.

:func:`retrain_flow` wraps one library call, :func:`db.forecasting.train_and_register`.

:func:`retrain_for_monthly` is the monthly run's retraining step. It submits the
``retrain`` deployment (:data:`RETRAIN_DEPLOYMENT`, pool ``gpu``) as a child run and
waits for it up to ``ENSO_RETRAIN_TIMEOUT`` seconds, queueing included. The child
trains with its own worker's settings (``ENSO_MODEL_PRESET`` of the GPU worker,
e.g. ``residual-anomaly``) and no window parameters, so the flow takes its periods
from the settings. When the GPU pool cannot do it, ``ENSO_RETRAIN_FALLBACK`` says
what happens:

* ``cpu`` (default): train ``ENSO_MODEL_PRESET`` of the monthly run's own
  environment (``cpu-small`` unless set) in the monthly run, as a subflow. A
  system left alone keeps a model no older than ``ENSO_RETRAIN_AFTER_MONTHS``,
  and a CPU model only replaces a better GPU champion if it beats it on
  validation (the promotion rule);
* ``wait``: keep the current model, and say so in the log and the run's summary
  (fails only when there is no model at all);
* ``fail``: fail the monthly run (which alerts).

"Cannot" is: no ``retrain`` deployment, it or its pool paused, no worker online
in the pool, the child run not finished within the timeout (it is then cancelled,
so that no forgotten run promotes a model later), or the child run failed (it
alerts by itself).
"""

from __future__ import annotations

from dataclasses import dataclass

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import WorkerFilter, WorkerFilterStatus
from prefect.client.schemas.objects import FlowRun, WorkPoolStatus
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound
from prefect.states import Cancelled, Cancelling

from db import registry
from db.engine import open_store
from db.forecasting import TrainingResult, train_and_register
from enso.months import Month
from flows.cli import format_margins, format_scores
from flows.hooks import RUN_HOOKS
from flows.ingest import current_run_id, interactive
from flows.settings import run_settings

#: ``flow/deployment`` of the retraining deployment (``deployments/deploy.py``), on the ``gpu`` pool.
RETRAIN_DEPLOYMENT = "retrain/retrain"


@task
def train_task(preset: str | None, train_end: Month | None, valid_end: Month | None, device: str
               ) -> TrainingResult:
    settings = run_settings()
    return train_and_register(open_store(settings), settings, preset, train_end=train_end, valid_end=valid_end,
                              device=device, progress=interactive(), flow_run_id=current_run_id())


@flow(name="retrain", log_prints=True, **RUN_HOOKS)
def retrain_flow(preset: str | None = None, train_end: Month | None = None, valid_end: Month | None = None,
                 device: str = "auto") -> TrainingResult:
    """Train and register a model (CUDA when the worker has a GPU); promote it if it earns it."""
    result = train_task(preset, train_end, valid_end, device)
    text = "\n\n".join([
        f"registered **{result.version}**: {result.reason}",
        "```\n" + format_scores("selection", result.metrics["validation"],
                                result.metrics["validation_persistence"]) + "\n"
        + format_margins(result.metrics["selection"]) + "\n```",
    ])
    print(text)
    create_markdown_artifact(key="retrain-summary", markdown=text, description=f"model {result.version}")
    return result


class RetrainUnavailable(RuntimeError):
    """The GPU pool could not retrain and ``ENSO_RETRAIN_FALLBACK`` does not allow carrying on."""


@dataclass(frozen=True)
class Retraining:
    """What the monthly run's retraining step did: the model it trained (None: none) and, in words, how."""

    version: str | None
    summary: str


def gpu_pool_unavailable(deployment_name: str = RETRAIN_DEPLOYMENT) -> str | None:
    """Why the retrain deployment cannot run now, or None when a worker of its pool is online to take it."""
    with get_client(sync_client=True) as client:
        try:
            deployment = client.read_deployment_by_name(deployment_name)
        except ObjectNotFound:
            return f"there is no deployment {deployment_name!r} (register it with `enso deploy`)"
        if deployment.paused:
            return f"the deployment {deployment_name!r} is paused"
        pool_name = deployment.work_pool_name
        if not pool_name:
            return f"the deployment {deployment_name!r} has no work pool"
        try:
            pool = client.read_work_pool(pool_name)
        except ObjectNotFound:
            return f"the work pool {pool_name!r} of {deployment_name!r} does not exist (run `enso deploy`)"
        if pool.is_paused or pool.status == WorkPoolStatus.PAUSED:
            return f"the work pool {pool_name!r} is paused"
        online = client.read_workers_for_work_pool(
            pool_name, worker_filter=WorkerFilter(status=WorkerFilterStatus(any_=["ONLINE"])))
        if not online:
            return f"no worker is online in the work pool {pool_name!r}"
    return None


def _cancel(run: FlowRun, reason: str) -> None:
    """Cancel a child run the monthly run stopped waiting for: a scheduled one at once, a running one via its worker."""
    state = Cancelled(message=reason) if run.state is None or run.state.is_scheduled() or run.state.is_pending() \
        else Cancelling(message=reason)
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(run.id, state, force=True)


def _retrain_on_gpu_pool(timeout: float) -> tuple[str | None, str]:
    """Submit the retrain deployment and wait; (model version, how) when it trained one, else (None, why not)."""
    logger = get_run_logger()
    unavailable = gpu_pool_unavailable()
    if unavailable:
        return None, unavailable
    parent = current_run_id()
    run = run_deployment(RETRAIN_DEPLOYMENT, parameters={}, timeout=timeout, poll_interval=5, as_subflow=True,
                         idempotency_key=f"{parent}-retrain" if parent else None)
    logger.info("retrain run %s (%s) on work pool %s ended %s", run.name, run.id, run.work_pool_name,
                run.state.name if run.state else "in no state")
    if run.state is None or not run.state.is_final():
        reason = (f"the retrain run {run.name} did not finish within ENSO_RETRAIN_TIMEOUT={timeout:g} s "
                  f"({run.state.name if run.state else 'no state'}); it was cancelled")
        _cancel(run, reason)
        return None, reason
    if not run.state.is_completed():
        return None, f"the retrain run {run.name} ended {run.state.name}: {run.state.message or 'no message'}"
    model = registry.trained_by(open_store(run_settings()), str(run.id))
    if model is None:
        return None, f"the retrain run {run.name} completed but registered no model"
    return model.version, (f"trained on work pool {run.work_pool_name!r} by flow run {run.name} ({run.id}): "
                           f"{model.version}, {model.status}")


def retrain_for_monthly(why: str) -> Retraining:
    """The monthly run's retraining (``why``: the reason it is due): on the GPU pool, else the fallback."""
    logger = get_run_logger()
    settings = run_settings()
    version, how = _retrain_on_gpu_pool(settings.retrain_timeout)
    if version is not None:
        return Retraining(version, how)
    fallback = settings.retrain_fallback
    logger.warning("retraining (%s) did not happen on the GPU pool: %s; ENSO_RETRAIN_FALLBACK=%s", why, how, fallback)
    if fallback == "cpu":
        result = retrain_flow()
        return Retraining(result.version, f"trained in this run (ENSO_RETRAIN_FALLBACK=cpu, preset "
                                          f"{settings.model_preset}) because {how}: {result.version}, {result.reason}")
    if fallback == "wait":
        try:
            kept = registry.choose_model(open_store(settings))
        except LookupError:
            raise RetrainUnavailable(f"retraining is due ({why}) but {how}, and there is no model to keep "
                                     "(ENSO_RETRAIN_FALLBACK=wait): start a worker on the GPU pool or set "
                                     "ENSO_RETRAIN_FALLBACK=cpu") from None
        return Retraining(None, f"not retrained: {how} (ENSO_RETRAIN_FALLBACK=wait); kept {kept.info.version} "
                                f"({kept.reason}), although {why}")
    raise RetrainUnavailable(f"retraining is due ({why}) but {how} (ENSO_RETRAIN_FALLBACK=fail): start a worker "
                             "on the GPU pool (`prefect worker start --pool gpu --type process --install-policy "
                             "never`) and rerun, or set ENSO_RETRAIN_FALLBACK=cpu or wait")
