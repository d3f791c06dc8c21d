"""Shared test helpers: compose the real Hydra configs with overrides and build agents from them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
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


def maze_preprocess(x):
    from envs.maze import preprocess_maze_ob

    return preprocess_maze_ob(x)


def make_skimo_agent(overrides: list[str] | None = None, phase: str = "pretrain", ob_dim: int = 4, ac_dim: int = 2,
                     preprocess=maze_preprocess, seed: int = 0):
    from envs import EnvSpec
    from skimo_agent import build_agent

    torch.manual_seed(seed)
    spec = EnvSpec("test", ob_dim, ac_dim, make=None, preprocess=preprocess)
    return build_agent(compose_cfg("skimo_maze", overrides), phase, seed=seed, spec=spec)


def skimo_pretrain_batch(rng, b=8, length=101):
    """SkiMo pre-training batch {ob (B, T, 4), ac (B, T, 2)}: smooth maze-like trajectories whose positions
    integrate bounded actions."""
    ac = np.clip(np.cumsum(rng.normal(0, 0.3, (b, length, 2)), 1), -1, 1).astype(np.float32)
    pos = 20 + np.cumsum(ac * 0.05, 1)
    vel = ac * 0.5
    return {"ob": np.concatenate([pos, vel], -1).astype(np.float32), "ac": ac}


def skimo_rl_batch(rng, b=8, n_skill=10):
    """SkiMo RL batch of n_skill skills {ob, ac (skills), rew, done} with random maze positions."""
    return {"ob": (rng.random((b, n_skill + 1, 4)) * 40).astype(np.float32),
            "ac": rng.uniform(-0.99, 0.99, (b, n_skill, 10)).astype(np.float32),
            "rew": (rng.random((b, n_skill)) < 0.2).astype(np.float32), "done": np.zeros((b, n_skill), np.float32)}


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny networks: one intra-op thread is as fast, and far faster when other processes share the cores."""
    torch.set_num_threads(1)


# ---------------------------------------------------------------- SPiRL family (tests/baselines)
PRIOR_ENVS = ("maze", "kitchen", "calvin")
PRIOR_TINY = {"nz_mid": 16, "nz_enc": 16, "nz_mid_lstm": 16, "n_processing_layers": 1, "num_prior_net_layers": 1}


class _NullLogger:
    def log(self, *a, **k):
        pass


@pytest.fixture(scope="session")
def priors(tmp_path_factory) -> dict[str, str]:
    """A tiny SPiRL prior per env, pre-trained for a few steps on a toy dataset in the env's stored layout:
    {env: prior directory} (what `rolf.prior_path` takes)."""

    from rolf.datasets.offline import ENV_DIMS, save_trajectories
    from spirl.pretrain import PretrainConfig, pretrain

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("spirl_priors")
    rng = np.random.default_rng(0)
    out = {}
    for env in PRIOR_ENVS:
        ob_dim, ac_dim = ENV_DIMS[env]
        trajs = [{"obs": rng.normal(size=(25, ob_dim)).astype(np.float32),
                  "actions": rng.uniform(-1, 1, (25, ac_dim)).astype(np.float32),
                  "dones": np.zeros(25, np.float32)} for _ in range(3)]
        save_trajectories(root / f"{env}.gz", trajs)
        cfg = PretrainConfig(env=env, data=str(root / f"{env}.gz"), out=str(root / env), steps=3, batch_size=8,
                             log_every=10, eval_every=10, val_batches=1, ckpt_every=1000, split=1.0)
        pretrain(cfg, model_overrides=PRIOR_TINY, logger=_NullLogger())
        out[env] = str(root / env)
    return out
