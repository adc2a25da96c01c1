"""The ``enso`` command line: parses arguments, then calls the library.

Quick commands (``db``, ``status``, ``ingest``, ``backfill``) call the library
directly, so they start in a second; the same functions run as Prefect flows in
``flows/`` for scheduled and remote runs.

Exit codes: 0 success; 1 a month or file was rejected or failed; 2 bad usage or
configuration, or the store unreachable; 75 (EX_TEMPFAIL) nothing new is published
yet — try again later.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from db.migrate import open_store
from enso.config import Settings, load_settings
from enso.months import Month

EX_TEMPFAIL = 75


def cmd_db(args: argparse.Namespace, settings: Settings) -> int:
    from db.engine import redacted
    from db.migrate import current_revision, head_revision, upgrade

    url = settings.resolved_database_url()
    if args.action == "upgrade":
        rev = upgrade(url)
        print(f"store {redacted(url)} is at schema revision {rev} (head)")
    else:
        rev = current_revision(open_store(settings, check=False))
        print(f"store {redacted(url)}: revision {rev or 'none'}; head is {head_revision()}")
    return 0


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from db.ingest import ingest_index, ingest_newest, ingest_sst_month

    engine = open_store(settings)
    source = args.source or settings.sst_source
    if args.month:
        results = [ingest_sst_month(engine, settings, source, Month.parse(args.month))]
    else:
        results = ingest_newest(engine, settings, source)
    if not args.no_index:
        results.append(ingest_index(engine, settings))
    for r in results:
        print(r)
    if any(r.outcome in ("rejected", "failed") for r in results):
        return 1
    newest = [r for r in results if r.month is not None and r.source == source]
    if newest and all(r.outcome == "not_published" for r in newest):
        print(f"no new {source} month is published yet; try again later", file=sys.stderr)
        return EX_TEMPFAIL
    return 0


def cmd_backfill(args: argparse.Namespace, settings: Settings) -> int:
    from db.ingest import backfill, ingest_index

    engine = open_store(settings)
    summary = backfill(engine, settings, args.source or settings.sst_source, Month.parse(args.start),
                       Month.parse(args.end), workers=args.workers, progress=not args.quiet)
    print(summary.report())
    if not args.no_index:
        print(ingest_index(engine, settings))
    return 0 if summary.complete else 1


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from db.engine import redacted
    from db.status import store_status

    engine = open_store(settings)
    print(f"store: {redacted(settings.resolved_database_url())}")
    print(store_status(engine, recent=args.recent).render())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="enso", description="ENSO forecasting system (settings: ENSO_* env vars)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("db", help="create or migrate the store's schema")
    p.add_argument("action", choices=["upgrade", "current"])
    p.set_defaults(func=cmd_db)

    p = sub.add_parser("ingest", help="ingest the newest SST month (or --month) and the whole index file")
    p.add_argument("--month", help="YYYY-MM; default: the newest published month")
    p.add_argument("--source", choices=["cobe", "ersst"], help="SST source (default ENSO_SST_SOURCE, cobe)")
    p.add_argument("--no-index", action="store_true", help="skip the Niño 3.4 index file")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("backfill", help="ingest every month of a range (resumable, idempotent)")
    p.add_argument("--start", required=True, help="YYYY-MM")
    p.add_argument("--end", required=True, help="YYYY-MM")
    p.add_argument("--source", choices=["cobe", "ersst"])
    p.add_argument("--workers", type=int, default=4, help="concurrent downloads (default 4)")
    p.add_argument("--no-index", action="store_true", help="skip the Niño 3.4 index file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_backfill)

    p = sub.add_parser("status", help="what the store holds, gaps, newest months, last ingest outcomes")
    p.add_argument("--recent", type=int, default=10, help="how many recent ingest attempts to show")
    p.set_defaults(func=cmd_status)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from db.engine import StoreUnavailable
    from enso.sources import SourceError

    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        func: Callable[[argparse.Namespace, Settings], int] = args.func
        return func(args, settings)
    except (StoreUnavailable, SourceError, LookupError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume (completed months are kept)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
