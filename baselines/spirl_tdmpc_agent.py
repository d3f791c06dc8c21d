"""SPiRL+TD-MPC: flat TD-MPC planning and learning over the skills of a frozen SPiRL skill prior (spec §3.6, §4.5).

A `TDMPCAgent` whose "action" is the 10-d skill z: latent model, planner (CEM/MPPI every skill, in [−1, 1]),
policy prior, losses and update schedule are flat TD-MPC's. Only what differs is overridden here:

- acting: the executed skill is z = 2·plan (`action_scale`); the frozen SPiRL closed-loop decoder executes it
  for `skill_horizon` (10) env steps (`SPiRLAgent.act_skill`, tanh(decoder(s, z))); during warm-up the skill is a
  sample of the SPiRL prior p(z | s) on the raw state (no ×2: the prior lives in z-space) and, in the maze
  (`warm_up_random_ll`), the low-level actions are uniformly random;
- observations: SPiRL's states (kitchen: 60-d, the base-task goal appended), SkiMo's preprocessing applied for the
  model (maze /40 − 0.5, /10; spec §1.4) — SPiRL+TD-MPC normalises, unlike flat TD-MPC;
- meta buffer: Dreamer-convention entries (o_k, z_{k−1}, Σr of skill k−1, done_k), each episode starting with
  (o_0, 0, 0, 0); sequences of `meta_batch_length` (5) entries; `batch_size` 128;
- update: the TD-MPC losses over the 4 steps of a 5-entry sequence, reading (o_t, z_t, r_t) = entry t, i.e. with the
  skill/reward that *ended* in o_t (the original's off-by-one); no done masking;
- actor loss: TD-MPC's Σ_t −ρ^t min Q(ĥ_t, π(ĥ_t)) over the 5 latents, plus α·KL once per latent term (×5), with
  KL = mean clip(MC-KL(π(·|E(o)) ‖ p(·|o), scale 2), ±100) over the batch's 5 encoded observations, π the actor's
  TanhNormal (std 0.05) in [−1, 1], the prior evaluated at 2x with spirl's clamped log-density, 100 samples (the
  original's `mc_kl`, shared with SPiRL+Dreamer: `prior_divergence`); α fixed at 1;
- the first update after warm-up does *not* add flat TD-MPC's extra warm-up iterations (§7.10).

Fix flags (`rolf.fix_*`, all false = the original's behaviour; spec §7.10, §7.12, §3.5):
fix_meta_off_by_one, fix_action_scale, fix_prior_raw_ob, fix_kl_once, fix_warm_up_iters, fix_batch_size,
fix_warm_up_ll, fix_ll_tanh, fix_kl_log_prob_clamp, and flat TD-MPC's fix_done_mask (one line each in
config/algo/spirl_tdmpc.yaml).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch

from baselines.spirl_agent import FrozenSkills, load_prior, prior_divergence
from baselines.tdmpc_agent import Preprocess, TDMPCAgent, TDMPCConfig
from rolf.config import ConfigError, get
from rolf.utils.checkpoint import CheckpointError, load_module_state

_KEYS = ("ob", "ac", "rew", "done")


@dataclass(frozen=True)
class SPiRLTDMPCConfig(TDMPCConfig):
    """Flat TD-MPC's values plus what SPiRL+TD-MPC reads (spec §4.5), read once."""

    prior_path: str
    skill_dim: int
    skill_horizon: int
    action_scale: float
    meta_batch_length: int
    alpha: float
    kl_samples: int
    max_divergence: float
    warm_up_random_ll: bool
    fix_meta_off_by_one: bool
    fix_action_scale: bool
    fix_prior_raw_ob: bool
    fix_kl_once: bool
    fix_warm_up_iters: bool
    fix_warm_up_ll: bool
    fix_ll_tanh: bool
    fix_kl_log_prob_clamp: bool

    @classmethod
    def from_rolf(cls, r: Any) -> SPiRLTDMPCConfig:
        base = {f.name: getattr(TDMPCConfig.from_rolf(r), f.name) for f in fields(TDMPCConfig)}
        if bool(get(r, "fix_batch_size", False)):  # the intended meta_batch_size (unused by the original)
            base["batch_size"] = int(get(r, "meta_batch_size"))
        alpha = get(r, "fixed_alpha")
        if alpha is None:
            raise ConfigError("rolf.fixed_alpha=null: SPiRL+TD-MPC has only a fixed alpha (the original's configs fix "
                              "it at 1); set a number")
        flags = {k: bool(get(r, k, False)) for k in ("fix_meta_off_by_one", "fix_action_scale", "fix_prior_raw_ob",
                                                      "fix_kl_once", "fix_warm_up_iters", "fix_warm_up_ll",
                                                      "fix_ll_tanh", "fix_kl_log_prob_clamp")}
        c = cls(**base, prior_path=str(get(r, "prior_path")), skill_dim=int(get(r, "skill_dim")),
                skill_horizon=int(get(r, "skill_horizon")), action_scale=float(get(r, "action_scale")),
                meta_batch_length=int(get(r, "meta_batch_length")), alpha=float(alpha),
                kl_samples=int(get(r, "kl_samples")), max_divergence=float(get(r, "max_divergence")),
                warm_up_random_ll=bool(get(r, "warm_up_random_ll", False)), **flags)
        if c.meta_batch_length != c.horizon:
            raise ConfigError(f"rolf.meta_batch_length={c.meta_batch_length} must equal rolf.horizon={c.horizon}: "
                              f"the update runs the TD-MPC losses over horizon - 1 steps of one sampled sequence")
        return c


class SPiRLTDMPCAgent(TDMPCAgent):
    """TD-MPC over SPiRL skills (see the module docstring for every difference from `TDMPCAgent`)."""

    def __init__(self, c: SPiRLTDMPCConfig, rolf_cfg: Any, skills: FrozenSkills, ll_ac_dim: int,
                 device: torch.device, rng: np.random.Generator, preprocess: Preprocess | None = None):
        from rolf.buffers import ReplayBufferEpisode

        if skills.skill_dim != c.skill_dim:
            raise CheckpointError(f"{c.prior_path}: the prior's skills are {skills.skill_dim}-d, "
                                  f"rolf.skill_dim={c.skill_dim}")
        super().__init__(c, rolf_cfg, skills.state_dim, c.skill_dim, device, rng, preprocess)
        self.skills, self.ll_ac_dim = skills, ll_ac_dim
        self.skill_horizon = c.skill_horizon
        # Dreamer-convention entries: every key has one item per entry (no extra observation)
        self.buffer = ReplayBufferEpisode(_KEYS, int(float(get(rolf_cfg, "buffer_size"))), rng=rng)
        self._warm_up_done = not c.fix_warm_up_iters  # the original never runs the extra warm-up iterations
        self._warm_up_random_ll = c.warm_up_random_ll and not c.fix_warm_up_ll
        self._random_ll = False  # the skill being executed takes random low-level actions
        self._episode_start = True  # the next stored transition starts an episode: prepend (o_0, 0, 0, 0)
        self._kl_inputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self._kl_info: dict[str, torch.Tensor] = {}

    # ------------------------------------------------------------------ acting
    @torch.no_grad()
    def act_meta(self, ob: np.ndarray, prev_mean: torch.Tensor | None, is_train: bool,
                 warm_up: bool = False) -> tuple[np.ndarray, torch.Tensor | None]:
        """The executed skill: a prior sample during warm-up, else clip(2·plan, ±2) (plan ∈ [−1, 1]^10)."""
        s = self.skills.states(ob)
        self._random_ll = warm_up and self._warm_up_random_ll
        if warm_up:
            return self.skills.model.prior_dist(s[None]).sample()[0].cpu().numpy(), prev_mean
        plan, mean = super().act_meta(s, prev_mean, is_train)
        r = self.c.action_scale
        return np.clip(r * plan, -r, r).astype(np.float32), mean

    def act_skill(self, ob: np.ndarray, skill: np.ndarray) -> np.ndarray:
        if self._random_ll:
            return self.rng.uniform(-1.0, 1.0, self.ll_ac_dim).astype(np.float32)
        return self.skills.act_skill(ob, skill)

    # ------------------------------------------------------------------ replay
    def store_episode(self, rollout: dict[str, list]) -> None:
        """Runner skill transitions (o_k, z_k, r_k, o_{k+1}, done) -> entries (o_{k+1}, z_k, r_k, done), preceded by
        (o_0, 0, 0, 0) at an episode start; an episode enters the buffer at its end. The stored z is the executed
        one (fix_action_scale: executed / action_scale, the planner's space)."""
        n = len(rollout["ac"])
        if n == 0:
            return
        with torch.no_grad():
            ob = self.skills.states(np.stack(rollout["ob"])).cpu().numpy()
            ob_next = self.skills.states(np.stack(rollout["ob_next"])).cpu().numpy()
        ac = np.stack(rollout["ac"]).astype(np.float32)
        if self.c.fix_action_scale:
            ac = ac / self.c.action_scale
        ends = rollout.get("episode_end", rollout["done"])
        entries: dict[str, list] = {k: [] for k in (*_KEYS, "episode_end")}
        for i in range(n):
            rows = [(ob[i], np.zeros_like(ac[i]), 0.0, 0.0, False)] if self._episode_start else []
            rows.append((ob_next[i], ac[i], float(rollout["rew"][i]), float(rollout["done"][i]), bool(ends[i])))
            for row in rows:
                for k, v in zip(entries, row):
                    entries[k].append(v)
            self._episode_start = bool(ends[i])
        self.buffer.add_transitions(entries)

    # ------------------------------------------------------------------ training
    def transition_batch(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Dreamer-convention sequences ob (B, T, d_s), ac (B, T, d_z), rew/done (B, T) -> TD-MPC's T − 1
        transitions. The original pairs o_t with entry t's skill/reward (those that ended in o_t);
        fix_meta_off_by_one pairs it with entry t + 1's (the skill taken at o_t and its reward)."""
        k, n = int(self.c.fix_meta_off_by_one), batch["ac"].shape[1] - 1
        return {"ob": batch["ob"], "ac": batch["ac"][:, k:k + n], "rew": batch["rew"][:, k:k + n],
                "done": batch["done"][:, 1:]}

    def kl_inputs(self, ob: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(E(o) detached, μ and log σ of the prior p(·|o)) for states ob (..., d_s). The prior sees the preprocessed
        (maze-normalised) states as the original, or the raw ones with fix_prior_raw_ob (what it was trained on)."""
        with torch.no_grad():
            x = self.preprocess(ob)
            return (self.model.encode(x), *self.skills.model.prior_params(ob if self.c.fix_prior_raw_ob else x))

    def rl_step(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """One TD-MPC model + actor iteration on a Dreamer-convention batch (see `transition_batch`)."""
        self._kl_inputs = self.kl_inputs(self._to_tensor(batch["ob"]))
        info = super().rl_step(self.transition_batch(batch))
        info.update(self._kl_info)
        return info

    def actor_loss(self, hs: torch.Tensor) -> torch.Tensor:
        """TD-MPC's actor loss over the latents hs (B, T, d_s) + α·KL per latent term (fix_kl_once: once)."""
        q_loss = super().actor_loss(hs)
        h, p_mu, p_log_sigma = self._kl_inputs
        c = self.c
        kl = prior_divergence(self.actor(h), p_mu, p_log_sigma, c.action_scale, c.kl_samples,
                              clamp=not c.fix_kl_log_prob_clamp).clamp(-c.max_divergence, c.max_divergence).mean()
        terms = 1 if c.fix_kl_once else hs.shape[1]
        self._kl_info = {"actor_q_loss": q_loss.detach(), "prior_kl": kl.detach(),
                         "alpha": torch.tensor(c.alpha)}
        return q_loss + terms * c.alpha * kl

    @torch.no_grad()
    def value_of(self, obs: np.ndarray) -> np.ndarray:
        return super().value_of(self.skills.states(obs))

    # ------------------------------------------------------------------ checkpoint
    def state_dict(self) -> dict:
        return {**super().state_dict(), "spirl_model": self.skills.model.state_dict(),
                "episode_start": self._episode_start}

    def load_state_dict(self, state: dict, source: str = "checkpoint") -> None:
        """The runner continues the episode in progress after a resume, so the buffer's open episode continues
        too. Checkpoints of earlier versions (no `episode_start`) were resumed with a fresh episode: their open
        episode is stored cut."""
        buf = dict(state["buffer"])
        open_ep = buf.get("scratch", {})
        if "episode_start" not in state and open_ep and len(open_ep.get("ac", [])):
            buf["episodes"] = [*buf["episodes"], {k: torch.stack([torch.as_tensor(x) for x in v])
                                                  for k, v in open_ep.items()}]
            buf["scratch"] = {k: [] for k in open_ep}
        super().load_state_dict({**state, "buffer": buf}, source)
        load_module_state(self.skills.model, state["spirl_model"], "spirl_model", source)  # the prior the run used
        self._episode_start = bool(state.get("episode_start", True))

    def episode_cut(self) -> None:
        """The runner could not continue the episode in progress (its open entries were dropped): start afresh."""
        self._episode_start = True


def build_spirl_tdmpc(cfg: Any, spec, device: torch.device, rng: np.random.Generator) -> SPiRLTDMPCAgent:
    """The SPiRL+TD-MPC agent for a composed `spirl_tdmpc_<env>` config (same signature as `build_tdmpc`)."""
    c = SPiRLTDMPCConfig.from_rolf(cfg.rolf)
    env, device = str(spec.name), torch.device(device)
    skills = FrozenSkills(load_prior(c.prior_path, env, spec.ac_dim, device), env, device, c.fix_ll_tanh)
    return SPiRLTDMPCAgent(c, cfg.rolf, skills, spec.ac_dim, device, rng, spec.preprocess)
