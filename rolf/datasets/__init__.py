"""Offline datasets (the original `data/<env>.gz` container format)."""

from rolf.datasets.offline import ENV_DIMS, MAZE_DIMS, DatasetError, load_trajectories, save_trajectories

__all__ = ["ENV_DIMS", "MAZE_DIMS", "DatasetError", "load_trajectories", "save_trajectories"]
