"""What the store holds: months per source, gaps, the index vintage, recent ingest outcomes."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, func, select

from db import store
from db.schema import IndexObservation, SstGrid
from enso.months import Month


@dataclass(frozen=True)
class SourceStatus:
    source: str
    n_months: int
    first: Month | None
    last: Month | None
    gaps: list[tuple[Month, Month]]
    revised_months: int


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


@dataclass(frozen=True)
class StoreStatus:
    sources: list[SourceStatus]
    index: IndexStatus
    recent: list[object]

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
        i = self.index
        lines.append("Niño 3.4 index:")
        if i.n_months == 0:
            lines.append("  (none yet: run `enso ingest`)")
        else:
            lines.append(f"  {i.n_months} months {i.first}..{i.last} ({i.format}); phase known to {i.last_with_phase}"
                         f" (later months provisional)")
            lines.append(f"  vintage {i.sha256[:12] if i.sha256 else '?'} from {i.url} at {i.downloaded_at}")
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
        agg = conn.execute(select(func.count(), func.min(IndexObservation.month), func.max(IndexObservation.month))
                           ).one()
        last_phase = conn.execute(select(func.max(IndexObservation.month))
                                  .where(IndexObservation.phase.is_not(None))).scalar()
        vintage = store.current_vintage(conn)
    index = IndexStatus(
        n_months=agg[0], first=store.date_month(agg[1]) if agg[1] else None,
        last=store.date_month(agg[2]) if agg[2] else None,
        last_with_phase=store.date_month(last_phase) if last_phase else None,
        format=vintage.format if vintage else None, url=vintage.url if vintage else None,
        sha256=vintage.sha256 if vintage else None, downloaded_at=vintage.downloaded_at if vintage else None,
    )
    return StoreStatus(sources, index, store.recent_ingests(engine, recent))
