"""Settings from ``ENSO_*`` environment variables (documented in the README).

One :class:`Settings` object is read at the edge (CLI, flow) and passed down;
library functions take plain arguments so tests never need the environment.

Every value is checked when the settings load (URLs, the database URL, positive
timeouts, non-negative retries, e-mail addresses, the model preset, crons, size
limits): :func:`load_settings` raises one :class:`SettingsError` that lists every
bad ``ENSO_*`` variable, and :func:`exit_on_invalid_settings` turns it into exit
status 2 with that message and no traceback (the entry points call it first).
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import re
import sys
from functools import cache
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from enso.months import Month

IndexFormat = Literal["cpc-detrend-sst", "cpc-detrend", "cpc-monthly", "mcnoldy", "cpc-oni", "psl"]
SstSource = Literal["cobe", "ersst"]
#: What the monthly run does when the GPU pool cannot retrain (see ``retrain_fallback``).
RetrainFallback = Literal["cpu", "wait", "fail"]
#: The index whose 3-month mean defines the observed ENSO phase: RONI (CPC's official one since February 2026)
#: or the traditional ONI.
PhaseIndexName = Literal["roni", "oni"]

#: Each password setting and the setting naming a Prefect Secret block that may hold it instead.
#: The flows resolve the blocks (``flows.settings.run_settings``); this module knows no Prefect.
SECRET_BLOCK_FIELDS: dict[str, str] = {
    "smtp_password": "smtp_password_block",
    "database_password": "database_password_block",
}

DEFAULT_COBE_BASE_URL = "https://ds.data.jma.go.jp/tcc/tcc/products/elnino/cobesst/gpvdata"
#: CPC's ERSSTv6-based monthly Niño 3.4 since August 2026 (``YR MON TOTAL ClimAdjust ANOM``).
DEFAULT_INDEX_URL = "https://www.cpc.ncep.noaa.gov/data/indices/detrend.nino34.ascii.txt"
#: CPC's monthly relative Niño 3.4 index (``YR MTH ANOM``), whose 3-month mean is RONI.
DEFAULT_RELATIVE_INDEX_URL = "https://www.cpc.ncep.noaa.gov/data/indices/Rnino34.ascii.txt"
#: The ERSSTv5 file CPC stopped updating in 2026 (still selectable with ENSO_INDEX_FORMAT=cpc-monthly).
ERSST5_INDEX_URL = "https://www.cpc.ncep.noaa.gov/data/indices/ersst5.nino.mth.91-20.ascii"
#: NCEI's folder of each ERSST version's monthly files (v6: inferred, see enso.sources.ersst); another
#: version needs ENSO_ERSST_BASE_URL.
ERSST_BASE_URLS = {
    "v5": "https://www.ncei.noaa.gov/pub/data/cmb/ersst/v5/netcdf",
    "v6": "https://www.ncei.noaa.gov/pub/data/cmb/ersst/v5/v6",
}

#: The most bytes one downloaded file of each kind may have, compressed on the wire and decompressed.
#: An order of magnitude above the real files: COBE-SST GRIB about 140 kB, an NCEI ERSST netCDF month
#: 135-165 kB, the NOAA index tables 15-150 kB.
DEFAULT_HTTP_MAX_BYTES: dict[str, int] = {"cobe": 4 * 2**20, "ersst": 16 * 2**20, "index": 4 * 2**20}
#: Database drivers the store runs on (``postgresql://`` is mapped to psycopg 3 by db.engine).
DATABASE_DRIVERS = ("sqlite", "sqlite+pysqlite", "postgresql", "postgres", "postgresql+psycopg")


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
    index_format: IndexFormat = Field(
        default="cpc-detrend-sst",
        description="Layout of ENSO_INDEX_URL; cpc-detrend-sst reads TOTAL and computes fixed-base anomalies.",
    )
    relative_index_url: str = Field(
        default=DEFAULT_RELATIVE_INDEX_URL,
        description="CPC's monthly relative Niño 3.4 file (Rnino34.ascii.txt, product 'relative'); empty: none "
                    "(the relative index is then computed from the stored SST grids).",
    )
    phase_index: PhaseIndexName = Field(
        default="roni",
        description="The index that defines the observed ENSO phase: roni (CPC's official definition) or oni.",
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
    http_timeout: float = Field(default=60.0, gt=0, description="Seconds for connect and for each read.")
    http_retries: int = Field(default=4, ge=0, description="Retries after the first try, with exponential backoff.")
    http_backoff: float = Field(default=1.0, ge=0, description="First backoff in seconds (doubles each retry).")
    http_deadline: float = Field(
        default=300.0, gt=0,
        description="Seconds one file may take in all, every try and wait included (a trickling server ends here).")
    http_max_bytes: Annotated[dict[str, int], NoDecode] = Field(
        default_factory=lambda: dict(DEFAULT_HTTP_MAX_BYTES),
        description="Most bytes per downloaded file, per kind: 'cobe=4MiB,ersst=16MiB,index=4MiB' "
                    "(kinds not named keep their default), or one size for every kind.",
    )
    sst_source: SstSource = "cobe"
    # The day of the next month by which each provider has usually published a month (enso.publication)
    index_publication_day: int = Field(default=8, ge=1, le=28, description="CPC: by the 5th-8th.")
    cobe_publication_day: int = Field(default=10, ge=1, le=28, description="JMA COBE-SST: about the 10th (inferred).")
    ersst_publication_day: int = Field(default=7, ge=1, le=28, description="NCEI ERSST: early in the month.")
    stale_input_as_of: dt.datetime | None = Field(
        default=None,
        description="The time the stale-input alarm judges the inputs at (ISO 8601, UTC unless an offset is "
                    "given), instead of the clock; empty: the clock. For tests and replays against an archive "
                    "that ends in the past; never set it in operation: a fixed time hides a provider that stopped.",
    )
    data_dir: Path = Field(default=Path("var"), description="Working files: downloads, models, reports.")
    anomaly_base_start: int = 1991
    anomaly_base_end: int = 2020

    # Reports and email
    report_dir: Path = Path("var/reports")
    smtp_host: str = ""
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_user: str = ""
    smtp_password: SecretStr = Field(default=SecretStr(""), description="The SMTP login's password.")
    smtp_password_block: str = Field(
        default="", description="Name of a Prefect Secret block holding the SMTP password (instead of the value).")
    smtp_security: Literal["starttls", "ssl", "none"] = "starttls"
    smtp_timeout: float = Field(default=30.0, gt=0)
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
    train_end: Month | None = Field(
        default=None, description="Research: last month of the training period (YYYY-MM); unset (the "
                                  "default): rolling, the newest month minus ENSO_VALID_YEARS.")
    valid_end: Month | None = Field(
        default=None, description="Research: last month of the selection period (YYYY-MM); unset (the "
                                  "default): rolling, the newest month with grids and index.")
    valid_years: int = Field(
        default=10, ge=2, le=40,
        description="Years of the rolling selection window (newest months) that choose and calibrate the model.")
    retrain_after_months: int = Field(
        default=12, ge=1, description="The monthly run retrains when the champion is older than this many months.")
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

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        return database_url(value) if value else value

    @field_validator("cobe_base_url", "index_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return http_url(value)

    @field_validator("ersst_base_url", "relative_index_url")
    @classmethod
    def _optional_http_url(cls, value: str) -> str:
        """Empty (ERSST: NCEI's folder of the version; the relative index: none) or an http(s) URL."""
        return http_url(value) if value.strip() else ""

    @field_validator("stale_input_as_of", mode="before")
    @classmethod
    def _empty_as_of(cls, value: object) -> object:
        """An empty ENSO_STALE_INPUT_AS_OF means the clock (None)."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("stale_input_as_of")
    @classmethod
    def _past_as_of(cls, value: dt.datetime | None) -> dt.datetime | None:
        """In UTC (a time without an offset is UTC); not after the clock (no month after it is complete)."""
        if value is None:
            return None
        value = value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value.astimezone(dt.timezone.utc)
        if value > dt.datetime.now(dt.timezone.utc):
            raise ValueError(f"{value:%Y-%m-%d %H:%M} UTC is in the future: the alarm can judge the inputs at a "
                             "past time only (or leave it empty for the clock)")
        return value

    @field_validator("ersst_version")
    @classmethod
    def _ersst_version(cls, value: str) -> str:
        if not re.fullmatch(r"v\d+(\.\d+)*", value.strip()):
            raise ValueError("expected an ERSST version such as v6 or v5")
        return value.strip()

    @field_validator("ersst_variable", "ersst_time_name", "ersst_lat_name", "ersst_lon_name")
    @classmethod
    def _netcdf_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.\-]*", value.strip()):
            raise ValueError("expected the name of a netCDF variable or dimension, e.g. sst, time, lat, lon")
        return value.strip()

    @field_validator("ersst_file_template")
    @classmethod
    def _file_template(cls, value: str) -> str:
        try:
            name = value.format(version="v6", year=2000, month=1)
        except (KeyError, IndexError, ValueError) as error:
            raise ValueError(f"not a file name template with {{version}}, {{year}} and {{month}} ({error})") from None
        if "/" in name or name == value or value.format(version="v6", year=2000, month=2) == name:
            raise ValueError("expected one file name using {year} and {month} (and optionally {version}), "
                             "e.g. ersst.{version}.{year:04d}{month:02d}.nc")
        return value

    @field_validator("http_max_bytes", mode="before")
    @classmethod
    def _max_bytes(cls, value: object) -> object:
        return max_bytes_per_kind(value) if isinstance(value, str) else value

    @field_validator("http_max_bytes")
    @classmethod
    def _known_kinds(cls, value: dict[str, int]) -> dict[str, int]:
        unknown = sorted(set(value) - set(DEFAULT_HTTP_MAX_BYTES))
        if unknown:
            raise ValueError(f"unknown file kind(s) {', '.join(unknown)}: the kinds are "
                             f"{', '.join(DEFAULT_HTTP_MAX_BYTES)}")
        if any(size <= 0 for size in value.values()):
            raise ValueError("every size must be positive")
        return {**DEFAULT_HTTP_MAX_BYTES, **value}

    @field_validator("report_from")
    @classmethod
    def _sender(cls, value: str) -> str:
        return email_address(value)

    @field_validator("report_to", "alert_to")
    @classmethod
    def _recipients(cls, value: list[str]) -> list[str]:
        bad = [address for address in value if not _is_email_address(address)]
        if bad:
            raise ValueError(f"not an e-mail address: {', '.join(repr(_shorten(a)) for a in bad)}")
        return value

    @field_validator("model_preset")
    @classmethod
    def _known_preset(cls, value: str) -> str:
        names = model_preset_names()
        if value not in names:
            raise ValueError(f"unknown model preset {_shorten(value)!r}; choose one of {', '.join(names)}")
        return value

    @field_validator("train_end", "valid_end", mode="before")
    @classmethod
    def _month(cls, value: object) -> object:
        """A Month from ``YYYY-MM`` text (parsed once, here); a Month or None passes."""
        if value is None or isinstance(value, Month):
            return value
        if not isinstance(value, str) or not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", value.strip()):
            raise ValueError("expected a month as YYYY-MM, e.g. 1979-12")
        return Month.parse(value)

    @field_validator("monthly_cron", "retrain_cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        return cron_expression(value)

    @field_validator("smtp_host")
    @classmethod
    def _host(cls, value: str) -> str:
        if value and not re.fullmatch(r"[A-Za-z0-9.\-:\[\]]+", value):
            raise ValueError("expected a host name or address (no scheme, path or spaces), e.g. smtp.example.org")
        return value

    @model_validator(mode="after")
    def _periods(self) -> "Settings":
        """Relations between fields, once each field is valid on its own."""
        problems = []
        if not 1850 <= self.anomaly_base_start <= self.anomaly_base_end <= 2100:
            problems.append(f"ENSO_ANOMALY_BASE_START/_END {self.anomaly_base_start}-{self.anomaly_base_end}: "
                            "expected first year <= last year, within 1850-2100")
        if (self.train_end is None) != (self.valid_end is None):
            problems.append("ENSO_TRAIN_END and ENSO_VALID_END go together (fixed research periods); unset both "
                            "for the rolling windows of operation")
        if self.train_end is not None and self.valid_end is not None and self.train_end >= self.valid_end:
            problems.append(f"ENSO_TRAIN_END {self.train_end} must come before ENSO_VALID_END {self.valid_end}")
        if not self.ersst_base_url and self.ersst_version not in ERSST_BASE_URLS:
            problems.append(f"ENSO_ERSST_VERSION={self.ersst_version!r} has no known NCEI folder (known: "
                            f"{', '.join(ERSST_BASE_URLS)}): set ENSO_ERSST_BASE_URL to the folder of its "
                            "monthly files")
        if problems:
            raise ValueError("; ".join(problems))
        return self

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

    def max_bytes(self, kind: str) -> int:
        """The size limit of one downloaded file of ``kind`` (``cobe``, ``ersst`` or ``index``)."""
        return self.http_max_bytes.get(kind, DEFAULT_HTTP_MAX_BYTES[kind])

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


class SettingsError(ValueError):
    """Some ``ENSO_*`` variables are invalid; the message lists every one of them and what is wrong."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid settings; fix these environment variables (or .env), then rerun:\n"
                         + "\n".join(f"  {p}" for p in problems))


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with explicit overrides (for tests and flows).

    Raises :class:`SettingsError` listing every invalid variable at once.
    """
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        raise SettingsError(settings_problems(error)) from None


def exit_on_invalid_settings() -> None:
    """Exit with status 2 and the list of bad ``ENSO_*`` variables (no traceback) if the settings are invalid.

    Called first by every entry point (the ``enso`` command, the flow modules a
    Prefect worker runs), so a bad value stops everything at once, clearly.
    """
    try:
        load_settings()
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def settings_problems(error: ValidationError) -> list[str]:
    """One line per invalid variable: ``ENSO_NAME='value': what is wrong`` (secrets never shown)."""
    problems = []
    for item in error.errors(include_url=False):
        message = str(item["msg"]).removeprefix("Value error, ")
        if not item["loc"]:
            problems.append(message)
            continue
        field = str(item["loc"][0])
        variable = f"ENSO_{field.upper()}"
        value = item.get("input")
        if isinstance(value, (str, int, float)) and field not in SECRET_BLOCK_FIELDS:
            shown = _redact_url(str(value)) if field == "database_url" else str(value)
            variable += f"={_shorten(shown)!r}"
        if len(item["loc"]) > 1:
            variable += f" (item {item['loc'][1]})"
        problems.append(f"{variable}: {message}")
    return problems


def database_url(value: str) -> str:
    """``value`` if it is a database URL of a supported driver (SQLite or PostgreSQL with psycopg 3)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    example = "e.g. postgresql+psycopg://user@host:5432/enso or sqlite:///var/enso.sqlite"
    try:
        url = make_url(value)
    except ArgumentError:
        raise ValueError(f"not a database URL ({example})") from None
    except ValueError:
        raise ValueError(f"the port is not a number; {example}") from None
    if url.drivername not in DATABASE_DRIVERS:
        raise ValueError(f"database driver {url.drivername!r} is not supported: use "
                         f"postgresql+psycopg:// (PostgreSQL) or sqlite:/// ({example})")
    if url.get_backend_name() == "postgresql" and not url.database:
        raise ValueError(f"the URL names no database ({example})")
    return value


def http_url(value: str) -> str:
    """``value`` if it is an http(s) URL with a host."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or " " in value.strip():
        raise ValueError("expected an http:// or https:// URL with a host")
    try:
        parts.port  # noqa: B018 (a bad port raises here)
    except ValueError as error:
        raise ValueError(f"bad port in the URL ({error})") from None
    return value.strip()


_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KIB|MIB|GIB|K|M|G)?\s*", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "K": 2**10, "KIB": 2**10, "M": 2**20,
          "MIB": 2**20, "G": 2**30, "GIB": 2**30}


def byte_size(text: str) -> int:
    """Bytes of ``4MiB``, ``500kB``, ``2000000``."""
    match = _SIZE.fullmatch(text)
    if not match:
        raise ValueError(f"{_shorten(text)!r} is not a size (e.g. 4MiB, 500kB, 2000000)")
    return int(float(match.group(1)) * _UNITS[(match.group(2) or "").upper()])


def max_bytes_per_kind(text: str) -> dict[str, int]:
    """``cobe=4MiB,index=2MiB`` (named kinds) or ``8MiB`` (every kind) as sizes per kind."""
    text = text.strip()
    if "=" not in text:
        size = byte_size(text)
        return {kind: size for kind in DEFAULT_HTTP_MAX_BYTES}
    sizes = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        kind, _, size = part.partition("=")
        sizes[kind.strip().lower()] = byte_size(size)
    return sizes


_EMAIL = re.compile(r"[^@\s<>(),;:\"\[\]]+@[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)*")


def _is_email_address(value: str) -> bool:
    from email.utils import parseaddr

    name, address = parseaddr(value)
    return bool(address) and _EMAIL.fullmatch(address) is not None


def email_address(value: str) -> str:
    """``value`` if it is one address (``user@host`` or ``Name <user@host>``); the host may be ``localhost``."""
    if not _is_email_address(value):
        raise ValueError("not an e-mail address (expected user@host or 'Name <user@host>')")
    return value


def cron_expression(value: str) -> str:
    """``value`` if it is a 5-field cron expression the scheduler accepts."""
    from cronsim import CronSim, CronSimError

    try:
        CronSim(value, dt.datetime(2000, 1, 1))
    except CronSimError as error:
        raise ValueError(f"not a cron expression ({error}); e.g. '0 6 12 * *' = the 12th at 06:00") from None
    if len(value.split()) != 5:
        raise ValueError("expected 5 fields: minute hour day-of-month month day-of-week")
    return value


@cache
def model_preset_names() -> tuple[str, ...]:
    """Names of the model presets, read from ``enso/model/presets.py`` without importing torch.

    (Importing ``enso.model.presets`` runs ``enso/model/__init__.py``, which imports
    torch: seconds that every ``enso status`` would pay. The presets module itself
    only defines dataclasses, so it is executed on its own, under a private name.)
    """
    path = Path(__file__).resolve().parent / "model" / "presets.py"
    spec = importlib.util.spec_from_file_location("_enso_preset_names", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(spec.name, None)
    return tuple(module.PRESETS)


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _redact_url(text: str) -> str:
    return re.sub(r"(://[^:/@\s]*:)[^@\s]*@", r"\1***@", text)
