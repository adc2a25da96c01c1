"""Settings checked when they load: every bad ENSO_* variable named in one message, sizes per file kind."""

from __future__ import annotations

import datetime as dt

import pytest

from enso.config import (
    DEFAULT_HTTP_MAX_BYTES,
    Settings,
    SettingsError,
    byte_size,
    load_settings,
    model_preset_names,
)


def test_the_defaults_are_valid() -> None:
    settings = load_settings()
    assert settings.http_max_bytes == DEFAULT_HTTP_MAX_BYTES and settings.max_bytes("index") == 4 * 2**20


def test_the_preset_names_are_read_without_importing_torch_and_match_the_presets() -> None:
    import sys

    from enso.model.presets import PRESETS

    assert model_preset_names() == tuple(PRESETS)
    assert "_enso_preset_names" not in sys.modules


@pytest.mark.parametrize("text, size", [("4MiB", 4 * 2**20), ("500kB", 500_000), ("2000000", 2_000_000),
                                        ("1.5 GiB", 3 * 2**29)])
def test_sizes(text: str, size: int) -> None:
    assert byte_size(text) == size


def test_sizes_per_kind_keep_the_defaults_of_kinds_not_named() -> None:
    assert load_settings(http_max_bytes="index=1MB").http_max_bytes == {**DEFAULT_HTTP_MAX_BYTES, "index": 10**6}
    assert set(load_settings(http_max_bytes="8MiB").http_max_bytes.values()) == {8 * 2**20}


@pytest.mark.parametrize("field, value, problem", [
    ("database_url", "not a url", "not a database URL"),
    ("database_url", "mysql://db/enso", "database driver 'mysql' is not supported"),
    ("database_url", "postgresql+foo://db/enso", "database driver 'postgresql+foo' is not supported"),
    ("database_url", "postgresql://u:secret@db:port/enso", "the port is not a number"),
    ("http_timeout", "0", "greater than 0"),
    ("http_timeout", "-1", "greater than 0"),
    ("http_retries", "-3", "greater than or equal to 0"),
    ("http_deadline", "0", "greater than 0"),
    ("http_max_bytes", "grib=1MiB", "unknown file kind(s) grib"),
    ("http_max_bytes", "cobe=lots", "'lots' is not a size"),
    ("report_to", "not an address", "not an e-mail address: 'not an address'"),
    ("report_from", "nobody", "not an e-mail address"),
    ("model_preset", "huge", "unknown model preset 'huge'"),
    ("smtp_port", "70000", "less than or equal to 65535"),
    ("cobe_base_url", "ftp://x/y", "expected an http:// or https:// URL"),
    ("ersst_file_template", "ersst.nc", "expected one file name using {year} and {month}"),
    ("ersst_file_template", "ersst.{year:04d}.nc", "expected one file name using {year} and {month}"),
    ("ersst_file_template", "{release}/ersst.{year}{month:02d}.nc", "not a file name template"),
    ("ersst_base_url", "file:///data/ersst", "expected an http:// or https:// URL"),
    ("ersst_version", "6", "expected an ERSST version such as v6"),
    ("ersst_variable", "sea surface", "expected the name of a netCDF variable"),
    ("index_publication_day", "31", "less than or equal to 28"),
    ("relative_index_url", "Rnino34.ascii.txt", "expected an http:// or https:// URL"),
    ("phase_index", "nino34", "Input should be 'roni' or 'oni'"),
    ("monthly_cron", "0 6 32 * *", "not a cron expression"),
    ("train_end", "1979-13", "expected a month as YYYY-MM"),
    ("stale_input_as_of", "2020-08-32", "valid datetime"),
    ("stale_input_as_of", "2999-01-01", "is in the future"),
])
def test_a_bad_value_names_its_variable(monkeypatch: pytest.MonkeyPatch, field: str, value: str,
                                        problem: str) -> None:
    monkeypatch.setenv(f"ENSO_{field.upper()}", value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    [line] = caught.value.problems
    assert line.startswith(f"ENSO_{field.upper()}") and problem in line
    assert "secret" not in str(caught.value)


def test_every_bad_variable_is_listed_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"ENSO_HTTP_TIMEOUT": "0", "ENSO_HTTP_RETRIES": "-1", "ENSO_MODEL_PRESET": "x",
                        "ENSO_REPORT_TO": "a@b.org, oops"}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert [p.split("=")[0].split(":")[0] for p in caught.value.problems] == [
        "ENSO_HTTP_TIMEOUT", "ENSO_HTTP_RETRIES", "ENSO_REPORT_TO", "ENSO_MODEL_PRESET"]
    assert str(caught.value).startswith("invalid settings; fix these environment variables")


def test_periods_must_be_in_order() -> None:
    with pytest.raises(ValueError, match="ENSO_TRAIN_END 1990-12 must come before ENSO_VALID_END 1989-12"):
        Settings(train_end="1990-12", valid_end="1989-12")
    with pytest.raises(ValueError, match="ENSO_ANOMALY_BASE_START/_END 2020-1991"):
        Settings(anomaly_base_start=2020, anomaly_base_end=1991)


def test_the_relative_index_file_may_be_disabled_and_the_phase_index_defaults_to_roni(
        monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert settings.phase_index == "roni"
    assert settings.relative_index_url == "https://www.cpc.ncep.noaa.gov/data/indices/Rnino34.ascii.txt"
    monkeypatch.setenv("ENSO_RELATIVE_INDEX_URL", "")
    monkeypatch.setenv("ENSO_PHASE_INDEX", "oni")
    settings = load_settings()
    assert (settings.relative_index_url, settings.phase_index) == ("", "oni")


def test_ersst_settings_a_version_without_a_known_folder_needs_a_base_url() -> None:
    assert Settings(ersst_version="v5").ersst_base_url == ""  # NCEI's known v5 folder
    assert load_settings(ersst_version="v6", ersst_file_template="ersst.{version}.{year:04d}{month:02d}.nc")
    with pytest.raises(SettingsError, match="ENSO_ERSST_VERSION='v7' has no known NCEI folder.*ENSO_ERSST_BASE_URL"):
        load_settings(ersst_version="v7")
    assert load_settings(ersst_version="v7", ersst_base_url="https://example.org/ersst/v7/").ersst_version == "v7"


def test_the_stale_input_alarm_judges_at_the_clock_unless_a_past_time_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().stale_input_as_of is None
    monkeypatch.setenv("ENSO_STALE_INPUT_AS_OF", " ")
    assert load_settings().stale_input_as_of is None
    utc = dt.timezone.utc
    for text, expected in [("2020-08-05", dt.datetime(2020, 8, 5, tzinfo=utc)),  # no offset: UTC
                           ("2020-08-05T08:00+02:00", dt.datetime(2020, 8, 5, 6, tzinfo=utc))]:
        monkeypatch.setenv("ENSO_STALE_INPUT_AS_OF", text)
        assert load_settings().stale_input_as_of == expected
