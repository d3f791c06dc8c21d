"""Run identity: a run directory belongs to one experiment.

Each start records its resolved config (`params_<date>.yaml`, rolf.main.record_run). A new start in a directory
that holds checkpoints resumes only if its config equals the recorded one in every key that changes results; the
keys of `MAY_DIFFER` (budgets, logging, checkpoint cadences, device and threads) may change between starts. Any
other difference is refused with one line naming the keys and the ways out: another `run_prefix`, `resume=force`
(continue the run with the new values) or `resume=overwrite` (start afresh; the old directory is moved aside, never
deleted). A directory without checkpoints has nothing to protect: the run starts afresh there.

While a run is going, its directory is locked (`.lock`, an flock released when the process ends in any way), so
that two processes never train the same run.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from rolf.errors import UserError
from rolf.utils.checkpoint import latest_checkpoint, parse_step

log = logging.getLogger("skimo")

# Keys that may change between the starts of one run without changing what it computes: the budgets, what is
# logged and how often, checkpoint cadences, where it runs (on another device or thread count the run continues the
# same experiment, not bit for bit), and how it is started.
BUDGET_KEYS = ("rolf.max_global_step", "rolf.pretrain.max_global_step")
MAY_DIFFER = frozenset({
    *BUDGET_KEYS,
    "rolf.log_every", "rolf.pretrain.log_every", "rolf.ckpt_every", "rolf.pretrain.ckpt_every", "ckpt_every_minutes",
    "wandb", "wandb_entity", "wandb_project", "notes", "progress_bar", "debug_traceback", "record_video",
    "gpu", "num_threads", "init_ckpt_path", "resume", "log_root_dir", "is_train", "rolf.pretrain.generate_data",
})
RESUME_MODES = ("auto", "force", "overwrite")


class RunConflict(UserError, RuntimeError):
    pass


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """{"rolf": {"pretrain": {"batch_size": 8}}} -> {"rolf.pretrain.batch_size": 8} (lists stay values)."""
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        out.update(flatten(v, key) if isinstance(v, dict) and v else {key: v})
    return out


def config_differences(recorded: dict, current: dict) -> list[tuple[str, Any, Any]]:
    """(key, recorded value, current value) for every key outside MAY_DIFFER that differs ("<absent>" for a key
    only one side has), in the current config's key order."""
    old, new = flatten(recorded), flatten(current)
    absent = "<absent>"
    keys = list(new) + [k for k in old if k not in new]
    return [(k, old.get(k, absent), new.get(k, absent)) for k in keys
            if k not in MAY_DIFFER and old.get(k, absent) != new.get(k, absent)]


def recorded_config(log_dir: Path) -> tuple[dict | None, Path | None]:
    """The config of the run's newest start (its newest params_<date>.yaml), resolved."""
    params = sorted(log_dir.glob("params_*.yaml"))
    if not params:
        return None, None
    return OmegaConf.to_container(OmegaConf.load(params[-1]), resolve=True), params[-1]


def _shown(v: Any) -> str:
    return "absent" if v == "<absent>" else repr(v) if isinstance(v, str) else str(v)


def check_identity(log_dir: Path, ckpt_dir: Path, current: dict, mode: str) -> None:
    """Refuse (RunConflict, one line) to resume a run recorded with a config that differs in a key that changes
    results; `mode` is the `resume` key. `overwrite` moves an existing run directory aside first."""
    if mode not in RESUME_MODES:
        raise RunConflict(f"resume={mode}: expected one of {', '.join(RESUME_MODES)}")
    if not log_dir.exists():
        return
    if mode == "overwrite":
        aside = log_dir.with_name(f"{log_dir.name}.old-{time.strftime('%Y-%m-%d_%H-%M-%S')}")
        os.replace(log_dir, aside)
        log.info("resume=overwrite: moved the earlier run directory %s aside to %s; starting afresh", log_dir, aside)
        return
    newest = latest_checkpoint(ckpt_dir)
    recorded, params = recorded_config(log_dir)
    if newest is None or recorded is None:
        return
    diffs = config_differences(recorded, current)
    if not diffs:
        old, new = flatten(recorded), flatten(current)
        for key in BUDGET_KEYS:
            if old.get(key) != new.get(key):
                log.info("resuming %s with %s %s (was %s)", log_dir, key, new.get(key), old.get(key))
        return
    if mode == "force":
        log.warning("resume=force: continuing %s from %s with %d changed keys: %s", log_dir, newest.name, len(diffs),
                    ", ".join(f"{k} {_shown(a)} -> {_shown(b)}" for k, a, b in diffs))
        return
    shown = "; ".join(f"{k}: {_shown(a)} there, {_shown(b)} here" for k, a, b in diffs[:4])
    more = f" and {len(diffs) - 4} more" if len(diffs) > 4 else ""
    raise RunConflict(f"{log_dir} holds a run with another config ({params.name}): {shown}{more}. Use another "
                      f"run_prefix=... for a new run, resume=force to continue this one with these values, or "
                      f"resume=overwrite to start afresh (the old directory is moved aside)")


def resume_path(ckpt_dir: Path, init_ckpt_path: str | None, training: bool = True) -> Path | None:
    """The checkpoint a start continues from. Training: the run's own newest one, else `init_ckpt_path` (which
    only starts a run: once the run has saved, a restart after a kill continues its own checkpoints). Evaluation:
    `init_ckpt_path` when given, else the newest."""
    own = latest_checkpoint(ckpt_dir)
    if init_ckpt_path and (not training or own is None):
        return Path(init_ckpt_path)
    return own


def finished_step(ckpt_dir: Path, init_ckpt_path: str | None, budget: int) -> int | None:
    """The step of the checkpoint a start would resume from, when it has already reached `budget` (nothing to
    do); else None."""
    path = resume_path(ckpt_dir, init_ckpt_path)
    if path is None:
        return None
    try:
        step = parse_step(path)
    except UserError:
        return None
    return step if step >= budget else None


class RunLock:
    """An exclusive flock on `<run dir>/.lock` for the life of the process (released by the OS however it ends)."""

    def __init__(self, log_dir: Path):
        self.path = log_dir / ".lock"
        self._fh = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")  # noqa: SIM115 (held open, locked, for the life of the run)
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            owner = fh.read().strip() or "?"
            fh.close()
            raise RunConflict(f"{self.path.parent} is being trained by another process (pid {owner}); wait for it, "
                              f"stop it, or use another run_prefix=...") from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None
