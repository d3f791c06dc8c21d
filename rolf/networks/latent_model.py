"""TD-MPC-style latent world model: encoder E, dynamics D, reward R, twin critic Q (spec §1.2).

Shared by SkiMo (skill dynamics), TD-MPC and SPiRL+TD-MPC. Attribute names match the original's
`TDMPCModel` (`encoder`, `dynamics`, `reward`, `critic`)."""

from __future__ import annotations

from typing import Callable

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


def rollout_losses(model: LatentModel, h0: torch.Tensor, actions: torch.Tensor, h_target: torch.Tensor,
                   rew: torch.Tensor, y: torch.Tensor, rho: float,
                   critic_input: Callable[[int, torch.Tensor], torch.Tensor] | None = None,
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """TD-MPC's multi-step latent losses (spec §2.5, §3.2), shared by SkiMo, TD-MPC and SPiRL+TD-MPC.

    Rolls the dynamics open-loop from h0 under the given actions and sums, with weights ρ^k,
    consistency mean_d (ĥ_{k+1} − h̄_{k+1})², reward (R(ĥ_k, a_k) − r_k)² and value Σ_i (Q_i(ĥ_k, a_k) − y_k)².

    Args:
        h0: (B, d_s) online latent of the first observation; actions: (B, L, d_a); h_target: (B, L, d_s) target
        latents of o_1..o_L; rew, y: (B, L) rewards and TD targets.
        critic_input: (k, ĥ_k) -> the critic's state input (SkiMo+SAC feeds the observation instead of ĥ_k).
    Returns:
        (consistency, reward, value) losses, each (B,), and the rolled-out latents ĥ_0..ĥ_L (B, L+1, d_s).
    """
    x = h0
    zero = torch.zeros(h0.shape[0], device=h0.device, dtype=h0.dtype)
    cons, rew_l, val_l, hs = zero, zero, zero, [h0]
    for k in range(actions.shape[1]):
        q1, q2 = model.q(x if critic_input is None else critic_input(k, x), actions[:, k])
        x, r_hat = model.imagine_step(x, actions[:, k])
        w = rho**k
        cons = cons + w * ((x - h_target[:, k]) ** 2).mean(-1)
        rew_l = rew_l + w * (r_hat - rew[:, k]) ** 2
        val_l = val_l + w * ((q1 - y[:, k]) ** 2 + (q2 - y[:, k]) ** 2)
        hs.append(x)
    return cons, rew_l, val_l, torch.stack(hs, 1)


@torch.no_grad()
def polyak_update_(target: nn.Module, online: nn.Module, tau: float) -> None:
    """target <- tau * target + (1 - tau) * online (rolf's convention: tau is the weight on the OLD target)."""
    t_params = list(target.parameters())
    o_params = list(online.parameters())
    torch._foreach_lerp_(t_params, o_params, 1.0 - tau)
