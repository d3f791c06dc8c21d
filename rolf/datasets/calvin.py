"""The real CALVIN dataset (a user-downloaded split such as `task_D_D/training`), converted to the container
format (spec §5.1, calvin.md §4).

A split folder holds one `episode_XXXXXXX.npz` per frame (7-digit global index; keys `robot_obs` (15,),
`scene_obs` (24,), `rel_actions` (7,), `actions` (7,) and images) and `ep_start_end_ids.npy`, a (K, 2) array of
inclusive [start, end] frame ranges of contiguous recordings. As SkiMo's (unpublished) converter presumably did,
every range is cut into `chunk_len`-step chunks (360 = the task horizon) with obs = robot_obs ⊕ scene_obs (39-d;
SkiMo keeps the first 21 at load time), actions = rel_actions and done at each chunk's end; a remainder shorter
than `min_len` steps is dropped (SkiMo samples 11-step windows from CALVIN, spec §5.1).

Only the three state arrays of each frame are read (npz members load lazily, so the images are never decoded),
but a full split is ~0.6 M small files: the converted dataset is written once (atomically) and reused.

    python -m rolf.datasets.calvin ~/calvin/task_D_D/training --out data/calvin.gz
"""

from __future__ import annotations

import argparse
import os
import sys
import zipfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from tqdm import tqdm

from rolf.datasets.offline import ENV_DIMS, DatasetError, save_trajectories
from rolf.errors import exit_cli

CALVIN_OBS_DIM, CALVIN_ACTION_DIM = ENV_DIMS["calvin"]  # 39 = robot_obs 15 + scene_obs 24; rel_actions 7
FRAME_KEYS: dict[str, int] = {"robot_obs": 15, "scene_obs": 24, "rel_actions": CALVIN_ACTION_DIM}
CHUNK_LEN = 360
MIN_LEN = 11


def frame_path(split_dir: Path, index: int) -> Path:
    return split_dir / f"episode_{index:07d}.npz"


def read_ranges(split_dir: Path) -> np.ndarray:
    """`ep_start_end_ids.npy` as a validated (K, 2) int array of inclusive [start, end] ranges.

    Raises:
        DatasetError: missing file or wrong shape/order, one line naming the file.
    """
    path = split_dir / "ep_start_end_ids.npy"
    if not split_dir.is_dir():
        raise DatasetError(f"{split_dir}: not a directory (expected a CALVIN split folder such as task_D_D/training)")
    if not path.is_file():
        raise DatasetError(f"{path}: file not found (a CALVIN split folder has ep_start_end_ids.npy)")
    try:
        ranges = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise DatasetError(f"{path}: not a readable .npy array ({e})") from None
    if ranges.ndim != 2 or ranges.shape[1] != 2 or ranges.dtype.kind not in "iu" or len(ranges) == 0:
        raise DatasetError(f"{path}: has shape {ranges.shape} and dtype {ranges.dtype}, expected (K>=1, 2) integers")
    if (ranges[:, 1] < ranges[:, 0]).any():
        k = int(np.flatnonzero(ranges[:, 1] < ranges[:, 0])[0])
        raise DatasetError(f"{path}: range {k} is {ranges[k].tolist()}, expected start <= end")
    return ranges.astype(np.int64)


def read_frame(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One frame's (obs (39,), rel_action (7,)) float32 from its npz; images are not loaded.

    Raises:
        DatasetError: missing file, missing key or wrong size, one line naming the file and key.
    """
    if not path.is_file():
        raise DatasetError(f"{path}: file not found (listed in ep_start_end_ids.npy)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            values = {}
            for key, dim in FRAME_KEYS.items():
                if key not in npz.files:
                    raise DatasetError(f"{path}: missing key {key!r} (has {sorted(npz.files)})")
                arr = np.asarray(npz[key], dtype=np.float32).reshape(-1)
                if arr.shape != (dim,):
                    raise DatasetError(f"{path}: {key!r} has {arr.size} values, expected {dim}")
                values[key] = arr
    except (ValueError, OSError, zipfile.BadZipFile) as e:
        raise DatasetError(f"{path}: not a readable .npz file ({e})") from None
    return np.concatenate([values["robot_obs"], values["scene_obs"]]), values["rel_actions"]


def chunk_bounds(start: int, end: int, chunk_len: int, min_len: int) -> Iterator[tuple[int, int]]:
    """[a, b) frame-index chunks of an inclusive range: full `chunk_len` chunks, then the remainder if it has at
    least `min_len` steps."""
    a = start
    while a <= end:
        b = min(a + chunk_len, end + 1)
        if b - a >= min_len:
            yield a, b
        a = b


def load_calvin_split(split_dir: str | os.PathLike, chunk_len: int = CHUNK_LEN, min_len: int = MIN_LEN,
                      progress: bool = False) -> list[dict[str, np.ndarray]]:
    """A CALVIN split folder -> container items {obs (T, 39), actions (T, 7) = rel_actions, dones (T,) with
    dones[-1] = 1}, T <= chunk_len.

    Raises:
        DatasetError: one line naming the file and field at fault.
    """
    if chunk_len < 1 or min_len < 1:
        raise ValueError(f"need chunk_len >= 1 and min_len >= 1 (got {chunk_len}, {min_len})")
    split_dir = Path(split_dir).expanduser()
    bounds = [b for s, e in read_ranges(split_dir) for b in chunk_bounds(int(s), int(e), chunk_len, min_len)]
    items = []
    for a, b in tqdm(bounds, disable=not progress, desc="CALVIN chunks", unit="chunk"):
        frames = [read_frame(frame_path(split_dir, i)) for i in range(a, b)]
        dones = np.zeros(b - a, dtype=np.float32)
        dones[-1] = 1.0
        items.append({"obs": np.stack([f[0] for f in frames]), "actions": np.stack([f[1] for f in frames]),
                      "dones": dones})
    if not items:
        raise DatasetError(f"{split_dir}: no range has at least {min_len} frames")
    return items


def convert(split_dirs: list[str | os.PathLike], out: str | os.PathLike, chunk_len: int = CHUNK_LEN,
            min_len: int = MIN_LEN, progress: bool = True) -> dict[str, Any]:
    """Converts one or more split folders into one container file (written atomically). Returns stats."""
    items = [t for d in split_dirs for t in load_calvin_split(d, chunk_len, min_len, progress)]
    save_trajectories(out, items)
    return {"trajectories": len(items), "total_steps": int(sum(len(t["obs"]) for t in items))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rolf.datasets.calvin",
                                     description="Convert CALVIN split folders (per-frame episode_*.npz) to the "
                                                 "container format used as rolf.pretrain.data_path.")
    parser.add_argument("split_dirs", nargs="+", help="split folders, e.g. task_D_D/training task_D_D/validation")
    parser.add_argument("--out", default="data/calvin.gz")
    parser.add_argument("--chunk-len", type=int, default=CHUNK_LEN)
    parser.add_argument("--min-len", type=int, default=MIN_LEN)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    try:
        stats = convert(args.split_dirs, args.out, args.chunk_len, args.min_len, progress=not args.no_progress)
    except DatasetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{args.out}: {stats['trajectories']} trajectories, {stats['total_steps']} steps, obs dim {CALVIN_OBS_DIM}")
    return 0


if __name__ == "__main__":
    exit_cli(main)
