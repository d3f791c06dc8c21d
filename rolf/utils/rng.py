"""Every random number generator of a run, captured into and restored from a checkpoint (exact resume).

A run draws from torch's generators (CPU and, on a GPU, CUDA), numpy's and Python's global generators, the
trainer's `numpy.random.Generator` (shared by the agent and its replay buffers) and each environment's
`np_random`. `capture` / `restore` handle the global ones and any named Generators; environments are handled by
the rollout runner (`rolf.trainers.rollout`), which knows where its episodes stand.

Everything is stored as tensors and plain Python values, so a checkpoint still loads with
`torch.load(weights_only=True)`.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def generator_state(rng: np.random.Generator) -> dict:
    """A Generator's bit-generator state: a dict of Python ints and strings (PCG64's 128-bit ints included)."""
    return rng.bit_generator.state


def set_generator_state(rng: np.random.Generator, state: dict) -> None:
    rng.bit_generator.state = state


def _numpy_global_state() -> dict:
    s = np.random.get_state(legacy=False)
    return {"bit_generator": s["bit_generator"], "key": torch.from_numpy(s["state"]["key"].astype(np.int64)),
            "pos": int(s["state"]["pos"]), "has_gauss": int(s["has_gauss"]), "gauss": float(s["gauss"])}


def _set_numpy_global_state(s: dict) -> None:
    key = np.asarray(s["key"], dtype=np.int64).astype(np.uint32)
    np.random.set_state((s["bit_generator"], key, s["pos"], s["has_gauss"], s["gauss"]))


def capture(generators: dict[str, np.random.Generator] | None = None, device: torch.device | None = None) -> dict:
    """torch (CPU, and CUDA when `device` is a GPU), numpy's global, Python's, and the named Generators."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "numpy": _numpy_global_state(),
                             "python": random.getstate(),
                             "generators": {k: generator_state(g) for k, g in (generators or {}).items()}}
    if device is not None and device.type == "cuda":
        state["torch_cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore(state: dict, generators: dict[str, np.random.Generator] | None = None) -> None:
    """Inverse of `capture`. Checkpoints of earlier versions held only {"torch", "buffer"}: what they have is
    restored (the buffer's state goes to every named Generator, which they all shared)."""
    torch.set_rng_state(state["torch"])
    if "torch_cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["torch_cuda"])
    if "numpy" in state:
        _set_numpy_global_state(state["numpy"])
    if "python" in state:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
    saved = state.get("generators", {})
    for name, rng in (generators or {}).items():
        if name in saved:
            set_generator_state(rng, saved[name])
        elif "buffer" in state:
            set_generator_state(rng, state["buffer"])
