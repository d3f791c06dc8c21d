"""Environment registry: env id -> EnvSpec (how to build it, its observation preprocessing, its pictures, its
offline dataset). Agents never test env names; everything env-specific is looked up here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def seeded(env: Any, seed: int | None) -> Any:
    """Seeds a freshly built env's RNG (through `reset(seed=...)`) and its spaces; returns it."""
    env.reset(seed=seed)
    env.action_space.seed(seed)
    env.observation_space.seed(seed)
    return env


@dataclass(frozen=True)
class EnvSpec:
    name: str
    ob_dim: int
    ac_dim: int
    make: Callable[..., Any]  # make(seed, **env_kwargs) -> gymnasium.Env
    preprocess: Callable[[Any], Any]  # (..., ob_dim) -> (..., ob_dim), for torch tensors and numpy arrays alike
    visualizer: Callable[[Path], Any] | None = None  # visualizer(out_dir) -> object with episode/replay/... methods
    generate_dataset: Callable[[str], Any] | None = None  # generate_dataset(path): writes the default dataset
    default_data_path: str | None = None  # where that dataset lives unless configured otherwise (generated on first use)
    keep_obs_dims: int | None = None  # dims kept from the offline data's observations


def _maze_spec() -> EnvSpec:
    from envs.maze import make_maze_env, preprocess_maze_ob
    from envs.maze_vis import MazeVisualizer

    def generate(path: str):
        from d4rl.generate import generate_maze_dataset

        return generate_maze_dataset(path)

    return EnvSpec("maze", 4, 2, make_maze_env, preprocess_maze_ob, MazeVisualizer, generate, "data/maze.gz")


def _kitchen_spec() -> EnvSpec:
    from envs.kitchen import make_kitchen_env, preprocess_kitchen_ob

    def generate(path: str):
        from d4rl.generate import generate_kitchen_dataset

        return generate_kitchen_dataset(path)

    return EnvSpec("kitchen", 30, 9, make_kitchen_env, preprocess_kitchen_ob, generate_dataset=generate,
                   default_data_path="data/kitchen.gz")


def _calvin_spec() -> EnvSpec:
    from envs.calvin import make_calvin_env, preprocess_calvin_ob

    def generate(path: str):
        from calvin.generate import generate_calvin_dataset

        return generate_calvin_dataset(path)

    # Datasets hold 39-d robot_obs + scene_obs; SkiMo keeps the first 21 (spec §5.1).
    return EnvSpec("calvin", 21, 7, make_calvin_env, preprocess_calvin_ob, generate_dataset=generate, keep_obs_dims=21,
                   default_data_path="data/calvin.gz")


_REGISTRY: dict[str, Callable[[], EnvSpec]] = {"maze": _maze_spec, "kitchen": _kitchen_spec, "calvin": _calvin_spec}


def get_env_spec(env_id: str) -> EnvSpec:
    try:
        factory = _REGISTRY[env_id]
    except KeyError:
        from rolf.config import ConfigError

        raise ConfigError(f"unknown env.id {env_id!r}; available: {sorted(_REGISTRY)}") from None
    return factory()


def env_kwargs(env_cfg: Any) -> dict:
    """The env config minus the id: constructor keyword arguments."""
    return {k: v for k, v in dict(env_cfg).items() if k != "id"}
