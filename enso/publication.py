"""When the providers publish a month, and whether what a store holds is current, late or stale.

A month ``M`` is *due* once the provider's usual publication day in ``M + 1``
has passed (the lag). What a store holds of a source is then

* ``current``: it holds the last complete month (nothing newer can exist);
* ``late``: it lacks only months that are not due yet (within the lag: wait);
* ``stale``: it lacks a month that is due (beyond the lag): the provider is late
  or, after weeks, has moved or stopped the file: someone must look.

Usual publication days (UTC), and what they rest on:

* NOAA CPC index files: by the 5th-8th of the next month (CPC's monthly
  update) -> the 8th.
* JMA TCC COBE-SST GRIB: JMA documents no schedule; its El Niño outlook for
  month M appears about the 10th of M+1, and the grid it uses is out by then
  (inferred) -> the 10th.
* NOAA NCEI ERSST: "released early in the following month" (e.g. May 2016 was
  out on 4 June), revised later in the month; CPC's indices need it before
  their 5th-8th update (inferred) -> the 7th.

Each day is a setting (``ENSO_*_PUBLICATION_DAY``), since none is a promise.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from enso.months import Month, last_complete_month

CURRENT = "current"
LATE = "late"
STALE = "stale"

CPC_PUBLICATION_DAY = 8
COBE_PUBLICATION_DAY = 10
ERSST_PUBLICATION_DAY = 7


@dataclass(frozen=True)
class PublicationLag:
    """A provider and the day of the next month by which it has usually published a month."""

    provider: str
    day: int

    def __post_init__(self) -> None:
        if not 1 <= self.day <= 28:
            raise ValueError(f"{self.provider}: publication day {self.day} must be 1..28 (a day every month has)")

    def due_date(self, month: Month) -> dt.date:
        """The last day on which ``month`` may still be missing without being late."""
        following = month + 1
        return dt.date(following.year, following.month, self.day)


def newest_due_month(now: dt.datetime, lag: PublicationLag) -> Month:
    """The newest month whose usual publication day has passed at ``now`` (UTC)."""
    last = last_complete_month(now)
    return last if now.date() > lag.due_date(last) else last - 1  # type: ignore[return-value]


def freshness(newest: Month | None, now: dt.datetime, lag: PublicationLag) -> str:
    """:data:`CURRENT`, :data:`LATE` or :data:`STALE` for a source whose newest month held is ``newest``."""
    if newest is not None and newest >= last_complete_month(now):
        return CURRENT
    if newest is not None and newest >= newest_due_month(now, lag):
        return LATE
    return STALE


def is_overdue(month: Month, now: dt.datetime, lag: PublicationLag) -> bool:
    """Whether ``month`` should have been published by ``now`` (its usual publication day has passed)."""
    return month <= newest_due_month(now, lag)
