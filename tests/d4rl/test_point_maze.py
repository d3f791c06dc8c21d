"""Point-mass physics, the maze task (reward, termination, truncation, seeding) and the layout file."""

from __future__ import annotations

import hashlib
import math

import gymnasium
import numpy as np
import pytest
import torch

from d4rl.maze_layout import LAYOUT_PATH, free_cells, is_wall_pos, load_layout, pos_to_cell, to_plot_xy
from d4rl.point_maze import ENV_ID, MazeEnv, PointMassSim, register
from envs.maze import make_maze_env, preprocess_maze_ob

DT, GEAR, DAMPING = 0.01, 100.0, 1.0
MASS = 1000.0 * 4.0 / 3.0 * math.pi * 0.1 ** 3


def euler_step(q: np.ndarray, v: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MuJoCo's Euler step with implicit joint damping: (m + dt·b)·v' = m·v + dt·gear·u, q' = q + dt·v'."""
    v_new = (MASS * v + DT * GEAR * u) / (MASS + DT * DAMPING)
    return q + DT * v_new, v_new


def touches_wall(xy: np.ndarray, radius: float = 0.1 + 0.002) -> bool:
    """Whether the particle (radius + contact margin) at qpos `xy` overlaps a wall cell."""
    offsets = radius * np.array([[0, 0], [1, 0], [-1, 0], [0, 1], [0, -1], [1, 1], [1, -1], [-1, 1], [-1, -1]])
    return bool(is_wall_pos(xy + offsets).any())


@pytest.fixture(scope="module")
def sim() -> PointMassSim:
    return PointMassSim()


def test_layout_file():
    assert hashlib.sha256(LAYOUT_PATH.read_bytes()).hexdigest() == \
        "fa8a408f68ba53ce8c86ec4bd555b8e6249cf5f2152fff9e21db073366ac86cc"
    walls = load_layout()
    assert walls.shape == (42, 42) and walls.dtype == bool
    assert walls[0].all() and walls[-1].all() and walls[:, 0].all() and walls[:, -1].all()
    assert walls[1:41, 1:41].sum() == 418  # 26.1 % of the inner 40×40 cells
    assert round(100 * walls[1:41, 1:41].mean(), 1) == 26.1
    assert not walls[10, 24] and not walls[18, 8] and not walls[1, 1]  # start, goal, the 'G' marker
    assert len(free_cells()) == 42 * 42 - walls.sum()


def test_mass_and_model(sim):
    assert sim.mass == pytest.approx(MASS, rel=1e-9)
    assert sim.model.opt.timestep == DT
    assert sim.model.ngeom == 1 + load_layout().sum()


@pytest.mark.parametrize("q0, v0, u", [((10.0, 24.0), (0.0, 0.0), (1.0, 0.5)),
                                       ((10.2, 23.9), (1.5, -2.0), (-0.3, 0.8))])
def test_one_step_matches_implicit_euler(sim, q0, v0, u):
    q0, v0, u = map(np.array, (q0, v0, u))
    sim.set_state(q0, v0)
    ob = sim.step(u)
    q1, v1 = euler_step(q0, v0, u)
    assert ob.dtype == np.float32 and ob.shape == (4,)
    np.testing.assert_allclose(ob[:2], q1, atol=1e-6)
    np.testing.assert_allclose(ob[2:], v1, atol=1e-6)
    np.testing.assert_allclose(sim.data.qvel, v1, atol=1e-12)  # float64 internally


def test_velocity_and_action_clipping(sim):
    q0 = np.array([10.0, 24.0])
    sim.set_state(q0, np.array([9.0, -7.0]))
    ob = sim.step(np.array([3.0, -4.0]))  # action clipped to (1, −1), velocity clipped to (5, −5) first
    q1, v1 = euler_step(q0, np.array([5.0, -5.0]), np.array([1.0, -1.0]))
    np.testing.assert_allclose(ob[2:], v1, atol=1e-6)
    np.testing.assert_allclose(ob[:2], q1, atol=1e-6)
    # Full throttle at the speed limit: every step starts again from 5, so the speed never builds up past one
    # step of acceleration above it.
    sim.set_state(q0, np.array([5.0, 0.0]))
    v_limit = euler_step(q0, np.array([5.0, 0.0]), np.array([1.0, 0.0]))[1][0]
    for _ in range(3):
        ob = sim.step(np.array([1.0, 0.0]))
        assert ob[2] == pytest.approx(v_limit, abs=1e-6) and 5.0 < v_limit < 5.25


def test_walls_block(sim):
    walls = load_layout()
    # the first wall cell along +y from the start cell (10, 24)
    h_wall = next(h for h in range(24, 42) if walls[10, h])
    sim.set_state(np.array([10.0, float(h_wall - 1)]), np.zeros(2))
    ys = []
    for _ in range(200):
        ob = sim.step(np.array([0.0, 1.0]))
        ys.append(ob[1])
        assert pos_to_cell(ob[:2])[1] < h_wall and not is_wall_pos(ob[:2])
    # Pressed against the wall face at qpos h_wall − 0.7 (cell edge) minus the 0.1 radius; the soft contact lets
    # the full 100 N push sink in by ~0.015.
    assert h_wall - 0.8 <= max(ys) <= h_wall - 0.8 + 0.03
    assert abs(ob[3]) < 1e-3  # at rest against the wall


def test_reset_start_distribution_and_seeding():
    env = MazeEnv()
    starts = []
    for seed in range(20):
        ob, info = env.reset(seed=seed)
        assert ob.dtype == np.float32 and env.observation_space.contains(ob)
        # start = (10, 24) + U(−2, 2)² from the env's own Gymnasium RNG, then one zero-action step
        expected = np.array([10.0, 24.0]) + gymnasium.utils.seeding.np_random(seed)[0].uniform(-2.0, 2.0, size=2)
        if touches_wall(expected):  # as in the original, the noise can put the start into a wall: pushed out
            np.testing.assert_allclose(ob[:2], expected, atol=0.25)
        else:
            np.testing.assert_allclose(ob, [*expected, 0.0, 0.0], atol=1e-5)
        assert np.all(np.abs(ob[:2] - np.array([10.0, 24.0])) <= 2.25) and info["success"] == 0.0
        starts.append(ob)
    assert len({tuple(s) for s in starts}) == 20  # different seeds -> different starts
    again, _ = env.reset(seed=7)
    np.testing.assert_array_equal(again, starts[7])  # same seed -> same start
    state = np.random.get_state()
    np.random.seed(123)
    a, _ = MazeEnv().reset(seed=3)
    np.random.seed(456)
    b, _ = MazeEnv().reset(seed=3)
    np.random.set_state(state)
    np.testing.assert_array_equal(a, b)  # the global NumPy RNG plays no part


def test_reward_and_termination_at_goal():
    env = MazeEnv()
    env.reset(seed=0)
    env.set_state(np.array([18.0, 9.0]), np.zeros(2))  # 1.0 from the goal (18, 8)
    ob, rew, terminated, truncated, info = env.step(np.zeros(2))
    assert rew == 100.0 and terminated and not truncated and info["success"] == 1.0
    env.set_state(np.array([18.0, 10.5]), np.zeros(2))  # 2.5 away: nothing
    ob, rew, terminated, truncated, info = env.step(np.zeros(2))
    assert rew == 0.0 and not terminated and info["success"] == 0.0


def test_truncation():
    env = MazeEnv(max_episode_steps=5)
    env.reset(seed=0)
    flags = [env.step(np.zeros(2))[2:4] for _ in range(5)]
    assert flags == [(False, False)] * 4 + [(False, True)]
    env.reset()
    assert env.step(np.zeros(2))[3] is False  # reset restarts the count


def test_simulation_error_gives_penalty():
    env = MazeEnv()
    env.reset(seed=0)
    env.sim.data.qpos[0] = np.nan
    ob, rew, terminated, _, info = env.step(np.zeros(2))
    assert rew == -100.0 and terminated and np.isfinite(ob).all() and info["sim_error"] == 1.0


def test_gymnasium_registration_and_adapter():
    register()  # idempotent
    env = gymnasium.make(ENV_ID, max_episode_steps=50)
    ob, _ = env.reset(seed=1)
    assert ob.shape == (4,)
    e1, e2 = make_maze_env(seed=5, max_episode_steps=10), make_maze_env(seed=5, max_episode_steps=10)
    np.testing.assert_array_equal(e1.reset()[0], e2.reset()[0])  # seeded at construction
    np.testing.assert_array_equal(e1.action_space.sample(), e2.action_space.sample())
    assert e1.max_episode_steps == 10


def test_preprocess_numpy_and_torch():
    ob = np.array([[40.0, 20.0, 5.0, -10.0]], dtype=np.float32)
    expected = np.array([[0.5, 0.0, 0.5, -1.0]], dtype=np.float32)
    np.testing.assert_allclose(preprocess_maze_ob(ob), expected)
    out = preprocess_maze_ob(torch.from_numpy(ob).expand(3, 2, 4))
    assert isinstance(out, torch.Tensor) and out.shape == (3, 2, 4)
    np.testing.assert_allclose(out[1, 1].numpy(), expected[0])


def test_plot_transform_matches_drawn_cells():
    # Cell (w, h) is drawn at plot x ∈ [40 − h, 41 − h], plot y ∈ [w − 1, w]; positions inside it must land there.
    rng = np.random.default_rng(0)
    cells = free_cells()[rng.integers(len(free_cells()), size=200)]
    xy = cells - 0.2 + rng.uniform(-0.49, 0.49, size=(200, 2))  # cell centre in qpos is (w − 0.2, h − 0.2)
    assert (pos_to_cell(xy) == cells).all()
    p = to_plot_xy(xy)
    assert np.all((p[:, 0] > 40 - cells[:, 1]) & (p[:, 0] < 41 - cells[:, 1]))
    assert np.all((p[:, 1] > cells[:, 0] - 1) & (p[:, 1] < cells[:, 0]))
