"""Kitchen task on FrankaKitchen-v1's simulation: subtask detector, ordered reward, termination/truncation,
observation layout, seeding, simulation errors (spec §5.3)."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest

from d4rl.kitchen import (BONUS_THRESH, ENV_ID, INIT_QPOS, OBS_ELEMENT_GOALS, OBS_ELEMENT_INDICES, SUBTASKS, TASKS,
                          KitchenEnv, check_task, ordered_completions, robot_config, subtask_complete, task_goal)
from envs import get_env_spec
from envs.kitchen import make_kitchen_env, preprocess_kitchen_ob


def solved_qpos(*subtasks: str) -> np.ndarray:
    """The initial scene with the given subtasks' objects set to their goal values."""
    qpos = INIT_QPOS.copy()
    for name in subtasks:
        qpos[OBS_ELEMENT_INDICES[name]] = OBS_ELEMENT_GOALS[name]
    return qpos


def step_with(env: KitchenEnv, *solved: str) -> tuple[float, bool, dict]:
    """Hand-sets the scene with `solved` subtasks at their goals and takes one zero-action step."""
    env.set_state(solved_qpos(*solved))
    _, reward, terminated, truncated, info = env.step(np.zeros(9))
    assert not truncated
    return reward, terminated, info


def test_constants_match_d4rl_and_gymnasium_robotics():
    from gymnasium_robotics.envs.franka_kitchen import kitchen_env as v1

    assert BONUS_THRESH == v1.BONUS_THRESH == 0.3
    assert set(SUBTASKS) == set(v1.OBS_ELEMENT_INDICES)
    for name in SUBTASKS:
        np.testing.assert_array_equal(OBS_ELEMENT_INDICES[name], v1.OBS_ELEMENT_INDICES[name])
        np.testing.assert_array_equal(OBS_ELEMENT_GOALS[name], v1.OBS_ELEMENT_GOALS[name])
    assert TASKS == {"base": ("microwave", "kettle", "bottom burner", "light switch"),
                     "misaligned": ("microwave", "light switch", "slide cabinet", "hinge cabinet")}
    with pytest.raises(ValueError, match="unknown kitchen task 'mixed'"):
        check_task("mixed")


def test_detector_threshold_on_arrays():
    obs = solved_qpos().astype(np.float32)
    assert not any(subtask_complete(obs, name) for name in SUBTASKS)  # nothing is done at the start
    for name in SUBTASKS:
        idx = OBS_ELEMENT_INDICES[name]
        for offset, expected in ((0.0, True), (0.29, True), (0.31, False)):
            o = solved_qpos(name)
            o[idx[0]] += offset
            assert subtask_complete(o, name) is expected, (name, offset)
    # Euclidean over all indices: 0.2 on each of two kettle coordinates is 0.28 (< 0.3), on three 0.35
    o = solved_qpos("kettle")
    o[[23, 24]] += 0.2
    assert subtask_complete(o, "kettle")
    o[25] += 0.2
    assert not subtask_complete(o, "kettle")


@pytest.mark.parametrize("name", SUBTASKS)
def test_detector_on_hand_set_scene(name):
    env = make_kitchen_env(seed=0)
    obs = env.set_state(solved_qpos(name))
    assert [n for n in SUBTASKS if subtask_complete(obs, n)] == [name]
    obs, *_ = env.step(np.zeros(9))  # the object stays at its goal through a physics step
    assert [n for n in SUBTASKS if subtask_complete(obs, n)] == [name]


def test_ordered_completions_is_the_complete_prefix():
    remaining = list(TASKS["base"])
    assert ordered_completions(remaining, solved_qpos("kettle", "light switch")) == []
    assert ordered_completions(remaining, solved_qpos("microwave", "bottom burner")) == ["microwave"]
    assert ordered_completions(remaining, solved_qpos(*SUBTASKS)) == remaining


@pytest.mark.parametrize("task", ["base", "misaligned"])
def test_in_order_gives_one_per_subtask_and_terminates_after_four(task):
    env = make_kitchen_env(seed=0, task=task)
    subtasks = TASKS[task]
    done: list[str] = []
    for i, name in enumerate(subtasks):
        done.append(name)
        reward, terminated, info = step_with(env, *done)
        assert reward == 1.0
        assert terminated is (i == 3)
        assert info == {n: float(n in done) for n in subtasks}
    # the other subtasks of the kitchen never pay
    other = [n for n in SUBTASKS if n not in subtasks]
    env.reset(seed=1)
    assert step_with(env, *other)[0] == 0.0


def test_later_subtask_first_gives_nothing_until_its_turn():
    env = make_kitchen_env(seed=0, task="base")
    assert step_with(env, "light switch") == (0.0, False, dict.fromkeys(TASKS["base"], 0.0))
    assert step_with(env, "light switch", "kettle")[0] == 0.0
    reward, terminated, info = step_with(env, "light switch", "kettle", "microwave")
    assert (reward, terminated) == (2.0, False) and info["kettle"] == 1.0 and info["light switch"] == 0.0
    # bottom burner unblocks the already-complete light switch: both count at this step
    assert step_with(env, *TASKS["base"])[:2] == (2.0, True)
    # a counted subtask is not lost (nor paid again) when the object moves back
    env.reset(seed=0)
    assert step_with(env, "microwave")[0] == 1.0
    assert step_with(env)[0] == 0.0
    assert step_with(env, "microwave", "kettle")[0] == 1.0


def test_misaligned_order_differs_from_base():
    env = make_kitchen_env(seed=0, task="misaligned")
    assert step_with(env, "microwave", "kettle")[0] == 1.0  # kettle is not part of the mis-aligned task
    assert step_with(env, "microwave", "slide cabinet", "hinge cabinet")[0] == 0.0  # light switch must come first
    assert step_with(env, "microwave", "light switch", "slide cabinet", "hinge cabinet")[:2] == (3.0, True)


def test_truncation():
    env = make_kitchen_env(seed=0, max_episode_steps=5)
    for i in range(5):
        _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        assert truncated is (i == 4) and not terminated and reward == 0.0
    env.reset()
    assert not env.step(np.zeros(9))[3]
    assert make_kitchen_env(seed=0).max_episode_steps == 280


def test_observation_layout_and_spaces():
    env = make_kitchen_env(seed=0, noise_ratio=0.0)
    obs, info = env.reset(seed=0)
    assert obs.shape == (30,) and obs.dtype == np.float32 and env.observation_space.shape == (30,)
    assert info == dict.fromkeys(TASKS["base"], 0.0)
    assert env.action_space == gymnasium.spaces.Box(-1.0, 1.0, (9,), np.float32)
    np.testing.assert_array_equal(obs, INIT_QPOS.astype(np.float32))
    obs, *_ = env.step(env.action_space.sample())
    np.testing.assert_array_equal(obs[:9], env.sim.data.qpos[:9].astype(np.float32))  # robot qpos
    np.testing.assert_array_equal(obs[9:], env.sim.data.qpos[9:].astype(np.float32))  # object qpos (21)


@pytest.mark.parametrize("task", ["base", "misaligned"])
def test_goal_variant(task):
    env = make_kitchen_env(seed=0, task=task, with_goal=True)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (60,) and env.observation_space.shape == (60,)
    expected = np.zeros(30, dtype=np.float32)
    for name in TASKS["base"]:  # the fork's observation goal is the base task's, for both orders
        expected[OBS_ELEMENT_INDICES[name]] = OBS_ELEMENT_GOALS[name]
    np.testing.assert_array_equal(obs[30:], expected)
    np.testing.assert_array_equal(env.step(np.zeros(9))[0][30:], expected)
    own = make_kitchen_env(seed=0, task=task, with_goal=True, goal_task=task).reset(seed=0)[0][30:]
    np.testing.assert_array_equal(own, task_goal(TASKS[task]))


def test_d4rl_observation_noise_and_control():
    env = make_kitchen_env(seed=0)
    obs, _ = env.reset(seed=0)
    amp = 0.1 * robot_config()["pos_noise_amp"]  # D4RL: robot_noise_ratio 0.1 on robot and object qpos
    assert amp[0] == pytest.approx(0.01) and amp[22] == pytest.approx(0.01) and amp[11] == pytest.approx(5e-5)
    noise = obs - INIT_QPOS
    assert np.all(np.abs(noise) <= amp + 1e-6) and np.all(np.abs(noise[amp > 1e-3]) > 0)
    # velocity action -> position target: last observed robot qpos + 2·a·0.08, clipped to the position bounds
    sim = env.sim
    assert sim.dt == pytest.approx(0.08)
    target = sim.control(np.full(9, 0.5))
    np.testing.assert_allclose(target[:7], obs[:7] + 0.08, atol=1e-6)
    np.testing.assert_allclose(target[7:], 0.04)  # finger bound


def test_seeding():
    a, b, c = (make_kitchen_env(seed=s) for s in (3, 3, 4))
    oa, ob, oc = a.reset(seed=3)[0], b.reset(seed=3)[0], c.reset(seed=4)[0]
    np.testing.assert_array_equal(oa, ob)
    assert not np.array_equal(oa, oc)
    actions = np.random.default_rng(0).uniform(-1, 1, (5, 9))
    np.testing.assert_array_equal([a.step(x)[0] for x in actions], [b.step(x)[0] for x in actions])


def test_simulation_error_ends_episode_with_minus_100(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    env = make_kitchen_env(seed=0)
    qvel = np.zeros(env.sim.model.nv)
    qvel[0] = np.nan
    env.sim.set_state(INIT_QPOS, qvel, env.np_random)
    obs, reward, terminated, _, info = env.step(np.zeros(9))
    assert reward == -100.0 and terminated and info["sim_error"] == 1.0 and np.isfinite(obs).all()
    # MuJoCo's warning reaches the log, not a MUJOCO_LOG.TXT in the working directory
    assert any("MuJoCo: Nan, Inf or huge value" in r.getMessage() for r in caplog.records)
    assert not list(tmp_path.iterdir())
    obs, _ = env.reset()  # recovers
    assert env.step(np.zeros(9))[1] == 0.0


def test_registry_and_gymnasium_id():
    spec = get_env_spec("kitchen")
    assert (spec.name, spec.ob_dim, spec.ac_dim, spec.visualizer) == ("kitchen", 30, 9, None)
    assert callable(spec.generate_dataset)  # the scripted generator, used on first pre-training run
    assert spec.make is make_kitchen_env and spec.preprocess is preprocess_kitchen_ob
    x = np.arange(30.0)
    assert preprocess_kitchen_ob(x) is x
    env = gymnasium.make(ENV_ID, task="misaligned")
    assert env.unwrapped.subtasks == TASKS["misaligned"]
    assert env.reset(seed=0)[0].shape == (30,)
