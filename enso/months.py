"""Calendar months: the one month type used everywhere.

A :class:`Month` is a year and a month (no day). Forecast bookkeeping is month
arithmetic: ``target_month = init_month + lead``. Months order, hash and print as
``YYYY-MM``.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Iterator

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

    def to_timestamp(self) -> "object":
        import pandas as pd

        return pd.Timestamp(self.year, self.month, 1)


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


def iter_months(start: Month | str, end: Month | str) -> Iterator[Month]:
    a, b = Month.parse(start), Month.parse(end)
    return (Month(i) for i in range(a.ordinal, b.ordinal + 1))


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


def to_periods(months: "object") -> "object":
    """A monthly ``pandas.PeriodIndex`` from an iterable of Months, Periods or ``YYYY-MM`` strings."""
    import pandas as pd

    values = months.array if isinstance(months, pd.Series) else months
    if isinstance(values, (pd.PeriodIndex, pd.arrays.PeriodArray)):
        return pd.PeriodIndex(values, freq="M")
    return pd.PeriodIndex([pd.Period(str(m), freq="M") for m in values])  # type: ignore[union-attr]
