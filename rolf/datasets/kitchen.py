"""Kitchen datasets a user brings, converted to the original container format (spec §5.1).

- D4RL kitchen HDF5 (`kitchen_mixed-v0.hdf5`, ...): flat arrays `observations` (N, 60), `actions` (N, 9),
  `terminals` (N,), `timeouts` (N,) (optional; absent = all 0). As the original `convert_kitchen_data.py`: keep
  `observations[:, :30]` (drop the goal), `dones = terminals | timeouts`, a new trajectory after every done (a
  trailing part without a done is kept as a last trajectory).
- Minari dataset directory (`kitchen-mixed-v1`, ...): `data/main_data.hdf5` with one group `episode_<i>` per
  episode holding `observations` (for FrankaKitchen-v1 a group whose `observation` is (T+1, 59) = robot qpos 9,
  robot qvel 9, object qpos 21, object qvel 20; converted to D4RL's 30-d layout = [0:9] ++ [18:39]), `actions`
  (T, 9), `terminations` (T,), `truncations` (T,). The final observation (T+1-th) is dropped: one action per
  observation, as the container format.

Both return the container format (list of {"obs" (T, d) float32, "actions" (T, 9) float32, "dones" (T,) float32 with
dones[-1] = 1}), ready for `save_trajectories` and `rolf.pretrain.data_path`. The original SkiMo `kitchen.gz`
needs no conversion: `load_trajectories(path, 30, 9)`.

    python -m rolf.datasets.kitchen --d4rl kitchen_mixed-v0.hdf5 --out data/kitchen.gz
    python -m rolf.datasets.kitchen --minari ~/.minari/datasets/D4RL/kitchen/mixed-v2 --out data/kitchen.gz
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

from rolf.datasets.offline import ENV_DIMS, DatasetError, _array, _check_dim, save_trajectories, split_at_dones
from rolf.errors import exit_cli

KITCHEN_OBS_DIM, KITCHEN_ACTION_DIM = ENV_DIMS["kitchen"]
FRANKA_KITCHEN_OBS_DIM = 59  # FrankaKitchen-v1 `observation`: robot qpos 9, robot qvel 9, object qpos 21, object qvel 20
FRANKA_KITCHEN_QPOS = np.r_[0:9, 18:39]  # -> D4RL's robot qpos 9 + object qpos 21
_EPISODE = re.compile(r"episode_(\d+)$")


def _h5py():
    try:
        import h5py
    except ImportError:
        raise DatasetError("reading HDF5 datasets needs h5py: pip install h5py") from None
    return h5py


def _open_hdf5(path: Path):
    h5py = _h5py()
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise DatasetError(f"{path}: not a readable HDF5 file ({e})") from None


def _read(where: str, group: Any, key: str, ndim: int, allow_bool: bool = False) -> np.ndarray:
    """group[key] as a validated numpy array (one-line DatasetError naming `where` and the key)."""
    if key not in group:
        raise DatasetError(f"{where}: missing key {key!r} (has {sorted(group.keys())})")
    if not hasattr(group[key], "shape"):
        raise DatasetError(f"{where}: {key!r} is a group, expected an array")
    return _array(where, key, group[key][()], ndim, allow_bool=allow_bool)


def _check_len(where: str, arrays: dict[str, np.ndarray], n: int) -> None:
    for key, arr in arrays.items():
        if len(arr) != n:
            raise DatasetError(f"{where}: {key!r} has {len(arr)} steps, expected {n} (as 'actions')")


def load_d4rl_hdf5(path: str | os.PathLike, obs_dims: int = KITCHEN_OBS_DIM) -> list[dict[str, np.ndarray]]:
    """A D4RL kitchen HDF5 file -> container items (spec §5.1 `convert_kitchen_data.py`).

    Args:
        path: the HDF5 file (`observations`, `actions`, `terminals`, optional `timeouts`).
        obs_dims: observation dims kept (30: SkiMo, TD-MPC, Dreamer; 60: with the goal, SPiRL family).
    Raises:
        DatasetError: one line naming the file and the key.
    """
    path = Path(path)
    where = str(path)
    with _open_hdf5(path) as f:
        obs = _read(where, f, "observations", 2)
        actions = _read(where, f, "actions", 2)
        terminals = _read(where, f, "terminals", 1, allow_bool=True)
        timeouts = _read(where, f, "timeouts", 1, allow_bool=True) if "timeouts" in f else np.zeros_like(terminals)
    _check_dim(where, "observations", obs, obs_dims, at_least=True)
    _check_dim(where, "actions", actions, KITCHEN_ACTION_DIM)
    _check_len(where, {"observations": obs, "terminals": terminals, "timeouts": timeouts}, len(actions))
    if len(actions) == 0:
        raise DatasetError(f"{where}: 'actions' is empty, expected at least one step")
    return split_at_dones(obs[:, :obs_dims], actions, (terminals != 0) | (timeouts != 0))


def _minari_obs(where: str, episode: Any, obs_dims: int) -> np.ndarray:
    """An episode's observations in D4RL's layout, (T+1, obs_dims)."""
    node = episode["observations"] if "observations" in episode else None
    if node is not None and not hasattr(node, "shape"):  # FrankaKitchen-v1: a dict observation
        obs = _read(f"{where}/observations", node, "observation", 2)
        key = "observations/observation"
    else:
        obs = _read(where, episode, "observations", 2)
        key = "observations"
    if obs.shape[1] == FRANKA_KITCHEN_OBS_DIM:
        obs = obs[:, FRANKA_KITCHEN_QPOS]
    elif obs.shape[1] != KITCHEN_OBS_DIM:
        raise DatasetError(f"{where}: {key!r} has shape {obs.shape}, expected (T+1, {FRANKA_KITCHEN_OBS_DIM}) "
                           f"(FrankaKitchen-v1) or (T+1, {KITCHEN_OBS_DIM}) (D4RL layout)")
    _check_dim(where, key, obs, obs_dims, at_least=True)
    return obs[:, :obs_dims]


def _minari_episode(where: str, episode: Any, obs_dims: int) -> list[dict[str, np.ndarray]]:
    obs = _minari_obs(where, episode, obs_dims)
    actions = _read(where, episode, "actions", 2)
    _check_dim(where, "actions", actions, KITCHEN_ACTION_DIM)
    terminations = _read(where, episode, "terminations", 1, allow_bool=True)
    truncations = _read(where, episode, "truncations", 1, allow_bool=True)
    if len(obs) != len(actions) + 1:
        raise DatasetError(f"{where}: 'observations' has {len(obs)} steps, expected {len(actions) + 1} "
                           "('actions' + 1: Minari stores the final observation)")
    _check_len(where, {"terminations": terminations, "truncations": truncations}, len(actions))
    if len(actions) == 0:
        return []
    return split_at_dones(obs[:-1], actions, (terminations != 0) | (truncations != 0))


def _episode_names(where: str, f: Any) -> list[str]:
    names = sorted((k for k in f.keys() if _EPISODE.match(k)), key=lambda k: int(_EPISODE.match(k).group(1)))
    if not names:
        raise DatasetError(f"{where}: no 'episode_<i>' groups (has {sorted(f.keys())[:5]})")
    return names


def load_minari_dir(path: str | os.PathLike, obs_dims: int = KITCHEN_OBS_DIM) -> list[dict[str, np.ndarray]]:
    """A local Minari kitchen dataset -> container items, episodes in index order.

    Args:
        path: the dataset directory (holding `data/main_data.hdf5`) or that HDF5 file itself.
        obs_dims: observation dims kept (at most 30: Minari stores no goal vector).
    Raises:
        DatasetError: one line naming the file, the episode and the key.
    """
    path = Path(path)
    file = path if path.is_file() else path / "data" / "main_data.hdf5"
    if not file.is_file():
        raise DatasetError(f"{path}: not a Minari dataset directory (no data/main_data.hdf5)")
    items = []
    with _open_hdf5(file) as f:
        for name in _episode_names(str(file), f):
            items += _minari_episode(f"{file}: {name}", f[name], obs_dims)
    if not items:
        raise DatasetError(f"{file}: all episodes are empty")
    return items


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rolf.datasets.kitchen",
                                     description="Convert a D4RL kitchen HDF5 file or a Minari kitchen dataset to the "
                                                 "container format (gzip pickle) used as rolf.pretrain.data_path.")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--d4rl", metavar="FILE", help="D4RL kitchen HDF5 file")
    src.add_argument("--minari", metavar="DIR", help="Minari dataset directory (with data/main_data.hdf5)")
    parser.add_argument("--out", default="data/kitchen.gz")
    parser.add_argument("--obs-dims", type=int, default=KITCHEN_OBS_DIM, help="observation dims kept (default 30)")
    args = parser.parse_args(argv)
    try:
        trajs = load_d4rl_hdf5(args.d4rl, args.obs_dims) if args.d4rl else load_minari_dir(args.minari, args.obs_dims)
    except DatasetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    save_trajectories(args.out, trajs)
    steps = sum(len(t["obs"]) for t in trajs)
    print(f"{args.out}: {len(trajs)} trajectories, {steps} steps, obs dim {trajs[0]['obs'].shape[1]}")
    return 0


if __name__ == "__main__":
    exit_cli(main)
