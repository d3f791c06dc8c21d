"""Every baseline on every env, through the real configs and the shared RL trainer: builds, collects, updates,
evaluates, checkpoints (tiny sizes); plus per-method behaviour on fixed toy batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from baselines.rl_trainer import build_method_agent
from envs import get_env_spec
from tests.baselines.helpers import make_runner
from tests.conftest import compose_cfg

ENVS = ("maze", "kitchen", "calvin")
# Size-only shrink per method config (never semantic keys).
TINY = {
    "tdmpc_config": ["rolf.state_dim=16", "rolf.num_units=32", "rolf.encoder.embed_dim=32", "rolf.batch_size=16",
                     "rolf.num_sample_traj=16", "rolf.num_policy_traj=4", "rolf.num_elites=4", "rolf.cem_iter=2",
                     "rolf.horizon=3", "rolf.train_iter=2", "rolf.train_every=50", "rolf.warm_up_step=60"],
    "dreamer_config": ["rolf.deter_dim=16", "rolf.stoch_dim=4", "rolf.num_units=32", "rolf.encoder.embed_dim=16",
                       "rolf.encoder.hidden_dims=[16]", "rolf.decoder.hidden_dims=[16]", "rolf.batch_size=4",
                       "rolf.batch_length=8", "rolf.horizon=4", "rolf.train_iter=2", "rolf.train_every=50",
                       "rolf.warm_up_step=60"],
}
# Losses that must fall on a fixed toy batch (Dreamer's reward NLL has a floor of ~0.92: it cannot halve).
DECREASING = {"tdmpc_config": ("model_loss", "consistency_loss", "reward_loss"),
              "dreamer_config": ("recon_loss_ob",)}
METHODS = tuple(TINY)


def _cfg(method: str, env: str, extra: list[str] = ()):
    return compose_cfg(method, [f"env={env}", "env.max_episode_steps=40", *TINY[method], *extra])


def _toy_batch(agent, b: int = 16, n: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
    """A fixed batch of a deterministic linear system with reward = −‖ob‖ (a learnable toy problem)."""
    rng = np.random.default_rng(seed)
    ob = np.zeros((b, n + 1, agent.ob_dim), np.float32)
    ob[:, 0] = rng.normal(size=(b, agent.ob_dim))
    ac = rng.uniform(-1, 1, (b, n, agent.ac_dim)).astype(np.float32)
    for t in range(n):
        ob[:, t + 1] = 0.9 * ob[:, t]
        ob[:, t + 1, : agent.ac_dim] += 0.1 * ac[:, t]
    rew = -np.linalg.norm(ob[:, :-1], axis=-1).astype(np.float32)
    return {"ob": ob, "ac": ac, "rew": rew, "done": np.zeros((b, n), np.float32)}


@pytest.mark.parametrize("env", ENVS)
@pytest.mark.parametrize("method", METHODS)
def test_method_runs_on_env(method, env, tmp_path):
    torch.manual_seed(0)
    cfg = _cfg(method, env)
    spec = get_env_spec(env)
    agent = build_method_agent(cfg, spec=spec)
    runner = make_runner(cfg, spec, agent, warm_up_step=60)
    gen = runner.run(every_steps=50)
    infos = {}
    for _ in range(3):  # warm-up chunk, then two chunks with updates
        rollout, _, n = next(gen)
        assert n >= 50
        agent.store_episode(rollout)
        agent.set_step(agent.step + n)
        infos = agent.update()
    assert infos and all(torch.isfinite(v).all() for v in infos.values())
    info, obs = runner.run_episode(is_train=False)
    assert info["len"] == 40 and obs.shape == (41, spec.ob_dim)
    # checkpoint round-trip: a fresh agent loaded from the state acts identically
    state = agent.state_dict()
    torch.save(state, tmp_path / "a.pt")
    other = build_method_agent(cfg, spec=spec, seed=1)
    other.load_state_dict(torch.load(tmp_path / "a.pt", weights_only=False))
    other.set_step(agent.step)  # the trainer restores the step from the checkpoint
    ob = obs[5]
    torch.manual_seed(3)
    a1, _ = agent.act_meta(ob, None, is_train=False)
    torch.manual_seed(3)
    a2, _ = other.act_meta(ob, None, is_train=False)
    np.testing.assert_allclose(a1, a2, rtol=1e-5, atol=1e-6)
    assert np.abs(a1).max() <= 1.0


@pytest.mark.parametrize("method", METHODS)
def test_losses_decrease_on_a_fixed_toy_batch(method):
    torch.manual_seed(0)
    agent = build_method_agent(_cfg(method, "maze", ["rolf.model_lr=3e-3"]))
    batch = _toy_batch(agent)
    first = agent.rl_step(batch)
    for _ in range(60):
        last = agent.rl_step(batch)
    for key in DECREASING[method]:
        assert last[key] < 0.5 * first[key], (key, float(first[key]), float(last[key]))


def test_tdmpc_targets_ignore_dones_unless_fixed():
    """The original bootstraps through terminals (spec §3.2); rolf.fix_done_mask=true masks them."""
    torch.manual_seed(0)
    batch = _toy_batch(build_method_agent(_cfg("tdmpc_config", "maze")))
    batch["done"][:] = 1.0
    vals = []
    for fix in ("false", "true"):
        torch.manual_seed(0)
        agent = build_method_agent(_cfg("tdmpc_config", "maze", [f"rolf.fix_done_mask={fix}", "rolf.rl_discount=0.5"]))
        with torch.no_grad():
            for head in agent.model.critic.fcs:  # a large value, so bootstrapping shows in the target
                head[-1].fcs[-1].bias.fill_(10.0)
            agent.model_target.load_state_dict(agent.model.state_dict())
        vals.append(float(agent.rl_step(batch)["value_target"]))
    assert vals[0] > vals[1] + 1.0  # with the mask, y = r only


def test_tdmpc_warm_up_acts_uniformly_and_plans_after():
    agent = build_method_agent(_cfg("tdmpc_config", "maze"))
    acts = np.stack([agent.act_meta(np.zeros(4, np.float32), None, True, warm_up=True)[0] for _ in range(200)])
    assert acts.shape == (200, 2) and acts.min() < -0.8 and acts.max() > 0.8
    a, mean = agent.act_meta(np.zeros(4, np.float32), None, True)
    assert a.shape == (2,) and mean is not None


@pytest.mark.parametrize("method", METHODS)
def test_launcher_runs_and_resumes(method, tmp_path):
    """`python run.py --config-name <method>` through run.main: trains, evaluates, checkpoints, and a second call
    with a larger budget resumes from the newest checkpoint."""
    import json

    import run

    base = ["env=maze", "env.max_episode_steps=50", *TINY[method], f"log_root_dir={tmp_path}", "run_prefix=t",
            "rolf.log_every=50", "rolf.evaluate_every=100", "rolf.ckpt_every=100"]
    run.main(compose_cfg(method, base + ["rolf.max_global_step=200"]))
    name = str(compose_cfg(method).rolf.name)
    run_dir = tmp_path / f"maze.{name}.rl.t.0"
    assert (run_dir / "ckpt" / "maze_ckpt_00000000200.pt").is_file()
    run.main(compose_cfg(method, base + ["rolf.max_global_step=250"]))
    steps = sorted(int(p.stem.split("_")[-1]) for p in (run_dir / "ckpt").glob("maze_ckpt_*.pt"))
    assert steps[-1] == 250
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert any("test_ep/len" in r for r in rows) and any("train_rl/model_loss" in r for r in rows)


@pytest.mark.parametrize("method", METHODS)
def test_fix_ob_norm_switches_the_maze_preprocessing(method):
    """§7.13: flat baselines see raw maze positions (0–40) by default; rolf.fix_ob_norm=true normalises them."""
    ob = torch.tensor([[20.0, 30.0, 1.0, -1.0]])
    raw = build_method_agent(_cfg(method, "maze")).preprocess(ob)
    fixed = build_method_agent(_cfg(method, "maze", ["rolf.fix_ob_norm=true"])).preprocess(ob)
    torch.testing.assert_close(raw, ob)
    torch.testing.assert_close(fixed, torch.tensor([[0.0, 0.25, 0.1, -0.1]]))
