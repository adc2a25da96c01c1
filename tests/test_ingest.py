"""Ingest from a real HTTP mirror on loopback into SQLite and PostgreSQL: outcomes, faults, bad files."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from db import store
from db.engine import StoreUnavailable, make_engine
from db.ingest import backfill, ingest_index, ingest_sst_month
from db.schema import IngestLog, SstGrid
from enso.config import Settings
from enso.grids import SSTGrid
from enso.mirror import MirrorServer, write_mirror
from enso.months import Month
from enso.sources.cobe import cobe_url, write_cobe_grib
from enso.sources.index import CPC_DETREND_HEADER
from enso.synthetic import synthetic_grids

START, END = Month.of(2019, 10), Month.of(2020, 3)
NEWEST = END


@pytest.fixture(scope="module")
def mirror_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mirror")
    write_mirror(root, Month.of(1991, 1), END, seed=7)
    return root


@pytest.fixture
def mirror(mirror_root: Path):
    with MirrorServer(mirror_root) as srv:
        yield srv


@pytest.fixture
def settings(store_url: str, mirror, tmp_path: Path) -> Settings:
    return Settings(database_url=store_url, cobe_base_url=mirror.cobe_base_url, index_url=mirror.index_url,
                    index_format="cpc-monthly", http_timeout=1.0, http_retries=2, http_backoff=0.01,
                    data_dir=tmp_path / "var")


def _data_snapshot(engine) -> dict:
    """Everything but the ingest log, which records every attempt by design."""
    with engine.connect() as conn:
        grids = conn.execute(select(SstGrid.source, SstGrid.month, SstGrid.sha256, SstGrid.revision,
                                    SstGrid.updated_at).order_by(SstGrid.month)).all()
    index = store.load_index(engine)
    return {"grids": [tuple(r) for r in grids], "index": index.to_json()}


def _last_log(engine) -> IngestLog:
    with engine.connect() as conn:
        return conn.execute(select(IngestLog).order_by(IngestLog.id.desc()).limit(1)).first()


def _replace_file(mirror_root: Path, month: Month, grid: SSTGrid, **overrides) -> Path:
    path = mirror_root / "cobe" / cobe_url(month, "").lstrip("/")
    write_cobe_grib(grid, path, **overrides)
    return path


def _grid(month: Month) -> SSTGrid:
    return next(synthetic_grids(month, month, seed=7))


def test_backfill_stores_every_month_and_a_rerun_writes_nothing(engine, settings) -> None:
    summary = backfill(engine, settings, "cobe", START, END, workers=3, progress=False)
    assert summary.counts == {"stored": 6}
    assert store.stored_months(engine, "cobe") == [START + i for i in range(6)]
    before = _data_snapshot(engine)
    again = backfill(engine, settings, "cobe", START, END, workers=3, progress=False)
    assert again.counts == {"unchanged": 6}
    assert _data_snapshot(engine) == before
    cube = store.load_cube(engine, "cobe", START, END)
    stored = cube.sel(month=str(START)).values
    expected = _grid(START)
    assert np.nanmax(np.abs(stored - expected.values[(expected.lat > -55) & (expected.lat < 60)])) < 0.01


def test_index_ingest_stores_one_vintage_then_unchanged(engine, settings) -> None:
    first = ingest_index(engine, settings)
    assert first.outcome == "stored", first
    table = store.load_index(engine)
    assert str(table.index[-1]) == str(END)
    assert table["phase"].iloc[-1] is None  # newest month: no ONI yet, provisional
    assert table["phase"].iloc[-2] in ("la_nina", "neutral", "el_nino")
    assert ingest_index(engine, settings).outcome == "unchanged"


def test_each_vintage_records_the_base_period_its_file_states(engine, scratch_mirror) -> None:
    """Not the settings' base: CPC names the base in ``ersst5.nino.mth.91-20.ascii``; its detrend file (and the
    ONI) is against sliding 30-year climatologies."""
    root, settings = scratch_mirror
    first = ingest_index(engine, settings)
    assert first.outcome == "stored" and "(cpc-monthly, 1991-2020 base)" in first.message
    table = store.load_index(engine)
    rows = [f"{p.year:4d}{p.month:5d}{r.nino34:9.2f}{r.nino34 - r.anomaly:9.2f}{r.anomaly + 0.1:9.2f}"
            for p, r in table.iterrows()]
    (root / "index" / "detrend.nino34.ascii.txt").write_text("\n".join([CPC_DETREND_HEADER, *rows]) + "\n")
    detrend = settings.model_copy(update={"index_url": settings.index_url.rsplit("/", 1)[0]
                                          + "/detrend.nino34.ascii.txt", "index_format": "cpc-detrend"})
    second = ingest_index(engine, detrend)
    assert second.outcome == "revised" and "(cpc-detrend, sliding 30-year base)" in second.message
    with engine.connect() as conn:
        assert [(v.seq, v.base_period) for v in reversed(store.vintages(conn))] == [(1, "1991-2020"),
                                                                                   (2, "sliding 30-year")]


def test_404_for_the_newest_month_is_not_published(engine, settings) -> None:
    result = ingest_sst_month(engine, settings, "cobe", NEWEST + 1)
    assert result.outcome == "not_published"
    assert str(NEWEST + 1) in str(result)
    assert _last_log(engine).outcome == "not_published"
    assert store.stored_months(engine, "cobe") == []


@pytest.mark.faults
def test_500_then_success_is_stored(engine, settings, mirror) -> None:
    mirror.faults.add(f"*/sst{START.year}{START.month:02d}.grb", "status:500", times=1)
    assert ingest_sst_month(engine, settings, "cobe", START).outcome == "stored"


@pytest.mark.faults
def test_timeout_fails_clearly_and_stores_nothing(engine, settings, mirror) -> None:
    mirror.faults.add("*/sst201910.grb", "delay:3", times=10)
    before = _data_snapshot(engine)
    result = ingest_sst_month(engine, settings, "cobe", START)
    assert result.outcome == "failed"
    assert "2019-10" in result.message and "tim" in result.message.lower()
    assert _data_snapshot(engine) == before


@pytest.mark.faults
def test_body_cut_short_is_retried_then_fails_clearly(engine, settings, mirror) -> None:
    mirror.faults.add("*/sst201910.grb", "truncate:1000", times=10)
    result = ingest_sst_month(engine, settings, "cobe", START)
    assert result.outcome == "failed" and "2019-10" in result.message
    assert store.stored_months(engine, "cobe") == []
    mirror.faults.clear()
    mirror.faults.add("*/sst201910.grb", "truncate:1000", times=1)
    assert ingest_sst_month(engine, settings, "cobe", START).outcome == "stored"


@pytest.mark.faults
def test_a_file_that_is_not_grib_is_rejected(engine, settings, mirror) -> None:
    mirror.faults.add("*/sst201910.grb", "body:<html>Service moved</html>", times=1)
    result = ingest_sst_month(engine, settings, "cobe", START)
    assert result.outcome == "rejected"
    assert "sst201910.grb" in result.message and "2019-10" in result.message
    assert store.stored_months(engine, "cobe") == []


@pytest.fixture
def scratch_mirror(tmp_path: Path, settings: Settings):
    """A private mirror a test may corrupt (the module mirror stays pristine)."""
    root = tmp_path / "scratch"
    write_mirror(root, START, END, seed=7)
    with MirrorServer(root) as srv:
        yield root, settings.model_copy(update={"cobe_base_url": srv.cobe_base_url, "index_url": srv.index_url})


@pytest.mark.faults
def test_a_grib_in_kelvin_is_rejected(engine, scratch_mirror) -> None:
    root, settings = scratch_mirror
    g = _grid(START)
    _replace_file(root, START, SSTGrid(g.month, g.lat, g.lon, (g.values + 273.15).astype(np.float32)))
    result = ingest_sst_month(engine, settings, "cobe", START)
    assert result.outcome == "rejected" and "kelvin" in result.message.lower() and "2019-10" in result.message
    assert store.stored_months(engine, "cobe") == []


@pytest.mark.faults
def test_a_wrong_grid_is_rejected(engine, scratch_mirror) -> None:
    root, settings = scratch_mirror
    coarse = next(synthetic_grids(START, START, seed=7, resolution_deg=2.0))
    _replace_file(root, START, coarse)
    result = ingest_sst_month(engine, settings, "cobe", START)
    assert result.outcome == "rejected" and "2019-10" in result.message and "grid" in result.message.lower()


@pytest.mark.faults
def test_a_file_for_another_month_is_rejected(engine, scratch_mirror) -> None:
    root, settings = scratch_mirror
    _replace_file(root, START, _grid(START + 1))
    result = ingest_sst_month(engine, settings, "cobe", START)
    assert result.outcome == "rejected"
    assert "2019-10" in result.message and "2019-11" in result.message


def test_a_changed_upstream_file_is_stored_as_a_revision(engine, scratch_mirror) -> None:
    root, settings = scratch_mirror
    assert ingest_sst_month(engine, settings, "cobe", START).outcome == "stored"
    g = _grid(START)
    _replace_file(root, START, SSTGrid(g.month, g.lat, g.lon, (g.values + 0.1).astype(np.float32)))
    result = ingest_sst_month(engine, settings, "cobe", START)
    assert result.outcome == "revised"
    with engine.connect() as conn:
        rows = conn.execute(select(SstGrid.revision).where(SstGrid.source == "cobe")).scalars().all()
    assert rows == [2]


@pytest.mark.faults
def test_an_index_file_with_a_changed_header_is_rejected(engine, scratch_mirror) -> None:
    root, settings = scratch_mirror
    assert ingest_index(engine, settings).outcome == "stored"
    before = _data_snapshot(engine)
    path = root / "index" / "ersst5.nino.mth.91-20.ascii"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(lines[0].replace("NINO3.4", "NINO3.4R") + "".join(lines[1:]))
    result = ingest_index(engine, settings)
    assert result.outcome == "rejected" and "header" in result.message.lower()
    assert _data_snapshot(engine) == before


@pytest.mark.faults
def test_postgres_unreachable_is_a_clear_error(settings) -> None:
    engine = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/enso")
    with pytest.raises(StoreUnavailable, match="2019-10.*cannot write to the store"):
        ingest_sst_month(engine, settings, "cobe", START)


@pytest.mark.faults
def test_two_ingests_of_the_same_month_at_once_store_it_once(engine, settings) -> None:
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def run() -> None:
        barrier.wait()
        outcomes.append(ingest_sst_month(engine, settings, "cobe", START).outcome)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) in (["stored", "unchanged"],)
    with engine.connect() as conn:
        assert conn.execute(select(SstGrid.id).where(SstGrid.source == "cobe")).all().__len__() == 1
