"""The fault suite, hostile inputs and a flaky network: index files that would lose months, downloads
that never end or explode, a GRIB that is not one, bad settings and arguments.

Everything runs for real: the loopback mirror (enso.mirror) serving the files and the faults,
PostgreSQL, the `enso` command in a subprocess. Each attack ends in seconds with a clear message
naming the file (and the month); the store is unchanged. The README's fault table lists these tests.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Callable, Iterator

import pytest
from sqlalchemy import Engine, func, select

from db import store
from db.ingest import ingest_index, ingest_sst_month
from db.schema import IndexVintage, IngestLog, SstGrid
from db.status import store_status
from enso.config import Settings
from enso.mirror import INDEX_FILE, MirrorServer, write_mirror
from enso.months import Month

pytestmark = pytest.mark.faults
POSTGRES = pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
REPO = Path(__file__).resolve().parent.parent

INDEX_START, GRID_START, END = Month.of(2000, 1), Month.of(2020, 1), Month.of(2020, 6)
N_MONTHS = END.months_since(INDEX_START) + 1
MONTH = Month.of(2020, 3)


@pytest.fixture(scope="module")
def mirror_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("faults-mirror")
    write_mirror(root, INDEX_START, END, seed=4, sst_sources=())
    write_mirror(root, GRID_START, END, seed=4, index=False)
    return root


@pytest.fixture
def mirror(mirror_template: Path, tmp_path: Path) -> Iterator[MirrorServer]:
    root = tmp_path / "mirror"
    shutil.copytree(mirror_template, root)
    with MirrorServer(root) as srv:
        yield srv


@pytest.fixture
def settings(store_url: str, mirror: MirrorServer, tmp_path: Path) -> Settings:
    return Settings(database_url=store_url, cobe_base_url=mirror.cobe_base_url, index_url=mirror.index_url,
                    index_format="cpc-monthly", http_timeout=5.0, http_retries=1, http_backoff=0.01,
                    http_deadline=8.0, data_dir=tmp_path / "var")


def _snapshot(engine: Engine) -> dict:
    """What the store holds, but for the ingest log (which records every attempt by design)."""
    with engine.connect() as conn:
        vintages = conn.execute(select(IndexVintage.id, IndexVintage.seq, IndexVintage.sha256)
                                .order_by(IndexVintage.id)).all()
        grids = conn.execute(select(SstGrid.month, SstGrid.sha256, SstGrid.revision).order_by(SstGrid.month)).all()
    return {"vintages": [tuple(v) for v in vintages], "index": store.load_index(engine).to_json(),
            "grids": [tuple(g) for g in grids]}


def _last_log(engine: Engine) -> IngestLog:
    with engine.connect() as conn:
        return conn.execute(select(IngestLog).order_by(IngestLog.id.desc()).limit(1)).first()


def _edit_index(srv: MirrorServer, edit: Callable[[list[str]], list[str]]) -> None:
    path = srv.root / INDEX_FILE
    path.write_text("\n".join(edit(path.read_text().splitlines())) + "\n")


def _row(month: Month) -> str:
    return f"{month.year:4d}{month.month:4d}"


def _stored_index(engine: Engine, settings: Settings) -> dict:
    first = ingest_index(engine, settings)
    assert first.outcome == "stored", first
    return _snapshot(engine)


# ----------------------------------------------------------------------------- index vintages


@POSTGRES
def test_an_index_file_missing_ten_months_inside_is_refused(engine: Engine, settings: Settings,
                                                            mirror: MirrorServer) -> None:
    before = _stored_index(engine, settings)
    gone = [_row(Month.of(2010, m)) for m in range(1, 11)]
    _edit_index(mirror, lambda lines: [line for line in lines if not line.startswith(tuple(gone))])
    result = ingest_index(engine, settings)
    assert result.outcome == "rejected"
    assert result.message.startswith(mirror.index_url)
    assert "10 month(s) missing inside it: 2010-01..2010-10" in result.message
    assert "lacks 10 month(s) the stored vintage has: 2010-01..2010-10" in result.message
    assert "--accept-shrink" in result.message
    assert _snapshot(engine) == before
    assert _last_log(engine).outcome == "rejected"


@POSTGRES
def test_an_index_file_cut_after_twelve_rows_is_refused(engine: Engine, settings: Settings,
                                                        mirror: MirrorServer) -> None:
    before = _stored_index(engine, settings)
    _edit_index(mirror, lambda lines: lines[:13])
    result = ingest_index(engine, settings)
    assert result.outcome == "rejected"
    # the stored vintage's newest 3 months may be withdrawn by the provider; the rest may not
    assert f"lacks {N_MONTHS - 12 - 3} month(s) the stored vintage has: 2001-01..2020-03" in result.message
    assert _snapshot(engine) == before


@POSTGRES
def test_a_non_finite_value_is_refused_naming_the_line_and_month(engine: Engine, settings: Settings,
                                                                 mirror: MirrorServer) -> None:
    before = _stored_index(engine, settings)
    _edit_index(mirror, lambda lines: lines[:-1] + [lines[-1].rsplit(None, 2)[0] + "     nan     inf"])
    result = ingest_index(engine, settings)
    assert result.outcome == "rejected"
    assert f"{mirror.index_url}: 2020-06: line {N_MONTHS + 1}: non-finite value 'nan'" in result.message
    assert _snapshot(engine) == before


@POSTGRES
def test_a_header_only_index_is_refused_and_logged(engine: Engine, settings: Settings, mirror: MirrorServer) -> None:
    before = _stored_index(engine, settings)
    _edit_index(mirror, lambda lines: lines[:1])
    result = ingest_index(engine, settings)
    assert result.outcome == "rejected" and "holds no data row" in result.message
    assert _last_log(engine).outcome == "rejected" and "holds no data row" in _last_log(engine).message
    assert _snapshot(engine) == before


@POSTGRES
def test_an_index_that_is_not_utf8_is_refused_naming_the_file(engine: Engine, settings: Settings,
                                                              mirror: MirrorServer) -> None:
    before = _stored_index(engine, settings)
    (mirror.root / INDEX_FILE).write_bytes(b" YR   MON\n2020  1 \xff\xfe\x00 broken\n")
    result = ingest_index(engine, settings)
    assert result.outcome == "rejected"
    assert result.message.startswith(f"{mirror.index_url}: not UTF-8 text (byte 0xff at offset 18)")
    assert _snapshot(engine) == before


@POSTGRES
def test_a_huge_bad_line_is_quoted_in_at_most_200_characters(engine: Engine, settings: Settings,
                                                             mirror: MirrorServer) -> None:
    before = _stored_index(engine, settings)
    _edit_index(mirror, lambda lines: lines[:5] + ["2000   5 " + "x" * 1_000_000] + lines[6:])
    result = ingest_index(engine, settings)
    assert result.outcome == "rejected" and "line 6" in result.message
    assert len(result.message) < 500 and "characters)" in result.message
    assert _snapshot(engine) == before


@POSTGRES
def test_revised_and_withdrawn_newest_months_are_taken_and_reported(engine: Engine, settings: Settings,
                                                                    mirror: MirrorServer) -> None:
    _stored_index(engine, settings)
    first = store.load_index(engine)

    def revise(lines: list[str]) -> list[str]:
        out = [line for line in lines if not line.startswith((_row(Month.of(2020, 5)), _row(Month.of(2020, 6))))]
        at = next(i for i, line in enumerate(out) if line.startswith(_row(Month.of(2015, 5))))
        fields = out[at].split()
        out[at] = out[at].rsplit(None, 1)[0] + f"{float(fields[-1]) + 0.05:8.2f}"
        return out

    _edit_index(mirror, revise)
    result = ingest_index(engine, settings)
    assert result.outcome == "revised", result
    assert "vintage 2" in result.message and "2 removed (2020-05..2020-06)" in result.message
    assert re.search(r"4 revised \(.*2015-05 anomaly [+-]\d\.\d\d -> [+-]\d\.\d\d", result.message)
    now = store.load_index(engine)
    assert str(now.index[-1]) == "2020-04" and now.attrs["vintage_seq"] == 2
    kept = store.load_index(engine, vintage_id=first.attrs["vintage_id"])  # the first vintage is kept whole
    assert kept.to_json() == first.to_json()
    status = store_status(engine).render()
    assert "vintage 2" in status and "2015-05 anomaly" in status


@POSTGRES
def test_accept_shrink_takes_a_cut_file_and_says_so(engine: Engine, settings: Settings, mirror: MirrorServer) -> None:
    _stored_index(engine, settings)
    _edit_index(mirror, lambda lines: lines[:13])
    assert ingest_index(engine, settings).outcome == "rejected"
    result = ingest_index(engine, settings, accept_shrink=True)
    assert result.outcome == "revised" and "accepted with --accept-shrink" in result.message
    assert len(store.load_index(engine)) == 12
    with engine.connect() as conn:
        assert store.current_vintage(conn).acceptance == "accept-shrink"
    assert "[accepted with --accept-shrink]" in store_status(engine).render()


@POSTGRES
def test_an_unchanged_rerun_is_a_304_without_a_body(engine: Engine, settings: Settings, mirror: MirrorServer) -> None:
    _stored_index(engine, settings)
    assert ingest_sst_month(engine, settings, "cobe", MONTH).outcome == "stored"
    mirror.clear_log()
    index, grid = ingest_index(engine, settings), ingest_sst_month(engine, settings, "cobe", MONTH)
    assert index.outcome == grid.outcome == "unchanged"
    assert "not modified (HTTP 304)" in index.message and "not modified (HTTP 304)" in grid.message
    assert sorted(r.status for r in mirror.request_log) == [304, 304]


@POSTGRES
def test_two_ingests_of_a_new_index_file_at_once_store_one_vintage(engine: Engine, settings: Settings) -> None:
    import threading

    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def run() -> None:
        barrier.wait()
        outcomes.append(ingest_index(engine, settings).outcome)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["stored", "unchanged"]
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(IndexVintage)).scalar_one() == 1


# ----------------------------------------------------------------------------- bounded downloads


def _timed(call: Callable[[], object]) -> tuple[object, float]:
    t0 = time.perf_counter()
    result = call()
    return result, time.perf_counter() - t0


@POSTGRES
def test_a_512_mib_gzip_bomb_served_as_grib_stops_at_the_limit(engine: Engine, settings: Settings,
                                                              mirror: MirrorServer) -> None:
    before = _snapshot(engine)
    mirror.faults.add("*/sst202003.grb", f"bomb:{512 * 2**20}", times=None)
    result, seconds = _timed(lambda: ingest_sst_month(engine, settings, "cobe", MONTH))
    assert result.outcome == "rejected" and seconds < 10
    assert result.message.startswith(f"{mirror.cobe_base_url}/2020-2029/sst202003.grb: 2020-03: ")
    assert f"over the limit of {settings.max_bytes('cobe'):,} bytes" in result.message
    assert "ENSO_HTTP_MAX_BYTES" in result.message
    assert _snapshot(engine) == before
    assert list(settings.download_dir.iterdir()) == [], "nothing left on disk"


@POSTGRES
def test_a_256_mib_gzip_bomb_served_as_the_index_stays_small_in_memory(engine: Engine, settings: Settings,
                                                                      mirror: MirrorServer) -> None:
    before = _stored_index(engine, settings)
    mirror.faults.add("/" + INDEX_FILE, f"bomb:{256 * 2**20}", times=None)
    tracemalloc.start()
    try:
        result, seconds = _timed(lambda: ingest_index(engine, settings))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.outcome == "rejected" and seconds < 10
    assert peak < 64 * 2**20, f"peak {peak / 2**20:.0f} MiB"
    assert "over the limit" in result.message and len(result.message) < 500
    assert "database" not in result.message
    assert _snapshot(engine) == before


@POSTGRES
def test_300_mb_of_junk_is_refused_at_once(engine: Engine, settings: Settings, mirror: MirrorServer) -> None:
    mirror.faults.add("*/sst202003.grb", "junk:300000000", times=None)
    result, seconds = _timed(lambda: ingest_sst_month(engine, settings, "cobe", MONTH))
    assert result.outcome == "rejected" and seconds < 5
    assert "announces 300,000,000 bytes, over the limit" in result.message
    assert _snapshot(engine)["grids"] == []


@POSTGRES
def test_a_server_trickling_a_byte_every_3_s_ends_at_the_deadline(engine: Engine, settings: Settings,
                                                                 mirror: MirrorServer) -> None:
    trickling = settings.model_copy(update={"http_timeout": 10.0, "http_deadline": 6.0, "http_retries": 4})
    mirror.faults.add("*/sst202003.grb", "trickle:3", times=None)
    result, seconds = _timed(lambda: ingest_sst_month(engine, trickling, "cobe", MONTH))
    assert result.outcome == "failed" and seconds < 6.0 + 2.0, seconds
    assert "within the 6 s deadline (ENSO_HTTP_DEADLINE)" in result.message
    assert "2020-03" in result.message and _snapshot(engine)["grids"] == []


@POSTGRES
def test_a_grib_rejection_names_the_url_not_the_temporary_file(engine: Engine, settings: Settings,
                                                              mirror: MirrorServer) -> None:
    mirror.faults.add("*/sst202003.grb", "body:GRIB this is no grib at all 7777", times=None)
    result = ingest_sst_month(engine, settings, "cobe", MONTH)
    assert result.outcome == "rejected"
    assert result.message.startswith(f"{mirror.cobe_base_url}/2020-2029/sst202003.grb: 2020-03: not a readable GRIB")
    assert str(settings.download_dir) not in result.message and ".part" not in result.message


# ----------------------------------------------------------------------------- settings and arguments


def _enso(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=120)


BAD_SETTINGS = {
    "ENSO_DATABASE_URL": "postgresql+foo://db/enso",
    "ENSO_HTTP_TIMEOUT": "0",
    "ENSO_HTTP_RETRIES": "-3",
    "ENSO_REPORT_TO": "not an address",
    "ENSO_MODEL_PRESET": "huge",
    "ENSO_SMTP_PORT": "smtp",
    "ENSO_INDEX_URL": "not a url",
}


def test_every_bad_setting_is_listed_in_one_message_exit_2(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENSO_")}
    proc = _enso({**env, **BAD_SETTINGS}, "status")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    for variable in BAD_SETTINGS:
        assert re.search(rf"^  {variable}\b", proc.stderr, re.MULTILINE), f"{variable} not named:\n{proc.stderr}"
    assert "unknown model preset 'huge'; choose one of keydana2021" in proc.stderr
    for url, problem in (("not a url", "not a database URL"), ("mysql://host/enso", "driver 'mysql'"),
                         ("postgresql://enso:pw@db:port/enso", "the port is not a number")):
        proc = _enso({**env, "ENSO_DATABASE_URL": url}, "status")
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert re.search(rf"ENSO_DATABASE_URL='[^']*': .*{problem}", proc.stderr) and ":pw@" not in proc.stderr


def test_a_flow_run_with_bad_settings_exits_2_without_a_traceback() -> None:
    """A Prefect worker loads the flow file by path (as `prefect.engine` does): it stops there, clearly."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ENSO_")}, "ENSO_HTTP_TIMEOUT": "-1"}
    loader = ("from prefect.utilities.importtools import load_script_as_module; "
              "load_script_as_module('flows/ingest.py')")
    proc = subprocess.run([sys.executable, "-c", loader], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "ENSO_HTTP_TIMEOUT='-1': Input should be greater than 0" in proc.stderr
    assert "Traceback" not in proc.stderr


@POSTGRES
def test_usage_errors_exit_2_with_a_message(store_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "ENSO_DATABASE_URL": store_url, "ENSO_DATA_DIR": str(tmp_path / "var")}
    proc = _enso(env, "ingest", "--month", "9999-12")
    assert proc.returncode == 2 and "--month 9999-12 has not ended yet" in proc.stderr
    assert "try again later" not in proc.stderr
    proc = _enso(env, "backfill", "--start", "2020-01", "--end", "2020-02", "--workers", "0")
    assert proc.returncode == 2 and "at least 1 worker is needed" in proc.stderr
    assert "Traceback" not in proc.stderr
