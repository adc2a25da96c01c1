"""Failure alerts: a flow run that fails or crashes emails ``ENSO_ALERT_TO``, once.

Every deployment's flow calls :func:`alert_on_failure` when its run fails or
crashes (``on_failure`` and ``on_crashed`` of :data:`flows.hooks.RUN_HOOKS`). The
alert (:mod:`reports.alert`) names the flow, the run, the init month, the error's
first lines and the command that reruns it; it goes out over the report's SMTP
settings (:mod:`reports.email`) and never carries a password.

Once per run, and only where nobody else reports it:

* a subflow run in-process (the monthly run's hindcast, say) leaves the alert to
  its parent run, which fails with it; so do the chunk runs of a hindcast fan-out
  (tagged :data:`ALERTS_VIA_PARENT`), whose parent lists every failed chunk. A
  ``retrain`` run the monthly run submitted to the GPU pool does alert: the monthly
  run may carry on without it (``ENSO_RETRAIN_FALLBACK``);
* before sending, the run is labelled :data:`ALERTED_LABEL` in Prefect; a run that
  already carries it (its crash reported by both the engine and the worker, a hook
  run twice) is not alerted again. Without a Prefect API the label is skipped and
  a per-process guard remains.

With ``ENSO_ALERT_TO`` empty the hook only logs that alerts are off.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shlex
from prefect import Flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.settings import get_current_settings
from prefect.states import State

from enso.config import Settings, load_settings
from enso.months import last_complete_month
from flows.settings import run_settings
from reports.alert import FailureAlert, build_alert
from reports.email import EmailDeliveryError, SmtpSettings, send_message

log = logging.getLogger(__name__)

#: Tag of flow runs whose failure their parent run reports (hindcast chunks).
ALERTS_VIA_PARENT = "enso:alert-via-parent"
#: Flow-run label set when the alert of that run has been sent.
ALERTED_LABEL = "enso.alert-sent"
#: Tries of an alert email after the first (a short wait: the run is over, its process is ending).
ALERT_RETRIES = 2

_alerted_here: set[str] = set()


def alert_on_failure(flow: Flow, flow_run: FlowRun, state: State) -> None:
    """Prefect state hook: email the failure of ``flow_run`` to ``ENSO_ALERT_TO`` (see the module docstring)."""
    settings = _settings()
    if settings is None:
        return
    if not settings.alert_to:
        log.warning("flow run %s ended %s; no alert sent: ENSO_ALERT_TO is empty", flow_run.name, state.name)
        return
    if leaves_alert_to_parent(flow_run) or not _claim(flow_run):
        return
    alert = failure_alert(flow, flow_run, state)
    message = build_alert(alert, sender=settings.report_from, recipients=settings.alert_to,
                          secrets=settings.secret_values())
    try:
        send_message(message, SmtpSettings.from_settings(settings), retries=ALERT_RETRIES, backoff=5.0)
    except EmailDeliveryError as error:
        log.error("the failure alert of flow run %s could not be sent: %s", flow_run.name, error)
        return
    log.info("failure alert of flow run %s sent to %s", flow_run.name, ", ".join(settings.alert_to))


def _settings() -> Settings | None:
    """The run's settings with Secret blocks resolved; without them if a block cannot be read (said in the log)."""
    try:
        return run_settings()
    except Exception as error:  # the alert matters more than the SMTP password: try without it
        log.error("failure alert: %s; trying without the Secret blocks", error)
    try:
        return load_settings()
    except Exception as error:
        log.error("failure alert not sent: the ENSO_* settings do not load: %s", error)
        return None


def leaves_alert_to_parent(flow_run: FlowRun) -> bool:
    """True for an in-process subflow run and a hindcast chunk: their parent run reports the failure."""
    in_process_subflow = flow_run.parent_task_run_id is not None and flow_run.deployment_id is None
    return in_process_subflow or ALERTS_VIA_PARENT in (flow_run.tags or [])


def _claim(flow_run: FlowRun) -> bool:
    """Mark the run as alerted (label :data:`ALERTED_LABEL`); False if it was already, here or in Prefect."""
    key = str(flow_run.id)
    if key in _alerted_here:
        return False
    _alerted_here.add(key)
    try:
        with get_client(sync_client=True) as client:
            current = client.read_flow_run(flow_run.id)
            if ALERTED_LABEL in (current.labels or {}):
                return False
            client.update_flow_run_labels(flow_run.id, {ALERTED_LABEL: dt.datetime.now(dt.timezone.utc)
                                                        .isoformat(timespec="seconds")})
    except Exception as error:  # no API (it may be what failed): still alert, guarded in this process only
        log.warning("failure alert of flow run %s: cannot label the run in Prefect (%s)", flow_run.name, error)
    return True


def init_month_of(flow_run: FlowRun) -> str | None:
    """The init month a run worked on: its ``init_month`` parameter (for the monthly run without one, the
    month its schedule implies), or the ``start``..``end`` range of a backfill or hindcast."""
    params = flow_run.parameters or {}
    if params.get("init_month"):
        return str(params["init_month"])
    if "init_month" in params and flow_run.expected_start_time is not None:
        return str(last_complete_month(flow_run.expected_start_time.astimezone(dt.timezone.utc)))
    if params.get("start") and params.get("end"):
        return f"{params['start']}..{params['end']}"
    return None


def error_text(state: State) -> str:
    """The exception that ended the run (type and message), else the state's message."""
    try:
        result = state.result(raise_on_failure=False)
    except Exception:
        result = None
    if isinstance(result, BaseException):
        return f"{type(result).__name__}: {result}"
    return state.message or f"the run ended {state.name} without a message"


def rerun_command(flow: Flow, flow_run: FlowRun, deployment: str | None) -> str:
    """The command that runs the same work again: the deployment with the same parameters, else the flow call."""
    params = dict(flow_run.parameters or {})
    if "init_month" in params and not params["init_month"]:
        params["init_month"] = init_month_of(flow_run)  # pinned: a later rerun must not pick another month
    if deployment:
        args = " ".join(f"-p {shlex.quote(f'{k}={v if isinstance(v, str) else json.dumps(v)}')}"
                        for k, v in params.items() if v is not None)
        return f"prefect deployment run {shlex.quote(deployment)} {args}".rstrip()
    call = ", ".join(f"{k}={json.dumps(v) if isinstance(v, str) else repr(v)}" for k, v in params.items()
                     if v is not None)  # strings in double quotes: the command is single-quoted
    module, name = flow.fn.__module__, flow.fn.__name__
    return f"python -c {shlex.quote(f'from {module} import {name}; {name}({call})')}"


def failure_alert(flow: Flow, flow_run: FlowRun, state: State) -> FailureAlert:
    """What the alert says about ``flow_run``, read from the run and the Prefect API."""
    deployment = None
    if flow_run.deployment_id is not None:
        try:
            with get_client(sync_client=True) as client:
                deployment = f"{flow.name}/{client.read_deployment(flow_run.deployment_id).name}"
        except Exception as error:
            log.warning("failure alert: cannot read the deployment of flow run %s: %s", flow_run.name, error)
            deployment = f"{flow.name}/<deployment {flow_run.deployment_id}>"
    ui = get_current_settings().ui_url
    return FailureAlert(
        flow=flow.name, flow_run_name=flow_run.name, flow_run_id=str(flow_run.id), state=state.name or "Failed",
        deployment=deployment, init_month=init_month_of(flow_run), parameters=dict(flow_run.parameters or {}),
        error=error_text(state), rerun=rerun_command(flow, flow_run, deployment),
        ui_url=f"{ui.rstrip('/')}/runs/flow-run/{flow_run.id}" if ui else None)
