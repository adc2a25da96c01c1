"""Failure alerts against a real Prefect server and a loopback SMTP server (with AUTH): a failed run sends one
alert, an in-process subflow's failure only its parent's, no password reaches the mail, the SMTP and
store passwords come from Prefect Secret blocks, and a run killed on a process worker is alerted as
Crashed (by its worker)."""

from __future__ import annotations

from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path
from typing import Iterator

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.conftest import _free_port

REPO = Path(__file__).resolve().parent.parent
SMTP_USER, SMTP_PASSWORD, DB_PASSWORD = "alerter", "smtp-Bl0ck-secret", "db-Bl0ck-secret"


class Inbox:
    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]  # noqa: N802
        self.messages.append((envelope.rcpt_tos, bool(session.authenticated), envelope.original_content,
                              message_from_bytes(envelope.content, policy=default_policy)))
        return "250 OK"


def _authenticator(server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
    """Only the password the Secret block holds logs in."""
    ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == SMTP_USER \
        and auth_data.password.decode() == SMTP_PASSWORD
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def alerting(prefect_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Inbox]:
    """Settings for alerts to ops@example.org over a loopback SMTP server with AUTH; both passwords in Secret
    blocks of the session's Prefect server; the store unreachable (so that every run fails)."""
    from prefect.blocks.system import Secret
    from prefect.settings import PREFECT_API_URL, temporary_settings

    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=_free_port(), auth_require_tls=False,
                      authenticator=_authenticator)
    smtp.start()
    with temporary_settings(updates={PREFECT_API_URL: prefect_server}):
        Secret(value=SMTP_PASSWORD).save("enso-test-smtp-password", overwrite=True)
        Secret(value=DB_PASSWORD).save("enso-test-db-password", overwrite=True)
        for key, value in {
            "ENSO_DATABASE_URL": f"postgresql+psycopg://enso@127.0.0.1:{_free_port()}/enso",
            "ENSO_DATABASE_PASSWORD_BLOCK": "enso-test-db-password",
            "ENSO_SMTP_HOST": "127.0.0.1", "ENSO_SMTP_PORT": str(smtp.port),
            "ENSO_SMTP_SECURITY": "none", "ENSO_SMTP_USER": SMTP_USER,
            "ENSO_SMTP_PASSWORD_BLOCK": "enso-test-smtp-password",
            "ENSO_ALERT_TO": "ops@example.org", "ENSO_REPORT_FROM": "enso@example.org",
        }.items():
            monkeypatch.setenv(key, value)
        try:
            yield inbox
        finally:
            smtp.stop()


def test_a_failed_run_sends_one_alert_without_secrets(alerting: Inbox) -> None:
    from prefect.client.orchestration import get_client

    from flows import alerts
    from flows.forecast import hindcast_flow

    state = hindcast_flow(start="2010-01", end="2010-12", return_state=True)
    assert state.is_failed()
    assert len(alerting.messages) == 1
    recipients, authenticated, raw, message = alerting.messages[0]
    assert recipients == ["ops@example.org"] and authenticated, "logged in with the SMTP password's Secret block"
    assert message["Subject"].strip().startswith("ENSO hindcast run Failed (init month 2010-01..2010-12): ")
    body = message.get_content()
    run_id = str(state.state_details.flow_run_id)
    assert run_id in body and "none: started in-process" in body
    assert "StoreUnavailable: cannot reach the store at postgresql+psycopg://enso:***@127.0.0.1" in body
    assert """python -c 'from flows.forecast import hindcast_flow; hindcast_flow(start="2010-01", end="2010-12")'""" \
        in body
    for secret in (SMTP_PASSWORD, DB_PASSWORD):
        assert secret.encode() not in raw

    # The hook called again for the same run (as a worker would for a crash it reports too): no second mail.
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(state.state_details.flow_run_id)
    assert alerts.ALERTED_LABEL in flow_run.labels
    alerts._alerted_here.clear()  # another process: only the run's label in Prefect remembers
    alerts.alert_on_failure(hindcast_flow, flow_run, state)
    assert len(alerting.messages) == 1


def test_an_in_process_subflow_failure_is_alerted_once_by_its_parent(alerting: Inbox) -> None:
    from prefect import flow

    from flows.forecast import hindcast_flow
    from flows.hooks import RUN_HOOKS

    @flow(name="nightly-hindcast", **RUN_HOOKS)
    def nightly() -> None:
        hindcast_flow(start="2010-01", end="2010-12")

    assert nightly(return_state=True).is_failed()
    assert [m[3]["Subject"].strip().split(":")[0] for m in alerting.messages] == ["ENSO nightly-hindcast run Failed"]
    assert "cannot reach the store" in alerting.messages[0][3].get_content()


def test_alerts_are_off_without_recipients(alerting: Inbox, monkeypatch: pytest.MonkeyPatch,
                                           caplog: pytest.LogCaptureFixture) -> None:
    from flows.forecast import hindcast_flow

    monkeypatch.setenv("ENSO_ALERT_TO", "")
    assert hindcast_flow(start="2010-01", end="2010-12", return_state=True).is_failed()
    assert alerting.messages == []
    assert "no alert sent: ENSO_ALERT_TO is empty" in caplog.text


def test_a_missing_secret_block_is_named_with_how_to_create_it(alerting: Inbox,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.settings import SecretBlockError, run_settings

    settings = run_settings()
    assert settings.smtp_password.get_secret_value() == SMTP_PASSWORD
    assert f"enso:{DB_PASSWORD}@127.0.0.1" in settings.resolved_database_url()
    monkeypatch.setenv("ENSO_SMTP_PASSWORD_BLOCK", "no-such-block")
    with pytest.raises(SecretBlockError, match="ENSO_SMTP_PASSWORD_BLOCK='no-such-block'.*Secret\\(value="):
        run_settings()


def test_a_killed_run_is_alerted_as_crashed_by_its_worker(prefect_server: str, tmp_path: Path) -> None:
    """SIGKILL leaves the run no chance to report: its worker marks it Crashed and runs the crash hook."""
    import os
    import signal
    import time

    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from db.migrate import upgrade
    from deployments.deploy import deploy_all
    from enso.mirror import MirrorServer
    from tests.conftest import process_worker, worker_env

    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    smtp.start()
    store = f"sqlite:///{tmp_path / 'store.sqlite'}"
    upgrade(store)
    (tmp_path / "mirror").mkdir()
    with MirrorServer(tmp_path / "mirror") as srv, temporary_settings(updates={PREFECT_API_URL: prefect_server}):
        srv.faults.add("cobe/*", "delay:300", times=None)  # the backfill hangs in its first download
        env = worker_env(prefect_server, tmp_path / "worker-home", {
            "ENSO_DATABASE_URL": store, "ENSO_COBE_BASE_URL": srv.cobe_base_url, "ENSO_INDEX_URL": srv.index_url,
            "ENSO_DATA_DIR": str(tmp_path / "var"), "ENSO_SMTP_HOST": "127.0.0.1", "ENSO_SMTP_PORT": str(smtp.port),
            "ENSO_SMTP_SECURITY": "none", "ENSO_ALERT_TO": "ops@example.org"})
        try:
            deploy_all(source_dir=REPO)
            with process_worker("cpu", env, tmp_path / "worker.log"), get_client(sync_client=True) as client:
                run = run_deployment("backfill/backfill", parameters={"start": "1961-01", "end": "1961-02"},
                                     timeout=0)
                deadline = time.monotonic() + 300
                while not srv.requests or not client.read_flow_run(run.id).infrastructure_pid:
                    assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text(errors="replace")
                    time.sleep(1)
                os.kill(int(str(client.read_flow_run(run.id).infrastructure_pid).split(":")[-1]), signal.SIGKILL)
                while not (crashed := client.read_flow_run(run.id)).state.is_final() or not inbox.messages:
                    assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text(errors="replace")
                    time.sleep(1)
                time.sleep(3)  # a second alert, if one were coming, would be here by now
        finally:
            srv.faults.clear()
            smtp.stop()
    assert crashed.state.is_crashed()
    assert len(inbox.messages) == 1
    subject = inbox.messages[0][3]["Subject"].strip()
    assert subject == f"ENSO backfill run Crashed (init month 1961-01..1961-02): {crashed.name}"
    body = inbox.messages[0][3].get_content()
    assert "prefect deployment run backfill/backfill -p start=1961-01 -p end=1961-02" in body
