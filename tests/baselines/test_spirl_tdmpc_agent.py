"""SPiRL+TD-MPC (baselines/spirl_tdmpc_agent.py, configs spirl_tdmpc_<env>): tiny SPiRL priors pre-trained here by
`spirl.pretrain`, every env through the shared hierarchical runner, and the pieces that differ from flat TD-MPC
(skill scale, warm-up, Dreamer-convention meta buffer, prior-KL actor term, fix flags) on fixed batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from baselines.spirl_agent import SPiRLPriorMissing
from baselines.spirl_dreamer_agent import prior_divergence
from baselines.spirl_tdmpc_agent import SPiRLTDMPCAgent, build_spirl_tdmpc
from baselines.tdmpc_agent import TDMPCAgent
from envs import get_env_spec
from tests.baselines.helpers import agent_and_runner, assert_losses_halve, build_spirl_family
from tests.conftest import compose_cfg

ENVS = ("maze", "kitchen", "calvin")
# size-only shrink (never semantic keys)
TINY = ["env.max_episode_steps=40", "rolf.state_dim=16", "rolf.num_units=32", "rolf.encoder.embed_dim=32",
        "rolf.batch_size=16", "rolf.num_sample_traj=16", "rolf.num_policy_traj=4", "rolf.num_elites=4",
        "rolf.cem_iter=2", "rolf.horizon=3", "rolf.meta_batch_length=3", "rolf.train_iter=2", "rolf.train_every=50",
        "rolf.warm_up_step=60", "rolf.kl_samples=8"]
FIXES = ("fix_meta_off_by_one", "fix_action_scale", "fix_prior_raw_ob", "fix_kl_once", "fix_warm_up_iters",
         "fix_batch_size", "fix_warm_up_ll", "fix_ll_tanh", "fix_kl_log_prob_clamp", "fix_done_mask")


def _cfg(env: str, prior: str, extra: list[str] = ()):
    return compose_cfg(f"spirl_tdmpc_{env}", [f"rolf.prior_path={prior}", *TINY, *extra])


def _agent(env: str, prior: str, extra: list[str] = (), seed: int = 0) -> SPiRLTDMPCAgent:
    return build_spirl_family(build_spirl_tdmpc, f"spirl_tdmpc_{env}", env, prior, TINY, extra, seed)



def _toy_batch(agent: SPiRLTDMPCAgent, b: int = 16, t: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
    """Fixed Dreamer-convention sequences (o_k, z_{k−1}, r_{k−1}, done_k) of a deterministic linear system with
    reward −‖o‖ (learnable); maze-scale positions so the preprocessing matters."""
    rng = np.random.default_rng(seed)
    ob = np.zeros((b, t, agent.ob_dim), np.float32)
    ob[:, 0] = rng.normal(size=(b, agent.ob_dim)) * 5 + 20
    ac = rng.uniform(-2, 2, (b, t, agent.ac_dim)).astype(np.float32)
    for k in range(1, t):
        ob[:, k] = 0.9 * ob[:, k - 1]
        ob[:, k, :2] += 0.5 * ac[:, k, :2]
    rew = np.concatenate([np.zeros((b, 1)), -np.linalg.norm(ob[:, :-1], axis=-1) / 10], 1).astype(np.float32)
    return {"ob": ob, "ac": ac, "rew": rew, "done": np.zeros((b, t), np.float32)}


def test_config_values():
    for env, (delta, rand_ll) in {"maze": (1.0, True), "kitchen": (5.0, False), "calvin": (5.0, False)}.items():
        r = compose_cfg(f"spirl_tdmpc_{env}").rolf
        assert (r.name, r.phase, r.target_divergence, r.warm_up_random_ll) == ("spirl_tdmpc", "rl", delta, rand_ll)
        assert r.prior_path == compose_cfg("spirl_config", [f"env={env}"]).rolf.prior_path
        assert (r.skill_dim, r.skill_horizon, r.horizon, r.meta_batch_length, r.batch_size, r.meta_batch_size) == \
            (10, 10, 5, 5, 128, 256)
        assert (r.state_dim, r.num_units, r.num_layers, r.train_every, r.train_iter, r.warm_up_step) == \
            (50, 512, 2, 500, 500, 5000)
        assert (r.fixed_alpha, r.model_lr, r.actor_lr, r.grad_clip, r.evaluate_every, r.action_scale) == \
            (1.0, 1e-3, 1e-3, 10, 5000, 2.0)
        assert (r.max_std, r.min_std, r.horizon_step, r.std_step, r.kl_samples, r.max_divergence) == \
            (0.5, 0.05, 25000, 25000, 100, 100.0)
        assert not any(r[k] for k in FIXES)


@pytest.mark.parametrize("env", ENVS)
def test_runs_on_env(env, priors, tmp_path):
    cfg = _cfg(env, priors[env])
    agent, runner = agent_and_runner(cfg, env, warm_up_step=60)
    assert isinstance(agent, SPiRLTDMPCAgent) and agent.skill_horizon == 10 and agent.ac_dim == 10
    gen = runner.run(every_steps=50)
    rollout, _, n = next(gen)  # warm-up chunk: store only
    agent.store_episode(rollout)
    step = n
    assert len(agent.buffer) == 1  # a 40-step episode = 4 skills = 5 Dreamer entries
    ep = agent.buffer.get_episode(0)
    assert ep["ob"].shape == (5, agent.ob_dim) and not ep["ac"][0].any() and ep["rew"][0] == 0
    for _ in range(2):  # two chunks with updates
        rollout, _, n = next(gen)
        agent.store_episode(rollout)
        step += n
        agent.set_step(step)
        infos = agent.update()
        assert infos and all(torch.isfinite(v).all() for v in infos.values())
        assert float(infos["alpha"]) == 1.0 and "prior_kl" in infos
    assert agent._update_iter == 4  # train_iter per call, no extra warm-up iterations (the original)
    z = np.stack(rollout["ac"])
    assert np.abs(z).max() <= 2.0 and np.abs(z).max() > 1.0  # executed = 2 * plan
    info, obs = runner.run_episode(is_train=False)
    assert info["len"] == 40 and len(obs) == 41
    assert agent.value_of(obs[:7]).shape == (7,)

    # checkpoint round-trip: a fresh agent loaded from the state acts identically
    torch.save(agent.state_dict(), tmp_path / "a.pt")
    other = _agent(env, priors[env], seed=1)
    other.load_state_dict(torch.load(tmp_path / "a.pt", weights_only=True))
    other.set_step(agent.step)
    torch.manual_seed(3)
    z1, _ = agent.act_meta(obs[5], None, is_train=False)
    torch.manual_seed(3)
    z2, _ = other.act_meta(obs[5], None, is_train=False)
    np.testing.assert_array_equal(z1, z2)
    assert other.buffer.num_transitions >= agent.buffer.num_transitions  # + the open episode, stored cut


def test_actor_loss_adds_alpha_kl_per_latent_and_alpha_is_fixed(priors):
    for fix, terms in (("false", 3), ("true", 1)):
        agent = _agent("maze", priors["maze"], [f"rolf.fix_kl_once={fix}"])
        batch = _toy_batch(agent)
        agent._kl_inputs = agent.kl_inputs(torch.as_tensor(batch["ob"]))
        hs = torch.randn(16, 3, agent.c.state_dim)
        torch.manual_seed(1)
        q_only = TDMPCAgent.actor_loss(agent, hs)
        torch.manual_seed(1)
        total = agent.actor_loss(hs)
        kl = agent._kl_info["prior_kl"]
        assert torch.allclose(total - q_only, terms * 1.0 * kl, rtol=1e-4, atol=1e-4)
        assert abs(float(kl)) > 1e-3
    # alpha stays 1 through updates; the KL reaches the actor's gradient
    agent = _agent("maze", priors["maze"])
    for _ in range(3):
        info = agent.rl_step(_toy_batch(agent))
        assert float(info["alpha"]) == 1.0
    h, p_mu, p_ls = agent.kl_inputs(torch.as_tensor(_toy_batch(agent)["ob"]))
    prior_divergence(agent.actor(h), p_mu, p_ls, 2.0, 4).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in agent.actor.parameters())


def test_executed_skill_is_twice_the_plan_clipped(priors, monkeypatch):
    agent = _agent("maze", priors["maze"])
    agent.set_step(10_000)
    plan = torch.tensor([0.3, -1.0, 1.0, 0.7, -0.2, 1.2, -1.3, 0.0, 0.5, -0.5])
    monkeypatch.setattr(agent.planner, "plan", lambda *a, **k: (plan, torch.zeros(1, 10)))
    z, _ = agent.act_meta(np.array([10.0, 20.0, 0.0, 0.0], np.float32), None, is_train=True)
    np.testing.assert_allclose(z, np.clip(2 * plan.numpy(), -2, 2))
    monkeypatch.undo()
    zs = np.stack([agent.act_meta(np.array([10.0, 20.0, 0.0, 0.0], np.float32), None, True)[0] for _ in range(5)])
    assert np.abs(zs).max() <= 2.0


def test_warm_up_samples_the_prior_and_random_ll_in_maze(priors):
    ob = np.array([10.0, 20.0, 0.5, -0.5], np.float32)
    for fix, random_ll in (("false", True), ("true", False)):
        agent = _agent("maze", priors["maze"], [f"rolf.fix_warm_up_ll={fix}"])
        zs = np.stack([agent.act_meta(ob, None, is_train=True, warm_up=True)[0] for _ in range(200)])
        p = agent.skills.model.prior_dist(torch.as_tensor(ob)[None])  # raw state, no x2
        assert torch.allclose(torch.as_tensor(zs).mean(0), p.loc[0], atol=4 * float(p.scale.max()) / 14 + 0.02)
        decoded = agent.skills.act_skill(ob, zs[0])
        a1, a2 = agent.act_skill(ob, zs[0]), agent.act_skill(ob, zs[0])
        assert (not np.allclose(a1, a2)) == random_ll and np.allclose(a1, decoded) != random_ll
        agent.act_meta(ob, None, is_train=True)  # after warm-up: the decoder executes the skill
        np.testing.assert_allclose(agent.act_skill(ob, zs[0]), decoded)
    kitchen = _agent("kitchen", priors["kitchen"])  # random low-level actions are the maze's only
    ob = np.zeros(30, np.float32)
    kitchen.act_meta(ob, None, is_train=True, warm_up=True)
    np.testing.assert_allclose(kitchen.act_skill(ob, np.ones(10, np.float32)),
                               kitchen.skills.act_skill(ob, np.ones(10, np.float32)))


def test_fix_flags_change_behaviour(priors):
    agent = _agent("maze", priors["maze"])
    fixed = _agent("maze", priors["maze"], [f"rolf.{k}=true" for k in FIXES])
    batch = _toy_batch(agent)
    # off-by-one: o_t with the skill/reward that ended in o_t (entry t) vs the one taken at o_t (entry t + 1)
    tb, tf = agent.transition_batch(batch), fixed.transition_batch(batch)
    np.testing.assert_array_equal(tb["ac"], batch["ac"][:, :2])
    np.testing.assert_array_equal(tf["ac"], batch["ac"][:, 1:])
    np.testing.assert_array_equal(tf["rew"], batch["rew"][:, 1:])
    np.testing.assert_array_equal(tb["done"], batch["done"][:, 1:])  # done of o_{t+1} (masks only with fix_done_mask)
    assert tb["ob"].shape[1] == tb["ac"].shape[1] + 1
    # action scale: the buffer holds the executed 2z, or the planner's z
    ob = [np.full(4, 20.0, np.float32)] * 2
    rollout = {"ob": ob, "ob_next": ob, "ac": [np.full(10, 1.6, np.float32)] * 2, "rew": [1.0, 2.0],
               "done": [0.0, 1.0], "episode_end": [False, True]}
    for a, scale in ((agent, 1.6), (fixed, 0.8)):
        a.store_episode(rollout)
        ep = a.buffer.get_episode(0)
        np.testing.assert_allclose(ep["ac"][1:], scale)
        np.testing.assert_allclose(ep["rew"], [0.0, 1.0, 2.0])
    # prior input: maze-normalised states (the original) or raw ones
    s = torch.as_tensor(batch["ob"])
    p = agent.skills.model.prior_params
    torch.testing.assert_close(agent.kl_inputs(s)[1], p(agent.preprocess(s))[0])
    torch.testing.assert_close(fixed.kl_inputs(s)[1], p(s)[0])
    # the prior's log-density clamped to [-20, 10] in the KL (spirl's), or not: a prior far from the actor
    fixed.actor.load_state_dict(agent.actor.state_dict())
    h = torch.randn(16, 3, agent.c.state_dim)
    kls = []
    for a in (agent, fixed):
        a._kl_inputs = (h, torch.full((16, 3, 10), 5.0), torch.full((16, 3, 10), -2.0))
        torch.manual_seed(2)
        a.actor_loss(h)
        kls.append(float(a._kl_info["prior_kl"]))
    assert kls[1] > kls[0] + 10
    # the first update's extra warm-up iterations (60 * 2 // 50 = 2), the batch size, the ll tanh
    assert (agent._warm_up_done, fixed._warm_up_done, agent.c.batch_size, fixed.c.batch_size) == (True, False, 16, 256)
    fixed.buffer.add_episode({k: v[0] for k, v in batch.items()})
    fixed.update()
    assert fixed._update_iter == 2 + 2
    z = np.full(10, 1.5, np.float32)
    raw = agent.skills.model.decoder(torch.cat([torch.as_tensor(ob[0])[None], torch.as_tensor(z)[None]], -1))[0]
    np.testing.assert_allclose(fixed.act_skill(ob[0], z), raw.clamp(-1, 1).detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(agent.act_skill(ob[0], z), torch.tanh(raw).detach().numpy(), rtol=1e-6)


def test_model_loss_decreases_on_a_fixed_toy_batch(priors):
    agent = _agent("maze", priors["maze"], ["rolf.model_lr=3e-3"])
    assert_losses_halve(agent, _toy_batch(agent), ("model_loss", "consistency_loss", "reward_loss"))


def test_launcher_trains_and_resumes(priors, tmp_path):
    import json

    import run

    base = [f"rolf.prior_path={priors['maze']}", *TINY, "env.max_episode_steps=50", f"log_root_dir={tmp_path}",
            "run_prefix=t", "rolf.log_every=50", "rolf.evaluate_every=100", "rolf.ckpt_every=100"]
    run.main(compose_cfg("spirl_tdmpc_maze", base + ["rolf.max_global_step=150"]))
    run_dir = tmp_path / "maze.spirl_tdmpc.rl.t.0"
    run.main(compose_cfg("spirl_tdmpc_maze", base + ["rolf.max_global_step=200"]))
    steps = sorted(int(p.stem.split("_")[-1]) for p in (run_dir / "ckpt").glob("maze_ckpt_*.pt"))
    assert steps[-1] == 200
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert any("test_ep/len" in r for r in rows) and any("train_rl/prior_kl" in r for r in rows)


def test_missing_prior_is_one_clear_line(tmp_path):
    missing = tmp_path / "no_prior_here"
    with pytest.raises(SPiRLPriorMissing) as e:
        build_spirl_tdmpc(_cfg("maze", str(missing)), get_env_spec("maze"), torch.device("cpu"),
                          np.random.default_rng(0))
    msg = str(e.value)
    assert "\n" not in msg and str(missing) in msg and "python -m spirl.pretrain --env maze" in msg
