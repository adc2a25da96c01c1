"""Product versions: every grid records its version, a store never mixes two versions of one source, and
switching (ERSSTv5 -> v6) is a re-backfill: `enso db drop-grids`, then `enso backfill` under the new version."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from db import store
from db.engine import opened_engine
from db.ingest import ProductVersionMismatch, backfill, ingest_sst_month, ingest_sst_months
from db.migrate import upgrade
from db.schema import SstGrid
from enso.config import Settings
from enso.mirror import MirrorServer, write_mirror
from enso.months import Month, month_range
from flows.cli import main

START, END = Month.of(2019, 1), Month.of(2019, 4)
V5_TEMPLATE = "ersst.v5.{year:04d}{month:02d}.nc"


@pytest.fixture(scope="module")
def mirror_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """NCEI's folder as in 2026: the same months as v5 and as v6 files (the synthetic fields stand in for both)."""
    root = tmp_path_factory.mktemp("ersst-versions")
    write_mirror(root, START, END, seed=6, sst_sources=("ersst", "cobe"), index=False)
    write_mirror(root, START, END, seed=6, sst_sources=("ersst",), index=False, ersst_template=V5_TEMPLATE)
    return root


@pytest.fixture
def mirror(mirror_root: Path):
    with MirrorServer(mirror_root) as srv:
        yield srv


def settings_for(store_url: str, srv: MirrorServer, tmp_path: Path, version: str) -> Settings:
    return Settings(database_url=store_url, ersst_base_url=srv.ersst_base_url, cobe_base_url=srv.cobe_base_url,
                    ersst_version=version, data_dir=tmp_path / "var", http_retries=0, http_timeout=5)


def test_each_grid_records_its_product_version(engine, store_url, mirror, tmp_path) -> None:
    settings = settings_for(store_url, mirror, tmp_path, "v6")
    assert backfill(engine, settings, "ersst", START, END, progress=False).complete
    assert backfill(engine, settings, "cobe", START, END, progress=False).complete
    with engine.connect() as conn:
        assert store.product_versions(conn, "ersst") == {"ersst v6": (START, END, 4)}
        assert store.product_versions(conn, "cobe") == {"cobe-sst v1": (START, END, 4)}
        assert store.product_versions(conn, "ersst", besides="ersst v6") == {}
    assert {p.rsplit("/", 1)[-1][:9] for p in mirror.requests if p.startswith("/ersst/")} == {"ersst.v6."}


def test_another_version_is_refused_until_the_source_is_re_backfilled(engine, store_url, mirror, tmp_path,
                                                                      monkeypatch) -> None:
    v5, v6 = (settings_for(store_url, mirror, tmp_path, v) for v in ("v5", "v6"))
    assert backfill(engine, v5, "ersst", START, END, progress=False).complete
    mirror.clear_log()

    result = ingest_sst_month(engine, v6, "ersst", END + 0)
    assert result.outcome == "rejected" and "'ersst v5' (2019-01..2019-04)" in result.message
    assert "enso db drop-grids --source ersst --yes" in result.message and "enso backfill" in result.message
    assert mirror.requests == []  # refused before downloading anything
    with pytest.raises(ProductVersionMismatch, match="never mixed"):
        backfill(engine, v6, "ersst", START, END, progress=False)
    with engine.connect() as conn:
        assert store.product_versions(conn, "ersst") == {"ersst v5": (START, END, 4)}

    monkeypatch.setenv("ENSO_DATABASE_URL", store_url)
    monkeypatch.setenv("ENSO_DATA_DIR", str(tmp_path / "var"))
    assert main(["db", "drop-grids", "--source", "ersst"]) == 2  # says what would go, deletes nothing
    with engine.connect() as conn:
        assert store.product_versions(conn, "ersst") == {"ersst v5": (START, END, 4)}
    assert main(["db", "drop-grids", "--source", "ersst", "--yes"]) == 0
    assert main(["db", "drop-grids", "--source", "ersst", "--yes"]) == 0  # nothing left: still fine
    assert backfill(engine, v6, "ersst", START, END, progress=False).complete
    with engine.connect() as conn:
        assert store.product_versions(conn, "ersst") == {"ersst v6": (START, END, 4)}
    assert main(["db", "upgrade", "--source", "ersst"]) == 2  # --source belongs to drop-grids


def test_a_concurrent_ingest_under_another_version_cannot_mix_them(engine, store_url, mirror, tmp_path) -> None:
    """The check before downloading passed for both, but the writer checks again in its transaction."""
    v5, v6 = (settings_for(store_url, mirror, tmp_path, v) for v in ("v5", "v6"))
    mirror.faults.add("*/ersst.v6.*", "delay:2", times=None)
    outcome: dict[str, list] = {}
    thread = threading.Thread(target=lambda: outcome.update(
        v6=ingest_sst_months(engine, v6, "ersst", month_range(START, END), workers=2)))
    thread.start()
    deadline = time.monotonic() + 10
    while not any("ersst.v6." in p for p in mirror.requests) and time.monotonic() < deadline:
        time.sleep(0.01)  # the v6 ingest passed its check and is downloading
    assert backfill(engine, v5, "ersst", START, END, progress=False).complete
    thread.join(30)
    assert [r.outcome for r in outcome["v6"]] == ["rejected"] * 4
    assert all("'ersst v5' (2019-01..2019-04)" in r.message for r in outcome["v6"])
    with engine.connect() as conn:
        assert store.product_versions(conn, "ersst") == {"ersst v5": (START, END, 4)}


def test_migration_labels_existing_grids_with_the_versions_fetched_until_now(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    upgrade(url, "0004")
    columns = ("source, month, nlat, nlon, lat, lon, values_zstd, land_mask_zstd, land_fraction, nino34, "
               "source_url, sha256, file_size, revision, first_stored_at, updated_at")
    values = ("'{source}', '{month}', 1, 1, x'', x'', x'', x'', 0.0, 27.0, 'u', 'a', 1, 1, "
              "'2020-01-01 00:00:00', '2020-01-01 00:00:00'")
    with opened_engine(url) as engine:
        with engine.begin() as conn:
            for source in ("cobe", "ersst"):
                conn.execute(text(f"INSERT INTO sst_grid ({columns}) VALUES "
                                  + "(" + values.format(source=source, month="2020-01-01") + ")"))
        upgrade(url)
        with engine.connect() as conn:
            versions = dict(conn.execute(select(SstGrid.source, SstGrid.product_version)).all())
        assert versions == {"cobe": "cobe-sst v1", "ersst": "ersst v5"}
        with pytest.raises(IntegrityError, match="NOT NULL"):
            with engine.begin() as conn:
                conn.execute(text(f"INSERT INTO sst_grid ({columns}) VALUES "
                                  + "(" + values.format(source="cobe", month="2020-02-01") + ")"))
