"""Dreamer, the flat model-based baseline (spec §3.3, hyperparameters §4.3).

The world model, actor, critic, their optimisers and the three-stage update are `rolf.dreamer.DreamerCore`
(shared with SPiRL+Dreamer); this module adds what the flat baseline needs around it: acting under rolf's
`RolloutRunner` (`act_meta` chooses the env action every env step), the Dreamer replay convention, the update schedule and checkpoints.

Replay convention (spec §3.1.5): a stored episode is a list of entries (o_t, a_{t−1}, r_{t−1}, done_t), the first
one (o_0, 0, 0, False). The runner hands over per-decision transitions (o_t, a_t, r_t, o_{t+1}); `store_episode`
turns them into entries (o_{t+1}, a_t, r_t, done_t), preceded by (o_0, 0, 0, 0) at an episode start. As the
original `DreamerRolloutRunner`, every chunk (≤ train_every env steps) is stored as its own episode: a chunk that
starts mid-episode begins with the entry (o_{t+1}, a_t, r_t) after the previous chunk's last one, so no entry is
duplicated or lost. `rolf.fix_chunk_episodes=true` stores whole episodes instead (the open one waits in the agent,
and is saved with it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from rolf.config import get
from rolf.dreamer import DreamerConfig, DreamerCore
from rolf.utils.checkpoint import load_module_state

Preprocess = Callable[[torch.Tensor], torch.Tensor]
_KEYS = ("ob", "ac", "rew", "done")


def build_dreamer(cfg: Any, spec, device: torch.device, rng: np.random.Generator) -> DreamerAgent:
    """The flat Dreamer agent for a composed config (the `AGENTS["dreamer"]` factory of `baselines.rl_trainer`).
    Raw observations (spec §3.3, §7.13) unless `rolf.fix_ob_norm=true`, which applies the env's SkiMo
    preprocessing (maze: position/40 − 0.5, velocity/10; kitchen, CALVIN: identity)."""
    r = cfg.rolf
    preprocess = spec.preprocess if bool(get(r, "fix_ob_norm", False)) else None
    return DreamerAgent(DreamerConfig.from_rolf(r), r, spec.ob_dim, spec.ac_dim, device, rng, preprocess)


class DreamerAgent:
    """Flat Dreamer: `DreamerCore` + Dreamer-convention episode buffer + acting with the posterior filter."""

    def __init__(self, c: DreamerConfig, rolf_cfg: Any, ob_dim: int, ac_dim: int, device: torch.device | str,
                 rng: np.random.Generator, preprocess: Preprocess | None = None):
        from rolf.buffers import ReplayBufferEpisode

        self.c, self.device, self.rng = c, torch.device(device), rng
        self.ob_dim, self.ac_dim = ob_dim, ac_dim
        self.core = DreamerCore(c, ob_dim, ac_dim, preprocess).to(self.device)
        self.preprocess = self.core.preprocess
        self.buffer = ReplayBufferEpisode(_KEYS, int(float(get(rolf_cfg, "buffer_size", 1e6))), rng=rng)
        self.whole_episodes = bool(get(rolf_cfg, "fix_chunk_episodes", False))
        self.step = 0
        self._new_episode = True  # the next stored transition starts an episode (prepend (o_0, 0, 0, 0))
        self._open: dict[str, list] = {k: [] for k in _KEYS}  # entries of the episode not yet in the buffer

    @property
    def hl_buffer(self):  # the trainer saves/restores the sampler RNG of `hl_buffer`
        return self.buffer

    # ------------------------------------------------------------------ acting
    @torch.no_grad()
    def act_meta(self, ob: np.ndarray, memory: Any, is_train: bool, warm_up: bool = False) -> tuple[np.ndarray, Any]:
        """The env action (d_a,) and the filter state memory = (posterior latent, action) (None: episode start).

        Warm-up: uniform in [−1, 1] and the memory reset to None, as the original (the filter then starts from the
        zero state at the first policy step, mid-episode). Training: actor sample + N(0, expl_noise²), clipped to
        ±1. Evaluation: tanh(μ) (the latent is still a posterior sample, drawn from torch's RNG)."""
        if warm_up:
            return self.rng.uniform(-1.0, 1.0, self.ac_dim).astype(np.float32), None
        action, memory = self.core.act(np.asarray(ob, np.float32)[None], memory, explore=is_train)
        return action[0].cpu().numpy(), memory

    # ------------------------------------------------------------------ replay
    def _flush(self) -> None:
        """Store the open entries as one episode."""
        if self._open["ob"]:
            self.buffer.add_episode({k: np.stack([np.asarray(x, np.float32) for x in v]) for k, v in self._open.items()})
        self._open = {k: [] for k in _KEYS}

    def store_episode(self, rollout: dict[str, list]) -> None:
        """Convert a runner chunk {ob, ob_next, ac, rew, done, episode_end} (one item per env step, possibly
        starting or ending mid-episode) to Dreamer entries and store them (see the module docstring)."""
        n = len(rollout["ac"])
        ends = rollout.get("episode_end", rollout["done"])
        for i in range(n):
            if self._new_episode:
                self._flush()  # only non-empty after a resume cut an open episode (whole-episode mode)
                for k, v in (("ob", rollout["ob"][i]), ("ac", np.zeros(self.ac_dim, np.float32)), ("rew", 0.0),
                             ("done", 0.0)):
                    self._open[k].append(v)
                self._new_episode = False
            for k, v in (("ob", rollout["ob_next"][i]), ("ac", rollout["ac"][i]), ("rew", rollout["rew"][i]),
                         ("done", float(rollout["done"][i]))):
                self._open[k].append(v)
            if ends[i]:
                self._flush()
                self._new_episode = True
        if not self.whole_episodes:
            self._flush()  # the chunk boundary closes the stored episode (the original's done=True at each yield)

    # ------------------------------------------------------------------ training
    def set_step(self, step: int) -> None:
        self.step = step

    def update(self) -> dict[str, torch.Tensor]:
        """train_iter iterations on batches of batch_size sequences × batch_length steps (no extra warm-up
        iterations, spec §3.3); the mean info over the iterations. {} while no stored episode is long enough."""
        c = self.c
        if not self.buffer.can_sample(c.batch_length):
            return {}
        infos = [self.core.update(self._batch(self.buffer.sample(c.batch_size, c.batch_length)))
                 for _ in range(c.train_iter)]
        return {k: torch.tensor(float(np.mean([i[k] for i in infos]))) for k in infos[-1]}

    @staticmethod
    def _batch(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"ob": batch["ob"], "ac": batch["ac"], "rew": batch["rew"]}

    def rl_step(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """One model/actor/critic iteration on a batch. Dreamer convention: ob (B, T, d_o), ac (B, T, d_a), rew
        (B, T) with step t = (o_t, a_{t−1}, r_{t−1}). A transition-convention batch (ob one step longer than
        ac: (o_t, a_t, r_t)) is converted by prepending a zero action and reward (o_0 treated as a start)."""
        ob, ac, rew = (np.asarray(batch[k], np.float32) for k in ("ob", "ac", "rew"))
        if ob.shape[1] == ac.shape[1] + 1:
            ac = np.concatenate([np.zeros_like(ac[:, :1]), ac], 1)
            rew = np.concatenate([np.zeros_like(rew[:, :1]), rew], 1)
        return {k: torch.tensor(v) for k, v in self.core.update({"ob": ob, "ac": ac, "rew": rew}).items()}

    @torch.no_grad()
    def value_of(self, obs: np.ndarray) -> np.ndarray:
        """Critic mean at the posterior of a one-step observe from the zero state and zero previous action
        (raw observations (N, d_o) -> (N,); maze value heat-map). A single observation carries no velocity
        history, so this is V of a filter that has just started at that state; the posterior sample uses torch's
        RNG."""
        core = self.core
        ob = torch.as_tensor(np.asarray(obs, np.float32), device=core.device)
        latent, prev = core.initial_state(ob.shape[0])
        dyn = core.model.dynamics
        latent = dyn.obs_step(latent, prev, core.model.encoder(core.preprocess(ob)))
        return core.critic(dyn.get_feat(latent)).squeeze(-1).cpu().numpy()

    # ------------------------------------------------------------------ checkpoint
    def state_dict(self) -> dict:
        """Weights, optimisers, the replay buffer and the open episode (whole-episode mode): tensors only."""
        return {"model": self.core.model.state_dict(), "actor": self.core.actor.state_dict(),
                "critic": self.core.critic.state_dict(), **self.core.optim_state_dict(),
                "buffer": self.buffer.state_dict(),
                "open_episode": {k: [torch.as_tensor(np.asarray(x, np.float32)) for x in v]
                                 for k, v in self._open.items()}, "new_episode": self._new_episode}

    def load_state_dict(self, state: dict, source: str = "checkpoint") -> None:
        for name in ("model", "actor", "critic"):
            load_module_state(getattr(self.core, name), state[name], name, source)
        self.core.load_optim_state_dict(state)
        self.buffer.load_state_dict(state["buffer"])
        self._open = {k: [np.asarray(x) for x in state.get("open_episode", {}).get(k, [])] for k in _KEYS}
        # The runner continues the episode in progress after a resume (checkpoints of earlier versions: it restarted
        # the episode, and an open one is stored cut).
        self._new_episode = bool(state.get("new_episode", True))

    def episode_cut(self) -> None:
        """The runner could not continue the episode in progress: store its open part cut, start afresh."""
        self._new_episode = True
