"""Data sources: download, decode and validate what the providers publish.

Modules: :mod:`~enso.sources.http` (downloads), :mod:`~enso.sources.cobe` (JMA
COBE-SST GRIB1), :mod:`~enso.sources.ersst` (NOAA ERSST netCDF),
:mod:`~enso.sources.index` (NOAA / McNoldy Niño 3.4 index tables),
:mod:`~enso.sources.index_products` (which file each index product comes from) and
:mod:`~enso.sources.validate` (checks shared by the grid sources).

Every problem with a provider's file is one of the exceptions below; each names
the file (URL or path), the month when there is one, and the problem.
"""

from __future__ import annotations

from pathlib import Path

from enso.months import Month


class SourceError(Exception):
    """A provider's file could not be had or used: which file, which month, what went wrong."""

    def __init__(self, file: str | Path, month: Month | None, problem: str) -> None:
        super().__init__(str(file), month, problem)
        self.file = str(file)
        self.month = month
        self.problem = problem

    def __str__(self) -> str:
        if self.month is None:
            return f"{self.file}: {self.problem}"
        return f"{self.file}: {self.month}: {self.problem}"


class NotPublished(SourceError):
    """The provider has no file for this month yet (HTTP 404): an expected outcome, not a crash."""


class DownloadFailed(SourceError):
    """The server or the network failed (5xx, timeout, connection error, body cut short) after retries."""


class InvalidFile(SourceError):
    """The file was received but is not what it should be (wrong format, units, grid, month, layout)."""


__all__ = ["SourceError", "NotPublished", "DownloadFailed", "InvalidFile"]
