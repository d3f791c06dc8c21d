"""SPiRL downstream RL: SAC over the skills of a frozen SPiRL skill prior (spec §3.4 "Downstream HRL", §4.4).

The skill model (closed-loop decoder + learned prior) is pre-trained by `python -m spirl.pretrain` and loaded
frozen. Every `skill_horizon` (10) env steps the high-level policy picks a skill z; the low-level policy executes
a_t = tanh(decoder(s_t, z)) (BatchNorm frozen) for 10 steps. The high level is spirl's `ActionPriorSACAgent`:

- policy π(u | s): a trainable copy of the prior net (`PriorInitializedPolicy`), Gaussian u (log σ clamped to
  [−10, 2]), skill z = 2·tanh(u) (max_action_range 2), tanh-corrected log-prob (logging only);
- divergence D(s) = clip(mean over 10 reparameterised samples u_n ~ π(s) of [log π(u_n|s) − log p(u_n|s)], ±100)
  with the frozen prior p and spirl's `MultivariateGaussian` log-density (summed over dims, clamped to [−20, 10]);
- α = exp(log α), log α init 0; α loss = α·(δ − D).detach().mean() — stepped first, its new value is then used;
- policy loss = mean[−min_i Q_i(s, z_π) + α·D(s)];
- critic loss_i = 0.5·mean[(Q_i(s, z) − y)²], y = r + γ(1 − d)[min_i Q̄_i(s', z') − α·D(s')], z' ~ π(s');
- Q_i: BN-free spirl Predictor MLPs (mid 256; 2 hidden layers maze, 5 kitchen/CALVIN), Xavier-normal init;
  targets Polyak-averaged with factor 0.005 after every iteration; Adam (lr 3e−4, β = (0.9, 0.999), eps 1e−8,
  no gradient clipping) for policy, each critic and α;
- replay: uniform over HL transitions (s, z, Σ of the skill's rewards, s', done), FIFO capacity in transitions
  (1e5 maze, 1e6 kitchen/CALVIN), sampled with replacement (spirl's `UniformReplayBuffer`);
- one iteration per `update()` call = per HL transition (train_every = 10 env steps).

Warm-up (original: 5,000 HL transitions, not counted in the step budget, §7.12): here `warm_up_step` = 50,000 env
steps (≈ 5,000 HL transitions) *are* counted by the trainer, and `max_global_step` = 2,050,000 so that the number of
post-warm-up env steps and updates equals the original's 2e6 (subtract 50k from our x-axis to overlay the original's
curves). Warm-up skills are sampled from the prior-initialised policy, which is what spirl's `rand_act_mode` does for
this policy; the policy is not updated during warm-up, so this equals sampling the prior.

Observations: SPiRL's states (spec §3.4: maze raw 4-d, kitchen 60-d with the base-task goal, CALVIN 21-d). A 30-d
kitchen observation (`env.with_goal=false`) gets the base-task goal appended here (`spirl.pretrain.state_assembler`),
which is exactly what `env.with_goal=true` produces, so both env settings work; the replay stores the 60-d states.

Fix flags (`rolf.fix_*`, all false = the original's behaviour):
- fix_ll_tanh: execute the decoder's mean clipped to [−1, 1] instead of tanh(mean) (the decoder was trained by MSE
  without a tanh, §7.12);
- fix_timeout_bootstrap: exposed as `agent.bootstrap_timeout` for the runner: time-limit ends are stored with
  done=0, so targets bootstrap through them (the original forces done=True at timeouts, §7.4);
- fix_kl_log_prob_clamp: the MC divergence uses unclamped log-densities (spirl clamps each summed log-density to
  [−20, 10], which zeroes the divergence's gradient once π gets narrow).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rolf.buffers import TransitionReplay
from rolf.config import get
from rolf.utils.checkpoint import CheckpointError, load_module_state
from rolf.utils.optim import fast_adam

TensorFn = Callable[[torch.Tensor], torch.Tensor]


class SPiRLPriorMissing(CheckpointError):
    """The pre-trained SPiRL prior is not where `rolf.prior_path` points (one line, names the command)."""


@dataclass(frozen=True)
class SPiRLAgentConfig:
    """Every `rolf.*` value the SPiRL agent reads (spec §4.4), read once."""

    prior_path: str
    batch_size: int
    buffer_size: int  # transitions
    critic_layers: int  # hidden (mid × mid) layers after the input layer
    critic_units: int
    target_divergence: float
    max_action_range: float
    kl_samples: int
    max_divergence: float
    policy_lr: float
    critic_lr: float
    alpha_lr: float
    adam_beta1: float
    rl_discount: float
    target_update_factor: float  # Polyak weight on the NEW critic (spirl's convention)
    alpha_init: float
    train_iter: int
    eval_deterministic: bool
    fix_ll_tanh: bool
    fix_timeout_bootstrap: bool
    fix_kl_log_prob_clamp: bool

    @classmethod
    def from_rolf(cls, r: Any) -> SPiRLAgentConfig:
        return cls(
            prior_path=str(get(r, "prior_path")), batch_size=int(get(r, "batch_size")),
            buffer_size=int(float(get(r, "buffer_size"))), critic_layers=int(get(r, "critic_layers")),
            critic_units=int(get(r, "critic_units")), target_divergence=float(get(r, "target_divergence")),
            max_action_range=float(get(r, "max_action_range")), kl_samples=int(get(r, "kl_samples")),
            max_divergence=float(get(r, "max_divergence")), policy_lr=float(get(r, "policy_lr")),
            critic_lr=float(get(r, "critic_lr")), alpha_lr=float(get(r, "alpha_lr")),
            adam_beta1=float(get(r, "adam_beta1")), rl_discount=float(get(r, "rl_discount")),
            target_update_factor=float(get(r, "target_update_factor")), alpha_init=float(get(r, "alpha_init")),
            train_iter=int(get(r, "train_iter")), eval_deterministic=bool(get(r, "eval_deterministic", False)),
            fix_ll_tanh=bool(get(r, "fix_ll_tanh", False)),
            fix_timeout_bootstrap=bool(get(r, "fix_timeout_bootstrap", False)),
            fix_kl_log_prob_clamp=bool(get(r, "fix_kl_log_prob_clamp", False)),
        )


# ---------------------------------------------------------------- networks
def critic_mlp(in_dim: int, mid: int, num_layers: int) -> nn.Sequential:
    """spirl's `MLPCritic` (Predictor without normalisation): Linear(in, mid) + LeakyReLU(0.2), num_layers ×
    [Linear(mid, mid) + LeakyReLU(0.2)], Linear(mid, 1); Xavier-normal weights, zero biases."""
    layers: list[nn.Module] = [nn.Linear(in_dim, mid), nn.LeakyReLU(0.2)]
    for _ in range(num_layers):
        layers += [nn.Linear(mid, mid), nn.LeakyReLU(0.2)]
    layers.append(nn.Linear(mid, 1))
    net = nn.Sequential(*layers)
    for m in net.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_normal_(m.weight)
            nn.init.zeros_(m.bias)
    return net


class TwinCritic(nn.Module):
    def __init__(self, state_dim: int, skill_dim: int, mid: int, num_layers: int):
        super().__init__()
        self.qs = nn.ModuleList([critic_mlp(state_dim + skill_dim, mid, num_layers) for _ in range(2)])

    def forward(self, s: torch.Tensor, z: torch.Tensor) -> list[torch.Tensor]:
        x = torch.cat([s, z], -1)
        return [q(x).squeeze(-1) for q in self.qs]


# ---------------------------------------------------------------- replay
# ---------------------------------------------------------------- the agent
class FrozenSkills:
    """The frozen SPiRL skill model as every SPiRL-family agent uses it: env observation -> SPiRL state (`states`;
    kitchen: ⊕ the base-task goal), the low-level skill policy (`act_skill`), the prior (`model.prior_dist`)."""

    def __init__(self, model, env_name: str, device: torch.device, fix_ll_tanh: bool):
        from spirl.pretrain import state_assembler

        self.model = model.to(device).freeze_for_rl()  # frozen decoder + prior (BatchNorm in eval mode for good)
        self.env_name, self.device, self.fix_ll_tanh = env_name, device, fix_ll_tanh
        self.state_dim, self.skill_dim = model.cfg.state_dim, model.cfg.nz_vae
        self._assemble: TensorFn = state_assembler(env_name)

    def states(self, ob: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Env observations (..., d_o) -> SPiRL states (..., state_dim) as float32 tensors on the device."""
        x = torch.as_tensor(np.asarray(ob) if not isinstance(ob, torch.Tensor) else ob, dtype=torch.float32,
                            device=self.device)
        if x.shape[-1] != self.state_dim:
            x = self._assemble(x)
        if x.shape[-1] != self.state_dim:
            raise ValueError(f"observation of dim {x.shape[-1]} does not give the prior's {self.state_dim}-d state "
                             f"(env {self.env_name!r})")
        return x

    @torch.no_grad()
    def act_skill(self, ob: np.ndarray, skill: np.ndarray) -> np.ndarray:
        """The low-level policy a = tanh(decoder(s, z)) (fix_ll_tanh: clip(decoder(s, z), −1, 1))."""
        s = self.states(ob)[None]
        z = torch.as_tensor(skill, dtype=torch.float32, device=self.device)[None]
        if self.fix_ll_tanh:
            a = self.model.decoder(torch.cat([s, z], -1)).clamp(-1.0, 1.0)
        else:
            a = self.model.decode_action(s, z)
        return a[0].cpu().numpy()


def load_prior(prior_path: str, env: str, ac_dim: int, device: torch.device | str):
    """The SPiRL model at `prior_path` (a `spirl.pretrain --out` dir or a .pt file); a one-line SPiRLPriorMissing
    naming the pre-training command when there is none."""
    from spirl.pretrain import find_checkpoint, load_spirl_prior

    try:
        find_checkpoint(prior_path)
    except CheckpointError:
        raise SPiRLPriorMissing(prior_missing_message(env, prior_path)) from None
    return load_spirl_prior(Path(prior_path), device=device, freeze=True, action_dim=ac_dim)


def prior_divergence(pi, p_mu: torch.Tensor, p_log_sigma: torch.Tensor, scale: float, n: int,
                     clamp: bool = True) -> torch.Tensor:
    """The SPiRL+X originals' mc_kl(π, p, n, scale): mean over n reparameterised x ~ π of log π(x) − log p(scale·x).

    pi: TanhNormal with batch shape (...); p_mu, p_log_sigma (..., d) the prior's Gaussian; `clamp` clamps the
    summed prior log-density to [−20, 10] (spirl's MultivariateGaussian). Returns (...)."""
    from spirl.model import gaussian_log_prob

    x = pi.rsample((n,))  # (n, ..., d)
    return (pi.log_prob(x) - gaussian_log_prob(p_mu, p_log_sigma, scale * x, clamp)).mean(0)


class SPiRLAgent:
    """High-level SAC over skills + frozen low-level skill decoder (spec §3.4)."""

    def __init__(self, c: SPiRLAgentConfig, model, env_name: str, ob_dim: int, ac_dim: int, device: torch.device,
                 rng: np.random.Generator):
        self.c, self.device, self.rng = c, device, rng
        self.env_name = env_name
        self.skills = FrozenSkills(model, env_name, device, c.fix_ll_tanh)
        self.model = self.skills.model
        mc = model.cfg
        self.state_dim, self.skill_dim, self.ob_dim, self.ac_dim = mc.state_dim, mc.nz_vae, ob_dim, ac_dim
        if mc.action_dim != ac_dim:
            raise CheckpointError(f"{c.prior_path}: the prior decodes {mc.action_dim}-d actions, env "
                                  f"{env_name!r} has {ac_dim}")
        self.skill_horizon = mc.n_rollout_steps
        self.bootstrap_timeout = c.fix_timeout_bootstrap  # read by the runner (see the module docstring)

        self.policy = model.prior_policy_init().to(device)  # trainable copy of the prior net, BatchNorm frozen
        self.critic = TwinCritic(self.state_dim, self.skill_dim, c.critic_units, c.critic_layers).to(device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = nn.Parameter(torch.full((1,), math.log(c.alpha_init), device=device))
        betas = (c.adam_beta1, 0.999)
        self.optims = {
            "policy": fast_adam(self.policy.parameters(), lr=c.policy_lr, betas=betas),
            "critic1": fast_adam(self.critic.qs[0].parameters(), lr=c.critic_lr, betas=betas),
            "critic2": fast_adam(self.critic.qs[1].parameters(), lr=c.critic_lr, betas=betas),
            "alpha": fast_adam([self.log_alpha], lr=c.alpha_lr, betas=betas),
        }
        self.buffer = TransitionReplay(c.buffer_size, {"ob": self.state_dim, "ac": self.skill_dim, "rew": 0,
                                                       "ob_next": self.state_dim, "done": 0}, rng)
        self.step = 0
        self._update_steps = 0

    @property
    def hl_buffer(self) -> TransitionReplay:  # the trainer saves/restores the sampler RNG of `hl_buffer`
        return self.buffer

    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.exp()

    # ------------------------------------------------------------------ states
    def states(self, ob: np.ndarray | torch.Tensor) -> torch.Tensor:
        return self.skills.states(ob)

    # ------------------------------------------------------------------ policy
    def policy_dist(self, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """π(u | s): μ, log σ (B, d_z), log σ clamped to [−10, 2]. BatchNorm layers stay in eval mode."""
        from spirl.model import gaussian_params

        return gaussian_params(self.policy(s))

    def _squash(self, u: torch.Tensor) -> torch.Tensor:
        return self.c.max_action_range * torch.tanh(u)

    def divergence(self, s: torch.Tensor, mu: torch.Tensor, log_sigma: torch.Tensor) -> torch.Tensor:
        """clip(MC estimate of KL(π(·|s) ‖ p(·|s)) on the un-squashed Gaussians, ±max_divergence) -> (B,)."""
        from spirl.model import gaussian_log_prob

        with torch.no_grad():
            p_mu, p_ls = self.model.prior_params(s)  # frozen model: BatchNorm in eval mode
        clamp = not self.c.fix_kl_log_prob_clamp
        x = mu + log_sigma.exp() * torch.randn((self.c.kl_samples, *mu.shape), device=mu.device)  # (N, B, d_z)
        kl = (gaussian_log_prob(mu, log_sigma, x, clamp) - gaussian_log_prob(p_mu, p_ls, x, clamp)).mean(0)
        return kl.clamp(-self.c.max_divergence, self.c.max_divergence)

    def run_policy(self, s: torch.Tensor) -> dict[str, torch.Tensor]:
        """spirl's policy forward: reparameterised u, z = R·tanh(u), tanh-corrected log-prob, prior divergence."""
        from spirl.model import gaussian_log_prob

        mu, log_sigma = self.policy_dist(s)
        u = mu + log_sigma.exp() * torch.randn_like(mu)
        # spirl's correction adds log R once (not per dim); only logged
        correction = math.log(self.c.max_action_range) + 2 * (math.log(2.0) - u - nn.functional.softplus(-2 * u)).sum(-1)
        log_prob = gaussian_log_prob(mu, log_sigma, u, clamp=True) - correction
        entropy = (0.5 + 0.5 * math.log(2 * math.pi) + log_sigma).sum(-1)
        return {"action": self._squash(u), "log_prob": log_prob, "entropy": entropy,
                "divergence": self.divergence(s, mu, log_sigma)}

    # ------------------------------------------------------------------ acting
    @torch.no_grad()
    def act_meta(self, ob: np.ndarray, memory: Any, is_train: bool, warm_up: bool = False) -> tuple[np.ndarray, Any]:
        """The skill z ∈ [−2, 2]^10. Training and warm-up sample the policy (during warm-up it is still the
        prior-initialised policy, as spirl's rand_act_mode); evaluation samples too unless eval_deterministic."""
        mu, log_sigma = self.policy_dist(self.states(ob)[None])
        u = mu if (not is_train and self.c.eval_deterministic) else mu + log_sigma.exp() * torch.randn_like(mu)
        return self._squash(u)[0].cpu().numpy().astype(np.float32), memory

    def act_skill(self, ob: np.ndarray, skill: np.ndarray) -> np.ndarray:
        return self.skills.act_skill(ob, skill)

    # ------------------------------------------------------------------ training
    def store_episode(self, rollout: dict[str, list]) -> None:
        n = len(rollout["rew"])
        if n == 0:
            return
        with torch.no_grad():
            ob = self.states(np.stack(rollout["ob"])).cpu().numpy()
            ob_next = self.states(np.stack(rollout["ob_next"])).cpu().numpy()
        self.buffer.add({"ob": ob, "ob_next": ob_next, "ac": np.stack(rollout["ac"]).astype(np.float32),
                         "rew": np.asarray(rollout["rew"], np.float32), "done": np.asarray(rollout["done"], np.float32)})

    def set_step(self, step: int) -> None:
        self.step = step

    def update(self) -> dict[str, torch.Tensor]:
        """train_iter iterations (1 = one per HL transition) on uniformly sampled batches."""
        if len(self.buffer) == 0:
            return {}
        infos = [self.rl_step(self.buffer.sample(self.c.batch_size)) for _ in range(self.c.train_iter)]
        return {k: torch.stack([i[k] for i in infos]).mean() for k in infos[-1]}

    def rl_step(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """One iteration of spirl's SACAgent.update / ActionPriorSACAgent on a batch of HL transitions:
        ob (B, d_s), ac (B, d_z), rew (B,), ob_next (B, d_s), done (B,)."""
        c = self.c
        t = {k: torch.as_tensor(v, dtype=torch.float32, device=self.device) for k, v in batch.items()}
        out = self.run_policy(t["ob"])

        # α first (its loss uses the detached divergence), then the losses use the updated α
        alpha_loss = (self.alpha * (c.target_divergence - out["divergence"]).detach()).mean()
        self._step("alpha", alpha_loss)
        self._update_steps += 1
        alpha = self.alpha.detach()

        q_pi = torch.minimum(*self.critic(t["ob"], out["action"]))
        policy_loss = (-q_pi + alpha * out["divergence"]).mean()

        with torch.no_grad():
            nxt = self.run_policy(t["ob_next"])
            q_next = torch.minimum(*self.critic_target(t["ob_next"], nxt["action"])) - alpha * nxt["divergence"]
            y = t["rew"] + (1.0 - t["done"]) * c.rl_discount * q_next
        q1, q2 = self.critic(t["ob"], t["ac"])
        critic_losses = [0.5 * (q - y).pow(2).mean() for q in (q1, q2)]

        self._step("policy", policy_loss)
        self._step("critic1", critic_losses[0])
        self._step("critic2", critic_losses[1])
        polyak_update(self.critic_target, self.critic, c.target_update_factor)

        return {"policy_loss": policy_loss.detach(), "alpha_loss": alpha_loss.detach(),
                "critic_loss_1": critic_losses[0].detach(), "critic_loss_2": critic_losses[1].detach(),
                "alpha": alpha[0], "pi_log_prob": out["log_prob"].mean().detach(),
                "policy_entropy": out["entropy"].mean().detach(), "q_target": y.mean(), "q_1": q1.mean().detach(),
                "q_2": q2.mean().detach(), "prior_divergence": out["divergence"].mean().detach(),
                "target_divergence": torch.tensor(c.target_divergence)}

    def _step(self, name: str, loss: torch.Tensor) -> None:
        """spirl's `_perform_update`: zero this optimiser's grads, backward, step (no clipping)."""
        opt = self.optims[name]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    @torch.no_grad()
    def value_of(self, obs: np.ndarray) -> np.ndarray:
        """min(Q1, Q2)(s, R·tanh(μ_π(s))) for raw observations (N, d_o) -> (N,) (maze value heat-map)."""
        s = self.states(obs)
        mu, _ = self.policy_dist(s)
        return torch.minimum(*self.critic(s, self._squash(mu))).cpu().numpy()

    # ------------------------------------------------------------------ checkpoint
    def state_dict(self) -> dict:
        return {"policy": self.policy.state_dict(), "critic": self.critic.state_dict(),
                "critic_target": self.critic_target.state_dict(), "log_alpha": self.log_alpha.detach().clone(),
                "spirl_model": self.model.state_dict(),
                **{f"{k}_optim": o.state_dict() for k, o in self.optims.items()},
                "counters": {"update_steps": self._update_steps}, "buffer": self.buffer.state_dict()}

    def load_state_dict(self, state: dict, source: str = "checkpoint") -> None:
        for name in ("policy", "critic", "critic_target"):
            if name not in state:
                raise CheckpointError(f"{source}: '{name}' is missing (not a SPiRL checkpoint?)")
            load_module_state(getattr(self, name), state[name], name, source)
        load_module_state(self.model, state["spirl_model"], "spirl_model", source)  # the prior the run used
        with torch.no_grad():
            self.log_alpha.copy_(torch.as_tensor(state["log_alpha"]).to(self.log_alpha))
        for k, o in self.optims.items():
            o.load_state_dict(state[f"{k}_optim"])
        self._update_steps = int(state["counters"]["update_steps"])
        self.buffer.load_state_dict(state["buffer"])


def polyak_update(target: nn.Module, online: nn.Module, factor: float) -> None:
    """target <- factor·online + (1 − factor)·target (spirl's factor 0.005 = rolf's tau 0.995)."""
    from rolf.networks.latent_model import polyak_update_

    polyak_update_(target, online, 1.0 - factor)


def prior_missing_message(env: str, path: str) -> str:
    return (f"SPiRL skill prior not found at {path}: pre-train it first with "
            f"`python -m spirl.pretrain --env {env} --data data/{env}.gz --out {path}` (or set rolf.prior_path)")


def build_spirl(cfg: Any, spec, device: torch.device, rng: np.random.Generator) -> SPiRLAgent:
    """The SPiRL agent for a composed `spirl_config` (same signature as `build_tdmpc`)."""
    c = SPiRLAgentConfig.from_rolf(cfg.rolf)
    model = load_prior(c.prior_path, str(spec.name), spec.ac_dim, device)
    return SPiRLAgent(c, model, str(spec.name), spec.ob_dim, spec.ac_dim, torch.device(device), rng)
