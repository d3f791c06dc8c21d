"""The real-CALVIN split loader on a tiny synthetic split folder in CALVIN's per-frame npz layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rolf.datasets.calvin import chunk_bounds, load_calvin_split, main
from rolf.datasets.offline import CALVIN_KEEP_OBS_DIMS, DatasetError, load_trajectories


def _frame(i: int) -> dict[str, np.ndarray]:
    """Frame i's arrays; values encode the index so the test can check which frame landed where."""
    return {"robot_obs": np.full(15, i, np.float64), "scene_obs": np.full(24, -i, np.float64),
            "rel_actions": np.full(7, i / 1000.0, np.float64), "actions": np.zeros(7),
            "rgb_static": np.zeros((8, 8, 3), np.uint8)}


def _write_split(root: Path, ranges: list[tuple[int, int]], skip: int | None = None, **overrides) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    np.save(root / "ep_start_end_ids.npy", np.array(ranges, dtype=np.int64))
    for s, e in ranges:
        for i in range(s, e + 1):
            if i != skip:
                np.savez(root / f"episode_{i:07d}.npz", **{**_frame(i), **overrides})
    return root


def test_chunk_bounds_cut_full_chunks_and_keep_long_enough_remainders():
    assert list(chunk_bounds(0, 9, 4, 2)) == [(0, 4), (4, 8), (8, 10)]
    assert list(chunk_bounds(0, 8, 4, 2)) == [(0, 4), (4, 8)]  # 1-step remainder dropped
    assert list(chunk_bounds(5, 5, 4, 1)) == [(5, 6)]


def test_split_is_cut_into_chunks_with_robot_scene_obs_and_rel_actions(tmp_path):
    split = _write_split(tmp_path / "training", [(3, 12), (100, 104)])
    items = load_calvin_split(split, chunk_len=4, min_len=2)
    assert [len(t["obs"]) for t in items] == [4, 4, 2, 4]  # 10 frames -> 4+4+2; 5 frames -> 4 (+1 dropped)
    first, last = items[0], items[-1]
    assert first["obs"].shape == (4, 39) and first["actions"].shape == (4, 7)
    np.testing.assert_array_equal(first["obs"][:, 0], [3, 4, 5, 6])  # robot_obs first
    np.testing.assert_array_equal(first["obs"][:, 15], [-3, -4, -5, -6])  # then scene_obs
    np.testing.assert_allclose(last["actions"][:, 0], np.arange(100, 104) / 1000.0, rtol=1e-6)  # rel_actions
    for t in items:
        assert t["dones"][-1] == 1.0 and t["dones"][:-1].sum() == 0.0


def test_cli_writes_a_container_file_that_the_pretraining_loader_reads(tmp_path, capsys):
    train = _write_split(tmp_path / "training", [(0, 29)])
    val = _write_split(tmp_path / "validation", [(50, 64)])
    out = tmp_path / "calvin.gz"
    assert main([str(train), str(val), "--out", str(out), "--chunk-len", "12", "--no-progress"]) == 0
    assert "3 trajectories, 36 steps" in capsys.readouterr().out  # 12+12 (6 < min_len 11 dropped) + 12 (3 dropped)
    trajs = load_trajectories(out, 39, 7, keep_obs_dims=CALVIN_KEEP_OBS_DIMS)
    assert len(trajs) == 3
    assert all(t["obs"].shape[1] == 21 for t in trajs)


@pytest.mark.parametrize("case, message", [
    ("no_ranges", "ep_start_end_ids.npy: file not found"),
    ("missing_frame", "episode_0000005.npz: file not found"),
    ("missing_key", "missing key 'rel_actions'"),
    ("wrong_size", "'scene_obs' has 20 values, expected 24"),
    ("bad_ranges", "expected (K>=1, 2) integers"),
])
def test_bad_split_folders_give_one_line_errors(tmp_path, case, message):
    split = tmp_path / "training"
    if case == "no_ranges":
        split.mkdir()
    elif case == "missing_frame":
        _write_split(split, [(0, 9)], skip=5)
    elif case == "missing_key":
        _write_split(split, [(0, 9)])
        for f in split.glob("episode_*.npz"):
            np.savez(f, **{k: v for k, v in _frame(0).items() if k != "rel_actions"})
    elif case == "wrong_size":
        _write_split(split, [(0, 9)], scene_obs=np.zeros(20))
    else:
        _write_split(split, [(0, 9)])
        np.save(split / "ep_start_end_ids.npy", np.zeros((3,), np.float32))
    with pytest.raises(DatasetError) as err:
        load_calvin_split(split, chunk_len=5, min_len=1)
    assert message in str(err.value) and "\n" not in str(err.value)
