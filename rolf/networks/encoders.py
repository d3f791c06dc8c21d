"""State encoder and observation decoder (vector observations). Attribute names follow the original
(`encoders.ob.fc`, `fc`, `decoders.ob.fc`) so original checkpoints map 1:1."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from rolf.networks.host_mlp import HostMLP, host_activation
from rolf.networks.mlp import MLP, activation


class _DenseBlock(nn.Module):
    """Holds one MLP under the attribute name `fc` (the original's DenseEncoder / DenseDecoder)."""

    def __init__(self, in_dim: int, out_dim: int, hidden_dims: list[int], act: str):
        super().__init__()
        self.fc = MLP(in_dim, out_dim, hidden_dims, act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


class Encoder(nn.Module):
    """ob (..., d_o) -> Linear(d_o, embed) [+ hidden] -> act -> Linear(embed, state_dim) -> h (..., state_dim)."""

    def __init__(self, ob_dim: int, state_dim: int, embed_dim: int, hidden_dims: list[int] = (), act: str = "elu"):
        super().__init__()
        self.encoders = nn.ModuleDict({"ob": _DenseBlock(ob_dim, embed_dim, list(hidden_dims), act)})
        self.act = activation(act)
        self.fc = MLP(embed_dim, state_dim, [], act)
        self.state_dim = state_dim

    def forward(self, ob: torch.Tensor) -> torch.Tensor:
        return self.fc(self.act(self.encoders["ob"](ob)))

    def host_forward(self) -> Callable[[np.ndarray], np.ndarray]:
        """`forward` as a numpy function on a snapshot of the current weights (rolf.networks.host_mlp)."""
        first, act, last = HostMLP(self.encoders["ob"].fc), host_activation(self.act), HostMLP(self.fc)
        return lambda ob: last(act(first(ob)))


class Decoder(nn.Module):
    """p(o | h): diagonal Normal with mean and std = (tanh(x) + 1) * 0.7 + 0.1 in [0.1, 1.5]."""

    def __init__(self, state_dim: int, ob_dim: int, hidden_dims: list[int], act: str = "elu"):
        super().__init__()
        self.decoders = nn.ModuleDict({"ob": _DenseBlock(state_dim, 2 * ob_dim, list(hidden_dims), act)})

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (mean, std), each (..., d_o)."""
        mean, raw = self.decoders["ob"](h).chunk(2, dim=-1)
        return mean, (torch.tanh(raw) + 1.0) * 0.7 + 0.1

    def log_prob(self, h: torch.Tensor, ob: torch.Tensor) -> torch.Tensor:
        """Gaussian log-density of ob under p(.|h), summed over observation dims -> (...)."""
        mean, std = self(h)
        z = (ob - mean) / std
        return (-0.5 * z * z - torch.log(std) - 0.9189385332046727).sum(-1)
