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
    text,
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
    """One preprocessed SST grid per (source, month): °C float32, land NaN, normalised orientation.

    ``product_version`` ('cobe-sst v1', 'ersst v5', 'ersst v6') is the same for
    every grid of a source: :mod:`db.ingest` refuses to mix versions.
    """

    __tablename__ = "sst_grid"
    __table_args__ = (UniqueConstraint("source", "month", name="uq_sst_grid_source_month"),
                      Index("ix_sst_grid_source_product_version", "source", "product_version"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(16), nullable=False)
    product_version: Mapped[str] = mapped_column(String(32), nullable=False)
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
    #: The server's validators of the stored file (for conditional re-downloads); None if it sent none.
    etag: Mapped[str | None] = mapped_column(Text)
    last_modified: Mapped[str | None] = mapped_column(Text)
    first_stored_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)


class IndexVintage(Base):
    """One accepted download of an index product's file (a vintage): append-only, never spliced.

    ``seq`` numbers the vintages of a product 1, 2, ...; the newest is the current
    index (views ``index_current`` and ``index_observation``). A unique (product,
    seq) makes two ingests racing to append the same successor fail instead of
    forking the history. ``changes`` says what the vintage changed against the one
    before it; ``acceptance`` is ``checked`` or ``accept-shrink`` (taken although it
    dropped months, by an operator's --accept-shrink). ``etag`` / ``last_modified``
    are the server's validators of the file, for conditional re-downloads.
    """

    __tablename__ = "index_vintage"
    __table_args__ = (
        UniqueConstraint("product", "seq", name="uq_index_vintage_product_seq"),
        CheckConstraint("acceptance IN ('checked', 'accept-shrink')", name="acceptance_values"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    product: Mapped[str] = mapped_column(String(16), nullable=False)
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    url: Mapped[str] = mapped_column(Text, nullable=False)
    format: Mapped[str] = mapped_column(String(16), nullable=False)
    downloaded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    stored_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    first_month: Mapped[dt.date] = mapped_column(Date, nullable=False)
    last_month: Mapped[dt.date] = mapped_column(Date, nullable=False)
    n_months: Mapped[int] = mapped_column(Integer, nullable=False)
    base_period: Mapped[str] = mapped_column(String(16), nullable=False)
    etag: Mapped[str | None] = mapped_column(Text)
    last_modified: Mapped[str | None] = mapped_column(Text)
    acceptance: Mapped[str] = mapped_column(String(16), nullable=False, default="checked")
    changes: Mapped[str] = mapped_column(Text, nullable=False, default="")


class IndexValue(Base):
    """The values of one month in one vintage (every vintage keeps all its months)."""

    __tablename__ = "index_value"
    __table_args__ = (
        CheckConstraint("phase IN ('la_nina', 'neutral', 'el_nino')", name="phase_values"),
    )

    vintage_id: Mapped[int] = mapped_column(ForeignKey("index_vintage.id"), primary_key=True)
    month: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    nino34: Mapped[float | None] = mapped_column(Float)
    anomaly: Mapped[float | None] = mapped_column(Float)
    oni: Mapped[float | None] = mapped_column(Float)
    phase: Mapped[str | None] = mapped_column(String(8))


class ViewBase(DeclarativeBase):
    """Views (created by the migrations' SQL, read-only): mapped for queries, not part of ``Base.metadata``."""

    metadata = MetaData()


class IndexCurrent(ViewBase):
    """View ``index_current``: every product's newest vintage, one row per (product, month)."""

    __tablename__ = "index_current"

    product: Mapped[str] = mapped_column(String(16), primary_key=True)
    month: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    nino34: Mapped[float | None] = mapped_column(Float)
    anomaly: Mapped[float | None] = mapped_column(Float)
    oni: Mapped[float | None] = mapped_column(Float)
    phase: Mapped[str | None] = mapped_column(String(8))
    source: Mapped[str] = mapped_column(String(16))
    vintage_id: Mapped[int] = mapped_column(Integer)
    vintage_seq: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class IndexObservation(ViewBase):
    """View ``index_observation``: the current Niño 3.4 index (product ``nino34``), one row per month.

    What the forecasts are verified against; ``source`` is the file's format.
    """

    __tablename__ = "index_observation"

    month: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    product: Mapped[str] = mapped_column(String(16))
    nino34: Mapped[float | None] = mapped_column(Float)
    anomaly: Mapped[float | None] = mapped_column(Float)
    oni: Mapped[float | None] = mapped_column(Float)
    phase: Mapped[str | None] = mapped_column(String(8))
    source: Mapped[str] = mapped_column(String(16))
    vintage_id: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class RelativeIndex(ViewBase):
    """View ``relative_index``: the relative Niño 3.4 index and RONI, one row per month.

    CPC's file (product ``relative``) where it has the month; before its first
    month, the index computed from the stored grids (``relative-grids``).
    """

    __tablename__ = "relative_index"

    month: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    relative_anomaly: Mapped[float | None] = mapped_column(Float)
    roni: Mapped[float | None] = mapped_column(Float)
    phase: Mapped[str | None] = mapped_column(String(8))
    product: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16))
    vintage_id: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


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


# --- Models, forecasts, verification, reports (the layers above the data foundation) ----------

#: operational: the monthly forecast; hindcast: out-of-sample forecasts of past months; selection: a model's
#: forecasts of its own selection months, with the weights selection scored (before any refit).
FORECAST_KINDS = ("operational", "hindcast", "selection")


class Model(Base):
    """The model registry: one row per trained model, with its weights and everything to reproduce it."""

    __tablename__ = "model"
    __table_args__ = (
        CheckConstraint("status IN ('candidate', 'champion', 'retired')", name="status_values"),
        # At most one champion, even when two promotions race (a partial unique index).
        Index("uq_model_one_champion", "status", unique=True,
              postgresql_where=text("status = 'champion'"), sqlite_where=text("status = 'champion'")),
    )

    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    preset: Mapped[str] = mapped_column(String(32), nullable=False)
    config: Mapped[dict] = mapped_column(JSON, nullable=False)
    sst_source: Mapped[str] = mapped_column(String(16), nullable=False)
    train_start: Mapped[dt.date] = mapped_column(Date, nullable=False)
    train_end: Mapped[dt.date] = mapped_column(Date, nullable=False)
    valid_end: Mapped[dt.date] = mapped_column(Date, nullable=False)
    base_period: Mapped[str] = mapped_column(String(16), nullable=False)
    normalisation: Mapped[dict] = mapped_column(JSON, nullable=False)
    metrics: Mapped[dict] = mapped_column(JSON, nullable=False)
    data_fingerprint: Mapped[str] = mapped_column(String(64), nullable=False)
    weights: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="candidate")
    device: Mapped[str] = mapped_column(String(32), nullable=False, default="cpu")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    promoted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    flow_run_id: Mapped[str | None] = mapped_column(String(64))


class Forecast(Base):
    """One row per (model, kind, init month, target month): the Niño 3.4 forecast users query in SQL.

    ``nino34_anomaly_sd`` (°C, nullable) is the standard deviation of the
    forecast's Gaussian distribution of the anomaly, from which its phase
    probabilities come; NULL where the forecaster states no spread.
    """

    __tablename__ = "forecast"
    __table_args__ = (
        UniqueConstraint("model_version", "kind", "init_month", "target_month",
                         name="uq_forecast_model_kind_init_target"),
        CheckConstraint("kind IN ('operational', 'hindcast', 'selection')", name="kind_values"),
        CheckConstraint("lead_months BETWEEN 1 AND 24", name="lead_range"),
        CheckConstraint("abs(p_la_nina + p_neutral + p_el_nino - 1.0) < 1e-6", name="probabilities_sum_to_one"),
        CheckConstraint("phase IN ('la_nina', 'neutral', 'el_nino')", name="phase_values"),
        Index("ix_forecast_init_month", "init_month"),
        Index("ix_forecast_target_month", "target_month"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_version: Mapped[str] = mapped_column(ForeignKey("model.version"), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    init_month: Mapped[dt.date] = mapped_column(Date, nullable=False)
    target_month: Mapped[dt.date] = mapped_column(Date, nullable=False)
    lead_months: Mapped[int] = mapped_column(Integer, nullable=False)
    nino34: Mapped[float] = mapped_column(Float, nullable=False)
    nino34_anomaly: Mapped[float] = mapped_column(Float, nullable=False)
    p_la_nina: Mapped[float] = mapped_column(Float, nullable=False)
    p_neutral: Mapped[float] = mapped_column(Float, nullable=False)
    p_el_nino: Mapped[float] = mapped_column(Float, nullable=False)
    phase: Mapped[str] = mapped_column(String(8), nullable=False)
    base_period: Mapped[str] = mapped_column(String(16), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    flow_run_id: Mapped[str | None] = mapped_column(String(64))
    nino34_anomaly_sd: Mapped[float | None] = mapped_column(Float)


class ForecastGrid(Base):
    """The predicted lead-1 SST anomaly grid of a forecast (for the report's map)."""

    __tablename__ = "forecast_grid"
    __table_args__ = (UniqueConstraint("model_version", "kind", "init_month", name="uq_forecast_grid_model_kind_init"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_version: Mapped[str] = mapped_column(ForeignKey("model.version"), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    init_month: Mapped[dt.date] = mapped_column(Date, nullable=False)
    target_month: Mapped[dt.date] = mapped_column(Date, nullable=False)
    nlat: Mapped[int] = mapped_column(Integer, nullable=False)
    nlon: Mapped[int] = mapped_column(Integer, nullable=False)
    lat: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    lon: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    values_zstd: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)


class SeasonalOutlook(Base):
    """The CPC-style outlook of a forecast: one row per (model, kind, init month, season 1..9).

    Season ``s`` covers the target months ``first_month`` = init + s ..
    ``last_month`` = init + s + 2 (``season_label`` as CPC names it, e.g.
    ``DJF``); ``mean`` and ``sd`` (°C) are the Gaussian forecast of the 3-month
    mean of ``phase_index`` (``roni`` or ``oni``), the ``p_*`` its phase
    probabilities (:mod:`enso.outlook`). Written with the forecast rows, in the
    same transaction, and replaced with them (:mod:`db.seasonal_outlook`).
    """

    __tablename__ = "seasonal_outlook"
    __table_args__ = (
        UniqueConstraint("model_version", "kind", "init_month", "season",
                         name="uq_seasonal_outlook_model_kind_init_season"),
        CheckConstraint("kind IN ('operational', 'hindcast', 'selection')", name="kind_values"),
        CheckConstraint("season BETWEEN 1 AND 9", name="season_range"),
        CheckConstraint("phase_index IN ('roni', 'oni')", name="phase_index_values"),
        CheckConstraint("sd > 0", name="sd_positive"),
        CheckConstraint("abs(p_la_nina + p_neutral + p_el_nino - 1.0) < 1e-6", name="probabilities_sum_to_one"),
        Index("ix_seasonal_outlook_init_month", "init_month"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_version: Mapped[str] = mapped_column(ForeignKey("model.version"), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    init_month: Mapped[dt.date] = mapped_column(Date, nullable=False)
    season: Mapped[int] = mapped_column(Integer, nullable=False)
    season_label: Mapped[str] = mapped_column(String(3), nullable=False)
    first_month: Mapped[dt.date] = mapped_column(Date, nullable=False)
    last_month: Mapped[dt.date] = mapped_column(Date, nullable=False)
    phase_index: Mapped[str] = mapped_column(String(4), nullable=False)
    mean: Mapped[float] = mapped_column(Float, nullable=False)
    sd: Mapped[float] = mapped_column(Float, nullable=False)
    p_la_nina: Mapped[float] = mapped_column(Float, nullable=False)
    p_neutral: Mapped[float] = mapped_column(Float, nullable=False)
    p_el_nino: Mapped[float] = mapped_column(Float, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    flow_run_id: Mapped[str | None] = mapped_column(String(64))


class VerificationScore(Base):
    """A score of a model or baseline over a period, by lead (and target calendar month; 0 = all).

    ``model_version`` is the verified model, also on its baselines' rows: they are
    fitted on that model's training period (see :mod:`db.verification`).
    """

    __tablename__ = "verification_score"
    __table_args__ = (
        UniqueConstraint("model_version", "forecaster", "kind", "period_start", "period_end", "lead_months",
                         "target_calendar_month", "metric", name="uq_verification_score_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    forecaster: Mapped[str] = mapped_column(String(64), nullable=False)
    model_version: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    period_start: Mapped[dt.date] = mapped_column(Date, nullable=False)
    period_end: Mapped[dt.date] = mapped_column(Date, nullable=False)
    lead_months: Mapped[int] = mapped_column(Integer, nullable=False)
    target_calendar_month: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    metric: Mapped[str] = mapped_column(String(32), nullable=False)
    value: Mapped[float | None] = mapped_column(Float)
    n: Mapped[int] = mapped_column(Integer, nullable=False)
    computed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)


class Report(Base):
    """One rendered monthly report per init month (the newest rendering replaces older ones)."""

    __tablename__ = "report"

    init_month: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    model_version: Mapped[str | None] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(Text, nullable=False)
    html: Mapped[str] = mapped_column(Text, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    flow_run_id: Mapped[str | None] = mapped_column(String(64))


class EmailDelivery(Base):
    """One delivery of a month's report: claimed ('sending'), then 'sent' or 'failed'.

    A sender first inserts its claim in state 'sending'; the partial unique index
    lets only one claim per (init month, recipients) exist at a time, so a
    concurrent sender backs off instead of sending a second copy. ``recipients``
    is the normalised list (lower-case addresses, sorted, comma-separated).
    """

    __tablename__ = "email_delivery"
    __table_args__ = (CheckConstraint("status IN ('sending', 'sent', 'failed')", name="status_values"),
                      Index("ix_email_delivery_init_month", "init_month"),
                      Index("uq_email_delivery_claim", "init_month", "recipients", unique=True,
                            postgresql_where=text("status = 'sending'"), sqlite_where=text("status = 'sending'")))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    init_month: Mapped[dt.date] = mapped_column(Date, nullable=False)
    recipients: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(String(8), nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False)
    message: Mapped[str] = mapped_column(Text, nullable=False, default="")
    message_id: Mapped[str | None] = mapped_column(Text)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
