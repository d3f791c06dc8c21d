"""Pre-training of SPiRL's closed-loop skill prior (spirl `train.py` with `ClSPiRLMdl`; skimo-spec.md §3.4, §1.5).

    python -m spirl.pretrain --env maze --data data/maze.gz --steps 100000 \
        --out log/skill_prior_learning/maze/hierarchical_cl/maze_TA_prior

Data: the container files of spec §5.1 through rolf's loader and episode buffers (`skill_trainer.dataset_buffers`:
first 99 % of the items train, the rest validate; an episode is cut at every done). Sequences of H+1 = 11 states
and the first H = 10 actions (the 11th action is dropped, as spirl's `subseq_len = n_rollout_steps + 1`).
States as SPiRL sees them (no normalisation): maze raw 4-d; kitchen 60-d = the 30-d observation ⊕ the 30-d goal
vector of the base task (`d4rl.kitchen.task_goal(check_task("base"))`, what the kitchen env appends); CALVIN the
first 21 of the 39 stored dims.

Optimisation (spirl `ModelTrainer`): RAdam (lr 1e−3, β = (0.9, 0.999)), batch 128, the global gradient norm clipped
to 0.001 for the first 100 gradient steps and not at all afterwards. One "step" here is one gradient step.
Validation: the mean loss over `--val-batches` validation batches with the model in eval mode (BatchNorm running
statistics, no gradient), every `--eval-every` steps.

Checkpoints: `<out>/weights/<env>_ckpt_<11-digit step>.pt` (rolf's atomic writer and name), holding
`{"step", "agent": {"model": state_dict, "config": SPiRLConfig dict, "env"}, "optimizer", "rng", "loop", "reason"}`,
every `--ckpt-every` steps, every `--ckpt-minutes` of wall-clock time, at the end, and when SIGINT / SIGTERM / SIGUSR1
arrives (then the run ends with one line: where it saved and the command that resumes it). A run restarted with the
same `--out` resumes from its newest checkpoint exactly (every RNG and the values accumulated for the next log line
travel in it; metrics.jsonl is cut back to its step). A NaN/inf loss or gradient norm stops the run without saving.
`load_spirl_prior(<out> or <file>)` returns the model.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np
import torch

from rolf.buffers.episode_buffer import InsufficientDataError, ReplayBufferEpisode
from rolf.datasets.offline import CALVIN_KEEP_OBS_DIMS, ENV_DIMS, DatasetError
from rolf.errors import RunInterrupted, UserError, exit_cli
from rolf.utils import rng as rng_util
from rolf.utils.checkpoint import (
    CheckpointError,
    ckpt_name,
    latest_checkpoint,
    load_checkpoint,
    load_module_state,
    save_checkpoint,
)
from rolf.utils.guards import diverged_message, first_non_finite
from rolf.utils.logger import truncate_metrics
from rolf.utils.progress import Progress
from rolf.utils.signals import STOPS, stopped_line
from spirl.model import ENV_PRIORS, SPiRLConfig, SPiRLModel

log = logging.getLogger("skimo")

# What the files hold (spec §5.1): (obs dim, action dim, dims kept). Kitchen's 60-d SPiRL state is assembled later.
DATA_SPECS: dict[str, SimpleNamespace] = {
    "maze": SimpleNamespace(ob_dim=ENV_DIMS["maze"][0], ac_dim=ENV_DIMS["maze"][1], keep_obs_dims=None),
    "kitchen": SimpleNamespace(ob_dim=ENV_DIMS["kitchen"][0], ac_dim=ENV_DIMS["kitchen"][1], keep_obs_dims=None),
    "calvin": SimpleNamespace(ob_dim=ENV_DIMS["calvin"][0], ac_dim=ENV_DIMS["calvin"][1], keep_obs_dims=CALVIN_KEEP_OBS_DIMS),
}
WEIGHTS_DIR = "weights"


class PretrainError(UserError, ValueError):
    """Bad input to the pre-training (one line)."""


@dataclass(frozen=True)
class PretrainConfig:
    env: str
    data: str
    out: str
    steps: int
    batch_size: int = 128
    lr: float = 1e-3
    adam_beta1: float = 0.9
    init_grad_clip: float = 1e-3
    init_grad_clip_steps: int = 100
    split: float = 0.99
    seed: int = 0
    log_every: int = 100
    eval_every: int = 1000
    val_batches: int = 10
    ckpt_every: int = 5000
    ckpt_minutes: float = 20.0  # also a checkpoint this often in wall-clock time (0: off)
    device: str = "cpu"
    command: str = "python -m spirl.pretrain"  # the command that resumes this run (printed when it is stopped)

    def validate(self) -> None:
        if self.env not in ENV_PRIORS:
            raise PretrainError(f"unknown env {self.env!r}; available: {sorted(ENV_PRIORS)}")
        for name in ("steps", "init_grad_clip_steps"):
            if getattr(self, name) < 0:
                raise PretrainError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("batch_size", "log_every", "eval_every", "val_batches", "ckpt_every"):
            if getattr(self, name) < 1:
                raise PretrainError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 < self.split <= 1.0:
            raise PretrainError(f"split must be in (0, 1], got {self.split}")
        if self.lr <= 0 or self.init_grad_clip <= 0:
            raise PretrainError("lr and init_grad_clip must be > 0")
        try:
            device = torch.device(self.device)
        except RuntimeError:
            raise PretrainError(f"invalid device {self.device!r}") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise PretrainError(f"device {self.device!r} requested but CUDA is not available")


# ---------------------------------------------------------------- states as SPiRL sees them
def kitchen_goal() -> np.ndarray:
    """The 30-d goal vector of the kitchen base task (microwave, kettle, bottom burner, light switch), float32."""
    from d4rl.kitchen import check_task, task_goal

    return task_goal(check_task("base"))


def state_assembler(env: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """obs (..., d_o) as stored (after CALVIN's 21-dim cut) -> SPiRL state (..., state_dim). Kitchen: ⊕ base goal."""
    if env != "kitchen":
        return lambda ob: ob
    goal_np = kitchen_goal()
    cache: dict[tuple, torch.Tensor] = {}

    def assemble(ob: torch.Tensor) -> torch.Tensor:
        key = (ob.device, ob.dtype)
        if key not in cache:
            cache[key] = torch.as_tensor(goal_np, dtype=ob.dtype, device=ob.device)
        return torch.cat([ob, cache[key].expand(*ob.shape[:-1], -1)], -1)

    return assemble


def load_buffers(env: str, path: str | Path, split: float, rng: np.random.Generator
                 ) -> tuple[ReplayBufferEpisode, ReplayBufferEpisode]:
    """Train / validation episode buffers of the file, exactly as SkiMo's pre-training builds them."""
    from skill_trainer import dataset_buffers  # heavy import (envs, agents): only when pre-training

    return dataset_buffers(str(path), DATA_SPECS[env], split, rng)


def to_batch(sample: dict[str, np.ndarray], assemble: Callable[[torch.Tensor], torch.Tensor], h: int,
             device: torch.device | str) -> dict[str, torch.Tensor]:
    """Buffer sample {ob (B, H+1, d_o), ac (B, H+1, d_a)} -> {states (B, H+1, d_s), actions (B, H, d_a)}."""
    ob = torch.as_tensor(sample["ob"], device=device)
    ac = torch.as_tensor(sample["ac"][:, :h], device=device)  # the last action is dropped
    return {"states": assemble(ob), "actions": ac}


# ---------------------------------------------------------------- checkpoints
def find_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or the newest one in `<dir>/weights/` (or `<dir>/` itself)."""
    p = Path(path)
    if p.is_file():
        return p
    if p.is_dir():
        found = latest_checkpoint(p / WEIGHTS_DIR) or latest_checkpoint(p)
        if found is not None:
            return found
        raise CheckpointError(f"{p}: no SPiRL prior checkpoint (<env>_ckpt_<step>.pt) in {p / WEIGHTS_DIR} or {p}")
    raise CheckpointError(f"{p}: SPiRL prior checkpoint or run directory not found")


def _model_from_checkpoint(ckpt: dict, source: str) -> tuple[SPiRLModel, str | None]:
    agent = ckpt["agent"]
    if not isinstance(agent, dict) or "model" not in agent or "config" not in agent:
        raise CheckpointError(f"{source}: not a SPiRL prior checkpoint (expected agent.model and agent.config)")
    try:
        cfg = SPiRLConfig.from_dict(dict(agent["config"]))
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{source}: bad SPiRL config in the checkpoint ({e})") from None
    model = SPiRLModel(cfg)
    load_module_state(model, agent["model"], "spirl", source)
    return model, agent.get("env")


def load_spirl_prior(path: str | Path, device: str | torch.device = "cpu", freeze: bool = True,
                     state_dim: int | None = None, action_dim: int | None = None) -> SPiRLModel:
    """The pre-trained SPiRL model from a checkpoint file or a pre-training `--out` directory (newest checkpoint).

    Args:
        freeze: `freeze_for_rl()` the model (eval-mode BatchNorm, no gradients), as SPiRL's frozen decoder and prior;
            `model.prior_policy_init()` then gives the trainable copy for the high-level policy.
        state_dim, action_dim: if given, must match the checkpoint (one-line CheckpointError otherwise).
    """
    file = find_checkpoint(path)
    model, env = _model_from_checkpoint(load_checkpoint(file, map_location=device), str(file))
    c = model.cfg
    for name, want in (("state_dim", state_dim), ("action_dim", action_dim)):
        if want is not None and getattr(c, name) != want:
            raise CheckpointError(f"{file}: the prior has {name} {getattr(c, name)} (env {env!r}), expected {want}")
    model.to(device)
    return model.freeze_for_rl() if freeze else model.eval()


def _save(out: Path, env: str, step: int, model: SPiRLModel, optim: torch.optim.Optimizer, rng: np.random.Generator,
          infos: dict[str, list], reason: str = "cadence") -> Path:
    """Everything a resumed run needs to continue exactly: weights, optimiser, every RNG, the values accumulated for
    the next log line."""
    from rolf.utils import rng as rng_util

    obj = {"step": step, "agent": {"model": model.state_dict(), "config": model.cfg.to_dict(), "env": env},
           "optimizer": optim.state_dict(), "rng": rng_util.capture({"trainer": rng}, next(model.parameters()).device),
           "loop": {"infos": {k: [torch.as_tensor(x).detach() for x in v] for k, v in infos.items()}}, "reason": reason}
    return save_checkpoint(out / WEIGHTS_DIR / ckpt_name(env, step), obj)


# ---------------------------------------------------------------- training
def evaluate(model: SPiRLModel, val_buf: ReplayBufferEpisode, n_batches: int, batch_size: int,
             assemble: Callable, device: torch.device | str) -> dict[str, torch.Tensor]:
    """Mean validation losses over n_batches batches, eval mode (BatchNorm running statistics), no gradient."""
    h = model.cfg.n_rollout_steps
    was_training = model.training
    model.eval()
    infos: dict[str, list] = defaultdict(list)
    with torch.no_grad():
        for _ in range(n_batches):
            _, info = model.loss(to_batch(val_buf.sample(batch_size, h + 1), assemble, h, device))
            for k, v in info.items():
                infos[k].append(v)
    model.train(was_training)
    return {k: torch.stack(v).mean() for k, v in infos.items()}


def pretrain(cfg: PretrainConfig, model_overrides: dict[str, Any] | None = None, logger: Any = None) -> Path:
    """Runs (or resumes) pre-training up to cfg.steps gradient steps; returns the final checkpoint's path."""
    from rolf.utils.logger import Logger

    cfg.validate()
    out, device = Path(cfg.out), torch.device(cfg.device)
    model_cfg = SPiRLConfig.for_env(cfg.env, **(model_overrides or {}))
    h = model_cfg.n_rollout_steps
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)

    train_buf, val_buf = load_buffers(cfg.env, cfg.data, cfg.split, rng)
    if not train_buf.can_sample(h + 1):
        longest = max((len(train_buf.get_episode(i)["done"]) for i in range(len(train_buf))), default=0)
        raise PretrainError(f"{cfg.data}: no training episode has the {h + 1} steps a skill needs (longest: {longest})")
    has_val = val_buf.can_sample(h + 1)
    if not has_val:
        log.warning("%s: no validation episode has %d steps: validation losses are skipped", cfg.data, h + 1)
    assemble = state_assembler(cfg.env)

    model = SPiRLModel(model_cfg).to(device)
    optim = torch.optim.RAdam(model.parameters(), lr=cfg.lr, betas=(cfg.adam_beta1, 0.999))
    step, saved_infos = 0, {}
    resume = latest_checkpoint(out / WEIGHTS_DIR)
    if resume is not None:
        ckpt = load_checkpoint(resume, map_location=device)
        old, old_env = _model_from_checkpoint(ckpt, str(resume))
        if old_env != cfg.env or old.cfg != model_cfg:
            raise PretrainError(f"{resume}: holds a prior for env {old_env!r} with another config; use a new --out")
        model.load_state_dict(old.state_dict())
        if "optimizer" in ckpt:
            optim.load_state_dict(ckpt["optimizer"])
        step = int(ckpt["step"])
        if "rng" in ckpt:
            rng_util.restore(ckpt["rng"], {"trainer": rng})
        saved_infos = (ckpt.get("loop") or {}).get("infos", {})
        log.info("resuming from %s (step %d)", resume, step)
    logger = logger or Logger(out, f"spirl.{cfg.env}")
    if hasattr(logger, "metrics_path"):
        truncate_metrics(logger.metrics_path, step if resume is not None else -1)  # each row exists once
    log.info("SPiRL prior pre-training on %s: %d train / %d validation episodes (%d / %d steps), %d parameters, "
             "device %s", cfg.data, len(train_buf), len(val_buf), train_buf.num_transitions, val_buf.num_transitions,
             sum(p.numel() for p in model.parameters()), device)

    model.train()
    infos: dict[str, list] = defaultdict(list, {k: list(v) for k, v in saved_infos.items()})
    tic, tic_step, last_saved = time.time(), step, step if resume is not None else -1
    saved_at = time.monotonic()
    with Progress("SPiRL prior pre-training", cfg.steps, step) as progress, STOPS.deferred():
        while step < cfg.steps:
            batch = to_batch(train_buf.sample(cfg.batch_size, h + 1), assemble, h, device)
            total, info = model.loss(batch)
            optim.zero_grad(set_to_none=True)
            total.backward()
            if step < cfg.init_grad_clip_steps:  # spirl: clip in the first steps "to avoid NaN gradients"
                info["grad_norm"] = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.init_grad_clip).detach()
            bad = first_non_finite(info)
            if bad is not None:
                _, key, value = bad
                raise PretrainError(diverged_message(key, value, f"at step {step + 1}",
                                                     latest_checkpoint(out / WEIGHTS_DIR)))
            optim.step()
            step += 1
            progress.update(step)
            for k, v in info.items():
                infos[k].append(v)
            if step % cfg.log_every == 0 or step == cfg.steps:
                metrics = {k: torch.stack(v).mean() for k, v in infos.items()}
                metrics["steps_per_sec"] = (step - tic_step) / max(time.time() - tic, 1e-9)
                logger.log(step, "train", metrics, head=progress.status(step))
                infos, tic, tic_step = defaultdict(list), time.time(), step
            if has_val and (step % cfg.eval_every == 0 or step == cfg.steps):
                logger.log(step, "val", evaluate(model, val_buf, cfg.val_batches, cfg.batch_size, assemble, device))
            stop = STOPS.requested
            clock = cfg.ckpt_minutes > 0 and time.monotonic() - saved_at >= 60.0 * cfg.ckpt_minutes
            if step % cfg.ckpt_every == 0 or stop is not None or clock:
                reason = "cadence" if step % cfg.ckpt_every == 0 else "signal" if stop is not None else "clock"
                path = _save(out, cfg.env, step, model, optim, rng, infos, reason)
                last_saved, saved_at = step, time.monotonic()
                if stop is not None:
                    raise RunInterrupted(stopped_line(stop, f"SPiRL prior pre-training step {step:,}", path, cfg.command),
                                         exit_code=128 + stop)
    if last_saved != step or latest_checkpoint(out / WEIGHTS_DIR) is None:
        _save(out, cfg.env, step, model, optim, rng, infos, "final")
    return out / WEIGHTS_DIR / ckpt_name(cfg.env, step)


# ---------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m spirl.pretrain",
                                description="Pre-train SPiRL's closed-loop skill prior (skill encoder, decoder, prior).")
    p.add_argument("--env", required=True, choices=sorted(ENV_PRIORS))
    p.add_argument("--data", default=None, help="container file (default data/<env>.gz)")
    p.add_argument("--out", default=None, help="run directory (default: the path SkiMo's SPiRL loads, spec §4.4)")
    p.add_argument("--steps", type=int, default=100_000, help="gradient steps in total (resumes count)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--init-grad-clip-steps", type=int, default=100,
                   help="clip the gradient norm to 0.001 for this many first steps (spirl: 100)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=int, default=100)
    p.add_argument("--eval-every", type=int, default=1000)
    p.add_argument("--val-batches", type=int, default=10)
    p.add_argument("--ckpt-every", type=int, default=5000)
    p.add_argument("--ckpt-minutes", type=float, default=20.0, help="also a checkpoint this often (0: off)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    a = p.parse_args(argv)
    from rolf.utils.logger import setup_console_logging

    setup_console_logging()
    device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    cfg = PretrainConfig(env=a.env, data=a.data or f"data/{a.env}.gz", out=a.out or ENV_PRIORS[a.env]["dir"],
                         steps=a.steps, batch_size=a.batch_size, lr=a.lr, seed=a.seed,
                         init_grad_clip_steps=a.init_grad_clip_steps, log_every=a.log_every,
                         eval_every=a.eval_every, val_batches=a.val_batches, ckpt_every=a.ckpt_every, device=device,
                         ckpt_minutes=a.ckpt_minutes,
                         command=" ".join(shlex.quote(x) for x in ["python", "-m", "spirl.pretrain", *(argv or sys.argv[1:])]))
    try:
        with STOPS.installed():
            path = pretrain(cfg)
    except (UserError, DatasetError, InsufficientDataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    # Process-wide, so only for the command: tiny RAdam second moments after the clipped first steps are denormal
    # floats, which are slow on CPUs.
    torch.set_flush_denormal(True)
    exit_cli(main)
