"""Maze adapter for the framework: a seeded `MazeEnv` and SkiMo's observation preprocessing (spec §1.4, §5.2)."""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np

from d4rl.point_maze import MazeEnv
from envs import seeded

POS_SCALE = 40.0
VEL_SCALE = 10.0

Array = TypeVar("Array")  # torch.Tensor or np.ndarray


def make_maze_env(seed: int | None, max_episode_steps: int = 2000, **kwargs: Any) -> MazeEnv:
    """Builds the maze task and seeds it explicitly (the original never did; spec §7 item 21).

    Args:
        seed: seeds the env's start-noise RNG (through `reset(seed=...)`) and its action space.
        max_episode_steps: truncation horizon.
        **kwargs: other `MazeEnv` arguments (start, goal, start_rand_range, success_radius, reward).
    """
    return seeded(MazeEnv(max_episode_steps=max_episode_steps, **kwargs), seed)


def preprocess_maze_ob(ob: Array) -> Array:
    """SkiMo's maze normalisation: position / 40 − 0.5, velocity / 10.

    Args:
        ob: torch tensor or numpy array (..., 4) = [x, y, vx, vy].
    Returns:
        Same type and shape (floating point).
    """
    if isinstance(ob, np.ndarray):
        ob = ob.astype(np.float32) if not np.issubdtype(ob.dtype, np.floating) else ob
        return np.concatenate([ob[..., :2] / POS_SCALE - 0.5, ob[..., 2:] / VEL_SCALE], axis=-1)
    import torch

    if not torch.is_floating_point(ob):
        ob = ob.float()
    return torch.cat([ob[..., :2] / POS_SCALE - 0.5, ob[..., 2:] / VEL_SCALE], dim=-1)
