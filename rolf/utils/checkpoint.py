"""Checkpoint files: names, atomic writes, safe loading of ours and of the original's (spec §3.1.2, §7.17)."""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rolf.errors import UserError
from rolf.utils.files import atomic_path

_CKPT_RE = re.compile(r"_(\d+)\.pt$")


class CheckpointError(UserError, RuntimeError):
    pass


def ckpt_name(env: str, step: int) -> str:
    """`<env>_ckpt_<11-digit step>.pt`, the name of the released SkiMo checkpoints."""
    return f"{env}_ckpt_{int(step):011d}.pt"


def parse_step(path: str | Path) -> int:
    """The number after the last underscore (accepts `ckpt_<n>.pt` and `<env>_ckpt_<n>.pt`)."""
    m = _CKPT_RE.search(str(path))
    if not m:
        raise CheckpointError(f"{path}: not a checkpoint name (expected '<env>_ckpt_<11 digits>.pt')")
    return int(m.group(1))


def latest_checkpoint(ckpt_dir: str | Path) -> Path | None:
    d = Path(ckpt_dir)
    if not d.is_dir():
        return None
    found = [p for p in d.glob("*.pt") if _CKPT_RE.search(p.name)]
    return max(found, key=parse_step) if found else None


def remove_stale_temporaries(ckpt_dir: str | Path) -> None:
    """Temporary files of checkpoints whose writer was killed (`<name>.pt.tmp-<pid>`): never resumed from."""
    d = Path(ckpt_dir)
    if d.is_dir():
        for tmp in d.glob("*.pt.tmp-*"):
            tmp.unlink(missing_ok=True)


def save_checkpoint(path: str | Path, obj: Any) -> Path:
    """torch.save to `<path>.tmp-<pid>` then os.replace: a crash never leaves a half-written checkpoint."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return path


# The original stores numpy arrays in `ob_norm`; these are the only globals such a file needs beyond tensors.
# Pickles written under numpy 1.x name `numpy.core.multiarray._reconstruct`, numpy 2 names `numpy._core...`;
# torch matches allow-list entries by name, so both spellings are registered.
def _numpy_safe_globals() -> list:
    try:
        from numpy._core.multiarray import _reconstruct  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct
    dtypes = [type(np.dtype(t)) for t in ("float32", "float64", "int64", "int32", "bool", "uint8")]
    return [np.ndarray, np.dtype, *dtypes, (_reconstruct, "numpy.core.multiarray._reconstruct"),
            (_reconstruct, "numpy._core.multiarray._reconstruct")]


def _own_state_types() -> list:
    """Plain data types of ours that a checkpoint may hold: the Dreamer filter state in the runner's episode."""
    from rolf.networks.rssm import RSSMState

    return [RSSMState]


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load ours or an original checkpoint with `weights_only=True` and a numpy allow-list (never arbitrary pickles).

    Raises CheckpointError with one line naming the file and the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals() + _own_state_types()):
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: cannot load checkpoint safely ({first})") from None
    if not isinstance(ckpt, dict) or "agent" not in ckpt:
        raise CheckpointError(f"{path}: not a rolf/SkiMo checkpoint (expected a dict with 'step' and 'agent')")
    return ckpt


def load_module_state(module: torch.nn.Module, state: dict, name: str, source: str, droppable_prefix: str | None = None) -> None:
    """Strict load with a one-line error naming the first missing/mismatched parameter and both shapes.

    Keys under `droppable_prefix` whose shapes differ are skipped (those parameters keep their fresh init)."""
    own = module.state_dict()
    state = {k: torch.as_tensor(v) for k, v in state.items()}
    if droppable_prefix and any(k.startswith(droppable_prefix) and k in own and own[k].shape != v.shape
                                for k, v in state.items()):
        state = {k: v for k, v in state.items() if not k.startswith(droppable_prefix)}
        own_kept = {k: v for k, v in own.items() if not k.startswith(droppable_prefix)}
    else:
        own_kept = own
    for k, v in own_kept.items():
        if k not in state:
            raise CheckpointError(f"{source}: '{name}.{k}' is missing from the checkpoint (wrong algorithm or env?)")
        if tuple(state[k].shape) != tuple(v.shape):
            raise CheckpointError(f"{source}: '{name}.{k}' has shape {tuple(state[k].shape)} in the checkpoint but "
                             f"{tuple(v.shape)} in this model (checkpoint of another env/config?)")
    extra = sorted(set(state) - set(own))
    if extra:
        raise CheckpointError(f"{source}: unexpected parameter '{name}.{extra[0]}' in the checkpoint")
    module.load_state_dict(state, strict=not (own_kept is not own))

