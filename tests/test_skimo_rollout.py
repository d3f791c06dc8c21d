"""SkiMo's skill-level runner and rolf's flat runner on a toy env: decisions, skill execution, rewards, chunks."""

import gymnasium
import numpy as np
from gymnasium import spaces

from rolf.trainers.rollout import RolloutRunner
from skimo_rollout import SkiMoRolloutRunner


class Line(gymnasium.Env):
    """x moves by the action; reward 1 per step at x >= 3; terminates at x >= 5; truncates after 12 steps."""

    observation_space = spaces.Box(-np.inf, np.inf, (1,), np.float32)
    action_space = spaces.Box(-1, 1, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x, self.t = 0.0, 0
        return np.array([self.x], np.float32), {}

    def step(self, action):
        self.x += float(action[0])
        self.t += 1
        ob = np.array([self.x], np.float32)
        return ob, float(self.x >= 3), self.x >= 5, self.t >= 12, {"far": float(self.x >= 4)}


class Agent:
    def __init__(self):
        self.decisions, self.skill_calls = 0, 0

    def act_meta(self, ob, memory, is_train, warm_up=False):
        self.decisions += 1
        return np.array([1.0], np.float32), (memory or 0) + 1

    def act_skill(self, ob, skill):
        self.skill_calls += 1
        return skill * 0.5


def test_skill_runner_executes_each_skill_for_h_steps_and_stops_at_the_episode_end():
    agent = Agent()
    runner = SkiMoRolloutRunner(Line(), Line(), agent, skill_horizon=4, warm_up_step=0)
    hl, infos, n = next(runner.run(every_steps=10))
    # x after each skill of 4 half-steps: 2, 4, 5 (terminated after 2 steps of the third skill)
    assert n == 10 and agent.decisions == 3 and agent.skill_calls == 10
    np.testing.assert_allclose(np.concatenate(hl["ob_next"]), [2.0, 4.0, 5.0])
    assert hl["rew"] == [0.0, 3.0, 2.0]  # undiscounted sum over each skill
    assert hl["done"] == [0.0, 0.0, 1.0] and hl["episode_end"] == [False, False, True]
    assert infos == [{"len": 10, "rew": 5.0, "far": 1.0}]
    assert runner.visits.get().shape == (11, 1)  # the reset observation and every env step


def test_flat_runner_takes_one_env_step_per_decision():
    agent = Agent()
    runner = RolloutRunner(Line(), Line(), agent, warm_up_step=0)
    hl, infos, n = next(runner.run(every_steps=3))
    assert n == 3 and agent.decisions == 3 and agent.skill_calls == 0
    assert hl["rew"] == [0.0, 0.0, 1.0] and infos == []
    info, obs = runner.run_episode()
    assert info == {"len": 5, "rew": 3.0, "far": 1.0} and obs.shape == (6, 1)
