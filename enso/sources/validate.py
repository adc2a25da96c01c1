"""Checks every decoded SST grid passes before it is used, whatever its source.

A grid that fails is rejected with :class:`~enso.sources.InvalidFile` naming the
file, the month and what was wrong, so that a bad download never reaches the store.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from enso.grids import SSTGrid
from enso.months import Month
from enso.sources import InvalidFile

#: A field whose values all lie in this range is taken for Kelvin, not °C.
KELVIN_LIKE = (200.0, 350.0)


def check_month(found: Month, expected: Month, *, file: str | Path) -> None:
    """Reject a file that holds another month than the one asked for."""
    if found != expected:
        raise InvalidFile(
            file, expected,
            f"the file holds {found}, not {expected}: the server returned another month's file",
        )


def validate_sst(
    grid: SSTGrid,
    *,
    file: str | Path,
    expected_shape: tuple[int, int],
    expected_lat: np.ndarray | None = None,
    expected_lon: np.ndarray | None = None,
    land_fraction: tuple[float, float] = (0.2, 0.45),
    value_range: tuple[float, float] = (-3.0, 40.0),
) -> SSTGrid:
    """Check shape, coordinates, value range and land fraction; return the grid unchanged.

    ``expected_lat`` / ``expected_lon`` (ascending cell centres), when given, must
    match the grid's coordinates to 1e-6 degrees. The value range is in °C; a
    field that looks like Kelvin gets a message saying so.
    """
    where = f"{grid.shape[0]}x{grid.shape[1]} grid"
    if grid.shape != tuple(expected_shape):
        raise InvalidFile(
            file, grid.month,
            f"{where}, expected {expected_shape[0]}x{expected_shape[1]} (lat x lon): wrong grid for this source",
        )
    for name, found, expected in (("latitudes", grid.lat, expected_lat), ("longitudes", grid.lon, expected_lon)):
        if expected is not None and not np.allclose(found, expected, rtol=0.0, atol=1e-6):
            raise InvalidFile(
                file, grid.month,
                f"{name} {found[0]:g}..{found[-1]:g} differ from the expected "
                f"{expected[0]:g}..{expected[-1]:g}: wrong grid for this source",
            )
    sea = grid.values[~grid.land_mask]
    if sea.size == 0:
        raise InvalidFile(file, grid.month, "every cell is missing: the field holds no SST")
    low, high = float(sea.min()), float(sea.max())
    if not (value_range[0] <= low and high <= value_range[1]):
        problem = f"SST values {low:.2f}..{high:.2f} lie outside {value_range[0]:g}..{value_range[1]:g} °C"
        if KELVIN_LIKE[0] <= low and high <= KELVIN_LIKE[1]:
            problem += "; they look like Kelvin, but this source stores °C: the file is not a valid SST field"
        raise InvalidFile(file, grid.month, problem)
    fraction = grid.land_fraction
    if not land_fraction[0] <= fraction <= land_fraction[1]:
        raise InvalidFile(
            file, grid.month,
            f"land (missing) fraction {fraction:.3f} is outside the plausible "
            f"{land_fraction[0]:g}..{land_fraction[1]:g}: the land mask is broken or the field incomplete",
        )
    return grid
