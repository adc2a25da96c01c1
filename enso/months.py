"""Calendar months: the one month type used everywhere.

A :class:`Month` is a year and a month (no day). Forecast bookkeeping is month
arithmetic: ``target_month = init_month + lead``. Months order, hash and print as
``YYYY-MM``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
from dataclasses import dataclass

_PATTERN = re.compile(r"^\s*(\d{4})-(\d{1,2})\s*$")


@dataclass(frozen=True, order=True, slots=True)
class Month:
    """A calendar month, stored as months since year 0 so that ordering is numeric."""

    ordinal: int

    @classmethod
    def of(cls, year: int, month: int) -> "Month":
        if not 1 <= month <= 12:
            raise ValueError(f"month must be 1..12, got {month} (year {year})")
        return cls(year * 12 + month - 1)

    @classmethod
    def parse(cls, text: "str | Month") -> "Month":
        """Parse ``YYYY-MM`` (``YYYY-M`` accepted); a Month passes through."""
        if isinstance(text, Month):
            return text
        m = _PATTERN.match(str(text))
        if not m:
            raise ValueError(f"not a month: {text!r} (expected YYYY-MM, e.g. 2024-03)")
        return cls.of(int(m.group(1)), int(m.group(2)))

    @classmethod
    def from_date(cls, when: dt.date | dt.datetime) -> "Month":
        return cls.of(when.year, when.month)

    @classmethod
    def current(cls) -> "Month":
        return cls.from_date(dt.datetime.now(dt.timezone.utc))

    @property
    def year(self) -> int:
        return self.ordinal // 12

    @property
    def month(self) -> int:
        return self.ordinal % 12 + 1

    @property
    def first_day(self) -> dt.date:
        return dt.date(self.year, self.month, 1)

    def __add__(self, months: int) -> "Month":
        if not isinstance(months, int):
            return NotImplemented
        return Month(self.ordinal + months)

    def __sub__(self, other: "int | Month") -> "Month | int":  # type: ignore[override]
        if isinstance(other, Month):
            return self.ordinal - other.ordinal
        if isinstance(other, int):
            return Month(self.ordinal - other)
        return NotImplemented

    def months_since(self, other: "Month") -> int:
        """Typed alternative to ``self - other`` for month differences."""
        return self.ordinal - other.ordinal

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    def __repr__(self) -> str:
        return f"Month({self})"

    @classmethod
    def __get_pydantic_core_schema__(cls, source: object, handler: object) -> object:
        """Pydantic (settings, Prefect flow parameters): a Month, or ``YYYY-MM`` text; dumped as ``YYYY-MM``.

        A deployment's parameters arrive as JSON text, so the JSON schema is a string
        of that pattern. ``{"ordinal": n}`` is accepted too: Prefect records a Month
        passed to a flow in-process so (FastAPI's encoder turns dataclasses into
        dicts), and a retry of that run reads it back.
        """
        from pydantic_core import core_schema

        return core_schema.no_info_plain_validator_function(
            cls._validate, json_schema_input_schema=core_schema.str_schema(pattern=_PATTERN.pattern),
            serialization=core_schema.plain_serializer_function_ser_schema(str))

    @classmethod
    def _validate(cls, value: object) -> "Month":
        if isinstance(value, Month):
            return value
        if isinstance(value, dict) and set(value) == {"ordinal"} and isinstance(value["ordinal"], int):
            return cls(value["ordinal"])
        if isinstance(value, str):
            try:
                return cls.parse(value)
            except ValueError:
                pass
        raise ValueError(f"not a month: {value!r} (expected YYYY-MM, e.g. 2024-03)")


def month_range(start: Month | str, end: Month | str) -> list[Month]:
    """All months from ``start`` to ``end`` inclusive (empty if end < start)."""
    a, b = Month.parse(start), Month.parse(end)
    return [Month(i) for i in range(a.ordinal, b.ordinal + 1)]


def month_chunks(start: Month, end: Month, size: int) -> list[tuple[Month, Month]]:
    """``start``..``end`` cut into consecutive ranges of at most ``size`` months (first, last), in order."""
    if size < 1:
        raise ValueError(f"a chunk must hold at least one month, got {size}")
    firsts = range(start.ordinal, end.ordinal + 1, size)
    return [(Month(a), Month(min(a + size - 1, end.ordinal))) for a in firsts]


def month_arg(text: str) -> Month:
    """An argparse ``type``: a month as ``YYYY-MM``, parsed once at the command line; a bad value is a usage
    error that says what was expected."""
    try:
        return Month.parse(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a month: {text!r} (expected YYYY-MM, e.g. 2024-03)") from None


def last_complete_month(now: dt.datetime | None = None) -> Month:
    """The newest month that has fully ended at ``now`` (UTC)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    return Month.from_date(now) - 1  # type: ignore[return-value]


def to_period(month: "Month | str | object") -> "object":
    """A monthly ``pandas.Period`` from a Month, a Period or a ``YYYY-MM`` string.

    Cubes (:func:`enso.grids.stack`) and index series are keyed by Periods; this is
    the one bridge from :class:`Month` to them.
    """
    import pandas as pd

    return pd.Period(str(month), freq="M")


def from_period(period: "object") -> Month:
    """The Month of a monthly ``pandas.Period`` (the way back from :func:`to_period`)."""
    return Month.of(period.year, period.month)  # type: ignore[attr-defined]


def to_periods(months: "object") -> "object":
    """A monthly ``pandas.PeriodIndex`` from an iterable of Months, Periods or ``YYYY-MM`` strings."""
    import pandas as pd

    values = months.array if isinstance(months, pd.Series) else months
    if isinstance(values, (pd.PeriodIndex, pd.arrays.PeriodArray)):
        return pd.PeriodIndex(values, freq="M")
    return pd.PeriodIndex([pd.Period(str(m), freq="M") for m in values])  # type: ignore[union-attr]
