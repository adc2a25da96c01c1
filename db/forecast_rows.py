"""Data access of the ``forecast`` and ``forecast_grid`` tables: forecast rows and lead-1 anomaly grids.

The service that makes forecasts and hindcasts is :mod:`db.forecasting`; this
module only reads and writes their rows.

Writes replace: the rows of a (model, kind, init month) are deleted and written
again in the caller's transaction, so reruns never duplicate and a failed run
leaves the previous forecast in place.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd
import xarray as xr
from sqlalchemy import Connection, Engine, Select, and_, delete, insert, select

from db import codec
from db.schema import FORECAST_KINDS, Forecast, ForecastGrid, utcnow
from db.store import date_month, month_date
from enso.months import Month

FORECAST_COLUMNS = ("init_month", "target_month", "lead_months", "nino34", "nino34_anomaly", "p_la_nina",
                    "p_neutral", "p_el_nino", "phase", "nino34_anomaly_sd")
#: The optional column of a forecast frame with the Gaussian spread of the anomaly (°C); NULL when absent.
SPREAD_COLUMN = "nino34_anomaly_sd"


def _month(value: object) -> Month:
    return Month.parse(str(value))


def delete_init_months(conn: Connection, tables: Iterable[type], *, model_version: str, kind: str,
                       init_months: Iterable[object]) -> None:
    """Delete the rows of a model, kind and init months from tables keyed so (``forecast``, ``forecast_grid``,
    ``seasonal_outlook``): the first half of every replacing write, in the caller's transaction."""
    if kind not in FORECAST_KINDS:
        raise ValueError(f"forecast kind must be one of {', '.join(FORECAST_KINDS)}, not {kind!r}")
    dates = [month_date(m) for m in sorted({_month(m) for m in init_months})]
    for table in tables:
        for date in dates:
            conn.execute(delete(table).where(and_(table.model_version == model_version, table.kind == kind,
                                                  table.init_month == date)))


def phase_probabilities(frame: pd.DataFrame) -> np.ndarray:
    """(n, 3) phase probabilities of a forecast or outlook frame, each row rescaled to sum exactly 1."""
    probabilities = frame[["p_la_nina", "p_neutral", "p_el_nino"]].to_numpy(dtype=np.float64)
    return probabilities / probabilities.sum(axis=1, keepdims=True)


def write_forecasts(conn: Connection, frame: pd.DataFrame, *, model_version: str, kind: str, base_period: str,
                    flow_run_id: str | None = None) -> int:
    """Replace the forecasts of every init month in ``frame`` (a :func:`enso.model.predict.predict` frame).

    A frame with :data:`SPREAD_COLUMN` stores it (NaN as NULL; a spread must be
    positive); without it the column is NULL.
    """
    delete_init_months(conn, (Forecast, ForecastGrid), model_version=model_version, kind=kind,
                       init_months=frame["init_month"])
    now = utcnow()
    probabilities = phase_probabilities(frame)
    spreads = (pd.to_numeric(frame[SPREAD_COLUMN], errors="coerce").to_numpy(dtype=float) if SPREAD_COLUMN in frame
               else np.full(len(frame), np.nan))
    if (spreads[np.isfinite(spreads)] <= 0).any():
        raise ValueError(f"forecast spreads ({SPREAD_COLUMN}) must be positive")
    rows = [
        dict(model_version=model_version, kind=kind, init_month=month_date(_month(r.init_month)),
             target_month=month_date(_month(r.target_month)), lead_months=int(r.lead),
             nino34=float(r.nino34), nino34_anomaly=float(r.nino34_anomaly),
             p_la_nina=float(p[0]), p_neutral=float(p[1]), p_el_nino=float(p[2]), phase=str(r.phase),
             nino34_anomaly_sd=float(sd) if np.isfinite(sd) else None,
             base_period=base_period, created_at=now, flow_run_id=flow_run_id)
        for r, p, sd in zip(frame.itertuples(index=False), probabilities, spreads)
    ]
    if rows:
        conn.execute(insert(Forecast), rows)
    if "sst_anomaly_grid" in frame:
        for r in frame.itertuples(index=False):
            grid = getattr(r, "sst_anomaly_grid")
            if isinstance(grid, xr.DataArray):
                conn.execute(insert(ForecastGrid).values(
                    model_version=model_version, kind=kind, init_month=month_date(_month(r.init_month)),
                    target_month=month_date(_month(r.target_month)), nlat=grid.shape[0], nlon=grid.shape[1],
                    lat=codec.pack_coords(grid.lat.values), lon=codec.pack_coords(grid.lon.values),
                    values_zstd=codec.pack_float32(grid.values), created_at=now))
    return len(rows)


def select_rows(table: type, *, model_version: str | None = None, kind: str | None = None,
                init_start: Month | None = None, init_end: Month | None = None) -> Select:
    """SELECT of a table keyed by (model_version, kind, init_month) (``forecast``, ``seasonal_outlook``),
    narrowed to a model, a kind and a range of init months where given."""
    stmt = select(table)
    if model_version:
        stmt = stmt.where(table.model_version == model_version)
    if kind:
        stmt = stmt.where(table.kind == kind)
    if init_start:
        stmt = stmt.where(table.init_month >= month_date(init_start))
    if init_end:
        stmt = stmt.where(table.init_month <= month_date(init_end))
    return stmt


def load_forecasts(engine: Engine, *, model_version: str | None = None, kind: str | None = None,
                   init_start: Month | None = None, init_end: Month | None = None) -> pd.DataFrame:
    """Stored forecasts as a frame (init_month/target_month as monthly Periods, ``lead``), oldest first.

    ``nino34_anomaly_sd`` is a float column, NaN where no spread is stored.
    """
    stmt = select_rows(Forecast, model_version=model_version, kind=kind, init_start=init_start, init_end=init_end)
    with engine.connect() as conn:
        rows = conn.execute(stmt.order_by(Forecast.init_month, Forecast.lead_months)).all()
    frame = pd.DataFrame([r._asdict() for r in rows])
    if frame.empty:
        return pd.DataFrame(columns=["model_version", "kind", "init_month", "target_month", "lead",
                                     "nino34", "nino34_anomaly", "p_la_nina", "p_neutral", "p_el_nino", "phase",
                                     SPREAD_COLUMN])
    frame = frame.rename(columns={"lead_months": "lead"})
    frame[SPREAD_COLUMN] = pd.to_numeric(frame[SPREAD_COLUMN], errors="coerce").astype(float)
    for col in ("init_month", "target_month"):
        frame[col] = pd.PeriodIndex([pd.Period(d, freq="M") for d in frame[col]], freq="M")
    return frame


def load_forecast_grid(engine: Engine, *, model_version: str, kind: str, init_month: Month) -> xr.DataArray | None:
    with engine.connect() as conn:
        row = conn.execute(select(ForecastGrid).where(
            ForecastGrid.model_version == model_version, ForecastGrid.kind == kind,
            ForecastGrid.init_month == month_date(init_month))).first()
    if row is None:
        return None
    lat, lon = codec.unpack_coords(row.lat), codec.unpack_coords(row.lon)
    values = codec.unpack_float32(row.values_zstd, (row.nlat, row.nlon))
    return xr.DataArray(values, dims=("lat", "lon"), coords={"lat": lat, "lon": lon}, name="sst_anomaly",
                        attrs={"target_month": str(date_month(row.target_month))})