"""The speed suite of the performance issue: one line per figure (`name median [min, max] unit`, plus achieved
GFLOP/s and the fraction of this machine's matmul peak for the compute figures), and a JSON file.

    python bench/speed.py [--reps 10] [--threads 2] [--json bench/results/speed.json] [--quick] [--only compute,loop]
                          [Hydra overrides of the SkiMo figures, e.g. rolf.analytic_kl=true rolf.precision=bf16]

Figures, for maze and kitchen at spec §4.1 shapes (fp32):
- pre-training iteration (batch 512 x 101 steps), RL update (batch 128 / 256 x 10 skills), CEM plan at horizon 10
  and 1 (512 samples + 25 policy trajectories, 6 iterations), skill act (one observation);
- env steps/s in one process (maze, kitchen, CALVIN; random actions, resets included);
- data generation steps/s with all cores (maze, kitchen, CALVIN generators, small sizes);
- the maze CEM plan at horizon 10 with `rolf.compile_planner=true` and RL update with `rolf.compile_update=true`,
  their compile time, and the eager figure timed alternately with them;
- the maze RL loop (env + skill policy + CEM planning + updates, spec shapes) in env steps/s, with the share of the
  wall time spent planning, acting, updating and stepping the env;
- the machine's matmul peak (2048² fp32 and 512² bf16 matmuls), measured in the same run.
FLOPs are counted by `torch.utils.flop_counter.FlopCounterMode` on one call (matmuls, forward and backward), plus
the LSTM skill encoder's, which that counter does not see, counted by hand. The skill act runs on a numpy snapshot
(no torch ops to count): its FLOPs are those of the same forward pass in torch.
The original's figures on this machine kind (performance issue): 0.53 / 0.89 s, 0.139 / 0.251 s, 93 / 109 ms,
22 / 23 ms, 0.24 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_envs import env_steps_per_s
from bench.timing import timeit
from rolf.utils.perf import tune_malloc
from run import compose_config
from skimo_agent import build_agent

RL_BATCH = {"maze": 128, "kitchen": 256}
OB_SCALE = {"maze": 40.0, "kitchen": 1.0}


def count_flops(fn: Callable[[], object]) -> float:
    """Matmul FLOPs of one call (forward + backward). torch's counter does not see the fused LSTM kernel, so LSTMs
    are added by hand: 2·4·H·(I + H) per step and sequence forward, twice that backward when grad is on."""
    from torch.utils.flop_counter import FlopCounterMode

    lstm_flops = 0.0

    def lstm_hook(module: torch.nn.LSTM, inputs, _output) -> None:
        nonlocal lstm_flops
        x = inputs[0]
        n_steps = x.shape[0] * x.shape[1]  # (N, T, I) or (T, N, I): sequences x steps either way
        fwd = 2.0 * 4 * module.hidden_size * (module.input_size + module.hidden_size) * n_steps * module.num_layers
        lstm_flops += fwd * (3.0 if torch.is_grad_enabled() and module.weight_ih_l0.requires_grad else 1.0)

    handle = torch.nn.modules.module.register_module_forward_hook(
        lambda m, i, o: lstm_hook(m, i, o) if isinstance(m, torch.nn.LSTM) else None)
    try:
        with FlopCounterMode(display=False) as counter:
            fn()
    finally:
        handle.remove()
    return float(counter.get_total_flops()) + lstm_flops


def matmul_peak(dtype: torch.dtype, n: int = 2048, reps: int = 10) -> float:
    """GFLOP/s of an n x n matmul in `dtype` (median)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    med, _, _ = timeit(lambda: a @ b, reps)
    return 2 * n**3 / med / 1e9


def compute_figures(env: str, reps: int, overrides: list[str]) -> dict[str, dict]:
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    cfg = compose_config(f"skimo_{env}", overrides)
    pre = build_agent(cfg, "pretrain")
    ob_dim, ac_dim = pre.ob_dim, pre.ac_dim
    b = {"ob": (rng.random((512, 101, ob_dim)) * OB_SCALE[env]).astype(np.float32),
         "ac": rng.uniform(-1, 1, (512, 101, ac_dim)).astype(np.float32)}
    out = {"pretrain_iter": (lambda: pre.pretrain_step(b), reps, "s")}
    agent = build_agent(cfg, "rl")
    agent.load_pretrained(pre.state_dict())
    n = RL_BATCH[env]
    rb = {"ob": (rng.random((n, 11, ob_dim)) * OB_SCALE[env]).astype(np.float32),
          "ac": rng.uniform(-1, 1, (n, 10, 10)).astype(np.float32),
          "rew": np.zeros((n, 10), np.float32), "done": np.zeros((n, 10), np.float32)}
    out["rl_update"] = (lambda: agent.rl_step(rb), reps, "s")
    ob = (rng.random(ob_dim) * OB_SCALE[env]).astype(np.float32)

    def plan_at(step: int) -> Callable[[], object]:
        def plan():
            agent.set_step(step)
            return agent.act_meta(ob, None, True)
        return plan

    out["cem_plan_h10"] = (plan_at(10**7), reps, "ms")
    out["cem_plan_h1"] = (plan_at(0), reps, "ms")
    z = np.zeros(10, np.float32)
    out["skill_act"] = (lambda: agent.act_skill(ob, z), max(reps, 200), "ms")

    @torch.no_grad()
    def skill_act_in_torch():  # the FLOPs of the numpy snapshot's forward pass
        feat = agent.skill_agent.encoder(agent.preprocess(torch.as_tensor(ob)[None]))
        return agent.skill_agent.act(feat, torch.as_tensor(z)[None])

    flop_fns = {"skill_act": skill_act_in_torch}
    results = {}
    for name, (fn, r, unit) in out.items():
        med, lo, hi = timeit(fn, r)
        flops = count_flops(flop_fns.get(name, fn))
        scale = 1e3 if unit == "ms" else 1.0
        results[f"{env}_{name}"] = {"median": med * scale, "min": lo * scale, "max": hi * scale, "unit": unit,
                                    "gflop": flops / 1e9, "gflops_per_s": flops / med / 1e9}
    return results


def compiled_figures(reps: int, overrides: list[str]) -> dict[str, dict]:
    """Maze CEM plan at horizon 10 with `rolf.compile_planner=true` and RL update with `rolf.compile_update=true`:
    the compile time (first calls), then compiled and eager medians measured alternately in rounds (this host's
    speed drifts from minute to minute, so only interleaved timings compare)."""
    import time

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    pretrained = build_agent(compose_config("skimo_maze", overrides), "pretrain").state_dict()
    flags = ["rolf.compile_planner=true", "rolf.compile_update=true"]
    agents = {}  # compiled / eager twins with the same weights
    for compiled in (True, False):
        agents[compiled] = build_agent(compose_config("skimo_maze", [*overrides, *(flags if compiled else [])]), "rl")
        agents[compiled].load_pretrained(pretrained)
        agents[compiled].set_step(10**7)
    ob = np.array([10.0, 24.0, 0.0, 0.0], np.float32)
    n = RL_BATCH["maze"]
    rb = {"ob": (rng.random((n, 11, 4)) * OB_SCALE["maze"]).astype(np.float32),
          "ac": rng.uniform(-1, 1, (n, 10, 10)).astype(np.float32),
          "rew": np.zeros((n, 10), np.float32), "done": np.zeros((n, 10), np.float32)}
    figures = {"cem_plan_h10": (lambda a: a.act_meta(ob, None, True), 1e3, "ms"),
               "rl_update": (lambda a: a.rl_step(rb), 1.0, "s")}
    out = {}
    for name, (fn, scale, unit) in figures.items():
        t = time.perf_counter()
        for _ in range(2):  # compile, then any guard-triggered recompile
            fn(agents[True])
        compile_s = time.perf_counter() - t
        times = {True: [], False: []}
        for _ in range(3):
            for compiled, agent in agents.items():
                times[compiled].append(timeit(lambda: fn(agent), max(reps // 3, 2))[0])  # noqa: B023 (called here)
        out[f"maze_{name}_compiled"] = {"median": float(np.median(times[True])) * scale,
                                        "eager_median": float(np.median(times[False])) * scale,
                                        "min": min(times[True]) * scale, "max": max(times[True]) * scale,
                                        "unit": unit, "compile_s": compile_s}
    return out


def rl_loop_figures(env_steps: int, overrides: list[str]) -> dict[str, float]:
    """The full maze RL loop at spec shapes (env + skill policy + CEM planning + updates), after one random-skill
    episode fills the buffer: env steps/s and the share of the wall time of each part."""
    import time
    from collections import defaultdict

    from envs import get_env_spec
    from skimo_rollout import SkiMoRolloutRunner

    torch.manual_seed(0)
    cfg = compose_config("skimo_maze", overrides)
    agent = build_agent(cfg, "rl")
    agent.load_pretrained(build_agent(cfg, "pretrain").state_dict())
    env = get_env_spec("maze").make(seed=0)
    spent: dict[str, float] = defaultdict(float)

    def timed(name: str, fn: Callable) -> Callable:
        def wrapper(*a, **k):
            t = time.perf_counter()
            out = fn(*a, **k)
            spent[name] += time.perf_counter() - t
            return out
        return wrapper

    agent.act_meta, agent.act_skill = timed("plan", agent.act_meta), timed("skill_act", agent.act_skill)
    agent.update, env.step = timed("update", agent.update), timed("env_step", env.step)
    episode = int(cfg.env.max_episode_steps)
    runner = SkiMoRolloutRunner(env, env, agent, int(cfg.rolf.skill_horizon), warm_up_step=episode)
    every = int(cfg.rolf.train_every)
    gen = runner.run(every_steps=every)
    step = 0
    while step < episode:  # warm-up: random skills from the prior, no updates
        hl, _, n = next(gen)
        agent.store_episode(hl)
        step += n
    agent._warm_up_done = True  # time the steady state, not the one-off warm-up iterations
    hl, _, n = next(gen)  # one untimed chunk: first plans and updates (and compiles, with the compile flags)
    agent.store_episode(hl)
    agent.update()
    step += n
    spent.clear()
    t0, start = time.perf_counter(), step
    while step - start < env_steps:
        hl, _, n = next(gen)
        agent.store_episode(hl)
        agent.update()
        step += n
    wall = time.perf_counter() - t0
    out = {"steps_per_s": (step - start) / wall, "env_steps": step - start}
    for k, v in spent.items():
        out[f"share_{k}"] = v / wall
    out["share_other"] = 1.0 - sum(spent.values()) / wall
    return out


def registry_env_steps_per_s(env: str, steps: int) -> float:
    """Random-action env steps/s of a registered env (bench_envs.env_steps_per_s on `get_env_spec(env).make`)."""
    from envs import get_env_spec

    e = get_env_spec(env).make(seed=0)
    return env_steps_per_s(e, steps, e.action_space.shape[0])


def generation_steps_per_s(env: str, quick: bool) -> float:
    workers = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as d:
        path = str(Path(d) / f"{env}.gz")
        if env == "maze":
            from d4rl.generate import generate_maze_dataset
            stats = generate_maze_dataset(path, num_traj=100 if quick else 400, workers=workers, progress=False)
        elif env == "kitchen":
            from d4rl.generate import generate_kitchen_dataset
            stats = generate_kitchen_dataset(path, num_episodes=8 if quick else 24, workers=workers, progress=False)
        else:
            from calvin.generate import generate_calvin_dataset
            stats = generate_calvin_dataset(path, num_chunks=8 if quick else 24, workers=workers, progress=False)
    return float(stats["steps_per_s"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "speed.json"))
    ap.add_argument("--quick", action="store_true", help="fewer env steps and smaller generation runs")
    ap.add_argument("--only", default="compute,compile,loop,env,gen",
                    help="sections to run (comma list of compute, compile, loop, env, gen)")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides for the SkiMo figures, e.g. rolf.analytic_kl=true "
                                                 "or rolf.precision=bf16")
    args = ap.parse_args()
    sections = set(args.only.split(","))
    torch.set_num_threads(args.threads)
    tune_malloc()
    # bf16 at n=512: without AVX-512 BF16 torch falls back to a ~0.3 GFLOP/s path (a 2048² matmul would take a minute)
    peaks = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16, n=512, reps=3)}
    for k, v in peaks.items():
        print(f"matmul_peak_{k} {v:.1f} GFLOP/s")
    results: dict[str, dict] = {}
    for env in ("maze", "kitchen") if "compute" in sections else ():
        for name, r in compute_figures(env, args.reps, args.overrides).items():
            for kind, peak in peaks.items():
                r[f"fraction_of_{kind}_peak"] = r["gflops_per_s"] / peak
            results[name] = r
            print(f"{name} {r['median']:.4g} [{r['min']:.4g}, {r['max']:.4g}] {r['unit']}  "
                  f"{r['gflop']:.3g} GFLOP  {r['gflops_per_s']:.1f} GFLOP/s  "
                  f"{100 * r['fraction_of_fp32_peak']:.1f}% of fp32 peak, {100 * r['fraction_of_bf16_peak']:.0f}% of bf16")
    if "compile" in sections:
        for name, r in compiled_figures(args.reps, args.overrides).items():
            results[name] = r
            print(f"{name} {r['median']:.4g} [{r['min']:.4g}, {r['max']:.4g}] {r['unit']}  (eager, interleaved: "
                  f"{r['eager_median']:.4g} {r['unit']}; compile {r['compile_s']:.1f} s)")
    if "loop" in sections:
        loop = rl_loop_figures(1000 if args.quick else 3000, args.overrides)
        results["maze_rl_loop_steps_per_s"] = {"median": loop.pop("steps_per_s"), "unit": "steps/s", **loop}
        print(f"maze_rl_loop_steps_per_s {results['maze_rl_loop_steps_per_s']['median']:.1f} steps/s  ("
              + ", ".join(f"{k[6:]} {100 * v:.0f}%" for k, v in loop.items() if k.startswith("share_")) + ")")
    n_steps = {"maze": 20000, "kitchen": 1000, "calvin": 1000} if args.quick else {"maze": 100000, "kitchen": 3000,
                                                                                    "calvin": 3000}
    for env, n in n_steps.items() if "env" in sections else ():
        v = registry_env_steps_per_s(env, n)
        results[f"{env}_env_steps_per_s"] = {"median": v, "unit": "steps/s"}
        print(f"{env}_env_steps_per_s {v:.0f} steps/s")
    for env in ("maze", "kitchen", "calvin") if "gen" in sections else ():
        v = generation_steps_per_s(env, args.quick)
        results[f"{env}_generation_steps_per_s"] = {"median": v, "unit": "steps/s", "workers": os.cpu_count()}
        print(f"{env}_generation_steps_per_s {v:.0f} steps/s ({os.cpu_count()} workers)")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"matmul_peak_gflops": peaks, "threads": args.threads,
                                           "overrides": args.overrides, "figures": results},
                                          indent=1))


if __name__ == "__main__":
    main()
