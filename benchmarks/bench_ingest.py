"""Ingest throughput: backfill 1891-01..2020-12 (1,560 months) from a loopback mirror into PostgreSQL.

The mirror is served by a separate process (as the provider's server is remote).
Prints months/s end to end, the in-process decode-only rate on the same files, their
ratio, and the rate of the same backfill again with nothing changed (conditional GETs:
the mirror answers 304 Not Modified to the stored files' ETags). Targets on the 2-core
machine, in one run: >= 100 months/s end to end, within 3x of decode-only, >= 300
months/s for the unchanged rerun. Results are also written to benchmarks/results/ingest.json.

    make bench-ingest            # or: python -m benchmarks.bench_ingest --workers 4
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

from db.engine import make_engine
from db.ingest import backfill
from db.migrate import upgrade
from enso.config import Settings
from enso.mirror import write_mirror
from enso.months import Month, month_range
from enso.sources.cobe import cobe_url, decode_cobe
from tests.pgcluster import session_database

RESULTS = Path(__file__).resolve().parent / "results"


@contextlib.contextmanager
def mirror_process(root: Path) -> Iterator[dict[str, str]]:
    """Serve the mirror from its own process (as a remote server would be), yielding its ENSO_* settings."""
    proc = subprocess.Popen([sys.executable, "-m", "enso.mirror", "serve", str(root)], stdout=subprocess.PIPE,
                            text=True)
    try:
        settings: dict[str, str] = {}
        assert proc.stdout is not None
        while len(settings) < 3:
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError("the mirror server exited before it was ready")
            if line.strip().startswith("ENSO_"):
                key, value = line.strip().split("=", 1)
                settings[key] = value
        yield settings
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--start", default="1891-01")
    parser.add_argument("--end", default="2020-12")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--mirror", type=Path, default=Path("var/bench/mirror"),
                        help="where the synthetic mirror is written (reused when present)")
    args = parser.parse_args()
    start, end = Month.parse(args.start), Month.parse(args.end)
    months = month_range(start, end)

    t0 = time.perf_counter()
    write_mirror(args.mirror, start, end, seed=0, progress=True)
    print(f"mirror ready in {time.perf_counter() - t0:.1f} s: {args.mirror}")

    paths = [args.mirror / "cobe" / cobe_url(m, "").lstrip("/") for m in months]
    t0 = time.perf_counter()
    for m, p in zip(months, paths):
        decode_cobe(p, m)
    decode_rate = len(months) / (time.perf_counter() - t0)

    with session_database() as url, mirror_process(args.mirror) as mirror, tempfile.TemporaryDirectory() as tmp:
        upgrade(url)
        engine = make_engine(url)
        settings = Settings(database_url=url, cobe_base_url=mirror["ENSO_COBE_BASE_URL"],
                            index_url=mirror["ENSO_INDEX_URL"], index_format="cpc-monthly", data_dir=Path(tmp),
                            http_timeout=30)
        first = backfill(engine, settings, "cobe", start, end, workers=args.workers)
        rerun = backfill(engine, settings, "cobe", start, end, workers=args.workers)
        engine.dispose()

    figures = {
        "months": len(months),
        "workers": args.workers,
        "end_to_end_months_per_s": round(first.months_per_second, 1),
        "decode_only_months_per_s": round(decode_rate, 1),
        "decode_over_end_to_end": round(decode_rate / first.months_per_second, 2),
        "unchanged_rerun_months_per_s": round(rerun.months_per_second, 1),
        "first_outcomes": dict(first.counts),
        "rerun_outcomes": dict(rerun.counts),
        "rerun_answered_304": sum("HTTP 304" in r.message for r in rerun.results),
        "machine": f"{platform.machine()} cpus={os.cpu_count()}",
    }
    print(first.report())
    print(rerun.report())
    print(json.dumps(figures, indent=2))
    targets = [
        ("end to end >= 100 months/s", figures["end_to_end_months_per_s"] >= 100),
        ("within 3x of decode-only", figures["decode_over_end_to_end"] <= 3),
        ("unchanged rerun >= 300 months/s", figures["unchanged_rerun_months_per_s"] >= 300),
    ]
    for name, ok in targets:
        print(f"  {'MET ' if ok else 'MISS'} {name}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ingest.json").write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
