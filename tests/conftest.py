"""Shared test helpers: compose the real Hydra configs with overrides and build agents from them."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from run import compose_config

ROOT = Path(__file__).resolve().parents[1]

# A job started in the background inherits SIGINT ignored (as CI's may be): restore Python's handler first, as an
# interactive terminal has it, then run the command exactly as `python <script> <args>` would.
LAUNCH = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
          "sys.path.insert(0, {root!r}); sys.argv = [{script!r}] + sys.argv[1:]; "
          "runpy.run_path({script!r}, run_name='__main__')")


def cli_command(script: str, *args: str) -> list[str]:
    """argv that runs `python <script> <args>` from the repo root as a user's terminal would (SIGINT handled)."""
    import sys

    return [sys.executable, "-c", LAUNCH.format(root=str(ROOT), script=str(ROOT / script)), *args]


# ---------------------------------------------------------------- fixtures made by running the original SkiMo code
@dataclass(frozen=True)
class OriginalFixtures:
    """One set of the original code's fixtures (checkpoints, reference outputs, step and plan fixtures) and the
    size overrides that build our networks at that set's widths (tests/fixtures/README.md)."""

    name: str
    path: Path
    sizes: dict[str, list[str]]  # env -> rolf size overrides

    def file(self, name: str) -> Path:
        return self.path / name

    def ckpt(self, env: str) -> Path:
        return self.file(f"{env}_ckpt_00000000003.pt")

    def reference(self, env: str):
        return np.load(self.file(f"{env}_reference_outputs.npz"))


FULL_FIXTURES_VAR = "SKIMO_ORIGINAL_FIXTURES"
# Vendored in the repo (2.1 MB): widths 16 / d_s 12 / LSTM 8 (tests/fixtures/original-tiny/README.md).
TINY_ORIGINAL = OriginalFixtures("tiny", ROOT / "tests" / "fixtures" / "original-tiny", {
    "maze": ["rolf.num_units=16", "rolf.state_dim=12", "rolf.lstm_units=8"],
    "kitchen": ["rolf.num_units=16", "rolf.state_dim=12", "rolf.lstm_units=8"]})
FULL_SIZES = {"maze": ["rolf.num_units=128", "rolf.state_dim=128"],
              "kitchen": ["rolf.num_units=128", "rolf.state_dim=256", "rolf.lstm_units=128"]}


def full_original() -> OriginalFixtures | None:
    """The full-size set (paper widths, 53 MB, not vendored) when $SKIMO_ORIGINAL_FIXTURES names its folder."""
    folder = os.environ.get(FULL_FIXTURES_VAR)
    if not folder:
        return None
    path = Path(folder).expanduser()
    if not (path / "maze_ckpt_00000000003.pt").is_file():
        raise pytest.UsageError(f"{FULL_FIXTURES_VAR}={folder}: expected the folder of the original's full-size fixtures "
                                f"(maze_ckpt_00000000003.pt, kitchen_reference_outputs.npz, ...)")
    return OriginalFixtures("full", path, FULL_SIZES)


_FULL_SKIP = pytest.mark.skipif(os.environ.get(FULL_FIXTURES_VAR) is None,
                                reason=f"full-size original fixtures: set {FULL_FIXTURES_VAR}=<their folder> to run")
ORIGINAL_SETS = [pytest.param("tiny", id="tiny"), pytest.param("full", id="full", marks=_FULL_SKIP)]


@pytest.fixture(params=ORIGINAL_SETS)
def original(request) -> OriginalFixtures:
    """Each fixture set in turn: the vendored tiny one always, the full-size one when its folder is given."""
    return TINY_ORIGINAL if request.param == "tiny" else full_original()

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
