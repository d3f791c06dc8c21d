"""The runner's state between chunks (exact resume): env RNGs, reset counters, the visit log and the episode in
progress, which a fresh runner on fresh envs rebuilds by replaying its actions; the reservoir visit log."""

from __future__ import annotations

import logging

import gymnasium
import numpy as np
import pytest
import torch

from envs import get_env_spec
from rolf.buffers import ReplayBufferEpisode
from rolf.trainers.rollout import RolloutRunner, VisitLog
from rolf.utils.checkpoint import load_checkpoint, save_checkpoint
from skimo_rollout import SkiMoRolloutRunner


class DeterministicAgent:
    """Decisions are a fixed function of the observation; memory counts decisions (a tensor, as planners')."""

    def __init__(self, ac_dim: int):
        self.ac_dim = ac_dim
        self.hl_buffer = ReplayBufferEpisode(("ob", "ac", "rew", "done"), 100, one_more_ob=True,
                                             rng=np.random.default_rng(0))

    def act_meta(self, ob, memory, is_train, warm_up=False):
        memory = torch.zeros(1) if memory is None else memory + 1
        return np.sin(3.0 * np.asarray(ob[: self.ac_dim], np.float64) + float(memory)).astype(np.float32), memory

    def act_skill(self, ob, skill):
        return np.clip(skill + 0.1 * np.cos(np.asarray(ob[: self.ac_dim], np.float32)), -1, 1).astype(np.float32)


def _runner(env_name: str, skills: bool, max_steps: int):
    spec = get_env_spec(env_name)
    env, eval_env = spec.make(seed=3, max_episode_steps=max_steps), spec.make(seed=4, max_episode_steps=max_steps)
    agent = DeterministicAgent(spec.ac_dim)
    if skills:
        return SkiMoRolloutRunner(env, eval_env, agent, skill_horizon=5, warm_up_step=0, seed=3)
    return RolloutRunner(env, eval_env, agent, warm_up_step=0, seed=3)


def _chunks(runner, n: int, every: int, step: int = 0):
    out = []
    for _ in range(n):
        hl, infos, k = runner.collect(every, step)
        step += k
        out.append((hl, infos, k))
    return out


def _assert_same_chunks(a, b):
    for (hl_a, infos_a, n_a), (hl_b, infos_b, n_b) in zip(a, b):
        assert n_a == n_b and infos_a == infos_b
        for k in hl_a:
            np.testing.assert_array_equal(np.asarray(hl_a[k]), np.asarray(hl_b[k]), err_msg=k)


@pytest.mark.parametrize("env_name, skills, max_steps, every", [("maze", True, 120, 50), ("maze", False, 80, 30),
                                                                ("kitchen", True, 40, 15), ("calvin", False, 30, 12)])
def test_a_fresh_runner_continues_the_episode_in_progress_exactly(env_name, skills, max_steps, every, tmp_path):
    straight = _runner(env_name, skills, max_steps)
    expected = _chunks(straight, 4, every)
    first = _runner(env_name, skills, max_steps)
    done = _chunks(first, 2, every)
    _assert_same_chunks(expected[:2], done)
    assert first.episode is not None and first.episode.actions  # stopped mid-episode
    first.run_episode()  # evaluation between chunks moves the eval env's RNG and counter
    straight.run_episode()
    path = save_checkpoint(tmp_path / "runner.pt", {"agent": {}, "runner": first.state_dict()})
    resumed = _runner(env_name, skills, max_steps)
    resumed.load_state_dict(load_checkpoint(path)["runner"])  # weights_only load
    assert resumed.episode is not None
    step = sum(c[2] for c in done)
    _assert_same_chunks(expected[2:], _chunks(resumed, 2, every, step))
    np.testing.assert_array_equal(resumed.visits.get(), straight.visits.get())
    info_a, obs_a = straight.run_episode()
    info_b, obs_b = resumed.run_episode()
    assert info_a == info_b
    np.testing.assert_array_equal(obs_a, obs_b)


class NoisyEnv(gymnasium.Env):
    """An env whose dynamics draw from an unseeded generator: replaying its actions cannot rebuild its state."""

    observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (2,), np.float32)
    action_space = gymnasium.spaces.Box(-1, 1, (2,), np.float32)

    def __init__(self):
        self.noise = np.random.default_rng()
        self.x = np.zeros(2, np.float32)
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x, self.t = self.np_random.normal(size=2).astype(np.float32), 0
        return self.x.copy(), {}

    def step(self, action):
        self.t += 1
        self.x = (self.x + 0.1 * np.asarray(action) + self.noise.normal(size=2)).astype(np.float32)
        return self.x.copy(), 0.0, False, self.t >= 50, {}


def test_an_env_that_cannot_replay_restarts_its_episode_with_a_warning(caplog):
    def make():
        env, eval_env = NoisyEnv(), NoisyEnv()
        env.reset(seed=0)
        eval_env.reset(seed=1)
        return RolloutRunner(env, eval_env, DeterministicAgent(2), warm_up_step=0)

    runner = make()
    hl, _, _ = runner.collect(20, 0)
    runner.agent.hl_buffer.add_transitions(hl)
    assert runner.agent.hl_buffer._scratch["ac"]  # the open episode's part, stored
    state = runner.state_dict()
    other = make()
    other.agent.hl_buffer.add_transitions(hl)
    with caplog.at_level(logging.WARNING, logger="skimo"):
        other.load_state_dict(state)
    assert other.episode is None and "that episode restarts" in caplog.text
    assert other.agent.hl_buffer._scratch["ac"] == []  # its stored part is dropped, not joined to the next episode
    hl2, _, n = other.collect(10, 20)
    assert n == 10 and hl2["ob"][0].shape == (2,)


def test_visit_log_keeps_a_bounded_uniform_sample_and_resumes_exactly():
    log_a, log_b = VisitLog(1, capacity=100, seed=0), VisitLog(1, capacity=100, seed=0)
    for i in range(1000):
        log_a.add(np.array([i], np.float32))
        if i < 600:
            log_b.add(np.array([i], np.float32))
    state = log_b.state_dict()
    log_c = VisitLog(1, capacity=100, seed=5)
    log_c.load_state_dict(state)
    for i in range(600, 1000):
        log_c.add(np.array([i], np.float32))
    np.testing.assert_array_equal(log_a.get(), log_c.get())
    kept = log_a.get()[:, 0]
    assert len(kept) == 100 and log_a.seen == 1000
    assert 300 < kept.mean() < 700 and kept.max() > 900  # a sample of all, not the first 100
    assert VisitLog(3, capacity=0).get().shape == (0, 3)


def test_episode_buffer_memory_stays_within_twice_its_capacity():
    buf = ReplayBufferEpisode(("ob", "ac", "done"), capacity=20, rng=np.random.default_rng(0))
    sizes = []
    for i in range(400):
        buf.add_episode({"ob": np.full((50, 3), i, np.float32), "ac": np.zeros((50, 2), np.float32),
                         "done": np.zeros(50, np.float32)})
        sizes.append(len(buf._stores["ob"].data))
    assert len(buf) == 20 and buf.get_episode(0)["ob"][0, 0] == 380
    assert max(sizes[100:]) <= 4 * 20 * 50  # live data 20 x 50 rows: at most 2x evicted, 2x growth slack
