"""The command line as a user meets it: one line for each user error and for Ctrl-C, no dataset generated at a
mistyped path, nothing written for a run that could not start, progress lines while training."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import ROOT, TINY
from conftest import cli_command as command


def run_cli(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(command("run.py", *args), cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def interrupt_when(cmd: list[str], ready, cwd: Path, timeout: float = 120) -> tuple[int, str, str]:
    """Starts cmd in its own process group, sends SIGINT to the whole group (as Ctrl-C in a terminal does) once
    ready(stdout and stderr so far) is true, and returns (exit code, stdout, stderr)."""
    out_path, err_path = cwd / "stdout.txt", cwd / "stderr.txt"
    with open(out_path, "w") as out, open(err_path, "w") as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=err, text=True, start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + timeout
        while not ready(out_path.read_text() + err_path.read_text()):
            assert proc.poll() is None, f"exited early: {err_path.read_text()[-2000:]}"
            assert time.monotonic() < deadline, "not ready in time"
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)
        code = proc.wait(timeout=60)
    return code, out_path.read_text(), err_path.read_text()


@pytest.mark.parametrize("args, expected", [
    (["rolf.foo=1"], "error: Could not override 'rolf.foo'. To append to your config use +rolf.foo=1: Key 'foo' is not in struct"),
    (["env=nope"], "error: In 'skimo_maze': Could not find 'env/nope'. Available options in 'env': calvin, kitchen, maze"),
    (["rolf.pretrain.batch_size=abc"], "error: rolf.pretrain.batch_size=abc: invalid literal for int() with base 10: 'abc'"),
    (["rolf.phase=rl", "rolf.pretrain_ckpt_path=missing.pt"], "error: rolf.pretrain_ckpt_path=missing.pt: no such file"),
])
def test_user_errors_are_one_line_and_leave_no_run_directory(tmp_path, args, expected):
    done = run_cli(*args, f"log_root_dir={tmp_path}")
    assert done.returncode == 1
    assert done.stderr.splitlines() == [expected]
    assert not list(tmp_path.iterdir())


def test_debug_traceback_shows_the_traceback(tmp_path):
    done = run_cli("rolf.phase=rl", f"log_root_dir={tmp_path}", "debug_traceback=true")
    assert done.returncode == 1 and "Traceback" in done.stderr and "ConfigError" in done.stderr


def test_a_mistyped_data_path_is_an_error_and_nothing_is_generated(tmp_path):
    typo = tmp_path / "data" / "maz.gz"
    done = run_cli(f"rolf.pretrain.data_path={typo}", f"log_root_dir={tmp_path / 'log'}")
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"error: rolf.pretrain.data_path={typo}: no such file (the default, data/maze.gz, is generated on first use; "
        f"rolf.pretrain.generate_data=true generates one at this path)"]
    assert not typo.parent.exists() and not (tmp_path / "log").exists()


def test_generate_data_true_generates_at_another_path(tmp_path, monkeypatch):
    """The explicit flag: a dataset is made at a non-default path and trained on (the generator is shrunk to a
    few short trajectories; it is tested in tests/d4rl)."""
    from conftest import compose_cfg

    import run
    from d4rl.generate import generate_maze_dataset
    from envs import EnvSpec, get_env_spec

    made = []

    def small(path):
        made.append(path)
        return generate_maze_dataset(path, num_traj=6, seed=0, workers=1, max_steps=300, progress=False)

    spec = get_env_spec("maze")
    monkeypatch.setattr("skill_trainer.get_env_spec", lambda env: EnvSpec(**{**spec.__dict__, "generate_dataset": small}))
    target = tmp_path / "mine.gz"
    cfg = compose_cfg("skimo_maze", TINY + [f"log_root_dir={tmp_path}", f"rolf.pretrain.data_path={target}",
                                           "rolf.pretrain.generate_data=true", "rolf.pretrain.max_global_step=1",
                                           "rolf.pretrain.evaluate_every=0", "rolf.pretrain.train_iter=1"])
    run.main(cfg)
    assert made == [str(target)] and target.is_file()
    assert (tmp_path / "maze.skimo.pretrain.test.0" / "ckpt" / "maze_ckpt_00000000001.pt").is_file()


def test_ctrl_c_in_pretraining_is_one_line_naming_the_step_and_checkpoint(tmp_path):
    from d4rl.generate import generate_maze_dataset

    data = tmp_path / "maze.gz"
    generate_maze_dataset(str(data), num_traj=20, seed=0, workers=1, max_steps=300, progress=False)
    cmd = command("run.py", *TINY, f"log_root_dir={tmp_path / 'log'}", f"rolf.pretrain.data_path={data}",
                  "rolf.pretrain.max_global_step=100000", "rolf.pretrain.log_every=1", "rolf.pretrain.ckpt_every=2",
                  "rolf.pretrain.evaluate_every=0", "rolf.pretrain.train_iter=1")
    code, out, err = interrupt_when(cmd, lambda out: "pretrain 3/100,000 steps" in out, tmp_path)
    assert code == 130, err
    assert len(err.splitlines()) == 1, err
    m = re.fullmatch(r"interrupted \(Ctrl-C\) at pre-training step (\d+) of maze.skimo.pretrain.test.0; saved (\S+); "
                     r"resume with: python \S*run.py --config-name skimo_maze (.*)", err.strip())
    assert m, err
    step, saved = int(m.group(1)), Path(m.group(2))
    assert saved == tmp_path / "log" / "maze.skimo.pretrain.test.0" / "ckpt" / f"maze_ckpt_{step:011d}.pt"
    assert saved.is_file() and step >= 3  # written at the step the signal stopped, not the last cadence one
    assert m.group(3).split() == [*TINY, f"log_root_dir={tmp_path / 'log'}", f"rolf.pretrain.data_path={data}",
                                  "rolf.pretrain.max_global_step=100000", "rolf.pretrain.log_every=1",
                                  "rolf.pretrain.ckpt_every=2", "rolf.pretrain.evaluate_every=0",
                                  "rolf.pretrain.train_iter=1"]
    # the console showed progress with rate, elapsed and ETA, once per log interval
    assert "| elapsed 0:00:" in out and "| ETA " in out and "steps/s" in out


def test_ctrl_c_in_data_generation_stops_every_worker_with_one_line(tmp_path):
    out = tmp_path / "maze.gz"
    cmd = command("d4rl/generate.py", "maze", "--out", str(out), "--num-traj", "100000", "--workers", "2")
    # once the workers have delivered trajectories (the progress bar counts them)
    code, _, err = interrupt_when(cmd, lambda text: re.search(r"\| [1-9]\d*/100000", text), tmp_path)
    lines = [line for line in re.split(r"[\r\n]", err) if line.strip()]
    assert code == 130 and "Traceback" not in err and lines[-1] == "interrupted (Ctrl-C)"
    assert all(line.startswith("maze trajectories:") for line in lines[:-1])  # the bar, nothing from the workers
    assert list(tmp_path.glob("maze.gz*")) == []  # neither the file nor a half-written temporary
