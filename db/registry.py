"""The model registry in the store: register, list, load, and promote trained models.

A model is registered as a ``candidate``. It becomes the ``champion`` (the model
operational forecasts use) only when it beats both the current champion and
persistence on its validation period (mean RMSE of the Niño 3.4 anomaly over
leads 1-12); ``enso models promote VERSION`` overrides by hand.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Connection, Engine, select, update
from sqlalchemy.exc import IntegrityError

from db.schema import Model, utcnow
from db.store import date_month, month_date
from enso.model.trained import TrainedModel
from enso.months import Month


@dataclass(frozen=True)
class ModelInfo:
    """A registry row without the weights."""

    version: str
    preset: str
    status: str
    sst_source: str
    train_start: Month
    train_end: Month
    valid_end: Month
    base_period: str
    metrics: dict
    created_at: dt.datetime
    device: str
    #: The preset as trained (:meth:`enso.model.presets.Preset.to_dict`).
    config: dict

    @property
    def validation_rmse(self) -> float | None:
        return self.metrics.get("validation", {}).get("mean_rmse")


_INFO_COLUMNS = (Model.version, Model.preset, Model.status, Model.sst_source, Model.train_start, Model.train_end,
                 Model.valid_end, Model.base_period, Model.metrics, Model.created_at, Model.device, Model.config)


def _info(row) -> ModelInfo:  # type: ignore[no-untyped-def]
    return ModelInfo(row.version, row.preset, row.status, row.sst_source, date_month(row.train_start),
                     date_month(row.train_end), date_month(row.valid_end), row.base_period, row.metrics,
                     row.created_at, row.device, row.config)


def new_version(trained: TrainedModel, now: dt.datetime | None = None) -> str:
    """``<preset>-<UTC timestamp>-<data fingerprint prefix>``: sortable and traceable."""
    now = now or utcnow()
    return f"{trained.name}-{now:%Y%m%dT%H%M%S}-{trained.data_fingerprint[:6]}"


def normalisation_summary(trained: TrainedModel) -> dict[str, object]:
    """The fitted statistics as JSON for SQL readers: small arrays whole, fields by shape and mean.

    The exact arrays travel inside the weights blob (:meth:`TrainedModel.to_bytes`).
    """
    out: dict[str, object] = {}
    for name, value in trained.statistics.items():
        arr = np.asarray(value, dtype=float)
        if arr.size <= 64:
            out[name] = [None if not np.isfinite(v) else float(v) for v in arr.ravel()]
        else:
            finite = arr[np.isfinite(arr)]
            out[name] = {"shape": list(arr.shape), "mean": float(finite.mean()) if finite.size else None}
    return out


def register(conn: Connection, trained: TrainedModel, *, sst_source: str, base_period: str, metrics: dict,
             device: str, flow_run_id: str | None = None, version: str | None = None) -> str:
    """Store a trained model as a candidate; returns its version."""
    window = trained.data_window
    version = version or new_version(trained)
    conn.execute(Model.__table__.insert().values(
        version=version, preset=trained.name, config=trained.preset.to_dict(), sst_source=sst_source,
        train_start=month_date(Month.parse(window["train_first_init"])),
        train_end=month_date(Month.parse(window["train_end"])),
        valid_end=month_date(Month.parse(window["valid_end"])),
        base_period=base_period,
        normalisation=normalisation_summary(trained),
        metrics=metrics, data_fingerprint=trained.data_fingerprint, weights=trained.to_bytes(),
        status="candidate", device=device, created_at=utcnow(), flow_run_id=flow_run_id,
    ))
    return version


def list_models(engine: Engine) -> list[ModelInfo]:
    with engine.connect() as conn:
        rows = conn.execute(select(*_INFO_COLUMNS).order_by(Model.created_at.desc())).all()
    return [_info(r) for r in rows]


def model_info(engine: Engine | Connection, version: str) -> ModelInfo:
    stmt = select(*_INFO_COLUMNS).where(Model.version == version)
    if isinstance(engine, Engine):
        with engine.connect() as conn:
            row = conn.execute(stmt).first()
    else:
        row = engine.execute(stmt).first()
    if row is None:
        raise LookupError(f"no model {version!r} in the registry; `enso models list` shows the versions")
    return _info(row)


def load_model(engine: Engine, version: str) -> TrainedModel:
    with engine.connect() as conn:
        weights = conn.execute(select(Model.weights).where(Model.version == version)).scalar()
    if weights is None:
        raise LookupError(f"no model {version!r} in the registry; `enso models list` shows the versions")
    return TrainedModel.from_bytes(weights)


def champion(engine: Engine | Connection) -> ModelInfo | None:
    stmt = select(*_INFO_COLUMNS).where(Model.status == "champion").order_by(Model.promoted_at.desc()).limit(1)
    if isinstance(engine, Engine):
        with engine.connect() as conn:
            row = conn.execute(stmt).first()
    else:
        row = engine.execute(stmt).first()
    return _info(row) if row else None


@dataclass(frozen=True)
class ModelChoice:
    """The model a forecast uses, and why (shown in outputs and reports)."""

    info: ModelInfo
    reason: str

    @property
    def is_champion(self) -> bool:
        return self.info.status == "champion"


def choose_model(engine: Engine, version: str | None = None) -> ModelChoice:
    """The given model, else the champion, else (said plainly) the newest trained model."""
    if version:
        return ModelChoice(model_info(engine, version), "requested")
    champ = champion(engine)
    if champ is not None:
        return ModelChoice(champ, "champion")
    models = list_models(engine)
    if not models:
        raise LookupError("the registry holds no model yet: run `enso train` first")
    return ModelChoice(models[0], "no champion yet: the newest trained model is used")


def promote_in(conn: Connection, version: str) -> None:
    """Make ``version`` the champion inside the caller's transaction (the previous one is retired)."""
    model_info(conn, version)
    conn.execute(update(Model).where(Model.status == "champion").values(status="retired"))
    conn.execute(update(Model).where(Model.version == version).values(status="champion", promoted_at=utcnow()))


def promote(engine: Engine, version: str) -> ModelInfo:
    """Make ``version`` the champion (the previous champion is retired).

    Raises :class:`ConcurrentPromotion` when another promotion committed first
    (the store's one-champion index refuses the second); nothing changes then.
    """
    try:
        with engine.begin() as conn:
            promote_in(conn, version)
    except IntegrityError as exc:
        raise ConcurrentPromotion(version) from exc
    return model_info(engine, version)


class ConcurrentPromotion(RuntimeError):
    """Another model was promoted while this promotion ran; the store keeps that one."""

    def __init__(self, version: str) -> None:
        super().__init__(f"model {version} was not promoted: another model became the champion at the same "
                         f"time; see `enso models list` and rerun `enso models promote {version}` if it "
                         f"should still replace it")


def trained_by(engine: Engine, flow_run_id: str) -> ModelInfo | None:
    """The model registered by the Prefect flow run ``flow_run_id`` (the newest, if several), else None."""
    with engine.connect() as conn:
        row = conn.execute(select(*_INFO_COLUMNS).where(Model.flow_run_id == flow_run_id)
                           .order_by(Model.created_at.desc()).limit(1)).first()
    return _info(row) if row else None
