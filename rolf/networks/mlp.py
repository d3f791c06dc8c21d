"""MLP and the TD-MPC critic block. Module attribute names match the original rolf code (`fcs`), so the
state_dict keys of the original checkpoints load onto these modules unchanged."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = {"elu": nn.ELU, "relu": nn.ReLU, "tanh": nn.Tanh, "leaky_relu": nn.LeakyReLU, "silu": nn.SiLU}


def activation(name: str, inplace: bool = False) -> nn.Module:
    """`inplace` where the module supports it (ELU, ReLU, LeakyReLU, SiLU; Tanh has no in-place form)."""
    try:
        cls = ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}") from None
    return cls(inplace=True) if inplace and cls is not nn.Tanh else cls()


def orthogonal_init_(linear: nn.Linear, gain: float = 1.0) -> None:
    nn.init.orthogonal_(linear.weight, gain=gain)
    nn.init.zeros_(linear.bias)


class MLP(nn.Module):
    """Linear-act-...-Linear with no final activation; orthogonal init (gain 1), zero bias.

    `small_weight` re-initialises the last layer with gain 0.01 (TD-MPC's reward/Q heads).
    The activations run in place on the Linear outputs: autograd then keeps the activation's output, and ELU's
    backward is grad · (out + 1) on the negative side instead of grad · exp(x) (no second exp: 25 vs 68 µs on a
    537×128 tensor, 2 threads); the same derivative.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden_dims: list[int] | tuple[int, ...] = (), act: str = "elu",
                 small_weight: bool = False):
        super().__init__()
        dims = [in_dim, *hidden_dims, out_dim]
        layers: list[nn.Module] = []
        for i in range(len(dims) - 1):
            layers.append(nn.Linear(dims[i], dims[i + 1]))
            if i < len(dims) - 2:
                layers.append(activation(act, inplace=True))
        self.fcs = nn.Sequential(*layers)
        for layer in self.fcs:
            if isinstance(layer, nn.Linear):
                orthogonal_init_(layer)
        if small_weight:
            orthogonal_init_(self.fcs[-1], gain=0.01)
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._flat(self.fcs, x).float()  # fp32 out under bf16 autocast (rolf.utils.precision); else a no-op

    @staticmethod
    def _flat(layers: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """layers(x) on x flattened to (N, d): a Linear on a 3-D+ input returns a view of its 2-D result, and an
        in-place activation on a view makes autograd re-copy the whole base in backward (CopySlices)."""
        y = layers(x.reshape(-1, x.shape[-1]))
        return y.reshape(*x.shape[:-1], y.shape[-1])

    def forward_concat(self, x: torch.Tensor, extra: torch.Tensor) -> torch.Tensor:
        """self(cat([x, extra], -1)) with `extra` broadcast against x, without materialising the concatenation.

        The first Linear is split by input columns, W [x; e] + b = W_x x + b + W_e e, so a per-skill input (..., 1, d_e)
        is multiplied once, not once per step, and neither the concatenation nor its backward slicing is built."""
        first = self.fcs[0]
        dx = x.shape[-1]
        y = F.linear(x, first.weight[:, :dx], first.bias) + F.linear(extra, first.weight[:, dx:])
        if len(self.fcs) == 1:
            return y.float()
        # the first activation runs in place on y itself, before _flat reshapes it: on that view it would make
        # autograd copy the whole of y in backward
        return self._flat(self.fcs[2:], self.fcs[1](y)).float()


class Critic(nn.Module):
    """n independent heads: Linear(in, U) -> LayerNorm -> Tanh -> MLP(U, 1, [U]*(K-1), small_weight).

    forward returns a tuple of n tensors of shape (...,) (the trailing 1 squeezed).
    """

    def __init__(self, in_dim: int, hidden_dims: list[int], n_heads: int = 1, act: str = "elu"):
        super().__init__()
        u = hidden_dims[0]
        self.fcs = nn.ModuleList(
            nn.Sequential(nn.Linear(in_dim, u), nn.LayerNorm(u), nn.Tanh(), MLP(u, 1, hidden_dims[1:], act, small_weight=True))
            for _ in range(n_heads)
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(head(x).squeeze(-1) for head in self.fcs)
