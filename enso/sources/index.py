"""NOAA / McNoldy Niño 3.4 index files: parsers, completion, McNoldy discovery, CPC writers.

Every parser returns an *index table*: a ``pandas.DataFrame`` indexed by a
monthly ``PeriodIndex`` named ``month`` (strictly increasing), with columns

* ``nino34``  - monthly mean Niño 3.4 SST (°C), NaN where the file lacks it;
* ``anomaly`` - monthly Niño 3.4 anomaly (°C);
* ``oni``     - 3-month centred mean anomaly (the ONI) of the month;
* ``phase``   - ``'la_nina'`` / ``'neutral'`` / ``'el_nino'`` or None,

and ``attrs["format"]`` (the format name) and ``attrs["file"]`` (URL or path).
Months with no value at all (placeholder rows) are dropped. Values are the
file's own; :func:`complete_index` derives the columns a file does not have.
A malformed file raises :class:`~enso.sources.InvalidFile` naming the file,
the row's month (or line number) and the problem.

CPC's *relative* index files (``Rnino34.ascii.txt`` monthly, ``RONI.ascii.txt``
seasonal; see :mod:`enso.relative`) give tables of the same shape with
``attrs["relative"] = True``: ``anomaly`` holds the monthly relative Niño 3.4
anomaly and ``oni`` the RONI (the relative ONI), so :func:`complete_index`
derives RONI and the phase exactly as it derives ONI.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import requests

from enso import nino34
from enso.months import Month, to_periods
from enso.sources import DownloadFailed, InvalidFile, NotPublished

COLUMNS = ("nino34", "anomaly", "oni", "phase")
VALUE_COLUMNS = COLUMNS[:3]
#: Files of the traditional Niño 3.4 index (what ENSO_INDEX_FORMAT chooses from).
TRADITIONAL_FORMATS = ("cpc-monthly", "mcnoldy", "cpc-oni", "psl", "cpc-detrend", "cpc-detrend-sst")
#: CPC's relative index files: monthly ``Rnino34.ascii.txt`` and seasonal ``RONI.ascii.txt``.
RELATIVE_FORMATS = ("cpc-rnino34", "cpc-roni")
FORMATS = TRADITIONAL_FORMATS + RELATIVE_FORMATS
#: ``attrs["anomaly_base"]`` of a file whose anomalies are against a climatology that moves with time
#: (CPC's ONI and ClimAdjust, McNoldy's "30-year ... updated every 5 years"); else the base's years.
SLIDING_BASE = "sliding 30-year"
#: The fixed base of CPC's relative index files (RONI), as CPC states it.
RELATIVE_BASE = "1991-2020"
#: Missing-value code of the CPC, McNoldy and PSL tables.
MISSING = -99.99
#: Plausible ranges: a value outside is a broken row, not climate.
NINO34_RANGE = (15.0, 35.0)
ANOMALY_RANGE = (-6.0, 6.0)
#: Most characters of a bad line quoted in an error message.
QUOTE_LIMIT = 200
#: Most bytes of a folder listing read when discovering McNoldy's newest file.
LISTING_LIMIT = 1 << 20

CPC_MONTHLY_HEADER = " YR   MON  NINO1+2  ANOM   NINO3    ANOM   NINO4    ANOM   NINO3.4  ANOM"
CPC_DETREND_HEADER = " YR   MON  TOTAL ClimAdjust ANOM "
CPC_ONI_HEADER = " SEAS  YR   TOTAL   ANOM"
#: CPC's monthly relative Niño 3.4 (``Rnino34.ascii.txt``, from 1949-12) and seasonal RONI (``RONI.ascii.txt``).
CPC_RNINO34_HEADER = " YR   MTH   ANOM"
CPC_RONI_HEADER = " SEAS  YR   ANOM"
MCNOLDY_HEADER = "YEAR  MON/MMM  NINO34_MEAN  NINO34_CLIM  NINO34_ANOM          ONI  PHASE"
MCNOLDY_DESCRIPTION_LINES = 8
#: PHASE letters of McNoldy's table; M (missing) is a month without ONI.
MCNOLDY_PHASES: dict[str, str | None] = {**nino34.PHASE_CODES, "M": None}
#: Three-month seasons of the CPC ONI table, in the order of their centre months (Jan .. Dec).
ONI_SEASONS = ("DJF", "JFM", "FMA", "MAM", "AMJ", "MJJ", "JJA", "JAS", "ASO", "SON", "OND", "NDJ")
MCNOLDY_FILE = "ONI_NINO34_1854-{year:04d}.txt"
_MCNOLDY_NAME = re.compile(r"ONI_NINO34_1854-(\d{4})\.txt")


@dataclass
class _Rows:
    """Values collected row by row, before they become a table."""

    months: list[Month]
    nino34: list[float]
    anomaly: list[float]
    oni: list[float]
    phase: list[str | None]

    @classmethod
    def empty(cls) -> "_Rows":
        return cls([], [], [], [], [])

    def add(self, month: Month, nino34: float = math.nan, anomaly: float = math.nan,
            oni: float = math.nan, phase: str | None = None) -> None:
        self.months.append(month)
        self.nino34.append(nino34)
        self.anomaly.append(anomaly)
        self.oni.append(oni)
        self.phase.append(phase)


# ----------------------------------------------------------------------------- parsers


def parse_index(text: str, fmt: str, file: str) -> pd.DataFrame:
    """Parse an index file of format ``fmt`` (one of :data:`FORMATS`)."""
    parsers: dict[str, Callable[[str, str], pd.DataFrame]] = {
        "cpc-monthly": parse_cpc_monthly,
        "mcnoldy": parse_mcnoldy,
        "cpc-oni": parse_cpc_oni,
        "psl": parse_psl,
        "cpc-detrend": parse_cpc_detrend,
        "cpc-detrend-sst": parse_cpc_detrend_sst,
        "cpc-rnino34": parse_cpc_rnino34,
        "cpc-roni": parse_cpc_roni,
    }
    if fmt not in parsers:
        raise ValueError(f"unknown index format {fmt!r}; known: {', '.join(FORMATS)}")
    return parsers[fmt](text, file)


def parse_cpc_monthly(text: str, file: str) -> pd.DataFrame:
    """CPC ``ersst5.nino.mth.*.ascii`` (also ``sstoi.indices``): Niño 3.4 is the LAST pair of columns.

    Header ``YR MON NINO1+2 ANOM NINO3 ANOM NINO4 ANOM NINO3.4 ANOM`` (compared
    word by word, spacing free), then one row of 10 numbers per month.
    """
    table = _parse_month_rows(text, file, "cpc-monthly", CPC_MONTHLY_HEADER, nino34_col=8, anomaly_col=9)
    base = _base_in_name(file)
    if base:
        table.attrs["anomaly_base"] = base
    return table


def _base_in_name(file: str) -> str | None:
    """The base period CPC writes into a file name (``ersst5.nino.mth.91-20.ascii`` -> ``1991-2020``), or None."""
    match = re.search(r"\.(\d\d)-(\d\d)\.ascii", file)
    if not match:
        return None
    first = int(match.group(1)) + (1900 if int(match.group(1)) >= 50 else 2000)
    return f"{first}-{first + 29}" if (first + 29) % 100 == int(match.group(2)) else None


def parse_cpc_detrend(text: str, file: str) -> pd.DataFrame:
    """CPC ``detrend.nino34.ascii.txt``: ``YR MON TOTAL ClimAdjust ANOM``, the monthly input of the ONI.

    ANOM is against CPC's sliding 30-year climatology (ClimAdjust), so 3-month
    means of it reproduce ``oni.ascii.txt``.
    """
    table = _parse_month_rows(text, file, "cpc-detrend", CPC_DETREND_HEADER, nino34_col=2, anomaly_col=4)
    table.attrs["anomaly_base"] = SLIDING_BASE
    table.attrs["anomaly_base_note"] = "CPC's sliding 30-year climatology (ClimAdjust)"
    return table


def parse_cpc_detrend_sst(text: str, file: str) -> pd.DataFrame:
    """CPC ``detrend.nino34.ascii.txt`` read for its monthly Niño 3.4 SST (TOTAL) only.

    The file's ANOM is against CPC's sliding 30-year climatology, which differs
    from decade to decade; dropping it lets :func:`complete_index` compute the
    anomalies against one fixed base (ENSO_ANOMALY_BASE, 1991-2020), the base of
    ``ersst5.nino.mth.91-20.ascii`` and of RONI. The layout is checked exactly
    as :func:`parse_cpc_detrend` does, ANOM included.
    """
    table = _parse_month_rows(text, file, "cpc-detrend", CPC_DETREND_HEADER, nino34_col=2, anomaly_col=4)
    table["anomaly"] = np.nan
    table.attrs["format"] = "cpc-detrend-sst"
    return table


def parse_cpc_rnino34(text: str, file: str) -> pd.DataFrame:
    """CPC ``Rnino34.ascii.txt``: the monthly relative Niño 3.4 anomaly, header ``YR MTH ANOM``.

    One row of three numbers per month (month not zero-padded), ``-99.99`` for a
    missing value. ``anomaly`` = ANOM (already rescaled by CPC to the traditional
    index's amplitude, 1991-2020 base); ``nino34`` stays NaN. RONI and the phase
    follow from :func:`complete_index`.
    """
    table = _parse_month_rows(text, file, "cpc-rnino34", CPC_RNINO34_HEADER, nino34_col=None, anomaly_col=2,
                              anomaly_what="relative Niño 3.4 anomaly")
    table.attrs.update(relative=True, anomaly_base=RELATIVE_BASE)
    return table


def parse_cpc_roni(text: str, file: str) -> pd.DataFrame:
    """CPC ``RONI.ascii.txt``: seasons ``SEAS YR ANOM`` mapped to their centre month (``oni`` = RONI).

    The seasons and YR (the centre month's year) as in ``oni.ascii.txt``: DJF
    1950 -> 1950-01. A season appears once its last month is in, and the last
    two values may be revised. ``nino34`` and ``anomaly`` stay NaN.
    """
    table = _parse_season_rows(text, file, "cpc-roni", CPC_RONI_HEADER, what="RONI")
    table.attrs.update(relative=True, anomaly_base=RELATIVE_BASE)
    return table


def parse_mcnoldy(text: str, file: str, *, with_climatology: bool = False) -> pd.DataFrame:
    """B. McNoldy's ``ONI_NINO34_1854-<YYYY>.txt``: 8 description lines, a blank line, header, rows.

    ``-99.99`` is missing; PHASE is E/L/N (or M where ONI is missing) and is kept
    as the file's own phase. Placeholder rows to December of the final year
    (no monthly mean) are dropped. With ``with_climatology`` the table gets a
    fifth column ``climatology``: the file's NINO34_CLIM (its sliding 30-year
    monthly mean, which the reference numbers of ``tests/test_verify_golden.py`` use).
    """
    lines = text.splitlines()
    header_at = MCNOLDY_DESCRIPTION_LINES + 1
    if len(lines) <= header_at or lines[header_at].split() != MCNOLDY_HEADER.split() \
            or lines[header_at - 1].strip():
        found = lines[header_at].strip() if len(lines) > header_at else "(file too short)"
        raise InvalidFile(
            file, None,
            f"line {header_at + 1}: expected the header {MCNOLDY_HEADER.strip()!r} after "
            f"{MCNOLDY_DESCRIPTION_LINES} description lines and a blank line, found {quote(found)}: "
            "the layout changed; check the file and update the parser",
        )
    rows = _Rows.empty()
    climatology: dict[Month, float] = {}
    for number, line in enumerate(lines[header_at + 1:], start=header_at + 2):
        fields = line.split()
        if not fields:
            continue
        month = _row_month(fields, file, number, expected_fields=7)
        mean, climatology[month], anomaly, oni = _numbers(fields[2:6], file, month, number)
        if fields[6] not in MCNOLDY_PHASES:
            raise InvalidFile(file, month, f"line {number}: PHASE {quote(fields[6])} is not one of M, E, N, L")
        if math.isnan(mean):
            continue
        _check_range(mean, NINO34_RANGE, "Niño 3.4 SST", file, month, number)
        for value, what in ((anomaly, "Niño 3.4 anomaly"), (oni, "ONI")):
            _check_range(value, ANOMALY_RANGE, what, file, month, number)
        rows.add(month, nino34=mean, anomaly=anomaly, oni=oni, phase=MCNOLDY_PHASES[fields[6]])
    table = _table(rows, "mcnoldy", file)
    table.attrs["anomaly_base"] = SLIDING_BASE  # "30-year monthly average SST, updated every 5 years"
    if with_climatology:
        table["climatology"] = [climatology[Month.of(p.year, p.month)] for p in table.index]
    return table


def parse_cpc_oni(text: str, file: str) -> pd.DataFrame:
    """CPC ``oni.ascii.txt``: seasons ``SEAS YR TOTAL ANOM`` mapped to their centre month.

    YR is the year of the centre month (DJF 1950 -> 1950-01, NDJ 1950 -> 1950-12);
    ``oni`` = ANOM; ``nino34`` and ``anomaly`` stay NaN (TOTAL is a 3-month mean).
    """
    table = _parse_season_rows(text, file, "cpc-oni", CPC_ONI_HEADER, what="ONI")
    table.attrs["anomaly_base"] = SLIDING_BASE  # CPC's ONI: centred 30-year bases, updated every 5 years
    return table


def parse_psl(text: str, file: str) -> pd.DataFrame:
    """NOAA PSL standard format: ``year1 yearN``, one row of 12 values per year, the missing code, free text.

    Absolute SST files (``nino34.long.data``) fill ``nino34``; anomaly files
    (``nino34.long.anom.data``) fill ``anomaly``: told apart by magnitude (a
    median above 10 °C is absolute). ``attrs["psl_kind"]`` says which, and
    ``attrs["description"]`` holds the free text after the data.
    """
    lines = text.splitlines()
    first = lines[0].split() if lines else []
    if len(first) != 2 or not all(f.isdigit() for f in first) or int(first[1]) < int(first[0]):
        raise InvalidFile(file, None, f"line 1: expected 'year1 yearN' (PSL standard format), "
                                      f"found {quote(lines[0].strip() if lines else '')}")
    year1, year_n = int(first[0]), int(first[1])
    n_years = year_n - year1 + 1
    if len(lines) < n_years + 2:
        raise InvalidFile(file, None, f"file has {len(lines)} lines; {year1}-{year_n} needs "
                                      f"{n_years} rows plus the missing-value line")
    raw: list[tuple[Month, str]] = []
    for offset, line in enumerate(lines[1:n_years + 1]):
        number, fields = offset + 2, line.split()
        if len(fields) != 13 or fields[0] != str(year1 + offset):
            raise InvalidFile(file, None, f"line {number}: expected year {year1 + offset} and 12 values, "
                                          f"found {quote(line.strip())}")
        raw += [(Month.of(year1 + offset, calendar_month), field) for calendar_month, field in enumerate(fields[1:], 1)]
    missing_code = _psl_missing_code(lines[n_years + 1])
    if missing_code is None:
        raise InvalidFile(file, None, f"line {n_years + 2}: expected the missing-value code after the "
                                      f"{n_years} rows of {year1}-{year_n}, found {quote(lines[n_years + 1].strip())}")
    months = [month for month, _ in raw]
    values = [_numbers([field], file, month, 2 + month.year - year1, missing_code)[0] for month, field in raw]
    valid = np.array([v for v in values if not math.isnan(v)])
    if valid.size == 0:
        raise InvalidFile(file, None, "every value is missing")
    absolute = float(np.median(valid)) > 10.0
    rows = _Rows.empty()
    for month, value in zip(months, values):
        if not math.isnan(value):
            _check_range(value, NINO34_RANGE if absolute else ANOMALY_RANGE,
                         "Niño 3.4 SST" if absolute else "Niño 3.4 anomaly", file, month, None)
        rows.add(month, **({"nino34": value} if absolute else {"anomaly": value}))
    table = _table(rows, "psl", file)
    table.attrs["psl_kind"] = "absolute" if absolute else "anomaly"
    table.attrs["description"] = "\n".join(line.strip() for line in lines[n_years + 2:] if line.strip())
    stated = re.search(r"anomal\w* (?:from|relative to|wrt) (\d{4})\s*-\s*(\d{4})", table.attrs["description"], re.I)
    if not absolute and stated:
        table.attrs["anomaly_base"] = f"{stated.group(1)}-{stated.group(2)}"
    return table


def _psl_missing_code(line: str) -> float | None:
    """The single number on PSL's missing-value line, or None if the line is something else."""
    try:
        fields = [float(f) for f in line.split()]
    except ValueError:
        return None
    return fields[0] if len(fields) == 1 else None


def _parse_month_rows(text: str, file: str, fmt: str, header: str, *, nino34_col: int | None,
                      anomaly_col: int, anomaly_what: str = "Niño 3.4 anomaly") -> pd.DataFrame:
    """Rows ``YR MON v1 .. vk`` (k = header words - 2): Niño 3.4 and its anomaly at the given columns."""
    n_fields = len(header.split())
    rows = _Rows.empty()
    for number, line in _check_header(text, file, header):
        fields = line.split()
        month = _row_month(fields, file, number, expected_fields=n_fields)
        values = _numbers(fields[2:], file, month, number)
        mean = values[nino34_col - 2] if nino34_col is not None else math.nan
        anomaly = values[anomaly_col - 2]
        _check_range(mean, NINO34_RANGE, "Niño 3.4 SST", file, month, number)
        _check_range(anomaly, ANOMALY_RANGE, anomaly_what, file, month, number)
        rows.add(month, nino34=mean, anomaly=anomaly)
    return _table(rows, fmt, file)


def _parse_season_rows(text: str, file: str, fmt: str, header: str, *, what: str) -> pd.DataFrame:
    """Rows ``SEAS YR [TOTAL] ANOM`` of CPC's seasonal tables; the last field goes to ``oni``."""
    n_fields = len(header.split())
    layout = " ".join(header.split())
    rows = _Rows.empty()
    for number, line in _check_header(text, file, header):
        fields = line.split()
        if len(fields) != n_fields or fields[0] not in ONI_SEASONS:
            raise InvalidFile(file, None, f"line {number}: expected {layout!r} with SEAS in "
                                          f"{'/'.join(ONI_SEASONS)}, found {quote(line.strip())}")
        month = _month_of(fields[1], str(ONI_SEASONS.index(fields[0]) + 1), file, number)
        value = _numbers(fields[2:], file, month, number)[-1]
        _check_range(value, ANOMALY_RANGE, what, file, month, number)
        rows.add(month, oni=value)
    return _table(rows, fmt, file)


def _check_header(text: str, file: str, header: str) -> list[tuple[int, str]]:
    """Check the first line against ``header`` word by word; return the (line number, line) rows after it."""
    lines = text.splitlines()
    found = lines[0] if lines else ""
    if found.split() != header.split():
        raise InvalidFile(file, None, f"line 1: expected the header {header.strip()!r}, found {quote(found.strip())}: "
                                      "the layout changed; check the file and update the parser or the format")
    return [(number, line) for number, line in enumerate(lines[1:], start=2) if line.strip()]


def _row_month(fields: Sequence[str], file: str, number: int, *, expected_fields: int) -> Month:
    if len(fields) != expected_fields:
        raise InvalidFile(file, None, f"line {number}: {len(fields)} fields, expected {expected_fields}: "
                                      f"{quote(' '.join(fields[:40]))}")
    return _month_of(fields[0], fields[1], file, number)


def _month_of(year: str, month: str, file: str, number: int) -> Month:
    try:
        return Month.of(int(year), int(month))
    except ValueError as exc:
        raise InvalidFile(file, None, f"line {number}: year {quote(year)} month {quote(month)} is not a month ({exc})") from exc


def _numbers(fields: Sequence[str], file: str, month: Month | None, number: int,
             missing: float = MISSING) -> list[float]:
    """Floats of the fields, NaN for the missing code; ``nan``/``inf`` are not a provider's numbers: an error."""
    try:
        values = [float(f) for f in fields]
    except ValueError:
        raise InvalidFile(file, month, f"line {number}: not a number in {quote(' '.join(fields[:40]))}") from None
    odd = [f for f, v in zip(fields, values) if not math.isfinite(v)]
    if odd:
        raise InvalidFile(file, month, f"line {number}: non-finite value {quote(odd[0])} (the files use "
                                       f"{missing:g} for a missing value): a broken row")
    return [math.nan if v == missing else v for v in values]


def _check_range(value: float, bounds: tuple[float, float], what: str, file: str,
                 month: Month, number: int | None) -> None:
    if not math.isnan(value) and not bounds[0] <= value <= bounds[1]:
        where = f"line {number}: " if number is not None else ""
        raise InvalidFile(file, month, f"{where}{what} {value:g} is outside the plausible "
                                       f"{bounds[0]:g}..{bounds[1]:g} °C: a broken row")


def _table(rows: _Rows, fmt: str, file: str) -> pd.DataFrame:
    """The index table of the rows: months strictly increasing, rows with no value dropped."""
    if not rows.months:
        raise InvalidFile(file, None, "holds no data row (only a header?): not a complete index file")
    for previous, current in zip(rows.months, rows.months[1:]):
        if current <= previous:
            raise InvalidFile(file, current, f"row comes after {previous}: months must be strictly increasing "
                                             "(duplicated or unordered rows)")
    index = to_periods(rows.months).rename("month")
    table = pd.DataFrame({
        "nino34": np.asarray(rows.nino34, dtype=np.float64),
        "anomaly": np.asarray(rows.anomaly, dtype=np.float64),
        "oni": np.asarray(rows.oni, dtype=np.float64),
        "phase": pd.Series(rows.phase, index=index, dtype=object),
    }, index=index)
    table = table[table[list(VALUE_COLUMNS)].notna().any(axis=1)]
    if table.empty:
        raise InvalidFile(file, None, "holds no month with a value")
    table.attrs.update({"format": fmt, "file": file})
    return table


def quote(text: str, limit: int = QUOTE_LIMIT) -> str:
    """``text`` quoted for a message, cut to ``limit`` characters (a broken file can hold a gigabyte line)."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text):,} characters)"


# ----------------------------------------------------------------------------- completion


def complete_index(table: pd.DataFrame,
                   base: tuple[int, int] = nino34.DEFAULT_BASE_PERIOD) -> pd.DataFrame:
    """Derive the columns the file does not have: anomaly, then ONI, then phase.

    A column the file provides (any value in it) is kept as the file's, never
    mixed with derived values, so one series never splices two climatologies.
    Otherwise: ``anomaly`` = ``nino34`` minus its monthly climatology over
    ``base`` (if the file lacks some base years, the base years it has are used,
    or all its years if it has none; ``attrs["anomaly_base"]`` says which);
    ``oni`` = centred 3-month mean of ``anomaly``; ``phase`` from ``oni`` (the
    newest month, without ONI, has phase None). ``attrs["derived"]`` lists what
    was derived. Returns a new table.
    """
    out = table.copy()
    out.attrs = dict(table.attrs)
    derived: list[str] = []
    if out["anomaly"].isna().all() and out["nino34"].notna().any():
        used = _base_in_file(out, base)
        out["anomaly"] = nino34.anomaly(out["nino34"], used)
        out.attrs["anomaly_base"] = f"{used[0]}-{used[1]}"
        if used != tuple(base):
            out.attrs["anomaly_base_note"] = (f"the file lacks part of the base period {base[0]}-{base[1]}; "
                                              f"anomalies use {used[0]}-{used[1]}")
        derived.append("anomaly")
    if out["oni"].isna().all() and out["anomaly"].notna().any():
        out["oni"] = nino34.oni(out["anomaly"])
        derived.append("oni")
    if out["phase"].isna().all() and out["oni"].notna().any():
        out["phase"] = nino34.phases_of(out["oni"])
        derived.append("phase")
    out.attrs["derived"] = derived
    return out


def _base_in_file(table: pd.DataFrame, base: tuple[int, int]) -> tuple[int, int]:
    """The base years to use: ``base``, else the part of it the file has, else all the file's years."""
    years = set(table.index[table["nino34"].notna()].year)
    inside = [y for y in range(base[0], base[1] + 1) if y in years]
    candidates = [tuple(base) if len(inside) == base[1] - base[0] + 1 else (inside[0], inside[-1])] if inside else []
    candidates.append((min(years), max(years)))
    for used in candidates:
        try:
            nino34.climatology(table["nino34"], used)
        except ValueError:
            continue
        return used
    raise InvalidFile(table.attrs.get("file", "?"), None,
                      "cannot form a monthly Niño 3.4 climatology: some calendar month never has a value")


# ----------------------------------------------------------------------------- McNoldy discovery


def mcnoldy_candidate_urls(base_url: str, year: int) -> list[str]:
    """The names to try when no index page lists the file: this year's, then last year's."""
    base = base_url.rstrip("/")
    return [f"{base}/{MCNOLDY_FILE.format(year=y)}" for y in (year, year - 1)]


def discover_mcnoldy_url(base_url: str, session: requests.Session, year: int, timeout: float) -> str:
    """URL of the newest ``ONI_NINO34_1854-<YYYY>.txt`` below ``base_url``.

    The file name embeds its last year, so it moves every January. The folder's
    index page is read first (the newest name listed wins); without one, this
    year's and then last year's names are tried (HEAD, 404 = try the next).
    Raises :class:`NotPublished` when neither exists and :class:`DownloadFailed`
    when the server cannot be reached.
    """
    folder = base_url.rstrip("/") + "/"
    try:
        with session.get(folder, timeout=(timeout, timeout), stream=True) as page:
            # a folder listing is a few kB: read at most LISTING_LIMIT bytes of it
            listing = page.raw.read(LISTING_LIMIT, decode_content=True).decode("utf-8", "replace") if page.ok else ""
        listed = sorted({int(y) for y in _MCNOLDY_NAME.findall(listing)})
        if listed:
            return folder + MCNOLDY_FILE.format(year=listed[-1])
        for url in mcnoldy_candidate_urls(base_url, year):
            response = session.head(url, timeout=(timeout, timeout), allow_redirects=True)
            if response.status_code in (405, 501):
                with session.get(url, timeout=(timeout, timeout), stream=True) as response:
                    pass
            if response.ok:
                return url
            if response.status_code != 404:
                raise DownloadFailed(url, None, f"HTTP {response.status_code} {response.reason}: "
                                                "the server refused; rerun later or set the index URL explicitly")
    except requests.RequestException as exc:
        raise DownloadFailed(folder, None, f"{type(exc).__name__}: {exc}; rerun later") from exc
    names = " nor ".join(MCNOLDY_FILE.format(year=y) for y in (year, year - 1))
    raise NotPublished(folder, None, f"the index page lists no ONI_NINO34 file and neither {names} exists; "
                                     "set the index URL to the current file explicitly")


# ----------------------------------------------------------------------------- writers


def format_cpc_monthly(table: pd.DataFrame) -> str:
    """Write an index table in CPC's ``ersst5.nino.mth`` layout (for the synthetic mirror).

    The table has only Niño 3.4, so the Niño 1+2, 3 and 4 columns hold the
    missing code -99.99, as does any missing ``nino34``/``anomaly``. Values are
    rounded to 0.01 as CPC does; :func:`parse_cpc_monthly` reads it back.
    """
    lines = [CPC_MONTHLY_HEADER]
    filler = f"{MISSING:8.2f}" * 6
    for period, mean, anomaly in zip(table.index, table["nino34"], table["anomaly"]):
        values = "".join(f"{MISSING if pd.isna(v) else v:8.2f}" for v in (mean, anomaly))
        lines.append(f"{period.year:4d}{period.month:4d}{filler}{values}")
    return "\n".join(lines) + "\n"


def format_cpc_rnino34(anomaly: pd.Series) -> str:
    """Write monthly relative Niño 3.4 anomalies in CPC's ``Rnino34.ascii.txt`` layout (``YR MTH ANOM``).

    ``anomaly`` is indexed by a monthly ``PeriodIndex``; missing values are
    written as -99.99, values rounded to 0.01 as CPC does (the column layout
    of CPC's other monthly tables); :func:`parse_cpc_rnino34` reads it back.
    """
    lines = [CPC_RNINO34_HEADER]
    for period, value in anomaly.items():
        lines.append(f"{period.year:4d}{period.month:4d}{MISSING if pd.isna(value) else value:8.2f}")
    return "\n".join(lines) + "\n"


def format_cpc_roni(roni: pd.Series) -> str:
    """Write RONI (indexed by the centre month) in CPC's ``RONI.ascii.txt`` layout (``SEAS YR ANOM``).

    Months without a value (the newest, whose season is not complete) are left
    out, as CPC does; :func:`parse_cpc_roni` reads it back.
    """
    lines = [CPC_RONI_HEADER]
    for period, value in roni.dropna().items():
        lines.append(f"  {ONI_SEASONS[period.month - 1]} {period.year:4d} {value:6.2f}")
    return "\n".join(lines) + "\n"
