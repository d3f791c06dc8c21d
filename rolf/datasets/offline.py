"""Offline datasets in the original container format (spec §1.5, §5.1): a gzip-compressed pickle of a list of
dicts with `obs` (T, d_o'), `actions` (T, d_a) and `dones` (T,) (float or bool).

Every item is validated; any problem raises `DatasetError` with one line naming the file, the item and the
field, e.g. `data/maze.gz: item 3: 'obs' has shape (120, 5), expected (T, 4)`. The pickle is read with an
allow-list of globals (`rolf.utils.safe_pickle`): a crafted file is refused before it can run code.
"""

from __future__ import annotations

import gzip
import os
import pickle
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from rolf.errors import UserError
from rolf.utils.files import atomic_path
from rolf.utils.safe_pickle import ForbiddenGlobal, safe_load

KEYS = ("obs", "actions", "dones")
# Per-env (obs dim stored in the file, action dim). CALVIN files hold 39-d observations; SkiMo keeps the first 21.
ENV_DIMS: dict[str, tuple[int, int]] = {"maze": (4, 2), "kitchen": (30, 9), "calvin": (39, 7)}
MAZE_DIMS = ENV_DIMS["maze"]
CALVIN_KEEP_OBS_DIMS = 21


class DatasetError(UserError, ValueError):
    """A dataset file that cannot be used; the message is one line naming file, item and field."""


def _read_pickle(path: Path) -> Any:
    if not path.exists():
        raise DatasetError(f"{path}: file not found")
    if not path.is_file():
        raise DatasetError(f"{path}: not a regular file")
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic != b"\x1f\x8b":
        raise DatasetError(f"{path}: not a gzip file (expected a gzip-compressed pickle, first bytes {magic!r})")
    try:
        with gzip.open(path, "rb") as f:
            return safe_load(f, str(path))  # globals from an allow-list only: a crafted file cannot run code
    except ForbiddenGlobal as e:
        raise DatasetError(str(e)) from None
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as e:
        raise DatasetError(f"{path}: corrupt or truncated gzip file ({type(e).__name__}: {e})") from None
    except (pickle.UnpicklingError, AttributeError, ImportError, IndexError, TypeError, ValueError) as e:
        raise DatasetError(f"{path}: not a readable pickle ({type(e).__name__}: {e})") from None


def _array(where: str, key: str, value: Any, ndim: int, allow_bool: bool = False) -> np.ndarray:
    try:
        arr = np.asarray(value)
    except Exception as e:  # noqa: BLE001 - ragged lists etc.: whatever asarray raises on file content is a data error
        raise DatasetError(f"{where}: {key!r} is not an array ({type(e).__name__})") from None
    kinds = "fiub" if allow_bool else "fiu"
    if arr.dtype.kind not in kinds:
        expected = "numeric or bool" if allow_bool else "numeric"
        raise DatasetError(f"{where}: {key!r} has dtype {arr.dtype}, expected {expected}")
    if arr.ndim != ndim:
        expected = "(T,)" if ndim == 1 else "(T, d)"
        raise DatasetError(f"{where}: {key!r} has shape {arr.shape}, expected {expected}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0].tolist()
        raise DatasetError(f"{where}: {key!r} has a non-finite value at index {tuple(bad)}")
    return arr


def _check_dim(where: str, key: str, arr: np.ndarray, dim: int | None, at_least: bool = False) -> None:
    if dim is None:
        return
    if (arr.shape[1] < dim) if at_least else (arr.shape[1] != dim):
        expected = f"(T, >={dim})" if at_least else f"(T, {dim})"
        raise DatasetError(f"{where}: {key!r} has shape {arr.shape}, expected {expected}")


def _validate_item(where: str, item: Any, obs_dim: int | None, action_dim: int | None,
                   keep_obs_dims: int | None) -> dict[str, np.ndarray] | None:
    """One item -> {obs (T, d_o) f32, actions (T, d_a) f32, dones (T,) f32}, or None to skip it."""
    if not isinstance(item, dict):
        raise DatasetError(f"{where}: is a {type(item).__name__}, expected a dict with keys {list(KEYS)}")
    missing = [k for k in KEYS if k not in item]
    if missing:
        raise DatasetError(f"{where}: missing key {missing[0]!r} (has {sorted(map(str, item))})")
    obs = _array(where, "obs", item["obs"], 2)
    actions = _array(where, "actions", item["actions"], 2)
    dones = _array(where, "dones", item["dones"], 1, allow_bool=True)
    _check_dim(where, "obs", obs, obs_dim)
    _check_dim(where, "obs", obs, keep_obs_dims, at_least=True)
    _check_dim(where, "actions", actions, action_dim)
    if len(obs) < len(dones):
        return None  # the original skips these (spec §1.5 step 2)
    if len(obs) == 0:
        raise DatasetError(f"{where}: 'obs' has shape {obs.shape}, expected at least one step")
    if len(actions) != len(obs):
        raise DatasetError(f"{where}: 'actions' has {len(actions)} steps, expected {len(obs)} (as 'obs')")
    if len(dones) != len(obs):
        raise DatasetError(f"{where}: 'dones' has {len(dones)} steps, expected {len(obs)} (as 'obs')")
    if keep_obs_dims is not None:
        obs = obs[:, :keep_obs_dims]
    dones = dones.astype(np.float32)  # a copy: never modify the caller's arrays
    dones[-1] = 1.0
    return {"obs": np.ascontiguousarray(obs, dtype=np.float32), "actions": np.ascontiguousarray(actions, dtype=np.float32),
            "dones": dones}


def load_trajectories(path: str | os.PathLike, obs_dim: int | None = None, action_dim: int | None = None,
                      keep_obs_dims: int | None = None) -> list[dict[str, np.ndarray]]:
    """Loads and validates an offline dataset.

    Args:
        path: gzip-compressed pickle of a list of {"obs", "actions", "dones"} dicts.
        obs_dim: required observation dim as stored in the file (None: any).
        action_dim: required action dim (None: any).
        keep_obs_dims: keep only the first this many observation dims (CALVIN: 21); the file must have at least
            that many.
    Returns:
        The usable items, each {obs (T, d_o) float32, actions (T, d_a) float32, dones (T,) float32 with
        dones[-1] = 1}; items with len(obs) < len(dones) are skipped.
    Raises:
        DatasetError: one line naming the file, the item index and the field.
    """
    path = Path(path)
    data = _read_pickle(path)
    if not isinstance(data, list):
        raise DatasetError(f"{path}: the pickle holds a {type(data).__name__}, expected a list of trajectory dicts")
    if not data:
        raise DatasetError(f"{path}: the pickle holds an empty list, expected at least one trajectory")
    trajs = []
    for i, item in enumerate(data):
        traj = _validate_item(f"{path}: item {i}", item, obs_dim, action_dim, keep_obs_dims)
        if traj is not None:
            trajs.append(traj)
    if not trajs:
        raise DatasetError(f"{path}: all {len(data)} items have fewer 'obs' than 'dones' steps; nothing to load")
    return trajs


def _canonical(traj: dict[str, Any]) -> dict[str, Any]:
    """Interned keys and arrays re-made with numpy's canonical dtype objects. Items that came through a pickle
    (worker processes) carry private key strings and dtype instances, which would change the pickle's memo
    layout, i.e. the bytes of the file, although the content is the same."""
    def canon(v: Any) -> Any:
        return v.astype(v.dtype.type) if isinstance(v, np.ndarray) and v.dtype.kind in "biufc" else v

    return {sys.intern(k) if isinstance(k, str) else k: canon(v) for k, v in traj.items()}


def save_trajectories(path: str | os.PathLike, trajs: list[dict[str, np.ndarray]]) -> None:
    """Writes items in the container format atomically (`<path>.tmp-<pid>` beside it, then `os.replace`)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as raw, \
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as f:  # reproducible bytes
        pickle.dump([_canonical(t) for t in trajs], f, protocol=pickle.HIGHEST_PROTOCOL)


def split_at_dones(obs: np.ndarray, actions: np.ndarray, dones: np.ndarray) -> list[dict[str, np.ndarray]]:
    """Flat arrays -> container items, a new item after every done (the last item ends with done = 1).

    Args:
        obs: (N, d); actions: (N, d_a); dones: (N,) bool or numeric (non-zero = done).
    """
    ends = list(np.flatnonzero(dones) + 1)
    if not ends or ends[-1] != len(dones):
        ends.append(len(dones))
    items, start = [], 0
    for end in ends:
        done = np.zeros(end - start, dtype=np.float32)
        done[-1] = 1.0
        items.append({"obs": np.ascontiguousarray(obs[start:end], dtype=np.float32),
                      "actions": np.ascontiguousarray(actions[start:end], dtype=np.float32), "dones": done})
        start = end
    return items
