"""Operations without a Prefect server: the settings they add, secrets kept out of text, the alert's
content, hindcast chunks, and the project's loggers routed only inside runs."""

from __future__ import annotations

import datetime as dt
import logging
import uuid

import pytest
from pydantic import ValidationError

from enso.config import Settings, SettingsError, load_settings
from enso.months import Month, month_chunks
from reports.alert import FailureAlert, alert_subject, build_alert, first_lines, redact

SMTP_PASSWORD, DB_PASSWORD = "smtp-Pa55!word", "db:pa/ss@word"


def test_operational_settings_parse_and_validate(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ENSO_ALERT_TO", "ENSO_RETRAIN_FALLBACK", "ENSO_RETRAIN_TIMEOUT", "ENSO_HINDCAST_CHUNK_MONTHS"):
        monkeypatch.delenv(name, raising=False)
    defaults = Settings()
    assert (defaults.retrain_fallback, defaults.retrain_timeout, defaults.alert_to) == ("cpu", 4 * 3600, [])
    monkeypatch.setenv("ENSO_ALERT_TO", "ops@example.org, oncall@example.org")
    monkeypatch.setenv("ENSO_RETRAIN_FALLBACK", "wait")
    monkeypatch.setenv("ENSO_RETRAIN_TIMEOUT", "900")
    monkeypatch.setenv("ENSO_HINDCAST_CHUNK_MONTHS", "60")
    settings = Settings()
    assert settings.alert_to == ["ops@example.org", "oncall@example.org"]
    assert (settings.retrain_fallback, settings.retrain_timeout, settings.hindcast_chunk_months) == ("wait", 900, 60)
    assert Settings(alert_to='["a@x.org"]').alert_to == ["a@x.org"]
    for bad in ({"retrain_fallback": "gpu"}, {"retrain_timeout": 0}, {"monthly_retries": -1},
                {"hindcast_chunk_months": 0}):
        with pytest.raises(ValidationError):
            Settings(**bad)
    with pytest.raises(ValidationError, match="ENSO_ALERT_TO is not a valid JSON list"):
        Settings(alert_to="[oops")
    with pytest.raises(SettingsError, match="ENSO_ALERT_TO: not an e-mail address: 'on call'"):
        load_settings(alert_to="ops@example.org, on call")


def test_passwords_are_secret_strings_given_once() -> None:
    settings = Settings(smtp_password=SMTP_PASSWORD, database_url="postgresql+psycopg://enso@db:5432/enso",
                        database_password=DB_PASSWORD)
    assert SMTP_PASSWORD not in repr(settings) and DB_PASSWORD not in repr(settings)
    assert SMTP_PASSWORD not in str(settings.model_dump())
    url = settings.resolved_database_url()
    assert url == "postgresql+psycopg://enso:db%3Apa%2Fss%40word@db:5432/enso"
    from sqlalchemy.engine import make_url
    assert make_url(url).password == DB_PASSWORD
    assert sorted(settings.secret_values()) == sorted([SMTP_PASSWORD, DB_PASSWORD])
    inline = Settings(database_url="postgresql://u:inline@h/d")
    assert inline.secret_values() == ["inline"] and "inline" not in repr(inline)

    with pytest.raises(ValidationError, match="ENSO_SMTP_PASSWORD and ENSO_SMTP_PASSWORD_BLOCK are both set"):
        Settings(smtp_password="x", smtp_password_block="smtp")
    with pytest.raises(ValidationError, match="remove the password from the URL"):
        Settings(database_url="postgresql://u:inline@h/d", database_password_block="db")
    with pytest.raises(ValueError, match="names no user"):
        Settings(database_url="postgresql://h/d", database_password="x").resolved_database_url()


def test_redact_hides_configured_secrets_and_url_passwords() -> None:
    text = (f"login failed for {SMTP_PASSWORD}; store postgresql+psycopg://enso:{DB_PASSWORD}@db/enso and "
            "https://user:tok3n@example.org/x; sqlite:///var/enso.sqlite stays")
    clean = redact(text, [SMTP_PASSWORD, DB_PASSWORD])
    assert SMTP_PASSWORD not in clean and DB_PASSWORD not in clean and "tok3n" not in clean
    assert "postgresql+psycopg://enso:***@db/enso" in clean and "https://user:***@example.org/x" in clean
    assert "sqlite:///var/enso.sqlite stays" in clean


def _alert(error: str) -> FailureAlert:
    return FailureAlert(flow="monthly", flow_run_name="crimson-fox", flow_run_id=str(uuid.uuid4()), state="Failed",
                        deployment="monthly/monthly", init_month="2025-11",
                        parameters={"init_month": "2025-11", "force_email": False}, error=error,
                        rerun="prefect deployment run monthly/monthly -p init_month=2025-11 -p force_email=false",
                        ui_url="http://prefect:4200/runs/flow-run/x")


def test_the_alert_names_the_run_the_month_the_error_and_the_rerun_without_secrets() -> None:
    error = "RuntimeError: the store failed\n" + "\n".join(f"line {i} pw={SMTP_PASSWORD}" for i in range(30))
    alert = _alert(error)
    msg = build_alert(alert, sender="enso@example.org", recipients=["ops@example.org"], secrets=[SMTP_PASSWORD])
    body = msg.get_content()
    assert msg["Subject"] == "ENSO monthly run Failed (init month 2025-11): crimson-fox" == alert_subject(alert)
    assert msg["To"] == "ops@example.org" and alert.flow_run_id in msg["Message-ID"]
    for needed in ("crimson-fox", alert.flow_run_id, "init month  2025-11", "RuntimeError: the store failed",
                   "prefect deployment run monthly/monthly -p init_month=2025-11", "monthly/monthly",
                   "http://prefect:4200/runs/flow-run/x", "(19 more lines in the run's log)"):
        assert needed in body, needed
    assert SMTP_PASSWORD not in msg.as_string() and "line 10 pw=***" in body and "line 11" not in body
    with pytest.raises(ValueError, match="ENSO_ALERT_TO"):
        build_alert(alert, sender="enso@example.org", recipients=[])
    assert first_lines("a\n\n b \n") == "a\n b"


def test_month_chunks_cover_the_range_in_order() -> None:
    start, end = Month.of(1990, 1), Month.of(2020, 6)
    chunks = month_chunks(start, end, 120)
    assert chunks[0] == (start, Month.of(1999, 12)) and chunks[-1] == (Month.of(2020, 1), end) and len(chunks) == 4
    covered = [m for a, b in chunks for m in range(a.ordinal, b.ordinal + 1)]
    assert covered == list(range(start.ordinal, end.ordinal + 1))
    assert month_chunks(start, start, 12) == [(start, start)]
    with pytest.raises(ValueError, match="at least one month"):
        month_chunks(start, end, 0)


def test_project_logs_reach_prefect_only_inside_a_run(recwarn: pytest.WarningsRecorder) -> None:
    from flows.runlog import PROJECT_LOGGERS, RunLogHandler, route_project_logs

    route_project_logs()
    route_project_logs()
    for name in PROJECT_LOGGERS:
        logger = logging.getLogger(name)
        assert logger.getEffectiveLevel() == logging.INFO
        assert sum(isinstance(h, RunLogHandler) for h in logger.handlers) == 1
    logging.getLogger("reports.email").info("outside any run")
    assert not [w for w in recwarn if "flow run" in str(w.message)], "no 'missing flow run' warning outside runs"


def test_the_alert_hook_leaves_in_process_subflows_and_chunks_to_their_parent() -> None:
    from prefect.client.schemas.objects import FlowRun

    from flows.alerts import ALERTS_VIA_PARENT, init_month_of, leaves_alert_to_parent

    def run(**kw: object) -> FlowRun:
        return FlowRun(flow_id=uuid.uuid4(), name="r", **kw)

    assert not leaves_alert_to_parent(run())
    assert not leaves_alert_to_parent(run(deployment_id=uuid.uuid4(), parent_task_run_id=uuid.uuid4()))
    assert leaves_alert_to_parent(run(parent_task_run_id=uuid.uuid4()))
    assert leaves_alert_to_parent(run(deployment_id=uuid.uuid4(), tags=[ALERTS_VIA_PARENT]))
    scheduled = dt.datetime(2025, 12, 12, 6, tzinfo=dt.timezone.utc)
    assert init_month_of(run(parameters={"init_month": None}, expected_start_time=scheduled)) == "2025-11"
    assert init_month_of(run(parameters={"start": "1990-01", "end": "2020-12"})) == "1990-01..2020-12"
    assert init_month_of(run(parameters={"preset": None})) is None
