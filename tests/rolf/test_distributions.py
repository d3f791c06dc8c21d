import math

import numpy as np
import pytest
import torch

from rolf.networks.distributions import TanhNormal, analytic_kl, mc_kl, tanh_normal_head


def test_log_prob_matches_change_of_variables_reference():
    loc, scale = torch.tensor([[0.3, -1.2]]), torch.tensor([[0.5, 2.0]])
    d = TanhNormal(loc, scale)
    x = torch.tensor([[0.2, -0.9]])
    u = np.arctanh(x.numpy())
    normal = -0.5 * ((u - loc.numpy()) / scale.numpy()) ** 2 - np.log(scale.numpy()) - 0.5 * math.log(2 * math.pi)
    expected = (normal - np.log(1 - x.numpy() ** 2)).sum(-1)
    assert d.log_prob(x).numpy() == pytest.approx(expected, abs=1e-5)


def test_log_prob_integrates_to_one_numerically():
    d = TanhNormal(torch.tensor([0.4]), torch.tensor([0.7]))
    xs = torch.linspace(-0.999999, 0.999999, 200001)[:, None]
    density = d.log_prob(xs).exp()
    integral = torch.trapezoid(density, xs[:, 0]).item()
    assert integral == pytest.approx(1.0, abs=2e-3)


def test_cached_pre_tanh_equals_inverse_path_away_from_the_clamp():
    torch.manual_seed(0)
    d = TanhNormal(torch.zeros(1000, 3), torch.full((1000, 3), 0.5))
    x, u = d.rsample_with_pre_tanh()
    assert torch.allclose(d.log_prob(x, pre_tanh=u), d.log_prob(x), atol=1e-3)


def test_mc_kl_matches_closed_form_gaussian_kl():
    torch.manual_seed(0)
    p = TanhNormal(torch.tensor([[0.5, -0.3]]), torch.tensor([[0.4, 0.9]]))
    q = TanhNormal(torch.tensor([[0.0, 0.2]]), torch.tensor([[1.0, 0.6]]))
    exact = analytic_kl(p, q)
    # reference value by hand: sum_i log(sq/sp) + (sp^2 + (mp-mq)^2) / (2 sq^2) - 1/2
    ref = sum(math.log(sq / sp) + (sp**2 + (mp - mq) ** 2) / (2 * sq**2) - 0.5
              for mp, sp, mq, sq in [(0.5, 0.4, 0.0, 1.0), (-0.3, 0.9, 0.2, 0.6)])
    assert exact.item() == pytest.approx(ref, rel=1e-5)
    estimates = torch.stack([mc_kl(p, q, n=100) for _ in range(400)])
    assert estimates.mean().item() == pytest.approx(ref, rel=0.03)


def test_mc_kl_against_squashed_unit_gaussian():
    torch.manual_seed(1)
    p = TanhNormal(torch.zeros(4, 10), torch.ones(4, 10))
    assert mc_kl(p, "tanh").abs().max().item() < 1e-5  # identical distributions
    with pytest.raises(ValueError, match="unknown reference"):
        mc_kl(p, "gauss")


def test_head_soft_clips_mean_and_bounds_std():
    out = torch.tensor([[100.0, -100.0, 50.0, -50.0]])
    d = tanh_normal_head(out, log_std=True)
    assert d.loc.abs().max().item() <= 5.0
    assert d.scale[0, 0].item() == pytest.approx(math.exp(2) + 1e-4)
    assert d.scale[0, 1].item() == pytest.approx(math.exp(-10) + 1e-4)
    d2 = tanh_normal_head(torch.zeros(1, 4), log_std=False)
    assert d2.scale[0, 0].item() == pytest.approx(5.0 + 1e-4, rel=1e-5)


@pytest.mark.parametrize("loc_scale", [(1.0, 0.5), (4.5, 3.0)])  # the second one clamps many samples
def test_mc_kl_equals_the_literal_tanh_atanh_round_trip_on_fixed_seeds(loc_scale):
    """mc_kl skips tanh -> atanh and sums the draws' moments (identical in exact arithmetic): with the same samples,
    the same value and gradient as the per-sample form to float32 rounding, and as the literal round trip up to its
    float32 noise."""
    from rolf.networks.distributions import _ATANH_MAX, mc_kl_direct, mc_kl_roundtrip

    m, s = loc_scale
    g = torch.Generator().manual_seed(0)
    loc = (m * torch.randn(64, 5, 10, generator=g)).clamp(-5, 5).requires_grad_()
    scale = (s * torch.rand(64, 5, 10, generator=g) + 0.05).requires_grad_()
    q = TanhNormal(torch.randn(64, 5, 10, generator=g), torch.rand(64, 5, 10, generator=g) + 0.3)
    out, grads = {}, {}
    for fn in (mc_kl, mc_kl_direct, mc_kl_roundtrip):
        for ref in (q, "tanh"):
            torch.manual_seed(1)
            kl = fn(TanhNormal(loc, scale), ref)
            out[fn, type(ref)] = kl.detach()
            grads[fn, type(ref)] = torch.cat([g.flatten() for g in torch.autograd.grad(kl.sum(), [loc, scale])])
    torch.manual_seed(1)
    u = loc + scale * torch.randn(100, 64, 5, 10)
    clamped = (u.abs() > _ATANH_MAX).any(0).float().mean()
    assert (clamped > 0.05) if m > 2 else (clamped == 0)  # the second case exercises the per-sample fallback
    for ref in (TanhNormal, str):
        torch.testing.assert_close(out[mc_kl, ref], out[mc_kl_direct, ref], rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(grads[mc_kl, ref], grads[mc_kl_direct, ref], rtol=1e-4, atol=1e-4)
        tol = dict(rtol=1e-5, atol=1e-4) if m < 2 else dict(rtol=5e-3, atol=0.05)
        fast, lit = out[mc_kl, ref], out[mc_kl_roundtrip, ref]
        torch.testing.assert_close(fast, lit, **tol)
        assert (fast.mean() - lit.mean()).abs() < 1e-2 * lit.abs().mean()
        a, b = grads[mc_kl, ref], grads[mc_kl_roundtrip, ref]
        assert torch.dot(a, b) / (a.norm() * b.norm()) > 0.999


def test_mc_kl_takes_the_per_sample_form_where_shapes_broadcast():
    """A reference with a larger batch than p (broadcast) is outside the moment path: still the per-sample value."""
    from rolf.networks.distributions import mc_kl_direct

    p = TanhNormal(torch.zeros(1, 3), torch.ones(1, 3))
    q = TanhNormal(torch.randn(4, 3), torch.ones(4, 3))
    torch.manual_seed(0)
    a = mc_kl(p, q)
    torch.manual_seed(0)
    assert a.shape == (4,) and torch.equal(a, mc_kl_direct(p, q))
