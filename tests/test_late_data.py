"""Late data without a held worker, on a real Prefect server with a process worker and a loopback mirror
that lacks the init month: the monthly run ends `AwaitingData` (not failed) and schedules a later run of
its deployment with the same parameters; published in between, the later run forecasts; never
published, the last allowed run fails and one failure alert goes out.

The mirror's data end in 2020, so the runs judge their inputs as of :data:`AS_OF` (ENSO_STALE_INPUT_AS_OF):
on 5 August 2020, before CPC's (8th) and JMA's (10th) usual publication days, July is late, not stale. At
the clock's time the stale-input alarm would stop every run at once (tests/test_stale_inputs.py)."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import time
from pathlib import Path
from typing import Iterator
from uuid import UUID

import pytest
from aiosmtpd.controller import Controller
from email import message_from_bytes
from email.policy import default as default_policy

from enso.mirror import INDEX_FILE, RELATIVE_INDEX_FILE, MirrorServer, cobe_path, write_mirror
from enso.months import Month
from tests.conftest import _free_port, process_worker, worker_env

REPO = Path(__file__).resolve().parent.parent
LATE = Month.of(2020, 7)  # the trained store and its mirror end at 2020-06
#: When the runs take place for the stale-input alarm (and the first one is scheduled): July 2020 is not due yet.
AS_OF = dt.datetime(2020, 8, 5, 6, tzinfo=dt.timezone.utc)
DELAY_SECONDS = 8


class Inbox:
    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]  # noqa: N802
        self.messages.append(message_from_bytes(envelope.content, policy=default_policy))
        return "250 OK"


@pytest.fixture
def late_mirror(copy_store: dict, tmp_path: Path) -> Iterator[dict]:
    """A mirror serving the index and the relative index up to 2020-06 and no 2020-07 grid; ``publish()`` puts
    2020-07 out (the grid and the index with its value), written beforehand and moved in place at once."""
    root, staged = tmp_path / "mirror", tmp_path / "staged"
    (root / INDEX_FILE).parent.mkdir(parents=True)
    for relative in (INDEX_FILE, RELATIVE_INDEX_FILE):
        shutil.copyfile(copy_store["mirror_root"] / relative, root / relative)
    write_mirror(staged, LATE, LATE, seed=11, index=False)
    write_mirror(staged, Month.of(1961, 1), LATE, seed=11, sst_sources=())

    def publish() -> None:
        for relative in (cobe_path(LATE), INDEX_FILE):
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged / relative, root / relative)

    with MirrorServer(root) as srv:
        yield {"server": srv, "publish": publish}


@pytest.fixture
def monthly_worker(prefect_server: str, copy_store: dict, late_mirror: dict, tmp_path: Path) -> Iterator[Inbox]:
    """The deployments, a loopback SMTP server for alerts and a `cpu` worker whose runs read the mirror, judge
    their inputs as of AS_OF and wait DELAY_SECONDS between tries, at most once (ENSO_MONTHLY_RETRIES=1)."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from deployments.deploy import deploy_all

    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    smtp.start()
    srv = late_mirror["server"]
    env = worker_env(prefect_server, tmp_path / "worker-home", {
        **{f"ENSO_{k.upper()}": v for k, v in srv.settings_overrides().items()},
        "ENSO_STALE_INPUT_AS_OF": AS_OF.isoformat(),
        "ENSO_DATABASE_URL": copy_store["url"], "ENSO_DATA_DIR": str(tmp_path / "var"),
        "ENSO_REPORT_DIR": str(tmp_path / "reports"), "ENSO_HTTP_RETRIES": "0",
        "ENSO_MONTHLY_RETRIES": "1", "ENSO_MONTHLY_RETRY_DELAY": str(DELAY_SECONDS),
        "ENSO_SMTP_HOST": "127.0.0.1", "ENSO_SMTP_PORT": str(smtp.port), "ENSO_SMTP_SECURITY": "none",
        "ENSO_ALERT_TO": "ops@example.org"})
    try:
        with temporary_settings(updates={PREFECT_API_URL: prefect_server}):
            deploy_all(source_dir=REPO)
            try:
                with process_worker("cpu", env, tmp_path / "worker.log"):
                    yield inbox
            finally:
                _cancel_unfinished_monthly_runs()
    finally:
        smtp.stop()


def _cancel_unfinished_monthly_runs() -> None:
    """Leave no monthly run behind (a test that failed midway): it would hold the deployment's one slot."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.states import Cancelled

    soon = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)  # not the cron's runs days ahead
    with get_client(sync_client=True) as client:
        for run in client.read_flow_runs(
                deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["monthly"])),
                flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[
                    StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING])))):
            if run.state.is_scheduled() and run.expected_start_time and run.expected_start_time > soon:
                continue
            client.set_flow_run_state(run.id, Cancelled(message="test teardown"), force=True)


def _later_run(client, state_message: str):  # type: ignore[no-untyped-def]
    """The run an AwaitingData state names: '... scheduled monthly run NAME (UUID) for ...'."""
    run_id = UUID(state_message.split("scheduled monthly run ", 1)[1].split("(", 1)[1].split(")", 1)[0])
    return client.read_flow_run(run_id)


def _wait_final(client, run_id: UUID, seconds: float = 600):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while True:
        run = client.read_flow_run(run_id)
        if run.state and run.state.is_final():
            return run
        assert time.monotonic() < deadline, f"run {run.name} still {run.state.name} after {seconds} s"
        time.sleep(2)


def test_data_published_between_the_runs_is_forecast_by_the_later_run(
        monthly_worker: Inbox, late_mirror: dict, copy_store: dict, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from sqlalchemy import func, select

    from db.engine import opened_engine
    from db.schema import Forecast

    # No init month given: the run takes the month before its scheduled time, AS_OF.
    first = run_deployment("monthly/monthly", parameters={}, timeout=600, tags=["test-late-data"],
                           scheduled_time=AS_OF)
    log = (tmp_path / "worker.log").read_text(errors="replace")[-3000:]
    assert first.state.is_completed() and first.state.name == "AwaitingData", f"{first.state}\n{log}"
    assert f"cobe {LATE} is not published yet" in first.state.message and "retry 1 of 1" in first.state.message
    late_mirror["publish"]()
    with get_client(sync_client=True) as client:
        later = _later_run(client, first.state.message)
        assert later.deployment_id == first.deployment_id
        assert later.parameters == {"init_month": str(LATE), "force_email": False}, "the month it waits for, pinned"
        assert "enso:data-wait=1" in later.tags and "test-late-data" in later.tags
        assert later.expected_start_time >= first.start_time + dt.timedelta(seconds=DELAY_SECONDS)
        later = _wait_final(client, later.id)
    assert later.state.is_completed() and later.state.name == "Completed", str(later.state)
    assert later.start_time > first.end_time, "no process waited: the first run had ended"
    with opened_engine(copy_store["url"]) as engine, engine.connect() as conn:
        rows = conn.execute(select(func.count()).select_from(Forecast).where(
            Forecast.kind == "operational", Forecast.init_month == LATE.first_day,
            Forecast.flow_run_id == str(later.id))).scalar_one()
    assert rows == 12
    assert monthly_worker.messages == [], "nothing failed: no alert"


def test_data_never_published_fails_the_last_run_with_one_alert(monthly_worker: Inbox) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags
    from prefect.deployments import run_deployment

    first = run_deployment("monthly/monthly", parameters={"init_month": str(LATE)}, timeout=600)
    assert first.state.name == "AwaitingData" and not first.state.is_failed()
    with get_client(sync_client=True) as client:
        last = _wait_final(client, _later_run(client, first.state.message).id)
        scheduled_after = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            tags=FlowRunFilterTags(all_=["enso:data-wait=2"])))
    assert last.state.is_failed() and "giving up" in last.state.message
    assert scheduled_after == [], "ENSO_MONTHLY_RETRIES=1: no third run"
    # The failure hook mails from the worker once the run is Failed: the state can be read a moment before.
    deadline = time.monotonic() + 60
    while not monthly_worker.messages and time.monotonic() < deadline:
        time.sleep(1)
    time.sleep(3)  # a second alert, if one were coming, would be here by now
    assert len(monthly_worker.messages) == 1
    alert = monthly_worker.messages[0]
    assert alert["Subject"].strip() == f"ENSO monthly run Failed (init month {LATE}): {last.name}"
    body = alert.get_content()
    assert f"DataNotPublishedYet: cobe {LATE} is not published yet" in body and "after 2 monthly run(s)" in body
    assert f"prefect deployment run monthly/monthly -p init_month={LATE} -p force_email=false" in body
    assert str(last.id) in body and "deployment  monthly/monthly" in body
