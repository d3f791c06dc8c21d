"""The shared TD-MPC latent losses and the frozen-weight critic, against their straightforward forms."""

import pytest
import torch

from rolf.networks.latent_model import LatentModel, rollout_losses


def _literal_rollout_losses(model, h0, actions, h_target, rew, y, rho, critic_input=None):
    """The original's per-step loop: Q(ĥ_k, a_k) and R(ĥ_k, a_k) evaluated inside the rollout, k by k."""
    x = h0
    zero = torch.zeros(h0.shape[0])
    cons, rew_l, val_l = zero, zero, zero
    for k in range(actions.shape[1]):
        q1, q2 = model.q(x if critic_input is None else critic_input(k, x), actions[:, k])
        x_in = torch.cat([x, actions[:, k]], -1)
        x, r_hat = model.dynamics(x_in), model.reward(x_in)[0]
        w = rho**k
        cons = cons + w * ((x - h_target[:, k]) ** 2).mean(-1)
        rew_l = rew_l + w * (r_hat - rew[:, k]) ** 2
        val_l = val_l + w * ((q1 - y[:, k]) ** 2 + (q2 - y[:, k]) ** 2)
    return cons, rew_l, val_l


def _setup(b=6, big_l=4, d_o=5, d_a=3, seed=0):
    torch.manual_seed(seed)
    model = LatentModel(d_o, d_a, state_dim=8, num_units=16, num_layers=2, embed_dim=16)
    ob = torch.randn(b, big_l + 1, d_o)
    data = {"actions": torch.rand(b, big_l, d_a) * 2 - 1, "h_target": torch.randn(b, big_l, 8),
            "rew": torch.randn(b, big_l), "y": torch.randn(b, big_l)}
    return model, ob, data


@pytest.mark.parametrize("obs_as_critic_input", [False, True])
def test_batched_rollout_losses_equal_the_per_step_loop(obs_as_critic_input):
    model, ob, d = _setup()
    if obs_as_critic_input:  # SkiMo+SAC: the critic reads the observation o_k instead of ĥ_k
        model = LatentModel(5, 3, state_dim=8, num_units=16, num_layers=2, embed_dim=16, critic_in_dim=5 + 3)
        literal_input, batched_input = (lambda k, x: ob[:, k]), (lambda x: ob[:, :-1])
    else:
        literal_input = batched_input = None
    h0 = model.encode(ob[:, 0])
    got = rollout_losses(model, h0, d["actions"], d["h_target"], d["rew"], d["y"], 0.5, batched_input)
    want = _literal_rollout_losses(model, h0, d["actions"], d["h_target"], d["rew"], d["y"], 0.5, literal_input)
    params = list(model.parameters())
    for g, w in zip(got[:3], want):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6)
    g_grads = torch.autograd.grad(sum(t.sum() for t in got[:3]), params, retain_graph=True)  # h0 is shared
    w_grads = torch.autograd.grad(sum(t.sum() for t in want), params)
    for g, w in zip(g_grads, w_grads):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-6)
    hs = got[3]  # ĥ_0..ĥ_L, the dynamics rolled open-loop
    assert hs.shape == (6, 5, 8)
    torch.testing.assert_close(hs[:, 0], h0)
    torch.testing.assert_close(hs[:, 2], model.next(model.next(h0, d["actions"][:, 0]), d["actions"][:, 1]))


def test_q_frozen_has_the_values_and_input_gradients_of_q_and_no_weight_gradients():
    model, _, d = _setup()
    h = torch.randn(6, 8, requires_grad=True)
    a = d["actions"][:, 0].clone().requires_grad_()
    q = model.q(h, a)
    qf = model.q_frozen(h, a)
    for x, y in zip(q, qf):
        torch.testing.assert_close(x, y)
    want = torch.autograd.grad(sum(t.sum() for t in q), (h, a))
    sum(t.sum() for t in qf).backward()
    torch.testing.assert_close(h.grad, want[0])
    torch.testing.assert_close(a.grad, want[1])
    assert all(p.grad is None for p in model.critic.parameters())
