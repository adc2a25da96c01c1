"""The retrain flow (meant for the GPU worker): train, register, promote if earned.

The task wraps one library call, :func:`db.forecasting.train_and_register`.
"""

from __future__ import annotations

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact

from db.forecasting import TrainingResult, train_and_register
from db.migrate import open_store
from enso.config import load_settings
from enso.months import Month
from flows.cli import format_scores
from flows.ingest import current_run_id, interactive


@task
def train_task(preset: str, train_end: str, valid_end: str, device: str) -> TrainingResult:
    settings = load_settings()
    return train_and_register(open_store(settings), settings, preset, train_end=Month.parse(train_end),
                              valid_end=Month.parse(valid_end), device=device, progress=interactive(),
                              flow_run_id=current_run_id())


@flow(name="retrain", log_prints=True)
def retrain_flow(preset: str | None = None, train_end: str | None = None, valid_end: str | None = None,
                 device: str = "auto") -> TrainingResult:
    """Train and register a model (CUDA when the worker has a GPU); promote it if it earns it."""
    settings = load_settings()
    result = train_task(preset or settings.model_preset, train_end or settings.train_end,
                        valid_end or settings.valid_end, device)
    text = "\n\n".join([
        f"registered **{result.version}**: {result.reason}",
        "```\n" + format_scores("validation", result.metrics["validation"],
                                result.metrics["validation_persistence"]) + "\n```",
    ])
    print(text)
    create_markdown_artifact(key="retrain-summary", markdown=text, description=f"model {result.version}")
    return result
