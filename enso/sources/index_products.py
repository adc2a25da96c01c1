"""The index products by name: which file each is read from, in which format.

Each product is a whole series of vintages of its own in the store (never
spliced with another product's): ``nino34``, the traditional Niño 3.4 index
(ENSO_INDEX_URL, ENSO_INDEX_FORMAT), is the one the forecasts, verification and
reports use. Adding a product (for instance CPC's relative index) means one entry here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from enso.config import Settings

#: The product the model, verification and reports read unless told otherwise.
DEFAULT_PRODUCT = "nino34"


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
}


def index_product(name: str) -> IndexProduct:
    try:
        return INDEX_PRODUCTS[name]
    except KeyError:
        raise ValueError(f"unknown index product {name!r}; choose one of {', '.join(INDEX_PRODUCTS)}") from None
