"""The one launcher: `python run.py --config-name skimo_maze [rolf.phase=rl rolf.pretrain_ckpt_path=...]`."""

from __future__ import annotations

import importlib
import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

# rolf.name -> trainer class. One table; the trainer builds its agent, env and runner from the config.
ALGOS = {
    "skimo": "skill_trainer:SkillTrainer",
    "tdmpc": "baselines.rl_trainer:RLTrainer",
    "dreamer": "baselines.rl_trainer:RLTrainer",
    "spirl": "baselines.rl_trainer:RLTrainer",
    "spirl_tdmpc": "baselines.rl_trainer:RLTrainer",
    "spirl_dreamer": "baselines.rl_trainer:RLTrainer",
}


CONFIG_DIR = Path(__file__).resolve().parent / "config"


def compose_config(name: str, overrides: list[str] | None = None) -> DictConfig:
    """The config `python run.py --config-name <name> <overrides>` would run with (for tests, benchmarks, notebooks)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(name, overrides=overrides or [])


def get_trainer_class(name: str):
    from rolf.config import ConfigError

    try:
        module, cls = ALGOS[name].split(":")
    except KeyError:
        raise ConfigError(f"unknown rolf.name {name!r}; available algorithms: {sorted(ALGOS)}") from None
    return getattr(importlib.import_module(module), cls)


def main(cfg: DictConfig) -> None:
    from rolf.main import setup_run
    from rolf.utils.perf import tune_malloc

    tune_malloc()
    trainer_cls = get_trainer_class(cfg.rolf.name)
    ctx, logger = setup_run(cfg)
    logging.getLogger("skimo").info("run %s on %s, logging to %s", ctx.run_name, ctx.device, ctx.log_dir)
    try:
        trainer = trainer_cls(cfg, ctx, logger)
        if ctx.is_train:
            trainer.train()
        else:
            trainer.resume()
            trainer.evaluate(0)
    finally:
        logger.close()


@hydra.main(config_path="config", config_name="skimo_maze", version_base="1.3")
def hydra_main(cfg: DictConfig) -> None:
    try:
        main(cfg)
    except Exception as e:
        from rolf.datasets.offline import DatasetError
        from rolf.errors import UserError

        if not isinstance(e, (UserError, DatasetError, FileNotFoundError)) or cfg.get("debug_traceback"):
            raise
        # One clear line instead of a traceback for bad input (set debug_traceback=true to see the traceback).
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    hydra_main()
