"""Typed views of the flat `rolf.*` Hydra config. These builders are the only code that knows key names;
everything downstream gets frozen dataclasses (configs flow one way: Hydra -> dataclass -> plain Python)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rolf.errors import UserError
from rolf.planners.cem import CEMConfig


class ConfigError(UserError, ValueError):
    pass


def get_optional_bool(cfg: Any, key: str) -> bool | None:
    """A tri-state switch: null (missing too) -> None ("decide automatically"), else the key as a bool."""
    value = get(cfg, key, None)
    return None if value is None else bool(value)


def get(cfg: Any, key: str, default: Any = ...) -> Any:
    """Read a dotted key from an OmegaConf node / dict; a missing required key raises naming the key."""
    node = cfg
    for part in key.split("."):
        try:
            node = node[part]
        except (KeyError, TypeError, AttributeError):
            node = ...
        if node is ...:
            if default is ...:
                raise ConfigError(f"missing config key 'rolf.{key}'")
            return default
    return node


@dataclass(frozen=True)
class TrainerConfig:
    """Loop schedule of the RL phase (spec §2.4) and of pre-training (spec §1.7)."""

    max_global_step: int
    warm_up_step: int
    train_every: int
    log_every: int
    evaluate_every: int
    ckpt_every: int
    num_eval: int
    pretrain_max_global_step: int = 0
    pretrain_log_every: int = 100
    pretrain_evaluate_every: int = 500
    pretrain_ckpt_every: int = 5000
    progress_bar: bool | None = None  # None: a bar when stderr is an interactive terminal
    ckpt_every_minutes: float = 20.0  # a checkpoint at least this often in wall-clock time (0: off)

    @classmethod
    def from_cfg(cls, cfg: Any) -> "TrainerConfig":
        r = cfg.rolf
        return cls(
            max_global_step=int(float(get(r, "max_global_step"))),
            warm_up_step=int(float(get(r, "warm_up_step"))),
            train_every=int(get(r, "train_every")),
            log_every=int(get(r, "log_every")),
            evaluate_every=int(get(r, "evaluate_every")),
            ckpt_every=int(float(get(r, "ckpt_every"))),
            num_eval=int(get(cfg, "num_eval", 1)),
            pretrain_max_global_step=int(float(get(r, "pretrain.max_global_step", 0))),
            pretrain_log_every=int(get(r, "pretrain.log_every", 100)),
            pretrain_evaluate_every=int(get(r, "pretrain.evaluate_every", 500)),
            pretrain_ckpt_every=int(float(get(r, "pretrain.ckpt_every", 5000))),
            progress_bar=get_optional_bool(cfg, "progress_bar"),
            ckpt_every_minutes=float(get(cfg, "ckpt_every_minutes", 20.0) or 0.0),
        )


def cem_config(r: Any, max_horizon: int, horizon_step: float, clamp: float) -> CEMConfig:
    return CEMConfig(
        max_horizon=max_horizon,
        horizon_step=float(horizon_step),
        iterations=int(get(r, "cem_iter")),
        num_samples=int(get(r, "num_sample_traj")),
        num_policy_traj=int(get(r, "num_policy_traj")),
        num_elites=int(get(r, "num_elites")),
        momentum=float(get(r, "cem_momentum")),
        temperature=float(get(r, "cem_temperature")),
        max_std=float(get(r, "max_std")),
        min_std=float(get(r, "min_std")),
        std_step=float(get(r, "std_step")),
        discount=float(get(r, "rl_discount")),
        clamp=clamp,
        compile=bool(get(r, "compile_planner", False)),
    )

