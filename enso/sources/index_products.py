"""The index products by name: which file each is read from, in which format.

Each product is a whole series of vintages of its own in the store (never
spliced with another product's):

* ``nino34``, the traditional Niño 3.4 index (ENSO_INDEX_URL, ENSO_INDEX_FORMAT):
  the truth of the forecasts' anomalies, their scores and the reports' ONI;
* ``relative``, CPC's monthly relative Niño 3.4 index (ENSO_RELATIVE_INDEX_URL,
  ``Rnino34.ascii.txt``, format ``cpc-rnino34``), whose 3-month mean is RONI;
* ``relative-grids`` (:data:`GRIDS_RELATIVE_PRODUCT`), not a file: the relative
  index computed from the store's SST grids by :mod:`enso.relative`, for the
  months CPC's file does not reach (before 1950, or every month when the file is
  disabled). It is stored as vintages as the files are, each labelled with the
  grids it was computed from.

Adding a product read from a file means one entry in :data:`INDEX_PRODUCTS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from enso.config import Settings

#: The product the model, verification and reports read unless told otherwise.
DEFAULT_PRODUCT = "nino34"
#: CPC's monthly relative Niño 3.4 file.
RELATIVE_PRODUCT = "relative"
#: The relative Niño 3.4 index computed from the store's SST grids (no file: see the module docstring).
GRIDS_RELATIVE_PRODUCT = "relative-grids"
#: The format recorded with the vintages of :data:`GRIDS_RELATIVE_PRODUCT`.
GRIDS_RELATIVE_FORMAT = "from-grids"


@dataclass(frozen=True)
class IndexProduct:
    """Where one index product's file is and how it is parsed (a format of :mod:`enso.sources.index`)."""

    name: str
    description: str
    url: Callable[[Settings], str]
    format: Callable[[Settings], str]


INDEX_PRODUCTS: dict[str, IndexProduct] = {
    "nino34": IndexProduct(
        name="nino34",
        description="Niño 3.4 index (traditional: SST anomaly of the Niño 3.4 box; ONI)",
        url=lambda s: s.index_url,
        format=lambda s: s.index_format,
    ),
    RELATIVE_PRODUCT: IndexProduct(
        name=RELATIVE_PRODUCT,
        description="relative Niño 3.4 index (CPC's Rnino34: Niño 3.4 minus the 20°S-20°N mean, rescaled; RONI)",
        url=lambda s: s.relative_index_url,
        format=lambda s: "cpc-rnino34",
    ),
}

#: Products computed in the store rather than downloaded, with what they are.
COMPUTED_PRODUCTS: dict[str, str] = {
    GRIDS_RELATIVE_PRODUCT: "relative Niño 3.4 index computed from the stored SST grids, for months CPC's file "
                            "lacks; RONI",
}


def index_product(name: str) -> IndexProduct:
    try:
        return INDEX_PRODUCTS[name]
    except KeyError:
        raise ValueError(f"unknown index product {name!r}; choose one of {', '.join(INDEX_PRODUCTS)}") from None


def product_description(name: str) -> str | None:
    """What the product ``name`` is (a downloaded or a computed one), or None if unknown."""
    if name in INDEX_PRODUCTS:
        return INDEX_PRODUCTS[name].description
    return COMPUTED_PRODUCTS.get(name)
