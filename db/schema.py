"""The store's schema (SQLAlchemy 2), shared by PostgreSQL and SQLite.

Months are ``DATE`` columns holding the first day of the month, so SQL users can
compare and format them naturally. Timestamps are timezone-aware UTC.
Grids are stored as zstd-compressed float32 bytes (land = NaN) with their
coordinates as float64 bytes; see :mod:`db.codec`.

The migrations in ``db/migrations`` create exactly this schema; a test checks
that they agree.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Outcomes of one ingest attempt (the ``ingest_log.outcome`` vocabulary).
OUTCOMES = ("stored", "unchanged", "revised", "not_published", "rejected", "failed")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class SstGrid(Base):
    """One preprocessed SST grid per (source, month): °C float32, land NaN, normalised orientation."""

    __tablename__ = "sst_grid"
    __table_args__ = (UniqueConstraint("source", "month", name="uq_sst_grid_source_month"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(16), nullable=False)
    month: Mapped[dt.date] = mapped_column(Date, nullable=False)
    nlat: Mapped[int] = mapped_column(Integer, nullable=False)
    nlon: Mapped[int] = mapped_column(Integer, nullable=False)
    lat: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    lon: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    values_zstd: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    land_mask_zstd: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    land_fraction: Mapped[float] = mapped_column(Float, nullable=False)
    nino34: Mapped[float] = mapped_column(Float, nullable=False)
    source_url: Mapped[str] = mapped_column(Text, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    file_size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    revision: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    first_stored_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)


class IndexVintage(Base):
    """One downloaded index file (a vintage), identified by its checksum."""

    __tablename__ = "index_vintage"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    url: Mapped[str] = mapped_column(Text, nullable=False)
    format: Mapped[str] = mapped_column(String(16), nullable=False)
    downloaded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    first_month: Mapped[dt.date] = mapped_column(Date, nullable=False)
    last_month: Mapped[dt.date] = mapped_column(Date, nullable=False)
    n_months: Mapped[int] = mapped_column(Integer, nullable=False)
    base_period: Mapped[str] = mapped_column(String(16), nullable=False)


class IndexObservation(Base):
    """Niño 3.4 for one month, all rows from one vintage (the newest file, never spliced)."""

    __tablename__ = "index_observation"
    __table_args__ = (
        CheckConstraint("phase IN ('la_nina', 'neutral', 'el_nino')", name="phase_values"),
    )

    month: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    nino34: Mapped[float | None] = mapped_column(Float)
    anomaly: Mapped[float | None] = mapped_column(Float)
    oni: Mapped[float | None] = mapped_column(Float)
    phase: Mapped[str | None] = mapped_column(String(8))
    source: Mapped[str] = mapped_column(String(16), nullable=False)
    vintage_id: Mapped[int] = mapped_column(ForeignKey("index_vintage.id"), nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)


class IngestLog(Base):
    """Every ingest attempt and its outcome (see :data:`OUTCOMES`)."""

    __tablename__ = "ingest_log"
    __table_args__ = (
        CheckConstraint(
            "outcome IN ('stored', 'unchanged', 'revised', 'not_published', 'rejected', 'failed')",
            name="outcome_values",
        ),
        Index("ix_ingest_log_source_month", "source", "month"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    source: Mapped[str] = mapped_column(String(16), nullable=False)
    month: Mapped[dt.date | None] = mapped_column(Date)
    outcome: Mapped[str] = mapped_column(String(16), nullable=False)
    message: Mapped[str] = mapped_column(Text, nullable=False, default="")
    url: Mapped[str | None] = mapped_column(Text)
    sha256: Mapped[str | None] = mapped_column(String(64))
    run_id: Mapped[str | None] = mapped_column(String(64))
