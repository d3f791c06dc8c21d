import torch

from rolf.networks.distributions import TanhNormal
from rolf.planners import CEMConfig, CEMPlanner, LinearDecay


class QuadraticModel:
    """Reward -(a - target)^2 summed over dims; identity dynamics; zero value."""

    def __init__(self, target: torch.Tensor):
        self.target = target

    def next(self, h, a):
        return h

    def predict_reward(self, h, a):
        return -((a - self.target) ** 2).sum(-1)

    def q(self, h, a):
        z = torch.zeros(h.shape[:-1])
        return z, z


def unit_policy(h):
    return TanhNormal(torch.zeros(*h.shape[:-1], 3), torch.ones(*h.shape[:-1], 3))


def _planner(max_horizon=10, horizon_step=1.0, clamp=0.999, **kw):
    # std_step=1: the std floor is already min_std at step >= 1 (at step 0 it is max_std = 0.5)
    return CEMPlanner(CEMConfig(max_horizon=max_horizon, horizon_step=horizon_step, clamp=clamp, min_std=0.01, std_step=1, **kw), 3)


def test_cem_finds_the_highest_reward_skill():
    torch.manual_seed(0)
    target = torch.tensor([0.6, -0.4, 0.2])
    z, mean = _planner(horizon_step=1e9).plan(QuadraticModel(target), unit_policy, torch.zeros(1, 2), None, 10, False)
    assert z.shape == (3,) and mean.shape == (1, 3)
    assert torch.allclose(mean, target[None], atol=0.05)
    assert torch.allclose(z, target, atol=0.15)
    # horizon 10: every step of the plan mean approaches the optimum
    _, mean = _planner().plan(QuadraticModel(target), unit_policy, torch.zeros(1, 2), None, step=10, is_train=False)
    assert mean.shape == (10, 3) and torch.allclose(mean, target.expand(10, 3), atol=0.15)


def test_outputs_stay_in_range_even_with_out_of_range_optimum():
    torch.manual_seed(0)
    model = QuadraticModel(torch.tensor([3.0, -3.0, 0.0]))
    # horizon 1 converges to the bounds in 6 iterations; horizon 10 (30 dims) only moves the right way
    for horizon_step, bound in ((1e9, 0.9), (1.0, 0.3)):
        for is_train in (False, True):
            z, mean = _planner(horizon_step=horizon_step).plan(model, unit_policy, torch.zeros(1, 2), None, 10, is_train)
            assert z.abs().max() <= 0.999 and mean.abs().max() <= 0.999
            assert mean[0, 0] > bound and mean[0, 1] < -bound
    z, _ = _planner(horizon_step=1e9).plan(model, unit_policy, torch.zeros(1, 2), None, 10, False)
    assert z[0] > 0.9 and z[1] < -0.9  # horizon 1: the chosen elite itself sits at the bounds


def test_horizon_schedule_and_warm_start_shapes():
    planner = _planner(max_horizon=10, horizon_step=1000)
    assert planner.horizon_at(0) == 1 and planner.horizon_at(500) == 5 and planner.horizon_at(999) == 9
    assert planner.horizon_at(1000) == 10 and planner.horizon_at(10**9) == 10
    model = QuadraticModel(torch.zeros(3))
    _, mean = planner.plan(model, unit_policy, torch.zeros(1, 2), None, step=0, is_train=True)
    assert mean.shape == (1, 3)
    _, mean5 = planner.plan(model, unit_policy, torch.zeros(1, 2), torch.ones(5, 3), step=500, is_train=True)
    assert mean5.shape == (5, 3)


def test_policy_trajectories_can_win_when_they_are_best():
    torch.manual_seed(0)
    target = torch.tensor([0.9, 0.9, 0.9])

    def good_policy(h):
        return TanhNormal(torch.full((*h.shape[:-1], 3), 1.4722), torch.full((*h.shape[:-1], 3), 1e-3))  # tanh -> 0.9

    planner = _planner(max_horizon=1, iterations=1, num_samples=8)
    z, _ = planner.plan(QuadraticModel(target), good_policy, torch.zeros(1, 2), None, step=0, is_train=False)
    assert torch.allclose(z, target, atol=0.02)


def test_linear_decay():
    d = LinearDecay(0.5, 0.01, 100)
    assert d(0) == 0.5 and abs(d(50) - 0.255) < 1e-9 and d(100) == 0.01 and d(1000) == 0.01


def test_compiled_planner_matches_eager_and_sees_weight_updates():
    """rolf.compile_planner: the same plan as eager on a fixed seed, also after the model's weights change."""
    from rolf.networks.heads import ActionDecoder
    from rolf.networks.latent_model import LatentModel

    torch.manual_seed(0)
    model = LatentModel(ob_dim=4, action_dim=3, state_dim=8, num_units=16, num_layers=2, embed_dim=16)
    policy = ActionDecoder(8, 3, [16])
    cfg = dict(max_horizon=3, horizon_step=1, iterations=2, num_samples=32, num_policy_traj=4, num_elites=4)
    eager, compiled = CEMPlanner(CEMConfig(**cfg), 3), CEMPlanner(CEMConfig(**cfg, compile=True), 3)
    h = torch.randn(1, 8)
    for _ in range(2):
        plans = []
        for planner in (eager, compiled):
            torch.manual_seed(1)
            plans.append(planner.plan(model, policy, h, None, step=10, is_train=False))
        torch.testing.assert_close(plans[1][1], plans[0][1], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(plans[1][0], plans[0][0], rtol=1e-4, atol=1e-5)
        with torch.no_grad():  # an "update" between plans
            for p in model.parameters():
                p.add_(0.05 * torch.randn_like(p))
