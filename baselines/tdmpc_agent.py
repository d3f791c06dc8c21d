"""TD-MPC, the flat model-based baseline (spec §3.2, hyperparameters §4.2).

Built from the same rolf parts as SkiMo: `LatentModel` (encoder, dynamics, reward, twin Q), `rollout_losses`
(the multi-step consistency/reward/value loop), `CEMPlanner` (here in action space, every env step) and
`ReplayBufferEpisode` (sequences of `horizon` transitions with one more observation). It runs under rolf's
`RolloutRunner`: `act_meta` chooses the env action every env step.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from rolf.config import cem_config, get
from rolf.networks import TanhNormal
from rolf.networks.latent_model import LatentModel, polyak_update_, rollout_losses
from rolf.networks.mlp import MLP
from rolf.planners import CEMPlanner
from rolf.utils.checkpoint import load_module_state
from rolf.utils.optim import ClippedAdam

Preprocess = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class TDMPCConfig:
    """Every `rolf.*` value TD-MPC reads (spec §4.2), read once."""

    horizon: int
    state_dim: int
    num_units: int
    num_layers: int
    embed_dim: int
    dense_act: str
    batch_size: int
    warm_up_step: int
    train_every: int
    train_iter: int
    rl_discount: float
    lambda_consistency: float
    lambda_reward: float
    lambda_value: float
    rho: float
    model_lr: float
    actor_lr: float
    grad_clip: float
    target_update_freq: int
    target_update_tau: float
    policy_std: float  # fixed std of the actor's TanhNormal (= min_std)
    horizon_step: float
    bootstrap_done: bool  # fix flag: mask the TD target at terminals (the original bootstraps through them)

    @classmethod
    def from_rolf(cls, r: Any) -> TDMPCConfig:
        return cls(
            horizon=int(r.horizon), state_dim=int(r.state_dim), num_units=int(r.num_units),
            num_layers=int(r.num_layers), embed_dim=int(r.encoder.embed_dim), dense_act=str(r.dense_act),
            batch_size=int(r.batch_size), warm_up_step=int(float(r.warm_up_step)), train_every=int(r.train_every),
            train_iter=int(r.train_iter), rl_discount=float(r.rl_discount),
            lambda_consistency=float(r.consistency_coef), lambda_reward=float(r.reward_coef),
            lambda_value=float(r.value_coef), rho=float(r.rho), model_lr=float(r.model_lr),
            actor_lr=float(r.actor_lr), grad_clip=float(r.grad_clip), target_update_freq=int(r.target_update_freq),
            target_update_tau=float(r.target_update_tau), policy_std=float(r.min_std),
            horizon_step=float(r.horizon_step), bootstrap_done=bool(get(r, "fix_done_mask", False)),
        )


class FixedStdPolicy(nn.Module):
    """π(a | h) = TanhNormal(MLP(h), σ) with a fixed σ (TD-MPC's policy prior, std = min_std)."""

    def __init__(self, state_dim: int, action_dim: int, hidden_dims: list[int], act: str, std: float):
        super().__init__()
        self.fc = MLP(state_dim, action_dim, hidden_dims, act)
        self.std = std

    def forward(self, h: torch.Tensor) -> TanhNormal:
        mean = self.fc(h)
        return TanhNormal(mean, torch.full_like(mean, self.std))


class TDMPCAgent:
    """Flat TD-MPC: latent model + target, policy prior, planner, optimisers, replay buffer."""

    def __init__(self, c: TDMPCConfig, rolf_cfg: Any, ob_dim: int, ac_dim: int, device: torch.device,
                 rng: np.random.Generator, preprocess: Preprocess | None = None):
        from rolf.buffers import ReplayBufferEpisode

        self.c, self.device, self.rng = c, device, rng
        self.ob_dim, self.ac_dim = ob_dim, ac_dim
        self.preprocess = preprocess or (lambda x: x)  # spec §3.2: raw observations
        hidden = [c.num_units] * c.num_layers
        self.model = LatentModel(ob_dim, ac_dim, c.state_dim, c.num_units, c.num_layers, c.embed_dim,
                                 act=c.dense_act).to(device)
        self.model_target = copy.deepcopy(self.model).requires_grad_(False)
        self.actor = FixedStdPolicy(c.state_dim, ac_dim, hidden, c.dense_act, c.policy_std).to(device)
        self.planner = CEMPlanner(cem_config(rolf_cfg, c.horizon, c.horizon_step, clamp=1.0), ac_dim)
        self.optims = {"model": ClippedAdam([self.model], c.model_lr, c.grad_clip),
                       "actor": ClippedAdam([self.actor], c.actor_lr, c.grad_clip)}
        self.buffer = ReplayBufferEpisode(("ob", "ac", "rew", "done"), int(float(get(rolf_cfg, "buffer_size"))),
                                          one_more_ob=True, rng=rng)
        self.step = 0
        self._update_iter = 0
        self._warm_up_done = False

    @property
    def hl_buffer(self):  # the trainer saves/restores the sampler RNG of `hl_buffer`
        return self.buffer

    def _to_tensor(self, x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(x, device=self.device, dtype=torch.float32)

    # ------------------------------------------------------------------ acting
    @torch.no_grad()
    def act_meta(self, ob: np.ndarray, prev_mean: torch.Tensor | None, is_train: bool,
                 warm_up: bool = False) -> tuple[np.ndarray, torch.Tensor | None]:
        """The env action: uniform random during warm-up, else the CEM plan's (spec §3.2)."""
        if warm_up:
            return self.rng.uniform(-1.0, 1.0, self.ac_dim).astype(np.float32), prev_mean
        h = self.model.encode(self.preprocess(self._to_tensor(ob)[None]))  # (1, d_s)
        a, mean = self.planner.plan(self.model, self.actor, h, prev_mean, self.step, is_train)
        return a.cpu().numpy(), mean

    # ------------------------------------------------------------------ training
    def store_episode(self, rollout: dict[str, list]) -> None:
        self.buffer.add_transitions(rollout)

    def set_step(self, step: int) -> None:
        self.step = step

    def update(self) -> dict[str, torch.Tensor]:
        """train_iter iterations (+ the warm-up's worth on the first call: 5,000 at the paper's values)."""
        c = self.c
        if not self.buffer.can_sample(c.horizon):
            return {}
        n = c.train_iter
        if not self._warm_up_done:
            self._warm_up_done = True
            n += c.warm_up_step * c.train_iter // c.train_every
        infos = [self.rl_step(self.buffer.sample(c.batch_size, c.horizon)) for _ in range(n)]
        return {k: torch.stack([i[k] for i in infos]).mean() for k in infos[-1]}

    def rl_step(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """One model + actor update on a batch ob (B, N+1, d_o), ac (B, N, d_a), rew (B, N), done (B, N)."""
        c = self.c
        ob = self.preprocess(self._to_tensor(batch["ob"]))
        ac, rew = self._to_tensor(batch["ac"]), self._to_tensor(batch["rew"])
        h = self.model.encode(ob)  # (B, N+1, d_s)
        with torch.no_grad():
            h_target = self.model_target.encode(ob[:, 1:])  # (B, N, d_s)
            h_next = h[:, 1:].detach()
            q1, q2 = self.model_target.q(h_next, self.actor(h_next).sample())
            not_done = 1.0 - self._to_tensor(batch["done"]) if c.bootstrap_done else 1.0
            y = rew + not_done * c.rl_discount * torch.minimum(q1, q2)  # (B, N); the original: no done mask
        cons, rew_l, val_l, hs = rollout_losses(self.model, h[:, 0], ac, h_target, rew, y, c.rho)
        model_loss = (c.lambda_consistency * cons.clamp(max=1e4) + c.lambda_reward * rew_l.clamp(max=1e4)
                      + c.lambda_value * val_l.clamp(max=1e4)).mean()
        info = {"model_loss": model_loss.detach(), "consistency_loss": cons.mean().detach(),
                "reward_loss": rew_l.mean().detach(), "critic_loss": val_l.mean().detach(), "value_target": y.mean()}
        info["model_grad_norm"] = self.optims["model"].step(model_loss / ac.shape[1])  # gradient × 1/N (spec)
        actor_loss = self.actor_loss(hs.detach())
        info["actor_loss"] = actor_loss.detach()
        info["actor_grad_norm"] = self.optims["actor"].step(actor_loss)
        self._update_iter += 1
        if self._update_iter % c.target_update_freq == 0:
            polyak_update_(self.model_target, self.model, c.target_update_tau)
        return info

    def actor_loss(self, hs: torch.Tensor) -> torch.Tensor:
        """Σ_t −ρ^t · mean_B min Q(ĥ_t, a ~ π(ĥ_t)) over the detached rolled-out latents hs (B, N+1, d_s)."""
        states = hs.transpose(0, 1)  # (N+1, B, d_s)
        q1, q2 = self.model.q_frozen(states, self.actor(states).rsample())
        rho = self.c.rho ** torch.arange(states.shape[0], device=hs.device, dtype=hs.dtype)
        return -(rho * torch.minimum(q1, q2).mean(1)).sum()

    @torch.no_grad()
    def value_of(self, obs: np.ndarray) -> np.ndarray:
        """min(Q1, Q2)(h, tanh(μ_π(h))) for raw observations (N, d_o) -> (N,) (maze value heat-map)."""
        h = self.model.encode(self.preprocess(self._to_tensor(obs)))
        q1, q2 = self.model.q(h, self.actor(h).mode())
        return torch.minimum(q1, q2).cpu().numpy()

    # ------------------------------------------------------------------ checkpoint
    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "model_target": self.model_target.state_dict(),
                "actor": self.actor.state_dict(), **{f"{k}_optim": o.state_dict() for k, o in self.optims.items()},
                "counters": {"update_iter": self._update_iter, "warm_up_done": self._warm_up_done},
                "buffer": self.buffer.state_dict()}

    def load_state_dict(self, state: dict, source: str = "checkpoint") -> None:
        for name in ("model", "model_target", "actor"):
            load_module_state(getattr(self, name), state[name], name, source)
        for k, o in self.optims.items():
            o.load_state_dict(state[f"{k}_optim"])
        self._update_iter = int(state["counters"]["update_iter"])
        self._warm_up_done = bool(state["counters"]["warm_up_done"])
        self.buffer.load_state_dict(state["buffer"])
