"""Shared pieces of the learning benchmarks (`learn_maze.py`, `learn_kitchen.py`): reading a run's metrics,
loading a pre-trained agent, and the pre-training loss panel/summary."""

from __future__ import annotations

import json
from pathlib import Path

from rolf.utils.checkpoint import load_checkpoint
from skimo_agent import SkiMoAgent, build_agent

PRETRAIN_KEYS = ("ll_actor_loss", "consistency_loss", "hl_actor_loss", "hl_recon_loss", "vae_kl_div")
PRETRAIN_EVAL_KEYS = ("ll_actor_loss", "consistency_loss")


def read_metrics(run_dir: Path) -> list[dict]:
    """A run's metrics.jsonl as a list of rows."""
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def series(rows: list[dict], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of every row that logged `key` as a float."""
    pts = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), float)]
    return [p[0] for p in pts], [p[1] for p in pts]


def pretrain_series(rows: list[dict]) -> dict[str, dict]:
    """{"pretrain": {loss: (steps, values)}, "pretrain_eval": {...}} from a pre-training run's rows."""
    return {"pretrain": {k: series(rows, f"pretrain/{k}") for k in PRETRAIN_KEYS},
            "pretrain_eval": {k: series(rows, f"pretrain_eval/{k}") for k in PRETRAIN_EVAL_KEYS}}


def load_agent(cfg, ckpt: Path, phase: str) -> SkiMoAgent:
    """A SkiMo agent built from `cfg` with the pre-trained weights of `ckpt`."""
    agent = build_agent(cfg, phase)
    agent.load_pretrained(load_checkpoint(ckpt)["agent"])
    return agent


def plot_pretrain_losses(ax, result: dict) -> None:
    for key, (steps, vals) in result["pretrain"].items():
        if vals:
            ax.plot(steps, vals, label=key)
    ax.set_yscale("symlog", linthresh=1e-2)
    ax.set_xlabel("pre-training step")
    ax.set_title("pre-training losses")
    ax.legend(fontsize=7)


def print_pretrain_summary(result: dict) -> None:
    for k, v in result["timings"].items():
        print(f"{k} {v:.1f}")
    for k, (steps, vals) in result["pretrain"].items():
        if vals:
            print(f"pretrain/{k} first {vals[0]:.4g} last {vals[-1]:.4g}")
