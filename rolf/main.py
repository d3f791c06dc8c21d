"""Run set-up: seed, device, run name, log dirs, saved config — computed once into a frozen RunContext.
Nothing here writes into the Hydra config (spec design R4)."""

from __future__ import annotations

import os
import random
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf

from rolf.errors import UserError
from rolf.utils.files import write_text_atomic
from rolf.utils.logger import Logger, setup_console_logging


@dataclass(frozen=True)
class RunContext:
    run_name: str
    log_dir: Path
    ckpt_dir: Path
    device: torch.device
    seed: int
    env: str
    algo: str
    phase: str
    is_train: bool
    command: str = "python run.py"  # the command line that runs this job again (resumes it)


class DeviceError(UserError, RuntimeError):
    pass


def resolve_device(gpu: Any) -> torch.device:
    """gpu=null -> CPU; gpu=<id> -> cuda:<id>, or a clear error when CUDA is not available."""
    if gpu is None:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise DeviceError(f"gpu={gpu} was requested but CUDA is not available in this torch build "
                          f"(torch {torch.__version__}); run with gpu=null for the CPU, or install a CUDA torch "
                          f"(bash install.sh --cuda)")
    if int(gpu) >= torch.cuda.device_count():
        raise DeviceError(f"gpu={gpu} but only {torch.cuda.device_count()} CUDA device(s) are visible")
    return torch.device(f"cuda:{int(gpu)}")


def run_name(cfg: Any) -> str:
    """`<env>.<algo>.<phase>.<run_prefix>.<seed>`, e.g. maze.skimo.pretrain.test.0 (spec §3.1.1)."""
    return f"{cfg.env.id}.{cfg.rolf.name}.{cfg.rolf.phase}.{cfg.run_prefix}.{cfg.seed}"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def job_command() -> str:
    """The command that runs this job again: under Hydra its config name and this job's own overrides (a sweep's
    job gets its values, not the sweep's lists), else the process's command line."""
    script = sys.argv[0] if sys.argv and sys.argv[0].endswith(".py") else "run.py"
    try:
        from hydra.core.hydra_config import HydraConfig

        if HydraConfig.initialized():
            hc = HydraConfig.get()
            return " ".join(shlex.quote(a) for a in ["python", script, "--config-name", hc.job.config_name,
                                                    *hc.overrides.task])
    except (ImportError, ValueError):  # pragma: no cover - Hydra missing or half set up
        pass
    return " ".join(shlex.quote(a) for a in ["python", *sys.argv])


def setup_run(cfg: Any) -> tuple[RunContext, Logger]:
    """Seeds, device and the run's names. Writes nothing: the run directory appears with `record_run` (once the
    trainer is built, so bad input leaves no empty folders) and fills as the run logs, saves and draws."""
    setup_console_logging()
    name = run_name(cfg)
    log_dir = Path(cfg.log_root_dir) / name
    ctx = RunContext(run_name=name, log_dir=log_dir, ckpt_dir=log_dir / "ckpt", device=resolve_device(cfg.gpu),
                     seed=int(cfg.seed), env=str(cfg.env.id), algo=str(cfg.rolf.name), phase=str(cfg.rolf.phase),
                     is_train=bool(cfg.is_train), command=job_command())
    seed_everything(ctx.seed)
    torch.set_num_threads(int(cfg.num_threads)) if cfg.get("num_threads") else None
    container = OmegaConf.to_container(cfg, resolve=True)
    logger = Logger(log_dir, name, use_wandb=bool(cfg.wandb), config=container, wandb_project=cfg.get("wandb_project"),
                    wandb_entity=cfg.get("wandb_entity"), notes=cfg.get("notes"),
                    metrics_file="metrics.jsonl" if ctx.is_train else "metrics_eval.jsonl")
    return ctx, logger


def record_run(ctx: RunContext, cfg: Any) -> None:
    """`params_<date>.yaml` (the resolved config: what rolf.run_dir compares a later start with) and `cmd_<date>.sh`
    (the command line) in the run directory, with ISO dates (YYYY-MM-DD_HH-MM-SS) so that `ls` lists them in time
    order."""
    ctx.log_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    write_text_atomic(ctx.log_dir / f"params_{stamp}.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    write_text_atomic(ctx.log_dir / f"cmd_{stamp}.sh", f"cd {shlex.quote(os.getcwd())}\n{ctx.command}\n")
