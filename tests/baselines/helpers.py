"""Checks shared by the baseline tests (the tiny SPiRL `priors` fixture lives in tests/conftest.py: a second
conftest.py would shadow that module for the tests that import from it)."""

from __future__ import annotations

import numpy as np
import torch


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


def make_runner(cfg, spec, agent, warm_up_step: int):
    """The runner the RL trainer gives this agent, on a training env (seed 0) and an evaluation env (seed 1) built
    from cfg.env."""
    from baselines.rl_trainer import make_runner
    from envs import env_kwargs

    kwargs = env_kwargs(cfg.env)
    return make_runner(spec.make(seed=0, **kwargs), spec.make(seed=1, **kwargs), agent, warm_up_step=warm_up_step)


def build_spirl_family(builder, config_name: str, env: str, prior: str, tiny: list[str], extra=(), seed: int = 0):
    """A SPiRL-family agent (`builder` = build_spirl / build_spirl_tdmpc / build_spirl_dreamer) from the tiny
    config `config_name` with the prior at `prior`, on CPU, seeded."""
    from envs import get_env_spec
    from tests.conftest import compose_cfg

    torch.manual_seed(seed)
    cfg = compose_cfg(config_name, [f"rolf.prior_path={prior}", *tiny, *extra])
    return builder(cfg, get_env_spec(env), torch.device("cpu"), np.random.default_rng(seed))


def assert_losses_halve(agent, batch, keys, steps: int = 60) -> None:
    """`steps` updates on one fixed batch at least halve every loss in `keys`."""
    first = agent.rl_step(batch)
    for _ in range(steps):
        last = agent.rl_step(batch)
    for k in keys:
        assert last[k] < 0.5 * first[k], (k, float(first[k]), float(last[k]))


def agent_and_runner(cfg, env: str, warm_up_step: int):
    """The agent `rl_trainer` builds for cfg (torch seed 0) and the shared runner around it (`make_runner`)."""
    from baselines import rl_trainer
    from envs import get_env_spec

    torch.manual_seed(0)
    spec = get_env_spec(env)
    agent = rl_trainer.build_method_agent(cfg, spec=spec)
    return agent, make_runner(cfg, spec, agent, warm_up_step)
