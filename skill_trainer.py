"""SkillTrainer: the rolf Trainer plus SkiMo's pre-training phase (spec §1.5, §1.7) and the pre-train -> RL
hand-off (spec §2.1). `rolf.phase` picks the phase."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from envs import env_kwargs, get_env_spec
from rolf.buffers import ReplayBufferEpisode
from rolf.config import ConfigError, TrainerConfig, get, get_optional_bool
from rolf.datasets.offline import load_trajectories, split_at_dones
from rolf.main import RunContext
from rolf.trainers.rollout import VISIT_CAPACITY
from rolf.trainers.trainer import Trainer
from rolf.utils.checkpoint import latest_checkpoint, load_checkpoint
from rolf.utils.logger import Logger
from rolf.utils.progress import Progress, every
from rolf.utils.signals import STOPS
from skimo_agent import build_agent
from skimo_rollout import SkiMoRolloutRunner

log = logging.getLogger("skimo")


def split_episodes(trajs: list[dict]) -> list[dict[str, np.ndarray]]:
    """Dataset items -> episodes {ob, ac, done}; a done=1 inside an item splits it (spec §1.5 step 3)."""
    return [{"ob": ep["obs"], "ac": ep["actions"], "done": ep["dones"]}
            for t in trajs for ep in split_at_dones(t["obs"], t["actions"], t["dones"])]


def dataset_buffers(path: str, spec, split: float, rng: np.random.Generator) -> tuple[ReplayBufferEpisode, ReplayBufferEpisode]:
    """The first `split` of the items (file order) train, the rest validate (spec §1.5)."""
    trajs = load_trajectories(path, obs_dim=None if spec.keep_obs_dims else spec.ob_dim, action_dim=spec.ac_dim,
                              keep_obs_dims=spec.keep_obs_dims)
    n_train = int(split * len(trajs)) if len(trajs) > 1 else 1
    bufs = []
    for part in (trajs[:n_train], trajs[n_train:] or trajs[-1:]):
        buf = ReplayBufferEpisode(("ob", "ac", "done"), capacity=10**9, one_more_ob=False, rng=rng)
        for ep in split_episodes(part):
            buf.add_episode(ep)
        bufs.append(buf)
    return bufs[0], bufs[1]


class SkillTrainer(Trainer):
    """Builds env, agent and runner from the config; `train()` runs the phase named by `rolf.phase`."""

    def __init__(self, cfg: Any, ctx: RunContext, logger: Logger):
        r = cfg.rolf
        self.spec = get_env_spec(ctx.env)
        self.env_kwargs = env_kwargs(cfg.env)
        rng = np.random.default_rng(ctx.seed)
        agent = build_agent(cfg, ctx.phase, ctx.device, rng=rng, spec=self.spec)
        c = agent.c
        env = self.spec.make(seed=ctx.seed, **self.env_kwargs)
        eval_env = self.spec.make(seed=ctx.seed + 10_000, **self.env_kwargs)
        vis = self.spec.visualizer(ctx.log_dir / "vis") if self.spec.visualizer else None
        runner = SkiMoRolloutRunner(env, eval_env, agent, c.skill_horizon, c.warm_up_step, c.reward_scale,
                                    c.bootstrap_timeout, seed=ctx.seed, visit_capacity=VISIT_CAPACITY if vis else 0)
        super().__init__(ctx, TrainerConfig.from_cfg(cfg), agent, runner, logger, vis, get(cfg, "init_ckpt_path", None),
                         rng=rng)
        self.c = c
        self.data_path = get(r, "pretrain.data_path", None)
        self.generate_data = get_optional_bool(r, "pretrain.generate_data")
        self.split = float(get(r, "pretrain.split.train", 0.99))
        self.eval_updates_model = bool(get(r, "pretrain.eval_updates_model", False))
        self.pretrain_ckpt_path = get(r, "pretrain_ckpt_path", None)
        self._check_inputs()

    def _check_inputs(self) -> None:
        """Bad paths fail here, in one line, before anything is written."""
        if self.ctx.phase == "pretrain":
            self._dataset_to_generate()
        elif self.ctx.phase == "rl":
            if self._resuming_rl():
                return
            if not self.pretrain_ckpt_path:
                raise ConfigError("rolf.phase=rl needs rolf.pretrain_ckpt_path=<pre-training checkpoint> (the original "
                                  "silently started from random weights here, spec §2.1)")
            if not Path(self.pretrain_ckpt_path).is_file():
                raise ConfigError(f"rolf.pretrain_ckpt_path={self.pretrain_ckpt_path}: no such file")
        else:
            raise ConfigError(f"rolf.phase={self.ctx.phase!r}; expected 'pretrain' or 'rl'")

    def train(self) -> int:
        if self.ctx.phase == "pretrain":
            return self.pretrain()
        self._load_pretrained()
        return super().train()

    def _resuming_rl(self) -> bool:
        """An RL run with a checkpoint of its own (or init_ckpt_path) resumes from it: the pre-trained checkpoint is
        neither needed nor loaded."""
        return latest_checkpoint(self.ctx.ckpt_dir) is not None or bool(self.init_ckpt_path)

    def _load_pretrained(self) -> None:
        if self._resuming_rl():
            return  # everything is loaded in resume()
        ckpt = load_checkpoint(self.pretrain_ckpt_path, map_location=self.ctx.device)
        self.agent.load_pretrained(ckpt["agent"], source=str(self.pretrain_ckpt_path))
        log.info("loaded pre-trained skills, prior and skill dynamics from %s", self.pretrain_ckpt_path)

    # ---------------------------------------------------------------- pre-training
    def _dataset_to_generate(self) -> bool:
        """Whether the dataset must be generated first. A missing file is generated only at the env's default
        path (`data/<env>.gz`) or with rolf.pretrain.generate_data=true; any other missing path is a typo or a
        file not yet copied, and training on freshly generated data there would hide it."""
        if not self.data_path:
            raise ConfigError("rolf.pretrain.data_path is not set (the offline dataset to pre-train on)")
        path = Path(self.data_path)
        if path.is_file():
            return False
        if path.exists():
            raise ConfigError(f"rolf.pretrain.data_path={path}: not a file")
        default = self.spec.default_data_path
        at_default = default is not None and path.resolve() == Path(default).resolve()
        if self.generate_data is False or not (self.generate_data or at_default):
            hint = (f" (the default, {default}, is generated on first use; rolf.pretrain.generate_data=true generates "
                    f"one at this path)" if self.spec.generate_dataset else "")
            raise ConfigError(f"rolf.pretrain.data_path={path}: no such file{hint}")
        if self.spec.generate_dataset is None:
            raise ConfigError(f"rolf.pretrain.data_path={path}: no such file, and env {self.ctx.env!r} has no generator")
        return True

    def _ensure_dataset(self) -> str:
        path = Path(self.data_path)
        if self._dataset_to_generate():
            log.info("%s not found: generating the %s dataset with the project's seeded generator", path, self.ctx.env)
            stats = self.spec.generate_dataset(str(path))
            log.info("wrote %s: %s", path, ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                                     for k, v in (stats or {}).items()))
        return str(path)

    def pretrain(self) -> int:
        t, c, agent = self.tcfg, self.c, self.agent
        train_buf, val_buf = dataset_buffers(self._ensure_dataset(), self.spec, self.split, self.rng)
        seq_len = c.n_skill * c.skill_horizon + 1
        step = self.step = self.resume()
        log.info("pre-training on %d train / %d validation episodes (%s / %s env steps): %s steps in all (from %s), "
                 "each %d updates on %d sequences of %d env steps; log lines %s, evaluation %s, checkpoints %s and "
                 "every %s min", len(train_buf), len(val_buf), f"{train_buf.num_transitions:,}",
                 f"{val_buf.num_transitions:,}", f"{t.pretrain_max_global_step:,}", f"{step:,}", c.pretrain_train_iter,
                 c.pretrain_batch_size, seq_len, every(t.pretrain_log_every), every(t.pretrain_evaluate_every),
                 every(t.pretrain_ckpt_every), t.ckpt_every_minutes or "-")
        loop = self.new_loop({"log": t.pretrain_log_every, "eval": t.pretrain_evaluate_every,
                              "ckpt": t.pretrain_ckpt_every}, step)
        tic, tic_step = time.time(), step
        with Progress("pre-training", t.pretrain_max_global_step, step, bar=t.progress_bar) as progress, \
                STOPS.deferred():
            while step < t.pretrain_max_global_step:
                infos = [agent.pretrain_step(train_buf.sample(c.pretrain_batch_size, seq_len))
                         for _ in range(c.pretrain_train_iter)]
                self.check_finite(infos, step + 1, f"pre-training update {{i}} of {c.pretrain_train_iter}")
                for info in infos:
                    loop.add(info)
                step = self.step = step + 1
                progress.update(step)
                if loop["log"](step):
                    metrics = loop.take_means()
                    metrics["steps_per_sec"] = (step - tic_step) / max(time.time() - tic, 1e-9)
                    self.logger.log(step, "pretrain", metrics, head=progress.status(step))
                    tic, tic_step = time.time(), step
                if loop["eval"](step):
                    self.pretrain_evaluate(step, val_buf, seq_len)
                if loop["ckpt"](step):
                    self.save(step)
                self.safe_point(step)
            log.info("pre-training finished: %s", progress.status(step))
        self.finish(step)
        return step

    def pretrain_evaluate(self, step: int, val_buf: ReplayBufferEpisode, seq_len: int) -> None:
        c = self.c
        if not val_buf.can_sample(seq_len):
            log.warning("no validation episode has %d steps: skipping validation losses", seq_len)
        else:
            batch = val_buf.sample(c.pretrain_batch_size, seq_len)
            if self.eval_updates_model:  # the original's behaviour (spec §7.2): validation batches also train
                info = self.agent.pretrain_step(batch, update_target=False)
            else:
                info = self.agent.pretrain_eval_losses(batch)
            self.check_finite(info, step, "the validation losses")
            self.logger.log(step, "pretrain_eval", info)
            if self.visualizer is not None:
                windows = {k: v[:8] for k, v in batch.items()}
                pred = self.agent.open_loop_prediction(windows)
                picture = self.visualizer.skill_rollout(step, pred["gt"], pred["pred"], pred["recon"],
                                                        gt_steps=np.asarray(windows["ob"]))  # the true path, every step
                self.logger.log_image(step, "pretrain_eval/skill_rollout", picture)
        ep_info, obs = self.runner.run_episode(is_train=False)
        self.logger.log(step, "pretrain_eval", ep_info)
        if self.visualizer is not None:
            self.logger.log_image(step, "pretrain_eval/episode", self.visualizer.episode(step, "pretrain_episode", [obs]))
