"""CALVIN-like env (spec §5.4, calvin.md): reset observation, task detectors, SkiMo's sequential reward,
termination/truncation, relative end-effector control, seeding and client isolation."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest

from calvin.env import ENV_ID, FIXED_BLOCK_OBS, FULL_OBS_DIM, OBS_DIM, RESET_OBS, TASKS, CalvinEnv, next_credited, task_states
from calvin.scene import BLOCKS, Q0, TABLE_Z
from envs.calvin import make_calvin_env, preprocess_calvin_ob

ZERO = np.zeros(7)  # no motion, gripper open (a[6] >= 0)


@pytest.fixture(scope="module")
def env():
    e = CalvinEnv()
    yield e
    e.close()


def test_reset_observation_matches_calvin_env(env):
    ob, info = env.reset(seed=0)
    assert ob.shape == (OBS_DIM,) and ob.dtype == np.float32 and env.observation_space.shape == (21,)
    np.testing.assert_allclose(ob, RESET_OBS, atol=2e-4)  # calvin.md: identical at 4 decimals
    np.testing.assert_allclose(ob[7:14], Q0, atol=1e-4)
    assert info == {**{t: 0.0 for t in TASKS}, "success": 0.0}
    assert env.action_space.shape == (7,) and env.action_space.low.min() == -1 and env.action_space.high.max() == 1


def test_full_observation_layout():
    e = CalvinEnv(full_obs=True)
    ob, _ = e.reset(seed=0)
    assert ob.shape == (FULL_OBS_DIM,) == (39,)
    np.testing.assert_allclose(ob[:21], RESET_OBS, atol=2e-4)
    np.testing.assert_allclose(ob[21:], FIXED_BLOCK_OBS, atol=1e-6)  # blocks not simulated: fixed poses
    e.close()


def test_task_states_pure():
    s0 = np.zeros(6)
    assert not any(task_states(s0, s0).values())
    assert task_states(np.array([0, 0.121, 0, 0, 0, 0]), s0)["open_drawer"]
    assert not task_states(np.array([0, 0.119, 0, 0, 0, 0]), s0)["open_drawer"]
    assert not task_states(np.array([0, 0.2, 0, 0, 0, 0]), np.array([0, 0.1, 0, 0, 0, 0]))["open_drawer"]  # relative
    assert task_states(np.array([0.151, 0, 0, 0, 0, 0]), s0)["move_slider_left"]
    assert not task_states(np.array([0.149, 0, 0, 0, 0, 0]), s0)["move_slider_left"]
    assert task_states(np.array([0, 0, 0, 0.05, 1, 0]), s0)["turn_on_lightbulb"]
    assert not task_states(np.array([0, 0, 0, 0.05, 1, 0]), np.array([0, 0, 0, 0.05, 1, 0]))["turn_on_lightbulb"]
    assert task_states(np.array([0, 0, 0, 0, 0, 1]), s0)["turn_on_led"]
    done = {t: True for t in TASKS}
    assert next_credited(list(TASKS), done) == "open_drawer"
    assert next_credited(list(TASKS), {**done, "open_drawer": False}) is None
    assert next_credited([], done) is None


@pytest.mark.parametrize("joints, task", [
    ({"drawer": 0.13}, "open_drawer"), ({"switch": 0.05}, "turn_on_lightbulb"), ({"slide": 0.16}, "move_slider_left"),
    ({"led": 1}, "turn_on_led")])
def test_detectors_on_hand_set_joints(env, joints, task):
    env.reset(seed=0)
    env.sim.set_scene(**joints)
    env.step(ZERO)
    scene = env.sim.scene_obs(with_blocks=False)
    done = task_states(scene, env.start_scene)
    assert done[task] and sum(done.values()) == 1, (scene, done)


def test_light_logic(env):
    env.reset(seed=0)
    env.sim.set_scene(switch=0.05)
    assert env.step(ZERO)[0][19] == 1  # lightbulb on while switch > 0.044
    env.sim.set_scene(switch=0.0)
    assert env.step(ZERO)[0][19] == 0  # level-triggered: off again
    env.sim.set_scene(switch=0.04)
    assert env.step(ZERO)[0][19] == 0


def test_sequential_reward_termination_and_stepping_after_success(env):
    env.reset(seed=0)
    env.sim.set_scene(switch=0.06)  # lightbulb before the drawer: no reward until the drawer is open
    for _ in range(3):
        _, r, term, trunc, info = env.step(ZERO)
        assert r == 0.0 and info["turn_on_lightbulb"] == 0.0 and not term
    env.sim.set_scene(drawer=0.15, slide=0.2, led=1)  # all four done at once: credited one per step, in order
    rewards, flags = [], []
    for _ in range(4):
        _, r, term, trunc, info = env.step(ZERO)
        rewards.append(r)
        flags.append([info[t] for t in TASKS])
    assert rewards == [100.0] * 4
    assert flags == [[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]]
    assert term and not trunc and info["success"] == 1.0
    for _ in range(3):  # the original raises IndexError here
        _, r, term, trunc, info = env.step(env.action_space.sample())
        assert r == 0.0 and term and info["success"] == 1.0


def test_reward_norm_and_truncation():
    e = CalvinEnv(max_episode_steps=5, reward_norm=1.0)
    e.reset(seed=0)
    e.sim.set_scene(drawer=0.2)
    outs = [e.step(ZERO) for _ in range(5)]
    assert [o[1] for o in outs] == [1.0, 0, 0, 0, 0]
    assert [o[3] for o in outs] == [False] * 4 + [True] and not any(o[2] for o in outs)
    e.close()


def test_relative_control_moves_tcp_by_commanded_delta(env):
    env.reset(seed=0)
    p0, e0 = env.sim.tcp_pose()
    a = np.array([0.5, -0.5, 0.5, 0, 0, 0, 1.0])
    for _ in range(5):
        env.step(a)  # 5 × (0.01, −0.01, 0.01) m
    for _ in range(10):
        env.step(ZERO)  # settle
    p1, e1 = env.sim.tcp_pose()
    np.testing.assert_allclose(p1 - p0, [0.05, -0.05, 0.05], atol=3e-3)
    np.testing.assert_allclose(np.abs((e1 - e0 + np.pi) % (2 * np.pi) - np.pi), 0, atol=0.02)
    np.testing.assert_allclose(env.sim.target_pos - p0, [0.05, -0.05, 0.05], atol=1e-9)  # target accumulation
    for _ in range(4):
        env.step(np.array([0, 0, 0, 0, 0, 1.0, 1]))  # yaw += 4 × 0.05 rad
    for _ in range(10):
        env.step(ZERO)
    p2, e2 = env.sim.tcp_pose()
    assert abs(e2[2] - e1[2] - 0.2) < 0.02 and np.linalg.norm(p2 - p1) < 3e-3


def test_gripper_binarised(env):
    env.reset(seed=0)
    for _ in range(15):
        ob = env.step(np.array([0, 0, 0, 0, 0, 0, -0.01]))[0]
    assert ob[14] == -1 and ob[6] < 0.005  # closed
    for _ in range(15):
        ob = env.step(np.array([0, 0, 0, 0, 0, 0, 0.0]))[0]
    assert ob[14] == 1 and ob[6] > 0.075  # open


def _rollout(e: CalvinEnv, seed: int, actions: np.ndarray) -> np.ndarray:
    obs = [e.reset(seed=seed)[0]]
    obs += [e.step(a)[0] for a in actions]
    return np.array(obs)


def test_determinism_and_client_isolation(env):
    actions = np.random.default_rng(1).uniform(-1, 1, (40, 7))
    a = _rollout(env, 3, actions)
    b = _rollout(env, 3, actions)  # the same env again: reset restores the full physics snapshot
    np.testing.assert_array_equal(a, b)
    other = CalvinEnv()
    other.reset(seed=3)
    env.reset(seed=3)
    interleaved = []
    for act in actions:  # two clients stepped alternately (the other with different actions) do not interfere
        interleaved.append(env.step(act)[0])
        other.step(-act)
    np.testing.assert_array_equal(a[1:], np.array(interleaved))
    other.close()


def test_blocks_option():
    e = CalvinEnv(full_obs=True, add_blocks=True)
    ob1, _ = e.reset(seed=0)
    ob2, _ = e.reset(seed=0)
    ob3, _ = e.reset(seed=1)
    np.testing.assert_array_equal(ob1, ob2)
    assert not np.allclose(ob1[21:], ob3[21:])
    for i, (half, _) in enumerate(BLOCKS.values()):
        # on a surface (the shelf plank's top is 2 cm below the sampling height, so those blocks drop a little)
        assert -0.025 < ob1[21 + 6 * i + 2] - (TABLE_Z + half[2]) < 0.005
    e.sim.set_scene(drawer=0.15)
    assert e.step(ZERO)[1] == 100.0
    e.close()


def test_adapter_and_registry():
    e = make_calvin_env(0, max_episode_steps=10)
    assert e.max_episode_steps == 10 and e.reward_norm == 100.0
    x = np.arange(21.0)
    assert preprocess_calvin_ob(x) is x
    e.close()
    assert ENV_ID in gymnasium.envs.registry
    with pytest.raises(ValueError, match="unknown calvin tasks"):
        CalvinEnv(tasks=["open_drawer", "fly"])
