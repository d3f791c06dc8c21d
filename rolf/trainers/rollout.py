"""The rollout runner every algorithm shares (spec §3.1.5): seeded resets, per-episode info, the chunks the RL loop
consumes, evaluation episodes. Here one agent decision is one env step (TD-MPC, Dreamer); SkiMo's skill-level
runner (`skimo_rollout.SkiMoRolloutRunner`, also used by the SPiRL family) executes each decision as a skill of
`skill_horizon` env steps by overriding `_execute`.

The agent protocol it needs:
    act_meta(ob, memory, is_train, warm_up) -> (decision, memory)   # memory = e.g. the planner's warm start,
                                                                    # None at an episode start

Exact resume: `state_dict()` (taken between chunks) holds the env RNGs, the reset counters, the visit log and the
training episode in progress: its observation, the agent's memory, its info so far, and every env action since its
reset. `load_state_dict` rebuilds that episode's env state by resetting the env as it was reset (same seed
argument, same RNG state) and replaying the actions; the replayed observation must equal the recorded one bit for
bit (MuJoCo and PyBullet are deterministic), otherwise the episode restarts with a warning.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

log = logging.getLogger("skimo")


VISIT_CAPACITY = 1 << 17  # observations the visit log keeps (then a uniform sample): 2 MB for the maze


def _new_hl_rollout() -> dict[str, list]:
    return {"ob": [], "ob_next": [], "ac": [], "rew": [], "done": [], "episode_end": []}


class VisitLog:
    """Low-level observations seen in training (the original's never-trained LL buffer, kept for the maze replay
    pictures). Every one up to `capacity`, then a uniform sample of all of them (reservoir sampling, seeded), so
    memory stays bounded over a run of any length."""

    def __init__(self, ob_dim: int, capacity: int = VISIT_CAPACITY, seed: int = 0):
        self.capacity = int(capacity)
        self.data = np.empty((min(4096, self.capacity), ob_dim), dtype=np.float32)
        self.size = 0  # observations kept
        self.seen = 0  # observations offered
        self.rng = np.random.default_rng(seed)

    def add(self, ob: np.ndarray) -> None:
        if self.capacity == 0:
            return
        self.seen += 1
        if self.size < self.capacity:
            if self.size == len(self.data):
                grown = np.empty((min(2 * len(self.data), self.capacity), self.data.shape[1]), dtype=np.float32)
                grown[: self.size] = self.data
                self.data = grown
            self.data[self.size] = ob
            self.size += 1
            return
        j = int(self.rng.integers(0, self.seen))
        if j < self.capacity:
            self.data[j] = ob

    def get(self) -> np.ndarray:
        return self.data[: self.size]

    def state_dict(self) -> dict:
        return {"data": torch.from_numpy(self.get().copy()), "seen": self.seen, "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        data = np.asarray(state["data"], dtype=np.float32)[: self.capacity]
        self.data = np.empty((max(len(data), min(4096, self.capacity)), self.data.shape[1]), dtype=np.float32)
        self.data[: len(data)] = data
        self.size, self.seen = len(data), int(state["seen"])
        self.rng.bit_generator.state = state["rng"]


@dataclass
class Episode:
    """The training episode in progress between two chunks."""

    ob: np.ndarray  # the current observation
    memory: Any  # the agent's memory (planner warm start, filter state, ...)
    info: dict[str, float]  # len, rew, per-subtask flags so far
    reset_seed: int | None  # the seed argument of its reset
    rng_at_reset: dict  # the env's np_random state just before its reset
    actions: list[np.ndarray] = field(default_factory=list)  # every env action since the reset


class RolloutRunner:
    def __init__(self, env, eval_env, agent, warm_up_step: int, reward_scale: float = 1.0,
                 bootstrap_timeout: bool = False, seed: int = 0, visit_capacity: int = VISIT_CAPACITY):
        self.env, self.eval_env, self.agent = env, eval_env, agent
        self.warm_up_step = warm_up_step
        self.reward_scale = reward_scale
        self.bootstrap_timeout = bootstrap_timeout
        self.seed = seed
        self.visits = VisitLog(env.observation_space.shape[0], visit_capacity, seed)
        self._train_resets = 0
        self._eval_resets = 0
        self.episode: Episode | None = None

    def _reset(self, env, train: bool) -> np.ndarray:
        """Seeded reset: the first reset of each env gets the run's seed (eval env: seed + 10_000), later ones
        continue the env's own RNG stream."""
        if train:
            seed = self.seed if self._train_resets == 0 else None
            self._train_resets += 1
        else:
            seed = self.seed + 10_000 if self._eval_resets == 0 else None
            self._eval_resets += 1
        ob, _ = env.reset(seed=seed)
        return ob

    @staticmethod
    def _env_step(env, action: np.ndarray, ep: dict, record) -> tuple[np.ndarray, float, bool, bool]:
        """One env step with the episode bookkeeping: length, per-subtask flags (max over the episode),
        `record(action, ob)`."""
        ob, rew, terminated, truncated, info = env.step(action)
        ep["len"] += 1
        for k, v in info.items():
            if isinstance(v, (int, float, np.floating, np.integer, bool, np.bool_)):
                ep[k] = max(ep.get(k, float(v)), float(v))
        record(action, ob)
        return ob, float(rew), terminated, truncated

    def _execute(self, env, ob: np.ndarray, decision: np.ndarray, ep: dict, record):
        """Carry out one decision: here one env step. Returns (ob, reward, terminated, truncated)."""
        ob, rew, terminated, truncated = self._env_step(env, decision, ep, record)
        ep["rew"] += rew
        return ob, rew, terminated, truncated

    # ---------------------------------------------------------------- training rollouts
    def _start_episode(self) -> Episode:
        rng_at_reset = copy.deepcopy(self.env.np_random.bit_generator.state)
        seed = self.seed if self._train_resets == 0 else None
        ob = self._reset(self.env, train=True)
        self.visits.add(ob)
        self.episode = Episode(ob, None, {"len": 0, "rew": 0.0}, seed, rng_at_reset)
        return self.episode

    def _record_train(self, action: np.ndarray, ob: np.ndarray) -> None:
        self.episode.actions.append(np.array(action, copy=True))
        self.visits.add(ob)

    def collect(self, every_steps: int, step: int) -> tuple[dict[str, list], list[dict], int]:
        """Decisions in the training env until `every_steps` env steps are done, ending at a decision boundary
        (spec §2.2 d); episodes continue across calls. `step` is the run's env step at the start (warm-up
        decisions before `warm_up_step`). Returns (rollout, infos of the episodes that ended, env steps)."""
        env, agent = self.env, self.agent
        hl, infos, chunk_steps = _new_hl_rollout(), [], 0
        while chunk_steps < every_steps:
            e = self.episode or self._start_episode()
            decision, e.memory = agent.act_meta(e.ob, e.memory, is_train=True, warm_up=step < self.warm_up_step)
            start_len = e.info["len"]
            ob_next, rew, terminated, truncated = self._execute(env, e.ob, decision, e.info, self._record_train)
            done = terminated or truncated
            for k, v in (("ob", e.ob), ("ob_next", ob_next), ("ac", decision), ("rew", rew * self.reward_scale),
                         ("done", float(terminated if self.bootstrap_timeout else done)), ("episode_end", done)):
                hl[k].append(v)
            e.ob = ob_next
            n = e.info["len"] - start_len
            step += n
            chunk_steps += n
            if done:
                infos.append(dict(e.info))
                self.episode = None
        return hl, infos, chunk_steps

    def run(self, every_steps: int, step: int = 0) -> Iterator[tuple[dict, list[dict], int]]:
        """Endless generator of `collect` chunks."""
        while True:
            chunk = self.collect(every_steps, step)
            step += chunk[2]
            yield chunk

    def run_episode(self, is_train: bool = False) -> tuple[dict[str, Any], np.ndarray]:
        """One evaluation episode (planner without final noise). Returns (info, every observation (T+1, d_o))."""
        env = self.eval_env
        ob = self._reset(env, train=False)
        obs = [ob]
        memory, done, ep = None, False, {"len": 0, "rew": 0.0}
        while not done:
            decision, memory = self.agent.act_meta(ob, memory, is_train=is_train)
            ob, _, terminated, truncated = self._execute(env, ob, decision, ep, lambda a, o: obs.append(o))
            done = terminated or truncated
        return ep, np.asarray(obs)

    # ---------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict:
        """Between chunks: counters, env RNGs, visits and the episode in progress (tensors and plain values)."""
        state = {"train_resets": self._train_resets, "eval_resets": self._eval_resets,
                 "env_rng": copy.deepcopy(self.env.np_random.bit_generator.state),
                 "eval_env_rng": copy.deepcopy(self.eval_env.np_random.bit_generator.state),
                 "visits": self.visits.state_dict(), "episode": None}
        e = self.episode
        if e is not None:
            state["episode"] = {"ob": torch.from_numpy(np.array(e.ob)), "memory": e.memory, "info": dict(e.info),
                                "reset_seed": e.reset_seed, "rng_at_reset": e.rng_at_reset,
                                "actions": torch.from_numpy(np.stack(e.actions)) if e.actions else None}
        return state

    def load_state_dict(self, state: dict) -> None:
        self._train_resets, self._eval_resets = int(state["train_resets"]), int(state["eval_resets"])
        self.visits.load_state_dict(state["visits"])
        self.eval_env.np_random.bit_generator.state = state["eval_env_rng"]
        self.episode = None
        if state["episode"] is not None:
            self.episode = self._replay(state["episode"])
        self.env.np_random.bit_generator.state = state["env_rng"]

    def _drop_partial_episode(self) -> None:
        """The agent forgets the stored part of an episode that will not continue."""
        buffer = getattr(self.agent, "hl_buffer", None)
        if hasattr(buffer, "drop_partial_episode"):
            buffer.drop_partial_episode()
        if hasattr(self.agent, "episode_cut"):
            self.agent.episode_cut()

    def _replay(self, saved: dict) -> Episode | None:
        """The saved episode with the training env brought back to its state: the same reset, then its actions."""
        env = self.env
        env.np_random.bit_generator.state = saved["rng_at_reset"]
        ob, _ = env.reset(seed=saved["reset_seed"])
        actions = [] if saved["actions"] is None else list(np.asarray(saved["actions"]))
        for a in actions:
            ob = env.step(a)[0]
        expected = np.asarray(saved["ob"])
        if not (ob.shape == expected.shape and np.array_equal(ob, expected)):
            log.warning("the training env did not reproduce its episode in progress from the recorded actions "
                        "(largest difference %.3g after %d steps): that episode restarts", float(np.max(np.abs(
                            np.asarray(ob, np.float64) - expected))) if ob.shape == expected.shape else float("nan"),
                        len(actions))
            self._drop_partial_episode()
            return None
        return Episode(expected, saved["memory"], dict(saved["info"]), saved["reset_seed"], saved["rng_at_reset"],
                       actions)
