"""CALVIN env speed: env steps/s, single process, PyBullet DIRECT, no rendering, one line per figure.

    python bench/bench_calvin.py [--steps 5000] [--repeats 3]

Figures (best of `repeats`; wall clock and this process's CPU time, which is less sensitive to other load):
- `calvin_random`: uniform random actions in [−1, 1]^7 (pre-sampled), resets at 360-step truncation included.
  Random actions drive the target pose far out of reach, so the IK uses all its iterations: a worst case.
- `calvin_scripted`: the scripted primitives chained at random (noise 0.1), the play-data generator's workload.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from calvin.primitives import PRIMITIVES
from envs.calvin import make_calvin_env


def random_steps_per_s(env, steps: int) -> tuple[float, float]:
    actions = np.random.default_rng(0).uniform(-1, 1, (steps, 7)).astype(np.float32)
    env.reset(seed=0)
    t, c = time.perf_counter(), time.process_time()
    for a in actions:
        _, _, term, trunc, _ = env.step(a)
        if term or trunc:
            env.reset()
    return steps / (time.perf_counter() - t), steps / (time.process_time() - c)


def scripted_steps_per_s(env, steps: int) -> tuple[float, float]:
    rng, names, n = np.random.default_rng(0), list(PRIMITIVES), 0
    env.reset(seed=0)
    t, c = time.perf_counter(), time.process_time()
    while n < steps:
        n += len(PRIMITIVES[names[rng.integers(len(names))]](env.sim, rng, 0.1)[1])
    return n / (time.perf_counter() - t), n / (time.process_time() - c)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    env = make_calvin_env(0)
    for name, fn in (("calvin_random", random_steps_per_s), ("calvin_scripted", scripted_steps_per_s)):
        runs = [fn(env, args.steps) for _ in range(args.repeats)]
        print(f"{name} {max(r[0] for r in runs):.0f} env_steps/s_wall")
        print(f"{name} {max(r[1] for r in runs):.0f} env_steps/s_cpu")
    env.close()


if __name__ == "__main__":
    main()
