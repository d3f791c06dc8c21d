"""The online RL loop (spec §2.4 / §3.1.4), evaluation and checkpoints. Agents plug in through a small
protocol: store_episode, update, set_step, state_dict/load_state_dict; rollouts come from a runner.

Checkpoints make a run safe to stop anywhere: besides the agent (weights, optimisers, α, counters, replay) they
hold every RNG (`rolf.utils.rng`), the runner's state (env RNGs, the episode in progress) and the loop's own state
(the schedules' positions, the values accumulated for the next log line), so that a run restarted from one computes
and logs bit for bit what the uninterrupted run did after it (on the same device and thread count). They are
written on the step cadence, on a wall-clock cadence (`ckpt_every_minutes`), at the end, and when a stop signal
arrives (SIGINT, SIGTERM, SIGUSR1; `rolf.utils.signals`).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rolf.config import TrainerConfig
from rolf.errors import RunInterrupted, UserError
from rolf.main import RunContext
from rolf.run_dir import resume_path
from rolf.utils import rng as rng_util
from rolf.utils.checkpoint import ckpt_name, load_checkpoint, parse_step, remove_stale_temporaries, save_checkpoint
from rolf.utils.guards import diverged_message, first_non_finite
from rolf.utils.logger import Logger, truncate_metrics
from rolf.utils.progress import Progress, every
from rolf.utils.schedule import Every
from rolf.utils.signals import STOPS, stopped_line

log = logging.getLogger("skimo")

PHASE_NAMES = {"pretrain": "pre-training", "rl": "RL"}
# Checkpoints written for safety, not for the run's history: the next checkpoint of the run replaces them.
SAFETY_REASONS = ("clock", "signal")


class TrainingDiverged(UserError, RuntimeError):
    """A loss or gradient became NaN or infinite; the run stops without saving the broken state."""


def mean_infos(infos: list[dict[str, Any]]) -> dict[str, float]:
    """Per-key mean of episode infos (our rule for `train_ep`, spec §7.14)."""
    keys = dict.fromkeys(k for i in infos for k in i)
    return {k: float(np.mean([i[k] for i in infos if k in i])) for k in keys}


def max_infos(infos: list[dict[str, Any]]) -> dict[str, float]:
    """Per-key max, the original hierarchical runners' rule, logged as `train_ep_max`."""
    keys = dict.fromkeys(k for i in infos for k in i)
    return {k: float(np.max([i[k] for i in infos if k in i])) for k in keys}


class LoopState:
    """What a training loop carries from one log line to the next: the cadences' positions and the values
    accumulated for the next `train_*` line (saved in checkpoints, so a resumed run logs the same values)."""

    def __init__(self, cadences: dict[str, int], start: int):
        self.every = {name: Every(n, start) for name, n in cadences.items()}
        self.train_infos: dict[str, list[torch.Tensor]] = defaultdict(list)
        self.ep_infos: list[dict[str, float]] = []

    def __getitem__(self, name: str) -> Every:
        return self.every[name]

    def add(self, info: dict[str, Any]) -> None:
        for k, v in info.items():
            self.train_infos[k].append(v)

    def take_means(self) -> dict[str, torch.Tensor]:
        means = {k: torch.stack(v).float().mean() for k, v in self.train_infos.items()}
        self.train_infos = defaultdict(list)
        return means

    def state_dict(self) -> dict:
        return {"every_last": {k: e.last for k, e in self.every.items()},
                "train_infos": {k: [torch.as_tensor(x).detach() for x in v] for k, v in self.train_infos.items()},
                "ep_infos": [dict(i) for i in self.ep_infos]}

    def load_state_dict(self, state: dict) -> None:
        for k, last in state["every_last"].items():
            if k in self.every:
                self.every[k].last = int(last)
        self.train_infos = defaultdict(list, {k: list(v) for k, v in state["train_infos"].items()})
        self.ep_infos = [dict(i) for i in state["ep_infos"]]


class Trainer:
    def __init__(self, ctx: RunContext, tcfg: TrainerConfig, agent, runner, logger: Logger, visualizer=None,
                 init_ckpt_path: str | None = None, rng: np.random.Generator | None = None):
        self.ctx, self.tcfg, self.agent, self.runner, self.logger = ctx, tcfg, agent, runner, logger
        self.visualizer = visualizer
        self.init_ckpt_path = init_ckpt_path
        self.rng = rng if rng is not None else getattr(agent, "rng", None)
        self.step = 0  # the phase's current step (pre-training iterations or env steps), for interrupt messages
        self.loop: LoopState | None = None
        self._saved_step: int | None = None  # the step of the newest checkpoint of this run
        self._saved_path: Path | None = None
        self._saved_at = time.monotonic()
        self._safety_ckpt: Path | None = None  # the newest safety checkpoint (replaced by the next one)
        self._loop_state_from_checkpoint: dict | None = None

    @property
    def phase_name(self) -> str:
        return PHASE_NAMES.get(self.ctx.phase, self.ctx.phase)

    # ---------------------------------------------------------------- RNGs
    def generators(self) -> dict[str, np.random.Generator]:
        """The numpy Generators the run draws from (trainer, agent, replay buffer; usually one shared object)."""
        found = {"trainer": self.rng, "agent": getattr(self.agent, "rng", None),
                 "buffer": getattr(getattr(self.agent, "hl_buffer", None), "rng", None)}
        return {k: g for k, g in found.items() if isinstance(g, np.random.Generator)}

    # ---------------------------------------------------------------- checkpoints
    def save(self, step: int, reason: str = "cadence") -> Path:
        """A checkpoint of everything the run needs to continue exactly from `step` (see the module docstring).
        reason: cadence | final | clock | signal. The next checkpoint of the run replaces a wall-clock or signal one
        (they are for safety, not for the run's history), also across a resume from it."""
        state = {"step": int(step), "agent": self.agent.state_dict(),
                 "rng": rng_util.capture(self.generators(), self.ctx.device), "runner": self.runner.state_dict(),
                 "loop": self.loop.state_dict() if self.loop is not None else None, "reason": reason}
        path = save_checkpoint(self.ctx.ckpt_dir / ckpt_name(self.ctx.env, step), state)
        if self._safety_ckpt is not None and self._safety_ckpt != path and self._safety_ckpt.exists():
            self._safety_ckpt.unlink()
        self._safety_ckpt = path if reason in SAFETY_REASONS else None
        self._saved_step, self._saved_path, self._saved_at = int(step), path, time.monotonic()
        log.info("saved checkpoint %s", path)
        return path

    def save_once(self, step: int, reason: str) -> Path:
        """`save` unless this step's checkpoint was just written."""
        if self._saved_step == step and self._saved_path is not None and self._saved_path.exists():
            return self._saved_path
        return self.save(step, reason)

    def resume(self, truncate: bool = True) -> int:
        """Load the checkpoint to continue from (`resume_path`); returns its step.

        truncate: drop the rows of metrics.jsonl after that step (training: they are logged again as the run
        continues, so each row exists once); a fresh start drops every row an earlier, checkpoint-less start wrote.
        """
        remove_stale_temporaries(self.ctx.ckpt_dir)
        path = resume_path(self.ctx.ckpt_dir, self.init_ckpt_path, training=truncate)
        if path is None:
            if truncate:
                self._truncate_metrics(-1)
            return 0
        ckpt = load_checkpoint(path, map_location=self.ctx.device)
        self.agent.load_state_dict(ckpt["agent"], source=str(path))
        step = int(ckpt.get("step", parse_step(path)))
        if ckpt.get("runner") is not None:
            self.runner.load_state_dict(ckpt["runner"])
        self._loop_state_from_checkpoint = ckpt.get("loop")
        if "rng" in ckpt:  # last: restoring the runner replays env steps, which must not move these
            rng_util.restore(ckpt["rng"], self.generators())
        self._saved_step, self._saved_path, self._saved_at = step, Path(path), time.monotonic()
        if ckpt.get("reason") in SAFETY_REASONS and Path(path).parent == self.ctx.ckpt_dir:
            self._safety_ckpt = Path(path)  # replaced by this run's next checkpoint, as if this process had written it
        if truncate:
            self._truncate_metrics(step)
        log.info("resumed from %s at step %s", path, f"{step:,}")
        return step

    def new_loop(self, cadences: dict[str, int], step: int) -> LoopState:
        """The loop state at `step`: the checkpoint's when resuming, else fresh."""
        self.loop = LoopState(cadences, step)
        if self._loop_state_from_checkpoint is not None:
            self.loop.load_state_dict(self._loop_state_from_checkpoint)
            self._loop_state_from_checkpoint = None
        return self.loop

    def _truncate_metrics(self, step: int) -> None:
        dropped = truncate_metrics(self.logger.metrics_path, step)
        if dropped:
            where = f"after step {step:,}" if step >= 0 else "of an earlier start that saved no checkpoint"
            log.info("%s: dropped %d rows %s (the run logs them again)", self.logger.metrics_path, dropped, where)

    # ---------------------------------------------------------------- guards and stops
    def check_finite(self, infos: dict[str, Any] | list[dict[str, Any]], step: int, what: str) -> None:
        """Stop the run when a loss or gradient norm of an update's info (or of a list of updates' infos, checked in
        one pass) is NaN/inf: nothing of the broken state is saved. `what` names the update; with a list, "{i}" in
        it is replaced by the failing update's number (1-based)."""
        bad = first_non_finite(infos) if infos else None
        if bad is None:
            return
        i, key, value = bad
        where = f"in {what.format(i=i + 1)} at {self.phase_name} step {step:,} of {self.ctx.run_name}"
        raise TrainingDiverged(diverged_message(key, value, where, self._saved_path))

    def safe_point(self, step: int) -> None:
        """Called after each iteration's update, logging and scheduled checkpoint: a pending stop signal writes a
        checkpoint at this step and ends the run; so does the wall clock every `ckpt_every_minutes`, without
        ending it."""
        if STOPS.requested is not None:
            signum = STOPS.requested
            path = self.save_once(step, "signal")
            raise RunInterrupted(stopped_line(signum, f"{self.phase_name} step {step:,} of {self.ctx.run_name}", path,
                                              self.ctx.command), exit_code=128 + signum)
        minutes = self.tcfg.ckpt_every_minutes
        if minutes > 0 and time.monotonic() - self._saved_at >= 60.0 * minutes:
            self.save_once(step, "clock")

    def finish(self, step: int) -> None:
        """The final checkpoint, unless this step's was just written (or resumed from)."""
        self.save_once(step, "final")

    # ---------------------------------------------------------------- RL loop
    def train(self) -> int:
        t = self.tcfg
        step = self.step = self.resume()
        self.agent.set_step(step)
        log.info("RL: %s env steps in all (from step %s), the first %s collecting without updates; updates %s env "
                 "steps, log lines %s, evaluation %s, checkpoints %s and every %s min", f"{t.max_global_step:,}",
                 f"{step:,}", f"{t.warm_up_step:,}", every(t.train_every), every(t.log_every), every(t.evaluate_every),
                 every(t.ckpt_every), t.ckpt_every_minutes or "-")
        loop = self.new_loop({"log": t.log_every, "eval": t.evaluate_every, "ckpt": t.ckpt_every}, step)
        tic, tic_step = time.time(), step
        with Progress("rl", t.max_global_step, step, bar=t.progress_bar) as progress, STOPS.deferred():
            while step < t.max_global_step:
                warm_up = step < t.warm_up_step  # collect only, no updates
                hl, infos, n = self.runner.collect(t.train_every, step)
                self.agent.store_episode(hl)
                if not warm_up:
                    info = self.agent.update()
                    self.check_finite(info, step + n, "the RL update")
                    loop.add(info)
                    loop.ep_infos.extend(infos)
                step = self.step = step + n
                self.agent.set_step(step)
                progress.update(step)
                if warm_up:
                    if loop["log"](step):
                        log.info("rl warm-up (collecting, no updates) %s", progress.status(step))
                else:
                    if loop["log"](step):
                        metrics = loop.take_means()
                        metrics["steps_per_sec"] = (step - tic_step) / max(time.time() - tic, 1e-9)
                        self.logger.log(step, "train_rl", metrics, head=progress.status(step))
                        if loop.ep_infos:
                            self.logger.log(step, "train_ep", mean_infos(loop.ep_infos))
                            self.logger.log(step, "train_ep_max", max_infos(loop.ep_infos), console=False)
                        loop.ep_infos, tic, tic_step = [], time.time(), step
                    if loop["eval"](step):
                        self.evaluate(step)
                    if loop["ckpt"](step):
                        self.save(step)
                self.safe_point(step)
            log.info("rl finished: %s", progress.status(step))
        self.finish(step)
        return step

    def evaluate(self, step: int) -> dict[str, float]:
        episodes = [self.runner.run_episode(is_train=False) for _ in range(max(1, self.tcfg.num_eval))]
        info = mean_infos([e[0] for e in episodes])
        self.logger.log(step, "test_ep", info)
        if self.visualizer is not None:
            self.logger.log_image(step, "test_ep/episode", self.visualizer.episode(step, "test_ep", [e[1] for e in episodes]))
            visits = self.runner.visits.get()
            if len(visits):
                self.logger.log_image(step, "test_ep/replay_vis", self.visualizer.replay(step, visits))
                sample = visits[np.linspace(0, len(visits) - 1, min(len(visits), 4000)).astype(int)]
                values = self.agent.value_of(sample)
                self.logger.log_image(step, "test_ep/value_heatmap", self.visualizer.value_heatmap(step, sample, values))
        return info
