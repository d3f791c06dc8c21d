"""The online RL loop (spec §2.4 / §3.1.4), evaluation and checkpoints. Agents plug in through a small
protocol: store_episode, update, set_step, state_dict/load_state_dict; rollouts come from a runner."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from typing import Any

import numpy as np
import torch

from rolf.config import TrainerConfig
from rolf.main import RunContext
from rolf.utils.checkpoint import ckpt_name, latest_checkpoint, load_checkpoint, parse_step, save_checkpoint
from rolf.utils.logger import Logger
from rolf.utils.progress import Progress, every
from rolf.utils.schedule import Every

log = logging.getLogger("skimo")


def mean_infos(infos: list[dict[str, Any]]) -> dict[str, float]:
    """Per-key mean of episode infos (our rule for `train_ep`, spec §7.14)."""
    keys = {k for i in infos for k in i}
    return {k: float(np.mean([i[k] for i in infos if k in i])) for k in keys}


def max_infos(infos: list[dict[str, Any]]) -> dict[str, float]:
    """Per-key max, the original hierarchical runners' rule, logged as `train_ep_max`."""
    keys = {k for i in infos for k in i}
    return {k: float(np.max([i[k] for i in infos if k in i])) for k in keys}


class Trainer:
    def __init__(self, ctx: RunContext, tcfg: TrainerConfig, agent, runner, logger: Logger, visualizer=None,
                 init_ckpt_path: str | None = None):
        self.ctx, self.tcfg, self.agent, self.runner, self.logger = ctx, tcfg, agent, runner, logger
        self.visualizer = visualizer
        self.init_ckpt_path = init_ckpt_path
        self.step = 0  # the phase's current step (pre-training iterations or env steps), for interrupt messages

    # ---------------------------------------------------------------- checkpoints
    def save(self, step: int) -> None:
        state = {"step": int(step), "agent": self.agent.state_dict(), "rng": rng_state(self.agent)}
        path = save_checkpoint(self.ctx.ckpt_dir / ckpt_name(self.ctx.env, step), state)
        log.info("saved checkpoint %s", path)

    def resume(self) -> int:
        """Load the newest checkpoint of this run (or `init_ckpt_path`); returns the step to continue from."""
        path = self.init_ckpt_path or latest_checkpoint(self.ctx.ckpt_dir)
        if path is None:
            return 0
        ckpt = load_checkpoint(path, map_location=self.ctx.device)
        self.agent.load_state_dict(ckpt["agent"], source=str(path))
        if "rng" in ckpt:
            set_rng_state(self.agent, ckpt["rng"])
        step = int(ckpt.get("step", parse_step(path)))
        log.info("resumed from %s at step %d", path, step)
        return step

    # ---------------------------------------------------------------- RL loop
    def train(self) -> int:
        t = self.tcfg
        step = self.step = self.resume()
        self.agent.set_step(step)
        log.info("RL: %s env steps in all (from step %s), the first %s collecting without updates; updates %s env "
                 "steps, log lines %s, evaluation %s, checkpoints %s", f"{t.max_global_step:,}", f"{step:,}",
                 f"{t.warm_up_step:,}", every(t.train_every), every(t.log_every), every(t.evaluate_every),
                 every(t.ckpt_every))
        gen = self.runner.run(every_steps=t.train_every, step=step)
        log_every, eval_every, ckpt_every = (Every(t.log_every, step), Every(t.evaluate_every, step),
                                             Every(t.ckpt_every, step))
        with Progress("rl", t.max_global_step, step, bar=t.progress_bar) as progress:
            while step < min(t.warm_up_step, t.max_global_step):  # collect only, no updates
                hl, infos, n = next(gen)
                self.agent.store_episode(hl)
                step = self.step = step + n
                self.agent.set_step(step)
                progress.update(step)
                if log_every(step):
                    log.info("rl warm-up (collecting, no updates) %s", progress.status(step))
            step = self._rl_updates(step, gen, progress, log_every, eval_every, ckpt_every)
            log.info("rl finished: %s", progress.status(step))
        if not (self.ctx.ckpt_dir / ckpt_name(self.ctx.env, step)).exists():  # the final step, unless just saved
            self.save(step)
        return step

    def _rl_updates(self, step: int, gen, progress: Progress, log_every: Every, eval_every: Every, ckpt_every: Every
                    ) -> int:
        """The main loop after warm-up: collect a chunk, store it, update, log / evaluate / save on schedule."""
        t = self.tcfg
        train_infos: dict[str, list] = defaultdict(list)
        ep_infos: list[dict] = []
        tic, tic_step = time.time(), step
        while step < t.max_global_step:
            hl, infos, n = next(gen)
            self.agent.store_episode(hl)
            for k, v in self.agent.update().items():
                train_infos[k].append(v)
            ep_infos.extend(infos)
            step = self.step = step + n
            self.agent.set_step(step)
            progress.update(step)
            if log_every(step):
                metrics = {k: torch.stack(v).float().mean() for k, v in train_infos.items()}
                metrics["steps_per_sec"] = (step - tic_step) / max(time.time() - tic, 1e-9)
                self.logger.log(step, "train_rl", metrics, head=progress.status(step))
                if ep_infos:
                    self.logger.log(step, "train_ep", mean_infos(ep_infos))
                    self.logger.log(step, "train_ep_max", max_infos(ep_infos), console=False)
                train_infos, ep_infos, tic, tic_step = defaultdict(list), [], time.time(), step
            if eval_every(step):
                self.evaluate(step)
            if ckpt_every(step):
                self.save(step)
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


def rng_state(agent) -> dict:
    state = {"torch": torch.get_rng_state()}
    buf = getattr(agent, "hl_buffer", None)
    if buf is not None:
        state["buffer"] = buf.rng.bit_generator.state
    return state


def set_rng_state(agent, state: dict) -> None:
    torch.set_rng_state(state["torch"])
    buf = getattr(agent, "hl_buffer", None)
    if buf is not None and "buffer" in state:
        buf.rng.bit_generator.state = state["buffer"]
