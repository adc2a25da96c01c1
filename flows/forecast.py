"""Prefect flows for forecasts: the operational forecast and hindcasts.

Each task wraps one library call of :mod:`db.forecasting`.
"""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact

from db.forecasting import ForecastResult, forecast, hindcast
from db.migrate import open_store
from enso.config import load_settings
from enso.months import Month
from flows.ingest import current_run_id


@task(retries=2, retry_delay_seconds=30)
def forecast_task(init_month: str | None, model: str | None) -> ForecastResult:
    settings = load_settings()
    return forecast(open_store(settings), init_month=Month.parse(init_month) if init_month else None,
                    version=model, flow_run_id=current_run_id())


def forecast_artifact(result: ForecastResult) -> None:
    create_table_artifact(
        key="forecast",
        table=[{"lead": int(r.lead), "target_month": str(r.target_month),
                "nino34_anomaly": round(float(r.nino34_anomaly), 2), "phase": r.phase,
                "p_la_nina": round(float(r.p_la_nina), 2), "p_neutral": round(float(r.p_neutral), 2),
                "p_el_nino": round(float(r.p_el_nino), 2)} for r in result.frame.itertuples(index=False)],
        description=f"Niño 3.4 forecast from {result.init_month}, model {result.choice.info.version} "
                    f"({result.choice.reason})",
    )


@flow(name="forecast", log_prints=True)
def forecast_flow(init_month: str | None = None, model: str | None = None) -> ForecastResult:
    """Operational forecast for leads 1-12 (champion by default)."""
    result = forecast_task(init_month, model)
    get_run_logger().info("model %s (%s): %d rows for init %s", result.choice.info.version, result.choice.reason,
                          result.rows, result.init_month)
    forecast_artifact(result)
    return result


@task
def hindcast_task(start: str, end: str, model: str | None) -> ForecastResult:
    settings = load_settings()
    return hindcast(open_store(settings), Month.parse(start), Month.parse(end), version=model,
                    flow_run_id=current_run_id())


@flow(name="hindcast", log_prints=True)
def hindcast_flow(start: str, end: str, model: str | None = None) -> ForecastResult:
    """Out-of-sample forecasts for every init month of start..end."""
    result = hindcast_task(start, end, model)
    print(f"model {result.choice.info.version}: {result.rows} hindcast rows for {start}..{end}")
    return result
