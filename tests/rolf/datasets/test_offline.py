"""Offline dataset loader: round trip, the original's quirks, and one-line errors for every kind of bad file."""

from __future__ import annotations

import gzip
import pickle

import numpy as np
from dataset_helpers import dataset_error as _error

from rolf.datasets.offline import load_trajectories, save_trajectories


def _traj(n: int = 30, d_o: int = 4, d_a: int = 2, seed: int = 0, bool_dones: bool = False) -> dict:
    rng = np.random.default_rng(seed)
    dones = np.zeros(n, dtype=bool if bool_dones else np.float32)
    return {"obs": rng.normal(size=(n, d_o)).astype(np.float32), "actions": rng.uniform(-1, 1, (n, d_a)).astype(np.float32),
            "dones": dones}


def _write(path, obj) -> str:
    with gzip.open(path, "wb") as f:
        pickle.dump(obj, f)
    return str(path)


def test_round_trip(tmp_path):
    trajs = [_traj(30, seed=0), _traj(45, seed=1)]
    path = tmp_path / "d" / "maze.gz"
    save_trajectories(path, trajs)
    assert not list(path.parent.glob("*.tmp-*"))
    out = load_trajectories(path, obs_dim=4, action_dim=2)
    assert len(out) == 2
    for a, b in zip(trajs, out):
        np.testing.assert_array_equal(a["obs"], b["obs"])
        np.testing.assert_array_equal(a["actions"], b["actions"])
        assert b["obs"].dtype == b["actions"].dtype == b["dones"].dtype == np.float32
        assert b["dones"][-1] == 1.0 and not b["dones"][:-1].any()
    assert trajs[0]["dones"][-1] == 0.0  # the caller's arrays are not modified


def test_accepts_bool_dones_and_casts(tmp_path):
    t = _traj(20, d_o=30, d_a=9, bool_dones=True)
    t["obs"] = t["obs"].astype(np.float64)
    out = load_trajectories(_write(tmp_path / "k.gz", [t]), obs_dim=30, action_dim=9)
    assert out[0]["dones"].dtype == np.float32 and out[0]["dones"][-1] == 1.0 and out[0]["obs"].dtype == np.float32


def test_done_inside_item_is_kept(tmp_path):
    t = _traj(20)
    t["dones"][9] = 1.0
    out = load_trajectories(_write(tmp_path / "m.gz", [t]))
    assert out[0]["dones"][9] == 1.0 and out[0]["dones"].sum() == 2.0


def test_skips_items_with_short_obs(tmp_path):
    short = _traj(20, seed=1)
    short["dones"] = np.zeros(25, dtype=np.float32)
    out = load_trajectories(_write(tmp_path / "s.gz", [_traj(20), short, _traj(22, seed=2)]), obs_dim=4, action_dim=2)
    assert [len(t["obs"]) for t in out] == [20, 22]
    assert "nothing to load" in _error(_write(tmp_path / "all_short.gz", [short]))


def test_keep_obs_dims(tmp_path):
    out = load_trajectories(_write(tmp_path / "c.gz", [_traj(15, d_o=39, d_a=7)]), action_dim=7, keep_obs_dims=21)
    assert out[0]["obs"].shape == (15, 21) and out[0]["obs"].flags.c_contiguous
    msg = _error(_write(tmp_path / "c2.gz", [_traj(15, d_o=10, d_a=7)]), keep_obs_dims=21)
    assert "item 0" in msg and "'obs'" in msg and "(T, >=21)" in msg


def test_rejects_wrong_obs_dim(tmp_path):
    path = _write(tmp_path / "maze.gz", [_traj(), _traj(), _traj(), _traj(120, d_o=5)])
    msg = _error(path, obs_dim=4, action_dim=2)
    assert msg == f"{path}: item 3: 'obs' has shape (120, 5), expected (T, 4)"


def test_rejects_wrong_action_dim(tmp_path):
    msg = _error(_write(tmp_path / "a.gz", [_traj(d_a=3)]), obs_dim=4, action_dim=2)
    assert "item 0" in msg and "'actions'" in msg and "(30, 3)" in msg and "(T, 2)" in msg


def test_rejects_bad_structure(tmp_path):
    assert "expected a list" in _error(_write(tmp_path / "dict.gz", {"obs": 1}))
    assert "empty list" in _error(_write(tmp_path / "empty.gz", []))
    assert "item 1" in _error(_write(tmp_path / "notdict.gz", [_traj(), [1, 2]]))
    t = _traj()
    del t["actions"]
    msg = _error(_write(tmp_path / "missing.gz", [t]))
    assert "item 0" in msg and "missing key 'actions'" in msg
    t = _traj()
    t["obs"] = t["obs"][:, 0]
    assert "'obs' has shape (30,), expected (T, d)" in _error(_write(tmp_path / "ndim.gz", [t]))
    t = _traj()
    t["actions"] = t["actions"][:-1]
    assert "'actions' has 29 steps, expected 30" in _error(_write(tmp_path / "len.gz", [t]))
    t = _traj()
    t["obs"] = np.array([["a"] * 4] * 30)
    assert "'obs' has dtype" in _error(_write(tmp_path / "dtype.gz", [t]))


def test_rejects_nans(tmp_path):
    t = _traj()
    t["obs"][7, 2] = np.nan
    msg = _error(_write(tmp_path / "nan.gz", [_traj(), t]))
    assert "item 1" in msg and "'obs'" in msg and "(7, 2)" in msg
    t = _traj()
    t["actions"][0, 0] = np.inf
    assert "'actions' has a non-finite value" in _error(_write(tmp_path / "inf.gz", [t]))


def test_rejects_bad_files(tmp_path):
    assert "file not found" in _error(tmp_path / "nope.gz")
    plain = tmp_path / "plain.gz"
    plain.write_bytes(pickle.dumps([_traj()]))
    assert "not a gzip file" in _error(plain)
    corrupt = tmp_path / "corrupt.gz"
    corrupt.write_bytes(b"\x1f\x8b\x08\x00" + np.random.default_rng(0).bytes(2000))
    assert "corrupt or truncated" in _error(corrupt)
    full = tmp_path / "full.gz"
    save_trajectories(full, [_traj(200, seed=i) for i in range(5)])
    cut = tmp_path / "cut.gz"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    assert "corrupt or truncated" in _error(cut)
    garbage = tmp_path / "garbage.gz"
    with gzip.open(garbage, "wb") as f:
        f.write(b"this is not a pickle")
    assert "not a readable pickle" in _error(garbage)
