"""Shared test helpers: compose the real Hydra configs with overrides and build agents from them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from run import compose_config

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT.parent / "shared" / "fixtures" / "original"

# Size-only shrink used by fast tests (never semantic keys: n_skill, use_cem, sac, joint_training, phase).
TINY = ["rolf.state_dim=16", "rolf.num_units=16", "rolf.num_layers=2", "rolf.pretrain.batch_size=8", "rolf.batch_size=8",
        "rolf.num_sample_traj=16", "rolf.num_policy_traj=4", "rolf.num_elites=4", "rolf.cem_iter=2"]


def compose_cfg(name: str = "skimo_maze", overrides: list[str] | None = None):
    return compose_config(name, overrides)


def maze_preprocess(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([x[..., :2] / 40.0 - 0.5, x[..., 2:] / 10.0], -1)


def make_skimo_agent(overrides: list[str] | None = None, phase: str = "pretrain", ob_dim: int = 4, ac_dim: int = 2,
                     preprocess=maze_preprocess, seed: int = 0):
    from envs import EnvSpec
    from skimo_agent import build_agent

    torch.manual_seed(seed)
    spec = EnvSpec("test", ob_dim, ac_dim, make=None, preprocess=preprocess)
    return build_agent(compose_cfg("skimo_maze", overrides), phase, seed=seed, spec=spec)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny networks: one intra-op thread is as fast, and far faster when other processes share the cores."""
    torch.set_num_threads(1)
