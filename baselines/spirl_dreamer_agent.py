"""SPiRL+Dreamer (spec §3.5, values §4.5): a Dreamer agent whose "action" is a skill of a frozen SPiRL skill model.

Composition, no new learner: `DreamerAgent` (world model / actor / critic of `rolf.dreamer.DreamerCore`, the Dreamer
replay convention, the posterior filter for acting) over skills z ∈ R^10, plus
- the frozen SPiRL model pre-trained by `python -m spirl.pretrain` (same prior as `spirl_config`): its closed-loop
  decoder executes a skill for `skill_horizon` (10) env steps, a_t = tanh(decoder(s_t, z)); its prior p(z | s)
  supplies the warm-up skills and the actor regulariser;
- the actor loss −mean(w·λ-return) + α·mean(D), D = clip(MC-KL(π(·|posterior feature) ‖ p(·|raw state), scale 2),
  ±max_divergence) with `kl_samples` (100) samples, passed to `DreamerCore` through its `actor_reg_fn` hook;
  α = `fixed_alpha` (0.01 in every config), or learned (Adam β1 0.5) toward `target_divergence` when null.

The MC-KL is the original's `mc_kl(actor_dist, prior_dist, scale=2.0)`: x ~ π (tanh-Gaussian on [−1, 1]),
D = mean_n[log π(x_n) − log p(2·x_n)], where log π includes the tanh log-Jacobian (the sample is inverted through
the clamped atanh, as the original's uncached TanhTransform) and log p is spirl's `MultivariateGaussian` log-density
summed over dims and clamped to [−20, 10]. The prior sees raw (un-normalised) SPiRL states; kitchen gets the
base-task goal appended (60-d), exactly as `SPiRLAgent.states`.

Replay (spec §3.5): entries (o_k, z_{k−1}, Σr over skill k−1, done_k), a zero skill and 0 reward first; whole
episodes are stored (the original's meta buffer never cuts an episode at a chunk boundary, unlike flat Dreamer);
sequences of `meta_batch_length` (15) skills, batch 50; 1 iteration per `train_every` (50) env steps.

Acting: during warm-up z ~ p(z | s) (no ×2: the prior already lives in z-space) and the filter state is reset; after
it the Dreamer actor acts on the posterior (sample + N(0, 0.3²), clipped to ±1; evaluation tanh(μ)) and the executed
skill is 2·(that output). The filter state keeps the *unscaled* output (the original's GPU runs; on a CPU the
original's in-place ×2 on a NumPy view would have rescaled it too — not reproduced).

Fix flags (`rolf.fix_*`, all false = the original's behaviour):
- fix_action_scale: store the actor-scale skill (executed / 2) so the RSSM is trained on the actions it is filtered
  and imagined with (the original stores the executed 2·z: model trained on [−2, 2], used with [−1, 1]; §7.11);
- fix_warm_up_ll: execute the decoder during the warm-up in every env (the original takes uniformly random low-level
  actions during the maze warm-up, `warm_up_random_ll: true` in spirl_dreamer_maze; §7.11);
- fix_ll_tanh: execute clip(decoder(s, z), ±1) instead of tanh (the decoder was trained without a tanh; §7.12);
- fix_kl_log_prob_clamp: unclamped prior log-density in the MC-KL (the [−20, 10] clamp zeroes its gradient).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from baselines.dreamer_agent import DreamerAgent, Preprocess
from baselines.spirl_agent import FrozenSkills, load_prior, prior_divergence
from rolf.config import ConfigError, get
from rolf.dreamer import DreamerConfig
from rolf.utils.checkpoint import CheckpointError, load_module_state
from rolf.utils.optim import fast_adam


@dataclass(frozen=True)
class SPiRLDreamerConfig:
    """The `rolf.*` values SPiRL+Dreamer reads on top of Dreamer's (spec §3.5, §4.5)."""

    prior_path: str
    skill_dim: int
    skill_horizon: int
    meta_batch_length: int
    action_scale: float  # executed skill = action_scale · actor output (2)
    kl_samples: int
    max_divergence: float
    fixed_alpha: float | None  # None: α learned toward target_divergence
    alpha_init: float
    alpha_lr: float
    target_divergence: float
    warm_up_random_ll: bool
    fix_action_scale: bool
    fix_warm_up_ll: bool
    fix_ll_tanh: bool
    fix_kl_log_prob_clamp: bool

    @classmethod
    def from_rolf(cls, r: Any) -> SPiRLDreamerConfig:
        fixed = get(r, "fixed_alpha", None)
        return cls(
            prior_path=str(get(r, "prior_path")), skill_dim=int(get(r, "skill_dim")),
            skill_horizon=int(get(r, "skill_horizon")), meta_batch_length=int(get(r, "meta_batch_length")),
            action_scale=float(get(r, "action_scale")), kl_samples=int(get(r, "kl_samples")),
            max_divergence=float(get(r, "max_divergence")), fixed_alpha=None if fixed is None else float(fixed),
            alpha_init=float(get(r, "alpha_init")), alpha_lr=float(get(r, "alpha_lr")),
            target_divergence=float(get(r, "target_divergence")),
            warm_up_random_ll=bool(get(r, "warm_up_random_ll", False)),
            fix_action_scale=bool(get(r, "fix_action_scale", False)),
            fix_warm_up_ll=bool(get(r, "fix_warm_up_ll", False)), fix_ll_tanh=bool(get(r, "fix_ll_tanh", False)),
            fix_kl_log_prob_clamp=bool(get(r, "fix_kl_log_prob_clamp", False)),
        )


class SPiRLDreamerAgent(DreamerAgent):
    """`DreamerAgent` over skills + the frozen SPiRL decoder (low level) and prior (warm-up, actor regulariser)."""

    def __init__(self, c: DreamerConfig, sc: SPiRLDreamerConfig, rolf_cfg: Any, skill_model, env_name: str,
                 ob_dim: int, ac_dim: int, device: torch.device | str, rng: np.random.Generator,
                 preprocess: Preprocess | None = None):
        mc = skill_model.cfg
        if mc.nz_vae != sc.skill_dim or mc.action_dim != ac_dim:
            raise CheckpointError(f"{sc.prior_path}: the prior has skill dim {mc.nz_vae} / action dim "
                                  f"{mc.action_dim}, expected {sc.skill_dim} / {ac_dim} (env {env_name!r})")
        super().__init__(dataclasses.replace(c, batch_length=sc.meta_batch_length), rolf_cfg, ob_dim, sc.skill_dim,
                         device, rng, preprocess)
        self.sc = sc
        self.whole_episodes = True  # the meta buffer keeps episodes whole (see the module docstring)
        self.skill_horizon = sc.skill_horizon
        self.env_ac_dim = ac_dim
        self.skills = FrozenSkills(skill_model, env_name, self.device, sc.fix_ll_tanh)
        self.skill_model = self.skills.model
        self._random_ll = False  # set per skill by act_meta: uniformly random low-level actions (maze warm-up)
        self.log_alpha = nn.Parameter(torch.tensor(math.log(sc.alpha_init), device=self.device))
        self.alpha_optim = fast_adam([self.log_alpha], lr=sc.alpha_lr, betas=(0.5, 0.999))
        self._reg_info: dict[str, float] = {}

    # ------------------------------------------------------------------ skills
    def states(self, ob: Any) -> torch.Tensor:
        return self.skills.states(ob)

    @torch.no_grad()
    def act_meta(self, ob: np.ndarray, memory: Any, is_train: bool, warm_up: bool = False) -> tuple[np.ndarray, Any]:
        """The executed skill (d_z,) and the filter memory. Warm-up: z ~ p(z | s), memory reset; otherwise
        action_scale · Dreamer's action (memory keeps the unscaled one)."""
        self._random_ll = warm_up and self.sc.warm_up_random_ll and not self.sc.fix_warm_up_ll
        if warm_up:
            z = self.skill_model.prior_dist(self.states(np.asarray(ob, np.float32))[None]).sample()
            return z[0].cpu().numpy(), None
        action, memory = super().act_meta(ob, memory, is_train)
        return self.sc.action_scale * action, memory  # a new array: the memory's action stays unscaled

    def act_skill(self, ob: np.ndarray, skill: np.ndarray) -> np.ndarray:
        """The frozen decoder's action; uniform in [−1, 1] during the maze warm-up (see act_meta)."""
        if self._random_ll:
            return self.rng.uniform(-1.0, 1.0, self.env_ac_dim).astype(np.float32)
        return self.skills.act_skill(ob, skill)

    def store_episode(self, rollout: dict[str, list]) -> None:
        """Stores the executed skills (2·z), or the actor-scale ones (executed / action_scale) with fix_action_scale."""
        if self.sc.fix_action_scale:
            rollout = {**rollout, "ac": [np.asarray(a, np.float32) / self.sc.action_scale for a in rollout["ac"]]}
        super().store_episode(rollout)

    # ------------------------------------------------------------------ training
    def alpha(self, divergence: torch.Tensor) -> torch.Tensor:
        """α for this iteration: fixed_alpha, or the learned α before its step toward target_divergence."""
        sc = self.sc
        if sc.fixed_alpha is not None:
            return torch.tensor(sc.fixed_alpha, device=self.device)
        alpha = self.log_alpha.exp()
        loss = alpha * (sc.target_divergence - divergence).detach().mean()
        self.alpha_optim.zero_grad(set_to_none=True)
        loss.backward()
        self.alpha_optim.step()
        return alpha.detach()

    def prior_reg(self, feat: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """DreamerCore's actor_reg_fn: α·mean(clip(D(π(·|feat) ‖ p(·|s)), ±max_divergence)).
        feat (B, T, F) detached posterior features, batch["ob"] (B, T, d_o) raw observations."""
        sc = self.sc
        with torch.no_grad():
            p_mu, p_ls = self.skill_model.prior_params(self.states(batch["ob"]))  # (B, T, d_z) each
        div = prior_divergence(self.core.actor(feat), p_mu, p_ls, sc.action_scale, sc.kl_samples,
                               clamp=not sc.fix_kl_log_prob_clamp)
        div = div.clamp(-sc.max_divergence, sc.max_divergence)  # (B, T)
        alpha = self.alpha(div)
        self._reg_info = {"prior_div": float(div.detach().mean()), "alpha": float(alpha)}
        return alpha * div.mean()

    def update(self) -> dict[str, torch.Tensor]:
        """train_iter iterations (1 per train_every env steps) of the Dreamer update with the prior regulariser;
        {} while no stored episode has meta_batch_length entries."""
        c = self.c
        if not self.buffer.can_sample(c.batch_length):
            return {}
        infos = [{**self.core.update(self._batch(self.buffer.sample(c.batch_size, c.batch_length)), self.prior_reg),
                  **self._reg_info} for _ in range(c.train_iter)]
        return {k: torch.tensor(float(np.mean([i[k] for i in infos]))) for k in infos[-1]}

    # ------------------------------------------------------------------ checkpoint
    def state_dict(self) -> dict:
        return {**super().state_dict(), "spirl_model": self.skill_model.state_dict(),
                "log_alpha": self.log_alpha.detach().clone(), "alpha_optim": self.alpha_optim.state_dict()}

    def load_state_dict(self, state: dict, source: str = "checkpoint") -> None:
        if "spirl_model" not in state:
            raise CheckpointError(f"{source}: 'spirl_model' is missing (not a SPiRL+Dreamer checkpoint?)")
        super().load_state_dict(state, source)
        load_module_state(self.skill_model, state["spirl_model"], "spirl_model", source)  # the prior the run used
        with torch.no_grad():
            self.log_alpha.copy_(torch.as_tensor(state["log_alpha"]).to(self.log_alpha))
        self.alpha_optim.load_state_dict(state["alpha_optim"])


def build_spirl_dreamer(cfg: Any, spec, device: torch.device, rng: np.random.Generator) -> SPiRLDreamerAgent:
    """The SPiRL+Dreamer agent for a composed `spirl_dreamer_<env>` config (the `AGENTS["spirl_dreamer"]` factory).
    The world model sees the env's SkiMo preprocessing (maze /40 − 0.5, /10), as the original."""
    r = cfg.rolf
    if str(get(r, "phase", "rl")) != "rl":
        raise ConfigError(f"rolf.phase={r.phase!r}: spirl_dreamer has only the 'rl' phase")
    sc = SPiRLDreamerConfig.from_rolf(r)
    model = load_prior(sc.prior_path, str(spec.name), spec.ac_dim, device)
    return SPiRLDreamerAgent(DreamerConfig.from_rolf(r), sc, r, model, str(spec.name), spec.ob_dim, spec.ac_dim,
                             torch.device(device), rng, spec.preprocess)
