"""The ingest and backfill Prefect flows run the library code against a loopback mirror and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from db import store
from db.engine import make_engine
from enso.mirror import MirrorServer, write_mirror
from enso.months import Month


@pytest.fixture
def flow_env(pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefect_harness):
    from tests.conftest import _truncate

    engine = make_engine(pg_url)
    _truncate(engine)
    root = tmp_path / "mirror"
    write_mirror(root, Month.of(1991, 1), Month.of(2020, 6), seed=5, relative_index=True)
    with MirrorServer(root) as srv:
        for key, value in {"ENSO_DATABASE_URL": pg_url, "ENSO_COBE_BASE_URL": srv.cobe_base_url,
                           "ENSO_INDEX_URL": srv.index_url, "ENSO_INDEX_FORMAT": "cpc-monthly",
                           "ENSO_RELATIVE_INDEX_URL": srv.relative_index_url,
                           "ENSO_DATA_DIR": str(tmp_path / "var"),
                           "ENSO_HTTP_RETRIES": "1", "ENSO_HTTP_BACKOFF": "0.01"}.items():
            monkeypatch.setenv(key, value)
        yield engine, srv
    _truncate(engine)
    engine.dispose()


def test_backfill_and_ingest_flows_fill_the_store(flow_env) -> None:
    from flows.ingest import backfill_flow, ingest_flow, status_flow

    engine, srv = flow_env
    summary = backfill_flow(start="2020-01", end="2020-05", workers=2)
    assert summary.counts == {"stored": 5}
    results = ingest_flow(month="2020-06")
    # the backfill already stored the index and CPC's relative index
    assert [(r.source, r.outcome) for r in results] == [("cobe", "stored"), ("nino34", "unchanged"),
                                                        ("relative", "unchanged")]
    assert store.stored_months(engine, "cobe")[-1] == Month.of(2020, 6)
    status = status_flow()
    assert "6 months" in status and "Index relative" in status


def test_backfill_flow_fails_loudly_when_months_are_missing(flow_env) -> None:
    from flows.ingest import backfill_flow

    engine, srv = flow_env
    srv.faults.add("*/sst202003.grb", "body:not a grib file", times=None)
    with pytest.raises(RuntimeError, match="2020-03"):
        backfill_flow(start="2020-01", end="2020-04", workers=2)
    assert store.stored_months(engine, "cobe") == [Month.of(2020, 1), Month.of(2020, 2), Month.of(2020, 4)]
