"""Settings from ``ENSO_*`` environment variables (documented in the README).

One :class:`Settings` object is read at the edge (CLI, flow) and passed down;
library functions take plain arguments so tests never need the environment.
"""

from __future__ import annotations

import json
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

IndexFormat = Literal["cpc-detrend-sst", "cpc-detrend", "cpc-monthly", "mcnoldy", "cpc-oni", "psl"]
SstSource = Literal["cobe", "ersst"]

DEFAULT_COBE_BASE_URL = "https://ds.data.jma.go.jp/tcc/tcc/products/elnino/cobesst/gpvdata"
#: CPC's ERSSTv6-based monthly Niño 3.4 since August 2026 (``YR MON TOTAL ClimAdjust ANOM``).
DEFAULT_INDEX_URL = "https://www.cpc.ncep.noaa.gov/data/indices/detrend.nino34.ascii.txt"
#: The ERSSTv5 file CPC stopped updating in 2026 (still selectable with ENSO_INDEX_FORMAT=cpc-monthly).
ERSST5_INDEX_URL = "https://www.cpc.ncep.noaa.gov/data/indices/ersst5.nino.mth.91-20.ascii"


class Settings(BaseSettings):
    """Every knob of the system; each field is read from ``ENSO_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="ENSO_", extra="ignore")

    database_url: str = Field(
        default="",
        description="SQLAlchemy URL of the store; default: SQLite file var/enso.sqlite in the working directory.",
    )
    cobe_base_url: str = DEFAULT_COBE_BASE_URL
    index_url: str = DEFAULT_INDEX_URL
    index_format: IndexFormat = Field(
        default="cpc-detrend-sst",
        description="Layout of ENSO_INDEX_URL; cpc-detrend-sst reads TOTAL and computes fixed-base anomalies.",
    )
    ersst_version: str = Field(default="v6", description="ERSST version (v5 files were discontinued in 2026).")
    ersst_base_url: str = Field(
        default="", description="Folder of the ERSST monthly files; empty: NCEI's folder of ENSO_ERSST_VERSION.")
    ersst_file_template: str = Field(
        default="ersst.{version}.{year:04d}{month:02d}.nc",
        description="File name of one ERSST month below the base URL ({version}, {year}, {month} filled in).",
    )
    ersst_variable: str = Field(default="sst", description="Name of the SST variable in an ERSST file.")
    ersst_time_name: str = "time"
    ersst_lat_name: str = "lat"
    ersst_lon_name: str = "lon"
    http_timeout: float = Field(default=60.0, description="Seconds for connect and for each read.")
    http_retries: int = Field(default=4, description="Retries after the first try, with exponential backoff.")
    http_backoff: float = Field(default=1.0, description="First backoff in seconds (doubles each retry).")
    sst_source: SstSource = "cobe"
    # The day of the next month by which each provider has usually published a month (enso.publication)
    index_publication_day: int = Field(default=8, ge=1, le=28, description="CPC: by the 5th-8th.")
    cobe_publication_day: int = Field(default=10, ge=1, le=28, description="JMA COBE-SST: about the 10th (inferred).")
    ersst_publication_day: int = Field(default=7, ge=1, le=28, description="NCEI ERSST: early in the month.")
    data_dir: Path = Field(default=Path("var"), description="Working files: downloads, models, reports.")
    anomaly_base_start: int = 1991
    anomaly_base_end: int = 2020

    # Reports and email
    report_dir: Path = Path("var/reports")
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_user: str = ""
    smtp_password: str = Field(default="", repr=False)
    smtp_security: Literal["starttls", "ssl", "none"] = "starttls"
    smtp_timeout: float = 30.0
    report_from: str = "enso-forecast@localhost"
    report_to: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Report recipients: a JSON list or comma-separated addresses.",
    )

    # The model the monthly run trains when there is no champion (or retraining is due)
    model_preset: str = Field(default="cpu-small", description="Preset trained by `retrain` and the monthly run.")
    model_members: int | None = Field(
        default=None, ge=1, description="Ensemble size override (default: the preset's); recorded with the model.")
    train_end: str = Field(default="1979-12", description="Last init month of the training period (YYYY-MM).")
    valid_end: str = Field(default="1989-12", description="Last month of the validation (selection) period.")
    retrain_after_months: int = Field(
        default=12, description="The monthly run retrains when the champion is older than this many months.")
    monthly_retries: int = Field(
        default=6, description="How often a monthly run waiting for unpublished data retries before failing.")
    monthly_retry_delay: int = Field(default=6 * 3600, description="Seconds between those retries.")

    # Schedules of the Prefect deployments (see deployments/deploy.py)
    monthly_cron: str = Field(
        default="0 6 12 * *",
        description="Cron of the monthly run (ingest, forecast, verify, report, email); default the 12th 06:00.",
    )
    retrain_cron: str = Field(default="0 8 1 1,4,7,10 *", description="Cron of the retraining run (quarterly).")
    schedule_timezone: str = Field(default="UTC", description="IANA timezone the crons are read in (DST-aware).")

    @field_validator("schedule_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        """Reject a timezone the scheduler would not know at startup, rather than at deploy time."""
        return iana_timezone(value)

    @field_validator("report_to", mode="before")
    @classmethod
    def _split_recipients(cls, value: object) -> object:
        """Accept ``["a@x", "b@y"]`` (JSON) or ``a@x, b@y`` from the environment, or a list."""
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("["):
            try:
                return json.loads(text)
            except json.JSONDecodeError as error:
                raise ValueError(f"ENSO_REPORT_TO is not a valid JSON list: {error}") from None
        return [part.strip() for part in text.split(",") if part.strip()]

    def resolved_database_url(self) -> str:
        """The configured URL, or the embedded SQLite default under ``data_dir``."""
        if self.database_url:
            return self.database_url
        path = (self.data_dir / "enso.sqlite").resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path}"

    @property
    def download_dir(self) -> Path:
        return self.data_dir / "downloads"


def iana_timezone(name: str) -> str:
    """``name`` if it is a timezone of the IANA database (``UTC``, ``Europe/Berlin``), else ValueError."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not an IANA timezone (e.g. UTC, Europe/Berlin)") from None
    return name


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with explicit overrides (for tests and flows)."""
    return Settings(**overrides)  # type: ignore[arg-type]
