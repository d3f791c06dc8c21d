"""SkiMo's hierarchical rollout (spec §2.2): one high-level decision per skill - a skill z from the CEM planner or
the high-level policy - executed for up to `skill_horizon` env steps by the low-level skill policy. The SPiRL
family (SPiRL, SPiRL+TD-MPC, SPiRL+Dreamer) acts the same way and uses this runner too. Everything else (seeded
resets, episode infos, the chunked generator, evaluation episodes) is rolf's `RolloutRunner`.

The agent protocol it adds:
    act_skill(ob, skill) -> action (d_a,)   # the low-level skill policy
"""

from __future__ import annotations

import numpy as np

from rolf.trainers.rollout import VISIT_CAPACITY, RolloutRunner


class SkiMoRolloutRunner(RolloutRunner):
    def __init__(self, env, eval_env, agent, skill_horizon: int, warm_up_step: int, reward_scale: float = 1.0,
                 bootstrap_timeout: bool = False, seed: int = 0, visit_capacity: int = VISIT_CAPACITY):
        super().__init__(env, eval_env, agent, warm_up_step, reward_scale, bootstrap_timeout, seed, visit_capacity)
        self.skill_horizon = skill_horizon

    def _execute(self, env, ob: np.ndarray, skill: np.ndarray, ep: dict, record):
        """Run one skill for up to H steps, stopping at the episode's end. Returns (ob, summed reward, terminated,
        truncated): the high-level transition's reward is the undiscounted sum over the skill."""
        rew_sum, terminated, truncated = 0.0, False, False
        for _ in range(self.skill_horizon):
            ob, rew, terminated, truncated = self._env_step(env, self.agent.act_skill(ob, skill), ep, record)
            rew_sum += rew
            if terminated or truncated:
                break
        ep["rew"] += rew_sum
        return ob, rew_sum, terminated, truncated
