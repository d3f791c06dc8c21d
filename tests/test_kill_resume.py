"""Killed and stopped runs, as real processes: a run killed with SIGKILL at an arbitrary moment and started again
with the same command, or stopped by SIGTERM / SIGUSR1 and started again with the command its last line prints,
continues from its last checkpoint and ends with the same metrics rows (bar steps/s) and the same final checkpoint
as the run that was never interrupted. SkiMo pre-training, SkiMo RL and TD-MPC RL."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import ROOT, TINY, cli_command
from resume_helpers import assert_same_rows, checkpoint_differences, metrics_rows

from rolf.utils.checkpoint import latest_checkpoint, load_checkpoint, parse_step

RUN = cli_command("run.py")  # `python run.py`, as a terminal runs it


class Job:
    """One start of run.py with the given arguments, its output in files under `out`."""

    def __init__(self, args: list[str], out: Path, name: str, argv: list[str] | None = None):
        self.out, self.err = out / f"{name}.out", out / f"{name}.err"
        with open(self.out, "w") as o, open(self.err, "w") as e:
            self.proc = subprocess.Popen(argv or RUN + args, cwd=ROOT, stdout=o, stderr=e, start_new_session=True,
                                         env={**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"})

    def wait(self, timeout: float = 240) -> int:
        return self.proc.wait(timeout=timeout)

    def text(self) -> str:
        return self.out.read_text() + self.err.read_text()

    def wait_for_step(self, run_dir: Path, step: int, timeout: float = 240) -> None:
        """Until metrics.jsonl has a row at `step` or later (the run must still be going then)."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc.poll() is None, f"the run ended before step {step}: {self.text()[-3000:]}"
            assert time.monotonic() < deadline, f"no row at step {step} in time"
            path = run_dir / "metrics.jsonl"
            if path.is_file():
                for line in path.read_text().splitlines():
                    try:
                        if json.loads(line)["step"] >= step:
                            return
                    except ValueError:
                        pass  # a line being written
            time.sleep(0.02)


def run_to_end(args: list[str], out: Path, name: str) -> Job:
    job = Job(args, out, name)
    assert job.wait() == 0, job.text()[-3000:]
    return job


def assert_same_run(straight: Path, resumed: Path) -> None:
    assert_same_rows(metrics_rows(straight), metrics_rows(resumed))
    a, b = (load_checkpoint(latest_checkpoint(d / "ckpt")) for d in (straight, resumed))
    assert a["step"] == b["step"]
    assert checkpoint_differences(a["agent"], b["agent"]) == []


def kill_and_resume(args: list[str], run_dir: Path, out: Path, kill_after: int) -> int:
    """Start, SIGKILL once a row at `kill_after` is logged, start again with the same command; returns the step of
    the checkpoint the second start resumed from."""
    first = Job(args, out, "killed")
    first.wait_for_step(run_dir, kill_after)
    os.killpg(first.proc.pid, signal.SIGKILL)
    assert first.wait() == -signal.SIGKILL
    newest = latest_checkpoint(run_dir / "ckpt")
    assert newest is not None, "no checkpoint before the kill"
    second = run_to_end(args, out, "resumed")
    assert f"resumed from {newest} at step {parse_step(newest):,}" in second.text()
    return parse_step(newest)


def stop_and_resume(args: list[str], run_dir: Path, out: Path, sig: signal.Signals, stop_after: int, phase: str) -> int:
    """Start, send `sig` once a row at `stop_after` is logged, check the one-line exit, run the command it prints;
    returns the step it saved."""
    first = Job(args, out, "stopped")
    first.wait_for_step(run_dir, stop_after)
    os.kill(first.proc.pid, sig)
    assert first.wait() == 128 + sig, first.text()[-3000:]
    last = first.err.read_text().strip().splitlines()
    assert len(last) == 1, last
    m = re.fullmatch(rf"interrupted \({sig.name}\) at {phase} step ([\d,]+) of (\S+); saved (\S+); resume with: (.+)", last[0])
    assert m, last[0]
    step, saved = int(m.group(1).replace(",", "")), Path(m.group(3))
    assert m.group(2) == run_dir.name and saved == run_dir / "ckpt" / f"maze_ckpt_{step:011d}.pt" and saved.is_file()
    assert step >= stop_after
    assert load_checkpoint(saved)["reason"] == "signal"  # (replaced by the resumed run's next checkpoint)
    command = shlex.split(m.group(4))
    assert command[0] == "python"
    second = Job([], out, "resumed_by_command", argv=RUN + command[2:])  # the printed command, as a user types it
    assert second.wait() == 0, second.text()[-3000:]
    assert f"resumed from {saved} at step {step:,}" in second.text()
    return step


@pytest.fixture(scope="module")
def maze_data(tmp_path_factory) -> Path:
    from d4rl.generate import generate_maze_dataset

    path = tmp_path_factory.mktemp("data") / "maze.gz"
    generate_maze_dataset(str(path), num_traj=30, seed=0, workers=1, max_steps=300, progress=False)
    return path


def pretrain_args(data: Path, root: Path) -> list[str]:
    return [*TINY, f"log_root_dir={root}", f"rolf.pretrain.data_path={data}", "rolf.pretrain.max_global_step=60",
            "rolf.pretrain.train_iter=1", "rolf.pretrain.log_every=1", "rolf.pretrain.ckpt_every=8",
            "rolf.pretrain.evaluate_every=25", "env.max_episode_steps=60", "num_threads=1"]


@pytest.fixture(scope="module")
def pretrained(maze_data, tmp_path_factory) -> Path:
    """The uninterrupted pre-training run (its directory); its final checkpoint starts the RL runs."""
    root = tmp_path_factory.mktemp("pretrain_straight")
    run_to_end(pretrain_args(maze_data, root), root, "straight")
    return root / "maze.skimo.pretrain.test.0"


def test_skimo_pretraining_killed_and_resumed(maze_data, pretrained, tmp_path):
    run_dir = tmp_path / "maze.skimo.pretrain.test.0"
    step = kill_and_resume(pretrain_args(maze_data, tmp_path), run_dir, tmp_path, kill_after=20)
    assert 16 <= step < 60
    assert_same_run(pretrained, run_dir)


RL_LOOP = ["rolf.warm_up_step=200", "rolf.train_every=50", "rolf.log_every=50", "rolf.ckpt_every=250",
           "rolf.evaluate_every=400", "rolf.max_global_step=1500", "env.max_episode_steps=150", "num_threads=1",
           "rolf.train_iter=2"]
TDMPC = ["--config-name", "tdmpc_config", "rolf.state_dim=16", "rolf.num_units=16", "rolf.encoder.embed_dim=16",
         "rolf.batch_size=8", "rolf.num_sample_traj=16", "rolf.num_policy_traj=4", "rolf.num_elites=4",
         "rolf.cem_iter=2", "rolf.horizon=3", *RL_LOOP]


def skimo_rl_args(pretrained: Path, root: Path) -> list[str]:
    ckpt = latest_checkpoint(pretrained / "ckpt")
    return [*TINY, *RL_LOOP, f"log_root_dir={root}", "rolf.phase=rl", f"rolf.pretrain_ckpt_path={ckpt}",
            "rolf.horizon_step=1000"]


@pytest.fixture(scope="module")
def rl_straight(pretrained, tmp_path_factory) -> dict[str, Path]:
    out = {}
    for name, args, run in (("skimo", lambda root: skimo_rl_args(pretrained, root), "maze.skimo.rl.test.0"),
                            ("tdmpc", lambda root: [*TDMPC, f"log_root_dir={root}"], "maze.tdmpc.rl.test.0")):
        root = tmp_path_factory.mktemp(f"{name}_straight")
        run_to_end(args(root), root, "straight")
        out[name] = root / run
    return out


@pytest.mark.parametrize("method", ["skimo", "tdmpc"])
def test_rl_killed_and_resumed(method, pretrained, rl_straight, tmp_path):
    args = skimo_rl_args(pretrained, tmp_path) if method == "skimo" else [*TDMPC, f"log_root_dir={tmp_path}"]
    run_dir = tmp_path / rl_straight[method].name
    step = kill_and_resume(args, run_dir, tmp_path, kill_after=800)
    assert 500 <= step < 1500
    assert_same_run(rl_straight[method], run_dir)


@pytest.mark.parametrize("method, sig", [("skimo", signal.SIGUSR1), ("tdmpc", signal.SIGTERM)],
                         ids=["skimo-SIGUSR1", "tdmpc-SIGTERM"])
def test_rl_stopped_by_a_signal_saves_where_it_is_and_resumes(method, sig, pretrained, rl_straight, tmp_path):
    """Without step-cadence checkpoints (rolf.ckpt_every=0, a key that may change between starts and does not
    change results): the only checkpoint before the end is the one the signal wrote, which the final one
    replaces."""
    args = skimo_rl_args(pretrained, tmp_path) if method == "skimo" else [*TDMPC, f"log_root_dir={tmp_path}"]
    run_dir = tmp_path / rl_straight[method].name
    stop_and_resume(args + ["rolf.ckpt_every=0"], run_dir, tmp_path, sig, stop_after=600, phase="RL")
    assert [p.name for p in (run_dir / "ckpt").glob("*.pt")] == ["maze_ckpt_00000001500.pt"]  # the final one
    assert_same_run(rl_straight[method], run_dir)
