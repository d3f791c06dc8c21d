"""Kitchen dataset loaders (D4RL HDF5, Minari directory, the original kitchen.gz) on small files the tests write."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest

from envs import get_env_spec
from rolf.datasets.kitchen import FRANKA_KITCHEN_QPOS, load_d4rl_hdf5, load_minari_dir, main, split_at_dones
from rolf.datasets.offline import DatasetError, load_trajectories, save_trajectories
from skill_trainer import dataset_buffers

N = 25


def _d4rl_arrays(n: int = N, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    terminals, timeouts = np.zeros(n, bool), np.zeros(n, bool)
    terminals[[9, 19]] = True
    timeouts[14] = True
    return {"observations": rng.normal(size=(n, 60)), "actions": rng.uniform(-1, 1, (n, 9)).astype(np.float32),
            "rewards": np.zeros(n, np.float32), "terminals": terminals, "timeouts": timeouts}


def _write_h5(path: Path, tree: dict) -> Path:
    """Writes nested dicts of arrays as HDF5 groups/datasets."""
    def fill(group, node):
        for key, value in node.items():
            if isinstance(value, dict):
                fill(group.create_group(key), value)
            else:
                group.create_dataset(key, data=value)

    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        fill(f, tree)
    return path


def _minari_episode(t: int, seed: int, obs_dim: int = 59) -> dict:
    rng = np.random.default_rng(seed)
    terminations = np.zeros(t, bool)
    terminations[-1] = True
    return {"id": np.int64(seed),
            "observations": {"observation": rng.normal(size=(t + 1, obs_dim)),
                             "achieved_goal": {"microwave": rng.normal(size=(t + 1, 1))},
                             "desired_goal": {"microwave": np.full((t + 1, 1), -0.75)}},
            "actions": rng.uniform(-1, 1, (t, 9)), "rewards": np.zeros(t), "terminations": terminations,
            "truncations": np.zeros(t, bool), "infos": {"success": np.zeros(t + 1, bool)}}


def _error(fn, *args, contains: tuple[str, ...] = ()) -> str:
    with pytest.raises(DatasetError) as e:
        fn(*args)
    msg = str(e.value)
    assert "\n" not in msg
    for s in contains:
        assert s in msg, msg
    return msg


def test_split_at_dones_cuts_after_every_done_and_keeps_the_tail():
    obs, actions = np.arange(14.0).reshape(7, 2), np.zeros((7, 9))
    items = split_at_dones(obs, actions, np.array([0, 1, 0, 0, 1, 0, 0]))
    assert [len(i["obs"]) for i in items] == [2, 3, 2]
    assert all(i["dones"].dtype == np.float32 and i["dones"][-1] == 1 and not i["dones"][:-1].any() for i in items)
    np.testing.assert_array_equal(items[1]["obs"], obs[2:5])
    assert len(split_at_dones(obs, actions, np.zeros(7))) == 1


def test_d4rl_hdf5(tmp_path):
    arrays = _d4rl_arrays()
    path = _write_h5(tmp_path / "kitchen_mixed-v0.hdf5", arrays)
    items = load_d4rl_hdf5(path)
    assert [len(i["obs"]) for i in items] == [10, 5, 5, 5]  # terminals 9, 19, timeout 14, tail 20..24
    for item, start in zip(items, (0, 10, 15, 20)):
        n = len(item["obs"])
        assert item["obs"].dtype == item["actions"].dtype == np.float32
        np.testing.assert_allclose(item["obs"], arrays["observations"][start:start + n, :30].astype(np.float32))
        np.testing.assert_array_equal(item["actions"], arrays["actions"][start:start + n])
    assert load_d4rl_hdf5(path, obs_dims=60)[0]["obs"].shape == (10, 60)  # with the goal (SPiRL family)
    # round trip through the container format, as the pre-training loader reads it
    out = tmp_path / "kitchen.gz"
    save_trajectories(out, items)
    assert [len(t["obs"]) for t in load_trajectories(out, 30, 9)] == [10, 5, 5, 5]


def test_d4rl_hdf5_without_timeouts(tmp_path):
    arrays = _d4rl_arrays()
    del arrays["timeouts"]
    assert [len(i["obs"]) for i in load_d4rl_hdf5(_write_h5(tmp_path / "k.hdf5", arrays))] == [10, 10, 5]


@pytest.mark.parametrize("change, contains", [
    (lambda a: a.pop("actions"), ("missing key 'actions'",)),
    (lambda a: a.pop("terminals"), ("missing key 'terminals'",)),
    (lambda a: a.update(observations=np.zeros((N, 20))), ("'observations' has shape (25, 20), expected (T, >=30)",)),
    (lambda a: a.update(actions=np.zeros((N, 7))), ("'actions' has shape (25, 7), expected (T, 9)",)),
    (lambda a: a.update(terminals=np.zeros(N - 1, bool)), ("'terminals' has 24 steps, expected 25",)),
    (lambda a: a.update(observations=np.full((N, 60), np.nan)), ("non-finite",)),
])
def test_d4rl_hdf5_errors(tmp_path, change, contains):
    arrays = _d4rl_arrays()
    change(arrays)
    path = _write_h5(tmp_path / "bad.hdf5", arrays)
    _error(load_d4rl_hdf5, path, contains=(str(path),) + contains)


def test_d4rl_hdf5_not_hdf5_or_missing(tmp_path):
    bad = tmp_path / "x.hdf5"
    bad.write_bytes(b"not hdf5")
    _error(load_d4rl_hdf5, bad, contains=(str(bad), "not a readable HDF5 file"))
    _error(load_d4rl_hdf5, tmp_path / "missing.hdf5", contains=("file not found",))


def test_minari_dir(tmp_path):
    episodes = {f"episode_{i}": _minari_episode(t, seed=i) for i, t in ((0, 12), (2, 7), (10, 9))}
    _write_h5(tmp_path / "mixed-v2" / "data" / "main_data.hdf5", episodes)
    items = load_minari_dir(tmp_path / "mixed-v2")
    assert [len(i["obs"]) for i in items] == [12, 7, 9]  # numeric episode order (2 before 10), final obs dropped
    for item, name in zip(items, ("episode_0", "episode_2", "episode_10")):
        ep = episodes[name]
        full = ep["observations"]["observation"][:-1]
        expected = np.concatenate([full[:, :9], full[:, 18:39]], 1)
        np.testing.assert_allclose(item["obs"], expected.astype(np.float32))
        np.testing.assert_allclose(item["actions"], ep["actions"].astype(np.float32))
        assert item["dones"][-1] == 1 and not item["dones"][:-1].any()
    assert list(FRANKA_KITCHEN_QPOS) == list(range(9)) + list(range(18, 39))
    # the HDF5 file itself works too, and so do plain 30-d observation arrays
    assert len(load_minari_dir(tmp_path / "mixed-v2" / "data" / "main_data.hdf5")) == 3
    plain = _minari_episode(5, seed=3)
    plain["observations"] = plain["observations"]["observation"][:, FRANKA_KITCHEN_QPOS]
    assert load_minari_dir(_write_h5(tmp_path / "p.hdf5", {"episode_0": plain}))[0]["obs"].shape == (5, 30)


@pytest.mark.parametrize("change, contains", [
    (lambda e: e["observations"].update(observation=np.zeros((9, 40))),
     ("episode_0", "'observations/observation' has shape (9, 40)")),
    (lambda e: e["observations"].update(observation=np.zeros((8, 59))), ("episode_0", "has 8 steps, expected 9")),
    (lambda e: e["observations"].pop("observation"), ("episode_0/observations", "missing key 'observation'")),
    (lambda e: e.pop("truncations"), ("episode_0", "missing key 'truncations'")),
    (lambda e: e.update(actions=np.zeros((8, 2))), ("'actions' has shape (8, 2), expected (T, 9)",)),
])
def test_minari_errors(tmp_path, change, contains):
    ep = _minari_episode(8, seed=0)
    change(ep)
    path = _write_h5(tmp_path / "d" / "data" / "main_data.hdf5", {"episode_0": ep})
    _error(load_minari_dir, tmp_path / "d", contains=(str(path),) + contains)


def test_minari_not_a_dataset(tmp_path):
    _error(load_minari_dir, tmp_path, contains=(str(tmp_path), "no data/main_data.hdf5"))
    path = _write_h5(tmp_path / "data" / "main_data.hdf5", {"other": {"x": np.zeros(3)}})
    _error(load_minari_dir, tmp_path, contains=(str(path), "no 'episode_<i>' groups"))


def test_cli(tmp_path, capsys):
    src = _write_h5(tmp_path / "k.hdf5", _d4rl_arrays())
    out = tmp_path / "data" / "kitchen.gz"
    assert main(["--d4rl", str(src), "--out", str(out)]) == 0
    assert "4 trajectories, 25 steps, obs dim 30" in capsys.readouterr().out
    assert len(load_trajectories(out, 30, 9)) == 4
    _write_h5(tmp_path / "m" / "data" / "main_data.hdf5", {"episode_0": _minari_episode(6, seed=0)})
    assert main(["--minari", str(tmp_path / "m"), "--out", str(out)]) == 0
    assert main(["--d4rl", str(tmp_path / "missing.hdf5"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing.hdf5: file not found" in err


def test_original_kitchen_gz_with_bool_dones_loads(tmp_path):
    """The original `kitchen.gz` layout: float32 obs (T, 30), actions (T, 9), bool dones, several demos per item."""
    rng = np.random.default_rng(0)
    items = []
    for t in (120, 150):
        dones = np.zeros(t, bool)
        dones[[59, t - 1]] = True
        items.append({"obs": rng.normal(size=(t, 30)).astype(np.float32),
                      "actions": rng.uniform(-1, 1, (t, 9)).astype(np.float32), "dones": dones})
    path = tmp_path / "kitchen.gz"
    with gzip.open(path, "wb") as f:
        pickle.dump(items, f)
    trajs = load_trajectories(path, 30, 9)
    assert [t["dones"].dtype for t in trajs] == [np.float32, np.float32]
    np.testing.assert_array_equal(trajs[0]["dones"], items[0]["dones"].astype(np.float32))
    # and the pre-training loader of the kitchen env splits the items at every done
    train, val = dataset_buffers(str(path), get_env_spec("kitchen"), 0.5, np.random.default_rng(0))
    assert (len(train), len(val)) == (2, 2)
    assert train.num_transitions + val.num_transitions == 270
