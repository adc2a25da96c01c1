"""Reading and writing the store: grids, index vintages (append-only, per product), the ingest log.

Functions take an :class:`sqlalchemy.Engine` (or a connection inside a caller's
transaction) and speak domain types: :class:`enso.months.Month`,
:class:`enso.grids.SSTGrid`, index tables (see :mod:`enso.sources.index`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np
import pandas as pd
import xarray as xr
from sqlalchemy import Connection, Engine, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from db import codec
from db.schema import IndexCurrent, IndexValue, IndexVintage, IngestLog, SstGrid, utcnow
from enso import grids
from enso.grids import SSTGrid
from enso.months import Month
from enso.sources.http import Validators
from enso.sources.index_products import DEFAULT_PRODUCT


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
    """What identifies the stored version of a month: its file's checksum, revision, URL and validators."""

    sha256: str
    revision: int
    source_url: str = ""
    validators: Validators = Validators()


_VERSION_COLUMNS = (SstGrid.month, SstGrid.sha256, SstGrid.revision, SstGrid.source_url, SstGrid.etag,
                    SstGrid.last_modified)


def _version(row) -> StoredGridVersion:  # type: ignore[no-untyped-def]
    return StoredGridVersion(row.sha256, row.revision, row.source_url, Validators(row.etag, row.last_modified))


def grid_version(conn: Connection, source: str, month: Month) -> StoredGridVersion | None:
    row = conn.execute(
        select(*_VERSION_COLUMNS).where(SstGrid.source == source, SstGrid.month == month_date(month))
    ).first()
    return _version(row) if row else None


def grid_versions(engine: Engine, source: str, start: Month, end: Month) -> dict[Month, StoredGridVersion]:
    """The stored version of every month of ``source`` in start..end, in one query (for backfills)."""
    with engine.connect() as conn:
        rows = conn.execute(select(*_VERSION_COLUMNS).where(
            SstGrid.source == source, SstGrid.month >= month_date(start), SstGrid.month <= month_date(end))).all()
    return {date_month(r.month): _version(r) for r in rows}


@dataclass(frozen=True)
class PackedGrid:
    """A month's grid encoded as the ``sst_grid`` columns (done off the writer's thread, in parallel)."""

    month: Month
    sha256: str
    columns: dict[str, object]


def pack_grid(grid: SSTGrid, *, source_url: str, sha256: str, file_size: int, product_version: str,
              validators: Validators = Validators()) -> PackedGrid:
    """The ``sst_grid`` columns of ``grid`` as downloaded from ``source_url`` (compressed values and mask),
    with the source's ``product_version`` (e.g. ``ersst v6``; never mixed within a source, see db.ingest)."""
    return PackedGrid(grid.month, sha256, dict(
        product_version=product_version,
        nlat=grid.shape[0], nlon=grid.shape[1],
        lat=codec.pack_coords(grid.lat), lon=codec.pack_coords(grid.lon),
        values_zstd=codec.pack_float32(grid.values),
        land_mask_zstd=codec.pack_mask(grid.land_mask),
        land_fraction=grid.land_fraction,
        nino34=grids.nino34_mean(grid),
        source_url=source_url, sha256=sha256, file_size=file_size,
        etag=validators.etag, last_modified=validators.last_modified,
    ))


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


def insert_grids(conn: Connection, source: str, packed: list[PackedGrid]) -> set[Month]:
    """Insert months' grids unless they exist, in one statement; returns the months this call stored (race-safe)."""
    if not packed:
        return set()
    now = utcnow()
    stmt = (dialect_insert(conn, SstGrid).on_conflict_do_nothing(index_elements=["source", "month"])
            .returning(SstGrid.month))
    rows = conn.execute(stmt, [dict(source=source, month=month_date(p.month), revision=1, first_stored_at=now,
                                    updated_at=now, **p.columns) for p in packed])
    return {date_month(d) for d in rows.scalars()}


def insert_grid(conn: Connection, source: str, packed: PackedGrid) -> bool:
    """Insert a month's grid unless one exists; True if this call stored it (race-safe)."""
    return bool(insert_grids(conn, source, [packed]))


def revise_grid(conn: Connection, source: str, packed: PackedGrid, *, previous_sha256: str) -> bool:
    """Replace a stored month with a changed upstream file; True if the row held ``previous_sha256``."""
    stmt = (
        update(SstGrid)
        .where(SstGrid.source == source, SstGrid.month == month_date(packed.month),
               SstGrid.sha256 == previous_sha256)
        .values(revision=SstGrid.revision + 1, updated_at=utcnow(), **packed.columns)
        .returning(SstGrid.id)
    )
    return conn.execute(stmt).first() is not None


def update_grid_validators(conn: Connection, source: str, updates: list[tuple[Month, str, Validators]]) -> None:
    """Record the server's validators of files found identical to the stored ones: (month, sha256, validators)."""
    if not updates:
        return
    stmt = (update(SstGrid)
            .where(SstGrid.source == bindparam("b_source"), SstGrid.month == bindparam("b_month"),
                   SstGrid.sha256 == bindparam("b_sha256"))
            .values(etag=bindparam("b_etag"), last_modified=bindparam("b_last_modified")))
    conn.execute(stmt, [{"b_source": source, "b_month": month_date(m), "b_sha256": sha, "b_etag": v.etag,
                         "b_last_modified": v.last_modified} for m, sha, v in updates])


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


def iter_grids(engine: Engine, source: str, start: Month, end: Month, *,
               chunk_months: int = 120) -> Iterator[SSTGrid]:
    """The stored grids of ``source`` from start to end in month order, read ``chunk_months`` at a time
    (a century of 1° grids streams through in bounded memory)."""
    first = start
    while first <= end:
        last = min(first + (chunk_months - 1), end)
        yield from load_grids(engine, source, first, last)
        first = last + 1


def grid_checksums(conn: Connection, source: str) -> list[tuple[Month, str]]:
    """(month, sha256 of its file) of every stored grid of ``source``, in month order."""
    rows = conn.execute(select(SstGrid.month, SstGrid.sha256).where(SstGrid.source == source)
                        .order_by(SstGrid.month)).all()
    return [(date_month(r.month), r.sha256) for r in rows]


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


# --- Index vintages -----------------------------------------------------------------------

INDEX_COLUMNS = ("nino34", "anomaly", "oni", "phase")


def current_vintage(conn: Connection, product: str = DEFAULT_PRODUCT):  # type: ignore[no-untyped-def]
    """The newest vintage of ``product`` (a row with IndexVintage's columns), or None: the current index."""
    return conn.execute(select(IndexVintage).where(IndexVintage.product == product)
                        .order_by(IndexVintage.seq.desc()).limit(1)).first()


def vintages(conn: Connection, product: str = DEFAULT_PRODUCT, limit: int = 5) -> list:
    """The newest ``limit`` vintages of ``product``, newest first."""
    return list(conn.execute(select(IndexVintage).where(IndexVintage.product == product)
                             .order_by(IndexVintage.seq.desc()).limit(limit)).all())


def index_products(conn: Connection) -> list[str]:
    """The products the store holds vintages of."""
    return list(conn.execute(select(IndexVintage.product).distinct().order_by(IndexVintage.product)).scalars())


def load_index(engine: Engine | Connection, product: str = DEFAULT_PRODUCT, *,
               vintage_id: int | None = None) -> pd.DataFrame:
    """An index table of ``product``: its current (newest) vintage, or the vintage ``vintage_id``.

    Monthly PeriodIndex ``month``; columns nino34, anomaly, oni, phase;
    ``attrs``: ``source`` (the file's format), ``product``, ``vintage_id``, ``vintage_seq``.
    """
    if vintage_id is None:
        stmt = (select(IndexCurrent.month, IndexCurrent.nino34, IndexCurrent.anomaly, IndexCurrent.oni,
                       IndexCurrent.phase, IndexCurrent.source, IndexCurrent.vintage_id, IndexCurrent.vintage_seq)
                .where(IndexCurrent.product == product).order_by(IndexCurrent.month))
    else:
        stmt = (select(IndexValue.month, IndexValue.nino34, IndexValue.anomaly, IndexValue.oni, IndexValue.phase,
                       IndexVintage.format.label("source"), IndexValue.vintage_id,
                       IndexVintage.seq.label("vintage_seq"))
                .join(IndexVintage, IndexVintage.id == IndexValue.vintage_id)
                .where(IndexValue.vintage_id == vintage_id).order_by(IndexValue.month))
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
    frame.attrs.update(source=rows[0].source if rows else None, product=product,
                       vintage_id=rows[0].vintage_id if rows else None,
                       vintage_seq=rows[0].vintage_seq if rows else None)
    return frame


def _index_records(table: pd.DataFrame) -> list[dict[str, object]]:
    def clean(v: object) -> object:
        if v is None:
            return None
        if isinstance(v, (float, np.floating)) and not np.isfinite(v):
            return None
        return float(v) if isinstance(v, (float, np.floating, int, np.integer)) else v

    return [{"month": dt.date(period.year, period.month, 1), **{c: clean(row[c]) for c in INDEX_COLUMNS}}
            for period, row in table.iterrows()]


@dataclass(frozen=True)
class VintageFile:
    """Where a vintage came from: the file's URL, checksum, format, download time and HTTP validators."""

    url: str
    sha256: str
    format: str
    downloaded_at: dt.datetime
    validators: Validators = Validators()


def append_vintage(conn: Connection, product: str, table: pd.DataFrame, file: VintageFile, *, seq: int,
                   base_period: str, acceptance: str = "checked", changes: str = "") -> int:
    """Append ``table`` as vintage ``seq`` of ``product`` (all its months), in the caller's transaction.

    ``seq`` must be one more than the newest vintage the caller compared against:
    two ingests appending the same successor at once make the second fail with an
    IntegrityError (unique product, seq) instead of forking the history.
    Returns the new vintage's id.
    """
    records = _index_records(table)
    months = [r["month"] for r in records]
    vintage_id = conn.execute(insert(IndexVintage).values(
        product=product, seq=seq, sha256=file.sha256, url=file.url, format=file.format,
        downloaded_at=file.downloaded_at, stored_at=utcnow(), first_month=min(months), last_month=max(months),
        n_months=len(months), base_period=base_period, etag=file.validators.etag,
        last_modified=file.validators.last_modified, acceptance=acceptance, changes=changes,
    ).returning(IndexVintage.id)).scalar_one()
    conn.execute(insert(IndexValue), [dict(r, vintage_id=vintage_id) for r in records])
    return vintage_id


def update_vintage_validators(conn: Connection, vintage_id: int, validators: Validators) -> None:
    """Record the server's current validators of the file a vintage was read from (its content unchanged)."""
    conn.execute(update(IndexVintage).where(IndexVintage.id == vintage_id)
                 .values(etag=validators.etag, last_modified=validators.last_modified))


# --- Ingest log ----------------------------------------------------------------------------

#: Longest message kept in the ingest log (a broken file's error never floods the store).
LOG_MESSAGE_LIMIT = 2000


def _log_row(source: str, month: Month | None, outcome: str, message: str, url: str | None,
             sha256: str | None, run_id: str | None) -> dict[str, object]:
    if len(message) > LOG_MESSAGE_LIMIT:
        message = message[:LOG_MESSAGE_LIMIT] + " ... (cut)"
    return dict(at=utcnow(), source=source, month=month_date(month) if month else None, outcome=outcome,
                message=message, url=url, sha256=sha256, run_id=run_id)


def log_ingest(conn: Connection, *, source: str, month: Month | None, outcome: str, message: str = "",
               url: str | None = None, sha256: str | None = None, run_id: str | None = None) -> None:
    conn.execute(insert(IngestLog).values(**_log_row(source, month, outcome, message, url, sha256, run_id)))


def log_ingests(conn: Connection, entries: list[dict[str, object]]) -> None:
    """Several ingest-log entries (``log_ingest``'s keyword arguments each) in one statement."""
    if entries:
        conn.execute(insert(IngestLog), [
            _log_row(e["source"], e.get("month"), e["outcome"], e.get("message", ""), e.get("url"),  # type: ignore[arg-type]
                     e.get("sha256"), e.get("run_id")) for e in entries])  # type: ignore[arg-type]


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
