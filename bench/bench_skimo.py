"""SkiMo compute timings at the shapes of spec §4.1 (maze): one line per figure, `name value unit`.

    python bench/bench_skimo.py [--reps 10] [--threads 2] [--json out.json]

Figures (median over --reps after 2 warm-up calls, min/max in brackets): pre-training iteration (batch 512 x 101),
RL update (batch 128 x 10 skills), CEM plan at horizon 10 and 1, skill act. The original's numbers on this
machine kind (issue "Fast on a laptop CPU"): 0.53 s, 0.139 s, 93 ms, 22 ms, 0.24 ms.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.timing import timeit
from rolf.utils.perf import tune_malloc
from run import compose_config
from skimo_agent import SkiMoAgent, build_agent


def build(phase: str, overrides: list[str]) -> SkiMoAgent:
    return build_agent(compose_config("skimo_maze", overrides), phase)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=str, default=None)
    ap.add_argument("overrides", nargs="*", help="extra Hydra overrides, e.g. rolf.analytic_kl=true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tune_malloc()
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    results = {}

    pre = build("pretrain", args.overrides)
    b = {"ob": (rng.random((512, 101, 4)) * 40).astype(np.float32), "ac": rng.uniform(-1, 1, (512, 101, 2)).astype(np.float32)}
    results["pretrain_iter_s"] = timeit(lambda: pre.pretrain_step(b), args.reps)

    agent = build("rl", args.overrides)
    agent.load_pretrained(pre.state_dict())
    rb = {"ob": (rng.random((128, 11, 4)) * 40).astype(np.float32), "ac": rng.uniform(-1, 1, (128, 10, 10)).astype(np.float32),
          "rew": np.zeros((128, 10), np.float32), "done": np.zeros((128, 10), np.float32)}
    results["rl_update_s"] = timeit(lambda: agent.rl_step(rb), args.reps)

    ob = np.array([10.0, 24.0, 0.0, 0.0], np.float32)
    for horizon, step in ((10, 10**6), (1, 0)):
        agent.set_step(step)
        results[f"cem_plan_h{horizon}_ms"] = tuple(1e3 * v for v in timeit(lambda: agent.act_meta(ob, None, True), args.reps))
    z = np.zeros(10, np.float32)
    results["skill_act_ms"] = tuple(1e3 * v for v in timeit(lambda: agent.act_skill(ob, z), max(args.reps, 200)))

    for k, (med, lo, hi) in results.items():
        print(f"{k} {med:.4g} [{lo:.4g}, {hi:.4g}]")
    if args.json:
        Path(args.json).write_text(json.dumps({k: {"median": v[0], "min": v[1], "max": v[2]} for k, v in results.items()}, indent=1))


if __name__ == "__main__":
    main()
