"""TD-MPC-style latent world model: encoder E, dynamics D, reward R, twin critic Q (spec §1.2).

Shared by SkiMo (skill dynamics), TD-MPC and SPiRL+TD-MPC. Attribute names match the original's
`TDMPCModel` (`encoder`, `dynamics`, `reward`, `critic`)."""

from __future__ import annotations

from collections.abc import Callable

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

    def predict_reward(self, h: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.reward(torch.cat([h, action], dim=-1))[0]

    def q(self, h: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.critic(torch.cat([h, action], dim=-1))

    def q_frozen(self, h: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Q with its weights as constants, for actor losses: gradients reach h and the action, but no dQ/dθ is
        computed. The actor optimiser steps only the actor and the model optimiser zeroes its gradients before each
        step, so results are those of `q`, minus a third of the critic's backward matmuls."""
        weights = {name: p.detach() for name, p in self.critic.named_parameters()}
        return torch.func.functional_call(self.critic, weights, (torch.cat([h, action], dim=-1),))


def rollout_losses(model: LatentModel, h0: torch.Tensor, actions: torch.Tensor, h_target: torch.Tensor,
                   rew: torch.Tensor, y: torch.Tensor, rho: float,
                   critic_input: Callable[[torch.Tensor], torch.Tensor] | None = None,
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """TD-MPC's multi-step latent losses (spec §2.5, §3.2), shared by SkiMo, TD-MPC and SPiRL+TD-MPC.

    Rolls the dynamics open-loop from h0 under the given actions and sums, with weights ρ^k,
    consistency mean_d (ĥ_{k+1} − h̄_{k+1})², reward (R(ĥ_k, a_k) − r_k)² and value Σ_i (Q_i(ĥ_k, a_k) − y_k)².
    Only the dynamics are sequential: R and Q read ĥ_0..ĥ_{L-1} in one batched pass each, not L passes of B rows
    (the same values as the original's per-step loop; tests/rolf/test_latent_model.py compares the two).

    Args:
        h0: (B, d_s) online latent of the first observation; actions: (B, L, d_a); h_target: (B, L, d_s) target
        latents of o_1..o_L; rew, y: (B, L) rewards and TD targets.
        critic_input: ĥ_0..ĥ_{L-1} (B, L, d_s) -> the critic's state input (SkiMo+SAC feeds the observations).
    Returns:
        (consistency, reward, value) losses, each (B,), and the rolled-out latents ĥ_0..ĥ_L (B, L+1, d_s).
    """
    big_l = actions.shape[1]
    hs = [h0]
    for k in range(big_l):
        hs.append(model.next(hs[-1], actions[:, k]))
    h_all = torch.stack(hs, 1)  # (B, L+1, d_s)
    h_in = h_all[:, :-1]  # (B, L, d_s)
    r_hat = model.predict_reward(h_in, actions)  # (B, L)
    q1, q2 = model.q(h_in if critic_input is None else critic_input(h_in), actions)  # (B, L) each
    w = rho ** torch.arange(big_l, device=h0.device, dtype=h0.dtype)  # (L,), made on the device: no host copy
    cons = (((h_all[:, 1:] - h_target) ** 2).mean(-1) * w).sum(1)
    rew_l = ((r_hat - rew) ** 2 * w).sum(1)
    val_l = (((q1 - y) ** 2 + (q2 - y) ** 2) * w).sum(1)
    return cons, rew_l, val_l, h_all


@torch.no_grad()
def polyak_update_(target: nn.Module, online: nn.Module, tau: float) -> None:
    """target <- tau * target + (1 - tau) * online (rolf's convention: tau is the weight on the OLD target)."""
    t_params = list(target.parameters())
    o_params = list(online.parameters())
    torch._foreach_lerp_(t_params, o_params, 1.0 - tau)
