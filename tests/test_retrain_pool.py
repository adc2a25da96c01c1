"""The monthly run's retraining step against a real Prefect server when the GPU pool cannot train:
no worker online, or a worker that never takes the run (the timeout cancels it); each
ENSO_RETRAIN_FALLBACK (`fail`, `wait`, `cpu`) does what it says. (The GPU pool training for real is in
tests/test_e2e_monthly.py.)"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Iterator

import pytest
from prefect import flow

REPO = Path(__file__).resolve().parent.parent


@flow(name="retrain-probe")
def probe():  # type: ignore[no-untyped-def]
    """A flow run for the step to run in (it submits child runs and logs to its run)."""
    from flows.train import retrain_for_monthly

    return retrain_for_monthly("the test says so")


@pytest.fixture
def pool_without_gpu(prefect_server: str, copy_store: dict, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict]:
    """The deployments registered with `retrain` on a new, empty pool (``["pool"]``); settings for the trained
    store copy."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from deployments.deploy import deploy_all

    for key, value in {"ENSO_DATABASE_URL": copy_store["url"], "ENSO_DATA_DIR": str(copy_store["path"].parent),
                       "ENSO_MODEL_PRESET": "tiny", "ENSO_MODEL_MEMBERS": "1", "ENSO_TRAIN_END": "1994-12",
                       "ENSO_VALID_END": "2004-12", "ENSO_RETRAIN_TIMEOUT": "3"}.items():
        monkeypatch.setenv(key, value)
    with temporary_settings(updates={PREFECT_API_URL: prefect_server}):
        pool = f"enso-test-gpu-{uuid.uuid4().hex[:8]}"
        deploy_all(source_dir=REPO, gpu_pool=pool)
        try:
            yield {**copy_store, "pool": pool}
        finally:
            deploy_all(source_dir=REPO)


def test_no_gpu_worker_with_fallback_fail_fails_saying_what_to_do(pool_without_gpu: dict,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.train import RetrainUnavailable

    monkeypatch.setenv("ENSO_RETRAIN_FALLBACK", "fail")
    pool = pool_without_gpu["pool"]
    with pytest.raises(RetrainUnavailable, match=f"no worker is online in the work pool '{pool}'.*"
                                                 "ENSO_RETRAIN_FALLBACK=fail.*prefect worker start --pool gpu"):
        probe()


def test_a_run_nobody_takes_times_out_is_cancelled_and_wait_keeps_the_model(
        pool_without_gpu: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    monkeypatch.setenv("ENSO_RETRAIN_FALLBACK", "wait")
    with get_client(sync_client=True) as client:  # a worker that is online but never polls for runs
        client.send_worker_heartbeat(pool_without_gpu["pool"], "ghost", heartbeat_interval_seconds=60)
    state = probe(return_state=True)
    retraining = state.result()
    assert retraining.version is None
    assert "did not finish within ENSO_RETRAIN_TIMEOUT=3 s (Scheduled); it was cancelled" in retraining.summary
    assert f"kept {pool_without_gpu['version']} (champion)" in retraining.summary
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["retrain"])))
        child = next(r for r in runs if r.parent_task_run_id and
                     client.read_task_run(r.parent_task_run_id).flow_run_id == state.state_details.flow_run_id)
    assert child.state.is_cancelled() and child.work_pool_name == pool_without_gpu["pool"]


def test_wait_without_any_model_fails(pool_without_gpu: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy import text

    from db.engine import opened_engine
    from flows.train import RetrainUnavailable

    with opened_engine(pool_without_gpu["url"]) as engine, engine.begin() as conn:
        for table in ("forecast", "forecast_grid", "seasonal_outlook", "verification_score", "report", "model"):
            conn.execute(text(f"DELETE FROM {table}"))
    monkeypatch.setenv("ENSO_RETRAIN_FALLBACK", "wait")
    with pytest.raises(RetrainUnavailable, match="no model to keep.*ENSO_RETRAIN_FALLBACK=cpu"):
        probe()


def test_fallback_cpu_trains_the_preset_in_the_run(pool_without_gpu: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    from db import registry
    from db.engine import opened_engine

    monkeypatch.setenv("ENSO_RETRAIN_FALLBACK", "cpu")
    monkeypatch.setenv("ENSO_TRAIN_END", "1976-12")  # a short training period keeps the test quick (the linear EOF baseline needs 15 years: 1961-1976)
    monkeypatch.setenv("ENSO_VALID_END", "1981-12")
    retraining = probe()
    assert retraining.version and retraining.version.startswith("tiny-")
    assert f"trained in this run (ENSO_RETRAIN_FALLBACK=cpu, preset tiny) because no worker is online in the " \
           f"work pool '{pool_without_gpu['pool']}'" in retraining.summary
    with opened_engine(pool_without_gpu["url"]) as engine:
        versions = [m.version for m in registry.list_models(engine)]
    assert retraining.version in versions and len(versions) == 2
