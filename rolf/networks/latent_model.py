"""TD-MPC-style latent world model: encoder E, dynamics D, reward R, twin critic Q (spec §1.2).

Shared by SkiMo (skill dynamics), TD-MPC and SPiRL+TD-MPC. Attribute names match the original's
`TDMPCModel` (`encoder`, `dynamics`, `reward`, `critic`)."""

from __future__ import annotations

import torch
from torch import nn

from rolf.networks.encoders import Encoder
from rolf.networks.mlp import MLP, Critic


class LatentModel(nn.Module):
    def __init__(self, ob_dim: int, action_dim: int, state_dim: int, num_units: int, num_layers: int,
                 embed_dim: int, encoder_hidden: list[int] = (), act: str = "elu", critic_in_dim: int | None = None):
        """`critic_in_dim` overrides the critic's input size (SkiMo+SAC feeds it the raw observation + skill)."""
        super().__init__()
        hidden = [num_units] * num_layers
        self.encoder = Encoder(ob_dim, state_dim, embed_dim, encoder_hidden, act)
        self.dynamics = MLP(state_dim + action_dim, state_dim, hidden, act)
        self.reward = Critic(state_dim + action_dim, hidden, 1, act)
        self.critic = Critic(critic_in_dim or state_dim + action_dim, hidden, 2, act)

    def encode(self, ob: torch.Tensor) -> torch.Tensor:
        return self.encoder(ob)

    def imagine_step(self, h: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(h, a) -> (next latent D(h, a), reward R(h, a)); shapes (..., d_s), (...)."""
        x = torch.cat([h, action], dim=-1)
        return self.dynamics(x), self.reward(x)[0]

    def next(self, h: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.dynamics(torch.cat([h, action], dim=-1))

    def q(self, h: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.critic(torch.cat([h, action], dim=-1))


@torch.no_grad()
def polyak_update_(target: nn.Module, online: nn.Module, tau: float) -> None:
    """target <- tau * target + (1 - tau) * online (rolf's convention: tau is the weight on the OLD target)."""
    t_params = list(target.parameters())
    o_params = list(online.parameters())
    torch._foreach_lerp_(t_params, o_params, 1.0 - tau)
