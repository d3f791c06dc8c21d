"""CALVIN adapter for the framework: a seeded `CalvinEnv` (spec §5.4, calvin.md) and SkiMo's CALVIN preprocessing
(none)."""

from __future__ import annotations

from typing import Any, TypeVar

from calvin.env import CalvinEnv
from envs import seeded

Array = TypeVar("Array")  # torch.Tensor or np.ndarray


def make_calvin_env(seed: int | None, max_episode_steps: int = 360, **kwargs: Any) -> CalvinEnv:
    """Builds the CALVIN task (open_drawer → turn_on_lightbulb → move_slider_left → turn_on_led) and seeds it.

    Args:
        seed: seeds the env (through `reset(seed=...)`; it drives the block placement when blocks are simulated)
            and its action and observation spaces.
        max_episode_steps: truncation horizon (SkiMo: 360).
        **kwargs: other `CalvinEnv` arguments (reward_norm (default 100, as SkiMo's wrapper), full_obs, add_blocks,
            tasks).
    """
    return seeded(CalvinEnv(max_episode_steps=max_episode_steps, **kwargs), seed)


def preprocess_calvin_ob(ob: Array) -> Array:
    """SkiMo feeds CALVIN observations unchanged (spec §1.4): the identity."""
    return ob
