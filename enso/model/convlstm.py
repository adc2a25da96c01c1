"""Convolutional LSTM (Shi et al. 2015) as the reference method builds it.

Each cell is one ``Conv2d`` over ``concat(x, h)`` with ``4 * hidden`` output
channels, split into the input, forget and output gates and the candidate
(``i, f, o, g``); ``c' = f * c + i * g``, ``h' = o * tanh(c')``. A stack runs batch
first, starts every sequence from zero states, and feeds layer k's full output
sequence to layer k + 1.

Two options serve the improved presets and leave the reference untouched when
off: circular padding in longitude (the globe has no east/west edge; latitude
is still zero-padded), and a forget-gate bias added at initialisation.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ConvLSTMCell(nn.Module):
    """One ConvLSTM layer's update for a single time step."""

    def __init__(self, input_channels: int, hidden_channels: int, kernel_size: int, *,
                 circular_lon: bool = False, forget_bias: float = 0.0) -> None:
        super().__init__()
        self.hidden_channels = hidden_channels
        self.circular_lon = circular_lon
        self.pad = kernel_size // 2
        self.conv = nn.Conv2d(input_channels + hidden_channels, 4 * hidden_channels, kernel_size,
                              padding=0 if circular_lon else self.pad, bias=True)
        if forget_bias:
            with torch.no_grad():
                self.conv.bias[hidden_channels:2 * hidden_channels] += forget_bias

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        """Advance one step: ``x`` (B, C, H, W), ``state`` = (h, c) each (B, hidden, H, W)."""
        h, c = state
        combined = torch.cat([x, h], dim=1)
        if self.circular_lon and self.pad:
            combined = F.pad(combined, (self.pad, self.pad, 0, 0), mode="circular")
            combined = F.pad(combined, (0, 0, self.pad, self.pad))
        i, f, o, g = torch.split(self.conv(combined), self.hidden_channels, dim=1)
        c_next = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h_next = torch.sigmoid(o) * torch.tanh(c_next)
        return h_next, c_next

    def zero_state(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Zero (h, c) matching a (B, C, H, W) input."""
        b, _, height, width = x.shape
        zeros = x.new_zeros(b, self.hidden_channels, height, width)
        return zeros, zeros.clone()


class ConvLSTM(nn.Module):
    """A stack of ConvLSTM layers over sequences shaped (batch, time, channels, lat, lon)."""

    def __init__(self, input_channels: int, hidden_channels: Sequence[int], kernel_sizes: Sequence[int], *,
                 circular_lon: bool = False, forget_bias: float = 0.0) -> None:
        super().__init__()
        if len(hidden_channels) != len(kernel_sizes):
            raise ValueError(f"one kernel size per layer needed: {list(hidden_channels)} vs {list(kernel_sizes)}")
        inputs = [input_channels, *hidden_channels[:-1]]
        self.cells = nn.ModuleList(
            ConvLSTMCell(c_in, c_hidden, k, circular_lon=circular_lon, forget_bias=forget_bias)
            for c_in, c_hidden, k in zip(inputs, hidden_channels, kernel_sizes)
        )

    def forward(self, x: Tensor) -> tuple[Tensor, list[tuple[Tensor, Tensor]]]:
        """Run the stack over ``x`` (B, T, C, H, W).

        Returns the last layer's output sequence (B, T, hidden, H, W) and each
        layer's final (h, c).
        """
        sequence = x
        final_states: list[tuple[Tensor, Tensor]] = []
        for cell in self.cells:
            state = cell.zero_state(sequence[:, 0])
            outputs = []
            for t in range(sequence.shape[1]):
                state = cell(sequence[:, t], state)
                outputs.append(state[0])
            sequence = torch.stack(outputs, dim=1)
            final_states.append(state)
        return sequence, final_states
