"""What the store holds: months per source, gaps, each index product's vintages and what they changed,
recent ingest outcomes."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, func, select

from db import store
from db.schema import IndexCurrent, SstGrid
from enso.months import Month
from enso.sources.index_products import DEFAULT_PRODUCT, INDEX_PRODUCTS


@dataclass(frozen=True)
class SourceStatus:
    source: str
    n_months: int
    first: Month | None
    last: Month | None
    gaps: list[tuple[Month, Month]]
    revised_months: int


@dataclass(frozen=True)
class VintageNote:
    """One vintage of an index product: when it was stored, how it was accepted, what it changed."""

    seq: int
    stored_at: object
    acceptance: str
    changes: str


@dataclass(frozen=True)
class IndexStatus:
    n_months: int
    first: Month | None
    last: Month | None
    last_with_phase: Month | None
    format: str | None
    url: str | None
    sha256: str | None
    downloaded_at: object
    product: str = DEFAULT_PRODUCT
    #: The newest vintages, newest first (the first is the current index).
    history: tuple[VintageNote, ...] = ()


@dataclass(frozen=True)
class StoreStatus:
    sources: list[SourceStatus]
    indexes: list[IndexStatus]
    recent: list[object]

    @property
    def index(self) -> IndexStatus:
        """The default product's index (Niño 3.4)."""
        return next((i for i in self.indexes if i.product == DEFAULT_PRODUCT), _NO_INDEX)

    def render(self) -> str:
        lines = ["SST grids:"]
        if not self.sources:
            lines.append("  (none yet: run `enso ingest` or `enso backfill`)")
        for s in self.sources:
            gap = "no gaps" if not s.gaps else (
                f"{len(s.gaps)} gap(s): " + ", ".join(f"{a}..{b}" if a != b else str(a) for a, b in s.gaps[:6])
                + (" ..." if len(s.gaps) > 6 else ""))
            lines.append(f"  {s.source:<6} {s.n_months:>5} months  {s.first}..{s.last}  {gap}; "
                         f"{s.revised_months} revised")
        for i in self.indexes or [_NO_INDEX]:
            product = INDEX_PRODUCTS.get(i.product)
            lines.append(f"Index {i.product}" + (f" ({product.description})" if product else "") + ":")
            if i.n_months == 0:
                lines.append("  (none yet: run `enso ingest`)")
                continue
            lines.append(f"  {i.n_months} months {i.first}..{i.last} ({i.format}); phase known to "
                         f"{i.last_with_phase} (later months provisional)")
            lines.append(f"  vintage {i.history[0].seq if i.history else '?'} ({i.sha256[:12] if i.sha256 else '?'}) "
                         f"from {i.url}, downloaded {_when(i.downloaded_at)}")
            for note in i.history:
                forced = " [accepted with --accept-shrink]" if note.acceptance == "accept-shrink" else ""
                lines.append(f"    vintage {note.seq:<4} {_when(note.stored_at)}{forced}: {note.changes[:300]}")
        lines.append("Last ingest attempts:")
        for r in self.recent:
            when = r.at.strftime("%Y-%m-%d %H:%M:%S") if r.at else "?"
            month = r.month.strftime("%Y-%m") if r.month else "-"
            msg = (r.message or "")[:100]
            lines.append(f"  {when}  {r.source:<11} {month:<8} {r.outcome:<13} {msg}")
        if not self.recent:
            lines.append("  (none)")
        return "\n".join(lines)


def store_status(engine: Engine, recent: int = 10) -> StoreStatus:
    sources = []
    with engine.connect() as conn:
        names = conn.execute(select(SstGrid.source).distinct().order_by(SstGrid.source)).scalars().all()
        for name in names:
            months = store.stored_months(engine, name)
            revised = conn.execute(select(func.count()).select_from(SstGrid)
                                   .where(SstGrid.source == name, SstGrid.revision > 1)).scalar_one()
            sources.append(SourceStatus(name, len(months), months[0], months[-1], store.gaps(months), revised))
        indexes = [_index_status(conn, product) for product in store.index_products(conn)]
    return StoreStatus(sources, indexes, store.recent_ingests(engine, recent))


def _index_status(conn, product: str, history: int = 3) -> IndexStatus:  # type: ignore[no-untyped-def]
    """The current index of ``product`` and what its newest ``history`` vintages changed."""
    mine = IndexCurrent.product == product
    agg = conn.execute(select(func.count(), func.min(IndexCurrent.month), func.max(IndexCurrent.month))
                       .where(mine)).one()
    last_phase = conn.execute(select(func.max(IndexCurrent.month))
                              .where(mine, IndexCurrent.phase.is_not(None))).scalar()
    notes = store.vintages(conn, product, limit=history)
    vintage = notes[0] if notes else None
    return IndexStatus(
        n_months=agg[0], first=store.date_month(agg[1]) if agg[1] else None,
        last=store.date_month(agg[2]) if agg[2] else None,
        last_with_phase=store.date_month(last_phase) if last_phase else None,
        format=vintage.format if vintage else None, url=vintage.url if vintage else None,
        sha256=vintage.sha256 if vintage else None, downloaded_at=vintage.downloaded_at if vintage else None,
        product=product,
        history=tuple(VintageNote(v.seq, v.stored_at, v.acceptance, v.changes or "(values not kept)") for v in notes),
    )


_NO_INDEX = IndexStatus(0, None, None, None, None, None, None, None)


def _when(value: object) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if hasattr(value, "strftime") else str(value)
