"""End to end: a real Prefect server and process workers run the `monthly` deployment against a loopback
data mirror, PostgreSQL and a loopback SMTP server. With no model yet, the monthly run has the `retrain`
deployment train one on the `gpu` pool's worker and forecasts with it; the project's loggers are in its
run log; a second trigger leaves no duplicates and sends no second email."""

from __future__ import annotations

import time
from contextlib import ExitStack
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path

from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from db import registry
from db.engine import make_engine
from db.ingest import backfill, ingest_index
from db.schema import EmailDelivery, Forecast, Report
from enso.config import Settings
from enso.mirror import MirrorServer
from enso.months import Month
from tests.conftest import _free_port, _truncate, process_worker, worker_env

REPO = Path(__file__).resolve().parent.parent
INIT = Month.of(2020, 6)


class Inbox:
    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]  # noqa: N802
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content, policy=default_policy)))
        return "250 OK"


def _count(engine, table, *where) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()


def test_monthly_deployment_retrains_on_the_gpu_pool_then_a_rerun_duplicates_nothing(
        prefect_server: str, pg_url: str, trained_store: dict, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterParentFlowRunId,
        LogFilter,
        LogFilterFlowRunId,
    )
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from deployments.deploy import deploy_all

    engine = make_engine(pg_url)
    _truncate(engine)
    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    smtp.start()
    try:
        with MirrorServer(trained_store["mirror_root"]) as srv, ExitStack() as workers:
            settings = Settings(database_url=pg_url, cobe_base_url=srv.cobe_base_url, index_url=srv.index_url,
                                index_format="cpc-monthly", data_dir=tmp_path / "var")
            backfill(engine, settings, "cobe", Month.of(1961, 1), INIT - 1, workers=3, progress=False)
            ingest_index(engine, settings)
            env = worker_env(prefect_server, tmp_path / "worker-home", {
                "ENSO_DATABASE_URL": pg_url, "ENSO_COBE_BASE_URL": srv.cobe_base_url,
                "ENSO_INDEX_URL": srv.index_url, "ENSO_INDEX_FORMAT": "cpc-monthly",
                "ENSO_RELATIVE_INDEX_URL": srv.relative_index_url,
                "ENSO_DATA_DIR": str(tmp_path / "var"), "ENSO_REPORT_DIR": str(tmp_path / "reports"),
                "ENSO_MODEL_PRESET": "tiny", "ENSO_MODEL_MEMBERS": "1",
                "ENSO_TRAIN_END": "1994-12", "ENSO_VALID_END": "2004-12",
                "ENSO_SMTP_HOST": "127.0.0.1", "ENSO_SMTP_PORT": str(smtp.port),
                "ENSO_SMTP_SECURITY": "none", "ENSO_REPORT_TO": "ops@example.org,risk@example.org",
                "ENSO_MONTHLY_RETRIES": "0", "ENSO_RETRAIN_FALLBACK": "fail", "ENSO_RETRAIN_TIMEOUT": "600",
            })
            with temporary_settings(updates={PREFECT_API_URL: prefect_server}):
                deploy_all(source_dir=REPO)
                for pool in ("cpu", "gpu"):
                    workers.enter_context(process_worker(pool, env, tmp_path / f"{pool}-worker.log"))
                first = run_deployment("monthly/monthly", parameters={"init_month": str(INIT)}, timeout=900)
                log = "".join((tmp_path / f"{p}-worker.log").read_text(errors="replace")[-3000:]
                              for p in ("cpu", "gpu"))
                assert first.state.is_completed(), f"{first.state}\n{log}"

                with get_client(sync_client=True) as client:
                    children = client.read_flow_runs(flow_run_filter=FlowRunFilter(
                        parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[first.id])))
                    retrains = [r for r in children if r.deployment_id == client.read_deployment_by_name(
                        "retrain/retrain").id]
                    assert len(retrains) == 1, [r.name for r in children]
                    retrain = retrains[0]
                    assert retrain.state.is_completed() and retrain.work_pool_name == "gpu"
                    # The run's last lines (its printed summary) reach the server after its state does: the
                    # flow process flushes its log batch as it exits. Read until the summary is in.
                    deadline = time.monotonic() + 60
                    while True:
                        logs: list = []
                        while page := client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(
                                any_=[first.id])), offset=len(logs), limit=200):
                            logs += page
                        if any("retraining: " in e.message for e in logs) or time.monotonic() > deadline:
                            break
                        time.sleep(1)
                model = registry.trained_by(engine, str(retrain.id))
                assert model is not None, "the gpu pool's retrain run registered the model"
                with engine.connect() as conn:
                    used = set(conn.execute(select(Forecast.model_version).where(
                        Forecast.kind == "operational")).scalars())
                    hindcast_from = conn.execute(select(func.min(Forecast.init_month)).where(
                        Forecast.kind == "hindcast", Forecast.model_version == model.version)).scalar_one()
                assert used == {model.version}, "the forecast uses the model trained on the gpu pool"
                assert str(hindcast_from)[:7] == "2005-01", "the new model is hindcast after its validation period"
                assert any("retraining: trained on work pool 'gpu'" in entry.message for entry in logs)
                assert any(entry.name == "reports.email" and "accepted after 1 attempt" in entry.message
                           for entry in logs), "the project's loggers reach the run log"

                assert _count(engine, Forecast, Forecast.kind == "operational") == 12
                reports = list((tmp_path / "reports").glob("*.html"))
                assert [p.name for p in reports] == [f"enso-report-{INIT}.html"]
                html = reports[0].read_text()
                assert f"{INIT}" in html and "Observed phase (from RONI)" in html  # CPC's RONI, from the mirror
                assert len(inbox.messages) == 1
                recipients, message = inbox.messages[0]
                assert sorted(recipients) == ["ops@example.org", "risk@example.org"]
                assert any(part.get_filename() == f"enso-report-{INIT}.html" for part in message.iter_attachments())

                second = run_deployment("monthly/monthly", parameters={"init_month": str(INIT)}, timeout=900)
                assert second.state.is_completed(), str(second.state)
                assert _count(engine, Forecast, Forecast.kind == "operational") == 12
                assert _count(engine, Report) == 1
                assert len(inbox.messages) == 1, "the same init month must not be emailed twice"
                assert _count(engine, EmailDelivery, EmailDelivery.status == "sent") == 1
                with engine.connect() as conn:
                    run_ids = set(conn.execute(select(Forecast.flow_run_id).where(
                        Forecast.kind == "operational")).scalars())
                assert run_ids == {str(second.id)}, "forecast rows carry the Prefect flow run id"
    finally:
        smtp.stop()
        _truncate(engine)
        engine.dispose()
