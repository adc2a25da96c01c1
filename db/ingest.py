"""Bringing months from the providers into the store: one month, the index file, backfills.

Each SST month is one transaction: download (retries, temp file, ``os.replace``) ->
checksum -> unchanged? log and stop -> decode and validate -> insert or revise ->
log. A month that fails never reaches the store; its outcome is logged. Reruns are
idempotent, so a killed backfill is resumed by running it again.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import requests
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from db import store
from db.engine import StoreUnavailable, redacted
from enso.config import Settings
from enso.months import Month, last_complete_month, month_range
from enso.sources import DownloadFailed, InvalidFile, NotPublished, SourceError
from enso.sources.http import Downloaded, download
from enso.sources.index import complete_index, discover_mcnoldy_url, parse_index
from enso.sources.sst import sst_source

_local = threading.local()


def _session() -> requests.Session:
    """One HTTP session per thread (connection reuse without sharing across threads)."""
    if not hasattr(_local, "session"):
        _local.session = requests.Session()
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


def _store_unavailable(engine: Engine, what: str, exc: OperationalError) -> StoreUnavailable:
    return StoreUnavailable(
        f"{what}: cannot write to the store at {redacted(str(engine.url))}: {exc.orig}. Nothing was stored; "
        "check that the database is running and ENSO_DATABASE_URL, then rerun (reruns are safe)."
    )


def _fetch(url: str, settings: Settings, month: Month | None, folder: Path) -> Downloaded:
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / url.rsplit("/", 1)[-1]
    return download(url, dest, timeout=settings.http_timeout, retries=settings.http_retries,
                    backoff=settings.http_backoff, month=month, session=_session())


def ingest_sst_month(engine: Engine, settings: Settings, source: str, month: Month | str, *,
                     run_id: str | None = None) -> IngestResult:
    """Ingest one month of an SST source; returns its outcome (also written to the ingest log).

    Raises :class:`StoreUnavailable` only when the database itself cannot be reached
    (then there is nowhere to log); every other failure is an outcome.
    """
    month = Month.parse(month)
    spec = sst_source(source)
    url = spec.url(month, settings)
    version = spec.product_version(settings)
    result: IngestResult
    mixed = _version_mismatch(engine, source, version, f"{source} {month}")
    if mixed:
        result = IngestResult(source, month, "rejected", mixed, url)
        _log(engine, result, run_id)
        return result
    with tempfile.TemporaryDirectory(prefix=f"{source}-{month}-", dir=_download_root(settings)) as tmp:
        try:
            fetched = _fetch(url, settings, month, Path(tmp))
        except NotPublished as exc:
            result = IngestResult(source, month, "not_published", exc.problem, url)
        except DownloadFailed as exc:
            result = IngestResult(source, month, "failed", str(exc), url)
        else:
            def decode(path: Path, month: Month):  # type: ignore[no-untyped-def]
                return spec.decode(path, month, settings)

            result = _store_month(engine, decode, source, month, fetched, run_id, version)
            return result
    _log(engine, result, run_id)
    return result


class ProductVersionMismatch(ValueError):
    """The store holds grids of another product version of this source: versions are never mixed."""


def _version_mismatch(engine: Engine, source: str, version: str, what: str) -> str | None:
    """Why grids of ``version`` must not join the store (it holds another version of ``source``), or None."""
    try:
        with engine.connect() as conn:
            others = store.product_versions(conn, source, besides=version)
    except OperationalError as exc:
        raise _store_unavailable(engine, what, exc) from exc
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
    problem = _version_mismatch(engine, source, version, f"{source} ({version})")
    if problem:
        raise ProductVersionMismatch(problem)


def _download_root(settings: Settings) -> Path:
    settings.download_dir.mkdir(parents=True, exist_ok=True)
    return settings.download_dir


def _log(engine: Engine, result: IngestResult, run_id: str | None) -> None:
    try:
        with engine.begin() as conn:
            store.log_ingest(conn, source=result.source, month=result.month, outcome=result.outcome,
                             message=result.message, url=result.url, sha256=result.sha256, run_id=run_id)
    except OperationalError as exc:
        raise _store_unavailable(engine, f"{result.source} {result.month}", exc) from exc


def _store_month(engine: Engine, decode: Callable, source: str, month: Month, fetched: Downloaded,
                 run_id: str | None, product_version: str) -> IngestResult:
    url, sha = fetched.url, fetched.sha256
    try:
        with engine.begin() as conn:
            version = store.grid_version(conn, source, month)
            if version is not None and version.sha256 == sha:
                result = IngestResult(source, month, "unchanged", f"revision {version.revision}", url, sha)
            else:
                try:
                    grid = decode(fetched.path, month)
                except InvalidFile as exc:
                    result = IngestResult(source, month, "rejected", str(exc), url, sha)
                else:
                    result = _write_grid(conn, source, grid, version, fetched, product_version)
            store.log_ingest(conn, source=source, month=month, outcome=result.outcome, message=result.message,
                             url=url, sha256=sha, run_id=run_id)
    except OperationalError as exc:
        raise _store_unavailable(engine, f"{source} {month}", exc) from exc
    return result


def _write_grid(conn, source: str, grid, version, fetched: Downloaded,  # type: ignore[no-untyped-def]
                product_version: str) -> IngestResult:
    kw = dict(source_url=fetched.url, sha256=fetched.sha256, file_size=fetched.size)
    month = grid.month
    if version is None:
        if store.insert_grid(conn, source, grid, product_version=product_version, **kw):
            return IngestResult(source, month, "stored", "", fetched.url, fetched.sha256)
        version = store.grid_version(conn, source, month)  # stored meanwhile by a concurrent ingest
        if version is not None and version.sha256 == fetched.sha256:
            return IngestResult(source, month, "unchanged", "stored concurrently by another run",
                                fetched.url, fetched.sha256)
    assert version is not None
    if store.revise_grid(conn, source, grid, previous_sha256=version.sha256, **kw):
        return IngestResult(source, month, "revised",
                            f"upstream file changed: sha256 {version.sha256[:12]} -> {fetched.sha256[:12]}, "
                            f"now revision {version.revision + 1}", fetched.url, fetched.sha256)
    return IngestResult(source, month, "unchanged", "revised concurrently by another run",
                        fetched.url, fetched.sha256)


# --- The index file ---------------------------------------------------------------------------

def index_url(settings: Settings) -> str:
    """The configured index URL; for McNoldy's table a folder URL triggers discovery of the newest file."""
    url = settings.index_url
    if settings.index_format == "mcnoldy" and not url.endswith(".txt"):
        return discover_mcnoldy_url(url, _session(), Month.current().year, settings.http_timeout)
    return url


def ingest_index(engine: Engine, settings: Settings, *, run_id: str | None = None,
                 base: tuple[int, int] | None = None) -> IngestResult:
    """Download the whole index file, parse, complete (anomaly/ONI/phase) and store it as one vintage.

    Anomalies the file lacks are computed against ``base`` (default: ENSO_ANOMALY_BASE_START/_END).
    """
    base = base or (settings.anomaly_base_start, settings.anomaly_base_end)
    fmt = settings.index_format
    try:
        url = index_url(settings)
    except SourceError as exc:
        result = IngestResult(fmt, None, "failed" if not isinstance(exc, InvalidFile) else "rejected", str(exc),
                              settings.index_url)
        _log(engine, result, run_id)
        return result
    with tempfile.TemporaryDirectory(prefix="index-", dir=_download_root(settings)) as tmp:
        try:
            fetched = _fetch(url, settings, None, Path(tmp))
            text = fetched.path.read_bytes().decode("utf-8", errors="strict")
            table = complete_index(parse_index(text, fmt, url), base=base)
        except NotPublished as exc:
            result = IngestResult(fmt, None, "not_published", str(exc), url)
        except DownloadFailed as exc:
            result = IngestResult(fmt, None, "failed", str(exc), url)
        except (InvalidFile, UnicodeDecodeError) as exc:
            result = IngestResult(fmt, None, "rejected", str(exc), url)
        else:
            try:
                return _store_index(engine, settings, table, fetched, run_id)
            except IntegrityError:
                # Another ingest stored a vintage meanwhile: compare against it now.
                return _store_index(engine, settings, table, fetched, run_id)
    _log(engine, result, run_id)
    return result


def _store_index(engine: Engine, settings: Settings, table, fetched: Downloaded, run_id: str | None
                 ) -> IngestResult:  # type: ignore[no-untyped-def]
    fmt = settings.index_format
    last = Month.of(table.index[-1].year, table.index[-1].month)
    base_period = f"{settings.anomaly_base_start}-{settings.anomaly_base_end}"
    try:
        with engine.begin() as conn:
            current = store.current_vintage(conn)
            if current is not None and current.sha256 == fetched.sha256:
                result = IngestResult(fmt, last, "unchanged", f"vintage {fetched.sha256[:12]} already stored",
                                      fetched.url, fetched.sha256)
            else:
                change = store.replace_index(conn, table, source=fmt, url=fetched.url, sha256=fetched.sha256,
                                             downloaded_at=fetched.fetched_at, base_period=base_period)
                outcome = "stored" if current is None else ("revised" if change.any else "unchanged")
                message = (f"{len(table)} months {table.index[0]}..{table.index[-1]}; "
                           f"{len(change.added)} new, {len(change.revised)} revised, {len(change.removed)} removed")
                if change.revised:
                    message += f" (revised: {', '.join(str(m) for m in change.revised[:12])}"
                    message += " ...)" if len(change.revised) > 12 else ")"
                result = IngestResult(fmt, last, outcome, message, fetched.url, fetched.sha256)
            store.log_ingest(conn, source=fmt, month=last, outcome=result.outcome, message=result.message,
                             url=fetched.url, sha256=fetched.sha256, run_id=run_id)
    except OperationalError as exc:
        raise _store_unavailable(engine, f"index file {fetched.url}", exc) from exc
    return result


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

    def months_with(self, outcome: str) -> list[Month]:
        return sorted(r.month for r in self.results if r.outcome == outcome and r.month is not None)

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
    check_product_version(engine, settings, source)
    months = month_range(start, end)
    summary = BackfillSummary(source, start, end)
    t0 = time.perf_counter()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(months), unit="month", desc=f"backfill {source}", dynamic_ncols=True)
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="backfill") as pool:
        futures = {pool.submit(ingest_sst_month, engine, settings, source, m, run_id=run_id): m for m in months}
        try:
            for fut in as_completed(futures):
                result = fut.result()
                summary.results.append(result)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix_str(f"{result.month} {result.outcome}", refresh=False)
        except BaseException:
            for f in futures:
                f.cancel()
            raise
        finally:
            if bar is not None:
                bar.close()
    summary.results.sort(key=lambda r: r.month)
    summary.seconds = time.perf_counter() - t0
    return summary
