"""The scripted CALVIN play generator: container format, determinism across worker counts, play changes the
scene, CLI; and the env registry entry that uses it."""

from __future__ import annotations

import gzip
import pickle

import numpy as np
import pytest

from calvin.generate import generate_calvin_dataset, main, pick_primitive
from envs import get_env_spec
from rolf.datasets.offline import load_trajectories

KW = dict(num_chunks=3, seed=4, chunk_len=80, chunks_per_stream=2, progress=False)


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    d = tmp_path_factory.mktemp("calvin_gen")
    s1 = generate_calvin_dataset(str(d / "w1.gz"), workers=1, **KW)
    s2 = generate_calvin_dataset(str(d / "w2.gz"), workers=2, **KW)
    return d, s1, s2


def test_chunks_in_container_format(datasets):
    d, stats, _ = datasets
    with gzip.open(d / "w1.gz", "rb") as f:
        items = pickle.load(f)
    assert len(items) == 3 == stats["trajectories"] and stats["streams"] == 2
    for t in items:
        assert t["obs"].shape == (80, 39) and t["actions"].shape == (80, 7) and t["dones"].shape == (80,)
        assert t["dones"][-1] == 1.0 and t["dones"][:-1].sum() == 0.0
        assert np.abs(t["actions"]).max() <= 1.0 and set(np.unique(t["actions"][:, 6])) <= {-1.0, 1.0}
    # the first two chunks are one continuous stream: chunk 1 continues where chunk 0 ended
    assert np.abs(items[1]["obs"][0, :3] - items[0]["obs"][-1, :3]).max() < 0.03
    # play moves the articulated objects (scene_obs: slide, drawer, button, switch, lightbulb, LED)
    scene = np.concatenate([t["obs"][:, 15:21] for t in items])
    assert (scene.max(0) - scene.min(0))[[0, 1, 3]].max() > 0.05
    rates = [v for k, v in stats.items() if k.startswith("success_")]
    assert rates and min(rates) >= 0.0 and max(rates) <= 1.0
    assert len(load_trajectories(d / "w1.gz", keep_obs_dims=21)[0]["obs"][0]) == 21


def test_same_file_for_any_worker_count(datasets):
    d, _, _ = datasets
    assert (d / "w1.gz").read_bytes() == (d / "w2.gz").read_bytes()


def test_pick_primitive_changes_the_current_state():
    closed = np.zeros(24)
    opened = closed.copy()
    opened[[0, 1, 3]] = 0.25, 0.2, 0.08
    assert [pick_primitive(c, closed) for c in ("drawer", "slider", "switch", "button", "free")] == [
        "open_drawer", "slider_left", "switch_up", "press_button", "free_motion"]
    assert [pick_primitive(c, opened) for c in ("drawer", "slider", "switch")] == [
        "close_drawer", "slider_right", "switch_down"]


def test_cli_and_registry(tmp_path, capsys):
    out = tmp_path / "c.gz"
    main(["--out", str(out), "--num-chunks", "1", "--chunk-len", "40", "--workers", "1", "--no-progress"])
    assert f"{out}: 1 chunks, 40 steps" in capsys.readouterr().out
    spec = get_env_spec("calvin")
    assert (spec.ob_dim, spec.ac_dim, spec.keep_obs_dims) == (21, 7, 21) and callable(spec.generate_dataset)
    env = spec.make(seed=0)
    ob, _ = env.reset(seed=0)
    assert ob.shape == (21,)
