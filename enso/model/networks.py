"""The networks: the reference ConvLSTM (Keydana 2021) and the anomaly residual network.

Both read input sequences shaped (batch, time, channels, lat, lon) and are built
for a given grid shape, so any crop or resolution works.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from enso.model.convlstm import ConvLSTM
from enso.nino34 import PHASES


def _conv_out(size: int, kernel: int, stride: int) -> int:
    return (size - kernel) // stride + 1


class KeydanaNet(nn.Module):
    """The reference network (Keydana 2021; README, "Model, forecasts and hindcasts"): 2,389,605 parameters, 115 x 360.

    Outputs, from the last layer's final hidden state: the next month's SST grid
    (``conv1``), the normalised Niño 3.4 mean and the phase logits (in
    :data:`enso.nino34.PHASES` order; the reference orders its factor E, L, N,
    which changes no parameter or score).
    """

    def __init__(self, grid_shape: tuple[int, int], hidden_channels: Sequence[int] = (16, 16, 32),
                 kernel_sizes: Sequence[int] = (3, 3, 5), *, input_channels: int = 1) -> None:
        super().__init__()
        height, width = grid_shape
        rows = _conv_out(_conv_out(height, 5, 2), 5, 3)
        cols = _conv_out(_conv_out(width, 5, 2), 5, 3)
        if rows < 1 or cols < 1:
            raise ValueError(f"grid {height}x{width} is too small for the reference heads "
                             f"(two 5x5 convolutions of stride 2 and 3 need at least 13x13)")
        channels = hidden_channels[-1]
        self.convlstm = ConvLSTM(input_channels, hidden_channels, kernel_sizes)
        self.conv1 = nn.Conv2d(channels, 1, kernel_size=5, padding=2)
        self.conv2 = nn.Conv2d(channels, 32, kernel_size=5, stride=2)
        self.conv3 = nn.Conv2d(32, 32, kernel_size=5, stride=3)
        self.linear = nn.Linear(32 * rows * cols, 64)
        self.batchnorm = nn.BatchNorm1d(64)
        self.index_hidden = nn.Linear(64, 128)
        self.phase_hidden = nn.Linear(64, 128)
        self.index_out = nn.Linear(128, 1)
        self.phase_out = nn.Linear(128, len(PHASES))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``x`` (B, T, 1, H, W) -> SST grid (B, H, W), index (B,), phase logits (B, 3)."""
        _, states = self.convlstm(x)
        h = states[-1][0]
        grid = self.conv1(h)[:, 0]
        shared = torch.relu(self.batchnorm(self.linear(self.conv3(self.conv2(h)).flatten(1))))
        index = self.index_out(torch.relu(self.index_hidden(shared)))[:, 0]
        phase = self.phase_out(torch.relu(self.phase_hidden(shared)))
        return grid, index, phase


class AnomalyResidualNet(nn.Module):
    """Small ConvLSTM predicting all leads of the detrended Niño 3.4 anomaly as a correction of a linear base.

    Output for lead L = ``correction_L + base_weight_L * base_L``, where ``base`` is the
    EOF ridge forecast of the case (:mod:`enso.model.base`, fitted on the training
    period before the network). The last linear layer starts at zero and
    ``base_weight`` at one, so an untrained network forecasts exactly the linear base;
    training then learns what the linear forecast misses.
    """

    #: Parameters left out of weight decay (decay would pull the base toward climatology).
    no_weight_decay: tuple[str, ...] = ("base_weight",)

    def __init__(self, input_channels: int, hidden_channels: Sequence[int], kernel_sizes: Sequence[int], *,
                 n_leads: int, head_channels: int, pool_size: tuple[int, int], dropout: float,
                 circular_lon: bool = True, forget_bias: float = 1.0) -> None:
        super().__init__()
        self.convlstm = ConvLSTM(input_channels, hidden_channels, kernel_sizes,
                                 circular_lon=circular_lon, forget_bias=forget_bias)
        self.head = nn.Sequential(
            nn.Conv2d(hidden_channels[-1], head_channels, kernel_size=1),
            nn.GELU(),
            nn.AdaptiveAvgPool2d(pool_size),
            nn.Flatten(),
            nn.Dropout(dropout),
        )
        self.correction = nn.Linear(head_channels * pool_size[0] * pool_size[1], n_leads)
        nn.init.zeros_(self.correction.weight)
        nn.init.zeros_(self.correction.bias)
        self.base_weight = nn.Parameter(torch.ones(n_leads))

    def forward(self, x: Tensor, base: Tensor) -> Tensor:
        """``x`` (B, T, C, H, W), ``base`` (B, n_leads) the linear forecast -> (B, n_leads)."""
        _, states = self.convlstm(x)
        correction = self.correction(self.head(states[-1][0]))
        return correction + self.base_weight * base
