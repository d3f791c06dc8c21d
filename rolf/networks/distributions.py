"""Tanh-squashed Gaussian and the KL estimators of skimo-spec.md §1.3.

Written by hand (not torch.distributions.TransformedDistribution) so that sampling and log-prob are a handful
of fused tensor ops without validation overhead; the maths is identical to rolf's TanhNormal.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

# The original clamps to ±0.99999997 before atanh; in float32 that constant rounds to 1 - 2**-24.
_ATANH_CLAMP = 0.99999997
# atanh of that clamp: the largest |u'| the round trip can return (8.6643...)
_ATANH_MAX = float(torch.atanh(torch.tensor(_ATANH_CLAMP, dtype=torch.float32)))
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

    def detach(self) -> TanhNormal:
        return TanhNormal(self.loc.detach(), self.scale.detach())

    def batch_map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> TanhNormal:
        """The same per-element distributions re-indexed: fn (a slice, expand, transpose of the batch dims) is
        applied to μ and σ alike, e.g. `pi.batch_map(lambda t: t[:, :L])`."""
        return TanhNormal(fn(self.loc), fn(self.scale))


def standard_tanh_normal_like(p: TanhNormal) -> TanhNormal:
    zeros = torch.zeros_like(p.loc)
    return TanhNormal(zeros, torch.ones_like(p.loc))


def mc_kl(p: TanhNormal, q: TanhNormal | str, n: int = 100) -> torch.Tensor:
    """Monte-Carlo KL(p || q) with n reparameterised samples of p, per batch element (spec §1.3).

    q may be a TanhNormal or the string "tanh" (the squashed unit Gaussian). Returns shape p.batch_shape.

    As in the original (a Dreamer-style TanhBijector without a cache), both log-densities are evaluated at the
    inverted sample u' = atanh(clamp(tanh(u), ±c)), so the tanh log-Jacobians are identical and cancel: they are not
    computed. In exact arithmetic u' = clamp(u, ±atanh(c)), with the same gradient (1 inside, 0 where clamped)
    (`mc_kl_roundtrip` is the literal form, `mc_kl_direct` the per-sample one; tests compare all three).

    On the CPU the same estimate is computed from the draws' moments: with u = μ_p + σ_p ε unclamped, z_p = ε and
    z_q = A + B ε (A = (μ_p - μ_q)/σ_q, B = σ_p/σ_q), so mean_n (z_q² - z_p²) = A² + 2AB mean(ε) + (B² - 1) mean(ε²)
    — the same samples, the same value and gradient in exact arithmetic, but one read of the (n, *batch, d) draws
    instead of ~20 autograd passes over them. Elements where some sample clamps take the per-sample path.
    """
    q_loc, q_scale = _kl_reference(q)
    eps = torch.randn((n, *p.loc.shape), dtype=p.loc.dtype, device=p.loc.device)  # (n, *batch, d)
    shapes = [p.scale.shape] + ([] if q_loc is None else [q_loc.shape, q_scale.shape])
    # The gather of clamped elements needs a host sync (on an accelerator the per-sample form is cheap anyway) and
    # has a data-dependent size (under torch.compile every new count would recompile; inductor fuses the direct form).
    if (eps.device.type != "cpu" or torch.compiler.is_compiling()
            or torch.broadcast_shapes(p.loc.shape, *shapes) != p.loc.shape):
        return _per_sample_log_ratio(eps, p, q_loc, q_scale)
    return _mc_log_ratio_from_moments(eps, p, q_loc, q_scale)


def mc_kl_direct(p: TanhNormal, q: TanhNormal | str, n: int = 100) -> torch.Tensor:
    """`mc_kl` evaluated sample by sample (the accelerator path; reference for tests)."""
    q_loc, q_scale = _kl_reference(q)
    eps = torch.randn((n, *p.loc.shape), dtype=p.loc.dtype, device=p.loc.device)
    return _per_sample_log_ratio(eps, p, q_loc, q_scale)


def _per_sample_log_ratio(eps: torch.Tensor, p: TanhNormal, q_loc: torch.Tensor | None,
                          q_scale: torch.Tensor | None) -> torch.Tensor:
    return _gaussian_log_ratio_at(_clamped_pre_tanh(p, eps), p, q_loc, q_scale)


def _clamped_pre_tanh(p: TanhNormal, eps: torch.Tensor) -> torch.Tensor:
    return (p.loc + p.scale * eps).clamp(-_ATANH_MAX, _ATANH_MAX)  # (n, *batch, d)


def _mc_log_ratio_from_moments(eps: torch.Tensor, p: TanhNormal, q_loc: torch.Tensor | None,
                               q_scale: torch.Tensor | None) -> torch.Tensor:
    """`_gaussian_log_ratio_at(clamp(μ_p + σ_p ε), ...)` from mean(ε), mean(ε²) and the extreme draws."""
    with torch.no_grad():
        m1 = eps.mean(0)  # (*batch, d)
        m2 = torch.square(eps).mean(0)  # (measured: 10x faster than vector_norm or aminmax over dim 0)
        e_min, e_max = eps.amin(0), eps.amax(0)
    loc, scale = torch.broadcast_tensors(p.loc, p.scale)
    if q_loc is None:
        a, b = loc, scale
    else:
        a, b = (loc - q_loc) / q_scale, scale / q_scale
    contrib = a * a + 2.0 * a * b * m1 + (b * b - 1.0) * m2  # mean_n (z_q² - z_p²), (*batch, d)
    with torch.no_grad():  # float mul/add are monotone, so these are exactly the extreme samples' u
        clamps = (loc + scale * e_max > _ATANH_MAX) | (loc + scale * e_min < -_ATANH_MAX)
        idx = clamps.flatten().nonzero().squeeze(1)  # (k,)
    if idx.numel():
        contrib = contrib.flatten().index_put((idx,), _clamped_contrib(eps, p, q_loc, q_scale, idx)).view_as(contrib)
    log_ratio = 0.5 * contrib.sum(-1)  # (*batch)
    return log_ratio + _log_scale_term(p, q_scale)


def _clamped_contrib(eps: torch.Tensor, p: TanhNormal, q_loc: torch.Tensor | None, q_scale: torch.Tensor | None,
                     idx: torch.Tensor) -> torch.Tensor:
    """mean_n (z_q² - z_p²) sample by sample for the flat elements idx (those where some sample clamps)."""
    shape = eps.shape[1:]

    def pick(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else t.expand(shape).flatten()[idx]  # (k,)

    sub = TanhNormal(pick(p.loc), pick(p.scale))
    u = _clamped_pre_tanh(sub, eps.flatten(1)[:, idx])  # (n, k)
    return _sq_z_diff(u, sub, pick(q_loc), pick(q_scale)).mean(0)


def mc_kl_roundtrip(p: TanhNormal, q: TanhNormal | str, n: int = 100) -> torch.Tensor:
    """`mc_kl` computed literally as the original does: x = tanh(u), u' = atanh(clamp(x)) (reference for tests)."""
    q_loc, q_scale = _kl_reference(q)
    x = p.rsample((n,))  # (n, *batch, d)
    u = torch.atanh(x.clamp(-_ATANH_CLAMP, _ATANH_CLAMP))
    return _gaussian_log_ratio_at(u, p, q_loc, q_scale)


def _kl_reference(q: TanhNormal | str) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    if isinstance(q, str):
        if q != "tanh":
            raise ValueError(f"mc_kl: unknown reference distribution {q!r}; expected a TanhNormal or 'tanh'")
        return None, None
    return q.loc, q.scale


def _gaussian_log_ratio_at(u: torch.Tensor, p: TanhNormal, q_loc: torch.Tensor | None,
                           q_scale: torch.Tensor | None) -> torch.Tensor:
    """mean_n [log N(u; p) - log N(u; q)] summed over the event dim; q = None is the unit Gaussian."""
    log_ratio = 0.5 * _sq_z_diff(u, p, q_loc, q_scale).sum(-1).mean(0)  # (*batch)
    return log_ratio + _log_scale_term(p, q_scale)


def _sq_z_diff(u: torch.Tensor, p: TanhNormal, q_loc: torch.Tensor | None, q_scale: torch.Tensor | None) -> torch.Tensor:
    """z_q² - z_p² per sample and dim: twice the Gaussian log-ratio at u without its normalisers."""
    zp = (u - p.loc) / p.scale
    zq = u if q_loc is None else (u - q_loc) / q_scale
    return zq * zq - zp * zp


def _log_scale_term(p: TanhNormal, q_scale: torch.Tensor | None) -> torch.Tensor:
    """Σ_d log σ_q - log σ_p: the normalisers of the two Gaussian log-densities."""
    log_scales = -torch.log(p.scale).sum(-1)
    if q_scale is not None:
        log_scales = log_scales + torch.log(q_scale).sum(-1)
    return log_scales


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
