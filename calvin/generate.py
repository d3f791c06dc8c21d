"""Seeded scripted play data for our CALVIN table, in the original container format (spec §5.1, calvin.md §4).

    python -m calvin.generate --out data/calvin.gz --num-chunks 1000 --seed 0

Like CALVIN's teleoperated play, each stream starts at the reset state and then chains scripted primitives
(`calvin/primitives.py`) chosen at random: one of drawer (open or close, whichever changes it), slider (left or
right, likewise), switch (up or down, likewise), button press, or a free motion to a random pose; with Gaussian
action noise and waypoint jitter. A stream is recorded until it holds `chunks_per_stream` × `chunk_len` steps and
cut into `chunk_len`-step chunks (360 = the task horizon, as SkiMo's CALVIN data): obs = robot_obs (15) ⊕
scene_obs (24) (39-d; SkiMo keeps the first 21), actions = the 7-d relative actions, done at each chunk's end.
The first chunk of a stream starts at the reset state; later ones start mid-play.

Stream i is a pure function of (seed, i) (the i-th child of `SeedSequence(seed)`), so the file does not depend
on the number of worker processes.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import numpy as np
from tqdm import tqdm

from d4rl.generate import _length_stats, _results
from rolf.datasets.offline import save_trajectories
from rolf.errors import exit_cli

CHUNK_LEN = 360
# Choices of the play policy: an object (the primitive that changes its current state is run) or a motion.
CHOICES = ("drawer", "slider", "switch", "button", "free")
I_SLIDE, I_DRAWER, I_SWITCH = 0, 1, 3

_WORKER: dict[str, Any] = {}


def _sim():
    if "sim" not in _WORKER:
        from calvin.env import CalvinSim

        _WORKER["sim"] = CalvinSim()
    return _WORKER["sim"]


def pick_primitive(choice: str, scene: np.ndarray) -> str:
    """The primitive that changes `choice`'s current state (scene_obs: slide, drawer, button, switch, ...)."""
    if choice == "drawer":
        return "close_drawer" if scene[I_DRAWER] > 0.1 else "open_drawer"
    if choice == "slider":
        return "slider_right" if scene[I_SLIDE] > 0.14 else "slider_left"
    if choice == "switch":
        return "switch_down" if scene[I_SWITCH] > 0.045 else "switch_up"
    return "press_button" if choice == "button" else "free_motion"


def play_stream(seed_seq: np.random.SeedSequence, n_steps: int, noise: float = 0.1) -> dict[str, Any]:
    """A continuous scripted play stream of at least `n_steps` steps from the reset state.

    Returns:
        {"obs": (T, 39) float32, "actions": (T, 7) float32 (obs[t] is the state action[t] was taken in),
        "tried": {primitive: count}, "solved": {primitive: count}}.
    """
    from calvin.primitives import PRIMITIVES

    sim = _sim()
    rng = np.random.default_rng(seed_seq)
    sim.reset(rng)
    obs_parts, act_parts, tried, solved, n = [], [], {}, {}, 0
    while n < n_steps:
        name = pick_primitive(CHOICES[rng.integers(len(CHOICES))], sim.scene_obs(with_blocks=False))
        obs, actions, success = PRIMITIVES[name](sim, rng, noise)
        tried[name] = tried.get(name, 0) + 1
        solved[name] = solved.get(name, 0) + int(success)
        obs_parts.append(obs[:-1])  # obs[-1] is the first observation of the next primitive
        act_parts.append(actions)
        n += len(actions)
    return {"obs": np.concatenate(obs_parts).astype(np.float32), "actions": np.concatenate(act_parts).astype(np.float32),
            "tried": tried, "solved": solved}


def _stream_task(args: tuple) -> dict[str, Any]:
    return play_stream(*args)


def cut_chunks(obs: np.ndarray, actions: np.ndarray, chunk_len: int, n_chunks: int) -> list[dict[str, np.ndarray]]:
    """The first n_chunks full `chunk_len`-step chunks as container items (done at each chunk's end)."""
    items = []
    for k in range(n_chunks):
        sl = slice(k * chunk_len, (k + 1) * chunk_len)
        dones = np.zeros(chunk_len, dtype=np.float32)
        dones[-1] = 1.0
        items.append({"obs": np.ascontiguousarray(obs[sl]), "actions": np.ascontiguousarray(actions[sl]), "dones": dones})
    return items


def generate_calvin_dataset(path: str, num_chunks: int = 1000, seed: int = 0, workers: int | None = None,
                            chunk_len: int = CHUNK_LEN, chunks_per_stream: int = 4, noise: float = 0.1,
                            progress: bool = True) -> dict[str, Any]:
    """Writes `num_chunks` chunks of scripted play (atomically) and returns stats: trajectories, total_steps,
    mean/min/max_len, seconds, steps_per_s, streams, success_<primitive>, tried_<primitive>."""
    if num_chunks < 1 or chunk_len < 1 or chunks_per_stream < 1:
        raise ValueError(f"need num_chunks, chunk_len, chunks_per_stream >= 1 (got {num_chunks}, {chunk_len}, "
                         f"{chunks_per_stream})")
    n_streams = -(-num_chunks // chunks_per_stream)
    per_stream = [min(chunks_per_stream, num_chunks - i * chunks_per_stream) for i in range(n_streams)]
    workers = max(1, min(int(workers or os.cpu_count() or 1), n_streams))
    t0 = time.perf_counter()
    tasks = [(s, k * chunk_len, noise) for s, k in zip(np.random.SeedSequence(seed).spawn(n_streams), per_stream)]
    items, tried, solved = [], {}, {}
    for r, k in zip(tqdm(_results(_stream_task, tasks, workers), total=n_streams, disable=not progress,
                         desc="CALVIN play streams", unit="stream"), per_stream):
        for name, n in r["tried"].items():
            tried[name] = tried.get(name, 0) + n
            solved[name] = solved.get(name, 0) + r["solved"][name]
        items += cut_chunks(r["obs"], r["actions"], chunk_len, k)
    save_trajectories(path, items)
    stats = _length_stats(items, time.perf_counter() - t0)
    stats["streams"] = n_streams
    for name in sorted(tried):
        stats[f"success_{name}"] = solved[name] / tried[name]
        stats[f"tried_{name}"] = tried[name]
    return stats


def summary(path: str, s: dict[str, Any]) -> str:
    rates = ", ".join(f"{k[len('success_'):]} {100 * v:.0f}% of {s['tried_' + k[len('success_'):]]}"
                      for k, v in s.items() if k.startswith("success_"))
    return (f"{path}: {s['trajectories']} chunks, {s['total_steps']} steps from {s['streams']} play streams, "
            f"{s['seconds']:.1f} s, {s['steps_per_s']:.0f} steps/s\nprimitive success: {rates}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m calvin.generate", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="data/calvin.gz")
    parser.add_argument("--num-chunks", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all CPUs)")
    parser.add_argument("--chunk-len", type=int, default=CHUNK_LEN)
    parser.add_argument("--chunks-per-stream", type=int, default=4)
    parser.add_argument("--noise", type=float, default=0.1, help="σ of the action noise (and waypoint jitter scale)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    stats = generate_calvin_dataset(args.out, args.num_chunks, args.seed, args.workers, args.chunk_len,
                                    args.chunks_per_stream, args.noise, progress=not args.no_progress)
    print(summary(args.out, stats))


if __name__ == "__main__":
    exit_cli(main)
