import numpy as np
import pytest
import torch

from conftest import TINY, make_skimo_agent, skimo_pretrain_batch, skimo_rl_batch

PRETRAIN_KEYS = {"hl_loss", "ll_loss", "hl_actor_loss", "hl_model_loss", "ll_actor_loss", "ll_vae_kl_loss", "vae_kl_div",
                 "consistency_loss", "hl_recon_loss", "actor_std"}


@pytest.mark.parametrize("joint", [True, False])
def test_pretraining_reduces_the_loss_on_a_fixed_batch(joint):
    agent = make_skimo_agent(TINY + [f"rolf.joint_training={str(joint).lower()}"])
    batch = skimo_pretrain_batch(np.random.default_rng(0))
    first = agent.pretrain_step(batch)
    assert PRETRAIN_KEYS <= set(first)
    assert ({"joint_grad_norm"} if joint else {"hl_model_grad_norm", "hl_actor_grad_norm", "ll_actor_grad_norm"}) <= set(first)
    for _ in range(150):
        last = agent.pretrain_step(batch)
    # (the prior KL is not monotone here: its target, the posterior, sharpens while it is being fitted)
    for key in ("ll_actor_loss", "hl_recon_loss", "consistency_loss"):
        assert torch.isfinite(last[key])
        assert last[key] < first[key] * 0.7, (key, float(first[key]), float(last[key]))


def test_joint_training_sends_consistency_gradients_into_the_skill_encoder():
    batch = skimo_pretrain_batch(np.random.default_rng(0))
    grads = {}
    for joint in (True, False):
        agent = make_skimo_agent(TINY + [f"rolf.joint_training={str(joint).lower()}", "rolf.scalars.ll_actor=0",
                                         "rolf.scalars.encoder_kl=0", "rolf.scalars.hl_actor=0", "rolf.scalars.hl_model=0"])
        ob = agent.preprocess(torch.as_tensor(batch["ob"]))
        total, _ = agent.pretrain_losses(ob, torch.as_tensor(batch["ac"])[:, :-1])
        total.backward()
        grads[joint] = sum(p.grad.abs().sum().item() for p in agent.skill_agent.skill_encoder.parameters() if p.grad is not None)
    assert grads[True] > 0 and grads[False] == 0


def test_target_network_is_polyak_averaged_every_second_iteration():
    agent = make_skimo_agent(TINY)
    batch = skimo_pretrain_batch(np.random.default_rng(0))
    target0 = [p.clone() for p in agent.meta_agent.model_target.parameters()]
    agent.pretrain_step(batch)
    assert all(torch.equal(a, b) for a, b in zip(target0, agent.meta_agent.model_target.parameters()))
    online_before = [p.clone() for p in agent.meta_agent.model.parameters()]
    agent.pretrain_step(batch)
    expected = [0.99 * t + 0.01 * o for t, o in zip(target0, agent.meta_agent.model.parameters())]
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(expected, agent.meta_agent.model_target.parameters()))
    del online_before


def _rl_agent(extra=()):
    pre = make_skimo_agent(TINY)
    pre.pretrain_step(skimo_pretrain_batch(np.random.default_rng(0)))
    agent = make_skimo_agent(TINY + list(extra), phase="rl")
    agent.load_pretrained(pre.state_dict())
    return agent, pre


def test_pretrain_to_rl_handoff_copies_meta_agent_into_skill_prior():
    agent, pre = _rl_agent()
    for a, b, c in zip(agent.skill_prior.parameters(), agent.meta_agent.parameters(), pre.meta_agent.parameters()):
        assert torch.equal(a, b) and torch.equal(b, c)
    assert not any(p.requires_grad for p in agent.skill_prior.parameters())
    for a, b in zip(agent.skill_agent.parameters(), pre.skill_agent.parameters()):
        assert torch.equal(a, b)


RL_KEYS = {"model_loss", "consistency_loss", "reward_loss", "critic_loss", "value_target", "actor_loss", "skill_prior_loss",
           "actor_prior_div", "alpha", "model_grad_norm", "actor_grad_norm"}


def test_rl_update_losses_go_down_and_skill_agent_stays_frozen():
    agent, _ = _rl_agent()
    batch = skimo_rl_batch(np.random.default_rng(0))
    skill_before = [p.clone() for p in agent.skill_agent.parameters()]
    prior_before = [p.clone() for p in agent.skill_prior.parameters()]
    first = agent.rl_step(batch)
    assert RL_KEYS <= set(first)
    for _ in range(200):
        last = agent.rl_step(batch)
    assert last["reward_loss"] < 0.1 * first["reward_loss"]
    assert last["critic_loss"] < 0.5 * first["critic_loss"]
    assert last["consistency_loss"] < 0.5 * first["consistency_loss"]
    assert all(torch.equal(a, b) for a, b in zip(skill_before, agent.skill_agent.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(prior_before, agent.skill_prior.parameters()))


@pytest.mark.parametrize("target, direction", [(100.0, -1), (0.0, 1)])
def test_alpha_moves_towards_the_target_divergence(target, direction):
    agent, _ = _rl_agent([f"rolf.target_divergence={target}"])
    batch = skimo_rl_batch(np.random.default_rng(1))
    for _ in range(5):
        agent.rl_step(batch)
    # KL to the prior ~ small but > 0: alpha grows when KL > target (target 0), shrinks when KL < target (100)
    assert np.sign(agent.log_alpha.item()) == direction


def test_fixed_alpha_is_used_and_not_learned():
    agent, _ = _rl_agent(["rolf.fixed_alpha=0.5"])
    info = agent.rl_step(skimo_rl_batch(np.random.default_rng(0)))
    assert info["alpha"].item() == 0.5 and agent.log_alpha.item() == 0.0 and "alpha_loss" not in info


def test_acting_shapes_and_ranges():
    agent, _ = _rl_agent()
    ob = np.array([10.0, 24.0, 0.0, 0.0], np.float32)
    for step in (0, 10**6):
        agent.set_step(step)
        z, mean = agent.act_meta(ob, None, is_train=True)
        assert z.shape == (10,) and np.all(np.abs(z) <= 0.999)
        assert mean.shape == (1 if step == 0 else 10, 10)
    z, memory = agent.act_meta(ob, None, is_train=True, warm_up=True)
    assert z.shape == (10,) and memory is None
    a = agent.act_skill(ob, z)
    assert a.shape == (2,) and np.all(np.abs(a) < 1)


def test_sac_variant_trains_only_the_value_and_the_encoder_through_the_actor():
    agent, _ = _rl_agent(["rolf.sac=true", "rolf.n_skill=1", "rolf.use_cem=false", "rolf.prior_reg_critic=true"])
    batch = skimo_rl_batch(np.random.default_rng(0), n_skill=1)
    dyn_before = [p.clone() for p in agent.meta_agent.model.dynamics.parameters()]
    enc_before = [p.clone() for p in agent.meta_agent.model.encoder.parameters()]
    first = agent.rl_step(batch)
    for _ in range(30):
        last = agent.rl_step(batch)
    assert last["critic_loss"] < first["critic_loss"]
    assert all(torch.equal(a, b) for a, b in zip(dyn_before, agent.meta_agent.model.dynamics.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(enc_before, agent.meta_agent.model.encoder.parameters()))


def test_first_update_adds_the_warm_up_iterations_once_data_is_there():
    agent, _ = _rl_agent(["rolf.warm_up_step=100", "rolf.train_every=50", "rolf.train_iter=2", "rolf.n_skill=3"])
    assert agent.update() == {} and not agent._warm_up_done  # nothing sampleable yet: no update, flag kept
    rng = np.random.default_rng(0)
    m = 4
    agent.hl_buffer.add_episode({"ob": (rng.random((m + 1, 4)) * 40).astype(np.float32),
                                 "ac": rng.uniform(-1, 1, (m, 10)).astype(np.float32),
                                 "rew": np.zeros(m, np.float32), "done": np.r_[np.zeros(m - 1), 1.0].astype(np.float32)})
    agent.update()
    assert agent._update_iter == 2 + 100 * 2 // 50  # train_iter + warm_up_step * train_iter // train_every
    agent.update()
    assert agent._update_iter == 2 + 4 + 2


def test_skill_act_host_snapshot_matches_torch_and_follows_weight_updates():
    """act_skill runs on a numpy snapshot of the skill policy: it must equal the torch forward pass, and be rebuilt
    after an optimiser step or a state load changes the weights."""
    agent = make_skimo_agent(TINY)
    rng = np.random.default_rng(0)
    ob = np.array([10.0, 24.0, 0.3, -0.2], np.float32)
    z = rng.uniform(-1, 1, 10).astype(np.float32)

    def torch_act():
        with torch.no_grad():
            feat = agent.skill_agent.encoder(agent.preprocess(torch.as_tensor(ob)[None]))
            return agent.skill_agent.act(feat, torch.as_tensor(z)[None])[0].numpy()

    before = agent.act_skill(ob, z)
    np.testing.assert_allclose(before, torch_act(), atol=1e-6)
    agent.pretrain_step(skimo_pretrain_batch(rng))
    after = agent.act_skill(ob, z)
    assert np.abs(after - before).max() > 1e-4
    np.testing.assert_allclose(after, torch_act(), atol=1e-6)
    fresh = make_skimo_agent(TINY, seed=1)
    fresh.act_skill(ob, z)
    fresh.load_state_dict(agent.state_dict())
    np.testing.assert_allclose(fresh.act_skill(ob, z), after, atol=1e-6)


def _literal_actor_loss(agent, hd, h_prior):
    """The actor loss with the original's passes: the actor on L copies of h_0 (or on h_k), π and the prior
    evaluated afresh on h_0..L-1, the per-sample MC KL (reference for the shared-pass path)."""
    from rolf.networks.distributions import mc_kl_direct

    c, m = agent.c, agent.meta_agent
    big_l = hd.shape[1] - 1
    rho = c.rho ** torch.arange(big_l, dtype=hd.dtype)
    idx = torch.arange(big_l) if c.fix_actor_latent else torch.zeros(big_l, dtype=torch.long)
    states = hd[:, idx].transpose(0, 1)
    q1, q2 = m.model.q(states, m.actor(states).rsample())
    actor_loss = (-(rho[:, None] * torch.minimum(q1, q2)).sum(0)).clamp(-1e5, 1e5).mean()
    kl = mc_kl_direct(m.actor(hd[:, :big_l]), agent.skill_prior.actor(h_prior[:, :big_l]))
    kl = kl.clamp(-c.max_divergence, c.max_divergence).mean(0)
    prior_loss = (c.lambda_hl_prior * (rho * agent.alpha() * kl).sum()).clamp(-1e5, 1e5)
    return (actor_loss + prior_loss) / big_l


@pytest.mark.parametrize("fix_latent", [False, True])
def test_actor_loss_with_shared_passes_equals_the_literal_per_copy_passes(fix_latent):
    """rl_step runs π and the prior once over h_0..L and draws the L skills of the Q term from π(h_0) (the original
    runs the actor on L copies of h_0): same draws, same loss and actor gradient on a fixed seed."""
    agent, _ = _rl_agent([f"rolf.fix_actor_latent={str(fix_latent).lower()}"])
    ob = agent.preprocess(torch.as_tensor(skimo_rl_batch(np.random.default_rng(0))["ob"]))
    with torch.no_grad():
        hd = agent.meta_agent.model.encode(ob)
        h_prior = agent.skill_prior.model.encode(ob)
    params = list(agent.meta_agent.actor.parameters())
    losses, grads = [], []
    for shared in (True, False):
        torch.manual_seed(3)
        if shared:
            prior = agent.skill_prior.actor(h_prior)
            loss = agent.actor_loss(ob, hd, agent.meta_agent.actor(hd), prior)[0]
        else:
            loss = _literal_actor_loss(agent, hd, h_prior)
        losses.append(loss.detach())
        grads.append(torch.cat([g.flatten() for g in torch.autograd.grad(loss, params)]))
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-6)
    assert grads[0].abs().max() > 0


def test_skill_decoder_on_split_inputs_equals_the_concatenated_input():
    """Pre-training decodes actions with mode_concat(feat_t, z_k) (the first Linear split by columns): the same
    actions and gradients as mode(cat([feat_t, z_k])) with z_k repeated over the H steps."""
    pre = make_skimo_agent()
    actor = pre.skill_agent.actor
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(4, 3, 10, actor.fc.fcs[0].in_features - 10, generator=g, requires_grad=True)
    z = torch.randn(4, 3, 1, 10, generator=g, requires_grad=True)
    split = actor.mode_concat(feats, z)
    cat = actor.mode(torch.cat([feats, z.expand(-1, -1, 10, -1)], -1))
    torch.testing.assert_close(split, cat, rtol=1e-5, atol=1e-6)
    w = torch.randn(split.shape, generator=g)
    ga = torch.autograd.grad((split * w).sum(), [feats, z, actor.fc.fcs[0].weight])
    gb = torch.autograd.grad((cat * w).sum(), [feats, z, actor.fc.fcs[0].weight])
    for a, b in zip(ga, gb):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_compiled_rl_update_matches_eager_on_a_fixed_seed():
    """rolf.compile_update: the same losses and weights as the eager update over a few steps (same draws)."""
    batch = skimo_rl_batch(np.random.default_rng(0), n_skill=2)
    runs = []
    for compiled in (False, True):
        torch.manual_seed(0)
        agent, _ = _rl_agent(["rolf.n_skill=2", f"rolf.compile_update={str(compiled).lower()}"])
        torch.manual_seed(1)
        infos = [agent.rl_step(batch) for _ in range(3)]
        runs.append((infos, [p.detach().clone() for p in agent.meta_agent.parameters()]))
    (eager, w_eager), (comp, w_comp) = runs
    for a, b in zip(eager, comp):
        for k in ("model_loss", "critic_loss", "value_target", "actor_loss", "actor_prior_div"):
            torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-5)
    for a, b in zip(w_eager, w_comp):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)
