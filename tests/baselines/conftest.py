"""Fixtures shared by the baseline tests: tiny SPiRL skill priors (the SPiRL family loads one per env)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rolf.datasets.offline import ENV_DIMS, save_trajectories
from spirl.pretrain import PretrainConfig, pretrain

PRIOR_ENVS = ("maze", "kitchen", "calvin")
PRIOR_TINY = {"nz_mid": 16, "nz_enc": 16, "nz_mid_lstm": 16, "n_processing_layers": 1, "num_prior_net_layers": 1}


class _NullLogger:
    def log(self, *a, **k):
        pass


@pytest.fixture(scope="session")
def priors(tmp_path_factory) -> dict[str, str]:
    """A tiny SPiRL prior per env, pre-trained for a few steps on a toy dataset in the env's stored layout:
    {env: prior directory} (what `rolf.prior_path` takes)."""
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


def assert_resumes_identically(agent, other, ob, tmp_path) -> tuple:
    """Checkpoint round-trip: `other` (a fresh agent) loaded from `agent`'s state (through a file, weights_only)
    with the sampler RNG the trainer restores, acts and updates bit-identically under the same torch seed.
    Returns (z, the update info)."""
    torch.save(agent.state_dict(), tmp_path / "a.pt")
    other.load_state_dict(torch.load(tmp_path / "a.pt", weights_only=True))
    other.hl_buffer.rng.bit_generator.state = agent.hl_buffer.rng.bit_generator.state
    outs = []
    for a in (agent, other):
        torch.manual_seed(3)
        z, _ = a.act_meta(ob, None, is_train=True)
        outs.append((z, a.update()))
    (z1, u1), (z2, u2) = outs
    np.testing.assert_array_equal(z1, z2)
    assert all(torch.equal(u1[k], u2[k]) for k in u1)
    return z1, u1
