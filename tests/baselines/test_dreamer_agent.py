"""Flat Dreamer baseline (spec §3.3): the composed config, the Dreamer replay convention across chunk boundaries,
acting, a learnable toy batch. Every env, the launcher and resume: tests/baselines/test_methods.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from baselines.dreamer_agent import DreamerAgent, build_dreamer
from envs import EnvSpec
from rolf.dreamer import DreamerConfig
from tests.conftest import compose_cfg

# Size-only shrink (never semantic keys).
TINY = ["rolf.deter_dim=16", "rolf.stoch_dim=4", "rolf.num_units=32", "rolf.encoder.embed_dim=16",
        "rolf.encoder.hidden_dims=[16]", "rolf.decoder.hidden_dims=[16]", "rolf.batch_size=4", "rolf.batch_length=8",
        "rolf.horizon=4", "rolf.train_iter=2", "rolf.train_every=50", "rolf.warm_up_step=60"]


def _cfg(env: str = "maze", extra: list[str] = ()):
    return compose_cfg("dreamer_config", [f"env={env}", "env.max_episode_steps=40", *TINY, *extra])


def _agent(extra: list[str] = (), ob_dim: int = 3, ac_dim: int = 2, seed: int = 0) -> DreamerAgent:
    torch.manual_seed(seed)
    spec = EnvSpec("toy", ob_dim, ac_dim, make=None, preprocess=lambda x: x)
    return build_dreamer(_cfg("maze", extra), spec, torch.device("cpu"), np.random.default_rng(seed))


def test_config_is_the_spec_table():
    """dreamer_config composes to the §4.3 values (DreamerConfig's defaults) plus the loop keys."""
    cfg = compose_cfg("dreamer_config")
    r = cfg.rolf
    assert (r.name, r.phase, r.precision, cfg.env.id) == ("dreamer", "rl", 32, "maze")
    assert DreamerConfig.from_rolf(r) == DreamerConfig()
    assert (r.max_global_step, r.log_every, r.evaluate_every, r.ckpt_every, r.buffer_size) == (2e6, 500, 1e4, 5e4, 1e6)
    assert (r.fix_ob_norm, r.fix_chunk_episodes, r.pcont, r.reward_scale) == (False, False, False, 1.0)


def _chunk(obs, acs, rews, ends):
    """A runner chunk: transitions (obs[i] -a_i-> obs[i+1]); `ends` marks episode ends (an end's successor in
    `obs` is the next episode's reset observation)."""
    n = len(acs)
    return {"ob": [np.full(3, obs[i], np.float32) for i in range(n)],
            "ob_next": [np.full(3, obs[i] + 0.5 if ends[i] else obs[i + 1], np.float32) for i in range(n)],
            "ac": [np.full(2, acs[i], np.float32) for i in range(n)], "rew": list(rews),
            "done": [float(e) for e in ends], "episode_end": list(ends)}


@pytest.mark.parametrize("whole", [False, True])
def test_store_episode_dreamer_convention_across_chunks(whole):
    """Episode A: o 0..4 (4 transitions, ends with terminal obs 3.5), split 3 | 1 over two chunks; episode B starts
    in the second chunk (o 10, 11 ...). Entries are (o_t, a_{t−1}, r_{t−1}, done_t), zeros at an episode start."""
    agent = _agent([f"rolf.fix_chunk_episodes={str(whole).lower()}"])
    agent.store_episode(_chunk([0, 1, 2, 3], [0.1, 0.2, 0.3], [1.0, 2.0, 3.0], [False, False, False]))
    agent.store_episode(_chunk([3, 10, 11, 12], [0.4, 0.5, 0.6], [4.0, 5.0, 6.0], [True, False, False]))
    eps = [agent.buffer.get_episode(i) for i in range(len(agent.buffer))]
    ob = [e["ob"][:, 0].tolist() for e in eps]
    ac = [(10 * e["ac"][:, 0]).round().astype(int).tolist() for e in eps]  # tenths
    rew = [e["rew"].tolist() for e in eps]
    done = [e["done"].tolist() for e in eps]
    if not whole:  # three stored "episodes": A's first chunk, A's tail, B's first chunk
        assert ob == [[0, 1, 2, 3], [3.5], [10, 11, 12]]
        assert ac == [[0, 1, 2, 3], [4], [0, 5, 6]]
        assert rew == [[0, 1, 2, 3], [4], [0, 5, 6]] and done == [[0, 0, 0, 0], [1], [0, 0, 0]]
    else:  # A whole; B still open (saved with the agent: a resumed runner continues it)
        assert ob == [[0, 1, 2, 3, 3.5]] and ac == [[0, 1, 2, 3, 4]] and rew == [[0, 1, 2, 3, 4]]
        assert done == [[0, 0, 0, 0, 1]]
        other = _agent(["rolf.fix_chunk_episodes=true"], seed=1)
        other.load_state_dict(agent.state_dict())
        other.store_episode(_chunk([12, 13], [0.7], [7.0], [False]))  # B goes on
        assert len(other.buffer) == 1 and [float(x[0]) for x in other._open["ob"]] == [10, 11, 12, 13]
        other.episode_cut()  # a runner that could not rebuild B restarts: B is stored cut, C starts afresh
        other.store_episode(_chunk([20, 21], [0.8], [8.0], [False]))
        assert [other.buffer.get_episode(i)["ob"][:, 0].tolist() for i in range(2)] == [[0, 1, 2, 3, 3.5],
                                                                                       [10, 11, 12, 13]]
        assert other._open["ob"][0][0] == 20 and other._open["ac"][0].sum() == 0


def test_warm_up_acts_uniformly_then_filters():
    agent = _agent()
    acts = np.stack([agent.act_meta(np.zeros(3, np.float32), None, True, warm_up=True)[0] for _ in range(200)])
    assert acts.shape == (200, 2) and acts.min() < -0.8 and acts.max() > 0.8
    assert agent.act_meta(np.zeros(3), "ignored", True, warm_up=True)[1] is None  # memory reset, as the original
    a, (latent, prev) = agent.act_meta(np.zeros(3, np.float32), None, True)
    assert a.shape == (2,) and np.abs(a).max() <= 1 and np.allclose(prev[0].numpy(), a)
    a2, _ = agent.act_meta(np.ones(3, np.float32), (latent, prev), True)  # the filter state is fed back
    assert a2.shape == (2,)
    torch.manual_seed(1)
    e1, _ = agent.act_meta(np.ones(3, np.float32), (latent, prev), False)
    torch.manual_seed(1)
    e2, _ = agent.act_meta(np.ones(3, np.float32), (latent, prev), False)
    np.testing.assert_array_equal(e1, e2)  # evaluation: tanh(mu), no exploration noise
    assert agent.value_of(np.random.default_rng(0).normal(size=(7, 3))).shape == (7,)


def test_model_loss_decreases_on_a_fixed_toy_batch():
    """A transition-convention toy batch (linear system, reward = −|o|) converted by rl_step."""
    agent = _agent(["rolf.model_lr=3e-3", "rolf.free_nats=0.0"])
    rng = np.random.default_rng(0)
    b, n = 8, 6
    ob = np.zeros((b, n + 1, 3), np.float32)
    ob[:, 0] = rng.normal(size=(b, 3))
    ac = rng.uniform(-1, 1, (b, n, 2)).astype(np.float32)
    for t in range(n):
        ob[:, t + 1] = 0.9 * ob[:, t]
        ob[:, t + 1, :2] += 0.1 * ac[:, t]
    batch = {"ob": ob, "ac": ac, "rew": -np.linalg.norm(ob[:, :-1], axis=-1).astype(np.float32)}
    losses = [float(agent.rl_step(batch)["model_loss"]) for _ in range(40)]
    assert all(np.isfinite(losses))
    assert np.mean(losses[-3:]) < np.mean(losses[:3]) - 1.0, losses
