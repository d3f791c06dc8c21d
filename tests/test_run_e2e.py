"""End to end through run.py's main: generate a small dataset -> pre-train -> RL with CEM -> resume."""

import json
from pathlib import Path

import pytest

from conftest import TINY, compose_cfg

import run


def _metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    from d4rl.generate import generate_maze_dataset

    path = tmp_path_factory.mktemp("data") / "maze.gz"
    generate_maze_dataset(str(path), num_traj=50, seed=0, workers=2, max_steps=400, progress=False)
    return path


def test_pretrain_then_rl_then_resume(tiny_dataset, tmp_path):
    common = TINY + [f"log_root_dir={tmp_path}", "run_prefix=e2e", "seed=3"]
    pre = compose_cfg("skimo_maze", common + [
        f"rolf.pretrain.data_path={tiny_dataset}", "rolf.pretrain.max_global_step=20", "rolf.pretrain.train_iter=2",
        "rolf.pretrain.log_every=5", "rolf.pretrain.evaluate_every=10", "rolf.pretrain.ckpt_every=10",
        "env.max_episode_steps=200"])
    run.main(pre)
    pre_dir = tmp_path / "maze.skimo.pretrain.e2e.3"
    ckpt = pre_dir / "ckpt" / "maze_ckpt_00000000020.pt"
    assert ckpt.is_file() and (pre_dir / "ckpt" / "maze_ckpt_00000000010.pt").is_file()
    rows = _metrics(pre_dir)
    assert any("pretrain/ll_actor_loss" in r for r in rows) and any("pretrain_eval/consistency_loss" in r for r in rows)
    assert any("pretrain_eval/len" in r for r in rows)
    assert list((pre_dir / "vis").glob("skill_rollout_*.png")) and list((pre_dir / "vis").glob("pretrain_episode_*.png"))

    rl_overrides = common + ["rolf.phase=rl", f"rolf.pretrain_ckpt_path={ckpt}", "rolf.warm_up_step=1000",
                             "rolf.train_every=500", "rolf.log_every=500", "rolf.evaluate_every=1500", "rolf.ckpt_every=1500",
                             "env.max_episode_steps=300", "rolf.horizon_step=2000"]
    run.main(compose_cfg("skimo_maze", rl_overrides + ["rolf.max_global_step=3000"]))
    rl_dir = tmp_path / "maze.skimo.rl.e2e.3"
    ckpts = sorted((rl_dir / "ckpt").glob("maze_ckpt_*.pt"))
    assert ckpts and int(ckpts[-1].stem.split("_")[-1]) >= 3000
    rows = _metrics(rl_dir)
    train = [r for r in rows if "train_rl/model_loss" in r]
    assert train and all(r["train_rl/model_loss"] == r["train_rl/model_loss"] for r in train)  # finite (not NaN)
    assert any("train_ep/rew" in r for r in rows) and any("test_ep/len" in r for r in rows)
    for name in ("replay_vis", "value_heatmap", "test_ep"):
        assert list((rl_dir / "vis").glob(f"{name}_*.png")), name

    # resume: the same command with a larger budget continues from the last checkpoint, buffer included
    from rolf.utils.checkpoint import load_checkpoint

    last = load_checkpoint(ckpts[-1])
    assert len(last["agent"]["hl_buffer"]["episodes"]) > 0
    run.main(compose_cfg("skimo_maze", rl_overrides + ["rolf.max_global_step=4000"]))
    final = sorted((rl_dir / "ckpt").glob("maze_ckpt_*.pt"))[-1]
    resumed = load_checkpoint(final)
    assert resumed["step"] >= 4000
    assert len(resumed["agent"]["hl_buffer"]["episodes"]) >= len(last["agent"]["hl_buffer"]["episodes"])
    assert resumed["agent"]["counters"]["update_iter"] > last["agent"]["counters"]["update_iter"]


def test_rl_without_pretrained_checkpoint_is_refused(tmp_path):
    from rolf.config import ConfigError

    cfg = compose_cfg("skimo_maze", TINY + [f"log_root_dir={tmp_path}", "rolf.phase=rl"])
    with pytest.raises(ConfigError, match="pretrain_ckpt_path"):
        run.main(cfg)


def test_gpu_request_without_cuda_is_a_clear_error(tmp_path, monkeypatch):
    import torch

    from rolf.main import DeviceError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceError, match="gpu=0"):
        run.main(compose_cfg("skimo_maze", TINY + [f"log_root_dir={tmp_path}", "gpu=0"]))


def test_command_line_multirun_and_one_line_errors(tiny_dataset, tmp_path):
    """The real CLI: `--multirun seed=0,1` runs both jobs; a bad data file fails with one line, no traceback
    (a one-job multirun, so both calls share the argument list)."""
    import subprocess
    import sys

    root = Path(run.__file__).resolve().parent
    args = [sys.executable, "run.py", "--config-name", "skimo_maze", "--multirun", *TINY, f"log_root_dir={tmp_path}",
            "rolf.pretrain.max_global_step=2", "rolf.pretrain.evaluate_every=0", "env.max_episode_steps=50"]
    done = subprocess.run(args + ["seed=0,1", f"rolf.pretrain.data_path={tiny_dataset}"], cwd=root,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    for seed in (0, 1):
        assert (tmp_path / f"maze.skimo.pretrain.test.{seed}" / "ckpt" / "maze_ckpt_00000000002.pt").is_file()
    bad = tmp_path / "bad.gz"
    bad.write_bytes(b"not gzip")
    failed = subprocess.run(args + [f"rolf.pretrain.data_path={bad}", "run_prefix=bad"], cwd=root, capture_output=True,
                            text=True, timeout=300)
    assert failed.returncode == 1
    assert "Traceback" not in failed.stderr and str(bad) in failed.stderr.strip().splitlines()[-1]


def test_pretraining_resume_reproduces_the_uninterrupted_run(tiny_dataset, tmp_path):
    """4 steps in one go == 2 steps, stop, resume to 4: same weights (RNG states travel in the checkpoint)."""
    import torch

    from rolf.utils.checkpoint import load_checkpoint

    def pretrain(root, steps):
        run.main(compose_cfg("skimo_maze", TINY + [f"log_root_dir={root}", f"rolf.pretrain.data_path={tiny_dataset}",
                                                   f"rolf.pretrain.max_global_step={steps}", "rolf.pretrain.evaluate_every=0",
                                                   "rolf.pretrain.ckpt_every=0", "env.max_episode_steps=50"]))
        return load_checkpoint(root / "maze.skimo.pretrain.test.0" / "ckpt" / f"maze_ckpt_{steps:011d}.pt")["agent"]

    straight = pretrain(tmp_path / "a", 4)
    pretrain(tmp_path / "b", 2)
    resumed = pretrain(tmp_path / "b", 4)
    for group in ("meta_agent", "skill_agent"):
        for module in ("actor", "encoder", "skill_encoder", "model", "decoder"):
            if module not in straight[group]:
                continue
            for k, v in straight[group][module].items():
                assert torch.equal(v, resumed[group][module][k]), f"{group}.{module}.{k}"
