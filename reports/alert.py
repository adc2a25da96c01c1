"""The failure alert: a short plain-text email saying which run failed, why, and how to rerun it.

:func:`build_alert` renders a :class:`FailureAlert` (the flows fill it from the
Prefect run) into a message for :func:`reports.email.send_message`. Everything in
it passes :func:`redact` first: the passwords of the configuration and the
``user:password@`` part of any URL are replaced by ``***``, so an alert never
carries a secret even when an error message quoted one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from typing import Sequence

#: How many lines of the error an alert quotes (the first ones: the exception and its message).
ERROR_LINES = 12

_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][\w+.-]*://)(?P<user>[^:/@\s]*):(?P<password>[^@/\s]+)@")


@dataclass(frozen=True)
class FailureAlert:
    """One failed or crashed flow run, as an operator needs it to act."""

    flow: str
    flow_run_name: str
    flow_run_id: str
    #: The run's final state: ``Failed``, ``Crashed``...
    state: str
    #: ``flow/deployment``, or None for a run started in-process (no deployment).
    deployment: str | None
    #: The init month (or range) the run worked on, when the run has one.
    init_month: str | None
    parameters: dict[str, object]
    error: str
    rerun: str
    #: Where the run is seen in the Prefect UI, when its URL is configured.
    ui_url: str | None = None


def redact(text: str, secrets: Sequence[str]) -> str:
    """``text`` without any of ``secrets`` nor URL passwords (``scheme://user:***@host``)."""
    text = _URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def first_lines(text: str, n: int = ERROR_LINES) -> str:
    """The first ``n`` non-empty lines of ``text`` (and how many were left out)."""
    lines = [line.rstrip() for line in text.strip().splitlines() if line.strip()]
    if len(lines) <= n:
        return "\n".join(lines)
    return "\n".join(lines[:n] + [f"... ({len(lines) - n} more lines in the run's log)"])


def alert_subject(alert: FailureAlert) -> str:
    """E.g. ``ENSO monthly run Failed (init month 2025-11): crimson-fox``."""
    what = f" (init month {alert.init_month})" if alert.init_month else ""
    return f"ENSO {alert.flow} run {alert.state}{what}: {alert.flow_run_name}"


def alert_text(alert: FailureAlert) -> str:
    """The plain-text body."""
    rows = [("flow", alert.flow), ("flow run", f"{alert.flow_run_name} ({alert.flow_run_id})"),
            ("deployment", alert.deployment or "none: started in-process"), ("state", alert.state)]
    if alert.init_month:
        rows.append(("init month", alert.init_month))
    rows.append(("parameters", ", ".join(f"{k}={v!r}" for k, v in alert.parameters.items()) or "none"))
    if alert.ui_url:
        rows.append(("run page", alert.ui_url))
    width = max(len(label) for label, _ in rows)
    body = [f"The ENSO forecasting system's {alert.flow} run ended {alert.state}.", ""]
    body += [f"{label:<{width}}  {value}" for label, value in rows]
    body += ["", "Error (first lines):", *("    " + line for line in first_lines(alert.error).splitlines())]
    body += ["", "To run it again once the cause is fixed:", f"    {alert.rerun}", "",
             "The run's full log is in Prefect (`prefect flow-run logs " + alert.flow_run_id + "`).",
             "This alert is sent once per flow run to ENSO_ALERT_TO."]
    return "\n".join(body) + "\n"


def build_alert(alert: FailureAlert, *, sender: str, recipients: Sequence[str],
                secrets: Sequence[str] = ()) -> EmailMessage:
    """The alert email, every text of it passed through :func:`redact`."""
    if not recipients:
        raise ValueError("a failure alert needs recipients (set ENSO_ALERT_TO)")
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    msg = EmailMessage()
    msg["Subject"] = redact(alert_subject(alert), secrets)
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = make_msgid(idstring=f"enso-alert-{alert.flow_run_id}", domain=domain)
    msg.set_content(redact(alert_text(alert), secrets))
    return msg
