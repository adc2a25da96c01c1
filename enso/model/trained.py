"""A trained model: preset, weights of every ensemble member, statistics, provenance; bytes for the store."""

from __future__ import annotations

import io
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from enso.model.data import RESIDUAL_CHANNELS
from enso.model.networks import AnomalyResidualNet, KeydanaNet
from enso.model.presets import FORECAST_LEADS, KeydanaDesign, Preset

#: Version of the byte layout written by :meth:`TrainedModel.to_bytes` (2: the EOF ridge base, the index
#: bias, spreads per target month and lead; models of format 1 must be retrained).
FORMAT_VERSION = 2


def build_network(preset: Preset, statistics: dict[str, np.ndarray]) -> nn.Module:
    """An untrained network of the preset for the grid in ``statistics`` (damping set if fitted)."""
    grid_shape = tuple(statistics["land"].shape)
    design = preset.design
    if isinstance(design, KeydanaDesign):
        return KeydanaNet(grid_shape, preset.hidden_channels, preset.kernel_sizes)  # type: ignore[arg-type]
    if preset.circular_lon:
        lon = np.asarray(statistics["lon"])
        spacing = float(lon[1] - lon[0]) if lon.size > 1 else 360.0
        if abs(spacing * lon.size - 360.0) > 1e-3 * spacing:
            raise ValueError(f"preset {preset.name} wraps around in longitude, but its grid covers "
                             f"{lon.size} x {spacing}° (not the whole globe)")
    net = AnomalyResidualNet(
        len(RESIDUAL_CHANNELS), preset.hidden_channels, preset.kernel_sizes,
        n_leads=len(FORECAST_LEADS), head_channels=design.head_channels, pool_size=design.pool_size,
        dropout=design.dropout, circular_lon=preset.circular_lon, forget_bias=preset.forget_bias,
    )
    return net


@dataclass
class TrainedModel:
    """Everything needed to forecast with, and to account for, a trained model.

    * ``preset``: the full recipe (stored as JSON in the registry).
    * ``member_states``: one state dict per ensemble member (CPU tensors).
    * ``statistics``: arrays fitted on the training period (grid, land mask,
      normalisation, the index bias, the EOF ridge base, per-cell damping of the
      lead-1 map) and the error sd of the anomaly and the ONI per target calendar
      month and lead, calibrated on the selection period (``anomaly_error_sd``,
      ``oni_error_sd``: 12 x 12).
    * ``data_window``: first input month, train/validation init months and ends,
      sample counts (``YYYY-MM`` strings and ints), and whether (``refit``) and on how
      many cases (``n_refit``) the model was refitted after selection.
    * ``checkpoint_folder``: where this run's checkpoints lie (not stored; the
      caller removes it once the model is registered).
    * ``validation``: per-lead ``acc`` / ``rmse`` / ``n`` of the Niño 3.4 anomaly
      on the validation period, lists indexed like ``lead``.
    * ``data_fingerprint``: sha256 of the arrays trained on (see ``ModelData.fingerprint``).
    * ``history``: per member, per epoch ``{"epoch", "train_loss", "valid_loss"}``.
    """

    preset: Preset
    member_states: list[dict[str, torch.Tensor]]
    statistics: dict[str, np.ndarray]
    data_window: dict[str, Any]
    validation: dict[str, Any]
    data_fingerprint: str
    seed: int
    history: list[list[dict[str, float]]] = field(default_factory=list)
    #: A refitted model keeps the weights and statistics that selection scored: ``(member_states, statistics)``.
    selected: tuple[list[dict[str, torch.Tensor]], dict[str, np.ndarray]] | None = None
    checkpoint_folder: Path | None = None

    def as_selected(self) -> "TrainedModel":
        """The model as selection scored it (before the refit): what a fair comparison on later selection
        months uses, since the refitted weights have seen them. Itself when it was not refitted."""
        if self.selected is None:
            return self
        states, statistics = self.selected
        return TrainedModel(preset=self.preset, member_states=states, statistics=statistics,
                            data_window={**self.data_window, "refit": False}, validation=self.validation,
                            data_fingerprint=self.data_fingerprint, seed=self.seed, history=self.history)

    @property
    def name(self) -> str:
        return self.preset.name

    def networks(self, device: torch.device | str = "cpu") -> list[nn.Module]:
        """The ensemble members, loaded and in evaluation mode."""
        nets = []
        for state in self.member_states:
            net = build_network(self.preset, self.statistics)
            net.load_state_dict(state)
            nets.append(net.to(device).eval())
        return nets

    def to_bytes(self) -> bytes:
        """Serialise (``torch.save`` into memory; tensors and plain types only, loadable with weights_only)."""
        buffer = io.BytesIO()
        torch.save({
            "format": FORMAT_VERSION,
            "preset": self.preset.to_dict(),
            "member_states": [{k: v.detach().cpu() for k, v in s.items()} for s in self.member_states],
            "statistics": {k: torch.from_numpy(np.array(v)) for k, v in self.statistics.items()},
            "data_window": self.data_window,
            "validation": self.validation,
            "data_fingerprint": self.data_fingerprint,
            "seed": self.seed,
            "history": self.history,
            "selected": None if self.selected is None else {
                "member_states": [{k: v.detach().cpu() for k, v in s.items()} for s in self.selected[0]],
                "statistics": {k: torch.from_numpy(np.array(v)) for k, v in self.selected[1].items()}},
        }, buffer)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "TrainedModel":
        """Inverse of :meth:`to_bytes`."""
        content = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        if content.get("format") != FORMAT_VERSION:
            raise ValueError(f"model bytes have format {content.get('format')!r}; this code reads {FORMAT_VERSION}: "
                             f"train a new model (`enso train`) and promote it if it does not win by itself")
        return cls(
            preset=Preset.from_dict(content["preset"]),
            member_states=content["member_states"],
            statistics={k: v.numpy() for k, v in content["statistics"].items()},
            data_window=content["data_window"],
            validation=content["validation"],
            data_fingerprint=content["data_fingerprint"],
            seed=content["seed"],
            history=content["history"],
            selected=None if content["selected"] is None else (
                content["selected"]["member_states"],
                {k: v.numpy() for k, v in content["selected"]["statistics"].items()}),
        )
