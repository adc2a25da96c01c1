"""Where the tests find real NOAA data, and `make realdata`, which fetches it.

Real files are read at run time, never copied into the repository. Each data
folder (``realdata/``, ``realgrids/``) is taken from ``../shared`` beside the
repository when it is there (CI always has it), else from the cache that
``make realdata`` fills: ``ENSO_REALDATA_CACHE``, default ``.realdata/`` in the
repository. Tests that need a missing file skip (:func:`requires`), saying to
run ``make realdata`` (:func:`requires` marks a test, :func:`need` skips from inside a test or fixture).

``python -m tests.realdata [--cache DIR]`` (what ``make realdata`` runs)
downloads the very files ``../shared`` holds from where they were published
(public GitHub repositories at fixed commits, see ``../shared/*/SOURCES.md``),
checks each against its sha256 and moves it in place only then; the ERSSTv5
record is the 1884 NCEI monthly originals, checked as a whole and stacked into
the one file the tests read. Rerunning skips what is already there.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
CACHE = Path(os.environ.get("ENSO_REALDATA_CACHE") or REPO / ".realdata")
DATA_FOLDERS = ("realdata", "realgrids")


def locate(folder: str, roots: tuple[Path, ...] = (SHARED, CACHE)) -> Path:
    """``folder`` in the first root that has it (``../shared`` first, then the cache); else in the last root."""
    for root in roots:
        if (root / folder).is_dir():
            return root / folder
    return roots[-1] / folder


REALDATA = locate("realdata")
REALGRIDS = locate("realgrids")
ERSST_DIR = "ersstv5_ncei_monthly"
ERSST_STACK = REALGRIDS / ERSST_DIR / "ersstv5_sst_monthly_1854-01_2010-12_2deg_global.nc"
ERSST_ORIGINALS = REALGRIDS / ERSST_DIR / "originals_sample"


def missing_reason(paths: tuple[Path, ...], cache: Path = CACHE) -> str | None:
    """Why a test cannot run (a file it reads is absent), or None when every file is there."""
    missing = [p for p in paths if not p.exists()]
    if not missing:
        return None
    return (f"real NOAA data {missing[0].name} is in neither ../shared nor the cache {cache}: "
            "run `make realdata` to download it (needs internet)")


def requires(*paths: Path):  # type: ignore[no-untyped-def]
    """A pytest mark that skips the test, naming `make realdata`, unless every path exists."""
    import pytest

    reason = missing_reason(paths)
    return pytest.mark.skipif(reason is not None, reason=reason or "")


def need(path: Path, *more: Path) -> Path:
    """``path``, after skipping the running test (or fixture), naming `make realdata`, if a path is missing."""
    import pytest

    reason = missing_reason((path, *more))
    if reason is not None:
        pytest.skip(reason)
    return path


# ----------------------------------------------------------------------------- make realdata

_RAW = "https://raw.githubusercontent.com"
#: (path below the data root, URL of the published copy, sha256): the files of ../shared/realdata.
INDEX_FILES: tuple[tuple[str, str, str], ...] = (
    ("realdata/mcnoldy_ONI_NINO34_1854-2020.txt",
     f"{_RAW}/skeydan/enso/0bab491df7b679b14382f660b814409e61ea2259/ONI_NINO34_1854-2020.txt",
     "dcac9cedd7001c471157a74c3d8fe824af12804a3334255570ede28d35f2d42e"),
    ("realdata/mcnoldy_ONI_NINO34_1854-2022.txt",
     f"{_RAW}/skeydan/nao/effd736104751df4abaec76ecfd092841a80d015/data/ONI_NINO34_1854-2022.txt",
     "d947a48af34f2e71015f4fd740491caa59b706d70b69618f95943dc65da2bc2a"),
    ("realdata/tcc_cobesst_grb_urls_1891-01_2020-12.txt",
     f"{_RAW}/skeydan/enso/8f88f7b12eb67a0396790b9f5a3024a09a5af0ac/files",
     "9c8a65400345e86ad263f5025ff883e5bbd37ca31e3668f3c0e5dcd6fdc1fed0"),
    ("realdata/cpc_ersst5.nino.mth.91-20_1950-01_2025-07.ascii",
     f"{_RAW}/vrrp/vrrp.github.io/dcdc2043be68d0a798200eaf8582a250863e7c3c/assets/data/ersst5.nino.mth.91-20.ascii",
     "01d19221235209c1e9d3ada04ff900d281b3e39557d87d43d67f462440336e09"),
    ("realdata/cpc_sstoi.indices_1982-01_2025-07.txt",
     f"{_RAW}/vrrp/vrrp.github.io/dcdc2043be68d0a798200eaf8582a250863e7c3c/assets/data/sstoi.indices",
     "fa4798ede97d1e368d3f3076ccb840a414cb443c8c779ee87d3c019b33b4e359"),
    ("realdata/cpc_ersst5.nino.mth.81-10_1950-01_2018-10.ascii",
     f"{_RAW}/awu65/Final-Project/eb02d82d23d376dd6335d97e542e3ae0a42cbbf6/ersst5.nino.mth.81-10.ascii",
     "1ac3bc1d388f10e31e0fd3e6e8d45f0ecab3d0a77e5a2d6b119267d531cb9df5"),
    ("realdata/cpc_oni.ascii_ERSSTv5_DJF1950_FMA2025.txt",
     f"{_RAW}/arjitpraveen/ONI-NOAA/288fd7d82196cb21a0606cc0cdcdb7bef9b42239/data/oni.ascii.txt",
     "871ff8c6618f094554b7a025a488468157c981d4a58c5a9de2163320ac01c9d0"),
    ("realdata/cpc_oni.ascii_ERSSTv5_DJF1950_DJF2026.txt",
     f"{_RAW}/srivshnu/WAIS/e79a6302b940a4610c4938913191eadd5b671666/oni.ascii.txt",
     "801bcef6fdda133d6379e79ad544ca2607602c2d34498632d649a1e0177fdd42"),
    ("realdata/cpc_detrend.nino34.ascii_1950-01_2023-09.txt",
     f"{_RAW}/lwieske/climate-and-digitalization/cecfae7b210acda548bced5c414dfdd8cbc8f8b6/data/"
     "detrend.nino34.ascii.txt",
     "0ebd846c611692331be17614c37b197b13bf3b5b6b73fea04761724fe64ff4ae"),
    ("realdata/psl_nino34.long.anom.data_HadISST_1870-01_2023-03.txt",
     f"{_RAW}/syi-wang/signal_processing/326f7dbbe17b6d34957c9d28c57a1d64146ef800/nino34.long.anom.data.txt",
     "57d945b11d6feb4d32c6bea4a1575589d54a47cffe971fa9a03e8e87945b307b"),
    ("realdata/psl_nino34.long.data_HadISST_1870-01_2022-01.txt",
     f"{_RAW}/michaelerb/da-workshop/8924433aef96d656b0dadd44be0bb403dfbc05ea/data/nino34.long.data",
     "76b38d171be3e9523c961218fbef2dfd9bfd0c5cb1d927eb6d131d7f36c26b18"),
)
#: NCEI's ERSSTv5 monthly originals, 1854-01 .. 2010-12, as committed to chenyp79/DL_ENSO-forecasts.
ERSST_ORIGINAL_URL = (f"{_RAW}/chenyp79/DL_ENSO-forecasts/6026ba5a1c2d3fadaacc89cd8d4e6b82eb4f32d8/ersstv5/"
                      "ersst.v5.{year:04d}{month:02d}.nc")
ERSST_YEARS = (1854, 2010)
#: sha256 of the lines "<file name> <sha256>\n" of every original, sorted by name (from ../shared's manifest).
ERSST_ORIGINALS_DIGEST = "a248ddbc43442b9cb78700fba139b2497097b4931f3f808773336b632850ddd2"
ERSST_SAMPLE_MONTHS = ((1854, 1), (1950, 1), (1997, 12), (2008, 1))


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch(url: str, dest: Path, sha256: str | None = None, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` (atomically); with ``sha256``, keep it only if it matches.

    A file already at ``dest`` with the right checksum is kept (reruns resume).
    """
    import requests

    if dest.exists() and (sha256 is None or sha256_of(dest) == sha256):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    response = requests.get(url, timeout=timeout)
    response.raise_for_status()
    found = hashlib.sha256(response.content).hexdigest()
    if sha256 is not None and found != sha256:
        raise RuntimeError(f"{url}: sha256 {found} is not the expected {sha256}; nothing was kept")
    tmp = dest.with_name(dest.name + ".part")
    tmp.write_bytes(response.content)
    os.replace(tmp, dest)
    return dest


def stack_ersst(originals: list[Path], out: Path) -> None:
    """Stack NCEI monthly files into the layout of ../shared's stack (int16, scale 0.001, offset 20, zlib)."""
    import numpy as np
    import xarray as xr

    from enso.months import Month
    from enso.sources.ersst import decode_ersst

    grids = [decode_ersst(path, Month.parse(f"{path.stem[-6:-2]}-{path.stem[-2:]}")) for path in originals]
    times = np.array([np.datetime64(f"{g.month}-01", "ns") for g in grids])
    data = xr.Dataset({"sst": (("time", "lat", "lon"), np.stack([g.values for g in grids]))},
                      coords={"time": times, "lat": grids[0].lat, "lon": grids[0].lon})
    data["sst"].attrs.update(units="degree_C", standard_name="sea_surface_temperature")
    encoding = {"sst": {"dtype": "int16", "scale_factor": 0.001, "add_offset": 20.0, "_FillValue": -32768,
                        "zlib": True, "complevel": 9},
                "time": {"units": "days since 1854-01-01", "calendar": "standard"}}
    tmp = out.with_name(out.name + ".part")
    data.to_netcdf(tmp, engine="h5netcdf", encoding=encoding)
    os.replace(tmp, out)


def download_all(cache: Path, workers: int = 8) -> None:
    """Fill ``cache`` with every real file the tests read; print what it does."""
    for relative, url, sha256 in INDEX_FILES:
        fetch(url, cache / relative, sha256)
        print(f"ok {relative}")
    grids = cache / "realgrids" / ERSST_DIR
    stack = grids / ERSST_STACK.name
    if stack.exists():
        print(f"ok {stack.relative_to(cache)} (already there)")
        return
    months = [(y, m) for y in range(ERSST_YEARS[0], ERSST_YEARS[1] + 1) for m in range(1, 13)]
    folder = cache / "downloads" / "ersstv5"
    paths = [folder / f"ersst.v5.{y:04d}{m:02d}.nc" for y, m in months]
    print(f"downloading {len(paths)} ERSSTv5 monthly originals into {folder} ...", flush=True)
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda job: fetch(ERSST_ORIGINAL_URL.format(year=job[0][0], month=job[0][1]), job[1]),
                      zip(months, paths)))
    digest = hashlib.sha256("".join(f"{p.name} {sha256_of(p)}\n" for p in sorted(paths)).encode()).hexdigest()
    if digest != ERSST_ORIGINALS_DIGEST:
        raise RuntimeError(f"the ERSSTv5 originals in {folder} are not the ones the tests were written for "
                           f"(digest {digest}); delete the folder and rerun `make realdata`")
    (grids / "originals_sample").mkdir(parents=True, exist_ok=True)
    for year, month in ERSST_SAMPLE_MONTHS:
        name = f"ersst.v5.{year:04d}{month:02d}.nc"
        shutil.copyfile(folder / name, grids / "originals_sample" / name)
    stack_ersst(paths, stack)
    print(f"ok {stack.relative_to(cache)} (stacked from the originals; {folder} may be deleted)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.realdata", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=CACHE, help=f"where to put the files (default {CACHE})")
    args = parser.parse_args(argv)
    if all((SHARED / folder).is_dir() for folder in DATA_FOLDERS):
        print(f"note: the tests read {SHARED}, which is there; the cache is only used without it")
    download_all(args.cache)
    print(f"done: the tests now find the real data in {args.cache}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
