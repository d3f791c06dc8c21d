"""The rollout runner every algorithm shares (spec §3.1.5): seeded resets, per-episode info, the chunked generator
the RL loop consumes, evaluation episodes. Here one agent decision is one env step (TD-MPC, Dreamer); SkiMo's
skill-level runner (`skimo_rollout.SkiMoRolloutRunner`, also used by the SPiRL family) executes each decision as a
skill of `skill_horizon` env steps by overriding `_execute`.

The agent protocol it needs:
    act_meta(ob, memory, is_train, warm_up) -> (decision, memory)   # memory = e.g. the planner's warm start,
                                                                    # None at an episode start
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np


def _new_hl_rollout() -> dict[str, list]:
    return {"ob": [], "ob_next": [], "ac": [], "rew": [], "done": [], "episode_end": []}


class VisitLog:
    """Every low-level observation seen in training (the original's never-trained LL buffer, kept for the
    maze replay pictures). Growable float32 array."""

    def __init__(self, ob_dim: int):
        self.data = np.empty((4096, ob_dim), dtype=np.float32)
        self.size = 0

    def add(self, ob: np.ndarray) -> None:
        if self.size == len(self.data):
            self.data = np.concatenate([self.data, np.empty_like(self.data)], 0)
        self.data[self.size] = ob
        self.size += 1

    def get(self) -> np.ndarray:
        return self.data[: self.size]


class RolloutRunner:
    def __init__(self, env, eval_env, agent, warm_up_step: int, reward_scale: float = 1.0,
                 bootstrap_timeout: bool = False, seed: int = 0):
        self.env, self.eval_env, self.agent = env, eval_env, agent
        self.warm_up_step = warm_up_step
        self.reward_scale = reward_scale
        self.bootstrap_timeout = bootstrap_timeout
        self.seed = seed
        self.visits = VisitLog(env.observation_space.shape[0])
        self._train_resets = 0
        self._eval_resets = 0

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
        """One env step with the episode bookkeeping: length, per-subtask flags (max over the episode), `record`."""
        ob, rew, terminated, truncated, info = env.step(action)
        ep["len"] += 1
        for k, v in info.items():
            if isinstance(v, (int, float, np.floating, np.integer, bool, np.bool_)):
                ep[k] = max(ep.get(k, float(v)), float(v))
        record(ob)
        return ob, float(rew), terminated, truncated

    def _execute(self, env, ob: np.ndarray, decision: np.ndarray, ep: dict, record):
        """Carry out one decision: here one env step. Returns (ob, reward, terminated, truncated)."""
        ob, rew, terminated, truncated = self._env_step(env, decision, ep, record)
        ep["rew"] += rew
        return ob, rew, terminated, truncated

    def run(self, every_steps: int, step: int = 0) -> Iterator[tuple[dict, list[dict], int]]:
        """Endless generator of (rollout, finished episode infos, env steps) chunks, yielded at the first decision
        boundary after every `every_steps` env steps (spec §2.2 d)."""
        env, agent = self.env, self.agent
        hl, infos, chunk_steps = _new_hl_rollout(), [], 0
        while True:
            ob = self._reset(env, train=True)
            self.visits.add(ob)
            memory, done, ep = None, False, {"len": 0, "rew": 0.0}
            while not done:
                warm = step < self.warm_up_step
                decision, memory = agent.act_meta(ob, memory, is_train=True, warm_up=warm)
                start_len = ep["len"]
                ob_next, rew, terminated, truncated = self._execute(env, ob, decision, ep, self.visits.add)
                done = terminated or truncated
                for k, v in (("ob", ob), ("ob_next", ob_next), ("ac", decision), ("rew", rew * self.reward_scale),
                             ("done", float(terminated if self.bootstrap_timeout else done)), ("episode_end", done)):
                    hl[k].append(v)
                ob = ob_next
                n = ep["len"] - start_len
                step += n
                chunk_steps += n
                if done:
                    infos.append(dict(ep))
                if chunk_steps >= every_steps:
                    yield hl, infos, chunk_steps
                    hl, infos, chunk_steps = _new_hl_rollout(), [], 0

    def run_episode(self, is_train: bool = False) -> tuple[dict[str, Any], np.ndarray]:
        """One evaluation episode (planner without final noise). Returns (info, every observation (T+1, d_o))."""
        env = self.eval_env
        ob = self._reset(env, train=False)
        obs = [ob]
        memory, done, ep = None, False, {"len": 0, "rew": 0.0}
        while not done:
            decision, memory = self.agent.act_meta(ob, memory, is_train=is_train)
            ob, _, terminated, truncated = self._execute(env, ob, decision, ep, obs.append)
            done = terminated or truncated
        return ep, np.asarray(obs)
