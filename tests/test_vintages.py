"""Index vintages in the domain: what a new file changes against the held one, and when it is refused."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from enso.months import Month
from enso.vintages import REVISABLE_MONTHS, VintageRefused, check_vintage, compare_vintages, missing_inside


def _table(start: str, anomalies: list[float], phases: list[str | None] | None = None) -> pd.DataFrame:
    idx = pd.period_range(start, periods=len(anomalies), freq="M", name="month")
    return pd.DataFrame({"nino34": 27.0 + np.array(anomalies), "anomaly": anomalies, "oni": np.nan,
                         "phase": pd.Series(phases or [None] * len(anomalies), index=idx, dtype=object)},
                        index=idx)


HELD = _table("2000-01", [0.1 * i for i in range(24)])


def test_the_first_vintage_adds_every_month() -> None:
    change = check_vintage(None, HELD, file="f")
    assert len(change.added) == 24 and not change.revised and not change.removed
    assert change.summary().startswith("24 new (2000-01..2001-12); 0 revised; 0 removed")


def test_a_longer_file_with_a_revised_month_is_taken_and_says_what_changed() -> None:
    new = _table("2000-01", [0.1 * i for i in range(25)])
    new.loc[pd.Period("2001-06", "M"), "anomaly"] = 9.99
    change = check_vintage(HELD, new, file="f")
    assert change.added == [Month.of(2002, 1)]
    assert [r.month for r in change.revised] == [Month.of(2001, 6)]
    assert change.revised[0].changes == {"anomaly": (pytest.approx(1.7), 9.99)}
    assert "2001-06 anomaly +1.70 -> +9.99" in change.summary() and not change.accepted_problems


def test_the_newest_months_may_be_withdrawn_but_not_one_more() -> None:
    withdrawn = check_vintage(HELD, HELD.iloc[:-REVISABLE_MONTHS], file="f")
    assert len(withdrawn.removed) == REVISABLE_MONTHS
    with pytest.raises(VintageRefused, match=r"f: lacks 1 month\(s\) the stored vintage has: 2001-09\."):
        check_vintage(HELD, HELD.iloc[:-REVISABLE_MONTHS - 1], file="f")


def test_gaps_and_lost_months_are_refused_unless_accepted() -> None:
    holed = HELD.drop([pd.Period(f"2000-{m:02d}", "M") for m in (3, 4, 5)])
    assert missing_inside(holed) == [(Month.of(2000, 3), Month.of(2000, 5))]
    with pytest.raises(VintageRefused) as refused:
        check_vintage(HELD, holed, file="http://x/index")
    message = str(refused.value)
    assert message.startswith("http://x/index: has 3 month(s) missing inside it: 2000-03..2000-05; lacks 3 month(s)")
    assert "--accept-shrink" in message
    accepted = check_vintage(HELD, holed, file="http://x/index", accept_shrink=True)
    assert len(accepted.accepted_problems) == 2
    assert "accepted with --accept-shrink although it has 3 month(s) missing" in accepted.summary()


def test_a_phase_that_becomes_known_is_a_revision_and_equal_values_are_not() -> None:
    held = _table("2000-01", [0.5, 0.6, 0.7])
    new = _table("2000-01", [0.5, 0.6, 0.7], phases=[None, "el_nino", None])
    assert [str(r) for r in compare_vintages(held, new).revised] == ["2000-02 phase - -> el_nino"]
    assert not compare_vintages(held, held.copy()).any
