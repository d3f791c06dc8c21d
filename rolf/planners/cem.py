"""The one CEM / MPPI planner (TD-MPC style) shared by SkiMo, TD-MPC and SPiRL+TD-MPC (spec §2.7).

It plans in whatever action space the model was trained on (skills for SkiMo, env actions for TD-MPC) over a
small protocol: `model.next(h, a) -> h_next`, `model.predict_reward(h, a) -> reward` (any leading dims),
`model.q(h, a) -> (q1, q2)` and a policy `policy(h) -> TanhNormal`. Everything stays on the model's device; nothing
is synchronised to the host.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from rolf.networks.distributions import TanhNormal
from rolf.planners.schedules import LinearDecay


@dataclass(frozen=True)
class CEMConfig:
    max_horizon: int  # L (n_skill) for SkiMo, `horizon` for TD-MPC
    horizon_step: float  # steps over which the horizon grows from 1 to max_horizon
    iterations: int = 6  # cem_iter
    num_samples: int = 512  # num_sample_traj
    num_policy_traj: int = 25
    num_elites: int = 64
    momentum: float = 0.1  # weight on the old mean
    temperature: float = 0.5
    max_std: float = 0.5
    min_std: float = 0.05
    std_step: float = 25_000
    discount: float = 0.99
    init_std: float = 2.0
    clamp: float = 0.999  # SkiMo ±0.999, TD-MPC ±1
    compile: bool = False  # torch.compile the dynamics and reward steps (fused elementwise ops; once per model)


class CEMPlanner:
    """plan(h, prev_mean, step, is_train) -> (action (d_a,), mean (N, d_a))."""

    def __init__(self, cfg: CEMConfig, action_dim: int):
        self.cfg = cfg
        self.action_dim = action_dim
        self.horizon = LinearDecay(1, cfg.max_horizon, cfg.horizon_step)
        self.std_floor = LinearDecay(cfg.max_std, cfg.min_std, cfg.std_step)
        self._compiled: tuple[object, Callable, Callable] | None = None  # (model, its compiled next, predict_reward)
        self._discount_cache: dict[tuple, torch.Tensor] = {}

    def _model_steps(self, model) -> tuple[Callable, Callable]:
        """(model.next, model.predict_reward), compiled once per model when `compile` is set. Not frozen: the compiled
        code reads the live parameters, so updates between plans are seen (tests/rolf/test_cem.py checks both)."""
        if not self.cfg.compile:
            return model.next, model.predict_reward
        if self._compiled is None or self._compiled[0] is not model:
            self._compiled = (model, torch.compile(model.next, dynamic=False),
                              torch.compile(model.predict_reward, dynamic=False))
        return self._compiled[1], self._compiled[2]

    def _discounts(self, n: int, like: torch.Tensor) -> torch.Tensor:
        """γ^0..γ^n on like's device, made once per horizon (a host-to-device copy per plan would wait for the GPU)."""
        key = (n, like.device, like.dtype)
        if key not in self._discount_cache:
            self._discount_cache[key] = torch.tensor([self.cfg.discount**t for t in range(n + 1)], device=like.device,
                                                     dtype=like.dtype)
        return self._discount_cache[key]

    def horizon_at(self, step: int) -> int:
        return int(self.horizon(step))

    @torch.no_grad()
    def estimate_value(self, model, policy: Callable[[torch.Tensor], TanhNormal], h: torch.Tensor,
                       actions: torch.Tensor) -> torch.Tensor:
        """G = sum_t γ^t R(h_t, a_t) + γ^N min(Q1, Q2)(h_N, a' ~ π(h_N)).  h: (S, d_s), actions: (N, S, d_a) -> (S,).

        Only the dynamics are sequential: the N rewards come from one batched pass over h_0..h_{N-1}."""
        next_, predict_reward = self._model_steps(model)
        n = actions.shape[0]
        hs = [h]
        for t in range(n):
            hs.append(next_(hs[-1], actions[t]))
        rewards = predict_reward(torch.stack(hs[:-1]), actions)  # (N, S)
        discounts = self._discounts(n, h)  # (N+1,)
        h_last = hs[-1]
        q1, q2 = model.q(h_last, policy(h_last).rsample())
        return (discounts[:n, None] * rewards).sum(0) + discounts[n] * torch.minimum(q1, q2)

    @torch.no_grad()
    def _policy_trajectories(self, model, policy, h: torch.Tensor, horizon: int) -> torch.Tensor:
        """(N, P, d_a) actions sampled from π along its own imagined latent trajectory (sampled once per call)."""
        hs = h.expand(self.cfg.num_policy_traj, -1)
        out = []
        for _ in range(horizon):
            a = policy(hs).rsample()
            out.append(a)
            hs = model.next(hs, a)
        return torch.stack(out, 0)

    @torch.no_grad()
    def plan(self, model, policy, h: torch.Tensor, prev_mean: torch.Tensor | None, step: int,
             is_train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """h: (1, d_s) latent of the current observation. Returns (first action (d_a,), plan mean (N, d_a))."""
        cfg = self.cfg
        n = self.horizon_at(step)
        dev, dtype = h.device, h.dtype
        num_pi = cfg.num_policy_traj
        pi_actions = self._policy_trajectories(model, policy, h, n) if num_pi > 0 else None
        mean = torch.zeros(n, self.action_dim, device=dev, dtype=dtype)
        std = torch.full((n, self.action_dim), cfg.init_std, device=dev, dtype=dtype)
        if prev_mean is not None and n > 1 and prev_mean.shape[0] == n:
            mean[:-1] = prev_mean[1:]
        h_all = h.expand(cfg.num_samples + num_pi, -1)
        std_floor = self.std_floor(step)
        for _ in range(cfg.iterations):
            noise = torch.randn(n, cfg.num_samples, self.action_dim, device=dev, dtype=dtype)
            actions = (mean.unsqueeze(1) + std.unsqueeze(1) * noise).clamp_(-cfg.clamp, cfg.clamp)  # (N, S, d_a)
            if pi_actions is not None:
                actions = torch.cat([actions, pi_actions], dim=1)  # (N, S+P, d_a)
            value = self.estimate_value(model, policy, h_all, actions)  # (S+P,)
            elite_value, elite_idx = torch.topk(value, min(cfg.num_elites, value.shape[0]))
            elite_actions = actions[:, elite_idx]  # (N, E, d_a)
            score = torch.exp(cfg.temperature * (elite_value - elite_value.max()))
            score = score / score.sum()
            new_mean = (score[None, :, None] * elite_actions).sum(1)
            new_std = torch.sqrt((score[None, :, None] * (elite_actions - new_mean.unsqueeze(1)) ** 2).sum(1))
            std = new_std.clamp(std_floor, cfg.init_std)
            mean = cfg.momentum * mean + (1.0 - cfg.momentum) * new_mean
        chosen = torch.multinomial(score, 1)[0]
        action = elite_actions[0, chosen]
        if is_train:
            action = action + std[0] * torch.randn(self.action_dim, device=dev, dtype=dtype)
        return action.clamp(-cfg.clamp, cfg.clamp), mean
