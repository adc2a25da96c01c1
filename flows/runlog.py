"""The project's loggers in the Prefect run log.

Library code logs with the standard library (``logging.getLogger(__name__)`` in
``reports.email``, ``db.reporting``, ``flows.alerts``...). Prefect sends to a run's
log only its own loggers, and those named in ``PREFECT_LOGGING_EXTRA_LOGGERS``.
:func:`route_project_logs` is the equivalent for :data:`PROJECT_LOGGERS`, set in
code so that every run gets it whatever the worker's environment, and with two
differences: the loggers log from INFO up (the root logger's WARNING would drop
what an operator wants to read, such as "accepted after 1 attempt(s)"), and a
record logged outside a flow or task run is not sent (it still reaches the
console), where Prefect's handler would warn about the missing run.

Every flow calls it when its run starts (the ``on_running`` hook of
:data:`flows.hooks.RUN_HOOKS`).
"""

from __future__ import annotations

import logging

from prefect.context import FlowRunContext, TaskRunContext
from prefect.logging.handlers import APILogHandler

#: The project's top-level packages: every logger below them reaches the run log.
PROJECT_LOGGERS: tuple[str, ...] = ("enso", "db", "reports", "flows")


class RunLogHandler(APILogHandler):
    """Prefect's API log handler for records logged inside a flow or task run; others are left to the console."""

    def emit(self, record: logging.LogRecord) -> None:
        if FlowRunContext.get() is None and TaskRunContext.get() is None:
            return
        super().emit(record)


def route_project_logs(level: int = logging.INFO) -> None:
    """Send the records of :data:`PROJECT_LOGGERS` (from ``level`` up) to the current run's log; idempotent."""
    for name in PROJECT_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET or logger.level > level:
            logger.setLevel(level)
        if not any(isinstance(h, RunLogHandler) for h in logger.handlers):
            logger.addHandler(RunLogHandler())
