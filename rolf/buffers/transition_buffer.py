"""Uniform transition replay (spirl's `UniformReplayBuffer`): the buffer of the SAC-style methods that sample
single transitions uniformly over everything stored (SPiRL's high level), beside `ReplayBufferEpisode`, which
samples sequences inside episodes (SkiMo, TD-MPC, Dreamer)."""

from __future__ import annotations

import numpy as np
import torch

from rolf.utils.checkpoint import CheckpointError


class TransitionReplay:
    """FIFO ring buffer of HL transitions, capacity in transitions, uniform sampling with replacement (spirl's
    `UniformReplayBuffer`). Arrays grow geometrically up to the capacity. `rng` is saved/restored by the trainer."""

    KEYS = ("ob", "ac", "rew", "ob_next", "done")

    def __init__(self, capacity: int, dims: dict[str, int], rng: np.random.Generator):
        self.capacity = int(capacity)
        self.dims = dict(dims)
        self.rng = rng
        self._reset_storage()

    def _reset_storage(self) -> None:
        self.data = {k: np.empty((0, self.dims[k]) if self.dims[k] else (0,), np.float32) for k in self.KEYS}
        self.ptr = 0  # next write position
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def _grow(self, need: int) -> None:
        cur = len(self.data["rew"])
        if need <= cur:
            return
        new = min(self.capacity, max(need, 2 * cur, 1024))
        for k, v in self.data.items():
            arr = np.empty((new, *v.shape[1:]), np.float32)
            arr[:cur] = v
            self.data[k] = arr

    def add(self, batch: dict[str, np.ndarray]) -> None:
        n = len(batch["rew"])
        for i in range(n):  # chunks hold one or two transitions
            if self.size < self.capacity:
                self._grow(self.size + 1)
            for k in self.KEYS:
                self.data[k][self.ptr] = batch[k][i]
            self.ptr = (self.ptr + 1) % self.capacity
            self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int) -> dict[str, np.ndarray]:
        if self.size == 0:
            raise RuntimeError("cannot sample from an empty replay buffer")
        idx = self.rng.integers(0, self.size, size=batch_size)
        return {k: v[idx] for k, v in self.data.items()}

    def state_dict(self) -> dict:
        """Tensors and ints only (loads with torch.load(weights_only=True)); keeps the ring layout for exact resume."""
        return {"data": {k: torch.from_numpy(v[:self.size].copy()) for k, v in self.data.items()},
                "ptr": int(self.ptr), "size": int(self.size)}

    def load_state_dict(self, state: dict) -> None:
        self._reset_storage()
        size = int(state["size"])
        if size > self.capacity:
            raise CheckpointError(f"the checkpoint's replay holds {size} transitions, more than rolf.buffer_size "
                                  f"{self.capacity}")
        self._grow(size)
        for k in self.KEYS:
            self.data[k][:size] = np.asarray(state["data"][k], dtype=np.float32)
        self.ptr, self.size = int(state["ptr"]), size
