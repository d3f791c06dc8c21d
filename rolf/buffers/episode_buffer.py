"""Per-episode replay buffer with a vectorised sequence sampler (spec §3.1.6, §2.3, §1.5).

Episodes are stored back to back in growable flat numpy arrays, one per key, with per-key start offsets, so a
batch of B sequences is gathered with one fancy-indexing call per key (no Python loop over samples).

Conventions: sampled arrays are batch-major, (B, T, ...). With `one_more_ob=True` an episode of M transitions
holds M+1 observations and a sample returns `ob` (B, T+1, d_o) and the other keys (B, T, ...) — SkiMo's
high-level buffer and TD-MPC. With `one_more_ob=False` every key has the same length and a sample returns
(B, T, ...) for every key (pre-training data, Dreamer).
"""

from __future__ import annotations

import numpy as np

from rolf.errors import UserError


class InsufficientDataError(UserError, RuntimeError):
    """Raised instead of looping forever when no stored episode is long enough (the original's bug §7.20)."""


class _FlatStore:
    """A growable (N, *shape) array for one key."""

    def __init__(self, sample: np.ndarray):
        self.data = np.empty((1024, *sample.shape[1:]), dtype=sample.dtype)
        self.size = 0

    def append(self, arr: np.ndarray) -> int:
        start = self.size
        need = start + len(arr)
        if need > len(self.data):
            new = np.empty((max(need, 2 * len(self.data)), *self.data.shape[1:]), dtype=self.data.dtype)
            new[:start] = self.data[:start]
            self.data = new
        self.data[start:need] = arr
        self.size = need
        return start


class ReplayBufferEpisode:
    """FIFO store of whole episodes (capacity counted in episodes, as the original) + sequence sampling.

    Args:
        keys: the keys of every stored episode, e.g. ("ob", "ac", "rew", "done").
        capacity: maximum number of episodes kept (oldest dropped first).
        one_more_ob: episodes carry one more `ob` than transitions (see module docstring).
        sample_last_more: draw the start t ~ U{0..M-1} and clip it to M-T (spec §2.3) instead of U{0..M-T}.
        rng: numpy Generator used for sampling (seeded by the caller).
    """

    def __init__(self, keys: tuple[str, ...], capacity: int, one_more_ob: bool = False, sample_last_more: bool = False,
                 rng: np.random.Generator | None = None):
        self.keys = tuple(keys)
        self.capacity = int(capacity)
        self.one_more_ob = one_more_ob
        self.sample_last_more = sample_last_more
        self.rng = rng if rng is not None else np.random.default_rng()
        self._stores: dict[str, _FlatStore] = {}
        self._starts: dict[str, list[int]] = {k: [] for k in self.keys}
        self._lengths: list[int] = []  # transitions per episode (M)
        self._first = 0  # index of the oldest live episode (older ones are evicted)
        self._scratch: dict[str, list] = {k: [] for k in self.keys}
        self._cache: tuple[int, dict[str, np.ndarray], np.ndarray] | None = None

    # ---------------------------------------------------------------- storing
    def __len__(self) -> int:
        return len(self._lengths) - self._first

    @property
    def num_transitions(self) -> int:
        return int(sum(self._lengths[self._first:]))

    def add_episode(self, episode: dict[str, np.ndarray]) -> None:
        """Store one complete episode: {key: array (M, ...)} (and `ob` (M+1, ...) when one_more_ob)."""
        m = len(episode[self._transition_key()])
        for k in self.keys:
            arr = np.asarray(episode[k])
            expected = m + 1 if (self.one_more_ob and k == "ob") else m
            if len(arr) != expected:
                raise ValueError(f"episode key {k!r} has length {len(arr)}, expected {expected}")
            if k not in self._stores:
                self._stores[k] = _FlatStore(arr)
            self._starts[k].append(self._stores[k].append(arr))
        self._lengths.append(m)
        if len(self) > self.capacity:
            self._first += len(self) - self.capacity
            if self._first >= max(16, len(self)):  # as much evicted data as live: memory stays within ~2x capacity
                self._compact()
        self._cache = None

    def add_transitions(self, transitions: dict[str, list]) -> int:
        """Append a partial rollout {key: list per transition} (+ `ob_next` when one_more_ob) to the scratch
        episode; every transition with done=1 closes an episode, which enters the buffer. Returns #episodes closed.
        """
        closed = 0
        n = len(transitions["done"])
        # `episode_end` (optional) separates "the episode is over" from the bootstrapping mask `done`.
        ends = transitions.get("episode_end", transitions["done"])
        for i in range(n):
            for k in self.keys:
                self._scratch[k].append(transitions[k][i])
            if ends[i]:
                episode = {k: np.asarray(v) for k, v in self._scratch.items()}
                if self.one_more_ob:
                    episode["ob"] = np.concatenate([episode["ob"], np.asarray(transitions["ob_next"][i])[None]], 0)
                self.add_episode(episode)
                self._scratch = {k: [] for k in self.keys}
                closed += 1
        return closed

    def drop_partial_episode(self) -> None:
        """Forget the transitions of the episode not yet closed (it will not continue)."""
        self._scratch = {k: [] for k in self.keys}

    def _transition_key(self) -> str:
        return next((k for k in self.keys if k != "ob"), "ob")

    def _compact(self) -> None:
        episodes, scratch = [self.get_episode(i) for i in range(len(self))], self._scratch
        self.__init__(self.keys, self.capacity, self.one_more_ob, self.sample_last_more, self.rng)
        for ep in episodes:
            self.add_episode(ep)
        self._scratch = scratch

    def get_episode(self, i: int) -> dict[str, np.ndarray]:
        j = self._first + i
        m = self._lengths[j]
        out = {}
        for k in self.keys:
            n = m + 1 if (self.one_more_ob and k == "ob") else m
            s = self._starts[k][j]
            out[k] = self._stores[k].data[s:s + n].copy()
        return out

    # ---------------------------------------------------------------- sampling
    def _eligible(self, seq_len: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Start offsets per key and lengths of the live episodes with at least seq_len transitions (cached)."""
        if self._cache is None or self._cache[0] != seq_len:
            lengths = np.asarray(self._lengths[self._first:], dtype=np.int64)
            ok = np.nonzero(lengths >= seq_len)[0]
            starts = {k: np.asarray(self._starts[k][self._first:], dtype=np.int64)[ok] for k in self.keys}
            self._cache = (seq_len, starts, lengths[ok])
        return self._cache[1], self._cache[2]

    def can_sample(self, seq_len: int) -> bool:
        return len(self._eligible(seq_len)[1]) > 0

    def sample(self, batch_size: int, seq_len: int) -> dict[str, np.ndarray]:
        """B sequences of seq_len transitions, each inside one episode chosen uniformly among the long-enough ones.

        Raises InsufficientDataError (with the longest stored length) when no episode is long enough.
        """
        starts, lengths = self._eligible(seq_len)
        if len(lengths) == 0:
            longest = max(self._lengths[self._first:], default=0)
            raise InsufficientDataError(
                f"cannot sample sequences of {seq_len} transitions: the buffer holds {len(self)} episodes, "
                f"the longest has {longest}")
        ep = self.rng.integers(0, len(lengths), size=batch_size)  # (B,)
        m = lengths[ep]
        if self.sample_last_more:
            t = np.minimum(self.rng.integers(0, m), m - seq_len)
        else:
            t = self.rng.integers(0, m - seq_len + 1)
        offsets = np.arange(seq_len + 1)
        batch = {}
        for k in self.keys:
            n = seq_len + 1 if (self.one_more_ob and k == "ob") else seq_len
            idx = (starts[k][ep] + t)[:, None] + offsets[:n]  # (B, n)
            batch[k] = self._stores[k].data[idx]
        return batch

    # ---------------------------------------------------------------- checkpointing
    def state_dict(self) -> dict:
        """Tensors only, so a checkpoint holding the buffer loads with torch.load(weights_only=True)."""
        import torch

        return {"episodes": [{k: torch.from_numpy(v) for k, v in self.get_episode(i).items()} for i in range(len(self))],
                "scratch": {k: [torch.as_tensor(np.asarray(x)) for x in v] for k, v in self._scratch.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.__init__(self.keys, self.capacity, self.one_more_ob, self.sample_last_more, self.rng)
        for ep in state["episodes"]:
            self.add_episode({k: np.asarray(v) for k, v in ep.items()})
        self._scratch = {k: [np.asarray(x) for x in v] for k, v in state["scratch"].items()}
