"""Tanh-squashed Gaussian and the KL estimators of skimo-spec.md §1.3.

Written by hand (not torch.distributions.TransformedDistribution) so that sampling and log-prob are a handful
of fused tensor ops without validation overhead; the maths is identical to rolf's TanhNormal.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# The original clamps to ±0.99999997 before atanh; in float32 that constant rounds to 1 - 2**-24.
_ATANH_CLAMP = 0.99999997
_LOG2 = math.log(2.0)
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def _tanh_log_det_jacobian(u: torch.Tensor) -> torch.Tensor:
    """log |d tanh(u) / du| = 2 (log 2 - u - softplus(-2u)), numerically stable."""
    return 2.0 * (_LOG2 - u - F.softplus(-2.0 * u))


class TanhNormal:
    """x = tanh(u), u ~ N(loc, scale) with a diagonal covariance; event dim is the last dim."""

    def __init__(self, loc: torch.Tensor, scale: torch.Tensor):
        self.loc = loc
        self.scale = scale

    @property
    def batch_shape(self) -> torch.Size:
        return self.loc.shape[:-1]

    def mode(self) -> torch.Tensor:
        """tanh(μ) — what the original calls the mode (not the maximum of the squashed density, spec §7.8)."""
        return torch.tanh(self.loc)

    def rsample_with_pre_tanh(self, sample_shape: torch.Size | tuple = ()) -> tuple[torch.Tensor, torch.Tensor]:
        shape = torch.Size(sample_shape) + self.loc.shape
        u = self.loc + self.scale * torch.randn(shape, dtype=self.loc.dtype, device=self.loc.device)
        return torch.tanh(u), u

    def rsample(self, sample_shape: torch.Size | tuple = ()) -> torch.Tensor:
        return self.rsample_with_pre_tanh(sample_shape)[0]

    def sample(self, sample_shape: torch.Size | tuple = ()) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    def log_prob(self, x: torch.Tensor, pre_tanh: torch.Tensor | None = None) -> torch.Tensor:
        """Log-density of x summed over the event dim. `pre_tanh` is the cached u of a sample (exact path)."""
        if pre_tanh is None:
            pre_tanh = torch.atanh(x.clamp(-_ATANH_CLAMP, _ATANH_CLAMP))
        z = (pre_tanh - self.loc) / self.scale
        normal_lp = -0.5 * z * z - torch.log(self.scale) - _HALF_LOG_2PI
        return (normal_lp - _tanh_log_det_jacobian(pre_tanh)).sum(-1)

    def entropy(self) -> torch.Tensor:
        """Entropy of the underlying Gaussian (the original's proxy), summed over the event dim."""
        return (0.5 + _HALF_LOG_2PI + torch.log(self.scale)).sum(-1)

    def detach(self) -> "TanhNormal":
        return TanhNormal(self.loc.detach(), self.scale.detach())


def standard_tanh_normal_like(p: TanhNormal) -> TanhNormal:
    zeros = torch.zeros_like(p.loc)
    return TanhNormal(zeros, torch.ones_like(p.loc))


def mc_kl(p: TanhNormal, q: TanhNormal | str, n: int = 100) -> torch.Tensor:
    """Monte-Carlo KL(p || q) with n reparameterised samples of p, per batch element (spec §1.3).

    q may be a TanhNormal or the string "tanh" (the squashed unit Gaussian). Returns shape p.batch_shape.

    As in the original (a Dreamer-style TanhBijector without a cache), both log-densities are evaluated at the
    inverted sample u' = atanh(clamp(tanh(u))), so the tanh log-Jacobians are identical and cancel: they are not
    computed. What remains is the Gaussian log-ratio at u' (measured for p of shape (512, 10, 10) vs "tanh": forward +
    backward 339 ms -> 248 ms on 2 cores, before the malloc setting of rolf.utils.perf).
    """
    if isinstance(q, str):
        if q != "tanh":
            raise ValueError(f"mc_kl: unknown reference distribution {q!r}; expected a TanhNormal or 'tanh'")
        q_loc, q_scale = None, None
    else:
        q_loc, q_scale = q.loc, q.scale
    x = p.rsample((n,))  # (n, *batch, d)
    u = torch.atanh(x.clamp(-_ATANH_CLAMP, _ATANH_CLAMP))
    zp = (u - p.loc) / p.scale
    zq = u if q_loc is None else (u - q_loc) / q_scale
    log_ratio = 0.5 * (zq * zq - zp * zp).sum(-1).mean(0)  # (*batch)
    log_scales = -torch.log(p.scale).sum(-1)
    if q_scale is not None:
        log_scales = log_scales + torch.log(q_scale).sum(-1)
    return log_ratio + log_scales


def analytic_kl(p: TanhNormal, q: TanhNormal | str) -> torch.Tensor:
    """Closed-form KL between the pre-tanh Gaussians: equal to mc_kl in expectation up to the atanh clamp (§7.8)."""
    if isinstance(q, str):
        q = standard_tanh_normal_like(p)
    var_ratio = (p.scale / q.scale) ** 2
    mean_term = ((p.loc - q.loc) / q.scale) ** 2
    return (0.5 * (var_ratio + mean_term - 1.0 - torch.log(var_ratio))).sum(-1)


def tanh_normal_head(out: torch.Tensor, log_std: bool) -> TanhNormal:
    """Split a network output (..., 2d) into the (μ, σ) of a TanhNormal as rolf does (spec §1.3)."""
    mean, raw = out.chunk(2, dim=-1)
    mean = 5.0 * torch.tanh(mean / 5.0)
    if log_std:
        std = torch.exp(raw.clamp(-10.0, 2.0)) + 1e-4
    else:
        std = F.softplus(raw + math.log(math.exp(5.0) - 1.0)) + 1e-4
    return TanhNormal(mean, std)
