"""Bringing months from the providers into the store: one month, the index files, backfills.

An SST month: conditional download (``If-None-Match``/``If-Modified-Since`` with the
stored file's validators; a 304 is ``unchanged`` without a body) -> checksum -> the
stored file? ``unchanged`` -> decode and validate -> insert or revise -> log. A month
that fails never reaches the store; its outcome is logged. Downloads and decoding run
on ``workers`` threads; the writes are batched, several months per transaction, so a
month is never half-written and the bookkeeping of unchanged months costs one
statement per batch. Reruns are idempotent, so a killed backfill is resumed by
running it again.

An index file is stored as a new vintage of its product (:mod:`enso.vintages`) only
if it loses no month the newest vintage has and has no gap (or with
``accept_shrink``); each vintage is kept whole. :func:`ingest_relative` does so
for CPC's relative index file and stores the relative index computed from the
grids where that file does not reach (product ``relative-grids``).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator

import pandas as pd
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from db import store
from db.engine import StoreUnavailable, redacted
from db.schema import utcnow
from db.store import PackedGrid, StoredGridVersion, VintageFile
from enso.config import Settings
from enso.months import Month, last_complete_month, month_range
from enso.relative import DEFAULT_SCALE_PERIOD, relative_index_from_grids
from enso.sources import DownloadFailed, InvalidFile, NotPublished, SourceError
from enso.sources.http import Downloaded, HttpSession, NotModified, Validators, download
from enso.sources.index import complete_index, discover_mcnoldy_url, parse_index
from enso.sources.index_products import (
    DEFAULT_PRODUCT,
    GRIDS_RELATIVE_FORMAT,
    GRIDS_RELATIVE_PRODUCT,
    RELATIVE_PRODUCT,
    IndexProduct,
    index_product,
)
from enso.sources.sst import SstSourceSpec, sst_source
from enso.vintages import VintageRefused, check_vintage

_local = threading.local()

#: A batch of writes is committed once it holds this many new grids, this many months, or is this old.
BATCH_GRIDS = 16
BATCH_MONTHS = 256
BATCH_SECONDS = 1.0


def _session() -> HttpSession:
    """One HTTP session per thread (connection reuse without sharing across threads)."""
    if not hasattr(_local, "session"):
        _local.session = HttpSession()
    return _local.session


@dataclass(frozen=True)
class IngestResult:
    """The outcome of one ingest attempt (the same words as ``ingest_log.outcome``)."""

    source: str
    month: Month | None
    outcome: str
    message: str = ""
    url: str | None = None
    sha256: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome in ("stored", "unchanged", "revised")

    def __str__(self) -> str:
        where = f"{self.source} {self.month}" if self.month else self.source
        return f"{where}: {self.outcome}" + (f" ({self.message})" if self.message else "")

    def log_entry(self, run_id: str | None) -> dict[str, object]:
        return dict(source=self.source, month=self.month, outcome=self.outcome, message=self.message, url=self.url,
                    sha256=self.sha256, run_id=run_id)


def _store_unavailable(engine: Engine, what: str, exc: OperationalError) -> StoreUnavailable:
    return StoreUnavailable(
        f"{what}: cannot write to the store at {redacted(str(engine.url))}: {exc.orig}. Nothing was stored; "
        "check that the database is running and ENSO_DATABASE_URL, then rerun (reruns are safe)."
    )


@contextmanager
def _fetched(url: str, settings: Settings, month: Month | None, kind: str,
             validators: Validators | None = None) -> Iterator[Downloaded | NotModified]:
    """Download ``url`` within the settings' timeout, deadline and size limit of ``kind``; the file is removed after.

    The file gets a name of its own in ENSO_DATA_DIR/downloads (process, thread,
    month and the provider's name), so concurrent ingests never share one.
    """
    name = f".{os.getpid()}-{threading.get_ident()}-{month or 'file'}-{url.rsplit('/', 1)[-1][-80:]}"
    dest = settings.download_dir / name
    try:
        yield download(url, dest, timeout=settings.http_timeout, retries=settings.http_retries,
                       backoff=settings.http_backoff, month=month, session=_session(),
                       max_bytes=settings.max_bytes(kind), deadline=settings.http_deadline, validators=validators)
    finally:
        dest.unlink(missing_ok=True)


def _log(engine: Engine, result: IngestResult, run_id: str | None) -> None:
    try:
        with engine.begin() as conn:
            store.log_ingest(conn, **result.log_entry(run_id))  # type: ignore[arg-type]
    except OperationalError as exc:
        raise _store_unavailable(engine, f"{result.source} {result.month}", exc) from exc


# --- SST months -------------------------------------------------------------------------------

class ProductVersionMismatch(ValueError):
    """The store holds grids of another product version of this source: versions are never mixed."""


def version_mismatch(conn, source: str, version: str) -> str | None:  # type: ignore[no-untyped-def]
    """Why grids of ``version`` must not join the store (it holds another version of ``source``), or None."""
    others = store.product_versions(conn, source, besides=version)
    if not others:
        return None
    held = "; ".join(f"{n} months of {v!r} ({a}..{b})" for v, (a, b, n) in others.items())
    return (f"the store holds {source} grids of another product version ({held}), and these settings fetch "
            f"{version!r}: versions are never mixed (training, climatologies and maps would splice them). "
            f"To switch, re-backfill under the new version: `enso db drop-grids --source {source} --yes`, then "
            f"`enso backfill --source {source} --start ... --end ...` and `enso train`; or keep the old version "
            "by setting the source's version back (README, 'Switching a product version')")


def check_product_version(engine: Engine, settings: Settings, source: str) -> None:
    """Raise :class:`ProductVersionMismatch` when the store holds another version of ``source`` than configured."""
    version = sst_source(source).product_version(settings)
    try:
        with engine.connect() as conn:
            problem = version_mismatch(conn, source, version)
    except OperationalError as exc:
        raise _store_unavailable(engine, f"{source} ({version})", exc) from exc
    if problem:
        raise ProductVersionMismatch(problem)


@dataclass(frozen=True)
class _Fetched:
    """What a worker made of one month: a final result, or a packed grid for the writer to store."""

    result: IngestResult
    packed: PackedGrid | None = None
    held: StoredGridVersion | None = None
    #: Validators the server now gives for the file already stored (recorded by the writer).
    new_validators: Validators | None = None


def _fetch_month(settings: Settings, spec: SstSourceSpec, month: Month, held: StoredGridVersion | None
                 ) -> _Fetched:
    """Download (conditionally), compare, decode, validate and pack one month (with the source's product
    version, which the writer checks again); never touches the store."""
    source, url = spec.name, spec.url(month, settings)
    conditional = held.validators if held is not None and held.source_url == url and held.validators else None
    with ExitStack() as files:
        try:
            fetched = files.enter_context(_fetched(url, settings, month, source, conditional))
        except NotPublished as exc:
            return _Fetched(IngestResult(source, month, "not_published", exc.problem, url))
        except InvalidFile as exc:
            return _Fetched(IngestResult(source, month, "rejected", str(exc), url))
        except DownloadFailed as exc:
            return _Fetched(IngestResult(source, month, "failed", str(exc), url))
        if isinstance(fetched, NotModified):
            assert held is not None
            return _Fetched(IngestResult(source, month, "unchanged", f"not modified (HTTP 304); revision "
                                         f"{held.revision}", url, held.sha256), held=held,
                            new_validators=fetched.validators if fetched.validators != held.validators else None)
        if held is not None and held.sha256 == fetched.sha256:
            return _Fetched(IngestResult(source, month, "unchanged", f"revision {held.revision}", url, held.sha256),
                            held=held,
                            new_validators=fetched.validators if fetched.validators != held.validators else None)
        try:
            grid = spec.decode(fetched.path, month, settings)
        except InvalidFile as exc:  # name the URL, not the temporary file
            return _Fetched(IngestResult(source, month, "rejected", str(InvalidFile(url, month, exc.problem)), url,
                                         fetched.sha256))
    packed = store.pack_grid(grid, source_url=url, sha256=fetched.sha256, file_size=fetched.size,
                             product_version=spec.product_version(settings), validators=fetched.validators)
    return _Fetched(IngestResult(source, month, "stored", "", url, fetched.sha256), packed=packed, held=held)


class _MonthWriter:
    """Writes fetched months in batches, one transaction per batch; returns the final results.

    Each batch first checks, in its transaction, that the store holds no grid of
    another product version of the source than ``product_version`` (a concurrent
    ingest under other settings): then the batch's new grids are refused, not mixed.
    """

    def __init__(self, engine: Engine, source: str, product_version: str, run_id: str | None) -> None:
        self.engine, self.source, self.product_version, self.run_id = engine, source, product_version, run_id
        self.pending: list[_Fetched] = []
        self.since = time.monotonic()

    def add(self, fetched: _Fetched) -> list[IngestResult]:
        self.pending.append(fetched)
        grids = sum(f.packed is not None for f in self.pending)
        if grids >= BATCH_GRIDS or len(self.pending) >= BATCH_MONTHS or time.monotonic() - self.since >= BATCH_SECONDS:
            return self.flush()
        return []

    def flush(self) -> list[IngestResult]:
        batch, self.pending, self.since = self.pending, [], time.monotonic()
        if not batch:
            return []
        try:
            with self.engine.begin() as conn:
                if any(f.packed is not None for f in batch):
                    batch = self._refuse_mixed(conn, batch)
                inserted = store.insert_grids(conn, self.source, [f.packed for f in batch
                                                                  if f.packed is not None and f.held is None])
                results = [self._result(conn, f, inserted) for f in batch]
                store.update_grid_validators(conn, self.source, [
                    (f.result.month, f.held.sha256, f.new_validators) for f in batch
                    if f.new_validators is not None and f.held is not None])  # type: ignore[misc]
                store.log_ingests(conn, [r.log_entry(self.run_id) for r in results])
        except OperationalError as exc:
            months = sorted(f.result.month for f in batch)  # type: ignore[type-var]
            what = f"{self.source} {months[0]}" + (f"..{months[-1]}" if len(months) > 1 else "")
            raise _store_unavailable(self.engine, what, exc) from exc
        return results

    def _refuse_mixed(self, conn, batch: list[_Fetched]) -> list[_Fetched]:  # type: ignore[no-untyped-def]
        """The batch, its new grids turned into ``rejected`` outcomes if another product version is held."""
        problem = version_mismatch(conn, self.source, self.product_version)
        if problem is None:
            return batch
        return [_Fetched(IngestResult(self.source, f.result.month, "rejected", problem, f.result.url,
                                      f.result.sha256)) if f.packed is not None else f for f in batch]

    def _result(self, conn, fetched: _Fetched, inserted: set[Month]) -> IngestResult:  # type: ignore[no-untyped-def]
        """The outcome of a fetched month: as fetched, stored by the batch insert, or a revision written now."""
        packed, held, source = fetched.packed, fetched.held, self.source
        if packed is None:
            return fetched.result
        month, url, sha = packed.month, fetched.result.url, packed.sha256
        if held is None:
            if month in inserted:
                return IngestResult(source, month, "stored", "", url, sha)
            held = store.grid_version(conn, source, month)  # stored meanwhile by a concurrent ingest
            if held is not None and held.sha256 == sha:
                return IngestResult(source, month, "unchanged", "stored concurrently by another run", url, sha)
        assert held is not None
        if store.revise_grid(conn, source, packed, previous_sha256=held.sha256):
            return IngestResult(source, month, "revised",
                                f"upstream file changed: sha256 {held.sha256[:12]} -> {sha[:12]}, "
                                f"now revision {held.revision + 1}", url, sha)
        return IngestResult(source, month, "unchanged", "revised concurrently by another run", url, sha)


def ingest_sst_months(engine: Engine, settings: Settings, source: str, months: list[Month], *,
                      workers: int = 1, run_id: str | None = None,
                      on_result: Callable[[IngestResult], None] | None = None) -> list[IngestResult]:
    """Ingest ``months`` of an SST source with ``workers`` concurrent downloads; every outcome is logged.

    Raises :class:`StoreUnavailable` only when the database itself cannot be reached
    (then there is nowhere to log); every other failure is an outcome. The months
    written before that stay written (each batch is one transaction). When the store
    holds grids of another product version of the source than the settings fetch,
    every month is ``rejected`` before anything is downloaded, saying how to switch.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    spec = sst_source(source)
    if not months:
        return []
    version = spec.product_version(settings)
    what = f"{source} {months[0]}" + (f"..{months[-1]}" if len(months) > 1 else "")
    try:
        with engine.connect() as conn:
            mixed = version_mismatch(conn, source, version)
        held = {} if mixed else store.grid_versions(engine, source, min(months), max(months))
    except OperationalError as exc:
        raise _store_unavailable(engine, what, exc) from exc
    if mixed:
        refused = [IngestResult(source, m, "rejected", mixed, spec.url(m, settings)) for m in months]
        try:
            with engine.begin() as conn:
                store.log_ingests(conn, [r.log_entry(run_id) for r in refused])
        except OperationalError as exc:
            raise _store_unavailable(engine, what, exc) from exc
        for r in refused:
            if on_result is not None:
                on_result(r)
        return refused
    writer = _MonthWriter(engine, source, version, run_id)
    results: list[IngestResult] = []

    def take(fetched: _Fetched) -> None:
        if on_result is not None:
            on_result(fetched.result)
        results.extend(writer.add(fetched))

    if workers == 1:
        for month in months:
            take(_fetch_month(settings, spec, month, held.get(month)))
    else:
        _run_bounded(workers, [lambda m=m: _fetch_month(settings, spec, m, held.get(m)) for m in months], take)
    results.extend(writer.flush())
    return results


def _run_bounded(workers: int, jobs: list[Callable[[], _Fetched]], take: Callable[[_Fetched], None]) -> None:
    """Run ``jobs`` on ``workers`` threads, at most a few per worker in flight (memory stays bounded)."""
    queue = iter(jobs)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ingest") as pool:
        running: set[Future] = set()
        try:
            for job in queue:
                running.add(pool.submit(job))
                if len(running) >= 4 * workers:
                    done, running = wait(running, return_when=FIRST_COMPLETED)
                    for fut in done:
                        take(fut.result())
            while running:
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    take(fut.result())
        except BaseException:
            for fut in running:
                fut.cancel()
            raise


def ingest_sst_month(engine: Engine, settings: Settings, source: str, month: Month | str, *,
                     run_id: str | None = None) -> IngestResult:
    """Ingest one month of an SST source; returns its outcome (also written to the ingest log).

    Raises :class:`StoreUnavailable` only when the database itself cannot be reached
    (then there is nowhere to log); every other failure is an outcome.
    """
    return ingest_sst_months(engine, settings, source, [Month.parse(month)], run_id=run_id)[0]


# --- The index files --------------------------------------------------------------------------

def index_url(settings: Settings, product: IndexProduct | None = None) -> str:
    """The product's index URL; for McNoldy's table a folder URL triggers discovery of the newest file."""
    product = product or index_product(DEFAULT_PRODUCT)
    url, fmt = product.url(settings), product.format(settings)
    if fmt == "mcnoldy" and not url.endswith(".txt"):
        return discover_mcnoldy_url(url, _session(), Month.current().year, settings.http_timeout)
    return url


def ingest_index(engine: Engine, settings: Settings, *, product: str = DEFAULT_PRODUCT,
                 accept_shrink: bool = False, run_id: str | None = None,
                 base: tuple[int, int] | None = None) -> IngestResult:
    """Download ``product``'s whole index file, parse, complete (anomaly/ONI/phase) and store it as a new vintage.

    The download is conditional on the newest vintage's validators (a 304 is
    ``unchanged``). A file identical to the newest vintage is ``unchanged``; a file
    that would lose months or has gaps is ``rejected`` (the store keeps its index)
    unless ``accept_shrink`` (then the vintage records what was accepted). Anomalies
    the file lacks are computed against ``base`` (default: ENSO_ANOMALY_BASE_START/_END).
    """
    spec = index_product(product)
    base = base or (settings.anomaly_base_start, settings.anomaly_base_end)
    fmt = spec.format(settings)
    try:
        url = index_url(settings, spec)
    except SourceError as exc:
        result = IngestResult(product, None, "rejected" if isinstance(exc, InvalidFile) else "failed", str(exc),
                              spec.url(settings))
        _log(engine, result, run_id)
        return result
    try:
        with engine.connect() as conn:
            held = store.current_vintage(conn, product)
    except OperationalError as exc:
        raise _store_unavailable(engine, f"index file {url}", exc) from exc
    conditional = Validators(held.etag, held.last_modified) if held is not None and held.url == url else None
    with ExitStack() as files:
        try:
            fetched = files.enter_context(_fetched(url, settings, None, "index", conditional or None))
            if isinstance(fetched, NotModified):
                result = IngestResult(product, store.date_month(held.last_month), "unchanged",
                                      f"not modified (HTTP 304) since vintage {held.seq}", url, held.sha256)
            elif held is not None and held.sha256 == fetched.sha256:
                return _unchanged_file(engine, product, held, fetched, run_id)
            else:
                table = complete_index(parse_index(_text(fetched), fmt, url), base=base)
                file = VintageFile(url, fetched.sha256, fmt, fetched.fetched_at, fetched.validators)
                return _store_index(engine, product, table, file, accept_shrink, run_id)
        except NotPublished as exc:
            result = IngestResult(product, None, "not_published", str(exc), url)
        except DownloadFailed as exc:
            result = IngestResult(product, None, "failed", str(exc), url)
        except InvalidFile as exc:
            result = IngestResult(product, None, "rejected", str(exc), url)
    _log(engine, result, run_id)
    return result


def _text(fetched: Downloaded) -> str:
    """The file as UTF-8 text, or InvalidFile naming it."""
    data = fetched.path.read_bytes()
    try:
        return data.decode("utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise InvalidFile(fetched.url, None, f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}):"
                                             " not an index table; check the URL and format") from None


def _unchanged_file(engine: Engine, product: str, held, fetched: Downloaded,  # type: ignore[no-untyped-def]
                    run_id: str | None) -> IngestResult:
    result = IngestResult(product, store.date_month(held.last_month), "unchanged",
                          f"the file is vintage {held.seq} ({fetched.sha256[:12]})", fetched.url, fetched.sha256)
    try:
        with engine.begin() as conn:
            if fetched.validators and fetched.validators != Validators(held.etag, held.last_modified):
                store.update_vintage_validators(conn, held.id, fetched.validators)
            store.log_ingest(conn, **result.log_entry(run_id))  # type: ignore[arg-type]
    except OperationalError as exc:
        raise _store_unavailable(engine, f"index file {fetched.url}", exc) from exc
    return result


def _store_index(engine: Engine, product: str, table: pd.DataFrame, file: VintageFile, accept_shrink: bool,
                 run_id: str | None) -> IngestResult:
    """Append ``table`` as the next vintage of ``product`` if it passes :func:`enso.vintages.check_vintage`.

    The vintage's base period is the table's own (``attrs["anomaly_base"]``: the
    years a file states or its anomalies were computed against, ``sliding 30-year``
    for CPC's ONI/ClimAdjust and McNoldy's tables), ``unstated`` when unknown.
    """
    try:
        return _append_vintage(engine, product, table, file, accept_shrink, run_id)
    except IntegrityError:
        # Another ingest appended the same successor meanwhile: compare against it now.
        return _append_vintage(engine, product, table, file, accept_shrink, run_id)


def _append_vintage(engine: Engine, product: str, table: pd.DataFrame, file: VintageFile, accept_shrink: bool,
                    run_id: str | None) -> IngestResult:
    last = Month.of(table.index[-1].year, table.index[-1].month)
    base_period = str(table.attrs.get("anomaly_base") or "unstated")
    url, sha, fmt = file.url, file.sha256, file.format
    try:
        with engine.begin() as conn:
            current = store.current_vintage(conn, product)
            if current is not None and current.sha256 == sha:
                result = IngestResult(product, last, "unchanged", f"stored concurrently as vintage {current.seq}",
                                      url, sha)
            else:
                previous = store.load_index(conn, product, vintage_id=current.id) if current is not None else None
                try:
                    change = check_vintage(previous, table, file=url, accept_shrink=accept_shrink)
                except VintageRefused as exc:
                    result = IngestResult(product, last, "rejected", str(exc), url, sha)
                else:
                    seq = current.seq + 1 if current is not None else 1
                    store.append_vintage(conn, product, table, file, seq=seq, base_period=base_period,
                                         changes=change.summary(),
                                         acceptance="accept-shrink" if change.accepted_problems else "checked")
                    outcome = "stored" if current is None else ("revised" if change.any else "unchanged")
                    message = (f"vintage {seq}: {len(table)} months {table.index[0]}..{table.index[-1]} ({fmt}, "
                               f"{base_period} base); " + change.summary())
                    result = IngestResult(product, last, outcome, message, url, sha)
            store.log_ingest(conn, **result.log_entry(run_id))  # type: ignore[arg-type]
    except OperationalError as exc:
        raise _store_unavailable(engine, f"index {product} from {url}", exc) from exc
    return result


# --- The relative index -----------------------------------------------------------------------

def ingest_relative(engine: Engine, settings: Settings, *, accept_shrink: bool = False,
                    run_id: str | None = None) -> list[IngestResult]:
    """The relative Niño 3.4 index, wherever the traditional index is ingested: CPC's monthly file as the
    product ``relative`` (unless ENSO_RELATIVE_INDEX_URL is empty), then, where that file does not reach,
    the relative index computed from the stored grids (:func:`compute_relative_index`).

    Returns the outcome of each (none for a computation that is not needed).
    """
    results = []
    if settings.relative_index_url:
        results.append(ingest_index(engine, settings, product=RELATIVE_PRODUCT, accept_shrink=accept_shrink,
                                    run_id=run_id))
    computed = compute_relative_index(engine, settings, accept_shrink=accept_shrink, run_id=run_id)
    if computed is not None:
        results.append(computed)
    return results


def compute_relative_index(engine: Engine, settings: Settings, *, accept_shrink: bool = False,
                           run_id: str | None = None) -> IngestResult | None:
    """The relative index of the stored grids of ENSO_SST_SOURCE, stored as a vintage of ``relative-grids``.

    Needed, and so computed, when the store's grids begin before the stored
    relative file's first month (hindcasts before 1950) or there is no such file
    (ENSO_RELATIVE_INDEX_URL empty, or not ingested yet); returns None when not
    needed. :func:`enso.relative.relative_index_from_grids` with the ENSO_ANOMALY_BASE
    base and the scale period 1950-2020, which the grids must cover without a gap:
    otherwise the outcome is ``rejected`` saying what to backfill (or None when
    ENSO_PHASE_INDEX=oni, as nothing then depends on it). The vintage's checksum is
    that of its inputs (each grid's file checksum, the periods), so an unchanged store
    is ``unchanged`` without reading a grid; its URL names the grids it came from.
    """
    source = settings.sst_source
    base = (settings.anomaly_base_start, settings.anomaly_base_end)
    scale = DEFAULT_SCALE_PERIOD
    try:
        with engine.connect() as conn:
            checksums = store.grid_checksums(conn, source)
            versions = sorted(store.product_versions(conn, source))
            held_file = store.current_vintage(conn, RELATIVE_PRODUCT) if settings.relative_index_url else None
            held = store.current_vintage(conn, GRIDS_RELATIVE_PRODUCT)
    except OperationalError as exc:
        raise _store_unavailable(engine, f"index {GRIDS_RELATIVE_PRODUCT}", exc) from exc
    if not checksums:
        return None
    months = [m for m, _ in checksums]
    if held_file is not None and months[0] >= store.date_month(held_file.first_month):
        return None  # CPC's file reaches back as far as the grids
    url = (f"computed from the store's {source} grids ({', '.join(versions)}) {months[0]}..{months[-1]}: "
           f"base {base[0]}-{base[1]}, scaled over {scale[0]}-{scale[1]} (enso.relative)")
    problem = _relative_inputs_problem(source, months, base, scale)
    if problem:
        if settings.phase_index != "roni":
            return None
        result = IngestResult(GRIDS_RELATIVE_PRODUCT, None, "rejected", problem, url)
        _log(engine, result, run_id)
        return result
    digest = hashlib.sha256("\n".join([f"{source} {','.join(versions)} base {base} scale {scale}",
                                        *(f"{m} {sha}" for m, sha in checksums)]).encode()).hexdigest()
    if held is not None and held.sha256 == digest:
        result = IngestResult(GRIDS_RELATIVE_PRODUCT, store.date_month(held.last_month), "unchanged",
                              f"the grids are those of vintage {held.seq}", url, digest)
        _log(engine, result, run_id)
        return result
    relative = relative_index_from_grids(store.iter_grids(engine, source, months[0], months[-1]), base, scale)
    file = VintageFile(url, digest, GRIDS_RELATIVE_FORMAT, utcnow())
    return _store_index(engine, GRIDS_RELATIVE_PRODUCT, relative.index_table(), file, accept_shrink, run_id)


def _relative_inputs_problem(source: str, months: list[Month], base: tuple[int, int],
                             scale: tuple[int, int]) -> str | None:
    """Why the relative index cannot be computed from these stored months of ``source`` (gaps, periods not
    covered), with what to run; None when it can."""
    holes = store.gaps(months)
    if holes:
        first, last = holes[0]
        return (f"the store's {source} grids have {len(holes)} gap(s), first {first}..{last}: the relative index "
                f"would have holes. Run `enso backfill --source {source} --start {first} --end {holes[-1][1]}`")
    first = Month.of(min(base[0], scale[0]), 1)
    last = Month.of(max(base[1], scale[1]), 12)
    if months[0] > first or months[-1] < last:
        return (f"the store's {source} grids ({months[0]}..{months[-1]}) do not cover the base {base[0]}-{base[1]} "
                f"and the scale period {scale[0]}-{scale[1]} that the relative index needs. Run `enso backfill "
                f"--source {source} --start {min(first, months[0])} --end {max(last, months[-1])}`, or set "
                "ENSO_RELATIVE_INDEX_URL to CPC's file, or ENSO_PHASE_INDEX=oni")
    return None


# --- Newest month, backfills --------------------------------------------------------------------

def ingest_newest(engine: Engine, settings: Settings, source: str, *, lookback: int = 3,
                  run_id: str | None = None) -> list[IngestResult]:
    """Ingest the newest published month: the last complete month, else up to ``lookback`` before it.

    Returns every attempt in order; the last one is the newest month now in the store (or
    the oldest 'not published' when none of them is out yet).
    """
    results = []
    newest = last_complete_month()
    for back in range(lookback + 1):
        result = ingest_sst_month(engine, settings, source, newest - back, run_id=run_id)  # type: ignore[arg-type]
        results.append(result)
        if result.outcome != "not_published":
            break
    return results


@dataclass
class BackfillSummary:
    """Outcomes of a backfill, per outcome class, with the months that need attention."""

    source: str
    start: Month
    end: Month
    results: list[IngestResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def counts(self) -> Counter:
        return Counter(r.outcome for r in self.results)

    @property
    def months_per_second(self) -> float:
        return len(self.results) / self.seconds if self.seconds > 0 else float("nan")

    @property
    def complete(self) -> bool:
        return all(r.ok for r in self.results)

    def report(self) -> str:
        """A human summary: counts per outcome, then the months that were not stored and why."""
        lines = [f"backfill {self.source} {self.start}..{self.end}: {len(self.results)} months in "
                 f"{self.seconds:.1f} s ({self.months_per_second:.0f} months/s)"]
        for outcome in ("stored", "revised", "unchanged", "not_published", "rejected", "failed"):
            n = self.counts.get(outcome, 0)
            if n:
                lines.append(f"  {outcome:<14}{n:>6}")
        for r in sorted((r for r in self.results if not r.ok), key=lambda r: r.month)[:20]:
            lines.append(f"  ! {r}")
        if not self.complete:
            lines.append("  Some months were not stored: fix the cause and rerun the same command (it resumes).")
        return "\n".join(lines)


def backfill(engine: Engine, settings: Settings, source: str, start: Month | str, end: Month | str, *,
             workers: int = 4, progress: bool = True, run_id: str | None = None) -> BackfillSummary:
    """Ingest every month of start..end with ``workers`` concurrent downloads; idempotent and resumable."""
    start, end = Month.parse(start), Month.parse(end)
    if end < start:
        raise ValueError(f"backfill end {end} is before start {start}")
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    check_product_version(engine, settings, source)  # refused before any download
    months = month_range(start, end)
    summary = BackfillSummary(source, start, end)
    t0 = time.perf_counter()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(months), unit="month", desc=f"backfill {source}", dynamic_ncols=True)

    def advance(result: IngestResult) -> None:
        if bar is not None:
            bar.update(1)
            bar.set_postfix_str(f"{result.month} {result.outcome}", refresh=False)

    try:
        summary.results = ingest_sst_months(engine, settings, source, months, workers=workers, run_id=run_id,
                                            on_result=advance)
    finally:
        if bar is not None:
            bar.close()
    summary.results.sort(key=lambda r: r.month)
    summary.seconds = time.perf_counter() - t0
    return summary
