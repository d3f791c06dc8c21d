"""A run directory belongs to one experiment: a start with another config is refused (one line naming the keys and
the ways out), budgets and logging may change, `resume=force|overwrite`, a job with nothing to do says so, a run
being trained is locked, metrics rows exist once, wall-clock checkpoints replace each other, and a NaN stops the
run without saving it."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, TINY, compose_cfg

import run
from rolf.run_dir import RunConflict, RunLock, config_differences
from rolf.trainers.trainer import TrainingDiverged
from rolf.utils.checkpoint import load_checkpoint, parse_step
from rolf.utils.guards import first_non_finite
from rolf.utils.logger import truncate_metrics

RUN = "maze.skimo.pretrain.test.0"


@pytest.fixture(scope="module")
def maze_data(tmp_path_factory) -> Path:
    from d4rl.generate import generate_maze_dataset

    path = tmp_path_factory.mktemp("data") / "maze.gz"
    generate_maze_dataset(str(path), num_traj=20, seed=0, workers=1, max_steps=300, progress=False)
    return path


def _overrides(root: Path, data: Path, steps: int, *extra: str) -> list[str]:
    return [*TINY, f"log_root_dir={root}", f"rolf.pretrain.data_path={data}", f"rolf.pretrain.max_global_step={steps}",
            "rolf.pretrain.train_iter=1", "rolf.pretrain.evaluate_every=0", "rolf.pretrain.ckpt_every=2",
            "rolf.pretrain.log_every=1", "env.max_episode_steps=50", *extra]


def pretrain(root: Path, data: Path, steps: int, *extra: str) -> None:
    run.main(compose_cfg("skimo_maze", _overrides(root, data, steps, *extra)))


def _ckpt_steps(run_dir: Path) -> list[int]:
    return sorted(parse_step(p) for p in (run_dir / "ckpt").glob("*.pt"))


def test_a_start_with_another_config_is_refused_naming_the_keys_and_the_ways_out(maze_data, tmp_path):
    pretrain(tmp_path, maze_data, 2)
    run_dir = tmp_path / RUN
    before = sorted(p.name for p in run_dir.iterdir())
    with pytest.raises(RunConflict) as e:
        pretrain(tmp_path, maze_data, 4, "rolf.pretrain.batch_size=16", "rolf.num_units=8")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{run_dir} holds a run with another config (params_")
    assert "rolf.num_units: 16 there, 8 here" in msg and "rolf.pretrain.batch_size: 8 there, 16 here" in msg
    assert "another run_prefix=..." in msg and "resume=force" in msg and "resume=overwrite" in msg
    assert sorted(p.name for p in run_dir.iterdir()) == before  # nothing written
    assert _ckpt_steps(run_dir) == [2]


def test_budget_and_logging_keys_may_change_and_force_continues(maze_data, tmp_path, caplog):
    pretrain(tmp_path, maze_data, 2)
    with caplog.at_level(logging.INFO, logger="skimo"):
        pretrain(tmp_path, maze_data, 4, "rolf.pretrain.log_every=2", "ckpt_every_minutes=5", "progress_bar=false")
    assert "rolf.pretrain.max_global_step 4 (was 2)" in caplog.text
    assert _ckpt_steps(tmp_path / RUN) == [2, 4]
    pretrain(tmp_path, maze_data, 6, "rolf.pretrain.train_iter=2", "resume=force")
    assert _ckpt_steps(tmp_path / RUN) == [2, 4, 6]
    # the forced values are now the run's record: the same command resumes without force
    pretrain(tmp_path, maze_data, 8, "rolf.pretrain.train_iter=2")
    assert _ckpt_steps(tmp_path / RUN) == [2, 4, 6, 8]


def test_overwrite_moves_the_old_run_aside_and_starts_afresh(maze_data, tmp_path):
    pretrain(tmp_path, maze_data, 4)
    pretrain(tmp_path, maze_data, 2, "rolf.pretrain.batch_size=16", "resume=overwrite")
    (aside,) = tmp_path.glob(f"{RUN}.old-*")
    assert _ckpt_steps(aside) == [2, 4] and _ckpt_steps(tmp_path / RUN) == [2]
    rows = [json.loads(line) for line in (tmp_path / RUN / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    with pytest.raises(RunConflict, match="resume=maybe: expected one of auto, force, overwrite"):
        pretrain(tmp_path, maze_data, 2, "resume=maybe")


def test_a_directory_without_checkpoints_starts_afresh_with_its_rows_dropped(maze_data, tmp_path):
    run_dir = tmp_path / RUN
    run_dir.mkdir()
    (run_dir / "metrics.jsonl").write_text('{"step": 1, "pretrain/x": 1.0}\n{"step": 7, "pretr')
    (run_dir / "params_2026-01-01_00-00-00.yaml").write_text("rolf:\n  num_units: 999\n")
    pretrain(tmp_path, maze_data, 2)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and "pretrain/x" not in rows[0]


def test_a_run_being_trained_is_locked(maze_data, tmp_path):
    pretrain(tmp_path, maze_data, 2)
    lock = RunLock(tmp_path / RUN)
    lock.acquire()
    try:
        with pytest.raises(RunConflict, match=r"is being trained by another process \(pid \d+\)"):
            pretrain(tmp_path, maze_data, 4)
    finally:
        lock.release()
    pretrain(tmp_path, maze_data, 4)
    assert _ckpt_steps(tmp_path / RUN) == [2, 4]


def test_a_sweep_refuses_a_mismatched_job_runs_the_others_and_says_when_there_is_nothing_to_do(maze_data, tmp_path):
    """The issue's case: seed 0 holds a run of another config (step 6), seed 1 one that is done (step 2)."""
    pretrain(tmp_path, maze_data, 6, "rolf.pretrain.batch_size=16")
    pretrain(tmp_path, maze_data, 2, "seed=1")
    args = ["run.py", "--config-name", "skimo_maze", "--multirun", *_overrides(tmp_path, maze_data, 2), "seed=0,1,2"]
    done = subprocess.run([sys.executable, *args], check=False, cwd=ROOT, capture_output=True, text=True, timeout=300)
    err, console = done.stderr, done.stdout + done.stderr
    assert done.returncode == 1
    assert err.splitlines()[-1].startswith(f"error: {tmp_path / RUN} holds a run with another config")
    assert "maze.skimo.pretrain.test.1: nothing to do, its checkpoint is at step 2 and " \
           "rolf.pretrain.max_global_step=2 (raise it to train on)" in console
    assert _ckpt_steps(tmp_path / "maze.skimo.pretrain.test.2") == [2]  # the third job ran
    assert _ckpt_steps(tmp_path / RUN) == [2, 4, 6]


def test_config_differences_ignore_budgets_and_name_added_keys():
    old = {"seed": 0, "rolf": {"max_global_step": 10, "lr": 1.0, "gone": 1}, "wandb": False}
    new = {"seed": 0, "rolf": {"max_global_step": 99, "lr": 2.0, "new": [1, 2]}, "wandb": True}
    assert config_differences(old, new) == [("rolf.lr", 1.0, 2.0), ("rolf.new", "<absent>", [1, 2]),
                                            ("rolf.gone", 1, "<absent>")]


def test_truncate_metrics_keeps_rows_up_to_the_step_and_drops_a_cut_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "a": 1}\n{"step": 2, "a": 2}\n{"step": 3, "a": 3}\n{"step": 4, "a"')
    assert truncate_metrics(path, 2) == 2
    assert path.read_text() == '{"step": 1, "a": 1}\n{"step": 2, "a": 2}\n'
    assert truncate_metrics(path, 2) == 0 and truncate_metrics(tmp_path / "none.jsonl", 2) == 0


def test_wall_clock_checkpoints_replace_each_other(maze_data, tmp_path):
    """Every step is past a tiny wall-clock cadence: each writes a checkpoint that replaces the previous wall-clock
    one, while the step cadence's (every 4) stay; a run resumed from one replaces it with its next checkpoint."""
    pretrain(tmp_path, maze_data, 6, "rolf.pretrain.ckpt_every=4", "ckpt_every_minutes=1e-9")
    assert _ckpt_steps(tmp_path / RUN) == [4, 6]
    assert load_checkpoint(tmp_path / RUN / "ckpt" / "maze_ckpt_00000000006.pt")["reason"] == "clock"
    pretrain(tmp_path, maze_data, 8, "rolf.pretrain.ckpt_every=4")  # resumes from the wall-clock one, replaces it
    assert _ckpt_steps(tmp_path / RUN) == [4, 8]


def test_a_non_finite_loss_stops_the_run_without_saving_and_names_the_loss_and_step(maze_data, tmp_path):
    from rolf.datasets.offline import load_trajectories, save_trajectories

    data = tmp_path / "data.gz"
    save_trajectories(data, load_trajectories(maze_data))
    pretrain(tmp_path, data, 4)
    trajs = load_trajectories(data)
    for t in trajs:
        t["obs"] = t["obs"] * np.float32(1e30)  # finite, but its squares are not
    save_trajectories(data, trajs)
    with pytest.raises(TrainingDiverged) as e:
        pretrain(tmp_path, data, 8)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("non-finite ")
    assert f"in pre-training update 1 of 1 at pre-training step 5 of {RUN}: the run stopped without saving; its last " \
           f"good checkpoint is {tmp_path / RUN / 'ckpt' / 'maze_ckpt_00000000004.pt'}" in msg
    assert _ckpt_steps(tmp_path / RUN) == [2, 4]


def test_first_non_finite_names_the_first_bad_value():
    import torch

    assert first_non_finite({"a": torch.tensor(1.0), "b": 2.0}) is None
    assert first_non_finite({"a": torch.tensor(1.0), "grad_norm": torch.tensor(float("inf")),
                             "c": torch.tensor([0.0, float("nan")])}) == (0, "grad_norm", float("inf"))
    assert first_non_finite({"c": torch.tensor([0.0, float("nan")])})[1] == "c"
    assert first_non_finite([{"a": 1.0}, {"a": 2.0, "b": float("nan")}])[:2] == (1, "b")  # a list: which update


def test_evaluation_of_a_run_logs_apart_and_leaves_the_run_as_it_was(maze_data, tmp_path):
    pretrain(tmp_path, maze_data, 2)
    run_dir = tmp_path / RUN
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    run.main(compose_cfg("skimo_maze", _overrides(tmp_path, maze_data, 2, "is_train=false", "num_eval=2")))
    after = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    assert set(after) - set(before) == {"metrics_eval.jsonl"}
    assert all(after[k] == v for k, v in before.items())  # no new params, metrics.jsonl untouched
    rows = [json.loads(line) for line in (run_dir / "metrics_eval.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 2] and "test_ep/len" in rows[0] and "test_ep/episode" in rows[1]


def test_init_ckpt_path_starts_a_run_and_its_own_checkpoints_continue_it(maze_data, tmp_path, caplog):
    pretrain(tmp_path / "a", maze_data, 2)
    init = tmp_path / "a" / RUN / "ckpt" / "maze_ckpt_00000000002.pt"
    with caplog.at_level(logging.INFO, logger="skimo"):
        pretrain(tmp_path / "b", maze_data, 4, f"init_ckpt_path={init}")
        assert f"resumed from {init} at step 2" in caplog.text
        pretrain(tmp_path / "b", maze_data, 6, f"init_ckpt_path={init}")
    own = tmp_path / "b" / RUN / "ckpt" / "maze_ckpt_00000000004.pt"
    assert f"resumed from {own} at step 4" in caplog.text
    assert _ckpt_steps(tmp_path / "b" / RUN) == [4, 6]
