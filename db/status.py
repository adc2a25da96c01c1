"""What the store holds (months per source, gaps, each index product's vintages and what they changed,
recent ingest outcomes), and whether each input is current, late or stale: the stale-input alarm.

The alarm (:func:`input_freshness`) compares the newest month held of every input
(the configured SST source's grids, the Niño 3.4 index file) with the last
complete month and the provider's usual publication day (:mod:`enso.publication`),
and says for a stale input which URL it waits for and what to change. `enso status`
shows it, `enso ingest` exits 1 instead of 75 (try later) on it, the monthly run
stops on it at once (:func:`check_inputs`, :class:`StaleInputs`) instead of waiting
for a file that is not coming, and the report carries it as a banner.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Engine, func, select

from db import store
from db.schema import IndexCurrent, SstGrid
from enso.config import Settings
from enso.months import Month, from_period, last_complete_month
from enso.publication import LATE, STALE, PublicationLag, freshness, newest_due_month
from enso.sources.index_products import DEFAULT_PRODUCT, RELATIVE_PRODUCT, product_description
from enso.sources.sst import sst_source

INDEX_ADVICE = ("check the URL in a browser; if CPC stopped or renamed the file (as ersst5.nino.mth.91-20.ascii "
                "stopped at 2026-06 when CPC moved to ERSSTv6), set ENSO_INDEX_URL and ENSO_INDEX_FORMAT to the "
                "current file (default: detrend.nino34.ascii.txt, cpc-detrend-sst)")
RELATIVE_ADVICE = ("check the URL in a browser; if CPC renamed or moved its monthly relative index, set "
                   "ENSO_RELATIVE_INDEX_URL to the current file; or set it empty to compute the relative index "
                   "(RONI) from the stored grids instead")


@dataclass(frozen=True)
class SourceStatus:
    source: str
    n_months: int
    first: Month | None
    last: Month | None
    gaps: list[tuple[Month, Month]]
    revised_months: int
    product_versions: tuple[str, ...] = ()


@dataclass(frozen=True)
class InputFreshness:
    """One input of the monthly run: the newest month held against what its provider has usually published."""

    name: str
    state: str
    newest: Month | None
    expected: Month
    due: Month
    lag: PublicationLag
    url: str
    advice: str
    #: Whether the forecast needs it, so that a monthly run stops when it is stale (the relative index does
    #: not: only the observed phase and the report use it, and they say it is stale).
    blocks_run: bool = True

    @property
    def stale(self) -> bool:
        return self.state == STALE

    def line(self) -> str:
        """``STATE name: newest ..., expected ...`` and, unless current, the URL waited for and what to do."""
        held = f"newest {self.newest}" if self.newest else "nothing held"
        text = (f"{self.state.upper():<7} {self.name}: {held}, last complete month {self.expected} "
                f"({self.lag.provider} usually publishes a month by day {self.lag.day} of the next)")
        if self.state == LATE:
            text += f"; waiting for {self.url} (not due yet)"
        elif self.state == STALE:
            text += f"; months up to {self.due} are due, next file {self.url}: {self.advice}"
        return text


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
    inputs: tuple[InputFreshness, ...] = ()

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
            versions = f" ({', '.join(s.product_versions)})" if s.product_versions else ""
            lines.append(f"  {s.source:<6} {s.n_months:>5} months  {s.first}..{s.last}  {gap}; "
                         f"{s.revised_months} revised{versions}")
        for i in self.indexes or [_NO_INDEX]:
            description = product_description(i.product)
            lines.append(f"Index {i.product}" + (f" ({description})" if description else "") + ":")
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
        if self.inputs:
            lines.append("Inputs (stale-input alarm):")
            lines.extend(f"  {f.line()}" for f in self.inputs)
        lines.append("Last ingest attempts:")
        for r in self.recent:
            when = r.at.strftime("%Y-%m-%d %H:%M:%S") if r.at else "?"
            month = r.month.strftime("%Y-%m") if r.month else "-"
            msg = (r.message or "")[:100]
            lines.append(f"  {when}  {r.source:<11} {month:<8} {r.outcome:<13} {msg}")
        if not self.recent:
            lines.append("  (none)")
        return "\n".join(lines)


def store_status(engine: Engine, recent: int = 10, settings: Settings | None = None,
                 now: dt.datetime | None = None) -> StoreStatus:
    """What the store holds; with ``settings``, also the freshness of every input (:func:`input_freshness`)."""
    sources = []
    with engine.connect() as conn:
        names = conn.execute(select(SstGrid.source).distinct().order_by(SstGrid.source)).scalars().all()
        for name in names:
            months = store.stored_months(engine, name)
            revised = conn.execute(select(func.count()).select_from(SstGrid)
                                   .where(SstGrid.source == name, SstGrid.revision > 1)).scalar_one()
            versions = tuple(store.product_versions(conn, name))
            sources.append(SourceStatus(name, len(months), months[0], months[-1], store.gaps(months), revised,
                                        versions))
        indexes = [_index_status(conn, product) for product in store.index_products(conn)]
    inputs = tuple(input_freshness(engine, settings, now)) if settings is not None else ()
    return StoreStatus(sources, indexes, store.recent_ingests(engine, recent), inputs)


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


# --- The stale-input alarm ------------------------------------------------------------------------

def alarm_time(settings: Settings) -> dt.datetime:
    """When the alarm judges the inputs: ENSO_STALE_INPUT_AS_OF where set (tests, replays of past months), else
    the clock (UTC)."""
    return settings.stale_input_as_of or dt.datetime.now(dt.timezone.utc)


def input_freshness(engine: Engine, settings: Settings, now: dt.datetime | None = None, *,
                    sources: tuple[str, ...] | None = None, index: bool = True) -> list[InputFreshness]:
    """Current / late / stale for each SST source (default: ENSO_SST_SOURCE) and the index files (the Niño 3.4
    index and, unless ENSO_RELATIVE_INDEX_URL is empty, CPC's relative index), at ``now`` (default:
    :func:`alarm_time`)."""
    now = now or alarm_time(settings)
    expected = last_complete_month(now)
    out = []
    for name in sources or (settings.sst_source,):
        spec = sst_source(name)
        months = store.stored_months(engine, name)
        newest = months[-1] if months else None
        lag = spec.publication(settings)
        due = newest_due_month(now, lag)
        waiting = (newest + 1) if newest is not None and newest < expected else expected
        out.append(InputFreshness(f"{name} SST grids", freshness(newest, now, lag), newest, expected, due, lag,
                                  spec.url(waiting, settings), spec.advice))
    if index:
        stored = store.load_index(engine)
        known = stored.index[stored["anomaly"].notna()]
        newest = from_period(known[-1]) if len(known) else None
        lag = PublicationLag("NOAA CPC", settings.index_publication_day)
        out.append(InputFreshness("Niño 3.4 index", freshness(newest, now, lag), newest, expected,
                                  newest_due_month(now, lag), lag, settings.index_url, INDEX_ADVICE))
        if settings.relative_index_url:
            stored = store.load_index(engine, RELATIVE_PRODUCT)
            known = stored.index[stored["anomaly"].notna()]
            newest = from_period(known[-1]) if len(known) else None
            out.append(InputFreshness("relative Niño 3.4 index", freshness(newest, now, lag), newest, expected,
                                      newest_due_month(now, lag), lag, settings.relative_index_url,
                                      RELATIVE_ADVICE, blocks_run=False))
    return out


class StaleInputs(RuntimeError):
    """An input the run needs is stale beyond its provider's usual lag: waiting would not help; someone must look."""

    def __init__(self, stale: list[InputFreshness]) -> None:
        self.inputs = stale
        super().__init__("stale input(s), so the run stops now instead of waiting for files that are not "
                         "coming:\n" + "\n".join(f"  {f.line()}" for f in stale))


def check_inputs(engine: Engine, settings: Settings, init: Month, now: dt.datetime | None = None, *,
                 run_id: str | None = None) -> list[InputFreshness]:
    """Fetch the init month's grid and the index file, then raise :class:`StaleInputs` if one that lacks
    ``init`` is stale (beyond its provider's lag); returns the freshness of every input otherwise.

    Merely late inputs pass: the run then waits for them as before. An input that
    is stale but already holds ``init`` (a rerun of an old month) passes too, and so
    does a stale input the forecast does not need (the relative index: the report's
    banner names it). The monthly run's ingest task then asks for the files stored
    here again, conditionally (with the validators just stored): the provider
    answers 304 Not Modified without a body, so nothing is downloaded or written twice.
    """
    from db.ingest import ingest_index, ingest_sst_month

    ingest_sst_month(engine, settings, settings.sst_source, init, run_id=run_id)
    ingest_index(engine, settings, run_id=run_id)
    inputs = input_freshness(engine, settings, now)
    stale = [f for f in inputs if f.stale and f.blocks_run and (f.newest is None or f.newest < init)]
    if stale:
        raise StaleInputs(stale)
    return inputs
