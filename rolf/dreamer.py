"""Dreamer (v1 style) core shared by the flat Dreamer baseline (spec §3.3) and SPiRL+Dreamer (§3.5).

`DreamerCore` holds the world model (encoder, RSSM, decoder, reward head), the actor and the critic, their three
optimisers, and the three-stage update. It knows nothing about envs, buffers or skills: the SPiRL+Dreamer agent
reuses it with "actions" = skills, its own sizes (§4.5) and an extra actor-loss term (`actor_reg_fn`).

Batch convention (Dreamer, spec §3.1.5): a batch is a dict of tensors (or arrays) `ob (B, T, d_o)`,
`ac (B, T, d_a)`, `rew (B, T)` where step t holds (o_t, a_{t-1}, r_{t-1}): `ac[:, t]` is the action that *led to*
o_t and `rew[:, t]` the reward received on that transition (zero action and zero reward at an episode start).
Hence the RSSM is fed `ac[:, t]` as the previous action of step t, and the reward head predicts `rew[:, t]` from
the posterior feature of o_t. Every sampled sequence is filtered from the all-zero initial state.

Tensor shapes: B batch, T sequence length, H imagination horizon, N = B·T imagination starts, F = stoch + deter.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import Any, Callable, Iterator

import torch
from torch import nn

from rolf.config import ConfigError, get
from rolf.networks.encoders import Decoder
from rolf.networks.heads import ActionDecoder
from rolf.networks.rssm import RSSM, DenseHead, DreamerEncoder, RSSMState
from rolf.utils.optim import ClippedAdam

Preprocess = Callable[[torch.Tensor], torch.Tensor]
# (post_feat (B, T, F) detached, batch of tensors) -> scalar added to the actor loss (SPiRL+Dreamer: α·KL)
ActorReg = Callable[[torch.Tensor, dict[str, torch.Tensor]], torch.Tensor]
DreamerState = tuple[RSSMState, torch.Tensor]  # (latent after the last observation, last action) for acting


@dataclass(frozen=True)
class DreamerConfig:
    """Dreamer hyperparameters; defaults are the flat baseline's (spec §4.3). Key names are rolf's."""

    deter_dim: int = 200
    stoch_dim: int = 30
    rssm_hidden: int | None = None  # None -> deter_dim (the original passes deter_dim as the RSSM hidden size)
    num_units: int = 400
    dense_act: str = "elu"
    embed_dim: int = 256
    encoder_hidden: tuple = (256, 256)
    decoder_hidden: tuple = (256, 256)
    actor_layers: int = 4  # hard-coded in the original: actor [U]*4, critic [U]*3, reward [U]*2
    critic_layers: int = 3
    reward_layers: int = 2
    model_lr: float = 6e-4
    actor_lr: float = 8e-5
    critic_lr: float = 8e-5
    grad_clip: float = 100.0
    weight_decay: float = 0.0
    horizon: int = 15
    rl_discount: float = 0.99
    gae_lambda: float = 0.95
    free_nats: float = 3.0
    kl_scale: float = 1.0
    expl_noise: float = 0.3
    batch_size: int = 50
    batch_length: int = 50
    warm_up_step: int = 2500
    train_every: int = 500
    train_iter: int = 100

    @classmethod
    def from_rolf(cls, r: Any) -> "DreamerConfig":
        """Read the rolf Dreamer keys (rolf `algo/dreamer.yaml` names); a missing key keeps the §4.3 default."""
        if bool(get(r, "pcont", False)):
            raise ConfigError("rolf.pcont=true (learned discount) is not implemented; the SkiMo configs use false")
        nested = {"embed_dim": "encoder.embed_dim", "encoder_hidden": "encoder.hidden_dims",
                  "decoder_hidden": "decoder.hidden_dims"}
        kw = {}
        for f in fields(cls):
            v = get(r, nested.get(f.name, f.name), f.default)
            if v is None or f.name in ("dense_act",):
                kw[f.name] = v
            elif isinstance(f.default, tuple):
                kw[f.name] = tuple(int(x) for x in v)
            elif isinstance(f.default, float):
                kw[f.name] = float(v)
            else:
                kw[f.name] = int(float(v))
        return cls(**kw)


class DreamerWorldModel(nn.Module):
    """encoder, RSSM `dynamics`, observation `decoder`, `reward` head (the original's `DreamerModel` names)."""

    def __init__(self, c: DreamerConfig, ob_dim: int, ac_dim: int):
        super().__init__()
        self.encoder = DreamerEncoder(ob_dim, c.embed_dim, c.encoder_hidden, c.dense_act)
        self.dynamics = RSSM(c.embed_dim, ac_dim, c.stoch_dim, c.deter_dim, c.rssm_hidden or c.deter_dim, c.dense_act)
        feat = self.dynamics.feat_dim
        self.decoder = Decoder(feat, ob_dim, list(c.decoder_hidden), c.dense_act)
        self.reward = DenseHead(feat, 1, [c.num_units] * c.reward_layers, c.dense_act)


def lambda_return(reward: torch.Tensor, value: torch.Tensor, bootstrap: torch.Tensor, discount: float | torch.Tensor,
                  lambda_: float) -> torch.Tensor:
    """TD(λ) returns, Dreamer v1: R_t = r_t + γ_t[(1 − λ) v_{t+1} + λ R_{t+1}], with v_K = R_K = bootstrap.

    reward, value: (K, ...) (value[0] is unused); bootstrap (...); discount a float or (K, ...). Returns (K, ...).
    Dreamer calls it on the first H − 1 of H imagined steps with bootstrap = value[H − 1].
    """
    if not torch.is_tensor(discount):
        discount = torch.full_like(reward, float(discount))
    next_values = torch.cat([value[1:], bootstrap[None]], 0)
    inputs = reward + discount * next_values * (1.0 - lambda_)
    out, last = [], bootstrap
    for t in reversed(range(reward.shape[0])):
        last = inputs[t] + discount[t] * lambda_ * last
        out.append(last)
    return torch.stack(out[::-1], 0)


class DreamerCore(nn.Module):
    """World model + actor + critic + optimisers. All parameters are frozen (requires_grad=False) except inside
    the update stage that trains them, as in the original (`RequiresGrad`)."""

    def __init__(self, c: DreamerConfig, ob_dim: int, ac_dim: int, preprocess: Preprocess | None = None):
        super().__init__()
        self.c = c
        self.ob_dim, self.ac_dim = ob_dim, ac_dim
        self.preprocess = preprocess or (lambda x: x)
        self.model = DreamerWorldModel(c, ob_dim, ac_dim)
        feat = self.model.dynamics.feat_dim
        self.actor = ActionDecoder(feat, ac_dim, [c.num_units] * c.actor_layers, c.dense_act, log_std=False)
        self.critic = DenseHead(feat, 1, [c.num_units] * c.critic_layers, c.dense_act)
        opt = lambda m, lr: ClippedAdam([m], lr, c.grad_clip, c.weight_decay)  # noqa: E731
        self.optims = {"model": opt(self.model, c.model_lr), "actor": opt(self.actor, c.actor_lr),
                       "critic": opt(self.critic, c.critic_lr)}
        self.requires_grad_(False)

    @property
    def device(self) -> torch.device:
        return self.critic.fc.fcs[0].weight.device

    @property
    def feat_dim(self) -> int:
        return self.model.dynamics.feat_dim

    def _tensor(self, x: Any) -> torch.Tensor:
        return torch.as_tensor(x, device=self.device, dtype=torch.float32)

    @contextmanager
    def _training(self, module: nn.Module) -> Iterator[None]:
        module.requires_grad_(True)
        try:
            yield
        finally:
            module.requires_grad_(False)

    # ------------------------------------------------------------------ losses
    def model_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor], RSSMState]:
        """batch {ob (B,T,d_o) raw, ac (B,T,d_a), rew (B,T)} -> (loss, info, post (B,T,·)).

        loss = kl_scale · max(mean KL(post || prior), free_nats) + recon NLL + reward NLL (means over B, T; the
        KL and NLLs are summed over their event dims; free nats clip the *mean* KL, as the original)."""
        c, m = self.c, self.model
        ob = self.preprocess(batch["ob"])
        embed = m.encoder(ob)  # (B, T, E)
        post, prior = m.dynamics.observe(embed, batch["ac"])
        feat = m.dynamics.get_feat(post)  # (B, T, F)
        recon_loss = -m.decoder.log_prob(feat, ob).mean()
        reward_loss = -m.reward.log_prob(feat, batch["rew"].unsqueeze(-1)).mean()
        div = m.dynamics.kl(post, prior).mean()
        div_clipped = div.clamp(min=c.free_nats)
        loss = c.kl_scale * div_clipped + recon_loss + reward_loss
        info = {"model_loss": loss, "recon_loss_ob": recon_loss, "reward_loss": reward_loss, "kl_loss": div_clipped,
                "kl_div": div, "prior_entropy": m.dynamics.entropy(prior).mean(),
                "posterior_entropy": m.dynamics.entropy(post).mean()}
        return loss, info, post

    def policy_sample(self, feat: torch.Tensor) -> torch.Tensor:
        """Reparameterised actor sample on detached features (the actor's input carries no model gradient)."""
        return self.actor(feat.detach()).rsample()

    def imagine(self, start: RSSMState, horizon: int | None = None,
                actor: Callable[[torch.Tensor], torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Roll the prior forward from every start state with the actor.

        start: states with any leading shape (flattened to N, detached). Returns feat (H, N, F) of the H states
        *after* each imagined step (the start is not included) and actions (H, N, A), actions[k] leading to
        feat[k]. Gradients flow from feat through the actions into the (frozen-weight) dynamics."""
        horizon = self.c.horizon if horizon is None else horizon
        actor = actor or self.policy_sample
        dyn = self.model.dynamics
        state = start.map(lambda x: x.detach().reshape(-1, x.shape[-1]))
        feats, actions = [], []
        for _ in range(horizon):
            action = actor(dyn.get_feat(state))
            state = dyn.imagine_step(state, action)
            feats.append(dyn.get_feat(state))
            actions.append(action)
        return torch.stack(feats, 0), torch.stack(actions, 0)

    def imagined_returns(self, imag_feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """imag_feat (H, N, F) -> (λ-returns (H−1, N), weights (H−1, N)); rewards and values are head means.
        Returns over the first H−1 steps are bootstrapped with the last value; weights γ^t (cumprod from 1)."""
        c = self.c
        reward = self.model.reward(imag_feat).squeeze(-1)  # (H, N)
        value = self.critic(imag_feat).squeeze(-1)  # (H, N)
        returns = lambda_return(reward[:-1], value[:-1], value[-1], c.rl_discount, c.gae_lambda)
        with torch.no_grad():
            pcont = torch.full_like(reward[:-1], c.rl_discount)
            weights = torch.cumprod(torch.cat([torch.ones_like(pcont[:1]), pcont[:-1]], 0), 0)
        return returns, weights

    def actor_loss(self, imag_feat: torch.Tensor,
                   extra_reg: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """−mean(w · λ-return) (+ extra_reg, SPiRL+Dreamer's α·KL). Returns (loss, returns, weights)."""
        returns, weights = self.imagined_returns(imag_feat)
        loss = -(weights * returns).mean()
        if extra_reg is not None:
            loss = loss + extra_reg
        return loss, returns, weights

    def critic_loss(self, imag_feat: torch.Tensor, returns: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """−mean(w · log N(R | V(feat), 1)) over the first H−1 imagined features (all inputs detached)."""
        log_prob = self.critic.log_prob(imag_feat[:-1].detach(), returns.detach().unsqueeze(-1))  # (H−1, N)
        return -(weights.detach() * log_prob).mean()

    # ------------------------------------------------------------------ update stages
    def update_model(self, batch: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], RSSMState]:
        with self._training(self.model):
            loss, info, post = self.model_loss(batch)
            info["model_grad_norm"] = self.optims["model"].step(loss)
        return {k: v.detach() for k, v in info.items()}, post.detach()

    def update_actor(self, post: RSSMState, batch: dict[str, torch.Tensor] | None = None,
                     actor_reg_fn: ActorReg | None = None
                     ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor]:
        """Imagine from every (detached) posterior state and step the actor. Returns (info, imag_feat, returns,
        weights) for the critic stage."""
        with self._training(self.actor):
            imag_feat, _ = self.imagine(post)
            reg = None
            if actor_reg_fn is not None:
                reg = actor_reg_fn(self.model.dynamics.get_feat(post).detach(), batch)
            loss, returns, weights = self.actor_loss(imag_feat, reg)
            info = {"actor_loss": loss, "value_target": returns.mean()}
            if reg is not None:
                info["actor_reg"] = reg
            info["actor_grad_norm"] = self.optims["actor"].step(loss)
        return {k: v.detach() for k, v in info.items()}, imag_feat.detach(), returns.detach(), weights

    def update_critic(self, imag_feat: torch.Tensor, returns: torch.Tensor, weights: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            value_pred = self.critic(imag_feat[:-1]).mean()  # before the step, as the original logs it
        with self._training(self.critic):
            loss = self.critic_loss(imag_feat, returns, weights)
            grad_norm = self.optims["critic"].step(loss)
        return {"critic_loss": loss.detach(), "value_predicted": value_pred, "critic_grad_norm": grad_norm}

    def update(self, batch: dict[str, Any], actor_reg_fn: ActorReg | None = None) -> dict[str, float]:
        """One gradient iteration: model, then actor (imagination from the new posteriors), then critic.
        Returns scalar info (one host sync at the end)."""
        batch = {k: self._tensor(v) for k, v in batch.items()}
        info, post = self.update_model(batch)
        actor_info, imag_feat, returns, weights = self.update_actor(post, batch, actor_reg_fn)
        info.update(actor_info)
        info.update(self.update_critic(imag_feat, returns, weights))
        keys = list(info)
        values = torch.stack([info[k].float() for k in keys]).tolist()
        return dict(zip(keys, values))

    # ------------------------------------------------------------------ acting
    def initial_state(self, batch_size: int) -> DreamerState:
        return self.model.dynamics.initial(batch_size), torch.zeros(batch_size, self.ac_dim, device=self.device)

    @torch.no_grad()
    def act(self, ob: Any, state: DreamerState | None, explore: bool) -> tuple[torch.Tensor, DreamerState]:
        """ob (B, d_o) raw; state = (latent, previous action) or None at an episode start (zeros).
        Posterior filter with the previous latent and action, then action = actor sample + N(0, expl_noise²)
        clipped to ±1 when exploring, tanh(μ) otherwise. Returns (action (B, A), new state). The latent itself
        is a posterior sample in both modes (as the original)."""
        ob = self._tensor(ob)
        latent, prev_action = state if state is not None else self.initial_state(ob.shape[0])
        dyn = self.model.dynamics
        latent = dyn.obs_step(latent, prev_action, self.model.encoder(self.preprocess(ob)))
        feat = dyn.get_feat(latent)
        if explore:
            action = self.actor(feat).rsample()
            action = (action + torch.randn_like(action) * self.c.expl_noise).clamp(-1.0, 1.0)
        else:
            action = self.actor.mode(feat)
        return action, (latent, action)

    # ------------------------------------------------------------------ checkpoints
    def optim_state_dict(self) -> dict[str, dict]:
        return {f"{k}_optim": o.state_dict() for k, o in self.optims.items()}

    def load_optim_state_dict(self, state: dict[str, dict]) -> None:
        for k, o in self.optims.items():
            o.load_state_dict(state[f"{k}_optim"])

