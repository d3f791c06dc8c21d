"""The trainer of every method that learns online from scratch or from a frozen skill library (no SkiMo
pre-training phase): builds env, agent and runner from the config and runs the shared rolf RL loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from envs import env_kwargs, get_env_spec
from rolf.config import ConfigError, TrainerConfig, get
from rolf.main import RunContext
from rolf.trainers.rollout import VISIT_CAPACITY, RolloutRunner
from rolf.trainers.trainer import Trainer
from rolf.utils.logger import Logger
from rolf.utils.precision import parse_precision


def build_tdmpc(cfg: Any, spec, device: torch.device, rng: np.random.Generator):
    from baselines.tdmpc_agent import TDMPCAgent, TDMPCConfig

    # Raw observations (spec §3.2, §7.13) unless rolf.fix_ob_norm=true (SkiMo's preprocessing, e.g. maze /40 - 0.5).
    preprocess = spec.preprocess if bool(get(cfg.rolf, "fix_ob_norm", False)) else None
    return TDMPCAgent(TDMPCConfig.from_rolf(cfg.rolf), cfg.rolf, spec.ob_dim, spec.ac_dim, device, rng, preprocess)


def build_dreamer(cfg: Any, spec, device: torch.device, rng: np.random.Generator):
    from baselines.dreamer_agent import build_dreamer as build

    return build(cfg, spec, device, rng)


def build_spirl(cfg: Any, spec, device: torch.device, rng: np.random.Generator):
    from baselines.spirl_agent import build_spirl as build

    return build(cfg, spec, device, rng)


def build_spirl_tdmpc(cfg: Any, spec, device: torch.device, rng: np.random.Generator):
    from baselines.spirl_tdmpc_agent import build_spirl_tdmpc as build

    return build(cfg, spec, device, rng)


def build_spirl_dreamer(cfg: Any, spec, device: torch.device, rng: np.random.Generator):
    from baselines.spirl_dreamer_agent import build_spirl_dreamer as build

    return build(cfg, spec, device, rng)


# rolf.name -> agent factory (cfg, env spec, device, rng) -> agent
AGENTS: dict[str, Callable[..., Any]] = {"tdmpc": build_tdmpc, "dreamer": build_dreamer, "spirl": build_spirl,
                                         "spirl_tdmpc": build_spirl_tdmpc, "spirl_dreamer": build_spirl_dreamer}


def build_method_agent(cfg: Any, device: torch.device | str = "cpu", seed: int = 0, spec=None,
                       rng: np.random.Generator | None = None):
    """The agent named by `rolf.name` for a composed config (tests, benchmarks); `rng` (default: seeded with
    `seed`) is the numpy Generator it and its replay buffer draw from."""
    name = str(cfg.rolf.name)
    if name not in AGENTS:
        raise ConfigError(f"unknown rolf.name {name!r} for the RL trainer; available: {sorted(AGENTS)}")
    if parse_precision(get(cfg.rolf, "precision", 32)) is not None:
        raise ConfigError(f"rolf.precision={cfg.rolf.precision}: mixed precision is implemented for SkiMo only; "
                          f"use rolf.precision=32 with {name}")
    rng = rng if rng is not None else np.random.default_rng(seed)
    return AGENTS[name](cfg, spec or get_env_spec(cfg.env.id), torch.device(device), rng)


def make_runner(env, eval_env, agent, warm_up_step: int, reward_scale: float = 1.0, seed: int = 0,
                visit_capacity: int = VISIT_CAPACITY) -> RolloutRunner:
    """The SPiRL family acts in skills (`skill_horizon` env steps per decision): SkiMo's hierarchical runner. The
    flat baselines (TD-MPC, Dreamer) decide every env step: rolf's runner."""
    kwargs = {"warm_up_step": warm_up_step, "reward_scale": reward_scale, "seed": seed,
              "bootstrap_timeout": bool(getattr(agent, "bootstrap_timeout", False)), "visit_capacity": visit_capacity}
    if hasattr(agent, "act_skill"):
        from skimo_rollout import SkiMoRolloutRunner

        return SkiMoRolloutRunner(env, eval_env, agent, agent.skill_horizon, **kwargs)
    return RolloutRunner(env, eval_env, agent, **kwargs)


class RLTrainer(Trainer):
    def __init__(self, cfg: Any, ctx: RunContext, logger: Logger):
        if ctx.phase != "rl":
            raise ConfigError(f"rolf.phase={ctx.phase!r}: {ctx.algo} has only the 'rl' phase")
        spec = get_env_spec(ctx.env)
        rng = np.random.default_rng(ctx.seed)
        agent = build_method_agent(cfg, ctx.device, ctx.seed, spec, rng=rng)
        kwargs = env_kwargs(cfg.env)
        env = spec.make(seed=ctx.seed, **kwargs)
        eval_env = spec.make(seed=ctx.seed + 10_000, **kwargs)
        tcfg = TrainerConfig.from_cfg(cfg)
        vis = spec.visualizer(ctx.log_dir / "vis") if spec.visualizer else None
        runner = make_runner(env, eval_env, agent, tcfg.warm_up_step, float(get(cfg.rolf, "reward_scale", 1.0)), ctx.seed,
                             visit_capacity=VISIT_CAPACITY if vis else 0)
        super().__init__(ctx, tcfg, agent, runner, logger, vis, get(cfg, "init_ckpt_path", None), rng=rng)
