"""Emailing the report through real SMTP servers on loopback (aiosmtpd): parts, recipients, TLS, failures."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import ipaddress
import logging
import re
import socket
import ssl
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Iterator

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from enso.config import Settings
from reports.data import ReportData, example_report_data
from reports.email import EmailDeliveryError, SmtpSettings, build_message, send_message
from reports.render import RenderedReport, render_report

SENDER = "ENSO forecast <enso@forecast.example>"
RECIPIENTS = ["alice@example.org", "Bob <bob@example.net>"]
ENVELOPE_RECIPIENTS = ["alice@example.org", "bob@example.net"]
USER, PASSWORD = "reporter", "s3cret-Pa55word!"


@dataclass
class Recorder:
    """An aiosmtpd handler that keeps what it receives; it can refuse the first RCPTs or all of them."""

    refuse_rcpt: str | None = None
    refuse_times: int | None = None
    received: list[tuple[str, list[str], bytes, bool, bool]] = field(default_factory=list)
    rcpt_calls: int = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        self.rcpt_calls += 1
        if self.refuse_rcpt and (self.refuse_times is None or self.rcpt_calls <= self.refuse_times):
            return self.refuse_rcpt
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content,
                              server.transport.get_extra_info("ssl_object") is not None,
                              bool(session.authenticated)))
        return "250 Message accepted for delivery"


def _authenticator(server, session, envelope, mechanism, auth_data):
    """Accept USER/PASSWORD; on a wrong password reply with it quoted, as a careless server might."""
    if not isinstance(auth_data, LoginPassword):
        return AuthResult(success=False, handled=False)
    login, password = auth_data.login.decode(), auth_data.password.decode()
    if login == USER and password == PASSWORD:
        return AuthResult(success=True)
    return AuthResult(success=False, handled=False, message=f"535 5.7.8 bad password {password!r} for {login}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def smtp_server(handler: Recorder, **kwargs: object) -> Iterator[int]:
    controller = Controller(handler, hostname="127.0.0.1", port=_free_port(), **kwargs)
    controller.start()
    try:
        yield controller.port
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A self-signed certificate for 127.0.0.1: (server context, client context trusting it)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return server, client


@pytest.fixture(scope="module")
def data() -> ReportData:
    return example_report_data()


@pytest.fixture(scope="module")
def rendered(data: ReportData) -> RenderedReport:
    return render_report(data)


@pytest.fixture
def message(rendered: RenderedReport, data: ReportData) -> email.message.EmailMessage:
    return build_message(rendered, data, sender=SENDER, recipients=RECIPIENTS)


def _check_report_email(raw: bytes, rendered: RenderedReport) -> None:
    """The received message has the summary, the HTML with CID charts, and the attached report."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg.get_content_type() == "multipart/mixed"
    assert msg["From"] == SENDER
    assert [a.addr_spec for a in msg["To"].addresses] == ENVELOPE_RECIPIENTS
    assert msg["Subject"].startswith(f"ENSO forecast {rendered.init_month}: Niño 3.4 ")

    text = msg.get_body(preferencelist=("plain",))
    assert f"ENSO forecast initialised {rendered.init_month}" in text.get_content()
    assert f"attached ({rendered.file_name})" in text.get_content()

    html = msg.get_body(preferencelist=("html",))
    related = next(p for p in msg.walk() if p.get_content_type() == "multipart/related")
    assert html in related.iter_parts()
    referenced = set(re.findall(r'src="cid:([^"]+)"', html.get_content()))
    images = {part["Content-ID"].strip("<>"): part.get_content() for part in related.iter_parts()
              if part.get_content_type() == "image/png"}
    assert referenced == set(images) and len(images) == len(rendered.images)
    assert {rendered.content_id(name): png for name, png in rendered.images.items()} == images
    assert "data:image" not in html.get_content()

    attachments = list(msg.iter_attachments())
    assert [a.get_filename() for a in attachments] == [f"enso-report-{rendered.init_month}.html"]
    assert attachments[0].get_content_type() == "text/html"
    assert attachments[0].get_content_charset() == "utf-8"
    assert attachments[0].get_payload(decode=True) == rendered.html.encode("utf-8"), "the file, byte for byte"


def test_message_structure(message: email.message.EmailMessage, rendered: RenderedReport) -> None:
    kinds = [part.get_content_type() for part in message.walk()]
    assert kinds[:5] == ["multipart/mixed", "multipart/alternative", "text/plain", "multipart/related",
                         "text/html"]
    assert kinds.count("image/png") == len(rendered.images) and kinds[-1] == "text/html"
    assert all(len(line) <= 998 for line in message.as_bytes().split(b"\n")), "SMTP line length limit"
    _check_report_email(message.as_bytes(), rendered)


def test_first_month_message_has_only_the_charts_it_draws() -> None:
    data = example_report_data(with_history=False)
    rendered = render_report(data)
    assert "skill_by_lead.png" not in rendered.images
    _check_report_email(build_message(rendered, data, sender=SENDER, recipients=RECIPIENTS).as_bytes(), rendered)


def test_message_needs_recipients(rendered: RenderedReport, data: ReportData) -> None:
    with pytest.raises(ValueError, match="no recipients"):
        build_message(rendered, data, sender=SENDER, recipients=[])


def test_sent_over_loopback_without_tls(message, rendered: RenderedReport) -> None:
    handler = Recorder()
    with smtp_server(handler) as port:
        delivery = send_message(message, SmtpSettings(host="127.0.0.1", port=port, security="none", timeout=5))
    assert delivery.attempts == 1 and delivery.refused == {} and delivery.message_id == message["Message-ID"]
    [(mail_from, rcpt_tos, raw, over_tls, _)] = handler.received
    assert mail_from == "enso@forecast.example" and rcpt_tos == ENVELOPE_RECIPIENTS and not over_tls
    _check_report_email(raw, rendered)


def test_starttls_with_login(message, rendered: RenderedReport, tls) -> None:
    server_context, client_context = tls
    handler = Recorder()
    smtp = SmtpSettings(host="127.0.0.1", port=0, user=USER, password=PASSWORD, security="starttls", timeout=5)
    with smtp_server(handler, tls_context=server_context, require_starttls=True, auth_required=True,
                     authenticator=_authenticator) as port:
        delivery = send_message(message, replace(smtp, port=port),
                                ssl_context=client_context)
    assert delivery.attempts == 1
    [(_, rcpt_tos, raw, over_tls, authenticated)] = handler.received
    assert over_tls and authenticated and rcpt_tos == ENVELOPE_RECIPIENTS
    _check_report_email(raw, rendered)


def test_implicit_tls(message, tls) -> None:
    server_context, client_context = tls
    handler = Recorder()
    with smtp_server(handler, ssl_context=server_context) as port:
        send_message(message, SmtpSettings(host="127.0.0.1", port=port, security="ssl", timeout=5),
                     ssl_context=client_context)
    [(_, rcpt_tos, _, over_tls, _)] = handler.received
    assert over_tls and rcpt_tos == ENVELOPE_RECIPIENTS


def test_untrusted_certificate_is_a_permanent_failure(message, tls) -> None:
    server_context, _ = tls
    with smtp_server(Recorder(), ssl_context=server_context) as port:
        with pytest.raises(EmailDeliveryError, match=r"after 1 attempt\(s\) \(permanent\).*CERTIFICATE_VERIFY"):
            send_message(message, SmtpSettings(host="127.0.0.1", port=port, security="ssl", timeout=5),
                         retries=2, backoff=0.01)


def _assert_no_password(error: EmailDeliveryError, caplog: pytest.LogCaptureFixture) -> None:
    for text in (str(error), repr(error), "".join(traceback.format_exception(error)), caplog.text):
        assert PASSWORD not in text
    assert error.__cause__ is None and error.__context__ is None


def test_wrong_password_fails_at_once_without_revealing_it(message, tls, caplog) -> None:
    server_context, client_context = tls
    handler = Recorder()
    smtp_kwargs = dict(user=USER, password="not-" + PASSWORD, security="starttls", timeout=5)
    caplog.set_level(logging.DEBUG, logger="reports.email")
    with smtp_server(handler, tls_context=server_context, auth_required=True, authenticator=_authenticator) as port:
        smtp = SmtpSettings(host="127.0.0.1", port=port, **smtp_kwargs)
        with pytest.raises(EmailDeliveryError) as caught:
            send_message(message, smtp, retries=2, backoff=0.01, ssl_context=client_context)
    error = caught.value
    assert error.attempts == 1 and handler.received == []
    assert f"127.0.0.1:{port} (starttls)" in str(error) and "login rejected (535" in str(error)
    assert "bad password '***'" in str(error), "the server quoted the password: it must be masked"
    assert smtp.password not in str(error) and smtp.password not in caplog.text
    assert "s3cret" not in repr(smtp), "SmtpSettings must not show the password"
    _assert_no_password(error, caplog)


def test_refused_connection_is_retried_then_reported(message, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="reports.email")
    port = _free_port()
    smtp = SmtpSettings(host="127.0.0.1", port=port, user=USER, password=PASSWORD, security="starttls", timeout=2)
    with pytest.raises(EmailDeliveryError) as caught:
        send_message(message, smtp, retries=2, backoff=0.01)
    error = caught.value
    assert error.attempts == 3
    assert re.search(rf"to 2 recipient\(s\) via 127\.0\.0\.1:{port} \(starttls\) failed after 3 attempt\(s\) "
                     r"\(transient\): ConnectionRefusedError", str(error))
    assert len([r for r in caplog.records if "retrying" in r.getMessage()]) == 2
    _assert_no_password(error, caplog)


def test_temporary_refusal_is_retried_until_accepted(message, rendered: RenderedReport) -> None:
    handler = Recorder(refuse_rcpt="451 4.3.0 Try again later", refuse_times=2)
    with smtp_server(handler) as port:
        delivery = send_message(message, SmtpSettings(host="127.0.0.1", port=port, security="none", timeout=5),
                                retries=3, backoff=0.01)
    assert delivery.attempts == 2, "both recipients refused on the first try, accepted on the second"
    [(_, rcpt_tos, raw, _, _)] = handler.received
    assert rcpt_tos == ENVELOPE_RECIPIENTS
    _check_report_email(raw, rendered)


def test_permanent_refusal_is_not_retried(message) -> None:
    handler = Recorder(refuse_rcpt="550 5.1.1 No such user")
    with smtp_server(handler) as port:
        with pytest.raises(EmailDeliveryError, match=r"after 1 attempt\(s\) \(permanent\).*550 5\.1\.1 No such user"):
            send_message(message, SmtpSettings(host="127.0.0.1", port=port, security="none", timeout=5),
                         retries=3, backoff=0.01)
    assert handler.received == [] and handler.rcpt_calls == 2


def test_missing_host_is_reported(message) -> None:
    with pytest.raises(EmailDeliveryError, match="no SMTP host configured") as caught:
        send_message(message, SmtpSettings(host=""))
    assert caught.value.attempts == 0


def test_smtp_settings_from_settings() -> None:
    settings = Settings(smtp_host="mail.example.org", smtp_port=465, smtp_user="u", smtp_password=PASSWORD,
                        smtp_security="ssl", smtp_timeout=12.5)
    smtp = SmtpSettings.from_settings(settings)
    assert (smtp.host, smtp.port, smtp.user, smtp.password, smtp.security, smtp.timeout) == \
        ("mail.example.org", 465, "u", PASSWORD, "ssl", 12.5)
    assert PASSWORD not in repr(smtp) and PASSWORD not in repr(settings)
    with pytest.raises(ValueError, match="SMTP security"):
        SmtpSettings(host="x", security="tls")  # type: ignore[arg-type]


@pytest.mark.parametrize("value, expected", [
    ('["a@x.org", "b@y.org"]', ["a@x.org", "b@y.org"]),
    ("a@x.org, b@y.org", ["a@x.org", "b@y.org"]),
    ("a@x.org", ["a@x.org"]),
    ("", []),
])
def test_report_recipients_from_the_environment(monkeypatch: pytest.MonkeyPatch, value: str,
                                                expected: list[str]) -> None:
    monkeypatch.setenv("ENSO_REPORT_TO", value)
    assert Settings().report_to == expected


def test_report_recipients_reject_broken_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENSO_REPORT_TO", '["a@x.org", ')
    with pytest.raises(ValueError, match="ENSO_REPORT_TO is not a valid JSON list"):
        Settings()
