"""The scripted kitchen dataset generator: container format, determinism across worker counts, completed subtasks
visible in the recorded states, CLI."""

from __future__ import annotations

import gzip
import pickle

import numpy as np
import pytest

from d4rl.generate import MIN_KITCHEN_LEN, generate_kitchen_dataset, kitchen_episode, main
from d4rl.kitchen import BONUS_THRESH, OBS_ELEMENT_GOALS, OBS_ELEMENT_INDICES, SUBTASKS
from rolf.datasets.offline import load_trajectories

KW = dict(num_episodes=2, seed=5, n_subtasks=2, progress=False)


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    d = tmp_path_factory.mktemp("kitchen_gen")
    s1 = generate_kitchen_dataset(str(d / "w1.gz"), workers=1, **KW)
    s2 = generate_kitchen_dataset(str(d / "w2.gz"), workers=2, **KW)
    return d, s1, s2


def _distance(obs: np.ndarray, name: str) -> np.ndarray:
    """Distance of every state in obs (T, 30) to the subtask's goal."""
    return np.linalg.norm(obs[:, OBS_ELEMENT_INDICES[name]] - OBS_ELEMENT_GOALS[name], axis=1)


def test_container_format_and_stats(datasets):
    d, stats, _ = datasets
    with gzip.open(d / "w1.gz", "rb") as f:
        trajs = pickle.load(f)
    assert len(trajs) == 2 == stats["trajectories"]
    for t in trajs:
        n = len(t["obs"])
        assert set(t) == {"obs", "actions", "dones"} and n >= MIN_KITCHEN_LEN
        assert t["obs"].shape == (n, 30) and t["actions"].shape == (n, 9) and t["dones"].shape == (n,)
        assert t["obs"].dtype == t["actions"].dtype == np.float32
        assert t["dones"][-1] == 1.0 and t["dones"][:-1].sum() == 0.0
        assert np.abs(t["actions"]).max() <= 1.0 and np.isfinite(t["obs"]).all()
        # consecutive states are one 0.08 s control step apart: joints move at most 2 rad/s · 0.08 s (+ noise)
        assert np.abs(np.diff(t["obs"][:, :7], axis=0)).max() < 0.2
    assert stats["total_steps"] == sum(len(t["obs"]) for t in trajs)
    assert 1.0 <= stats["mean_subtasks"] <= 2.0
    rates = {k: v for k, v in stats.items() if k.startswith("success_")}
    assert rates and all(0.0 <= v <= 1.0 for v in rates.values())
    load_trajectories(d / "w1.gz", 30, 9)  # what pre-training reads
    assert not list(d.glob("*.tmp-*"))


def test_same_file_for_any_worker_count(datasets):
    d, s1, s2 = datasets
    assert (d / "w1.gz").read_bytes() == (d / "w2.gz").read_bytes()


def test_episode_reaches_its_subtasks_in_order():
    ep = kitchen_episode(np.random.SeedSequence(11), n_subtasks=3)
    assert ep["order"] and set(ep["order"]) <= set(SUBTASKS)
    obs = ep["obs"]
    first_close = []
    for name in ep["order"]:
        d = _distance(obs, name)
        assert d[0] > BONUS_THRESH  # not already done at reset
        assert d[-1] < BONUS_THRESH + 0.1  # done (within one control step) by the end of the episode
        first_close.append(int(np.argmax(d < BONUS_THRESH + 0.1)))
    assert first_close == sorted(first_close)  # solved one after the other, in the episode's order


def test_cli(tmp_path, capsys):
    out = tmp_path / "k.gz"
    main(["kitchen", "--out", str(out), "--num-episodes", "1", "--subtasks", "2", "--workers", "1", "--seed", "2",
          "--no-progress"])
    printed = capsys.readouterr().out
    assert f"{out}: 1 episodes" in printed and "scripted subtask success:" in printed
    assert len(load_trajectories(out, 30, 9)) == 1
