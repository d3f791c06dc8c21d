"""SPiRL downstream RL (baselines/spirl_agent.py, config spirl_config): tiny priors pre-trained here by
`spirl.pretrain`, every env through the shared hierarchical runner, and the SAC pieces on fixed batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from baselines import rl_trainer
from baselines.spirl_agent import SPiRLAgent, SPiRLPriorMissing, build_spirl
from envs import env_kwargs, get_env_spec
from spirl.pretrain import kitchen_goal
from tests.baselines.helpers import assert_losses_halve, assert_resumes_identically, make_runner
from tests.conftest import compose_cfg

ENVS = ("maze", "kitchen", "calvin")
# size-only shrink (never semantic keys)
TINY = ["env.max_episode_steps=40", "rolf.batch_size=16", "rolf.critic_units=32", "rolf.buffer_size=1000"]


def _cfg(env: str, prior: str, extra: list[str] = ()):
    return compose_cfg("spirl_config", [f"env={env}", f"rolf.prior_path={prior}", *TINY, *extra])


def _agent(env: str, prior: str, extra: list[str] = (), seed: int = 0) -> SPiRLAgent:
    torch.manual_seed(seed)
    return build_spirl(_cfg(env, prior, extra), get_env_spec(env), torch.device("cpu"), np.random.default_rng(seed))


def _toy_batch(agent: SPiRLAgent, b: int = 32, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    ob = rng.normal(size=(b, agent.state_dim)).astype(np.float32)
    return {"ob": ob, "ac": rng.uniform(-2, 2, (b, agent.skill_dim)).astype(np.float32),
            "rew": ob[:, 0].copy(), "ob_next": (0.9 * ob).astype(np.float32), "done": (rng.random(b) < 0.2).astype(np.float32)}


def test_config_values():
    for env, (bs, cap, layers, delta) in {"maze": (128, 100_000, 2, 10.0), "kitchen": (256, 1_000_000, 5, 5.0),
                                          "calvin": (256, 1_000_000, 5, 5.0)}.items():
        r = compose_cfg("spirl_config", [f"env={env}"]).rolf
        assert (r.name, r.phase, r.batch_size, r.buffer_size, r.critic_layers, r.target_divergence) == \
            ("spirl", "rl", bs, cap, layers, delta)
        assert r.prior_path.startswith(f"log/skill_prior_learning/{env}/")
        assert (r.critic_units, r.max_action_range, r.kl_samples, r.max_divergence, r.policy_lr, r.critic_lr,
                r.alpha_lr, r.rl_discount, r.target_update_factor) == (256, 2.0, 10, 100.0, 3e-4, 3e-4, 3e-4, 0.99, 0.005)
        assert (r.train_every, r.train_iter, r.warm_up_step, r.max_global_step) == (10, 1, 50_000, 2_050_000)
        assert (r.log_every, r.evaluate_every, r.ckpt_every) == (100, 5000, 100_000)
        assert not (r.fix_ll_tanh or r.fix_timeout_bootstrap or r.fix_kl_log_prob_clamp)


@pytest.mark.parametrize("env", ENVS)
def test_runs_on_env(env, priors, tmp_path, monkeypatch):
    torch.manual_seed(0)
    cfg = _cfg(env, priors[env])
    spec = get_env_spec(env)
    agent = rl_trainer.build_method_agent(cfg, spec=spec)
    assert isinstance(agent, SPiRLAgent) and agent.skill_horizon == 10
    runner = make_runner(cfg, spec, agent, warm_up_step=20)
    gen = runner.run(every_steps=int(cfg.rolf.train_every))
    infos, step = {}, 0
    while step < 20:  # warm-up: store only
        rollout, _, n = next(gen)
        agent.store_episode(rollout)
        step += n
    assert len(agent.buffer) == 2 and agent.buffer.data["ob"].shape[1] == agent.state_dim
    for _ in range(2):  # two chunks with updates
        rollout, _, n = next(gen)
        assert len(rollout["ob"]) == 1 and n == 10
        agent.store_episode(rollout)
        step += n
        agent.set_step(step)
        infos = agent.update()
    assert agent._update_steps == 2
    assert infos and all(torch.isfinite(v).all() for v in infos.values())
    z = agent.buffer.data["ac"][: len(agent.buffer)]
    assert np.abs(z).max() <= 2.0 and np.abs(z).max() > 0
    info, obs = runner.run_episode(is_train=False)
    assert info["len"] == 40 and len(obs) == 41
    a = agent.act_skill(obs[3], z[0])
    assert a.shape == (spec.ac_dim,) and np.abs(a).max() <= 1.0

    # checkpoint round-trip: a fresh agent loaded from the state acts and updates identically
    other = _agent(env, priors[env], seed=1)
    assert_resumes_identically(agent, other, obs[5], tmp_path)


def test_kitchen_states_with_or_without_env_goal(priors):
    agent = _agent("kitchen", priors["kitchen"])
    ob = np.random.default_rng(0).normal(size=30).astype(np.float32)
    s30 = agent.states(ob)
    s60 = agent.states(np.concatenate([ob, kitchen_goal()]))
    assert s30.shape == (60,) and torch.equal(s30, s60)
    env = get_env_spec("kitchen").make(seed=0, **env_kwargs(_cfg("kitchen", priors["kitchen"], ["env.with_goal=true"]).env))
    ob60, _ = env.reset(seed=0)
    assert ob60.shape == (60,) and torch.equal(agent.states(ob60), agent.states(ob60[:30]))
    assert agent.act_skill(ob60, np.zeros(10, np.float32)).shape == (9,)


def test_skills_within_range_and_warm_up_samples_the_prior(priors):
    agent = _agent("maze", priors["maze"])
    ob = np.array([10.0, 20.0, 0.5, -0.5], np.float32)
    zs = np.stack([agent.act_meta(ob, None, is_train=True, warm_up=True)[0] for _ in range(200)])
    assert zs.shape == (200, 10) and np.abs(zs).max() <= 2.0
    # the untrained policy is the prior: its skills are 2·tanh of prior samples
    p = agent.model.prior_dist(agent.states(ob)[None])
    u = torch.atanh(torch.as_tensor(zs / 2.0).clamp(-0.999999, 0.999999))
    assert torch.allclose(u.mean(0), p.loc[0], atol=4 * float(p.scale.max()) / np.sqrt(200) + 0.05)
    out = agent.run_policy(torch.randn(64, 4) * 10)
    assert out["action"].abs().max() <= 2.0
    assert torch.allclose(out["divergence"], torch.zeros(64))  # π = p before any update: KL is exactly 0


def test_alpha_moves_toward_target_divergence(priors):
    agent = _agent("maze", priors["maze"], ["rolf.target_divergence=10"])
    batch = _toy_batch(agent)
    info = agent.rl_step(batch)  # π = p: divergence 0 < δ -> α shrinks
    assert float(info["prior_divergence"]) < 10 and float(agent.alpha.detach()) < 1.0

    agent = _agent("maze", priors["maze"], ["rolf.target_divergence=1"])
    with torch.no_grad():  # shift the policy's mean far from the prior's: divergence above δ -> α grows
        agent.policy[-1].bias[:10] += 5.0
    with torch.no_grad():
        s = torch.as_tensor(batch["ob"])
        div = float(agent.divergence(s, *agent.policy_dist(s)).mean())
    assert div > 1
    agent.rl_step(batch)
    assert float(agent.alpha.detach()) > 1.0


def test_critic_loss_decreases_on_a_fixed_batch(priors):
    agent = _agent("maze", priors["maze"], ["rolf.critic_lr=1e-3"])
    assert_losses_halve(agent, _toy_batch(agent), ("critic_loss_1", "critic_loss_2"))


def test_target_value_definition(priors):
    """y = r + γ(1 − d)[min Q̄(s', z') − α·D(s')] and the critic targets move by 0.005 toward the critics."""
    agent = _agent("maze", priors["maze"], ["rolf.rl_discount=0.5"])
    batch = _toy_batch(agent)
    batch["done"][:] = 1.0
    before = [p.clone() for p in agent.critic_target.parameters()]
    info = agent.rl_step(batch)
    assert torch.allclose(info["q_target"], torch.as_tensor(batch["rew"]).mean())  # d = 1: y = r
    for b, o, new in zip(before, agent.critic.parameters(), agent.critic_target.parameters()):
        assert torch.allclose(new, 0.995 * b + 0.005 * o, atol=1e-6)


def test_fix_flags(priors):
    agent = _agent("maze", priors["maze"], ["rolf.fix_ll_tanh=true", "rolf.fix_timeout_bootstrap=true"])
    assert agent.bootstrap_timeout
    s = np.array([5.0, 5.0, 0.0, 0.0], np.float32)
    z = np.full(10, 1.5, np.float32)
    raw = agent.model.decoder(torch.cat([agent.states(s)[None], torch.as_tensor(z)[None]], -1))[0]
    np.testing.assert_allclose(agent.act_skill(s, z), raw.clamp(-1, 1).detach().numpy(), rtol=1e-6)
    default = _agent("maze", priors["maze"])
    assert not default.bootstrap_timeout
    np.testing.assert_allclose(default.act_skill(s, z), torch.tanh(raw).detach().numpy(), rtol=1e-6)


def test_missing_prior_is_one_clear_line(tmp_path):
    missing = tmp_path / "no_prior_here"
    with pytest.raises(SPiRLPriorMissing) as e:
        build_spirl(_cfg("maze", str(missing)), get_env_spec("maze"), torch.device("cpu"), np.random.default_rng(0))
    msg = str(e.value)
    assert "\n" not in msg and str(missing) in msg and "python -m spirl.pretrain --env maze" in msg
