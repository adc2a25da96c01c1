"""The `enso` command as a user runs it: db upgrade, backfill killed and resumed, ingest, status."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from db.engine import opened_engine
from db.schema import SstGrid
from enso.mirror import MirrorServer, write_mirror
from enso.months import Month, last_complete_month

START, END = Month.of(2015, 1), Month.of(2016, 12)


@pytest.fixture(scope="module")
def mirror_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli-mirror")
    write_mirror(root, Month.of(1991, 1), END, seed=3, relative_index=True)
    return root


def _env(store_url: str, srv: MirrorServer, tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "ENSO_DATABASE_URL": store_url, "ENSO_COBE_BASE_URL": srv.cobe_base_url,
            "ENSO_INDEX_URL": srv.index_url, "ENSO_INDEX_FORMAT": "cpc-monthly",
            "ENSO_RELATIVE_INDEX_URL": srv.relative_index_url, "ENSO_DATA_DIR": str(tmp_path / "var"), "ENSO_HTTP_RETRIES": "1",
            "ENSO_HTTP_BACKOFF": "0.01", "ENSO_HTTP_TIMEOUT": "5", "PYTHONUNBUFFERED": "1"}


def _enso(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "flows.cli", *args], env=env, capture_output=True, text=True,
                          timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"enso {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def _grid_rows(url: str) -> tuple[int, int]:
    with opened_engine(url) as engine, engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(SstGrid)).scalar_one()
        distinct = conn.execute(select(func.count(func.distinct(SstGrid.month)))).scalar_one()
    return n, distinct


@pytest.mark.faults
def test_backfill_killed_midway_then_rerun_completes_without_duplicates(store_url, mirror_root, tmp_path) -> None:
    with MirrorServer(mirror_root) as srv:
        env = _env(store_url, srv, tmp_path)
        _enso(env, "db", "upgrade")
        srv.faults.add("*.grb", "delay:0.15", times=10_000)  # slow mirror, so the kill lands mid-way
        proc = subprocess.Popen([sys.executable, "-m", "flows.cli", "backfill", "--start", str(START), "--end",
                                 str(END), "--workers", "2", "--no-index"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while _grid_rows(store_url)[0] < 4 and time.monotonic() < deadline:
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        partial, _ = _grid_rows(store_url)
        assert 4 <= partial < 24, "the kill should land mid-way"
        srv.faults.clear()
        rerun = _enso(env, "backfill", "--start", str(START), "--end", str(END), "--workers", "2", "--quiet")
        n, distinct = _grid_rows(store_url)
        assert n == distinct == 24
        assert "stored" in rerun.stdout and "unchanged" in rerun.stdout
        assert "100%" in rerun.stderr or "months/s" in rerun.stdout
        status = _enso(env, "status").stdout
        assert "24 months" in status and "2015-01..2016-12" in status and "no gaps" in status
        assert "2016-12" in status  # the index file's last month


def test_ingest_exits_75_while_a_month_is_merely_late_and_1_once_it_is_stale(store_url, mirror_root,
                                                                               tmp_path) -> None:
    with MirrorServer(mirror_root) as srv:
        env = {**_env(store_url, srv, tmp_path), "ENSO_COBE_PUBLICATION_DAY": "28"}
        _enso(env, "db", "upgrade")
        # The last complete month is due on the 28th of this one: until then merely late (try again later).
        newest, today = last_complete_month(), dt.datetime.now(dt.timezone.utc)
        proc = _enso(env, "ingest", "--month", str(newest), "--no-index", check=False)
        assert proc.returncode == (75 if today.day <= 28 else 1), proc.stderr
        assert "not_published" in proc.stdout and str(newest) in proc.stdout
        not_over = _enso(env, "ingest", "--month", str(Month.current()), "--no-index", check=False)
        assert not_over.returncode == 2 and "has not ended yet" in not_over.stderr  # a usage error
        stale = _enso(env, "ingest", "--month", str(END + 1), "--no-index", check=False)
        assert stale.returncode == 1, stale.stderr  # due years ago: waiting will not help
        assert f"STALE: {END + 1} of cobe is not published at {srv.cobe_base_url}/2010-2019/sst201701.grb" \
            in stale.stderr and "ENSO_COBE_BASE_URL" in stale.stderr
        newest = _enso(env, "ingest", check=False)  # the mirror stopped at 2016-12: grids and index are stale
        assert newest.returncode == 1, newest.stderr
        assert "STALE   cobe SST grids: nothing held" in newest.stderr  # the last four months: none published
        assert "STALE   Niño 3.4 index: newest 2016-12" in newest.stderr and srv.index_url in newest.stderr
        status = _enso(env, "status").stdout
        assert "Inputs (stale-input alarm):" in status and "STALE   cobe SST grids" in status


def test_a_store_without_schema_says_to_upgrade(tmp_path, mirror_root) -> None:
    with MirrorServer(mirror_root) as srv:
        env = _env(f"sqlite:///{tmp_path / 'fresh.sqlite'}", srv, tmp_path)
        proc = _enso(env, "status", check=False)
        assert proc.returncode == 2 and "enso db upgrade" in proc.stderr


def test_train_with_no_flags_uses_the_settings_and_the_rolling_windows(copy_store, tmp_path) -> None:
    """`enso train` as the monthly run trains (ENSO_MODEL_PRESET, ENSO_VALID_YEARS); it says what it used, and
    `enso models list` shows the promotion margins."""
    env = {**os.environ, "ENSO_DATABASE_URL": copy_store["url"], "ENSO_DATA_DIR": str(tmp_path / "var"),
           "ENSO_MODEL_PRESET": "tiny", "ENSO_MODEL_MEMBERS": "1", "ENSO_VALID_YEARS": "8", "PYTHONUNBUFFERED": "1"}
    trained = _enso(env, "train", "--quiet")
    assert "registered model tiny-" in trained.stdout
    # the store ends 2020-06: selection on the newest 8 years, training on everything before
    assert "selection: 2012-07..2020-05" in trained.stdout and "targets up to 2020-06" in trained.stdout
    assert "samples" in trained.stdout and "refitted on all" in trained.stdout
    assert "margins (rival's mean RMSE - this model's" in trained.stdout and "linear_eof" in trained.stdout
    listed = _enso(env, "models", "list").stdout
    assert "margins champion=" in listed and "damped_persistence=" in listed
    half = _enso(env, "train", "--train-end", "2005-12", check=False)
    assert half.returncode != 0 and "give both --train-end and --valid-end" in half.stderr
