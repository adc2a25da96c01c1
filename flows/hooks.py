"""The state hooks every deployment's flow carries: ``@flow(..., **RUN_HOOKS)``.

* running: the project's loggers go to the run log (:func:`flows.runlog.route_project_logs`);
* failed or crashed: one alert email to ``ENSO_ALERT_TO`` (:func:`flows.alerts.alert_on_failure`).
"""

from __future__ import annotations

from typing import Any

from prefect import Flow
from prefect.client.schemas.objects import FlowRun
from prefect.states import State

from flows.alerts import alert_on_failure
from flows.runlog import route_project_logs


def project_logs_hook(flow: Flow, flow_run: FlowRun, state: State) -> None:
    """``on_running``: route the project's loggers to this run's log."""
    route_project_logs()


RUN_HOOKS: dict[str, Any] = {
    "on_running": [project_logs_hook],
    "on_failure": [alert_on_failure],
    "on_crashed": [alert_on_failure],
}
