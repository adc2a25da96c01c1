"""The CPC-style seasonal outlook of stored forecasts: computed from the store, written beside the forecast rows.

:func:`forecast_outlook` turns a forecast frame into its outlook
(:func:`enso.outlook.seasonal_outlook`) with what the store knows: the model's
ONI error sd and, for RONI, the observed offset between the traditional Niño 3.4
index (``nino34``) and the relative index (view ``relative_index``).
:func:`write_seasonal_outlook` replaces the outlook rows of each init month in
the caller's transaction, the one that writes the forecast rows
(:mod:`db.forecasting`): a rerun never duplicates them and a failed write leaves
the previous forecast and outlook in place together.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, insert

from db import store
from db.forecast_rows import delete_init_months, phase_probabilities, select_rows
from db.phase import DEFAULT_PHASE_INDEX, load_relative_index
from db.schema import SeasonalOutlook, utcnow
from enso.model.trained import TrainedModel
from enso.months import Month, from_period, to_periods
from enso.outlook import OUTLOOK_COLUMNS, RelativeOffset, seasonal_outlook
from enso.verify import PROBABILITY_COLUMNS

#: The model statistic the outlook's spread comes from (models without it, Keydana's, have no outlook).
SPREAD_STATISTIC = "oni_error_sd"


def empty_outlook() -> pd.DataFrame:
    """An outlook frame without rows (:data:`enso.outlook.OUTLOOK_COLUMNS`)."""
    return pd.DataFrame({c: pd.Series(dtype=object) for c in OUTLOOK_COLUMNS})


def relative_offset(engine: Engine) -> RelativeOffset:
    """The observed offset traditional minus relative Niño 3.4 anomaly, from the store's current indices."""
    return RelativeOffset.observed(store.load_index(engine)["anomaly"],
                                   load_relative_index(engine)["relative_anomaly"])


def forecast_outlook(engine: Engine, model: TrainedModel, frame: pd.DataFrame,
                     phase_index: str = DEFAULT_PHASE_INDEX) -> pd.DataFrame:
    """The seasonal outlook of every init month of a forecast frame of ``model`` (:func:`enso.model.predict.predict`).

    Empty when the model states no ONI spread (``oni_error_sd``: the Keydana
    reference design forecasts its phases with a classifier head instead).
    """
    spread = model.statistics.get(SPREAD_STATISTIC)
    if spread is None or frame.empty:
        return empty_outlook()
    offset = relative_offset(engine) if phase_index == "roni" else None
    return seasonal_outlook(frame, np.asarray(spread), phase_index=phase_index, offset=offset)


def write_seasonal_outlook(conn: Connection, outlook: pd.DataFrame, *, model_version: str, kind: str,
                           init_months: Iterable[object], flow_run_id: str | None = None) -> int:
    """Replace the outlook rows of each of ``init_months`` (those of the forecast written beside it) by ``outlook``.

    Every init month's old rows go, even when ``outlook`` has none for it (a
    model without an outlook replaces one that had). Returns the rows written.
    """
    delete_init_months(conn, (SeasonalOutlook,), model_version=model_version, kind=kind,
                       init_months=[*init_months, *outlook["init_month"]])
    if outlook.empty:
        return 0
    now = utcnow()
    probabilities = phase_probabilities(outlook)
    rows = [
        dict(model_version=model_version, kind=kind, init_month=_date(r.init_month), season=int(r.season),
             season_label=str(r.season_label), first_month=_date(r.first_month), last_month=_date(r.last_month),
             phase_index=str(r.phase_index), mean=float(r.mean), sd=float(r.sd), p_la_nina=float(p[0]),
             p_neutral=float(p[1]), p_el_nino=float(p[2]), created_at=now, flow_run_id=flow_run_id)
        for r, p in zip(outlook.itertuples(index=False), probabilities)
    ]
    conn.execute(insert(SeasonalOutlook), rows)
    return len(rows)


def _date(period: pd.Period):  # type: ignore[no-untyped-def]
    return store.month_date(from_period(period))


def load_seasonal_outlook(engine: Engine, *, model_version: str | None = None, kind: str | None = None,
                          init_start: Month | None = None, init_end: Month | None = None) -> pd.DataFrame:
    """Stored outlooks as an outlook frame (months as monthly Periods) with ``model_version``, ``kind`` and
    ``created_at``, by init month and season."""
    stmt = select_rows(SeasonalOutlook, model_version=model_version, kind=kind, init_start=init_start,
                       init_end=init_end).order_by(SeasonalOutlook.model_version, SeasonalOutlook.kind, SeasonalOutlook.init_month,
                         SeasonalOutlook.season)
    with engine.connect() as conn:
        rows = [r._asdict() for r in conn.execute(stmt).all()]
    columns = ["model_version", "kind", *OUTLOOK_COLUMNS, "created_at"]
    if not rows:
        return empty_outlook().assign(model_version=pd.Series(dtype=object), kind=pd.Series(dtype=object),
                                      created_at=pd.Series(dtype=object))[columns]
    frame = pd.DataFrame(rows)
    for column in ("init_month", "first_month", "last_month"):
        frame[column] = to_periods([store.date_month(d) for d in frame[column]])
    for column in ("mean", "sd", *PROBABILITY_COLUMNS):
        frame[column] = frame[column].astype(float)
    return frame[columns].reset_index(drop=True)
