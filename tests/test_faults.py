"""Faults: the mirror going away mid-backfill, PostgreSQL restarted during a monthly run, and the
monthly flow running beside a backfill."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from db import store
from db.engine import make_engine
from db.ingest import backfill, ingest_index
from db.migrate import upgrade
from db.schema import Forecast, IngestLog, Report, SstGrid
from tests.pgcluster import throwaway_cluster
from enso.config import Settings
from enso.mirror import MirrorServer, write_mirror
from enso.months import Month

pytestmark = pytest.mark.faults
INIT = Month.of(2020, 6)


def _count(engine, table, *where) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()


def test_mirror_unreachable_mid_backfill_then_a_rerun_completes(engine, tmp_path: Path) -> None:
    root = tmp_path / "mirror"
    write_mirror(root, Month.of(2010, 1), Month.of(2012, 12), seed=2)
    with MirrorServer(root) as srv:
        settings = Settings(database_url=str(engine.url), cobe_base_url=srv.cobe_base_url,
                            index_url=srv.index_url, index_format="cpc-monthly", data_dir=tmp_path / "var",
                            http_timeout=1.0, http_retries=1, http_backoff=0.01)
        srv.faults.add("*.grb", "delay:0.05", times=None)

        def cut_after_ten_requests() -> None:
            while len(srv.requests) < 10:
                time.sleep(0.01)
            srv.down = True

        cutter = threading.Thread(target=cut_after_ten_requests)
        cutter.start()
        first = backfill(engine, settings, "cobe", "2010-01", "2012-12", workers=2, progress=False)
        cutter.join()
        assert not first.complete
        assert 5 <= first.counts["stored"] < 36 and first.counts["failed"] > 0
        assert "rerun the same command" in first.report()
        srv.down = False
        srv.faults.clear()
        second = backfill(engine, settings, "cobe", "2010-01", "2012-12", workers=2, progress=False)
    assert second.complete and second.counts["stored"] == 36 - first.counts["stored"]
    assert _count(engine, SstGrid) == 36
    with engine.connect() as conn:
        assert conn.execute(select(func.count(func.distinct(SstGrid.month)))).scalar_one() == 36


@pytest.fixture
def monthly_env(trained_store: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefect_harness):
    """A throwaway PostgreSQL cluster holding 1961-01..2020-05, settings for the monthly flow (tiny preset)."""
    with throwaway_cluster() as cluster, MirrorServer(trained_store["mirror_root"]) as srv:
        upgrade(cluster.url)
        engine = make_engine(cluster.url)
        env = {"ENSO_DATABASE_URL": cluster.url, "ENSO_COBE_BASE_URL": srv.cobe_base_url,
               "ENSO_INDEX_URL": srv.index_url, "ENSO_INDEX_FORMAT": "cpc-monthly",
               "ENSO_RELATIVE_INDEX_URL": srv.relative_index_url,
               "ENSO_DATA_DIR": str(tmp_path / "var"), "ENSO_REPORT_DIR": str(tmp_path / "reports"),
               "ENSO_MODEL_PRESET": "tiny",
               "ENSO_TRAIN_END": "1994-12", "ENSO_VALID_END": "2004-12", "ENSO_REPORT_TO": "",
               "ENSO_HTTP_RETRIES": "1", "ENSO_HTTP_BACKOFF": "0.01"}
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        settings = Settings()
        backfill(engine, settings, "cobe", Month.of(1961, 1), INIT - 1, workers=3, progress=False)
        assert ingest_index(engine, settings).ok
        yield cluster, engine, settings
        engine.dispose()


def test_postgres_restart_during_a_monthly_run_leaves_no_partial_month(monthly_env) -> None:
    from flows.ingest import backfill_flow
    from flows.monthly import monthly_flow

    cluster, engine, settings = monthly_env
    run = monthly_flow.with_options(retries=0)
    outcome: dict[str, object] = {}

    def run_monthly() -> None:
        try:
            outcome["summary"] = run(init_month=str(INIT))
        except Exception as exc:  # the run may fail (clearly) or recover: both are allowed
            outcome["error"] = exc

    runner = threading.Thread(target=run_monthly)
    runner.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until the init month is ingested: training is next
        try:
            if _count(engine, IngestLog, IngestLog.month == INIT.first_day):
                break
        except Exception:
            pass
        time.sleep(0.2)
    time.sleep(1.0)
    cluster.restart()
    runner.join(timeout=600)
    assert not runner.is_alive()
    rows = _count(engine, Forecast, Forecast.kind == "operational")
    if "error" in outcome:
        assert rows == 0, "a failed run must not leave a partial month"
        assert str(outcome["error"]), "the failure must say what happened"
    else:
        assert rows == 12

    # A rerun completes the month, and a backfill running beside it corrupts nothing.
    results: dict[str, object] = {}

    def rerun() -> None:
        results["monthly"] = run(init_month=str(INIT))

    def refill() -> None:
        results["backfill"] = backfill_flow(start="2018-01", end=str(INIT), workers=2, index=True)

    threads = [threading.Thread(target=rerun), threading.Thread(target=refill)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert set(results) == {"monthly", "backfill"}, results
    assert _count(engine, Forecast, Forecast.kind == "operational") == 12
    assert _count(engine, Report) == 1
    with engine.connect() as conn:
        months = conn.execute(select(func.count(), func.count(func.distinct(SstGrid.month)))).one()
    assert months[0] == months[1] == INIT.months_since(Month.of(1961, 1)) + 1
    assert store.load_index(engine).index[-1].strftime("%Y-%m") == str(INIT)
