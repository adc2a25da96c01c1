"""Named model presets: every choice that defines a trained model, in one JSON-serialisable record.

A :class:`Preset` is stored with every trained model, so a forecast can always be
traced to the exact grid, network, and training recipe that produced it.

Two designs exist:

* :class:`KeydanaDesign` (preset ``keydana2021``): the reference method (S. Keydana,
  "Forecasting ENSO", RStudio AI Blog, 2021), reproduced exactly, flaws included: normalised
  absolute SST in, next-month SST grid + normalised Niño 3.4 + phase class out.
  It is trained for lead 1 only; leads 2..12 are produced by feeding the
  predicted grid back into the input window (rollout), an extension the
  reference did not publish.
* :class:`ResidualDesign` (presets ``residual-anomaly``, ``cpu-small``,
  ``tiny``): the improved design (README, "Model, forecasts and hindcasts"): causally
  detrended SST anomalies in, the 12 leads of the detrended Niño 3.4 anomaly out,
  as a correction of the best linear forecast (an EOF ridge per lead, fitted on
  the training period), optionally refitted on every month after selection.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Literal

#: Leads every forecast covers (months after the init month).
FORECAST_LEADS: tuple[int, ...] = tuple(range(1, 13))


@dataclass(frozen=True)
class GridSpec:
    """The model grid, cut from the source cube: a crop, then optional area-weighted coarsening."""

    lat_range: tuple[float, float]
    lon_range: tuple[float, float] | None = None
    #: Target spacing in degrees (a whole multiple of the source's); None keeps the source grid.
    resolution_deg: float | None = None


@dataclass(frozen=True)
class KeydanaDesign:
    """The reference network and loss (Keydana 2021, RStudio AI Blog), as :class:`enso.model.networks.KeydanaNet`."""

    kind: Literal["keydana"] = "keydana"
    #: Weights of the SST-grid MSE (cells where target != 0), index MSE and phase cross-entropy.
    loss_weights: tuple[float, float, float] = (0.2, 0.4, 0.4)


@dataclass(frozen=True)
class ResidualDesign:
    """Detrended anomalies in, 12 leads out as a learned correction of the EOF ridge base (per lead)."""

    kind: Literal["residual"] = "residual"
    #: Anomalies are taken against the same calendar month's mean over this many preceding years.
    detrend_years: int = 20
    #: Fewest of those years that must hold data; earlier months cannot be used.
    detrend_min_years: int = 10
    #: Channels of the 1x1 convolution that reads the last hidden state.
    head_channels: int = 4
    #: Output size (lat, lon) of the adaptive average pooling before the linear layer.
    pool_size: tuple[int, int] = (3, 12)
    dropout: float = 0.5
    #: Standard deviation (°C) of Gaussian noise added to ocean input cells while training.
    input_noise: float = 0.3
    #: The linear base (:mod:`enso.model.base`): leading EOFs of the input field, and how many of the
    #: window's last months enter its features. The presets use 16 EOFs, 6 lags and the seasonal
    #: persistence terms, chosen on three selection decades (1960s, 1970s, 1980s; never 1990-2010).
    ridge_eofs: int = 12
    ridge_lags: int = 6
    #: Persistence times sin/cos of the init month among the base's features. The default stays False
    #: so that models stored before the option existed rebuild the features they were trained with.
    ridge_seasonal: bool = False


Design = KeydanaDesign | ResidualDesign
_DESIGNS: dict[str, type] = {"keydana": KeydanaDesign, "residual": ResidualDesign}


@dataclass(frozen=True)
class Preset:
    """A complete, named model recipe (grid, network, training)."""

    name: str
    description: str
    grid: GridSpec
    design: Design
    #: Input window length: months up to and including the init month.
    n_timesteps: int
    #: ConvLSTM hidden channels per layer, and the kernel size of each layer.
    hidden_channels: tuple[int, ...]
    kernel_sizes: tuple[int, ...]
    #: Wrap the ConvLSTM convolutions around in longitude (only for grids spanning all longitudes).
    circular_lon: bool = False
    #: Added to the forget-gate bias at initialisation (1.0 helps gradients through time).
    forget_bias: float = 0.0
    optimizer: Literal["adam", "adamw"] = "adam"
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 4
    max_epochs: int = 50
    #: Early stopping on the validation loss; None trains max_epochs and keeps the last epoch's model.
    patience: int | None = None
    #: Ensemble members (independently seeded trainings whose forecasts are averaged).
    n_members: int = 1
    #: After selection, train again on every month up to the end of the selection window with each
    #: member's selected epoch count (the operational model then learns from the newest months too).
    refit: bool = False

    def __post_init__(self) -> None:
        if len(self.hidden_channels) != len(self.kernel_sizes) or not self.hidden_channels:
            raise ValueError(f"preset {self.name}: need one kernel size per ConvLSTM layer, got "
                             f"{self.hidden_channels} and {self.kernel_sizes}")
        if any(k % 2 == 0 for k in self.kernel_sizes):
            raise ValueError(f"preset {self.name}: kernel sizes must be odd, got {self.kernel_sizes}")
        if self.n_members < 1 or self.n_timesteps < 1 or self.batch_size < 1 or self.max_epochs < 1:
            raise ValueError(f"preset {self.name}: n_members, n_timesteps, batch_size and max_epochs must be >= 1")

    def replace(self, **changes: Any) -> "Preset":
        """A copy with some fields changed (e.g. fewer epochs for a quick run)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible dict (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Preset":
        """Inverse of :meth:`to_dict`."""
        fields = dict(data)
        grid = dict(fields.pop("grid"))
        design = dict(fields.pop("design"))
        kind = design.get("kind")
        if kind not in _DESIGNS:
            raise ValueError(f"preset {fields.get('name')!r}: unknown design kind {kind!r}")
        design_cls = _DESIGNS[kind]
        return cls(
            grid=GridSpec(
                lat_range=tuple(grid["lat_range"]),  # type: ignore[arg-type]
                lon_range=None if grid.get("lon_range") is None else tuple(grid["lon_range"]),  # type: ignore[arg-type]
                resolution_deg=grid.get("resolution_deg"),
            ),
            design=design_cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in design.items()}),
            **{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()},
        )

    @classmethod
    def from_json(cls, text: str) -> "Preset":
        return cls.from_dict(json.loads(text))


_CPU_SMALL = Preset(
    name="cpu-small",
    description="The small ConvLSTM of modeling-notes.md: 6° grid over 30°S-30°N, 2 x 8 channels, "
                "detrended anomalies, a correction of the EOF ridge base (16 EOFs x 6 months + seasonal "
                "persistence); a few minutes on 2 CPU cores.",
    grid=GridSpec(lat_range=(-30.0, 30.0), resolution_deg=6.0),
    design=ResidualDesign(ridge_eofs=16, ridge_seasonal=True),
    n_timesteps=6,
    hidden_channels=(8, 8),
    kernel_sizes=(3, 3),
    circular_lon=True,
    forget_bias=1.0,
    optimizer="adamw",
    learning_rate=5e-4,
    weight_decay=0.05,
    batch_size=32,
    max_epochs=40,
    patience=6,
    n_members=3,
    refit=True,
)

PRESETS: dict[str, Preset] = {
    "keydana2021": Preset(
        name="keydana2021",
        description="The reference method (Keydana 2021) exactly: 1° SST 55°S-60°N, 6-month window, "
                    "3-layer ConvLSTM, lead 1 (leads 2-12 by rollout of the grid head); the reference "
                    "trained with train_end=1989-12 and validated on 1990-01..2020-08. Needs a GPU.",
        grid=GridSpec(lat_range=(-55.0, 60.0)),
        design=KeydanaDesign(),
        n_timesteps=6,
        hidden_channels=(16, 16, 32),
        kernel_sizes=(3, 3, 5),
        optimizer="adam",
        learning_rate=1e-3,
        batch_size=4,
        max_epochs=50,
        patience=None,
        n_members=1,
    ),
    "residual-anomaly": _CPU_SMALL.replace(
        name="residual-anomaly",
        description="The residual anomaly design at 2° over 40°S-40°N with 16 channels and a "
                    "10-member ensemble; sized for a GPU worker (not yet scored on real data).",
        grid=GridSpec(lat_range=(-40.0, 40.0), resolution_deg=2.0),
        hidden_channels=(16, 16),
        kernel_sizes=(5, 3),
        n_members=10,
    ),
    "cpu-small": _CPU_SMALL,
    "tiny": _CPU_SMALL.replace(
        name="tiny",
        description="Unit-test preset: 10° grid over 30°S-30°N, one 4-channel layer, 3 epochs, 2 members, "
                    "refit; seconds.",
        grid=GridSpec(lat_range=(-30.0, 30.0), resolution_deg=10.0),
        design=ResidualDesign(detrend_years=10, detrend_min_years=5, head_channels=2, pool_size=(2, 4),
                              ridge_eofs=8, ridge_lags=2, ridge_seasonal=True),
        n_timesteps=3,
        hidden_channels=(4,),
        kernel_sizes=(3,),
        learning_rate=3e-3,
        batch_size=16,
        max_epochs=3,
        patience=2,
        n_members=2,
    ),
}


def get_preset(name: str | Preset) -> Preset:
    """The preset of that name (a Preset passes through)."""
    if isinstance(name, Preset):
        return name
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown model preset {name!r}; choose one of {', '.join(PRESETS)}") from None
