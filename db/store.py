"""Reading and writing the store: grids, index observations, the ingest log.

Functions take an :class:`sqlalchemy.Engine` (or a connection inside a caller's
transaction) and speak domain types: :class:`enso.months.Month`,
:class:`enso.grids.SSTGrid`, index tables (see :mod:`enso.sources.index`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import pandas as pd
import xarray as xr
from sqlalchemy import Connection, Engine, delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from db import codec
from db.schema import IndexObservation, IndexVintage, IngestLog, SstGrid, utcnow
from enso import grids
from enso.grids import SSTGrid
from enso.months import Month


def month_date(month: Month) -> dt.date:
    return month.first_day


def date_month(value: dt.date) -> Month:
    return Month.of(value.year, value.month)


def dialect_insert(conn: Connection, table):  # type: ignore[no-untyped-def]
    """An INSERT supporting ``on_conflict_*`` on PostgreSQL and SQLite alike."""
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


# --- SST grids ---------------------------------------------------------------------------

@dataclass(frozen=True)
class StoredGridVersion:
    """What identifies the stored version of a month: its file checksum and revision number."""

    sha256: str
    revision: int


def grid_version(conn: Connection, source: str, month: Month) -> StoredGridVersion | None:
    row = conn.execute(
        select(SstGrid.sha256, SstGrid.revision).where(SstGrid.source == source, SstGrid.month == month_date(month))
    ).first()
    return StoredGridVersion(row.sha256, row.revision) if row else None


def _grid_columns(grid: SSTGrid, *, source_url: str, sha256: str, file_size: int) -> dict[str, object]:
    return dict(
        nlat=grid.shape[0], nlon=grid.shape[1],
        lat=codec.pack_coords(grid.lat), lon=codec.pack_coords(grid.lon),
        values_zstd=codec.pack_float32(grid.values),
        land_mask_zstd=codec.pack_mask(grid.land_mask),
        land_fraction=grid.land_fraction,
        nino34=grids.nino34_mean(grid),
        source_url=source_url, sha256=sha256, file_size=file_size,
    )


def product_versions(conn: Connection, source: str, *, besides: str | None = None
                     ) -> dict[str, tuple[Month, Month, int]]:
    """The product versions of ``source`` in the store (all, or all but ``besides``): first, last month, count.

    Ingest asks before every month whether another version is held, so the common
    answer (none) costs two seeks of the (source, product_version) index, not a scan.
    """
    where = [SstGrid.source == source]
    if besides is not None:
        where.append(or_(SstGrid.product_version < besides, SstGrid.product_version > besides))
        if conn.execute(select(SstGrid.id).where(*where).limit(1)).first() is None:
            return {}
    rows = conn.execute(
        select(SstGrid.product_version, func.min(SstGrid.month), func.max(SstGrid.month), func.count())
        .where(*where).group_by(SstGrid.product_version)
    ).all()
    return {r[0]: (date_month(r[1]), date_month(r[2]), r[3]) for r in rows}


def delete_grids(conn: Connection, source: str) -> int:
    """Delete every stored grid of ``source`` (to re-backfill it under a new product version); returns how many."""
    return conn.execute(delete(SstGrid).where(SstGrid.source == source)).rowcount


def insert_grid(conn: Connection, source: str, grid: SSTGrid, *, source_url: str, sha256: str,
                file_size: int, product_version: str) -> bool:
    """Insert a month's grid unless one exists; True if this call stored it (race-safe)."""
    now = utcnow()
    stmt = (
        dialect_insert(conn, SstGrid)
        .values(source=source, month=month_date(grid.month), revision=1, first_stored_at=now, updated_at=now,
                product_version=product_version,
                **_grid_columns(grid, source_url=source_url, sha256=sha256, file_size=file_size))
        .on_conflict_do_nothing(index_elements=["source", "month"])
        .returning(SstGrid.id)
    )
    return conn.execute(stmt).first() is not None


def revise_grid(conn: Connection, source: str, grid: SSTGrid, *, previous_sha256: str, source_url: str,
                sha256: str, file_size: int) -> bool:
    """Replace a stored month with a changed upstream file; True if the row held ``previous_sha256``."""
    stmt = (
        update(SstGrid)
        .where(SstGrid.source == source, SstGrid.month == month_date(grid.month),
               SstGrid.sha256 == previous_sha256)
        .values(revision=SstGrid.revision + 1, updated_at=utcnow(),
                **_grid_columns(grid, source_url=source_url, sha256=sha256, file_size=file_size))
        .returning(SstGrid.id)
    )
    return conn.execute(stmt).first() is not None


def _row_to_grid(row) -> SSTGrid:  # type: ignore[no-untyped-def]
    shape = (row.nlat, row.nlon)
    return SSTGrid(
        month=date_month(row.month),
        lat=codec.unpack_coords(row.lat),
        lon=codec.unpack_coords(row.lon),
        values=codec.unpack_float32(row.values_zstd, shape),
        attrs={"sha256": row.sha256, "source_url": row.source_url, "revision": row.revision},
    )


def load_grids(engine: Engine, source: str, start: Month, end: Month) -> list[SSTGrid]:
    """All stored grids of ``source`` from start to end (inclusive), in month order."""
    cols = (SstGrid.month, SstGrid.nlat, SstGrid.nlon, SstGrid.lat, SstGrid.lon, SstGrid.values_zstd,
            SstGrid.sha256, SstGrid.source_url, SstGrid.revision)
    with engine.connect() as conn:
        rows = conn.execute(
            select(*cols).where(SstGrid.source == source, SstGrid.month >= month_date(start),
                                SstGrid.month <= month_date(end)).order_by(SstGrid.month)
        ).all()
    return [_row_to_grid(r) for r in rows]


def load_cube(
    engine: Engine,
    source: str,
    start: Month | str,
    end: Month | str,
    *,
    lat_range: tuple[float, float] | None = grids.DEFAULT_LAT_RANGE,
    lon_range: tuple[float, float] | None = None,
    coarsen_deg: float | None = None,
    anomaly_base: tuple[int, int] | None = None,
    require_complete: bool = True,
) -> xr.DataArray:
    """The preprocessing API for the model: a month range as an xarray cube (month, lat, lon).

    Crops to ``lat_range`` (default 55°S-60°N, the reference method's crop; None keeps the
    globe) and ``lon_range``; coarsens to ``coarsen_deg`` (area-weighted, e.g. 2, 4, 5°);
    with ``anomaly_base=(first_year, last_year)`` returns anomalies against that base
    period's monthly climatology (the base years must lie inside start..end). Land stays
    NaN; :func:`enso.grids.land_mask` gives the static mask. With ``require_complete``
    (the default) a missing month is an error naming the months, never a silent gap.
    ``cube.values`` is the plain array.
    """
    start, end = Month.parse(start), Month.parse(end)
    loaded = load_grids(engine, source, start, end)
    if require_complete:
        have = {g.month for g in loaded}
        missing = [m for m in (start + i for i in range(end.months_since(start) + 1)) if m not in have]
        if missing:
            shown = ", ".join(str(m) for m in missing[:12]) + (" ..." if len(missing) > 12 else "")
            raise LookupError(
                f"the store lacks {len(missing)} {source} month(s) of {start}..{end}: {shown}. "
                f"Run `enso backfill --start {missing[0]} --end {missing[-1]} --source {source}`."
            )
    if not loaded:
        raise LookupError(f"the store holds no {source} grid between {start} and {end}")
    cube = grids.stack(loaded)
    cube.attrs.update(source=source)
    if lat_range is not None or lon_range is not None:
        cube = grids.crop(cube, lat_range or (-90.0, 90.0), lon_range)
    if coarsen_deg is not None:
        cube = grids.coarsen(cube, coarsen_deg)
    if anomaly_base is not None:
        cube = grids.anomalies(cube, *anomaly_base)
    return cube


def stored_months(engine: Engine, source: str) -> list[Month]:
    with engine.connect() as conn:
        rows = conn.execute(select(SstGrid.month).where(SstGrid.source == source).order_by(SstGrid.month)).scalars()
        return [date_month(d) for d in rows]


def grid_nino34(engine: Engine, source: str) -> pd.Series:
    """The Niño 3.4 box mean of every stored grid (°C), indexed by month."""
    with engine.connect() as conn:
        rows = conn.execute(select(SstGrid.month, SstGrid.nino34).where(SstGrid.source == source)
                            .order_by(SstGrid.month)).all()
    idx = pd.PeriodIndex([pd.Period(r.month, freq="M") for r in rows], name="month")
    return pd.Series([r.nino34 for r in rows], index=idx, name="nino34", dtype=float)


# --- Index observations -------------------------------------------------------------------

INDEX_COLUMNS = ("nino34", "anomaly", "oni", "phase")


def current_vintage(conn: Connection):  # type: ignore[no-untyped-def]
    """The vintage the stored index comes from (a row with IndexVintage's columns), or None."""
    return conn.execute(
        select(IndexVintage).join(IndexObservation, IndexObservation.vintage_id == IndexVintage.id).limit(1)
    ).first()


def vintage_id_for(conn: Connection, sha256: str) -> int | None:
    return conn.execute(select(IndexVintage.id).where(IndexVintage.sha256 == sha256)).scalar()


def load_index(engine: Engine | Connection) -> pd.DataFrame:
    """The stored index table: monthly PeriodIndex ``month``; nino34, anomaly, oni, phase."""
    stmt = select(IndexObservation.month, IndexObservation.nino34, IndexObservation.anomaly,
                  IndexObservation.oni, IndexObservation.phase, IndexObservation.source).order_by(IndexObservation.month)
    if isinstance(engine, Engine):
        with engine.connect() as conn:
            rows = conn.execute(stmt).all()
    else:
        rows = engine.execute(stmt).all()
    idx = pd.PeriodIndex([pd.Period(r.month, freq="M") for r in rows], name="month", freq="M")
    frame = pd.DataFrame(
        {
            "nino34": np.array([r.nino34 for r in rows], dtype=float),
            "anomaly": np.array([r.anomaly for r in rows], dtype=float),
            "oni": np.array([r.oni for r in rows], dtype=float),
        },
        index=idx,
    )
    frame["phase"] = pd.Series([r.phase for r in rows], index=idx, dtype=object)
    frame.attrs["source"] = rows[0].source if rows else None
    return frame


def _index_records(table: pd.DataFrame) -> list[dict[str, object]]:
    def clean(v: object) -> object:
        if v is None:
            return None
        if isinstance(v, (float, np.floating)) and not np.isfinite(v):
            return None
        return float(v) if isinstance(v, (float, np.floating, int, np.integer)) else v

    out = []
    for period, row in table.iterrows():
        out.append({"month": dt.date(period.year, period.month, 1),
                    **{c: clean(row[c]) for c in INDEX_COLUMNS}})
    return out


@dataclass(frozen=True)
class IndexChange:
    """How a new vintage differs from the stored index."""

    added: list[Month]
    revised: list[Month]
    removed: list[Month]

    @property
    def any(self) -> bool:
        return bool(self.added or self.revised or self.removed)


def _same(a: object, b: object) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        return abs(float(a) - float(b)) < 1e-9  # type: ignore[arg-type]
    return a == b


def replace_index(conn: Connection, table: pd.DataFrame, *, source: str, url: str, sha256: str,
                  downloaded_at: dt.datetime, base_period: str) -> IndexChange:
    """Make the stored index exactly this vintage (never a splice of two), in the caller's transaction."""
    records = _index_records(table)
    old = {r.month: r for r in conn.execute(select(IndexObservation)).all()}
    new = {r["month"]: r for r in records}
    added = [date_month(m) for m in new if m not in old]
    removed = [date_month(m) for m in old if m not in new]
    revised = [date_month(m) for m, r in new.items()
               if m in old and not all(_same(getattr(old[m], c), r[c]) for c in INDEX_COLUMNS)]
    vintage_id = vintage_id_for(conn, sha256)
    if vintage_id is None:
        vintage_id = conn.execute(
            insert(IndexVintage).values(
                sha256=sha256, url=url, format=source, downloaded_at=downloaded_at,
                first_month=min(new), last_month=max(new), n_months=len(new), base_period=base_period,
            ).returning(IndexVintage.id)
        ).scalar_one()
    conn.execute(delete(IndexObservation))
    now = utcnow()
    conn.execute(insert(IndexObservation),
                 [dict(r, source=source, vintage_id=vintage_id, updated_at=now) for r in records])
    return IndexChange(sorted(added), sorted(revised), sorted(removed))


# --- Ingest log ----------------------------------------------------------------------------

def log_ingest(conn: Connection, *, source: str, month: Month | None, outcome: str, message: str = "",
               url: str | None = None, sha256: str | None = None, run_id: str | None = None) -> None:
    conn.execute(insert(IngestLog).values(
        at=utcnow(), source=source, month=month_date(month) if month else None, outcome=outcome,
        message=message, url=url, sha256=sha256, run_id=run_id,
    ))


def recent_ingests(engine: Engine, limit: int = 20) -> list[IngestLog]:
    with engine.connect() as conn:
        return list(conn.execute(select(IngestLog).order_by(IngestLog.id.desc()).limit(limit)).all())


def gaps(months: Iterable[Month]) -> list[tuple[Month, Month]]:
    """Runs of missing months between the first and last of ``months``, as (first, last) pairs."""
    ms = sorted(set(months))
    out = []
    for a, b in zip(ms, ms[1:]):
        if b.months_since(a) > 1:
            out.append((a + 1, b - 1))
    return out  # type: ignore[return-value]
