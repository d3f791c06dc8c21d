import copy
import dataclasses

import pytest
import torch
from omegaconf import OmegaConf

from rolf.dreamer import DreamerConfig, DreamerCore, lambda_return
from rolf.networks.rssm import RSSM, RSSMState, gaussian_kl

OB, AC, B, T = 3, 2, 4, 8
TINY = DreamerConfig(deter_dim=16, stoch_dim=4, num_units=32, embed_dim=16, encoder_hidden=(16,), decoder_hidden=(16,),
                     horizon=5)


def make_core(seed: int = 0, **kw) -> DreamerCore:
    torch.manual_seed(seed)
    return DreamerCore(dataclasses.replace(TINY, **kw), OB, AC)


def toy_batch() -> dict[str, torch.Tensor]:
    """Deterministic sequences: a phase per sequence, obs on a circle, actions and rewards functions of time."""
    t = torch.arange(T, dtype=torch.float32)[None] + torch.arange(B, dtype=torch.float32)[:, None]  # (B, T)
    ob = torch.stack([torch.sin(t / 3), torch.cos(t / 3), 0.1 * (t % 4)], -1)
    ac = torch.stack([torch.sin(t / 2), torch.cos(t / 5)], -1) * 0.9
    return {"ob": ob, "ac": ac, "rew": ob[..., 0]}


def params(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def same(module: torch.nn.Module, before: list[torch.Tensor]) -> bool:
    return all(torch.equal(p, q) for p, q in zip(module.parameters(), before))


def test_observe_and_imagine_shapes():
    core = make_core()
    dyn = core.model.dynamics
    batch = toy_batch()
    post, prior = dyn.observe(core.model.encoder(batch["ob"]), batch["ac"])
    for s in (post, prior):
        assert s.mean.shape == s.std.shape == s.stoch.shape == (B, T, 4) and s.deter.shape == (B, T, 16)
        assert (s.std > 0.1).all()
    assert torch.equal(post.deter, prior.deter)  # both come from the same GRU step
    assert dyn.get_feat(post).shape == (B, T, 20) == (B, T, core.feat_dim)
    feat, actions = core.imagine(post, horizon=6)
    assert feat.shape == (6, B * T, 20) and actions.shape == (6, B * T, AC)
    assert actions.abs().max() <= 1
    assert dyn.imagine(batch["ac"][:, :3], RSSMState(*(x[:, -1] for x in post))).deter.shape == (B, 3, 16)


def test_lambda_return_hand_computed():
    reward, value = torch.tensor([1.0, 2.0]), torch.tensor([3.0, 4.0])
    # R1 = 2 + 0.5 * 5 = 4.5;  R0 = 1 + 0.5 * (0.5 * 4 + 0.5 * 4.5) = 3.125 (value[0] unused)
    out = lambda_return(reward, value, torch.tensor(5.0), 0.5, 0.5)
    assert out.tolist() == pytest.approx([3.125, 4.5])
    # λ = 1: discounted Monte Carlo return with the bootstrap; λ = 0: one-step targets
    assert lambda_return(reward, value, torch.tensor(5.0), 0.5, 1.0).tolist() == pytest.approx([1 + 0.5 * 2 + 0.25 * 5, 4.5])
    assert lambda_return(reward, value, torch.tensor(5.0), 0.5, 0.0).tolist() == pytest.approx([1 + 0.5 * 4, 4.5])


def test_imagined_returns_use_first_h_minus_1_steps_and_gamma_weights():
    core = make_core()
    feat = torch.randn(5, 7, core.feat_dim)
    returns, weights = core.imagined_returns(feat)
    assert returns.shape == weights.shape == (4, 7)
    g = core.c.rl_discount
    assert weights[:, 0].tolist() == pytest.approx([1, g, g**2, g**3])
    with torch.no_grad():
        r, v = core.model.reward(feat).squeeze(-1), core.critic(feat).squeeze(-1)
    assert torch.allclose(returns, lambda_return(r[:-1], v[:-1], v[-1], g, core.c.gae_lambda))


def test_gaussian_kl_matches_torch():
    torch.manual_seed(0)
    pm, qm, ps, qs = torch.randn(5, 4), torch.randn(5, 4), torch.rand(5, 4) + 0.1, torch.rand(5, 4) + 0.1
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(pm, ps), torch.distributions.Normal(qm, qs)).sum(-1)
    assert torch.allclose(gaussian_kl(pm, ps, qm, qs), ref, atol=1e-5)


@pytest.mark.parametrize("free_nats", [0.0, 1e3])
def test_free_nats_clamp_the_mean_kl(free_nats):
    core = make_core(free_nats=free_nats)
    core.model.requires_grad_(True)
    loss, info, _ = core.model_loss(toy_batch())
    assert info["kl_loss"].item() == pytest.approx(max(info["kl_div"].item(), free_nats))
    assert loss.item() == pytest.approx((info["kl_loss"] + info["recon_loss_ob"] + info["reward_loss"]).item())
    loss.backward()
    prior_head_grad = sum(p.grad.abs().sum() for p in core.model.dynamics.imagine_fc.parameters())
    assert (prior_head_grad == 0) == (free_nats > 0)  # the prior head only enters through the (clamped) KL


def test_model_loss_decreases_on_a_fixed_toy_batch():
    core = make_core(model_lr=3e-3, free_nats=0.0)
    batch = toy_batch()
    losses = [core.update_model(batch)[0]["model_loss"].item() for _ in range(30)]
    assert sum(losses[-3:]) / 3 < 0.7 * sum(losses[:3]) / 3, losses


def test_critic_loss_decreases():
    core = make_core(critic_lr=1e-3)
    torch.manual_seed(1)
    feat, returns = torch.randn(5, 16, core.feat_dim), torch.randn(4, 16) + 2.0
    weights = torch.ones(4, 16)
    losses = [core.update_critic(feat, returns, weights)["critic_loss"].item() for _ in range(30)]
    assert losses[-1] < losses[0] - 0.5, losses


def test_each_stage_changes_only_its_own_parameters():
    core = make_core()
    batch = toy_batch()
    mods = {"model": core.model, "actor": core.actor, "critic": core.critic}
    snap = {k: params(m) for k, m in mods.items()}
    _, post = core.update_model(batch)
    assert not same(core.model, snap["model"]) and same(core.actor, snap["actor"]) and same(core.critic, snap["critic"])
    assert all(p.grad is None for p in [*core.actor.parameters(), *core.critic.parameters()])
    snap = {k: params(m) for k, m in mods.items()}
    for o in core.optims.values():
        o.zero_grad()
    _, feat, returns, weights = core.update_actor(post)
    assert same(core.model, snap["model"]) and not same(core.actor, snap["actor"]) and same(core.critic, snap["critic"])
    assert all(p.grad is None for p in [*core.model.parameters(), *core.critic.parameters()])
    assert feat.shape == (TINY.horizon, B * T, core.feat_dim) and returns.shape == (TINY.horizon - 1, B * T)
    snap = {k: params(m) for k, m in mods.items()}
    core.update_critic(feat, returns, weights)
    assert same(core.model, snap["model"]) and same(core.actor, snap["actor"])
    assert not same(core.critic, snap["critic"])
    assert not any(p.requires_grad for p in core.parameters())  # frozen again outside the stages


def test_full_update_and_actor_reg_hook():
    core = make_core()
    seen = {}

    def reg(post_feat, batch):
        seen["shape"] = post_feat.shape
        return 0.5 * core.actor(post_feat).loc.pow(2).mean()

    info = core.update({k: v.numpy() for k, v in toy_batch().items()}, actor_reg_fn=reg)
    assert seen["shape"] == (B, T, core.feat_dim)
    assert {"model_loss", "kl_loss", "actor_loss", "actor_reg", "critic_loss", "model_grad_norm"} <= set(info)
    assert all(isinstance(v, float) and v == v for v in info.values())
    assert info["actor_reg"] > 0


def test_act_shapes_noise_and_eval_determinism():
    core = make_core()
    ob = torch.randn(3, OB)
    a, (latent, prev) = core.act(ob, None, explore=True)
    assert a.shape == (3, AC) and a.abs().max() <= 1 and torch.equal(prev, a)
    assert latent.deter.shape == (3, 16) and latent.stoch.shape == (3, 4)
    a2, state2 = core.act(ob, (latent, prev), explore=True)  # feeding the state back
    assert a2.shape == (3, AC)
    torch.manual_seed(5)
    e1, (lat1, _) = core.act(ob, (latent, prev), explore=False)
    torch.manual_seed(5)
    e2, _ = core.act(ob, (latent, prev), explore=False)
    assert torch.equal(e1, e2)
    assert torch.allclose(e1, core.actor.mode(RSSM.get_feat(lat1)))  # tanh(μ), no noise


def test_state_dict_round_trip():
    core = make_core(seed=0)
    core.update(toy_batch())
    other = make_core(seed=1)
    other.load_state_dict(copy.deepcopy(core.state_dict()))
    other.load_optim_state_dict(copy.deepcopy(core.optim_state_dict()))
    ob = torch.randn(2, OB)
    outs = []
    for m in (core, other):
        torch.manual_seed(3)
        outs.append((m.act(ob, None, explore=True)[0], m.update(toy_batch())["critic_loss"]))
    assert torch.equal(outs[0][0], outs[1][0]) and outs[0][1] == outs[1][1]


def test_config_from_rolf_keys_and_defaults():
    r = OmegaConf.create({"deter_dim": 100, "stoch_dim": 15, "num_units": 128, "horizon": 5, "model_lr": "6e-4",
                          "encoder": {"embed_dim": 64, "hidden_dims": [32, 32]}, "pcont": False})
    c = DreamerConfig.from_rolf(r)
    assert (c.deter_dim, c.stoch_dim, c.num_units, c.horizon, c.embed_dim, c.encoder_hidden) == (100, 15, 128, 5, 64, (32, 32))
    assert c.model_lr == 6e-4 and c.free_nats == 3.0 and c.decoder_hidden == (256, 256) and c.rssm_hidden is None
    core = DreamerCore(dataclasses.replace(c, num_units=8), OB, AC)
    assert core.model.dynamics.cell.hidden_size == 100 and core.model.dynamics.cell.input_size == 100
