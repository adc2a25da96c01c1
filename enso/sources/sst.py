"""The SST sources by name: where a month's file lives, how it is decoded, which product version it is.

Adding a source (for instance COBE-SST2) means one entry here. The product
version is stored with every grid (``sst_grid.product_version``), so that a
store never mixes two versions of one source (see :mod:`db.ingest`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from enso.config import Settings, SstSource
from enso.grids import SSTGrid
from enso.months import Month
from enso.publication import PublicationLag
from enso.sources import cobe, ersst

#: The one COBE-SST product the GRIB tree serves (COBE-SST2 would be a source of its own).
COBE_PRODUCT_VERSION = "cobe-sst v1"


@dataclass(frozen=True)
class SstSourceSpec:
    """How to find and read one month of a gridded SST source."""

    name: str
    description: str
    url: Callable[[Month, Settings], str]
    decode: Callable[[Path, Month, Settings], SSTGrid]
    product_version: Callable[[Settings], str]
    first_month: Callable[[Settings], Month]
    publication: Callable[[Settings], PublicationLag]
    #: What to change when the source stops moving (shown by the stale-input alarm).
    advice: str


def ersst_layout(settings: Settings) -> ersst.ErsstLayout:
    """The variable names ENSO_ERSST_VARIABLE / _TIME_NAME / _LAT_NAME / _LON_NAME configure."""
    return ersst.ErsstLayout(variable=settings.ersst_variable, time=settings.ersst_time_name,
                             lat=settings.ersst_lat_name, lon=settings.ersst_lon_name)


SST_SOURCES: dict[str, SstSourceSpec] = {
    "cobe": SstSourceSpec(
        name="cobe",
        description="JMA TCC COBE-SST monthly GRIB, 1° (primary)",
        url=lambda month, s: cobe.cobe_url(month, s.cobe_base_url),
        decode=lambda path, month, s: cobe.decode_cobe(path, month),
        product_version=lambda s: COBE_PRODUCT_VERSION,
        first_month=lambda s: Month.of(cobe.FIRST_YEAR, 1),
        publication=lambda s: PublicationLag("JMA TCC", s.cobe_publication_day),
        advice=("check the URL in a browser; if JMA moved the COBE-SST tree, set ENSO_COBE_BASE_URL to its new "
                "folder; if it stopped, switch to NOAA ERSST (ENSO_SST_SOURCE=ersst, then `enso backfill "
                "--source ersst` and `enso train`)"),
    ),
    "ersst": SstSourceSpec(
        name="ersst",
        description="NOAA NCEI ERSST monthly netCDF, 2°",
        url=lambda month, s: ersst.ersst_url(month, ersst.ersst_base_url(s.ersst_version, s.ersst_base_url),
                                             s.ersst_file_template, s.ersst_version),
        decode=lambda path, month, s: ersst.decode_ersst(path, month, ersst_layout(s)),
        product_version=lambda s: ersst.product_version(s.ersst_version),
        first_month=lambda s: ersst.FIRST_MONTHS.get(s.ersst_version, Month.of(1854, 1)),
        publication=lambda s: PublicationLag("NOAA NCEI", s.ersst_publication_day),
        advice=("check the URL in a browser; if NCEI moved the files, set ENSO_ERSST_BASE_URL / "
                "ENSO_ERSST_FILE_TEMPLATE; if it replaced the version, set ENSO_ERSST_VERSION and re-backfill "
                "(README, 'Switching a product version')"),
    ),
}


def sst_source(name: SstSource | str) -> SstSourceSpec:
    try:
        return SST_SOURCES[name]
    except KeyError:
        raise ValueError(f"unknown SST source {name!r}; choose one of {', '.join(SST_SOURCES)}") from None
