"""Kitchen adapter for the framework: a seeded `KitchenEnv` (spec §5.3) and SkiMo's kitchen preprocessing (none)."""

from __future__ import annotations

from typing import Any, TypeVar

from d4rl.kitchen import KitchenEnv
from envs import seeded

Array = TypeVar("Array")  # torch.Tensor or np.ndarray


def make_kitchen_env(seed: int | None, max_episode_steps: int = 280, task: str = "base", with_goal: bool = False,
                     **kwargs: Any) -> KitchenEnv:
    """Builds the kitchen task and seeds it explicitly.

    Args:
        seed: seeds the env's observation-noise RNG (through `reset(seed=...)`) and its action space.
        max_episode_steps: truncation horizon (SkiMo: 280).
        task: "base" (kitchen) or "misaligned" (mis-aligned kitchen).
        with_goal: 60-d observation with the goal appended (SPiRL family) instead of 30-d (SkiMo, TD-MPC, Dreamer).
        **kwargs: other `KitchenEnv` arguments (noise_ratio, goal_task).
    """
    return seeded(KitchenEnv(task=task, max_episode_steps=max_episode_steps, with_goal=with_goal, **kwargs), seed)


def preprocess_kitchen_ob(ob: Array) -> Array:
    """SkiMo feeds kitchen observations unchanged (spec §1.4): the identity."""
    return ob
