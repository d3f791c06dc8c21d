"""Exact resume, in process, for every method: a run stopped at a step where an episode is in progress (its budget
ends there) and started again with a larger budget computes and logs exactly what the uninterrupted run did:
every metrics row (bar steps/s) and every tensor of the final checkpoint (weights, optimiser states, α, counters,
replay buffer). The subprocess tests with SIGKILL and stop signals are in test_kill_resume.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import TINY, compose_cfg
from resume_helpers import assert_same_rows, checkpoint_differences, metrics_rows

import run
from rolf.utils.checkpoint import latest_checkpoint, load_checkpoint


@pytest.fixture(scope="module")
def maze_data(tmp_path_factory) -> Path:
    from d4rl.generate import generate_maze_dataset

    path = tmp_path_factory.mktemp("data") / "maze.gz"
    generate_maze_dataset(str(path), num_traj=30, seed=0, workers=1, max_steps=300, progress=False)
    return path


PRETRAIN = TINY + ["rolf.pretrain.train_iter=2", "rolf.pretrain.log_every=3", "rolf.pretrain.evaluate_every=4",
                   "rolf.pretrain.ckpt_every=0", "env.max_episode_steps=60"]
RL_LOOP = ["rolf.warm_up_step=100", "rolf.train_every=50", "rolf.log_every=100", "rolf.evaluate_every=250",
           "rolf.ckpt_every=0", "env.max_episode_steps=120", "rolf.train_iter=2"]
FLAT = {"tdmpc_config": ["rolf.state_dim=16", "rolf.num_units=16", "rolf.encoder.embed_dim=16", "rolf.batch_size=8",
                         "rolf.num_sample_traj=16", "rolf.num_policy_traj=4", "rolf.num_elites=4", "rolf.cem_iter=2",
                         "rolf.horizon=3"],
        "dreamer_config": ["rolf.deter_dim=16", "rolf.stoch_dim=4", "rolf.num_units=16", "rolf.encoder.embed_dim=16",
                           "rolf.encoder.hidden_dims=[16]", "rolf.decoder.hidden_dims=[16]", "rolf.batch_size=4",
                           "rolf.batch_length=8", "rolf.horizon=4"]}


def run_straight_and_split(name: str, overrides: list[str], budget_key: str, first: int, total: int, root: Path):
    """The same config run once to `total`, and to `first` then again to `total`; returns both run dirs."""
    straight, split = root / "straight", root / "split"
    run.main(compose_cfg(name, overrides + [f"log_root_dir={straight}", f"{budget_key}={total}"]))
    run.main(compose_cfg(name, overrides + [f"log_root_dir={split}", f"{budget_key}={first}"]))
    run.main(compose_cfg(name, overrides + [f"log_root_dir={split}", f"{budget_key}={total}"]))
    (a,), (b,) = list(straight.iterdir()), list(split.iterdir())
    return a, b


def assert_identical_runs(a: Path, b: Path) -> None:
    assert_same_rows(metrics_rows(a), metrics_rows(b))
    ca, cb = load_checkpoint(latest_checkpoint(a / "ckpt")), load_checkpoint(latest_checkpoint(b / "ckpt"))
    assert ca["step"] == cb["step"]
    assert checkpoint_differences(ca["agent"], cb["agent"]) == []
    assert checkpoint_differences(ca["runner"], cb["runner"]) == []


@pytest.fixture(scope="module")
def pretrained(maze_data, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pretrained")
    run.main(compose_cfg("skimo_maze", PRETRAIN + [f"log_root_dir={root}", f"rolf.pretrain.data_path={maze_data}",
                                                   "rolf.pretrain.max_global_step=4"]))
    return latest_checkpoint(root / "maze.skimo.pretrain.test.0" / "ckpt")


def test_skimo_pretraining(maze_data, tmp_path):
    a, b = run_straight_and_split("skimo_maze", PRETRAIN + [f"rolf.pretrain.data_path={maze_data}"],
                                  "rolf.pretrain.max_global_step", 7, 12, tmp_path)
    assert_identical_runs(a, b)
    assert any("pretrain_eval/consistency_loss" in r for r in metrics_rows(b))


@pytest.mark.parametrize("extra", [[], ["rolf.sac=true", "rolf.use_cem=false", "rolf.n_skill=1"]], ids=["skimo", "skimo_sac"])
def test_skimo_rl(pretrained, tmp_path, extra):
    overrides = TINY + RL_LOOP + ["rolf.phase=rl", f"rolf.pretrain_ckpt_path={pretrained}", "rolf.horizon_step=600",
                                  *extra]
    a, b = run_straight_and_split("skimo_maze", overrides, "rolf.max_global_step", 420, 800, tmp_path)
    assert_identical_runs(a, b)
    assert load_checkpoint(latest_checkpoint(b / "ckpt"))["runner"]["episode"] is not None  # ended mid-episode


@pytest.mark.parametrize("name", list(FLAT))
def test_flat_baselines(name, tmp_path):
    a, b = run_straight_and_split(name, FLAT[name] + RL_LOOP, "rolf.max_global_step", 333, 600, tmp_path)
    assert_identical_runs(a, b)


@pytest.mark.parametrize("name", ["spirl_config", "spirl_tdmpc_maze", "spirl_dreamer_maze"])
def test_spirl_family(name, priors, tmp_path):
    sizes = {"spirl_config": ["rolf.batch_size=8", "rolf.critic_units=16"],
             "spirl_tdmpc_maze": FLAT["tdmpc_config"] + ["rolf.meta_batch_length=3", "rolf.kl_samples=8"],
             "spirl_dreamer_maze": [k for k in FLAT["dreamer_config"] if "batch_length" not in k]
             + ["rolf.meta_batch_length=3", "rolf.kl_samples=8"]}[name]
    overrides = sizes + RL_LOOP + [f"rolf.prior_path={priors['maze']}"]
    a, b = run_straight_and_split(name, overrides, "rolf.max_global_step", 420, 800, tmp_path)
    assert_identical_runs(a, b)
