"""Settings from ``ENSO_*`` environment variables (documented in the README).

One :class:`Settings` object is read at the edge (CLI, flow) and passed down;
library functions take plain arguments so tests never need the environment.
"""

from __future__ import annotations

import json
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
from typing import Annotated, Literal
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

IndexFormat = Literal["cpc-monthly", "mcnoldy", "cpc-oni", "psl"]
SstSource = Literal["cobe", "ersst"]
#: What the monthly run does when the GPU pool cannot retrain (see ``retrain_fallback``).
RetrainFallback = Literal["cpu", "wait", "fail"]

#: Each password setting and the setting naming a Prefect Secret block that may hold it instead.
#: The flows resolve the blocks (``flows.settings.run_settings``); this module knows no Prefect.
SECRET_BLOCK_FIELDS: dict[str, str] = {
    "smtp_password": "smtp_password_block",
    "database_password": "database_password_block",
}

DEFAULT_COBE_BASE_URL = "https://ds.data.jma.go.jp/tcc/tcc/products/elnino/cobesst/gpvdata"
DEFAULT_INDEX_URL = "https://www.cpc.ncep.noaa.gov/data/indices/ersst5.nino.mth.91-20.ascii"
DEFAULT_ERSST_BASE_URL = "https://www.ncei.noaa.gov/pub/data/cmb/ersst/v5/netcdf"


class Settings(BaseSettings):
    """Every knob of the system; each field is read from ``ENSO_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="ENSO_", extra="ignore")

    database_url: str = Field(
        default="",
        repr=False,  # it may carry a password
        description="SQLAlchemy URL of the store; default: SQLite file var/enso.sqlite in the working directory.",
    )
    database_password: SecretStr = Field(
        default=SecretStr(""),
        description="The store's password, put into ENSO_DATABASE_URL (which then carries none).",
    )
    database_password_block: str = Field(
        default="", description="Name of a Prefect Secret block holding the store's password (instead of the value).")
    cobe_base_url: str = DEFAULT_COBE_BASE_URL
    index_url: str = DEFAULT_INDEX_URL
    index_format: IndexFormat = "cpc-monthly"
    ersst_base_url: str = DEFAULT_ERSST_BASE_URL
    ersst_file_template: str = Field(
        default="ersst.v5.{year:04d}{month:02d}.nc",
        description="File name of one ERSST month below ENSO_ERSST_BASE_URL (v6: change here).",
    )
    http_timeout: float = Field(default=60.0, description="Seconds for connect and for each read.")
    http_retries: int = Field(default=4, description="Retries after the first try, with exponential backoff.")
    http_backoff: float = Field(default=1.0, description="First backoff in seconds (doubles each retry).")
    sst_source: SstSource = "cobe"
    data_dir: Path = Field(default=Path("var"), description="Working files: downloads, models, reports.")
    anomaly_base_start: int = 1991
    anomaly_base_end: int = 2020

    # Reports and email
    report_dir: Path = Path("var/reports")
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_user: str = ""
    smtp_password: SecretStr = Field(default=SecretStr(""), description="The SMTP login's password.")
    smtp_password_block: str = Field(
        default="", description="Name of a Prefect Secret block holding the SMTP password (instead of the value).")
    smtp_security: Literal["starttls", "ssl", "none"] = "starttls"
    smtp_timeout: float = 30.0
    report_from: str = "enso-forecast@localhost"
    report_to: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Report recipients: a JSON list or comma-separated addresses.",
    )
    alert_to: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Who is emailed when a flow run fails or crashes (once per run): a JSON list or "
                    "comma-separated addresses; empty turns alerts off.",
    )

    # The model the monthly run trains when there is no champion (or retraining is due)
    model_preset: str = Field(default="cpu-small", description="Preset trained by `retrain` and the monthly run.")
    model_members: int | None = Field(
        default=None, ge=1, description="Ensemble size override (default: the preset's); recorded with the model.")
    train_end: str = Field(default="1979-12", description="Last init month of the training period (YYYY-MM).")
    valid_end: str = Field(default="1989-12", description="Last month of the validation (selection) period.")
    retrain_after_months: int = Field(
        default=12, description="The monthly run retrains when the champion is older than this many months.")
    retrain_timeout: float = Field(
        default=4 * 3600, gt=0,
        description="Seconds the monthly run waits for the `retrain` run it submitted to the GPU pool "
                    "(queued and running); then it cancels that run and falls back.")
    retrain_fallback: RetrainFallback = Field(
        default="cpu",
        description="When the GPU pool cannot retrain (no worker online, timeout, the run failed): `cpu` trains "
                    "ENSO_MODEL_PRESET in the monthly run itself, `wait` keeps the current model and says so, "
                    "`fail` fails the monthly run.")
    monthly_retries: int = Field(
        default=6, ge=0,
        description="How many later runs a monthly run waiting for unpublished data schedules before failing.")
    monthly_retry_delay: int = Field(
        default=6 * 3600, ge=0, description="Seconds from a run that found no data to the run it schedules.")
    hindcast_chunk_months: int = Field(
        default=120, ge=1,
        description="Init months per hindcast chunk; longer hindcasts fan out into concurrent chunks.")

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

    @field_validator("report_to", "alert_to", mode="before")
    @classmethod
    def _split_recipients(cls, value: object, info: ValidationInfo) -> object:
        """Accept ``["a@x", "b@y"]`` (JSON) or ``a@x, b@y`` from the environment, or a list."""
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("["):
            try:
                return json.loads(text)
            except json.JSONDecodeError as error:
                raise ValueError(f"ENSO_{str(info.field_name).upper()} is not a valid JSON list: {error}") from None
        return [part.strip() for part in text.split(",") if part.strip()]

    @model_validator(mode="after")
    def _one_source_per_password(self) -> "Settings":
        """A password comes from its setting or from a Prefect Secret block, not both; the URL carries none then."""
        for field, block_field in SECRET_BLOCK_FIELDS.items():
            if getattr(self, field).get_secret_value() and getattr(self, block_field):
                raise ValueError(f"ENSO_{field.upper()} and ENSO_{block_field.upper()} are both set: "
                                 "give the password one way")
        if (self.database_password.get_secret_value() or self.database_password_block) and \
                _url_password(self.database_url):
            raise ValueError("ENSO_DATABASE_URL carries a password and ENSO_DATABASE_PASSWORD(_BLOCK) is set too: "
                             "remove the password from the URL")
        return self

    def resolved_database_url(self) -> str:
        """The configured URL (with ``database_password`` put in), or the embedded SQLite default under ``data_dir``."""
        if self.database_url:
            password = self.database_password.get_secret_value()
            return _with_password(self.database_url, password) if password else self.database_url
        path = (self.data_dir / "enso.sqlite").resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path}"

    @property
    def download_dir(self) -> Path:
        return self.data_dir / "downloads"

    def secret_values(self) -> list[str]:
        """Every password this configuration holds (for scrubbing text that leaves the process)."""
        found = [getattr(self, field).get_secret_value() for field in SECRET_BLOCK_FIELDS]
        found.append(_url_password(self.database_url))
        return [value for value in found if value]


def _url_password(url: str) -> str:
    """The password in a URL's ``user:password@`` part ('' if none)."""
    netloc = urlsplit(url).netloc if "://" in url else ""
    userinfo = netloc.rpartition("@")[0]
    return unquote(userinfo.partition(":")[2]) if ":" in userinfo else ""


def _with_password(url: str, password: str) -> str:
    """``url`` with ``password`` (URL-quoted) after its user name."""
    parts = urlsplit(url)
    userinfo, _, hostport = parts.netloc.rpartition("@")
    if not userinfo:
        raise ValueError("ENSO_DATABASE_PASSWORD is set but ENSO_DATABASE_URL names no user (user@host)")
    netloc = f"{userinfo}:{quote(password, safe='')}@{hostport}"
    return urlunsplit(parts._replace(netloc=netloc))


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
