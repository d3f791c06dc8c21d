"""The one launcher: `python run.py --config-name skimo_maze [rolf.phase=rl rolf.pretrain_ckpt_path=...]`."""

from __future__ import annotations

import importlib
import logging
import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from rolf.errors import RunInterrupted, UserError, one_line

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
    from omegaconf import OmegaConf

    from rolf.main import record_run, setup_run
    from rolf.run_dir import RunLock, check_identity
    from rolf.utils.perf import tune_malloc
    from rolf.utils.signals import STOPS

    tune_malloc()
    trainer_cls = get_trainer_class(cfg.rolf.name)
    ctx, logger = setup_run(cfg)
    log = logging.getLogger("skimo")
    log.info("run %s on %s, logging to %s", ctx.run_name, ctx.device, ctx.log_dir)
    trainer = None
    lock = RunLock(ctx.log_dir)
    with STOPS.installed():
        try:
            if ctx.is_train:
                check_identity(ctx.log_dir, ctx.ckpt_dir, OmegaConf.to_container(cfg, resolve=True),
                               str(cfg.get("resume", "auto")))  # refuses a run of another config, in one line
                if nothing_to_do(cfg, ctx):
                    return
            trainer = trainer_cls(cfg, ctx, logger)  # checks the config's paths: bad input fails before anything is written
            if ctx.is_train:
                lock.acquire()
                record_run(ctx, cfg)
                trainer.train()
            else:
                trainer.evaluate(trainer.resume(truncate=False))
        except RunInterrupted:
            raise
        except KeyboardInterrupt as e:  # a stop signal before or after the training loop
            raise RunInterrupted(interrupt_message(ctx, trainer, e), exit_code=128 + getattr(e, "signum", 2)) from None
        finally:
            lock.release()
            logger.close()


def nothing_to_do(cfg: DictConfig, ctx) -> bool:
    """Whether the checkpoint a training start would resume from has reached the budget (then it says so)."""
    from rolf.config import TrainerConfig
    from rolf.run_dir import finished_step

    t = TrainerConfig.from_cfg(cfg)
    budget, key = ((t.pretrain_max_global_step, "rolf.pretrain.max_global_step") if ctx.phase == "pretrain"
                   else (t.max_global_step, "rolf.max_global_step"))
    done = finished_step(ctx.ckpt_dir, cfg.get("init_ckpt_path"), budget)
    if done is None:
        return False
    logging.getLogger("skimo").info("%s: nothing to do, its checkpoint is at step %s and %s=%s (raise it to train on)",
                                    ctx.run_name, f"{done:,}", key, f"{budget:,}")
    return True


def interrupt_message(ctx, trainer, error: KeyboardInterrupt) -> str:
    """Where a stop signal outside the training loop left the run, in one line."""
    from rolf.trainers.trainer import PHASE_NAMES
    from rolf.utils.checkpoint import latest_checkpoint
    from rolf.utils.signals import signal_label

    label = signal_label(error.signum) if hasattr(error, "signum") else "Ctrl-C"
    phase = PHASE_NAMES.get(ctx.phase, ctx.phase)
    where = f" at {phase} step {trainer.step:,}" if trainer is not None and trainer.step else ""
    newest = latest_checkpoint(ctx.ckpt_dir)
    saved = (f"newest checkpoint {newest}; resume with: {ctx.command}" if newest else "no checkpoint saved yet")
    return f"interrupted ({label}){where} of {ctx.run_name}; {saved}"


FAILED_JOBS: list[str] = []  # one line per job of this process that stopped on a user error


@hydra.main(config_path="config", config_name="skimo_maze", version_base="1.3")
def hydra_main(cfg: DictConfig) -> None:
    """One job. A user error is recorded as one line instead of raised through Hydra (which would print its own
    report), so in a sweep the other jobs still run; Ctrl-C stops everything."""
    try:
        main(cfg)
    except Exception as e:
        e = as_user_error(e)
        if not isinstance(e, user_error_types()) or cfg.get("debug_traceback"):
            raise e
        FAILED_JOBS.append(one_line(e))
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        if HydraConfig.get().mode == RunMode.MULTIRUN:  # say it now; the sweep goes on
            logging.getLogger("skimo").error("error: %s", FAILED_JOBS[-1])


def as_user_error(e: Exception) -> Exception:
    """A failed int()/float() conversion of a value typed on the command line (`rolf.pretrain.batch_size=abc` ->
    "invalid literal for int() ...: 'abc'") is a wrongly typed override, not a bug: a ConfigError naming it."""
    from hydra.core.hydra_config import HydraConfig

    from rolf.config import ConfigError

    conversion = isinstance(e, ValueError) and str(e).startswith(("invalid literal for int()", "could not convert string"))
    if not conversion or not HydraConfig.initialized():
        return e
    for override in HydraConfig.get().overrides.task:
        key, _, value = override.lstrip("+~").partition("=")
        if value and repr(value) in str(e):
            return ConfigError(f"{key}={value}: {e}")
    return e


def user_error_types() -> tuple[type[BaseException], ...]:
    """Exceptions caused by what the user typed or pointed at (printed as one line), not by a bug."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    return UserError, HydraException, OmegaConfBaseException, FileNotFoundError, IsADirectoryError, PermissionError


def cli() -> int:
    """`python run.py ...`: Hydra's main, with every user error and Ctrl-C as one line on stderr (exit 1 / 130).
    `debug_traceback=true` on the command line shows the traceback instead."""
    debug = any(a.replace(" ", "") in ("debug_traceback=true", "debug_traceback=True") for a in sys.argv[1:])
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")  # Hydra raises instead of printing its own multi-line report
    try:
        hydra_main()
        if FAILED_JOBS:
            if len(FAILED_JOBS) > 1:  # a sweep: the console showed each job's line as it failed; sum them up
                print(f"error: {len(FAILED_JOBS)} jobs failed; the first: {FAILED_JOBS[0]}", file=sys.stderr)
            else:
                print(f"error: {FAILED_JOBS[0]}", file=sys.stderr)
            return 1
    except KeyboardInterrupt as e:
        if debug:
            raise
        print(str(e) if isinstance(e, RunInterrupted) else "interrupted (Ctrl-C)", file=sys.stderr)
        return getattr(e, "exit_code", 130)
    except user_error_types() as e:
        if debug:
            raise
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(cli())
