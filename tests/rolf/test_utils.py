import builtins
import json

import pytest
import torch

from rolf.utils.checkpoint import CheckpointError, ckpt_name, latest_checkpoint, parse_step, save_checkpoint
from rolf.utils.logger import Logger
from rolf.utils.schedule import Every


def test_checkpoint_names_and_latest(tmp_path):
    assert ckpt_name("maze", 1000) == "maze_ckpt_00000001000.pt"
    assert parse_step("log/x/ckpt/maze_ckpt_00000140000.pt") == 140000 and parse_step("ckpt_00000000005.pt") == 5
    with pytest.raises(CheckpointError):
        parse_step("model.pt")
    for step in (5, 100, 20):
        save_checkpoint(tmp_path / ckpt_name("maze", step), {"step": step, "agent": {}})
    assert latest_checkpoint(tmp_path).name == "maze_ckpt_00000000100.pt"
    assert latest_checkpoint(tmp_path / "missing") is None
    assert not list(tmp_path.glob("*.tmp-*"))


def test_atomic_save_leaves_previous_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "maze_ckpt_00000000001.pt"
    save_checkpoint(path, {"step": 1, "agent": {"w": torch.ones(2)}})

    def broken_save(obj, f, *a, **k):
        open(f, "wb").write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        save_checkpoint(path, {"step": 2, "agent": {}})
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["step"] == 1
    assert not list(tmp_path.glob("*.tmp-*"))


def test_logger_writes_jsonl_and_survives_missing_wandb(tmp_path, monkeypatch, caplog):
    real_import = builtins.__import__

    def no_wandb(name, *a, **k):
        if name == "wandb":
            raise ImportError("No module named 'wandb'")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_wandb)
    logger = Logger(tmp_path, "maze.skimo.pretrain.test.0", use_wandb=True)
    logger.log(10, "pretrain", {"loss": torch.tensor(1.5), "n": 3, "bad": float("nan"), "text": "x"})
    row = json.loads((tmp_path / "metrics.jsonl").read_text())
    assert row == {"step": 10, "pretrain/loss": 1.5, "pretrain/n": 3.0, "pretrain/bad": "nan"}
    assert "wandb" in caplog.text


def test_every_has_no_drift():
    every = Every(500)
    fired = [s for s in range(0, 3000, 170) if every(s)]
    assert fired == [510, 1020, 1530, 2040, 2550]
    assert not Every(0)(10**9)
