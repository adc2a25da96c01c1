"""Index vintages: what a new index file changes against the vintage held, and whether to take it.

Every download of an index file that differs from the one held is a new
*vintage* of its product; vintages are kept whole (append-only) and never
spliced. Before a vintage is accepted it is compared with the newest one held:

* months it **adds** (the provider published new ones);
* months it **revises** (a value or the phase changed: providers revise the
  newest months for about two months, and whole records when a base period or
  the SST analysis changes);
* months it **drops**.

A new file is refused (:class:`VintageRefused`, naming the file and the months)
when it drops months the held vintage has, apart from that vintage's newest
:data:`REVISABLE_MONTHS` (a provider may withdraw a provisional month), or when
months are missing inside it (a gap). An operator who knows the provider really
withdrew months takes the file anyway with ``accept_shrink``; the change then
records what was accepted. Non-finite values never get this far: the parsers
reject them (:mod:`enso.sources.index`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from enso.months import Month
from enso.sources import InvalidFile

#: Newest months of the held vintage that a new vintage may drop without being refused.
REVISABLE_MONTHS = 3
#: Columns compared between vintages.
COMPARED_COLUMNS = ("nino34", "anomaly", "oni", "phase")
#: Values closer than this (°C) are the same (the files carry two decimals).
TOLERANCE = 1e-6


class VintageRefused(InvalidFile):
    """A new index file would lose months the store holds (or has gaps): nothing was stored."""


@dataclass(frozen=True)
class Revision:
    """One month whose values changed between two vintages: column -> (old, new)."""

    month: Month
    changes: dict[str, tuple[object, object]]

    def __str__(self) -> str:
        parts = []
        for column, (old, new) in self.changes.items():
            parts.append(f"{column} {_show(old)} -> {_show(new)}")
        return f"{self.month} " + ", ".join(parts)


@dataclass(frozen=True)
class VintageChange:
    """How a new vintage differs from the one held (``previous`` None: the first vintage)."""

    added: list[Month]
    revised: list[Revision]
    removed: list[Month]
    #: Why the vintage was refusable but taken with ``accept_shrink`` (empty when it passed the checks).
    accepted_problems: list[str] = field(default_factory=list)

    @property
    def any(self) -> bool:
        return bool(self.added or self.revised or self.removed)

    def summary(self, shown: int = 6) -> str:
        """E.g. ``1 new (2025-08); 2 revised (2025-06 anomaly +0.12 -> +0.15, ...); 0 removed``."""
        text = (f"{len(self.added)} new{_months_note(self.added)}; {len(self.revised)} revised"
                + (f" ({'; '.join(str(r) for r in self.revised[:shown])}"
                   + ("; ..." if len(self.revised) > shown else "") + ")" if self.revised else "")
                + f"; {len(self.removed)} removed{_months_note(self.removed)}")
        if self.accepted_problems:
            text += "; accepted with --accept-shrink although it " + "; ".join(self.accepted_problems)
        return text


def compare_vintages(previous: pd.DataFrame | None, new: pd.DataFrame) -> VintageChange:
    """Months added, revised (value or phase changed) and removed by ``new`` against ``previous``."""
    if previous is None or previous.empty:
        return VintageChange(added=_months(new.index), revised=[], removed=[])
    old_months, new_months = set(previous.index), set(new.index)
    added = _months(sorted(new_months - old_months))
    removed = _months(sorted(old_months - new_months))
    revised = []
    for period in sorted(old_months & new_months):
        changes = {}
        for column in COMPARED_COLUMNS:
            old, now = previous.at[period, column], new.at[period, column]
            if not _same(old, now):
                changes[column] = (_plain(old), _plain(now))
        if changes:
            revised.append(Revision(Month.of(period.year, period.month), changes))
    return VintageChange(added=added, revised=revised, removed=removed)


def missing_inside(table: pd.DataFrame) -> list[tuple[Month, Month]]:
    """Runs of months missing between the first and the last month of an index table, as (first, last)."""
    months = _months(table.index)
    return [(a + 1, b - 1) for a, b in zip(months, months[1:]) if b.months_since(a) > 1]  # type: ignore[misc]


def check_vintage(previous: pd.DataFrame | None, new: pd.DataFrame, *, file: str,
                  accept_shrink: bool = False) -> VintageChange:
    """The change ``new`` makes, if it may replace ``previous``; else :class:`VintageRefused`.

    Refused: months missing inside ``new``, or months of ``previous`` that ``new``
    lacks, other than the newest :data:`REVISABLE_MONTHS` of ``previous``. With
    ``accept_shrink`` those problems are accepted and recorded in the change.
    """
    change = compare_vintages(previous, new)
    problems = []
    holes = missing_inside(new)
    if holes:
        n = sum(b.months_since(a) + 1 for a, b in holes)
        problems.append(f"has {n} month(s) missing inside it: {_ranges(holes)}")
    if previous is not None and not previous.empty:
        revisable = set(_months(previous.index)[-REVISABLE_MONTHS:])
        dropped = [m for m in change.removed if m not in revisable]
        if dropped:
            problems.append(f"lacks {len(dropped)} month(s) the stored vintage has: {_ranges(_runs(dropped))}")
    if problems and not accept_shrink:
        raise VintageRefused(
            file, None,
            "; ".join(problems) + ". Nothing was stored: the index would lose months. If the provider really "
            "withdrew them, take the file anyway with --accept-shrink (it is logged)",
        )
    return VintageChange(change.added, change.revised, change.removed, accepted_problems=problems)


# ----------------------------------------------------------------------------- helpers


def _months(periods) -> list[Month]:  # type: ignore[no-untyped-def]
    return [Month.of(p.year, p.month) for p in periods]


def _runs(months: list[Month]) -> list[tuple[Month, Month]]:
    """Consecutive runs of sorted months as (first, last)."""
    runs: list[tuple[Month, Month]] = []
    for month in sorted(months):
        if runs and month.months_since(runs[-1][1]) == 1:
            runs[-1] = (runs[-1][0], month)
        else:
            runs.append((month, month))
    return runs


def _ranges(runs: list[tuple[Month, Month]], shown: int = 6) -> str:
    text = ", ".join(f"{a}..{b}" if a != b else str(a) for a, b in runs[:shown])
    return text + (f" and {len(runs) - shown} more run(s)" if len(runs) > shown else "")


def _months_note(months: list[Month]) -> str:
    return f" ({_ranges(_runs(months), 3)})" if months else ""


def _same(a: object, b: object) -> bool:
    a, b = _plain(a), _plain(b)
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= TOLERANCE
    return a == b


def _plain(value: object) -> object:
    """None for missing (NaN, None), float for numbers, else the value."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return None if math.isnan(float(value)) else float(value)
    try:
        if pd.isna(value):  # type: ignore[arg-type]
            return None
    except (TypeError, ValueError):
        pass
    return value


def _show(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:+.2f}"
    return str(value)
