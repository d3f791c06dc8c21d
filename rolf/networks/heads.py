"""Networks that output a tanh-Gaussian (actors, skill prior, skill encoders)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from rolf.networks.distributions import TanhNormal, tanh_normal_head
from rolf.networks.host_mlp import HostMLP
from rolf.networks.mlp import MLP, orthogonal_init_


class ActionDecoder(nn.Module):
    """MLP(in, 2*out, [U]*K) -> tanh-Gaussian head. Used for the HL actor / skill prior, the skill decoder
    (low-level policy) and the MLP skill encoder (`fc` matches the original key names)."""

    def __init__(self, in_dim: int, out_dim: int, hidden_dims: list[int], act: str = "elu", log_std: bool = True):
        super().__init__()
        self.fc = MLP(in_dim, 2 * out_dim, hidden_dims, act)
        self.log_std = log_std

    def forward(self, x: torch.Tensor) -> TanhNormal:
        return tanh_normal_head(self.fc(x), self.log_std)

    def mode(self, x: torch.Tensor) -> torch.Tensor:
        """tanh(μ) without building the std half's distribution."""
        return self._squashed_mean(self.fc(x))

    def mode_concat(self, x: torch.Tensor, extra: torch.Tensor) -> torch.Tensor:
        """mode(cat([x, extra], -1)) with `extra` broadcast against x (MLP.forward_concat)."""
        return self._squashed_mean(self.fc.forward_concat(x, extra))

    def _squashed_mean(self, out: torch.Tensor) -> torch.Tensor:
        mean = out[..., : self.fc.out_dim // 2]
        return torch.tanh(5.0 * torch.tanh(mean / 5.0))

    def host_mode(self) -> Callable[[np.ndarray], np.ndarray]:
        """`mode` as a numpy function on a snapshot of the current weights (rolf.networks.host_mlp)."""
        fc, half = HostMLP(self.fc), self.fc.out_dim // 2
        return lambda x: np.tanh(5.0 * np.tanh(fc(x)[..., :half] / 5.0))


class LSTMSkillEncoder(nn.Module):
    """q(z | s_0:H, a_0:H): 1-layer LSTM over per-step inputs, the last output -> Linear -> tanh-Gaussian head."""

    def __init__(self, in_dim: int, out_dim: int, lstm_units: int = 128, log_std: bool = True):
        super().__init__()
        self.lstm = nn.LSTM(in_dim, lstm_units, batch_first=True)
        self.output_layer = nn.Linear(lstm_units, 2 * out_dim)
        orthogonal_init_(self.output_layer)
        self.log_std = log_std

    def forward(self, x: torch.Tensor) -> TanhNormal:
        """x: (N, H, in_dim) -> distribution with batch shape (N,)."""
        out, _ = self.lstm(x)
        return tanh_normal_head(self.output_layer(out[:, -1]).float(), self.log_std)
