"""Environment speed: env steps/s, single process, one line per figure (`name value unit`).

    python bench/bench_envs.py [--steps 20000]

Actions are pre-sampled (so the figure is the simulator + wrapper, not the action sampler); resets included.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from d4rl.point_maze import PointMassSim
from envs.kitchen import make_kitchen_env
from envs.maze import make_maze_env


def env_steps_per_s(env, steps: int, ac_dim: int) -> float:
    actions = np.random.default_rng(0).uniform(-1, 1, (steps, ac_dim)).astype(np.float32)
    env.reset(seed=0)
    t = time.perf_counter()
    for a in actions:
        _, _, term, trunc, _ = env.step(a)
        if term or trunc:
            env.reset()
    return steps / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20000)
    args = ap.parse_args()
    sim = PointMassSim()
    sim.set_state(np.array([10.0, 24.0]), np.zeros(2))
    actions = np.random.default_rng(0).uniform(-1, 1, (args.steps, 2))
    t = time.perf_counter()
    for a in actions:
        sim.step(a)
    print(f"maze_pointmass_sim_steps_per_s {args.steps / (time.perf_counter() - t):.0f}")
    print(f"maze_env_steps_per_s {env_steps_per_s(make_maze_env(seed=0), args.steps, 2):.0f}")
    kitchen_steps = max(args.steps // 10, 500)
    print(f"kitchen_env_steps_per_s {env_steps_per_s(make_kitchen_env(seed=0), kitchen_steps, 9):.0f}")


if __name__ == "__main__":
    main()
