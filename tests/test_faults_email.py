"""The fault suite, email: nothing sent twice, nothing lost. Real SMTP servers on loopback (aiosmtpd)
that are slow, drop the connection at QUIT or refuse recipients; two senders at once; a send that
was interrupted. The store's ``email_delivery`` claims make each report go out exactly once."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, select

from db.engine import opened_engine
from db.reporting import email_report, recipient_key, render_and_store
from db.schema import EmailDelivery
from enso.config import Settings
from enso.months import Month
from reports.email import EmailDeliveryError
from tests.test_report_email import Recorder, smtp_server

pytestmark = pytest.mark.faults
INIT = Month.of(2020, 6)
RECIPIENTS = ["ops@example.org", "Risk Desk <risk@example.org>"]


@dataclass
class SlowRecorder(Recorder):
    """Takes a second to accept the DATA (two senders overlap), or drops the connection at QUIT."""

    data_seconds: float = 0.0
    drop_at_quit: bool = False

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        await asyncio.sleep(self.data_seconds)
        return await super().handle_DATA(server, session, envelope)

    async def handle_QUIT(self, server, session, envelope):  # noqa: N802
        if self.drop_at_quit:
            server.transport.abort()  # the message was accepted; the goodbye never comes
        return "221 Bye"


@pytest.fixture
def mailing(copy_store: dict, tmp_path: Path):
    """The trained store's copy with its report of INIT rendered; settings to send it to RECIPIENTS."""
    def settings_for(port: int) -> Settings:
        return copy_store["settings"].model_copy(update={
            "smtp_host": "127.0.0.1", "smtp_port": port, "smtp_security": "none", "smtp_timeout": 5.0,
            "report_to": RECIPIENTS, "report_from": "ENSO <enso@forecast.example>"})

    with opened_engine(copy_store["url"]) as engine:
        render_and_store(engine, settings_for(25), INIT)
        yield engine, settings_for


def _deliveries(engine: Engine) -> list[tuple[str, int]]:
    with engine.connect() as conn:
        return [(r.status, r.attempts) for r in conn.execute(select(EmailDelivery).order_by(EmailDelivery.id))]


def test_two_senders_at_once_deliver_one_message(mailing) -> None:
    engine, settings_for = mailing
    handler = SlowRecorder(data_seconds=1.0)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []
    with smtp_server(handler) as port:
        def send() -> None:
            barrier.wait()
            outcomes.append(email_report(engine, settings_for(port), INIT, backoff=0.01).status)

        threads = [threading.Thread(target=send) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert len(handler.received) == 1
    assert sorted(outcomes) in (["in progress", "sent"], ["already sent", "sent"])
    assert _deliveries(engine) == [("sent", 1)]


def test_a_server_dropping_the_connection_at_quit_delivers_once(mailing) -> None:
    engine, settings_for = mailing
    handler = SlowRecorder(drop_at_quit=True)
    with smtp_server(handler) as port:
        outcome = email_report(engine, settings_for(port), INIT, retries=3, backoff=0.01)
        again = email_report(engine, settings_for(port), INIT, retries=3, backoff=0.01)
    assert outcome.status == "sent" and outcome.attempts == 1
    assert again.status == "already sent"
    assert len(handler.received) == 1
    assert _deliveries(engine) == [("sent", 1)]


def test_a_server_refusing_at_rcpt_is_retried_and_reported(mailing) -> None:
    engine, settings_for = mailing
    handler = Recorder(refuse_rcpt="451 4.3.0 Mailbox busy, try again", refuse_times=4)
    with smtp_server(handler) as port:
        outcome = email_report(engine, settings_for(port), INIT, retries=3, backoff=0.01)
    assert outcome.status == "sent" and outcome.attempts == 3  # both recipients refused on tries 1 and 2
    assert len(handler.received) == 1 and _deliveries(engine) == [("sent", 3)]

    refusing = Recorder(refuse_rcpt="451 4.3.0 Mailbox busy, try again")
    with smtp_server(refusing) as port:
        with pytest.raises(EmailDeliveryError, match=r"not emailed.*after 3 attempt\(s\) \(transient\).*451"):
            email_report(engine, settings_for(port), INIT, force=True, retries=2, backoff=0.01)
    assert refusing.received == []
    assert _deliveries(engine) == [("sent", 3), ("failed", 3)]
    with engine.connect() as conn:
        failed = conn.execute(select(EmailDelivery).where(EmailDelivery.status == "failed")).one()
    assert "451 4.3.0 Mailbox busy" in failed.message and failed.recipients == "ops@example.org, risk@example.org"


def test_a_recipient_refused_while_the_others_get_it_is_reported(mailing) -> None:
    engine, settings_for = mailing
    handler = Recorder(refuse_rcpt="550 5.1.1 No such user", refuse_times=1)
    with smtp_server(handler) as port:
        outcome = email_report(engine, settings_for(port), INIT, retries=3, backoff=0.01)
    assert outcome.status == "sent" and len(handler.received) == 1 and handler.received[0][1] == ["risk@example.org"]
    assert "refused ops@example.org: 550 5.1.1 No such user" in str(outcome)
    with engine.connect() as conn:
        assert "refused ops@example.org: 550" in conn.execute(select(EmailDelivery.message)).scalar_one()


def test_an_interrupted_send_blocks_the_month_until_forced(mailing) -> None:
    engine, settings_for = mailing
    with engine.begin() as conn:  # a sender killed two hours ago, after claiming the delivery
        conn.execute(insert(EmailDelivery).values(
            init_month=INIT.first_day, recipients=recipient_key(RECIPIENTS), status="sending", attempts=0,
            message="", at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=2)))
    handler = Recorder()
    with smtp_server(handler) as port:
        with pytest.raises(EmailDeliveryError, match="never finished.*--force-email"):
            email_report(engine, settings_for(port), INIT, backoff=0.01)
        assert handler.received == []
        forced = email_report(engine, settings_for(port), INIT, force=True, backoff=0.01)
    assert forced.status == "sent" and len(handler.received) == 1
    assert _deliveries(engine) == [("failed", 0), ("sent", 1)]


def test_the_monthly_flow_adds_no_second_retry_layer() -> None:
    from flows.monthly import email_task

    assert email_task.retries == 0
