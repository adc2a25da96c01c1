"""Where the tests look for real NOAA data (../shared first, then the cache), and `make realdata`'s download.

The download itself needs the internet and cannot run here; what it fetches is checked against the copies
in ../shared (its checksums, its URLs' commits), and its steps (fetch with checksum, stacking) run on
loopback files.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pytest

from enso.grids import SSTGrid
from enso.mirror import MirrorServer
from enso.months import Month
from enso.sources.ersst import read_ersst_stack, write_ersst_netcdf
from enso.synthetic import synthetic_climate
from tests import realdata
from tests.realdata import fetch, locate, missing_reason, stack_ersst


def test_shared_first_then_the_cache(tmp_path: Path) -> None:
    shared, cache = tmp_path / "shared", tmp_path / "cache"
    assert locate("realdata", (shared, cache)) == cache / "realdata"  # neither: the cache (to be filled)
    (cache / "realdata").mkdir(parents=True)
    assert locate("realdata", (shared, cache)) == cache / "realdata"
    (shared / "realdata").mkdir(parents=True)
    assert locate("realdata", (shared, cache)) == shared / "realdata"
    assert locate("realgrids", (shared, cache)) == cache / "realgrids"  # each folder on its own


def test_a_missing_file_names_make_realdata(tmp_path: Path) -> None:
    present = tmp_path / "here.txt"
    present.write_text("x")
    assert missing_reason((present,)) is None
    reason = missing_reason((present, tmp_path / "gone.txt"), cache=tmp_path / "cache")
    assert reason is not None and "gone.txt" in reason and "`make realdata`" in reason
    assert str(tmp_path / "cache") in reason


def test_the_module_points_at_shared_when_it_is_there() -> None:
    if (realdata.SHARED / "realdata").is_dir():
        assert realdata.REALDATA == realdata.SHARED / "realdata"
    else:
        assert realdata.REALDATA == realdata.CACHE / "realdata"


def test_fetch_keeps_a_file_only_with_the_right_checksum(tmp_path: Path) -> None:
    served = tmp_path / "served"
    served.mkdir()
    (served / "oni.ascii.txt").write_text(" SEAS  YR   TOTAL   ANOM\n  DJF 1950  24.72  -1.53\n")
    right = hashlib.sha256((served / "oni.ascii.txt").read_bytes()).hexdigest()
    with MirrorServer(served) as srv:
        url = f"{srv.url}/oni.ascii.txt"
        with pytest.raises(RuntimeError, match="is not the expected 0000"):
            fetch(url, tmp_path / "cache" / "oni.txt", "0" * 64)
        assert not (tmp_path / "cache" / "oni.txt").exists() and not list((tmp_path / "cache").glob("*"))
        dest = fetch(url, tmp_path / "cache" / "oni.txt", right)
        assert dest.read_bytes() == (served / "oni.ascii.txt").read_bytes()
        asked = len(srv.requests)
        fetch(url, dest, right)  # already there: not downloaded again
        assert len(srv.requests) == asked
        with pytest.raises(Exception, match="404"):
            fetch(f"{srv.url}/nothing.txt", tmp_path / "cache" / "nothing.txt")


def test_stacking_keeps_every_month_to_half_a_millidegree(tmp_path: Path) -> None:
    climate = synthetic_climate(5, 2.0)
    paths = []
    for month in (Month.of(2007, 12), Month.of(2008, 1), Month.of(2008, 2)):  # both of NCEI's time encodings
        path = tmp_path / f"ersst.v5.{month.year:04d}{month.month:02d}.nc"
        write_ersst_netcdf(climate.grid(month), path)
        paths.append(path)
    stack_ersst(paths, tmp_path / "stack.nc")
    stacked: list[SSTGrid] = list(read_ersst_stack(tmp_path / "stack.nc"))
    assert [g.month for g in stacked] == [Month.of(2007, 12), Month.of(2008, 1), Month.of(2008, 2)]
    for grid in stacked:
        original = climate.grid(grid.month).values
        assert np.array_equal(np.isnan(grid.values), np.isnan(original))
        assert np.nanmax(np.abs(grid.values - original)) <= 0.00051  # int16 steps of 0.001, float32 unpacking


def shared(relative: str) -> Path:
    """A path in ../shared itself (not the cache): these tests check the download list against it."""
    path = realdata.SHARED / relative
    if not path.exists():
        pytest.skip(f"compares `make realdata`'s list with {realdata.SHARED}, which is not here (CI has it)")
    return path


@pytest.mark.parametrize("relative, url, sha256", realdata.INDEX_FILES, ids=[f[0] for f in realdata.INDEX_FILES])
def test_the_download_list_is_what_shared_holds(relative: str, url: str, sha256: str) -> None:
    copy = shared(relative)
    assert hashlib.sha256(copy.read_bytes()).hexdigest() == sha256
    sources = (realdata.SHARED / "realdata" / "SOURCES.md").read_text()
    commit = url.split("/")[5]
    assert len(commit) == 40 and commit in sources and Path(relative).name in sources


def test_the_ersst_originals_digest_is_that_of_shareds_manifest() -> None:
    manifest = shared(f"realgrids/{realdata.ERSST_DIR}/MANIFEST_ersstv5_originals_1854-01_2010-12.csv")
    with open(manifest, newline="") as stream:
        rows = sorted(csv.DictReader(stream), key=lambda row: row["file"])
    lines = "".join(f"{row['file']} {row['sha256']}\n" for row in rows)
    assert hashlib.sha256(lines.encode()).hexdigest() == realdata.ERSST_ORIGINALS_DIGEST
    assert len(rows) == 12 * (realdata.ERSST_YEARS[1] - realdata.ERSST_YEARS[0] + 1)
    assert all(row["repo_path"] == f"ersstv5/{row['file']}" for row in rows)
    assert realdata.ERSST_ORIGINAL_URL.format(year=1854, month=1).endswith("/ersstv5/ersst.v5.185401.nc")
    samples = {f"ersst.v5.{y:04d}{m:02d}.nc" for y, m in realdata.ERSST_SAMPLE_MONTHS}
    assert samples == {p.name for p in shared(f"realgrids/{realdata.ERSST_DIR}/originals_sample").iterdir()}
