"""The SST sources by name: where a month's file lives and how it is decoded.

Adding a source (for instance ERSSTv6 or COBE-SST2) means one entry here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from enso.config import Settings, SstSource
from enso.grids import SSTGrid
from enso.months import Month
from enso.sources import cobe, ersst


@dataclass(frozen=True)
class SstSourceSpec:
    """How to find and read one month of a gridded SST source."""

    name: str
    description: str
    url: Callable[[Month, Settings], str]
    decode: Callable[[Path, Month], SSTGrid]
    first_month: Month


SST_SOURCES: dict[str, SstSourceSpec] = {
    "cobe": SstSourceSpec(
        name="cobe",
        description="JMA TCC COBE-SST monthly GRIB, 1° (primary)",
        url=lambda month, s: cobe.cobe_url(month, s.cobe_base_url),
        decode=cobe.decode_cobe,
        first_month=Month.of(1891, 1),
    ),
    "ersst": SstSourceSpec(
        name="ersst",
        description="NOAA NCEI ERSST monthly netCDF, 2°",
        url=lambda month, s: ersst.ersst_url(month, s.ersst_base_url, s.ersst_file_template),
        decode=ersst.decode_ersst,
        first_month=Month.of(1854, 1),
    ),
}


def sst_source(name: SstSource | str) -> SstSourceSpec:
    try:
        return SST_SOURCES[name]
    except KeyError:
        raise ValueError(f"unknown SST source {name!r}; choose one of {', '.join(SST_SOURCES)}") from None
