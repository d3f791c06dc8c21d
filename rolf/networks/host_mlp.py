"""Host-side (numpy, float32) snapshots of MLPs for single-observation inference.

Acting with one observation per env step is dominated by torch's per-op dispatch, not by arithmetic: SkiMo's maze
skill act is 0.17 MFLOP and took 0.41 ms in torch, 0.062 ms as numpy matmuls on a weight snapshot (bench/speed.py
`skill_act`, 2 threads). A snapshot is a copy: rebuild it after the weights change (SkiMo's skill policy is frozen
during downstream RL, so one snapshot serves the whole run). Modules expose their twins next to their forward
passes (`Encoder.host_forward`, `ActionDecoder.host_mode`).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from rolf.networks.mlp import MLP

NumpyFn = Callable[[np.ndarray], np.ndarray]


def _elu(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0.0)))


def _silu(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-x))


HOST_ACTIVATIONS: dict[type, NumpyFn] = {
    nn.ELU: _elu,
    nn.ReLU: lambda x: np.maximum(x, 0.0),
    nn.Tanh: np.tanh,
    nn.LeakyReLU: lambda x: np.where(x > 0, x, 0.01 * x),
    nn.SiLU: _silu,
}


def host_activation(module: nn.Module) -> NumpyFn:
    try:
        return HOST_ACTIVATIONS[type(module)]
    except KeyError:
        raise ValueError(f"no host implementation of activation {type(module).__name__}; "
                         f"expected one of {[t.__name__ for t in HOST_ACTIVATIONS]}") from None


class HostMLP:
    """Float32 numpy copy of an `MLP`: x (..., in) -> (..., out), the same maths as `MLP.forward`."""

    def __init__(self, mlp: MLP):
        self.layers: list[tuple[np.ndarray, np.ndarray] | NumpyFn] = []
        with torch.no_grad():
            for m in mlp.fcs:
                if isinstance(m, nn.Linear):
                    w = m.weight.detach().to("cpu", torch.float32).numpy().T.copy()  # (in, out)
                    self.layers.append((w, m.bias.detach().to("cpu", torch.float32).numpy().copy()))
                else:
                    self.layers.append(host_activation(m))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        for layer in self.layers:
            if isinstance(layer, tuple):
                x = x @ layer[0] + layer[1]
            else:
                x = layer(x)
        return x
