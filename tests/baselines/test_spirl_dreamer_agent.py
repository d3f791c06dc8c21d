"""SPiRL+Dreamer (baselines/spirl_dreamer_agent.py, configs spirl_dreamer_<env>): tiny SPiRL priors pre-trained
here by `spirl.pretrain`; every env through the shared hierarchical runner; the α·KL actor term, the action scale
of the stored skills, warm-up acting, imagination over 5 skills, checkpoints and the launcher."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import run
from baselines.spirl_agent import SPiRLPriorMissing
from baselines.spirl_dreamer_agent import SPiRLDreamerAgent, build_spirl_dreamer, prior_divergence
from envs import get_env_spec
from tests.baselines.helpers import agent_and_runner, build_spirl_family, assert_resumes_identically
from tests.conftest import compose_cfg

ENVS = ("maze", "kitchen", "calvin")
# size-only shrink (never semantic keys: horizon, action_scale, fixed_alpha, train_every, ... stay)
TINY = ["env.max_episode_steps=40", "rolf.deter_dim=16", "rolf.stoch_dim=4", "rolf.num_units=32",
        "rolf.encoder.embed_dim=16", "rolf.encoder.hidden_dims=[16]", "rolf.decoder.hidden_dims=[16]",
        "rolf.batch_size=4", "rolf.meta_batch_length=3", "rolf.kl_samples=20", "rolf.warm_up_step=20"]


def _cfg(env: str, prior: str, extra: list[str] = ()):
    return compose_cfg(f"spirl_dreamer_{env}", [f"rolf.prior_path={prior}", *TINY, *extra])


def _agent(env: str, prior: str, extra: list[str] = (), seed: int = 0) -> SPiRLDreamerAgent:
    return build_spirl_family(build_spirl_dreamer, f"spirl_dreamer_{env}", env, prior, TINY, extra, seed)



def test_config_values():
    for env, (deter, stoch, units, ev, delta) in {"maze": (200, 30, 400, 10_000, 10.0),
                                                  "kitchen": (100, 15, 128, 5000, 5.0),
                                                  "calvin": (100, 15, 128, 5000, 5.0)}.items():
        r = compose_cfg(f"spirl_dreamer_{env}").rolf
        assert (r.name, r.phase, r.deter_dim, r.stoch_dim, r.num_units, r.evaluate_every, r.target_divergence) == \
            ("spirl_dreamer", "rl", deter, stoch, units, ev, delta)
        assert r.prior_path.startswith(f"log/skill_prior_learning/{env}/")
        assert r.prior_path == compose_cfg("spirl_config", [f"env={env}"]).rolf.prior_path
        assert (r.skill_dim, r.skill_horizon, r.action_scale, r.horizon, r.meta_batch_length, r.batch_size) == \
            (10, 10, 2.0, 5, 15, 50)
        assert (r.train_every, r.train_iter, r.warm_up_step, r.max_global_step) == (50, 1, 5000, 2_000_000)
        assert (r.fixed_alpha, r.kl_samples, r.max_divergence, r.rl_discount, r.gae_lambda) == (0.01, 100, 100.0, 0.99, 0.95)
        assert (r.model_lr, r.actor_lr, r.critic_lr, r.grad_clip, r.free_nats, r.expl_noise) == \
            (6e-4, 8e-5, 8e-5, 100.0, 3.0, 0.3)
        assert r.warm_up_random_ll == (env == "maze") and r.reward_scale == 1.0
        assert not (r.fix_action_scale or r.fix_warm_up_ll or r.fix_ll_tanh or r.fix_kl_log_prob_clamp)


@pytest.mark.parametrize("env", ENVS)
def test_runs_on_env(env, priors, tmp_path):
    cfg = _cfg(env, priors[env])
    agent, runner = agent_and_runner(cfg, env, warm_up_step=20)
    spec = get_env_spec(env)
    assert isinstance(agent, SPiRLDreamerAgent) and agent.skill_horizon == 10 and agent.ac_dim == 10
    gen = runner.run(every_steps=int(cfg.rolf.train_every))
    rollout, _, n = next(gen)  # warm-up chunk (5 skills = 50 steps): store only
    agent.store_episode(rollout)
    step = n
    assert len(agent.buffer) == 1 and agent.buffer.get_episode(0)["ob"].shape == (5, spec.ob_dim)  # 4 skills + start
    for _ in range(2):  # two chunks with one update each
        rollout, _, n = next(gen)
        assert len(rollout["ac"]) == 5 and n == 50
        z = np.stack(rollout["ac"])
        assert np.abs(z).max() <= 2.0  # executed 2·(actor output in [−1, 1])
        agent.store_episode(rollout)
        step += n
        agent.set_step(step)
        infos = agent.update()
        assert infos and all(torch.isfinite(v).all() for v in infos.values())
        assert float(infos["alpha"]) == pytest.approx(0.01)
        assert float(infos["actor_reg"]) == pytest.approx(0.01 * float(infos["prior_div"]), rel=1e-5, abs=1e-7)
    info, obs = runner.run_episode(is_train=False)
    assert info["len"] == 40 and obs.shape == (41, spec.ob_dim)

    # checkpoint round-trip: a fresh agent loaded from the state acts and updates identically
    other = _agent(env, priors[env], seed=1)
    z1, _ = assert_resumes_identically(agent, other, obs[5], tmp_path)
    a1, a2 = agent.act_skill(obs[5], z1), other.act_skill(obs[5], z1)
    assert a1.shape == (spec.ac_dim,) and np.abs(a1).max() <= 1.0 and np.array_equal(a1, a2)


def _chunk(n: int, ob_dim: int, skill: float) -> dict[str, list]:
    return {"ob": [np.full(ob_dim, i, np.float32) for i in range(n)],
            "ob_next": [np.full(ob_dim, i + 1, np.float32) for i in range(n)],
            "ac": [np.full(10, skill, np.float32) for _ in range(n)], "rew": [1.0] * n, "done": [0.0] * n,
            "episode_end": [False] * (n - 1) + [True]}


@pytest.mark.parametrize("fix", [False, True])
def test_buffer_stores_executed_skill_unless_fixed(fix, priors):
    agent = _agent("maze", priors["maze"], [f"rolf.fix_action_scale={str(fix).lower()}"])
    ob = np.array([10.0, 20.0, 0.5, -0.5], np.float32)
    z, (_, prev) = agent.act_meta(ob, None, is_train=True)
    np.testing.assert_allclose(z, 2.0 * prev[0].numpy(), rtol=1e-6)  # executed 2·a, the filter keeps a
    assert np.abs(prev[0].numpy()).max() <= 1.0
    agent.store_episode(_chunk(4, 4, 1.5))
    ep = agent.buffer.get_episode(0)  # (o_k, z_{k-1}, r_{k-1}): zero skill first, whole episode (5 entries)
    assert ep["ac"].shape == (5, 10) and not ep["ac"][0].any()
    assert np.allclose(ep["ac"][1:], 0.75 if fix else 1.5)


def test_actor_loss_carries_the_alpha_kl_term(priors):
    agent = _agent("maze", priors["maze"], ["rolf.kl_samples=200"])
    rng = np.random.default_rng(0)
    batch = {"ob": torch.as_tensor(rng.normal(size=(4, 3, 4)) * 10, dtype=torch.float32),
             "ac": torch.zeros(4, 3, 10), "rew": torch.zeros(4, 3)}
    feat = torch.randn(4, 3, agent.core.feat_dim)
    with agent.core._training(agent.core.actor):
        torch.manual_seed(0)
        reg = agent.prior_reg(feat, batch)
        reg.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in agent.core.actor.parameters())
    p_mu, p_ls = agent.skill_model.prior_params(agent.states(batch["ob"]))
    torch.manual_seed(0)
    with torch.no_grad():
        div = prior_divergence(agent.core.actor(feat), p_mu, p_ls, 2.0, 200).clamp(-100, 100)
    assert float(reg.detach()) == pytest.approx(0.01 * float(div.mean()), rel=1e-5)
    # the estimator is the original's mc_kl: mean log π(x) − clamp(Σ log p(2x), −20, 10)
    pi = agent.core.actor(feat[:1, :1])
    torch.manual_seed(1)
    x = pi.rsample((5000,))
    ref = (pi.log_prob(x) - torch.distributions.Normal(p_mu[:1, :1], p_ls[:1, :1].exp()).log_prob(2 * x).sum(-1)
           .clamp(-20, 10)).mean(0)
    torch.manual_seed(1)
    assert torch.allclose(prior_divergence(pi, p_mu[:1, :1], p_ls[:1, :1], 2.0, 5000), ref, atol=1e-4)
    # learned α (fixed_alpha=null) moves toward target_divergence
    learned = _agent("maze", priors["maze"], ["rolf.fixed_alpha=null", "rolf.target_divergence=1000"])
    learned.prior_reg(feat, batch)
    assert float(learned.log_alpha.detach().exp()) < 0.01  # divergence below δ -> α shrinks


def test_imagination_over_five_skills(priors):
    agent = _agent("kitchen", priors["kitchen"])
    batch = {"ob": torch.randn(4, 3, 30), "ac": torch.rand(4, 3, 10) * 4 - 2, "rew": torch.randn(4, 3)}
    _, _, post = agent.core.model_loss(batch)
    feat, actions = agent.core.imagine(post)
    assert feat.shape == (5, 12, agent.core.feat_dim) and actions.shape == (5, 12, 10)
    assert actions.abs().max() <= 1.0  # imagination uses the actor's unscaled output
    returns, weights = agent.core.imagined_returns(feat)
    assert returns.shape == weights.shape == (4, 12)


@pytest.mark.parametrize("fix", [False, True])
def test_warm_up_samples_the_prior_and_random_maze_ll(fix, priors):
    agent = _agent("maze", priors["maze"], [f"rolf.fix_warm_up_ll={str(fix).lower()}"])
    ob = np.array([10.0, 20.0, 0.5, -0.5], np.float32)
    zs = np.stack([agent.act_meta(ob, "ignored", is_train=True, warm_up=True)[0] for _ in range(300)])
    p = agent.skill_model.prior_dist(agent.states(ob)[None])
    assert torch.allclose(torch.as_tensor(zs.mean(0)), p.loc[0], atol=4 * float(p.scale.max()) / np.sqrt(300) + 1e-3)
    assert agent.act_meta(ob, "ignored", is_train=True, warm_up=True)[1] is None  # filter reset, as the original
    decoded = agent.skill_model.decode_action(agent.states(ob)[None], torch.as_tensor(zs[:1]))[0].numpy()
    acts = np.stack([agent.act_skill(ob, zs[0]) for _ in range(3)])
    if fix:
        np.testing.assert_allclose(acts, np.broadcast_to(decoded, acts.shape), rtol=1e-6)
    else:  # uniformly random low-level actions during the maze warm-up
        assert not np.allclose(acts[0], acts[1]) and np.abs(acts).max() <= 1.0
    agent.act_meta(ob, None, is_train=True)  # after warm-up the decoder acts
    np.testing.assert_allclose(agent.act_skill(ob, zs[0]), decoded, rtol=1e-6)
    kitchen = _agent("kitchen", priors["kitchen"])  # other envs execute the decoder during warm-up too
    z, _ = kitchen.act_meta(np.zeros(30, np.float32), None, is_train=True, warm_up=True)
    assert not kitchen._random_ll and kitchen.act_skill(np.zeros(30, np.float32), z).shape == (9,)


def test_missing_prior_is_one_clear_line(tmp_path):
    missing = tmp_path / "no_prior_here"
    with pytest.raises(SPiRLPriorMissing) as e:
        _agent("maze", str(missing))
    msg = str(e.value)
    assert "\n" not in msg and str(missing) in msg and "python -m spirl.pretrain --env maze" in msg


def test_launcher_runs_and_resumes(priors, tmp_path):
    import json

    base = [f"rolf.prior_path={priors['maze']}", *TINY, f"log_root_dir={tmp_path}", "run_prefix=t",
            "rolf.log_every=50", "rolf.evaluate_every=100", "rolf.ckpt_every=100"]
    run.main(compose_cfg("spirl_dreamer_maze", base + ["rolf.max_global_step=150"]))
    run_dir = tmp_path / "maze.spirl_dreamer.rl.t.0"
    assert (run_dir / "ckpt" / "maze_ckpt_00000000150.pt").is_file()
    run.main(compose_cfg("spirl_dreamer_maze", base + ["rolf.max_global_step=200"]))
    steps = sorted(int(p.stem.split("_")[-1]) for p in (run_dir / "ckpt").glob("maze_ckpt_*.pt"))
    assert steps[-1] == 200
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert any("test_ep/len" in r for r in rows) and any("train_rl/prior_div" in r for r in rows)


def test_model_loss_decreases_on_a_fixed_toy_batch(priors):
    """The world model over skills learns a deterministic toy system (o_{t+1} = 0.9 o_t + 0.05 z_t[:4])."""
    agent = _agent("maze", priors["maze"])
    rng = np.random.default_rng(0)
    b, t = 4, 3
    ob = np.zeros((b, t, 4), np.float32)
    ac = np.zeros((b, t, 10), np.float32)
    ob[:, 0] = rng.normal(size=(b, 4))
    for k in range(1, t):
        ac[:, k] = rng.uniform(-1, 1, (b, 10))
        ob[:, k] = 0.9 * ob[:, k - 1] + 0.05 * ac[:, k, :4]
    batch = {"ob": ob, "ac": ac, "rew": -np.abs(ob).sum(-1)}
    first = float(agent.rl_step(batch)["recon_loss_ob"])
    for _ in range(80):
        last = float(agent.rl_step(batch)["recon_loss_ob"])
    assert last < first - 1.5, (first, last)  # a Gaussian NLL (nats per step), so a difference, not a ratio
