"""Niño 3.4 index files: every real file in ../shared/realdata parsed, completed, and checked by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from enso.months import Month
from enso.nino34 import EL_NINO, LA_NINA, NEUTRAL
from enso.sources import InvalidFile
from enso.sources.index import (
    complete_index,
    format_cpc_monthly,
    parse_cpc_detrend,
    parse_cpc_monthly,
    parse_cpc_oni,
    parse_index,
    parse_mcnoldy,
    parse_psl,
)
from tests.realdata import REALDATA, requires

CPC_MONTHLY = REALDATA / "cpc_ersst5.nino.mth.91-20_1950-01_2025-07.ascii"
CPC_MONTHLY_8110 = REALDATA / "cpc_ersst5.nino.mth.81-10_1950-01_2018-10.ascii"
CPC_SSTOI = REALDATA / "cpc_sstoi.indices_1982-01_2025-07.txt"
CPC_DETREND = REALDATA / "cpc_detrend.nino34.ascii_1950-01_2023-09.txt"
CPC_ONI_2025 = REALDATA / "cpc_oni.ascii_ERSSTv5_DJF1950_FMA2025.txt"
CPC_ONI_2026 = REALDATA / "cpc_oni.ascii_ERSSTv5_DJF1950_DJF2026.txt"
MCNOLDY_2020 = REALDATA / "mcnoldy_ONI_NINO34_1854-2020.txt"
MCNOLDY_2022 = REALDATA / "mcnoldy_ONI_NINO34_1854-2022.txt"
PSL_ABSOLUTE = REALDATA / "psl_nino34.long.data_HadISST_1870-01_2022-01.txt"
PSL_ANOMALY = REALDATA / "psl_nino34.long.anom.data_HadISST_1870-01_2023-03.txt"
pytestmark = requires(CPC_MONTHLY, CPC_MONTHLY_8110, CPC_SSTOI, CPC_DETREND, CPC_ONI_2025, CPC_ONI_2026,
                      MCNOLDY_2020, MCNOLDY_2022, PSL_ABSOLUTE, PSL_ANOMALY)


def read(path, fmt: str) -> pd.DataFrame:
    return parse_index(path.read_text(encoding="utf-8"), fmt, str(path))


def p(text: str) -> pd.Period:
    return pd.Period(text, freq="M")


def assert_table_shape(table: pd.DataFrame, fmt: str, path) -> None:
    assert list(table.columns) == ["nino34", "anomaly", "oni", "phase"]
    assert isinstance(table.index, pd.PeriodIndex) and table.index.name == "month"
    assert table.index.freqstr == "M" and table.index.is_monotonic_increasing and table.index.is_unique
    assert table["phase"].dtype == object
    assert table.attrs["format"] == fmt and table.attrs["file"] == str(path)


# ----------------------------------------------------------------------------- the real files


CPC = "https://www.cpc.ncep.noaa.gov/data/indices/"


@pytest.mark.parametrize("path, fmt, url, base", [
    (CPC_MONTHLY, "cpc-monthly", CPC + "ersst5.nino.mth.91-20.ascii", "1991-2020"),
    (CPC_MONTHLY_8110, "cpc-monthly", CPC + "ersst5.nino.mth.81-10.ascii", "1981-2010"),
    (CPC_SSTOI, "cpc-monthly", CPC + "sstoi.indices", None),  # the name states no base
    (CPC_DETREND, "cpc-detrend", CPC + "detrend.nino34.ascii.txt", "sliding 30-year"),
    (CPC_ONI_2026, "cpc-oni", CPC + "oni.ascii.txt", "sliding 30-year"),
    (MCNOLDY_2022, "mcnoldy", "ONI_NINO34_1854-2022.txt", "sliding 30-year"),
    (PSL_ANOMALY, "psl", "nino34.long.anom.data", "1981-2010"),  # "Anomaly from 1981-2010" below the data
    (PSL_ABSOLUTE, "psl", "nino34.long.data", None),  # absolute SST: the anomalies are derived
])
def test_each_file_states_the_base_of_its_anomalies(path, fmt: str, url: str, base: str | None) -> None:
    """``attrs["anomaly_base"]`` labels the stored vintage (db.ingest), so it is the file's own base."""
    table = parse_index(path.read_text(encoding="utf-8"), fmt, url)
    assert table.attrs.get("anomaly_base") == base


def test_cpc_monthly_91_20_file() -> None:
    table = read(CPC_MONTHLY, "cpc-monthly")
    assert_table_shape(table, "cpc-monthly", CPC_MONTHLY)
    assert (table.index[0], table.index[-1], len(table)) == (p("1950-01"), p("2025-07"), 907)
    # Niño 3.4 is the LAST pair: 1950-01 reads 24.55 / -1.99 (Niño 4 would be 26.94 / -1.38).
    assert table.loc[p("1950-01"), ["nino34", "anomaly"]].tolist() == [24.55, -1.99]
    assert table.loc[p("2025-07"), ["nino34", "anomaly"]].tolist() == [27.24, -0.06]
    assert table["oni"].isna().all() and table["phase"].isna().all()


def test_cpc_monthly_81_10_file_same_sst_other_base() -> None:
    old, new = read(CPC_MONTHLY_8110, "cpc-monthly"), read(CPC_MONTHLY, "cpc-monthly")
    assert (old.index[0], old.index[-1]) == (p("1950-01"), p("2018-10"))
    assert old.loc[p("1950-01"), "nino34"] == new.loc[p("1950-01"), "nino34"] == 24.55
    assert old.loc[p("1950-01"), "anomaly"] == -2.00


def test_cpc_sstoi_file_has_other_header_spacing() -> None:
    table = read(CPC_SSTOI, "cpc-monthly")
    assert (table.index[0], table.index[-1], len(table)) == (p("1982-01"), p("2025-07"), 523)
    assert table.loc[p("1982-01"), ["nino34", "anomaly"]].tolist() == [26.65, 0.08]
    assert table.loc[p("1982-12"), ["nino34", "anomaly"]].tolist() == [28.85, 2.21]


def test_cpc_detrend_file() -> None:
    table = read(CPC_DETREND, "cpc-detrend")
    assert_table_shape(table, "cpc-detrend", CPC_DETREND)
    assert (table.index[0], table.index[-1], len(table)) == (p("1950-01"), p("2023-09"), 885)
    assert table.loc[p("1950-01"), ["nino34", "anomaly"]].tolist() == [24.56, -1.62]
    assert table.loc[p("2023-09"), ["nino34", "anomaly"]].tolist() == [28.31, 1.59]


def test_cpc_detrend_sst_reads_total_and_derives_fixed_base_anomalies() -> None:
    """The default ENSO_INDEX_FORMAT: the detrend file's ANOM is against CPC's sliding 30-year climatology
    (0.7 °C away from the fixed 1991-2020 anomalies in the 1950s), so only TOTAL is read and the anomalies
    are derived against 1991-2020: they then agree with CPC's fixed-base ``ersst5.nino.mth.91-20`` file."""
    table = read(CPC_DETREND, "cpc-detrend-sst")
    assert_table_shape(table, "cpc-detrend-sst", CPC_DETREND)
    assert table.loc[p("1950-01"), "nino34"] == 24.56 and table["anomaly"].isna().all()
    completed = complete_index(table)
    assert completed.attrs["anomaly_base"] == "1991-2020" and completed.attrs["derived"] == ["anomaly", "oni", "phase"]
    fixed = read(CPC_MONTHLY, "cpc-monthly")["anomaly"]
    assert (completed["anomaly"] - fixed).dropna().abs().max() < 0.03
    assert (read(CPC_DETREND, "cpc-detrend")["anomaly"] - fixed).dropna().abs().max() > 0.5
    with pytest.raises(InvalidFile, match="expected the header 'YR   MON  TOTAL ClimAdjust ANOM'"):
        parse_index(cpc_text(), "cpc-detrend-sst", "x")


@pytest.mark.parametrize("path, last, last_oni, rows", [
    (CPC_ONI_2025, "2025-03", -0.19, 903),
    (CPC_ONI_2026, "2026-01", -0.39, 913),
])
def test_cpc_oni_files_map_seasons_to_centre_months(path, last: str, last_oni: float, rows: int) -> None:
    table = read(path, "cpc-oni")
    assert_table_shape(table, "cpc-oni", path)
    assert (table.index[0], table.index[-1], len(table)) == (p("1950-01"), p(last), rows)
    assert table.loc[p("1950-01"), "oni"] == -1.53   # DJF 1950 (Dec 1949 .. Feb 1950)
    assert table.loc[p("1950-12"), "oni"] == -0.80   # NDJ 1950 (Nov 1950 .. Jan 1951)
    assert table.loc[p("1951-01"), "oni"] == -0.82   # DJF 1951
    assert table.loc[p(last), "oni"] == last_oni
    assert table["nino34"].isna().all() and table["anomaly"].isna().all()


def test_mcnoldy_2020_file_counts_of_the_reference_method() -> None:
    table = read(MCNOLDY_2020, "mcnoldy")
    assert_table_shape(table, "mcnoldy", MCNOLDY_2020)
    # Placeholder rows (2020-10 .. 2020-12, no mean) are dropped; 2020-09 has a mean but no ONI.
    assert (table.index[0], table.index[-1], len(table)) == (p("1854-01"), p("2020-09"), 2001)
    assert table.loc[p("1854-01"), "nino34"] == 25.90 and math.isnan(table.loc[p("1854-01"), "anomaly"])
    assert table.loc[p("2020-08")].tolist() == [26.27, -0.64, -0.58, LA_NINA]
    last = table.loc[p("2020-09")]
    assert (last["nino34"], last["anomaly"], math.isnan(last["oni"]), last["phase"]) == (25.96, -0.84, True, None)
    assert table["oni"].first_valid_index() == p("1871-02") and table.loc[p("1871-02"), "oni"] == -0.26

    train = table.loc[p("1891-01"):p("1989-12"), "phase"].value_counts()
    valid = table.loc[p("1990-01"):p("2020-08"), "phase"].value_counts()
    assert (train[EL_NINO], train[LA_NINA], train[NEUTRAL]) == (301, 333, 554)
    assert (valid[EL_NINO], valid[LA_NINA], valid[NEUTRAL]) == (93, 93, 182)


def test_mcnoldy_phase_is_kept_because_it_uses_unrounded_oni() -> None:
    """Away from ±0.50 the file's PHASE is the ±0.5 rule on its ONI; at a printed ±0.50 it
    follows the unrounded value (10 of 18 such months are E/L, 8 are N), so recomputing
    phases from the printed ONI would change 8 months: the file's PHASE column is kept."""
    table = read(MCNOLDY_2020, "mcnoldy")
    at_threshold = table[table["oni"].abs() == 0.5]
    assert len(at_threshold) == 18 and (at_threshold["phase"] == NEUTRAL).sum() == 8
    rest = table[table["oni"].notna() & (table["oni"].abs() != 0.5)]
    expected = np.where(rest["oni"] > 0.5, EL_NINO, np.where(rest["oni"] < -0.5, LA_NINA, NEUTRAL))
    assert (rest["phase"].to_numpy() == expected).all()
    assert complete_index(table)["phase"].equals(table["phase"])


def test_mcnoldy_2022_file() -> None:
    table = read(MCNOLDY_2022, "mcnoldy")
    assert (table.index[0], table.index[-1]) == (p("1854-01"), p("2022-11"))
    assert table.loc[p("2022-10")].tolist() == [25.72, -1.00, -1.00, LA_NINA]
    assert table.loc[p("2022-11"), "phase"] is None


def test_psl_absolute_file() -> None:
    table = read(PSL_ABSOLUTE, "psl")
    assert_table_shape(table, "psl", PSL_ABSOLUTE)
    assert table.attrs["psl_kind"] == "absolute"
    assert (table.index[0], table.index[-1], len(table)) == (p("1870-01"), p("2022-01"), 1825)
    assert table.loc[p("1870-01"), "nino34"] == 25.58 and table.loc[p("2021-12"), "nino34"] == 25.52
    assert table.loc[p("2022-01"), "nino34"] == 25.81
    assert table["anomaly"].isna().all()
    assert "HadISST" in table.attrs["description"]


def test_psl_anomaly_file() -> None:
    table = read(PSL_ANOMALY, "psl")
    assert table.attrs["psl_kind"] == "anomaly"
    assert (table.index[0], table.index[-1], len(table)) == (p("1870-01"), p("2023-03"), 1839)
    assert table.loc[p("1870-01"), "anomaly"] == -1.00 and table.loc[p("2023-03"), "anomaly"] == -0.13
    assert table["nino34"].isna().all()
    assert "Anomaly from 1981-2010" in table.attrs["description"]


# ----------------------------------------------------------------------------- completion


def test_complete_index_oni_matches_cpc_oni_where_the_bases_agree() -> None:
    """CPC's ONI uses sliding 30-year bases; the monthly file a fixed 1991-2020 one.

    In the 2025 vintage the ONI base of the recent years is 1991-2020, so the ONI
    computed from the monthly file equals CPC's (up to the files' 0.01 rounding)
    from 2006 on; earlier decades use older bases and differ by 0.1 °C or more.
    The 2026 vintage moved the years from 2011 on to a newer base (0.04-0.15 °C apart).
    """
    table = complete_index(read(CPC_MONTHLY, "cpc-monthly"))
    assert table.attrs["derived"] == ["oni", "phase"]
    diff = (table["oni"] - read(CPC_ONI_2025, "cpc-oni")["oni"]).dropna().abs()
    recent = diff[p("2006-02"):]
    assert len(recent) == 230
    assert recent.max() <= 0.02 and (recent <= 0.01).mean() > 0.95
    assert (diff[:p("1980-12")] > 0.1).all()

    newer = (table["oni"] - read(CPC_ONI_2026, "cpc-oni")["oni"]).dropna().abs()
    assert newer[p("2006-02"):p("2009-12")].max() <= 0.02
    assert (newer[p("2011-01"):] > 0.03).all() and newer[p("2011-01"):].mean() > 0.08


def test_complete_index_on_cpc_detrend_reproduces_cpc_oni() -> None:
    """The detrended file's anomalies are CPC's ONI input: their 3-month means are the ONI, everywhere."""
    table = complete_index(read(CPC_DETREND, "cpc-detrend"))
    diff = (table["oni"] - read(CPC_ONI_2025, "cpc-oni")["oni"]).dropna().abs()
    assert len(diff) == 883 and diff.max() < 0.0075


def test_complete_index_derives_cpc_anomalies_from_the_sst() -> None:
    table = read(CPC_MONTHLY, "cpc-monthly")
    stripped = table.assign(anomaly=np.nan)
    stripped.attrs = dict(table.attrs)
    completed = complete_index(stripped)
    assert completed.attrs["anomaly_base"] == "1991-2020" and "anomaly_base_note" not in completed.attrs
    assert completed.attrs["derived"] == ["anomaly", "oni", "phase"]
    assert (completed["anomaly"] - table["anomaly"]).abs().max() < 0.01


def test_complete_index_on_psl_sst_reproduces_psl_anomalies() -> None:
    completed = complete_index(read(PSL_ABSOLUTE, "psl"), base=(1981, 2010))
    diff = (completed["anomaly"] - read(PSL_ANOMALY, "psl")["anomaly"]).dropna().abs()
    assert len(diff) == 1825 and diff.max() < 0.01


def test_complete_index_uses_the_base_years_the_file_has() -> None:
    short = read(CPC_MONTHLY_8110, "cpc-monthly").assign(anomaly=np.nan)
    completed = complete_index(short)
    assert completed.attrs["anomaly_base"] == "1991-2018"
    assert "1991-2018" in completed.attrs["anomaly_base_note"]
    base = completed.loc[p("1991-01"):p("2018-12"), "anomaly"]
    assert abs(base.mean()) < 1e-9

    early = short.loc[:p("1960-12")]
    completed = complete_index(early)
    assert completed.attrs["anomaly_base"] == "1950-1960"


def test_complete_index_keeps_the_file_values_and_leaves_the_newest_phase_open() -> None:
    table = read(MCNOLDY_2020, "mcnoldy")
    completed = complete_index(table)
    assert completed.attrs["derived"] == []
    pd.testing.assert_frame_equal(completed, table)

    cpc = complete_index(read(CPC_MONTHLY, "cpc-monthly"))
    assert cpc.loc[p("2025-07"), "phase"] is None and math.isnan(cpc.loc[p("2025-07"), "oni"])
    assert cpc.loc[p("2025-06"), "oni"] == pytest.approx((-0.13 - 0.06 - 0.06) / 3)
    assert cpc.loc[p("2025-06"), "phase"] == NEUTRAL
    oni = complete_index(read(CPC_ONI_2025, "cpc-oni"))
    assert oni.attrs["derived"] == ["phase"]
    assert oni.loc[p("1950-01"), "phase"] == LA_NINA and oni.loc[p("2025-03"), "phase"] == NEUTRAL


# ----------------------------------------------------------------------------- writer


def test_format_cpc_monthly_round_trips() -> None:
    table = read(CPC_MONTHLY, "cpc-monthly")
    text = format_cpc_monthly(table)
    assert text.splitlines()[0] == CPC_MONTHLY.read_text().splitlines()[0]
    back = parse_cpc_monthly(text, "mirror")
    pd.testing.assert_frame_equal(back, table, check_like=False, check_flags=False)


def test_format_cpc_monthly_writes_missing_values_as_minus_99_99() -> None:
    index = pd.period_range("2000-01", "2000-03", freq="M", name="month")
    table = pd.DataFrame({"nino34": [26.123, np.nan, 27.0], "anomaly": [0.456, np.nan, np.nan],
                          "oni": np.nan, "phase": None}, index=index)
    text = format_cpc_monthly(table)
    assert text.splitlines()[1] == "2000   1" + "  -99.99" * 6 + "   26.12    0.46"
    back = parse_cpc_monthly(text, "mirror")
    assert list(back.index) == [p("2000-01"), p("2000-03")]  # a month with no value is no row
    assert back.loc[p("2000-03"), "nino34"] == 27.0 and math.isnan(back.loc[p("2000-03"), "anomaly"])


# ----------------------------------------------------------------------------- malformed files


def cpc_text() -> str:
    return CPC_MONTHLY.read_text()


def replace_line(number: int, line: str) -> str:
    lines = cpc_text().splitlines()
    lines[number - 1] = line
    return "\n".join(lines) + "\n"


def test_changed_cpc_header_is_rejected_saying_what_was_expected() -> None:
    swapped = replace_line(1, " YR   MON  NINO1+2  ANOM   NINO3    ANOM   NINO3.4  ANOM   NINO4    ANOM")
    with pytest.raises(InvalidFile) as caught:
        parse_cpc_monthly(swapped, "https://example/ersst5.nino.mth.91-20.ascii")
    message = str(caught.value)
    assert message.startswith("https://example/ersst5.nino.mth.91-20.ascii: line 1:")
    assert "NINO4    ANOM   NINO3.4  ANOM" in message and "expected the header" in message


@pytest.mark.parametrize("line, month, problem", [
    ("1950   2   24.32   -1.78   24.89   -1.52   26.67   -1.53   25.06   x.69", "1950-02", "not a number"),
    ("1950   2   24.32   -1.78   24.89   -1.52   26.67   -1.53   25.06", None, "9 fields, expected 10"),
    ("1950  13   24.32   -1.78   24.89   -1.52   26.67   -1.53   25.06   -1.69", None, "not a month"),
    ("1950   2   24.32   -1.78   24.89   -1.52   26.67   -1.53  298.21   -1.69", "1950-02", "298.21 is outside"),
    ("1950   1   24.32   -1.78   24.89   -1.52   26.67   -1.53   25.06   -1.69", "1950-01", "strictly increasing"),
])
def test_malformed_cpc_rows_name_the_file_month_and_problem(line: str, month: str | None, problem: str) -> None:
    with pytest.raises(InvalidFile) as caught:
        parse_cpc_monthly(replace_line(3, line), "cpc.ascii")
    error = caught.value
    assert error.file == "cpc.ascii" and problem in str(error)
    if month is None:
        assert "line 3" in str(error)
    else:
        assert error.month == Month.parse(month) and str(error).startswith(f"cpc.ascii: {month}: ")


def test_malformed_mcnoldy_files_are_rejected() -> None:
    lines = MCNOLDY_2020.read_text(encoding="utf-8").splitlines()
    bad_phase = list(lines)
    bad_phase[12] = bad_phase[12][:-1] + "X"
    with pytest.raises(InvalidFile, match=r"mcnoldy.txt: 1854-03: line 13: PHASE 'X'"):
        parse_mcnoldy("\n".join(bad_phase), "mcnoldy.txt")
    with pytest.raises(InvalidFile, match=r"line 10: expected the header 'YEAR  MON/MMM"):
        parse_mcnoldy("\n".join(lines[1:]), "mcnoldy.txt")


def test_malformed_oni_and_psl_files_are_rejected() -> None:
    oni = CPC_ONI_2025.read_text().replace("  JFM 1950", "  XYZ 1950", 1)
    with pytest.raises(InvalidFile, match=r"oni.txt: line 3: expected 'SEAS YR TOTAL ANOM'"):
        parse_cpc_oni(oni, "oni.txt")
    psl = PSL_ABSOLUTE.read_text().splitlines()
    skipped = psl[:5] + psl[6:]
    with pytest.raises(InvalidFile, match=r"psl.txt: line 6: expected year 1874"):
        parse_psl("\n".join(skipped), "psl.txt")
    no_missing_line = psl[:154] + psl[155:]
    with pytest.raises(InvalidFile, match=r"expected the missing-value code"):
        parse_psl("\n".join(no_missing_line), "psl.txt")


def test_detrend_parser_rejects_the_monthly_layout_and_unknown_formats() -> None:
    with pytest.raises(InvalidFile, match="expected the header 'YR   MON  TOTAL ClimAdjust ANOM'"):
        parse_cpc_detrend(cpc_text(), "x")
    with pytest.raises(ValueError, match="unknown index format 'roni'"):
        parse_index(cpc_text(), "roni", "x")
