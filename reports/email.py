"""Email the monthly report: build the MIME message, and send it over SMTP with retries.

The message is ``multipart/mixed``:

* ``multipart/alternative``: a short ``text/plain`` summary, and a
  ``multipart/related`` holding the ``text/html`` report body (charts referenced
  as ``cid:``, since many mail clients block ``data:`` images) and the chart PNGs
  as inline parts with matching Content-IDs;
* the standalone report (charts as ``data:`` URIs) attached as
  ``enso-report-YYYY-MM.html``.

:func:`send_message` retries transient failures (refused or dropped
connections, timeouts, 4xx replies) with exponential backoff and then raises
:class:`EmailDeliveryError`; permanent failures (5xx replies, rejected login,
TLS certificate errors) are raised at once. Only failures before the server
accepted the message are retried: once it has answered 250 to the DATA, the
message is sent, even if the connection then drops at QUIT (retrying then would
deliver copies). No message, log line or exception chain ever carries the SMTP
password. Sending a month's report only once is the store's job
(``email_delivery``, :func:`db.reporting.email_report`), not this module's.
"""

from __future__ import annotations

import base64
import logging
import smtplib
import ssl
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, getaddresses, make_msgid, parseaddr
from typing import Literal, Sequence

from enso.config import Settings
from reports.data import ReportData
from reports.render import RenderedReport, month_name, phase_label, signed, summary_text

log = logging.getLogger(__name__)

Security = Literal["starttls", "ssl", "none"]


@dataclass(frozen=True)
class SmtpSettings:
    """How to reach the SMTP server; ``security``: STARTTLS upgrade, implicit TLS (``ssl``) or none."""

    host: str
    port: int = 25
    user: str = ""
    password: str = field(default="", repr=False)
    security: Security = "starttls"
    timeout: float = 30.0

    def __post_init__(self) -> None:
        if self.security not in ("starttls", "ssl", "none"):
            raise ValueError(f"SMTP security must be 'starttls', 'ssl' or 'none', got {self.security!r}")

    @classmethod
    def from_settings(cls, settings: Settings) -> "SmtpSettings":
        """From ``ENSO_SMTP_HOST``, ``_PORT``, ``_USER``, ``_PASSWORD``, ``_SECURITY``, ``_TIMEOUT``."""
        return cls(host=settings.smtp_host, port=settings.smtp_port, user=settings.smtp_user,
                   password=settings.smtp_password, security=settings.smtp_security,
                   timeout=settings.smtp_timeout)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port} ({self.security})"


class EmailDeliveryError(RuntimeError):
    """The report could not be sent; ``attempts`` says how many tries were made. Never holds the password."""

    def __init__(self, message: str, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


@dataclass(frozen=True)
class Delivery:
    """A message the server accepted: its Message-ID, the tries it took and any recipients refused."""

    message_id: str | None
    attempts: int
    refused: dict[str, tuple[int, bytes]]


def subject(data: ReportData) -> str:
    """E.g. ``ENSO forecast 2025-12: Niño 3.4 +1.05 °C in Jan 2026 (El Niño)``."""
    lead1 = data.forecast.leads.iloc[0]
    return (f"ENSO forecast {data.init_month}: Niño 3.4 {signed(lead1['nino34_anomaly'])} °C in "
            f"{month_name(lead1['target_month'])} ({phase_label(lead1['phase'])})")


def build_message(rendered: RenderedReport, data: ReportData, *, sender: str,
                  recipients: Sequence[str]) -> EmailMessage:
    """The report email: text summary, HTML body with inline CID charts, the standalone report attached."""
    if not recipients:
        raise ValueError(f"report {data.init_month}: no recipients (set ENSO_REPORT_TO)")
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    msg = EmailMessage()
    msg["Subject"] = subject(data)
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = make_msgid(idstring=f"enso-report-{data.init_month}", domain=domain)
    msg.set_content(summary_text(data))
    msg.add_alternative(rendered.email_html, subtype="html")
    html_part = msg.get_payload()[1]  # type: ignore[index]
    for name, png in rendered.images.items():
        html_part.add_related(png, maintype="image", subtype="png", cid=f"<{rendered.content_id(name)}>",
                              filename=name, disposition="inline")
    # As bytes, so the attached file is the report byte for byte (a text part would get CRLF line ends).
    msg.add_attachment(rendered.html.encode("utf-8"), maintype="text", subtype="html",
                       filename=rendered.file_name, params={"charset": "utf-8"})
    return msg


def _secrets(smtp: SmtpSettings) -> list[str]:
    """The password and the encodings of it that AUTH PLAIN/LOGIN put on the wire."""
    if not smtp.password:
        return []
    raw = [smtp.password.encode(), f"\0{smtp.user}\0{smtp.password}".encode()]
    return [smtp.password] + [base64.b64encode(b).decode("ascii") for b in raw]


def _scrub(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def _describe(error: BaseException) -> str:
    """A one-line account of an SMTP or socket failure."""
    if isinstance(error, smtplib.SMTPAuthenticationError):
        return f"login rejected ({error.smtp_code} {error.smtp_error.decode(errors='replace')})"
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        refused = "; ".join(f"{rcpt}: {code} {msg.decode(errors='replace')}"
                            for rcpt, (code, msg) in error.recipients.items())
        return f"all recipients refused ({refused})"
    if isinstance(error, smtplib.SMTPResponseException):
        reply = error.smtp_error.decode(errors="replace") if isinstance(error.smtp_error, bytes) \
            else str(error.smtp_error)
        return f"server replied {error.smtp_code} {reply}"
    return f"{type(error).__name__}: {error}"


def _is_transient(error: BaseException) -> bool:
    """Worth another try: connection problems, timeouts and 4xx replies; not 5xx, login or certificates."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return all(400 <= code < 500 for code, _ in error.recipients.values())
    if isinstance(error, smtplib.SMTPResponseException):
        return 400 <= error.smtp_code < 500
    if isinstance(error, smtplib.SMTPServerDisconnected):
        return True
    if isinstance(error, (ssl.SSLCertVerificationError, smtplib.SMTPNotSupportedError)):
        return False
    return isinstance(error, OSError)


def _send_once(msg: EmailMessage, smtp: SmtpSettings, context: ssl.SSLContext) -> dict[str, tuple[int, bytes]]:
    client: smtplib.SMTP
    if smtp.security == "ssl":
        client = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=smtp.timeout, context=context)
    else:
        client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout)
    try:
        if smtp.security == "starttls":
            client.starttls(context=context)
        if smtp.user:
            client.login(smtp.user, smtp.password)
        refused = client.send_message(msg)
        # Accepted (250 to the DATA): from here on the message is sent, whatever QUIT does.
        try:
            client.quit()
        except (smtplib.SMTPException, OSError) as error:
            log.info("%s accepted the message; closing the connection failed (%s): counted as sent",
                     smtp.address, _describe(error))
        return refused
    finally:
        client.close()


def send_message(msg: EmailMessage, smtp: SmtpSettings, *, retries: int = 3, backoff: float = 5.0,
                 ssl_context: ssl.SSLContext | None = None) -> Delivery:
    """Send ``msg`` (envelope from its From/To headers), retrying transient failures.

    Up to ``1 + retries`` attempts, waiting ``backoff``, ``2 * backoff``, ...
    seconds between them. ``ssl_context`` defaults to the system's verified
    context (pass one trusting a private CA for an internal relay). Raises
    :class:`EmailDeliveryError` with a message naming the server, the recipients
    and the last failure.
    """
    recipients = [addr for _, addr in getaddresses(msg.get_all("To", []))]
    what = f"sending {msg.get('Subject', 'the report')!r} to {len(recipients)} recipient(s) via {smtp.address}"
    if not smtp.host:
        raise EmailDeliveryError(f"{what}: no SMTP host configured (set ENSO_SMTP_HOST)", attempts=0)
    context = ssl_context or ssl.create_default_context()
    secrets = _secrets(smtp)
    attempts = 0
    while True:
        attempts += 1
        try:
            refused = _send_once(msg, smtp, context)
        except (smtplib.SMTPException, OSError) as error:
            reason, transient = _scrub(_describe(error), secrets), _is_transient(error)
        else:
            if refused:
                log.warning("%s: server refused %s", what, ", ".join(sorted(refused)))
            log.info("%s: accepted after %d attempt(s)", what, attempts)
            return Delivery(message_id=msg.get("Message-ID"), attempts=attempts, refused=refused)
        if not transient or attempts > retries:
            # Raised outside the except block so no exception chain (which could quote the wire) is attached.
            kind = "transient" if transient else "permanent"
            raise EmailDeliveryError(f"{what} failed after {attempts} attempt(s) ({kind}): {reason}", attempts)
        wait = backoff * 2 ** (attempts - 1)
        log.warning("%s: attempt %d failed (%s); retrying in %.1f s", what, attempts, reason, wait)
        time.sleep(wait)
