"""Steps of the monthly flow, run as plain functions (no Prefect server): gap filling, waiting, retraining."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from db import store
from db.engine import make_engine
from enso.mirror import MirrorServer
from enso.months import Month

INIT = Month.of(2020, 6)


@pytest.fixture
def monthly_settings(copy_store: dict, monkeypatch: pytest.MonkeyPatch):
    with MirrorServer(copy_store["mirror_root"]) as srv:
        env = {"ENSO_DATABASE_URL": copy_store["url"], "ENSO_COBE_BASE_URL": srv.cobe_base_url,
               "ENSO_INDEX_URL": srv.index_url, "ENSO_INDEX_FORMAT": "cpc-monthly",
               "ENSO_RELATIVE_INDEX_URL": srv.relative_index_url,
               "ENSO_DATA_DIR": str(copy_store["settings"].data_dir),
               "ENSO_HTTP_RETRIES": "0"}
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        yield copy_store, srv


def test_months_missing_before_the_init_month_are_fetched_first(monthly_settings) -> None:
    from flows.monthly import ingest_month_task

    copy, _ = monthly_settings
    engine = make_engine(copy["url"])
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM sst_grid WHERE month IN ('2020-02-01', '2020-04-01', '2020-06-01')"))
    results = ingest_month_task.fn(INIT)
    assert [(r.source, r.outcome) for r in results] == [("cobe", "stored"), ("nino34", "unchanged"),
                                                        ("relative", "unchanged")]
    months = store.stored_months(engine, "cobe")
    assert {Month.of(2020, 2), Month.of(2020, 4), INIT} <= set(months)


def test_an_unpublished_init_month_makes_the_run_wait(monthly_settings) -> None:
    from flows.monthly import DataNotPublishedYet, ingest_month_task

    with pytest.raises(DataNotPublishedYet, match="2020-07 is not published yet"):
        ingest_month_task.fn(INIT + 1)


def test_retraining_is_due_only_without_a_recent_model(monthly_settings) -> None:
    from flows.monthly import retraining_due

    copy, _ = monthly_settings
    engine = make_engine(copy["url"])
    assert retraining_due.fn() is None
    with engine.begin() as conn:
        conn.execute(text("UPDATE model SET status = 'candidate'"))
    assert retraining_due.fn() is None, "an unpromoted recent model must not trigger monthly retraining"
    with engine.begin() as conn:
        conn.execute(text("UPDATE model SET created_at = '2001-01-01 00:00:00+00:00'"))
    assert "months old" in retraining_due.fn()
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM forecast"))
        conn.execute(text("DELETE FROM forecast_grid"))
        conn.execute(text("DELETE FROM seasonal_outlook"))
        conn.execute(text("DELETE FROM model"))
    assert retraining_due.fn() == "no model in the registry yet"


def test_the_ingest_task_after_the_input_check_downloads_nothing_twice(trained_store: dict, tmp_path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The input check fetches the init month's grid and the index file; the ingest task then asks for the
    same files again, conditionally: the provider answers 304 Not Modified, without a body, every time."""
    from db.ingest import backfill, ingest_index, ingest_relative
    from db.migrate import upgrade
    from enso.config import load_settings
    from flows.monthly import GAP_FILL_MONTHS, check_inputs_task, ingest_month_task

    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    upgrade(url)
    with MirrorServer(trained_store["mirror_root"]) as srv:
        for key, value in {"ENSO_DATABASE_URL": url, "ENSO_DATA_DIR": str(tmp_path / "var"), "ENSO_HTTP_RETRIES": "0",
                           **{f"ENSO_{k.upper()}": v for k, v in srv.settings_overrides().items()}}.items():
            monkeypatch.setenv(key, value)
        settings, engine = load_settings(), make_engine(url)
        assert backfill(engine, settings, "cobe", INIT - GAP_FILL_MONTHS, INIT - 1, progress=False).complete
        assert ingest_index(engine, settings).ok and all(r.ok for r in ingest_relative(engine, settings))
        srv.clear_log()
        check_inputs_task.fn(INIT)
        grid, index, relative = "/cobe/2020-2029/sst202006.grb", "/index/ersst5.nino.mth.91-20.ascii", \
            "/index/Rnino34.ascii.txt"
        assert [(r.path, r.status) for r in srv.request_log] == [(grid, 200), (index, 304)]
        srv.clear_log()
        results = ingest_month_task.fn(INIT)
        assert [(r.path, r.status) for r in srv.request_log] == [(grid, 304), (index, 304), (relative, 304)]
        assert [(r.source, r.outcome) for r in results] == [("cobe", "unchanged"), ("nino34", "unchanged"),
                                                            ("relative", "unchanged")]
        assert results[0].message.startswith("not modified (HTTP 304)")
        engine.dispose()
