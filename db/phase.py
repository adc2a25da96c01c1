"""The phase index (ENSO_PHASE_INDEX): which index defines the observed ENSO phase, read from the store.

Since 1 February 2026 CPC defines El Niño and La Niña by the Relative Oceanic Niño
Index (RONI, ``roni``, the default): the 3-month mean of the relative Niño 3.4
anomaly (Niño 3.4 minus the 20°S-20°N mean, rescaled; :mod:`enso.relative`). The
traditional definition, the ONI of the Niño 3.4 anomaly (``oni``), stays
selectable. Only the *phase* follows this choice: the forecasts' anomalies are
scored against the traditional ``nino34`` index whatever it is.

RONI comes from the view ``relative_index``: CPC's monthly relative file
(product ``relative``) where it has the month, and before its first month the
relative index the store computed from its grids (``relative-grids``,
:func:`db.ingest.compute_relative_index`). :meth:`PhaseIndex.observed` hands
verification and reports the Niño 3.4 index table with its ``phase`` column
taken from the phase index, so every existing consumer of ``index["phase"]``
follows the setting.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import Engine, select

from db.schema import RelativeIndex
from enso.months import Month
from enso.nino34 import PHASE_INDEX_LABELS
from enso.sources.index_products import DEFAULT_PRODUCT, GRIDS_RELATIVE_PRODUCT, RELATIVE_PRODUCT

#: ENSO_PHASE_INDEX when not set: CPC's official definition since February 2026.
DEFAULT_PHASE_INDEX = "roni"
#: What each product of the phase series is, in words (for reports and notes).
ORIGIN_NAMES = {
    RELATIVE_PRODUCT: "CPC's relative Niño 3.4 file",
    GRIDS_RELATIVE_PRODUCT: "computed from the stored SST grids",
    DEFAULT_PRODUCT: "the Niño 3.4 index",
}


def load_relative_index(engine: Engine) -> pd.DataFrame:
    """The relative index as the view ``relative_index`` gives it: monthly PeriodIndex ``month``, columns
    ``relative_anomaly``, ``roni``, ``phase`` and ``product`` (which series each month comes from)."""
    with engine.connect() as conn:
        rows = conn.execute(select(RelativeIndex.month, RelativeIndex.relative_anomaly, RelativeIndex.roni,
                                   RelativeIndex.phase, RelativeIndex.product).order_by(RelativeIndex.month)).all()
    idx = pd.PeriodIndex([pd.Period(r.month, freq="M") for r in rows], name="month", freq="M")
    return pd.DataFrame({
        "relative_anomaly": np.array([r.relative_anomaly for r in rows], dtype=float),
        "roni": np.array([r.roni for r in rows], dtype=float),
        "phase": pd.Series([r.phase for r in rows], index=idx, dtype=object),
        "product": pd.Series([r.product for r in rows], index=idx, dtype=object),
    }, index=idx)


@dataclass(frozen=True)
class PhaseIndex:
    """The series that defines the observed phase: ``table`` (monthly PeriodIndex) with columns ``value``
    (ONI or RONI, °C), ``phase`` (None where unknown) and ``product`` (the store product of each month)."""

    name: str
    table: pd.DataFrame

    @classmethod
    def of(cls, name: str, index: pd.DataFrame, relative: pd.DataFrame) -> "PhaseIndex":
        """``name`` (``roni`` or ``oni``) from the Niño 3.4 index table and :func:`load_relative_index`."""
        if name == "oni":
            table = pd.DataFrame({"value": index["oni"], "phase": index["phase"],
                                  "product": DEFAULT_PRODUCT}, index=index.index)
        elif name == "roni":
            table = pd.DataFrame({"value": relative["roni"], "phase": relative["phase"],
                                  "product": relative["product"]}, index=relative.index)
        else:
            raise ValueError(f"unknown phase index {name!r}: choose roni or oni (ENSO_PHASE_INDEX)")
        return cls(name, table)

    @property
    def label(self) -> str:
        return PHASE_INDEX_LABELS[self.name]

    @property
    def phase(self) -> pd.Series:
        return self.table["phase"]

    def origins(self) -> list[tuple[str, Month, Month]]:
        """The runs of months each product provides, in order: (product, first month, last month)."""
        runs: list[tuple[str, Month, Month]] = []
        for period, product in self.table["product"].items():
            month = Month.of(period.year, period.month)
            if runs and runs[-1][0] == product:
                runs[-1] = (product, runs[-1][1], month)
            else:
                runs.append((product, month, month))
        return runs

    def describe(self) -> str:
        """E.g. ``RONI: computed from the stored SST grids 1891-02..1949-11; CPC's relative Niño 3.4 file
        1949-12..2026-10`` (what defines the observed phase, and where each month's value comes from)."""
        runs = self.origins()
        if not runs:
            what = ("no relative index in the store yet: run `enso ingest` (CPC's file, "
                    "ENSO_RELATIVE_INDEX_URL, or the grids of 1950-2020)" if self.name == "roni"
                    else "no Niño 3.4 index in the store yet: run `enso ingest`")
            return f"{self.label}: {what}"
        return f"{self.label}: " + "; ".join(f"{ORIGIN_NAMES.get(p, p)} {a}..{b}" for p, a, b in runs)

    def observed(self, index: pd.DataFrame) -> pd.DataFrame:
        """The Niño 3.4 index table with its ``phase`` column replaced by this index's phase (None where
        it has none): what verification and the reports score and show phases against."""
        out = index.copy()
        out.attrs = dict(index.attrs, phase_index=self.name)
        phase = self.phase.reindex(index.index)
        out["phase"] = pd.Series([p if isinstance(p, str) else None for p in phase], index=index.index, dtype=object)
        return out


def load_phase_index(engine: Engine, name: str, index: pd.DataFrame) -> PhaseIndex:
    """The phase index ``name`` from the store (``index``: the Niño 3.4 index table, for ``oni``)."""
    relative = load_relative_index(engine) if name == "roni" else _NO_RELATIVE
    return PhaseIndex.of(name, index, relative)


_NO_RELATIVE = pd.DataFrame({"relative_anomaly": [], "roni": [], "phase": [], "product": []},
                            index=pd.PeriodIndex([], freq="M", name="month"))
