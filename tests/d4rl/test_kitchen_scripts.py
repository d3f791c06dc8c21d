"""Scripted kitchen demonstrations (`d4rl.kitchen_scripts`): every subtask's script solves it from the reset state,
and scripts chain from each other's end poses."""

from __future__ import annotations

import numpy as np
import pytest

from d4rl.kitchen import OBS_ELEMENT_GOALS, OBS_ELEMENT_INDICES, SUBTASKS, KitchenSim, subtask_complete
from d4rl.kitchen_scripts import SUBTASK_NAMES, ScriptNoise, TaskSpaceController, rot_z, rotation_error, run_subtask


def goal_distance(obs: np.ndarray, name: str) -> float:
    return float(np.linalg.norm(obs[OBS_ELEMENT_INDICES[name]] - OBS_ELEMENT_GOALS[name]))


def test_subtask_names_match_the_env():
    assert SUBTASK_NAMES == SUBTASKS and len(SUBTASK_NAMES) == 7
    assert ScriptNoise() == ScriptNoise(waypoint=0.01, action=0.05)
    with pytest.raises(ValueError, match="unknown kitchen subtask"):
        run_subtask(KitchenSim(), "oven", np.random.default_rng(0), np.zeros(30))


def test_controller_reaches_and_holds_a_pose():
    sim = KitchenSim()
    rng = np.random.default_rng(0)
    obs = sim.reset(rng)
    ctrl = TaskSpaceController(sim)
    target = ctrl.ee_pos() + np.array([0.05, 0.1, -0.05])
    rot = rot_z(0.3) @ ctrl.ee_rot()
    for _ in range(30):
        act = ctrl.action(obs, target, rot, 1.0)
        obs = sim.step(np.clip(act, -1.0, 1.0), rng)
    assert np.linalg.norm(ctrl.ee_pos() - target) < 0.01
    assert np.linalg.norm(rotation_error(rot, ctrl.ee_rot())) < 0.05


@pytest.mark.parametrize("name", SUBTASK_NAMES)
def test_each_subtask_succeeds_from_reset(name):
    sim = KitchenSim()
    rng = np.random.default_rng(0)
    obs = sim.reset(rng)
    start = goal_distance(obs, name)
    obs_seq, actions, success = run_subtask(sim, name, rng, obs)
    assert success
    final = sim.observe(rng)
    assert subtask_complete(final, name)
    assert goal_distance(final, name) < start - 0.2  # the object really moved toward its goal
    assert obs_seq.dtype == np.float32 and actions.dtype == np.float32
    assert obs_seq.shape == (len(actions), 30) and actions.shape[1] == 9 and 0 < len(actions) <= 120
    assert np.all(np.abs(actions) <= 1.0)
    np.testing.assert_array_equal(obs_seq[0], obs)  # obs_seq[t] is the observation action t was taken in
    assert not sim.unstable()


def test_a_chain_of_subtasks():
    sim = KitchenSim()
    rng = np.random.default_rng(0)
    obs = sim.reset(rng)
    chain = ("microwave", "bottom burner", "slide cabinet")
    for name in chain:
        _, _, success = run_subtask(sim, name, rng, obs)
        assert success, name
        obs = sim.observe(rng)
    assert all(subtask_complete(obs, name) for name in chain)
    assert not sim.unstable()


def test_already_complete_subtask_takes_no_steps():
    sim = KitchenSim()
    rng = np.random.default_rng(0)
    sim.reset(rng)
    qpos = sim.data.qpos.copy()
    qpos[OBS_ELEMENT_INDICES["slide cabinet"]] = OBS_ELEMENT_GOALS["slide cabinet"]
    obs = sim.set_state(qpos, None, rng)
    obs_seq, actions, success = run_subtask(sim, "slide cabinet", rng, obs, noise=ScriptNoise(0.0, 0.0))
    assert success and actions.shape == (0, 9) and obs_seq.shape == (0, 30)
