"""The seeded maze dataset generator: format, determinism across worker counts, physical validity, controller."""

from __future__ import annotations

import gzip
import pickle

import numpy as np
import pytest

from d4rl.generate import generate_maze_dataset, main
from d4rl.maze_controller import GridPlanner, WaypointController
from d4rl.maze_layout import is_wall_pos, load_layout
from d4rl.point_maze import PointMassSim

KW = dict(num_traj=6, seed=3, max_steps=400, progress=False)


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    d = tmp_path_factory.mktemp("gen")
    stats1 = generate_maze_dataset(str(d / "w1.gz"), workers=1, **KW)
    stats2 = generate_maze_dataset(str(d / "w2.gz"), workers=2, **KW)
    return d, stats1, stats2


def _load(path):
    with gzip.open(path, "rb") as f:
        return pickle.load(f)


def test_format_and_validity(datasets):
    d, stats, _ = datasets
    trajs = _load(d / "w1.gz")
    assert isinstance(trajs, list) and len(trajs) == 6 == stats["trajectories"]
    for t in trajs:
        assert set(t) == {"obs", "actions", "dones"}
        n = len(t["obs"])
        assert 20 < n <= 400
        assert t["obs"].dtype == t["actions"].dtype == t["dones"].dtype == np.float32
        assert t["obs"].shape == (n, 4) and t["actions"].shape == (n, 2) and t["dones"].shape == (n,)
        assert t["dones"][-1] == 1.0 and not t["dones"][:-1].any()
        assert np.abs(t["actions"]).max() <= 1.0 and np.isfinite(t["obs"]).all()
        assert not is_wall_pos(t["obs"][:, :2]).any()  # never inside a wall cell
        assert np.abs(t["obs"][:, 2:]).max() <= 5.3  # velocity clip (5 + one step of acceleration)
    assert stats["total_steps"] == sum(len(t["obs"]) for t in trajs)
    assert not list(d.glob("*.tmp-*"))  # atomic write leaves nothing behind


def test_same_output_for_any_worker_count(datasets):
    d, s1, s2 = datasets
    assert (d / "w1.gz").read_bytes() == (d / "w2.gz").read_bytes()
    assert s1["total_steps"] == s2["total_steps"]


def test_different_seed_differs(tmp_path):
    generate_maze_dataset(str(tmp_path / "a.gz"), num_traj=2, seed=0, workers=1, max_steps=100, progress=False)
    generate_maze_dataset(str(tmp_path / "b.gz"), num_traj=2, seed=1, workers=1, max_steps=100, progress=False)
    a, b = _load(tmp_path / "a.gz"), _load(tmp_path / "b.gz")
    assert not np.array_equal(a[0]["obs"][0], b[0]["obs"][0])


def test_dynamics_consistent_with_simulator(datasets):
    """Replaying the recorded actions from the recorded first state reproduces the recorded observations."""
    d, _, _ = datasets
    t = _load(d / "w1.gz")[0]
    sim = PointMassSim()
    sim.set_state(t["obs"][0, :2].astype(np.float64), t["obs"][0, 2:].astype(np.float64))
    replay = np.stack([sim.step(a.astype(np.float64)) for a in t["actions"][:50]])
    np.testing.assert_allclose(replay, t["obs"][1:51], atol=1e-3)  # float32 rounding of the start only


def test_grid_planner_path():
    planner = GridPlanner(load_layout())
    path = planner.path((10, 24), (18, 8))
    assert path[-1] == (18, 8) and len(path) == 34  # BFS shortest distance between start and goal cells
    assert all(abs(a[0] - b[0]) + abs(a[1] - b[1]) == 1 for a, b in zip([(10, 24)] + path[:-1], path))
    assert not any(load_layout()[c] for c in path)
    assert planner.path((10, 24), (16, 20)) is None  # the one enclosed free cell of the layout
    assert planner.path((5, 5), (5, 5)) == [(5, 5)]


def test_controller_reaches_nearby_goals():
    planner, sim = GridPlanner(load_layout()), PointMassSim()
    ctrl = WaypointController(planner)
    rng = np.random.default_rng(0)
    reached = 0
    for _ in range(5):
        start = np.array([10.0, 24.0]) + rng.uniform(-0.1, 0.1, 2)
        sim.set_state(start, np.zeros(2))
        assert ctrl.reset(start, np.array([10.0, 16.0]), rng)  # 8+ cells away around a corner
        for _ in range(600):
            q, v = sim.data.qpos, sim.data.qvel
            ax, ay, done = ctrl.act(q[0], q[1], v[0], v[1])
            if done:
                reached += 1
                assert np.hypot(q[0] - 10.0, q[1] - 16.0) < 0.1
                break
            sim.step(np.array([ax, ay]))
            assert not is_wall_pos(sim.data.qpos)
    assert reached == 5


def test_cli(tmp_path, capsys):
    out = tmp_path / "sub" / "m.gz"
    main(["maze", "--out", str(out), "--num-traj", "2", "--seed", "0", "--workers", "1", "--max-steps", "100",
          "--no-progress"])
    assert out.is_file() and len(_load(out)) == 2
    line = capsys.readouterr().out.strip()
    assert "2 trajectories" in line and "steps/s" in line and "\n" not in line


def test_generator_workers_leave_ctrl_c_to_the_parent():
    """Ctrl-C reaches every process of the group: the workers ignore it, so only the parent answers (one line,
    tests/test_run_cli.py), not each worker with a traceback of its own."""
    import signal

    from d4rl.generate import _results

    assert list(_results(signal.getsignal, [signal.SIGINT] * 2, workers=2)) == [signal.SIG_IGN] * 2
