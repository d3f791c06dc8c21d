"""SPiRL's skill-prior model with the closed-loop skill decoder (spirl `ClSPiRLMdl`; skimo-spec.md §3.4, §4.4).

A skill is H = `n_rollout_steps` (10) low-level steps, embedded as z ∈ R^10:
- encoder q(z | s_0..s_{H-1}, a_0..a_{H-1}): a custom LSTM over concat(a_t, s_t), last output -> Gaussian;
- closed-loop decoder: a_t = decoder(concat(s_t, z)) for every step (a batch-norm MLP, no recurrence);
- learned prior p(z | s_0): a batch-norm MLP -> Gaussian.

Losses (spirl `SkillPriorMdl.loss`):
    total = rec_w · mean_{B,H,d_a}[0.5 (â − a)² + 0.5 log 2π]           (unit-variance Gaussian NLL)
          + β · mean_{B,d_z}[KL(q ‖ N(0, I))]                             (analytic, per dim)
          + mean_B[−clamp(Σ_{d_z} log p(sg(z) | s_0), −20, 10)]          (prior NLL of the detached posterior sample)
The clamp of the summed log-density to [−20, 10] is spirl's `MultivariateGaussian.log_prob` (not in the spec's
text; kept, `prior_nll_clamp=True`): samples whose log-density is outside the range give the prior no gradient.
Every Gaussian here has log σ clamped to [−10, 2] (spirl's `Gaussian`).

Downstream (spec §3.4 "Downstream HRL"): `decode_action` is the low-level policy (spirl's ClModelPolicy),
`prior_dist` the frozen prior, `prior_policy_init` the trainable copy of the prior net that initialises the
high-level SAC policy, `freeze_for_rl` freezes everything (BatchNorm in eval mode for good).

Tensor conventions: batch-major; states (B, H+1, d_s) or (B, H, d_s), actions (B, H, d_a); z (B, d_z).
"""

from __future__ import annotations

import copy
import math
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from typing import Any, Iterator

import torch
from torch import nn

LOG_SIGMA_MIN, LOG_SIGMA_MAX = -10.0, 2.0  # spirl `Gaussian`
LOG_PROB_MIN, LOG_PROB_MAX = -20.0, 10.0  # spirl `MultivariateGaussian.log_prob` (summed over dims)
POLICY_LOG_SIGMA = -50.0  # ClModelPolicy's initial_log_sigma; spirl's Gaussian clamps it to LOG_SIGMA_MIN
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)

# Per env (spec §4.4): SPiRL's state dim (kitchen 30-d obs + 30-d base-task goal; CALVIN first 21 of 39 dims),
# action dim, β and the directory SkiMo's spirl_agent loads the prior from.
ENV_PRIORS: dict[str, dict[str, Any]] = {
    "maze": {"state_dim": 4, "action_dim": 2, "kl_div_weight": 1e-3,
             "dir": "log/skill_prior_learning/maze/hierarchical_cl/maze_TA_prior"},
    "kitchen": {"state_dim": 60, "action_dim": 9, "kl_div_weight": 5e-4,
                "dir": "log/skill_prior_learning/kitchen/hierarchical_cl"},
    "calvin": {"state_dim": 21, "action_dim": 7, "kl_div_weight": 5e-4,
               "dir": "log/skill_prior_learning/calvin/skill_prior_21"},
}


@dataclass(frozen=True)
class SPiRLConfig:
    """The model's hyper-parameters (spirl names). Defaults are the `hierarchical_cl` configs of spec §4.4."""

    state_dim: int
    action_dim: int
    nz_vae: int = 10  # skill dim d_z
    nz_enc: int = 128  # LSTM encoder output size
    nz_mid: int = 128  # width of the decoder and prior MLPs (spirl's nz_mid_prior; = nz_mid = 128 in all configs)
    nz_mid_lstm: int = 128  # LSTM embedding / hidden size
    n_processing_layers: int = 5  # BatchNorm layers of the decoder
    num_prior_net_layers: int = 6  # BatchNorm layers of the prior
    kl_div_weight: float = 1e-3  # β
    reconstruction_mse_weight: float = 1.0
    n_rollout_steps: int = 10  # H
    prior_nll_clamp: bool = True  # clamp Σ log p to [−20, 10] as spirl's MultivariateGaussian

    @classmethod
    def for_env(cls, env: str, **overrides: Any) -> "SPiRLConfig":
        if env not in ENV_PRIORS:
            raise ValueError(f"unknown env {env!r}; SPiRL priors exist for {sorted(ENV_PRIORS)}")
        e = ENV_PRIORS[env]
        return cls(**{"state_dim": e["state_dim"], "action_dim": e["action_dim"], "kl_div_weight": e["kl_div_weight"],
                      **overrides})

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SPiRLConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown SPiRL config key {unknown[0]!r}")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------- building blocks
def _bn_modules(module: nn.Module) -> Iterator[nn.modules.batchnorm._BatchNorm]:
    return (m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm))


@contextmanager
def bn_eval(module: nn.Module):
    """BatchNorm layers of `module` in eval mode inside the block (running statistics used, not updated), then
    restored: spirl's `no_batchnorm_update`."""
    bns = list(_bn_modules(module))
    modes = [m.training for m in bns]
    for m in bns:
        m.eval()
    try:
        yield
    finally:
        for m, mode in zip(bns, modes):
            m.train(mode)


class Predictor(nn.Sequential):
    """spirl's batch-norm MLP: Linear(in, mid) + LeakyReLU(0.2), n × [Linear(mid, mid, no bias) + BatchNorm1d(mid) +
    LeakyReLU(0.2)], Linear(mid, out). Xavier-normal weights, zero biases; BatchNorm affine=True, momentum 0.1.

    Accepts (..., in) inputs (leading dims are flattened for the BatchNorm). After `freeze_batchnorm()` the
    BatchNorm layers stay in eval mode even when `.train()` is called (their affine parameters remain trainable).
    """

    def __init__(self, in_dim: int, out_dim: int, mid_dim: int, num_layers: int):
        layers: list[nn.Module] = [nn.Linear(in_dim, mid_dim), nn.LeakyReLU(0.2)]
        for _ in range(num_layers):
            layers += [nn.Linear(mid_dim, mid_dim, bias=False), nn.BatchNorm1d(mid_dim), nn.LeakyReLU(0.2)]
        layers.append(nn.Linear(mid_dim, out_dim))
        super().__init__(*layers)
        self.bn_frozen = False
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        return super().forward(x.reshape(-1, x.shape[-1])).reshape(*lead, -1)

    def freeze_batchnorm(self) -> "Predictor":
        self.bn_frozen = True
        for m in _bn_modules(self):
            m.eval()
        return self

    def train(self, mode: bool = True) -> "Predictor":
        super().train(mode)
        if self.bn_frozen:
            for m in _bn_modules(self):
                m.eval()
        return self


class LSTMEncoder(nn.Module):
    """spirl's `BaseProcessingLSTM` + Linear: embed Linear(in, 128) -> 1-layer LSTM(128) (zero initial state,
    forget-gate biases of both bias vectors set to 1) -> Linear(128, nz_enc) at every step; the last step's output
    -> Linear(nz_enc, 2·nz_vae). PyTorch default init for these layers (spirl does not Xavier-init them)."""

    def __init__(self, in_dim: int, hidden: int, nz_enc: int, nz_vae: int):
        super().__init__()
        self.embed = nn.Linear(in_dim, hidden)
        self.lstm = nn.LSTM(hidden, hidden, num_layers=1, batch_first=True)
        self.output = nn.Linear(hidden, nz_enc)
        self.head = nn.Linear(nz_enc, 2 * nz_vae)
        for name, p in self.lstm.named_parameters():
            if "bias" in name:
                n = p.shape[0]
                with torch.no_grad():
                    p[n // 4:n // 2].fill_(1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, H, in) -> (B, 2·nz_vae) = (μ, log σ) of q, from the last step."""
        h, _ = self.lstm(self.embed(x))  # (B, H, hidden)
        return self.head(self.output(h[:, -1]))  # only the last step's output is used


def gaussian_params(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(..., 2d) -> μ (..., d), log σ (..., d) clamped to [−10, 2]."""
    mu, log_sigma = out.chunk(2, dim=-1)
    return mu, log_sigma.clamp(LOG_SIGMA_MIN, LOG_SIGMA_MAX)


def gaussian_log_prob(mu: torch.Tensor, log_sigma: torch.Tensor, x: torch.Tensor, clamp: bool = True) -> torch.Tensor:
    """Diagonal Gaussian log-density summed over the last dim; clamped to [−20, 10] like spirl's
    MultivariateGaussian when `clamp` (the original's MC KL in SPiRL's HRL uses this clamped density too)."""
    lp = (-0.5 * ((x - mu) * torch.exp(-log_sigma)) ** 2 - log_sigma - _HALF_LOG_2PI).sum(-1)
    return lp.clamp(LOG_PROB_MIN, LOG_PROB_MAX) if clamp else lp


# ---------------------------------------------------------------- the model
class SPiRLModel(nn.Module):
    def __init__(self, cfg: SPiRLConfig):
        super().__init__()
        self.cfg = c = cfg
        self.encoder = LSTMEncoder(c.action_dim + c.state_dim, c.nz_mid_lstm, c.nz_enc, c.nz_vae)
        self.decoder = Predictor(c.state_dim + c.nz_vae, c.action_dim, c.nz_mid, c.n_processing_layers)
        self.prior = Predictor(c.state_dim, 2 * c.nz_vae, c.nz_mid, c.num_prior_net_layers)
        self.frozen = False

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # ------------------------------------------------------------ pre-training
    def posterior(self, states: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """states (B, H, d_s), actions (B, H, d_a) -> μ, log σ (B, d_z) of q(z | ·)."""
        return gaussian_params(self.encoder(torch.cat([actions, states], -1)))

    def prior_params(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """state (B, d_s) -> μ, log σ (B, d_z) of p(z | s). Uses the prior's current BatchNorm mode."""
        return gaussian_params(self.prior(state))

    def _check_batch(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        c, h = self.cfg, self.cfg.n_rollout_steps
        states, actions = batch["states"], batch["actions"]
        if states.ndim != 3 or states.shape[1] < h or states.shape[2] != c.state_dim:
            raise ValueError(f"states have shape {tuple(states.shape)}, expected (B, >={h}, {c.state_dim})")
        if actions.ndim != 3 or actions.shape[1] < h or actions.shape[2] != c.action_dim or len(actions) != len(states):
            raise ValueError(f"actions have shape {tuple(actions.shape)}, expected ({len(states)}, >={h}, {c.action_dim})")
        return states[:, :h], actions[:, :h]

    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """batch: states (B, ≥H, d_s) (spirl samples H+1; the last is unused), actions (B, ≥H, d_a) (the first H used).

        Returns the total loss and detached scalars: rec_mse (the reconstruction NLL, as spirl logs it), kl_loss
        (unweighted), q_hat_loss (prior NLL), action_mse, total.
        """
        c = self.cfg
        s, a = self._check_batch(batch)  # (B, H, d_s), (B, H, d_a)
        q_mu, q_ls = self.posterior(s, a)  # (B, d_z) each
        z = q_mu + torch.exp(q_ls) * torch.randn_like(q_mu)  # reparameterised posterior sample (B, d_z)
        dec_in = torch.cat([s, z[:, None].expand(-1, s.shape[1], -1)], -1)  # (B, H, d_s + d_z)
        recon = self.decoder(dec_in)  # (B, H, d_a)
        sq = (recon - a) ** 2
        rec = (0.5 * sq + _HALF_LOG_2PI).mean()
        kl = (-q_ls + 0.5 * (torch.exp(2.0 * q_ls) + q_mu ** 2) - 0.5).mean()  # KL(q ‖ N(0, I)), mean over (B, d_z)
        p_mu, p_ls = self.prior_params(s[:, 0])  # (B, d_z)
        q_hat = -gaussian_log_prob(p_mu, p_ls, z.detach(), clamp=c.prior_nll_clamp).mean()
        total = c.reconstruction_mse_weight * rec + c.kl_div_weight * kl + q_hat
        info = {"total": total, "rec_mse": rec, "kl_loss": kl, "q_hat_loss": q_hat, "action_mse": sq.mean(),
                "q_sigma": torch.exp(q_ls).mean(), "prior_sigma": torch.exp(p_ls).mean()}
        return total, {k: v.detach() for k, v in info.items()}

    # ------------------------------------------------------------ downstream interfaces
    def prior_dist(self, state: torch.Tensor) -> torch.distributions.Normal:
        """p(z | s): state (B, d_s) -> Normal with loc, scale (B, d_z) (log σ clamped to [−10, 2]). BatchNorm always
        in eval mode here (spirl runs the prior under `no_batchnorm_update`). Note: spirl's own log_prob of this
        distribution is summed and clamped to [−20, 10] (`gaussian_log_prob`); torch's Normal.log_prob is per dim and
        unclamped."""
        with bn_eval(self.prior):
            mu, log_sigma = self.prior_params(state)
        return torch.distributions.Normal(mu, torch.exp(log_sigma), validate_args=False)

    def decode_action(self, state: torch.Tensor, z: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        """The low-level policy: state (B, d_s), z (B, d_z) -> action (B, d_a) = tanh(decoder(concat(s, z))).

        spirl's ClModelPolicy samples u ~ N(decoder(s, z), σ) and returns tanh(u) (max_action_range 1) with
        log σ = −50, which spirl's Gaussian clamps to −10 (σ ≈ 4.5e−5). `deterministic=True` (default) drops that
        noise: a = tanh(μ). `deterministic=False` reproduces it. BatchNorm always in eval mode (running statistics),
        as spirl's `no_batchnorm_update`; the output is not clipped further.
        """
        with bn_eval(self.decoder):
            mu = self.decoder(torch.cat([state, z], -1))  # (B, d_a)
        if not deterministic:
            mu = mu + math.exp(max(POLICY_LOG_SIGMA, LOG_SIGMA_MIN)) * torch.randn_like(mu)
        return torch.tanh(mu)

    def freeze_for_rl(self) -> "SPiRLModel":
        """Eval mode for good (BatchNorm running statistics frozen even if `.train()` is called later) and no
        gradients: the frozen skill decoder and the frozen prior of SPiRL's HRL."""
        self.frozen = True
        for p in (self.decoder, self.prior):
            p.freeze_batchnorm()
        self.eval()
        self.requires_grad_(False)
        return self

    def train(self, mode: bool = True) -> "SPiRLModel":
        return super().train(mode and not getattr(self, "frozen", False))

    def prior_policy_init(self) -> Predictor:
        """A trainable copy of the prior net (SPiRL's PriorInitializedPolicy): same weights, requires_grad=True,
        BatchNorm kept in eval mode (running statistics never updated; affine parameters trainable), as spirl runs it
        under `no_batchnorm_update`. Its output (B, 2·d_z) splits into (μ, log σ) with `gaussian_params`."""
        net = copy.deepcopy(self.prior).freeze_batchnorm()
        net.requires_grad_(True)
        return net
