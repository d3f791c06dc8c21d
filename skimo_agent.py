"""SkiMo: skill-based model-based RL (spec §1 pre-training, §2 downstream RL).

The agent is a composition of rolf parts: `LatentModel` (skill dynamics + reward + twin Q), `CEMPlanner`,
`TanhNormal` heads with the MC KL, `ReplayBufferEpisode`. This file holds only SkiMo's own modules and losses.

Tensor conventions: batches are batch-major, `(B, T, ...)`; observations are preprocessed by the env's
`preprocess` callable (maze: xy/40 - 0.5, v/10) before any network sees them.
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
from rolf.networks import ActionDecoder, Decoder, Encoder, LSTMSkillEncoder, TanhNormal, analytic_kl, mc_kl
from rolf.networks.latent_model import LatentModel, polyak_update_, rollout_losses
from rolf.planners import CEMPlanner
from rolf.utils.checkpoint import CheckpointError, load_module_state
from rolf.utils.optim import ClippedAdam
from rolf.utils.precision import autocast_factory, parse_precision

Preprocess = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class SkiMoConfig:
    """Every `rolf.*` value SkiMo reads (spec §4.1), read once."""

    n_skill: int
    skill_horizon: int
    skill_dim: int
    state_dim: int
    num_units: int
    num_layers: int
    dense_act: str
    log_std: bool
    lstm: bool
    lstm_units: int
    embed_dim: int
    encoder_hidden: tuple
    decoder_hidden: tuple
    joint_training: bool
    sac: bool
    use_prior: bool
    prior_reg_critic: bool
    fixed_alpha: float | None
    alpha_init: float
    alpha_lr: float
    target_divergence: float
    warm_up_step: int
    train_every: int
    train_iter: int
    pretrain_train_iter: int
    pretrain_batch_size: int
    batch_size: int
    rl_discount: float
    reward_scale: float
    target_update_freq: int
    target_update_tau: float
    joint_lr: float
    model_lr: float
    actor_lr: float
    grad_clip: float
    weight_decay: float
    lambda_hl_actor: float
    lambda_hl_model: float
    lambda_consistency: float
    lambda_hl_reward: float
    lambda_hl_value: float
    lambda_hl_prior: float
    lambda_ll_actor: float
    lambda_encoder_kl: float
    rho: float
    max_divergence: float
    use_cem: bool
    horizon_step: float
    # Deliberate decisions on the original's quirks (spec §7; README "Differences from the original").
    fix_actor_latent: bool  # §7.1: actor loss on h_k instead of h_0 for every k
    fix_model_loss: bool  # §7.3: reward weight 0.5 (not 0.25) and no double-counted k=0 terms
    bootstrap_timeout: bool  # §7.4: time-limit ends do not cut bootstrapping
    analytic_kl: bool  # §7.8: closed-form Gaussian KL instead of the 100-sample MC estimate
    deterministic_eval_plan: bool  # §7.9: evaluation executes the plan mean instead of a weighted elite
    autocast_dtype: torch.dtype | None = None  # rolf.precision: None = fp32, torch.bfloat16 = bf16 autocast
    compile_update: bool = False  # rolf.compile_update: torch.compile the RL update's loss functions

    @classmethod
    def from_rolf(cls, r: Any) -> SkiMoConfig:
        s = r.scalars
        fixed_alpha = get(r, "fixed_alpha", None)
        return cls(
            n_skill=int(r.n_skill), skill_horizon=int(r.skill_horizon), skill_dim=int(r.skill_dim),
            state_dim=int(r.state_dim), num_units=int(r.num_units), num_layers=int(r.num_layers),
            dense_act=str(r.dense_act), log_std=bool(r.log_std), lstm=bool(r.lstm), lstm_units=int(r.lstm_units),
            embed_dim=int(r.encoder.embed_dim), encoder_hidden=tuple(r.encoder.hidden_dims),
            decoder_hidden=tuple(r.decoder.hidden_dims), joint_training=bool(r.joint_training), sac=bool(r.sac),
            use_prior=bool(r.use_prior), prior_reg_critic=bool(r.prior_reg_critic),
            fixed_alpha=None if fixed_alpha is None else float(fixed_alpha), alpha_init=float(r.alpha_init),
            alpha_lr=float(r.alpha_lr), target_divergence=float(r.target_divergence),
            warm_up_step=int(float(r.warm_up_step)), train_every=int(r.train_every), train_iter=int(r.train_iter),
            pretrain_train_iter=int(r.pretrain.train_iter), pretrain_batch_size=int(r.pretrain.batch_size),
            batch_size=int(r.batch_size), rl_discount=float(r.rl_discount), reward_scale=float(r.reward_scale),
            target_update_freq=int(r.target_update_freq), target_update_tau=float(r.target_update_tau),
            joint_lr=float(r.joint_lr), model_lr=float(r.model_lr), actor_lr=float(r.actor_lr),
            grad_clip=float(r.grad_clip), weight_decay=float(r.weight_decay),
            lambda_hl_actor=float(s.hl_actor), lambda_hl_model=float(s.hl_model), lambda_consistency=float(s.consistency),
            lambda_hl_reward=float(s.hl_reward), lambda_hl_value=float(s.hl_value), lambda_hl_prior=float(s.hl_prior),
            lambda_ll_actor=float(s.ll_actor), lambda_encoder_kl=float(s.encoder_kl), rho=float(s.rho),
            max_divergence=float(r.max_divergence), use_cem=bool(r.use_cem), horizon_step=float(r.horizon_step),
            fix_actor_latent=bool(r.fix_actor_latent), fix_model_loss=bool(r.fix_model_loss),
            bootstrap_timeout=bool(r.bootstrap_timeout), analytic_kl=bool(r.analytic_kl),
            deterministic_eval_plan=bool(r.deterministic_eval_plan),
            autocast_dtype=parse_precision(get(r, "precision", 32)),
            compile_update=bool(get(r, "compile_update", False)),
        )


class SkiMoMetaAgent(nn.Module):
    """High level: skill prior / HL policy `actor`, the skill dynamics `model`, its Polyak `model_target`, and the
    observation `decoder` (spec §1.2)."""

    def __init__(self, c: SkiMoConfig, ob_dim: int):
        super().__init__()
        hidden = [c.num_units] * c.num_layers
        critic_in = ob_dim + c.skill_dim if c.sac else None
        self.actor = ActionDecoder(c.state_dim, c.skill_dim, hidden, c.dense_act, c.log_std)
        self.model = LatentModel(ob_dim, c.skill_dim, c.state_dim, c.num_units, c.num_layers, c.embed_dim,
                                 list(c.encoder_hidden), c.dense_act, critic_in_dim=critic_in)
        self.model_target = copy.deepcopy(self.model).requires_grad_(False)
        self.decoder = Decoder(c.state_dim, ob_dim, list(c.decoder_hidden), c.dense_act)


class SkiMoSkillAgent(nn.Module):
    """Low level: state encoder E_l, skill decoder / skill policy `actor`, skill encoder q(z | s, a)."""

    def __init__(self, c: SkiMoConfig, ob_dim: int, ac_dim: int):
        super().__init__()
        hidden = [c.num_units] * c.num_layers
        self.encoder = Encoder(ob_dim, c.state_dim, c.embed_dim, list(c.encoder_hidden), c.dense_act)
        self.actor = ActionDecoder(c.state_dim + c.skill_dim, ac_dim, hidden, c.dense_act, c.log_std)
        if c.lstm:
            self.skill_encoder = LSTMSkillEncoder(ac_dim + c.state_dim, c.skill_dim, c.lstm_units, c.log_std)
        else:
            self.skill_encoder = ActionDecoder(c.skill_horizon * ac_dim + c.state_dim, c.skill_dim, hidden, c.dense_act,
                                               c.log_std)
        self.lstm = c.lstm
        self.skill_horizon = c.skill_horizon

    def encode_skills(self, feats: torch.Tensor, actions: torch.Tensor) -> TanhNormal:
        """q(z_k | ...) for L consecutive skills. feats (B, L*H(+1), d_s), actions (B, L*H, d_a) -> batch (B, L)."""
        b, lh, ac_dim = actions.shape
        h = self.skill_horizon
        n = lh // h
        if self.lstm:
            feats = feats[:, :lh] if feats.shape[1] > lh else feats  # a full-range slice costs a zeroed grad buffer
            x = torch.cat([actions, feats], -1).reshape(b * n, h, -1)  # (B*L, H, d_a + d_s)
            dist = self.skill_encoder(x)
            return TanhNormal(dist.loc.reshape(b, n, -1), dist.scale.reshape(b, n, -1))
        x = torch.cat([actions.reshape(b, n, h * ac_dim), feats[:, :lh:h]], -1)  # (B, L, H*d_a + d_s)
        return self.skill_encoder(x)

    def act(self, feat: torch.Tensor, skill: torch.Tensor) -> torch.Tensor:
        """Deterministic skill execution a = tanh(μ(E_l(s), z)) (spec §7.7: the std half is never used)."""
        return self.actor.mode(torch.cat([feat, skill], -1))

    def host_policy(self) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
        """A numpy snapshot of `act(encoder(ob), z)` for one preprocessed observation (d_o,) and skill (d_z,):
        the same maths without torch's per-op overhead (bench/speed.py `skill_act`). Valid until the weights change."""
        encoder, actor_mode = self.encoder.host_forward(), self.actor.host_mode()
        return lambda ob, skill: actor_mode(np.concatenate([encoder(ob), skill], -1))


class SkiMoAgent:
    """SkiMo meta + skill agents, the frozen skill prior copy (RL), α, optimisers, planner, HL buffer."""

    def __init__(self, c: SkiMoConfig, rolf_cfg: Any, ob_dim: int, ac_dim: int, preprocess: Preprocess,
                 device: torch.device, phase: str, rng: np.random.Generator):
        from rolf.buffers import ReplayBufferEpisode

        self.c = c
        self.device = device
        self.phase = phase
        self.ob_dim, self.ac_dim = ob_dim, ac_dim
        self.preprocess = preprocess
        self.meta_agent = SkiMoMetaAgent(c, ob_dim).to(device)
        self.skill_agent = SkiMoSkillAgent(c, ob_dim, ac_dim).to(device)
        self.skill_prior = copy.deepcopy(self.meta_agent).requires_grad_(False)
        self.log_alpha = nn.Parameter(torch.tensor(float(np.log(c.alpha_init)), device=device))
        self._fixed_alpha = None if c.fixed_alpha is None else torch.tensor(c.fixed_alpha, device=device)
        self.planner = CEMPlanner(cem_config(rolf_cfg, c.n_skill, c.horizon_step, clamp=0.999), c.skill_dim)
        self.kl = analytic_kl if c.analytic_kl else mc_kl
        self.autocast = autocast_factory(device, c.autocast_dtype)  # forward passes only; backward runs outside
        if c.compile_update:
            # Fused forward and backward kernels for the RL losses. fallback_random keeps the draws on torch's
            # generator, so a seed gives the eager update's samples (tests compare the two).
            opts = {"fallback_random": True}
            self.model_loss = torch.compile(self.model_loss, dynamic=False, options=opts)
            self.actor_loss = torch.compile(self.actor_loss, dynamic=False, options=opts)
        self.step = 0
        self._update_iter = 0
        self._warm_up_done = False
        self._host_skill_policy, self._host_skill_version = None, None  # act_skill's numpy snapshot
        self._skill_params = list(self.skill_agent.parameters())
        self.hl_buffer = ReplayBufferEpisode(("ob", "ac", "rew", "done"), int(float(get(rolf_cfg, "buffer_size"))),
                                             one_more_ob=True, sample_last_more=bool(rolf_cfg.sample_last_more), rng=rng)
        self._build_optimizers()

    # ------------------------------------------------------------------ optimisers
    def _build_optimizers(self) -> None:
        c, m, s = self.c, self.meta_agent, self.skill_agent
        opt = lambda mods, lr: ClippedAdam(mods, lr, c.grad_clip, c.weight_decay)
        if self.phase == "pretrain":
            if c.joint_training:
                self.optims = {"joint": opt([m.actor, m.model, m.decoder, s.encoder, s.actor, s.skill_encoder], c.joint_lr)}
            else:
                self.optims = {"hl_model": opt([m.model, m.decoder], c.model_lr), "hl_actor": opt([m.actor], c.actor_lr),
                               "ll_actor": opt([s.encoder, s.actor, s.skill_encoder], c.actor_lr)}
        else:
            actor_mods = [m.actor, m.model.encoder] if c.sac else [m.actor]
            self.optims = {"actor": opt(actor_mods, c.actor_lr), "model": opt([m.model, m.decoder], c.model_lr),
                           "alpha": opt([self.log_alpha], c.alpha_lr)}

    def _kl(self, p: TanhNormal, q: TanhNormal | str) -> torch.Tensor:
        return self.kl(p, q).clamp(-self.c.max_divergence, self.c.max_divergence)

    def _to_tensor(self, x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(x, device=self.device, dtype=torch.float32)

    # ------------------------------------------------------------------ pre-training (spec §1.6)
    def pretrain_losses(self, ob: torch.Tensor, ac: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """ob (B, L*H+1, d_o) preprocessed, ac (B, L*H, d_a). Returns (total loss for backward, metrics)."""
        c = self.c
        m, s = self.meta_agent, self.skill_agent
        b, lh, _ = ac.shape
        big_l, h = lh // c.skill_horizon, c.skill_horizon

        # The low level never reads the last observation: encoding ob[:, :LH] (not slicing its features) also spares
        # backward a zero-filled (B, LH+1, d_s) gradient buffer per slice.
        feats = s.encoder(ob[:, :lh])  # (B, LH, d_s)
        q = s.encode_skills(feats, ac)  # batch (B, L)
        z = q.rsample()  # (B, L, d_z)
        # = actor.mode(cat([feat_t, z_k])) for each step t of skill k, without building the (B, L, H, d_s + d_z) input
        ac_pred = s.actor.mode_concat(feats.reshape(b, big_l, h, -1), z.unsqueeze(2))  # (B, L, H, d_a)
        bc_loss = ((ac_pred - ac.reshape(b, big_l, h, -1)) ** 2).mean()
        vae_kl = self._kl(q, "tanh")  # (B, L)

        ob_hl = ob[:, ::h]  # (B, L+1, d_o)
        h_all = m.model.encode(ob_hl)  # (B, L+1, d_s)
        with torch.no_grad():
            h_target = m.model_target.encode(ob_hl)
        recon_loss = -m.decoder.log_prob(h_all, ob_hl).mean()
        z_dyn = z if c.joint_training else z.detach()
        x = h_all[:, 0]
        consistency = torch.zeros(b, device=ob.device)
        for k in range(big_l):
            x = m.model.next(x, z_dyn[:, k])
            consistency = consistency + c.rho**k * ((x - h_target[:, k + 1]) ** 2).mean(-1)
        consistency_loss = consistency.clamp(max=1e4).mean()
        hl_model_loss = c.lambda_hl_model * recon_loss + c.lambda_consistency * consistency_loss

        prior = m.actor(h_all[:, :big_l] if c.joint_training else h_all[:, :big_l].detach())
        prior_kl = self._kl(q.detach(), prior)  # (B, L)
        hl_actor_loss = c.lambda_hl_actor * prior_kl.mean()
        ll_actor_loss = c.lambda_ll_actor * bc_loss
        ll_vae_kl_loss = c.lambda_encoder_kl * vae_kl.mean()
        # The original scales the HL model gradient by 1/L with a backward hook; the logged values stay unscaled.
        total = hl_actor_loss + hl_model_loss / big_l + ll_actor_loss + ll_vae_kl_loss
        info = {"hl_loss": hl_actor_loss + hl_model_loss, "ll_loss": ll_actor_loss + ll_vae_kl_loss,
                "hl_actor_loss": hl_actor_loss, "hl_model_loss": hl_model_loss, "ll_actor_loss": ll_actor_loss,
                "ll_vae_kl_loss": ll_vae_kl_loss, "vae_kl_div": vae_kl.mean(), "consistency_loss": consistency_loss,
                "hl_recon_loss": recon_loss, "actor_std": prior.scale.mean(), "bc_mse": bc_loss}
        return total, info

    def pretrain_step(self, batch: dict[str, np.ndarray], update_target: bool = True) -> dict[str, torch.Tensor]:
        """One gradient iteration on a pre-training batch {ob (B, LH+1, d_o), ac (B, LH+1, d_a)}."""
        ob = self.preprocess(self._to_tensor(batch["ob"]))
        ac = self._to_tensor(batch["ac"])[:, :-1]  # the last action is dropped (spec §1.5)
        with self.autocast():
            total, info = self.pretrain_losses(ob, ac)
        for o in self.optims.values():
            o.zero_grad()
        total.backward()  # the three non-joint losses touch disjoint parameters, so one backward serves all
        for name, o in self.optims.items():
            info[f"{name}_grad_norm"] = o.clip_and_step()
        if update_target:
            self._maybe_update_target()
        return {k: v.detach() for k, v in info.items()}

    @torch.no_grad()
    def pretrain_eval_losses(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        ob = self.preprocess(self._to_tensor(batch["ob"]))
        with self.autocast():
            return self.pretrain_losses(ob, self._to_tensor(batch["ac"])[:, :-1])[1]

    def _maybe_update_target(self) -> None:
        self._update_iter += 1
        if self._update_iter % self.c.target_update_freq == 0:
            polyak_update_(self.meta_agent.model_target, self.meta_agent.model, self.c.target_update_tau)

    # ------------------------------------------------------------------ acting (spec §2.2, §2.7)
    @torch.no_grad()
    def act_meta(self, ob: np.ndarray, prev_mean: torch.Tensor | None, is_train: bool,
                 warm_up: bool = False) -> tuple[np.ndarray, torch.Tensor | None]:
        """Choose a skill z for the current observation. Returns (z (d_z,), planner memory)."""
        with self.autocast():
            return self._act_meta(ob, prev_mean, is_train, warm_up)

    def _act_meta(self, ob: np.ndarray, prev_mean: torch.Tensor | None, is_train: bool,
                  warm_up: bool) -> tuple[np.ndarray, torch.Tensor | None]:
        h = self.meta_agent.model.encode(self.preprocess(self._to_tensor(ob)[None]))  # (1, d_s)
        if warm_up or not self.c.use_cem or self.phase == "pretrain":  # pre-training evaluates the prior itself
            dist = self.meta_agent.actor(h)
            z = dist.sample()[0] if (is_train or warm_up) else dist.mode()[0]
            return z.cpu().numpy(), prev_mean
        z, mean = self.planner.plan(self.meta_agent.model, self.meta_agent.actor, h, prev_mean, self.step, is_train)
        if not is_train and self.c.deterministic_eval_plan:
            z = mean[0].clamp(-0.999, 0.999)
        return z.cpu().numpy(), mean

    def act_skill(self, ob: np.ndarray, skill: np.ndarray) -> np.ndarray:
        """One low-level action (d_a,) for a raw observation and a skill, on a host snapshot of the skill policy
        (rebuilt whenever a weight of the skill agent has changed in place: optimiser steps, state loads)."""
        version = tuple(p._version for p in self._skill_params)
        if version != self._host_skill_version:
            self._host_skill_policy, self._host_skill_version = self.skill_agent.host_policy(), version
        ob = self.preprocess(np.asarray(ob, dtype=np.float32))
        return self._host_skill_policy(ob, np.asarray(skill, dtype=np.float32)).astype(np.float32)

    # ------------------------------------------------------------------ downstream RL (spec §2.5, §2.6)
    def alpha(self) -> torch.Tensor:
        """α_eff: `fixed_alpha` when set (0 included, spec §7.5), else the learned α (detached)."""
        return self._fixed_alpha if self._fixed_alpha is not None else self.log_alpha.exp().detach()

    def store_episode(self, hl_rollout: dict[str, list]) -> None:
        self.hl_buffer.add_transitions(hl_rollout)

    def set_step(self, step: int) -> None:
        self.step = step

    def update(self) -> dict[str, torch.Tensor]:
        """train_iter gradient iterations (+ the one-off warm-up iterations on the first call, spec §2.4)."""
        c = self.c
        if not self.hl_buffer.can_sample(c.n_skill):
            return {}  # no finished episode with n_skill skills yet (spec §7.20 guard); try again next chunk
        n = c.train_iter
        if not self._warm_up_done:
            self._warm_up_done = True
            n += c.warm_up_step * c.train_iter // c.train_every
        infos = [self.rl_step(self.hl_buffer.sample(c.batch_size, c.n_skill)) for _ in range(n)]
        return {k: torch.stack([i[k] for i in infos]).mean() for k in infos[-1]}

    def rl_step(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        ob = self.preprocess(self._to_tensor(batch["ob"]))  # (B, L+1, d_o)
        z = self._to_tensor(batch["ac"])  # (B, L, d_z)
        rew = self._to_tensor(batch["rew"])  # (B, L)
        done = self._to_tensor(batch["done"])  # (B, L)
        m = self.meta_agent
        with self.autocast():
            h = m.model.encode(ob)  # (B, L+1, d_s)
            with torch.no_grad():
                h_target = m.model_target.encode(ob)
                prior = self.skill_prior.actor(self.skill_prior.model.encode(ob))  # batch (B, L+1)
            # π(h_k) for all k at once: the TD target reads its values, the actor loss (after the model step, which
            # does not touch the actor) its graph. SkiMo's actor sees detached latents (spec §2.6).
            pi = m.actor(h.detach())  # batch (B, L+1)
            model_loss, info = self.model_loss(ob, h, h_target, pi.detach(), prior, z, rew, done)
        info["model_grad_norm"] = self.optims["model"].step(model_loss)
        with self.autocast():
            h_actor = h.detach()
            if self.c.sac:  # SkiMo+SAC trains E_h through the actor loss (spec §3.7): re-encode with the graph
                h_actor = m.model.encode(ob)
                pi = m.actor(h_actor)
            actor_loss, kl_mean, actor_info = self.actor_loss(ob, h_actor, pi, prior)
        info.update(actor_info)
        info["actor_grad_norm"] = self.optims["actor"].step(actor_loss)
        if self.c.fixed_alpha is None:
            alpha_loss = self.log_alpha.exp() * (self.c.target_divergence - kl_mean.detach())
            self.optims["alpha"].step(alpha_loss)
            info["alpha_loss"] = alpha_loss.detach()
        info["alpha"] = self.alpha()
        self._maybe_update_target()
        return {k: v.detach() for k, v in info.items()}

    def _critic_input(self, ob: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """What the critic sees: the latent (SkiMo) or the preprocessed observation (SkiMo+SAC, spec §3.7)."""
        return ob if self.c.sac else h

    def _td_target(self, ob_next: torch.Tensor, h_next: torch.Tensor, pi_next: TanhNormal, prior_next: TanhNormal,
                   rew: torch.Tensor, done: torch.Tensor) -> torch.Tensor:
        """y = r + (1 - d) γ [min Q̄(h', z') - c α KL(π(h') || p(h'))], z' ~ π(h')  (no grad)."""
        c = self.c
        with torch.no_grad():
            q1, q2 = self.meta_agent.model_target.q(self._critic_input(ob_next, h_next), pi_next.rsample())
            v = torch.minimum(q1, q2)
            if c.use_prior and c.prior_reg_critic:
                v = v - self.alpha() * self._kl(pi_next, prior_next)
            return rew + (1.0 - done) * c.rl_discount * v

    def model_loss(self, ob, h, h_target, pi: TanhNormal, prior: TanhNormal, z, rew,
                   done) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Multi-step latent consistency + reward + value losses (spec §2.5). Shapes as in rl_step; pi and prior
        are π(h_k) and p(h_k) for k = 0..L, batch (B, L+1)."""
        c, model = self.c, self.meta_agent.model
        big_l = z.shape[1]
        next_ = lambda t: t[:, 1:]
        y = self._td_target(ob[:, 1:], h[:, 1:], pi.batch_map(next_), prior.batch_map(next_), rew, done)  # (B, L)
        # Reward and value on the encoded true states, all k at once ("extra" terms of the original).
        r_true = model.predict_reward(h[:, :-1], z)  # (B, L)
        q1_true, q2_true = model.q(self._critic_input(ob[:, :-1], h[:, :-1]), z)
        cons, rew_l, val_l, _ = rollout_losses(model, h[:, 0], z, h_target[:, 1:], rew, y, c.rho,
                                               lambda x: self._critic_input(ob[:, :-1], x))
        if not c.fix_model_loss:
            rew_l = rew_l + ((r_true - rew) ** 2).sum(1)
            val_l = val_l + ((q1_true - y) ** 2 + (q2_true - y) ** 2).sum(1)
        # SkiMo+SAC multiplies the consistency and reward losses by 0 (spec §3.7).
        reward_weight = 0.0 if c.sac else c.lambda_hl_reward * (1.0 if c.fix_model_loss else 0.5)
        cons_weight = 0.0 if c.sac else c.lambda_consistency
        loss = (cons_weight * cons.clamp(max=1e5) + reward_weight * rew_l.clamp(max=1e5)
                + c.lambda_hl_value * val_l.clamp(max=1e5)).mean()
        info = {"model_loss": loss, "consistency_loss": cons.mean(), "reward_loss": rew_l.mean(), "critic_loss": val_l.mean(),
                "value_target": y.mean(), "value_target_min": y.min(), "value_target_max": y.max(),
                "value_predicted0": q1_true.mean(), "value_predicted1": q2_true.mean(),
                "reward_predicted": r_true.mean(), "reward_gt": rew.mean()}
        return loss / big_l, info

    def actor_loss(self, ob: torch.Tensor, hd: torch.Tensor, pi: TanhNormal,
                   prior: TanhNormal) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """hd: online latents (B, L+1, d_s), detached unless SkiMo+SAC trains E_h through the actor; pi = π(hd) and
        prior = p(h_k), batch (B, L+1). Returns (loss, mean_k KL_k, metrics) (spec §2.6)."""
        c, m = self.c, self.meta_agent
        big_l = hd.shape[1] - 1
        rho = c.rho ** torch.arange(big_l, device=hd.device, dtype=hd.dtype)  # (L,)
        # Q term. As implemented in the original every term uses h_0 (spec §7.1); `fix_actor_latent` uses h_k.
        if c.fix_actor_latent:
            idx = torch.arange(big_l, device=hd.device)
            pi_states = pi.batch_map(lambda t: t[:, :big_l].transpose(0, 1))  # batch (L, B)
        else:  # π(h_0) drawn L times: one forward pass, L samples (the original runs the actor on L copies of h_0)
            idx = torch.zeros(big_l, dtype=torch.long, device=hd.device)
            pi_states = pi.batch_map(lambda t: t[:, 0].expand(big_l, *t[:, 0].shape))
        states = hd[:, idx].transpose(0, 1)  # (L, B, d_s)
        skills = pi_states.rsample()  # (L, B, d_z)
        q1, q2 = m.model.q_frozen(self._critic_input(ob[:, idx].transpose(0, 1), states), skills)
        q_term = -(rho[:, None] * torch.minimum(q1, q2)).sum(0)  # (B,)
        actor_loss = q_term.clamp(-1e5, 1e5).mean()
        first_l = lambda t: t[:, :big_l]
        pi = pi.batch_map(first_l)
        kl = self._kl(pi, prior.batch_map(first_l)).mean(0)  # (L,)
        prior_loss = torch.zeros((), device=hd.device)
        if c.use_prior:
            prior_loss = (c.lambda_hl_prior * (rho * self.alpha() * kl).sum()).clamp(-1e5, 1e5)
        info = {"actor_loss": actor_loss, "skill_prior_loss": prior_loss, "actor_prior_div": kl.mean(),
                "actor_std": pi.scale.mean()}
        return (actor_loss + prior_loss) / big_l, kl.mean(), info

    # ------------------------------------------------------------------ diagnostics (pictures, benchmarks)
    @torch.no_grad()
    def value_of(self, obs: np.ndarray) -> np.ndarray:
        """min(Q1, Q2)(s, tanh(μ_π(s))) for raw observations (N, d_o) -> (N,) (maze value heat-map)."""
        ob = self.preprocess(self._to_tensor(obs))
        h = self.meta_agent.model.encode(ob)
        q1, q2 = self.meta_agent.model.q(self._critic_input(ob, h), self.meta_agent.actor(h).mode())
        return torch.minimum(q1, q2).cpu().numpy()

    @torch.no_grad()
    def open_loop_prediction(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Skill-level predictions on a batch (B, LH+1): ground truth at skill boundaries, the decoded open-loop
        latent rollout D(..D(E_h(o_0), z_0)..) with z_k = posterior mode, and per-step reconstructions, all
        preprocessed (B, L+1, d_o); plus the rolled-out latents `h_pred` and the target encoder's `h_target`
        (B, L+1, d_s)."""
        m, s = self.meta_agent, self.skill_agent
        ob = self.preprocess(self._to_tensor(batch["ob"]))
        ac = self._to_tensor(batch["ac"])[:, :-1]
        z = s.encode_skills(s.encoder(ob), ac).mode()  # (B, L, d_z)
        ob_hl = ob[:, :: self.c.skill_horizon]
        h_true = m.model.encode(ob_hl)
        hs = [h_true[:, 0]]
        for k in range(z.shape[1]):
            hs.append(m.model.next(hs[-1], z[:, k]))
        h_pred = torch.stack(hs, 1)
        out = {"gt": ob_hl, "pred": m.decoder(h_pred)[0], "recon": m.decoder(h_true)[0], "h_pred": h_pred,
               "h_target": m.model_target.encode(ob_hl)}
        return {k: v.cpu().numpy() for k, v in out.items()}

    # ------------------------------------------------------------------ checkpoint
    def state_dict(self) -> dict:
        """The original's layout (spec §1.8) plus the RL-phase extras."""
        m, s = self.meta_agent, self.skill_agent
        ob_norm = {"ob": {"sum": torch.zeros(self.ob_dim), "sumsq": torch.zeros(self.ob_dim), "count": torch.ones(1)}}
        out = {"meta_agent": {"actor": m.actor.state_dict(), "model": m.model.state_dict(),
                              "model_target": m.model_target.state_dict(), "decoder": m.decoder.state_dict()},
               "skill_agent": {"actor": s.actor.state_dict(), "encoder": s.encoder.state_dict(),
                               "skill_encoder": s.skill_encoder.state_dict(), "ob_norm": ob_norm},
               "ob_norm": ob_norm}
        for name, o in self.optims.items():
            out[f"{name}_optim"] = o.state_dict()
        out["counters"] = {"update_iter": self._update_iter, "warm_up_done": self._warm_up_done}
        if self.phase == "rl":
            out["skill_prior"] = self.skill_prior.state_dict()
            out["log_alpha"] = self.log_alpha.detach().cpu()
            out["hl_buffer"] = self.hl_buffer.state_dict()
        return out

    def load_pretrained(self, agent_state: dict, source: str = "checkpoint") -> None:
        """Pre-training checkpoint (ours or the original's) -> meta agent, skill agent, and the frozen skill prior
        copy (spec §2.1). The critic is dropped when its input size differs (SkiMo+SAC), as in the original."""
        meta, skill = _require(agent_state, "meta_agent", source), _require(agent_state, "skill_agent", source)
        for target in (self.meta_agent, self.skill_prior):
            for name in ("actor", "decoder", "model", "model_target"):
                load_module_state(getattr(target, name), _require(meta, name, source), f"meta_agent.{name}", source,
                                  droppable_prefix="critic." if name.startswith("model") else None)
        for name in ("actor", "encoder", "skill_encoder"):
            load_module_state(getattr(self.skill_agent, name), _require(skill, name, source), f"skill_agent.{name}", source)
        self.skill_prior.requires_grad_(False)

    def load_state_dict(self, state: dict, source: str = "checkpoint") -> None:
        """Resume this phase exactly: weights, optimiser states, α, counters and (RL) the replay buffer."""
        m, s = self.meta_agent, self.skill_agent
        for name in ("actor", "decoder", "model", "model_target"):
            load_module_state(getattr(m, name), state["meta_agent"][name], f"meta_agent.{name}", source)
        for name in ("actor", "encoder", "skill_encoder"):
            load_module_state(getattr(s, name), state["skill_agent"][name], f"skill_agent.{name}", source)
        for name, o in self.optims.items():
            if f"{name}_optim" in state:
                o.load_state_dict(state[f"{name}_optim"])
        if "counters" in state:  # pre-training checkpoints of earlier versions have none
            self._update_iter = int(state["counters"]["update_iter"])
            self._warm_up_done = bool(state["counters"]["warm_up_done"])
        if self.phase == "rl":
            self.skill_prior.load_state_dict(state["skill_prior"])
            with torch.no_grad():
                self.log_alpha.copy_(state["log_alpha"])
            self.hl_buffer.load_state_dict(state["hl_buffer"])


def _require(d: dict, key: str, source: str) -> Any:
    if not isinstance(d, dict) or key not in d:
        raise CheckpointError(f"{source}: missing '{key}' (not a SkiMo checkpoint?)")
    return d[key]


def build_agent(cfg: Any, phase: str | None = None, device: torch.device | str = "cpu", seed: int = 0,
                rng: np.random.Generator | None = None, spec: Any = None) -> SkiMoAgent:
    """SkiMo agent for a composed run config: dims and preprocessing from the env registry (`spec` overrides it),
    phase from `rolf.phase` unless given."""
    if spec is None:
        from envs import get_env_spec

        spec = get_env_spec(cfg.env.id)
    rng = rng if rng is not None else np.random.default_rng(seed)
    return SkiMoAgent(SkiMoConfig.from_rolf(cfg.rolf), cfg.rolf, spec.ob_dim, spec.ac_dim, spec.preprocess,
                      torch.device(device), phase or str(cfg.rolf.phase), rng)
