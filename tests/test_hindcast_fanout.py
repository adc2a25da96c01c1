"""Hindcast fan-out: chunks give exactly the rows of one chunk, run as concurrent task runs in-process and as
child runs of the `hindcast` deployment that two process workers share (real Prefect server); a failed
chunk fails the hindcast, named, and leaves the other chunks' rows."""

from __future__ import annotations

import re
from contextlib import ExitStack
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import text

from db.engine import opened_engine
from db.forecast_rows import load_forecasts
from tests.conftest import process_worker, worker_env

REPO = Path(__file__).resolve().parent.parent
START, END = "2005-01", "2019-12"  # the trained store's hindcast: one call over the whole range
VALUES = ["model_version", "kind", "init_month", "target_month", "lead", "nino34", "nino34_anomaly",
          "p_la_nina", "p_neutral", "p_el_nino", "phase"]


def _hindcast_rows(url: str) -> pd.DataFrame:
    with opened_engine(url) as engine:
        frame = load_forecasts(engine, kind="hindcast")
    return frame[VALUES].sort_values(["init_month", "lead"]).reset_index(drop=True)


def _forget_hindcasts(url: str) -> None:
    with opened_engine(url) as engine, engine.begin() as conn:
        conn.execute(text("DELETE FROM forecast WHERE kind = 'hindcast'"))


def test_hindcast_chunks_as_task_runs_equal_one_chunk(copy_store: dict, monkeypatch: pytest.MonkeyPatch,
                                                      prefect_harness: None) -> None:
    from flows.forecast import hindcast_flow

    monkeypatch.setenv("ENSO_DATABASE_URL", copy_store["url"])
    one_chunk = _hindcast_rows(copy_store["url"])
    assert len(one_chunk) == 180 * 12
    _forget_hindcasts(copy_store["url"])
    summary = hindcast_flow(start=START, end=END, chunk_months=40)
    assert (summary.chunks, summary.fan_out, summary.rows, summary.model) == (5, "tasks", 180 * 12,
                                                                              copy_store["version"])
    pd.testing.assert_frame_equal(_hindcast_rows(copy_store["url"]), one_chunk, check_exact=True)


def test_a_failed_chunk_fails_the_hindcast_naming_it_and_keeps_the_others(
        copy_store: dict, monkeypatch: pytest.MonkeyPatch, prefect_harness: None) -> None:
    from flows.forecast import hindcast_flow

    monkeypatch.setenv("ENSO_DATABASE_URL", copy_store["url"])
    _forget_hindcasts(copy_store["url"])
    with opened_engine(copy_store["url"]) as engine, engine.begin() as conn:
        conn.execute(text("DELETE FROM sst_grid WHERE month = '2016-06-01'"))  # read by chunk 2015-01..2019-12 only
    with pytest.raises(RuntimeError) as failed:
        hindcast_flow(start=START, end=END, chunk_months=60)
    message = str(failed.value)
    assert message.startswith("1 of 3 hindcast chunks failed") and "2016-06" in message
    assert (f"rerun: prefect deployment run hindcast/hindcast -p start=2015-01 -p end=2019-12 "
            f"-p model={copy_store['version']}") in message
    stored = sorted({str(m) for m in _hindcast_rows(copy_store["url"])["init_month"]})
    assert stored[0] == "2005-01" and stored[-1] == "2014-12" and len(stored) == 120, "the other chunks are kept"


def _submitted(log: Path) -> set[str]:
    """Flow run ids a worker's log says it started."""
    return set(re.findall(r"submitting flow run '([0-9a-f-]{36})'", log.read_text(errors="replace")))


def test_hindcast_chunks_on_two_workers_equal_one_chunk(prefect_server: str, copy_store: dict,
                                                        tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from deployments.deploy import deploy_all

    one_chunk = _hindcast_rows(copy_store["url"])
    env = worker_env(prefect_server, tmp_path / "worker-home", {"ENSO_DATABASE_URL": copy_store["url"],
                                                                "ENSO_DATA_DIR": str(tmp_path / "var")})
    logs = {name: tmp_path / f"{name}.log" for name in ("w1", "w2")}
    with temporary_settings(updates={PREFECT_API_URL: prefect_server}), ExitStack() as workers:
        deploy_all(source_dir=REPO)
        for name, log in logs.items():  # two runs at a time each: the parent and four chunks need both workers
            workers.enter_context(process_worker("cpu", env, log, name=name, limit=2))
        _forget_hindcasts(copy_store["url"])
        parent = run_deployment("hindcast/hindcast", timeout=900,
                                parameters={"start": START, "end": END, "chunk_months": 45})
        assert parent.state.is_completed(), f"{parent.state}\n" + logs["w1"].read_text(errors="replace")[-3000:]
        pd.testing.assert_frame_equal(_hindcast_rows(copy_store["url"]), one_chunk, check_exact=True)
        with get_client(sync_client=True) as client:
            children = client.read_flow_runs(flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent.id])))
        assert sorted(r.parameters["start"] for r in children) == ["2005-01", "2008-10", "2012-07", "2016-04"]
        assert all(r.state.is_completed() and "enso:alert-via-parent" in r.tags for r in children)
        chunk_ids = {str(r.id) for r in children}
        took = {name: _submitted(log) & chunk_ids for name, log in logs.items()}
        assert all(took.values()), f"each worker takes chunks: {took}"
