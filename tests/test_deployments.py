"""The Prefect deployments against a real ``prefect server start``: pools, parameters, schedules
(in a DST timezone, as the server fires them), concurrency, and prefect.yaml agreeing with deploy_all."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    DeploymentFilterName,
    FlowRunFilter,
    FlowRunFilterExpectedStartTime,
)
from prefect.client.schemas.sorting import FlowRunSort
from prefect.settings import PREFECT_API_URL, temporary_settings

from deployments.deploy import DEPLOYMENTS, PREFECT_YAML, RUN_ENV, deploy_all, render_prefect_yaml

REPO = Path(__file__).resolve().parent.parent
UTC = dt.timezone.utc

#: pool and flow parameters each deployment must expose
EXPECTED = {
    "monthly": ("cpu", {"init_month", "force_email"}),
    "backfill": ("cpu", {"start", "end", "source", "workers", "index"}),
    "retrain": ("gpu", {"preset", "train_end", "valid_end", "device"}),
    "hindcast": ("cpu", {"start", "end", "model", "chunk_months"}),
}


@pytest.fixture(scope="module")
def api(prefect_server: str) -> Iterator[str]:
    """This module's client settings point at the session's server; its deployments are deleted after."""
    with temporary_settings(updates={PREFECT_API_URL: prefect_server}):
        yield prefect_server
        _delete_deployments()


def _delete_deployments() -> None:
    """Delete the ENSO deployments (and with them their scheduled runs)."""
    with get_client(sync_client=True) as client:
        for d in _read_by_name().values():
            client.delete_deployment(d.id)


def _read(ids: list[UUID]) -> dict[str, Any]:
    with get_client(sync_client=True) as client:
        return {d.name: d for d in (client.read_deployment(i) for i in ids)}


def _read_by_name() -> dict[str, Any]:
    with get_client(sync_client=True) as client:
        names = DeploymentFilterName(any_=[s.name for s in DEPLOYMENTS])
        return {d.name: d for d in client.read_deployments(deployment_filter=DeploymentFilter(name=names))}


def _snapshot(deployments: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """What a worker and the scheduler act on, per deployment name."""
    return {
        name: {
            "flow_id": d.flow_id, "entrypoint": d.entrypoint, "pool": d.work_pool_name,
            "pull_steps": d.pull_steps, "job_variables": d.job_variables, "parameters": d.parameters,
            "schema": d.parameter_openapi_schema, "paused": d.paused, "description": d.description,
            "schedules": sorted((s.schedule.cron, s.schedule.timezone, s.slug, s.active) for s in d.schedules),
            "limit": d.global_concurrency_limit.limit if d.global_concurrency_limit else None,
            "collision": d.concurrency_options.collision_strategy if d.concurrency_options else None,
        }
        for name, d in deployments.items()
    }


def _enso(api_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PREFECT_API_URL": api_url, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, "-m", "flows.cli", *args], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, f"enso {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_deploy_all_registers_the_four_deployments(api: str) -> None:
    ids = deploy_all(source_dir=REPO)
    deployments = _read(ids)

    assert set(deployments) == {s.name for s in DEPLOYMENTS} == set(EXPECTED)
    with get_client(sync_client=True) as client:
        assert {client.read_work_pool(p).type for p in ("cpu", "gpu")} == {"process"}
        assert client.read_flow(deployments["backfill"].flow_id).name == "backfill"
    for spec in DEPLOYMENTS:
        d = deployments[spec.name]
        pool, parameters = EXPECTED[spec.name]
        assert d.work_pool_name == pool
        assert set(d.parameter_openapi_schema["properties"]) == parameters
        assert d.entrypoint == spec.entrypoint
        assert d.pull_steps == [{"prefect.deployments.steps.set_working_directory": {"directory": str(REPO)}}]
        assert d.job_variables == {"env": RUN_ENV}
        assert not d.paused
    assert sorted(deployments["backfill"].parameter_openapi_schema["required"]) == ["end", "start"]

    monthly, retrain = deployments["monthly"], deployments["retrain"]
    assert [(s.schedule.cron, s.schedule.timezone, s.active) for s in monthly.schedules] == [
        ("0 6 12 * *", "UTC", True)]
    assert [(s.schedule.cron, s.schedule.timezone) for s in retrain.schedules] == [("0 8 1 1,4,7,10 *", "UTC")]
    assert deployments["backfill"].schedules == [] and deployments["hindcast"].schedules == []
    assert monthly.global_concurrency_limit.limit == 1
    assert monthly.concurrency_options.collision_strategy == "ENQUEUE"


def test_enso_deploy_in_berlin_time_fires_at_the_right_utc_hour_across_dst(api: str) -> None:
    before = deploy_all(source_dir=REPO)
    out = _enso(api, "deploy", "--monthly-cron", "0 6 12 * *", "--timezone", "Europe/Berlin").stdout
    assert "Europe/Berlin" in out and "prefect worker start --pool gpu" in out
    monthly = _read(before)["monthly"]
    assert [(s.schedule.cron, s.schedule.timezone) for s in monthly.schedules] == [("0 6 12 * *", "Europe/Berlin")]

    # Ask the server itself to schedule a year of runs (far ahead: no worker will pick them up).
    # It makes the fewest runs that satisfy both minimums, so both must cover the year.
    start, end = dt.datetime(2031, 1, 1, tzinfo=UTC), dt.datetime(2032, 1, 1, tzinfo=UTC)
    with get_client(sync_client=True) as client:
        client.request("POST", "/deployments/{id}/schedule", path_params={"id": monthly.id},
                       json={"start_time": start.isoformat(), "end_time": end.isoformat(), "min_runs": 12,
                             "max_runs": 24, "min_time": (end - start).total_seconds()}).raise_for_status()
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[monthly.id])),
            flow_run_filter=FlowRunFilter(expected_start_time=FlowRunFilterExpectedStartTime(after_=start,
                                                                                             before_=end)),
            sort=FlowRunSort.EXPECTED_START_TIME_ASC,
        )
    fired = [r.expected_start_time.astimezone(UTC) for r in runs]
    berlin = ZoneInfo("Europe/Berlin")
    expected = [dt.datetime(2031, m, 12, 6, tzinfo=berlin).astimezone(UTC) for m in range(1, 13)]
    assert fired == expected
    assert fired[0].hour == 5 and fired[6].hour == 4  # CET in January, CEST in July


def test_redeploy_updates_in_place(api: str) -> None:
    first = deploy_all(source_dir=REPO, timezone="America/New_York")
    again = deploy_all(source_dir=REPO)
    assert again == first
    snapshot = _snapshot(_read(again))
    assert snapshot["monthly"]["schedules"] == [("0 6 12 * *", "UTC", "monthly", True)]
    assert snapshot["retrain"]["schedules"] == [("0 8 1 1,4,7,10 *", "UTC", "retrain", True)]


def test_deploy_all_registers_from_a_thread_with_a_running_event_loop(api: str) -> None:
    """Prefect's ``async_dispatch`` methods turn async where the thread runs an event loop (as in a notebook,
    or after Playwright's sync API started in the same session): deploy_all must still register, not hand
    back coroutines."""
    from prefect._internal.compatibility.async_dispatch import is_in_async_context

    async def from_a_loop() -> list[UUID]:
        assert is_in_async_context(), "the case under test: Prefect would dispatch to the async methods here"
        return deploy_all(source_dir=REPO)

    ids = asyncio.run(from_a_loop())
    assert ids == deploy_all(source_dir=REPO)
    assert set(_read(ids)) == {s.name for s in DEPLOYMENTS}


def test_prefect_yaml_is_generated_from_the_same_definition_and_registers_the_same(api: str) -> None:
    assert PREFECT_YAML.read_text() == render_prefect_yaml(), "prefect.yaml is stale: run python -m deployments.deploy"
    from_python = _snapshot(_read(deploy_all(source_dir=REPO)))
    _delete_deployments()  # so that nothing the yaml leaves out survives from the first registration

    env = {**os.environ, "PREFECT_API_URL": api}
    proc = subprocess.run([sys.executable, "-m", "prefect", "deploy", "--all", "--no-prompt"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"prefect deploy --all failed:\n{proc.stdout}\n{proc.stderr}"
    from_yaml = _snapshot(_read_by_name())

    assert set(from_yaml) == {s.name for s in DEPLOYMENTS}
    assert from_yaml == from_python


def test_deploy_all_refuses_a_source_without_the_flow_files(tmp_path: Path) -> None:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "ingest.py").write_text((REPO / "flows" / "ingest.py").read_text())
    with pytest.raises(FileNotFoundError) as error:
        deploy_all(source_dir=tmp_path)
    assert str(tmp_path) in str(error.value)
    assert "flows/monthly.py:monthly_flow" in str(error.value) and "ingest.py" not in str(error.value)


@pytest.mark.parametrize("bad, message", [({"timezone": "Mars/Olympus"}, "not an IANA timezone"),
                                          ({"monthly_cron": "6 on the 12th"}, "Invalid cron"),
                                          ({"retrain_cron": "0 8 1 13 *"}, "Invalid cron")])
def test_deploy_all_rejects_a_bad_schedule_before_contacting_prefect(bad: dict, message: str) -> None:
    with temporary_settings(updates={PREFECT_API_URL: f"http://127.0.0.1:{_closed_port()}/api"}):
        with pytest.raises(ValueError, match=message):
            deploy_all(source_dir=REPO, **bad)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("api_url, message", [(None, "PREFECT_API_URL is not set"),
                                              ("closed-port", "is unreachable")])
def test_enso_deploy_without_a_server_fails_clearly(tmp_path: Path, api_url: str | None, message: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PREFECT_HOME"] = str(tmp_path)
    if api_url:
        env["PREFECT_API_URL"] = f"http://127.0.0.1:{_closed_port()}/api"
    proc = subprocess.run([sys.executable, "-m", "flows.cli", "deploy"], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr
