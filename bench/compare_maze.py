"""The paper's main comparison on the maze at CPU scale: SkiMo, SPiRL, SPiRL+TD-MPC, SPiRL+Dreamer, TD-MPC and
Dreamer for an equal env-step budget -> JSON + a paper-style PNG (success rate vs env steps, one line per method).

    python bench/compare_maze.py [--out bench/results/compare_maze] [--rl-steps 50000] [--methods skimo,tdmpc,...]

Pre-training (not counted in the env-step budget, as in the paper): SkiMo's skills + skill dynamics
(`skimo_maze`, `--skimo-pretrain-steps`) and SPiRL's skill prior (`python -m spirl.pretrain`,
`--spirl-pretrain-steps`), both on the generated `data/maze.gz`. Every RL run then gets `--rl-steps` env steps.
The per-method CPU presets below change sizes and schedules only (samples, batch sizes, update ratios scaled so
each run fits ~15 min on 2 cores), never the method. The paper's ordering (spec §6.1) is SkiMo > SPiRL+X,
SPiRL > TD-MPC, Dreamer; at 1-3 % of the paper's budget a method that stays at 0 is reported as such.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import run
from bench.learn_common import read_metrics, series

SPIRL_PRIOR = "log/skill_prior_learning/maze/hierarchical_cl/maze_TA_prior"  # relative to --out
# method -> (config name, rolf.name, size/schedule-only overrides for a 2-core CPU)
METHODS: dict[str, tuple[str, str, list[str]]] = {
    "skimo": ("skimo_maze", "skimo", ["+preset=cpu_quick"]),
    "spirl": ("spirl_config", "spirl", ["rolf.batch_size=64"]),
    "spirl_tdmpc": ("spirl_tdmpc_maze", "spirl_tdmpc", ["rolf.num_sample_traj=128", "rolf.cem_iter=4",
                                                        "rolf.num_elites=16", "rolf.train_iter=50"]),
    "spirl_dreamer": ("spirl_dreamer_maze", "spirl_dreamer", ["rolf.batch_size=16"]),
    "tdmpc": ("tdmpc_config", "tdmpc", ["rolf.num_sample_traj=64", "rolf.cem_iter=3", "rolf.num_elites=16",
                                        "rolf.batch_size=128", "rolf.train_iter=25"]),
    "dreamer": ("dreamer_config", "dreamer", ["rolf.batch_size=16", "rolf.train_iter=25"]),
}


def pretrain(out: Path, args) -> dict[str, float]:
    timings = {}
    data = str(ROOT / "data" / "maze.gz")
    if "skimo" in args.methods:
        t = time.time()
        run.main(run.compose_config("skimo_maze", [f"log_root_dir={out / 'log'}", "run_prefix=cmp", f"seed={args.seed}",
                                                   *args.thread_overrides, "+preset=cpu_quick",
                                                   f"rolf.pretrain.data_path={data}",
                                                   f"rolf.pretrain.max_global_step={args.skimo_pretrain_steps}",
                                                   "rolf.pretrain.train_iter=1", "rolf.pretrain.batch_size=256",
                                                   f"rolf.pretrain.ckpt_every={args.skimo_pretrain_steps}"]))
        timings["skimo_pretrain_s"] = time.time() - t
    if any(m.startswith("spirl") for m in args.methods):
        t = time.time()
        subprocess.run([sys.executable, "-m", "spirl.pretrain", "--env", "maze", "--data", data, "--steps",
                        str(args.spirl_pretrain_steps), "--out", str(out / SPIRL_PRIOR), "--seed", str(args.seed)],
                       cwd=ROOT, check=True)
        timings["spirl_pretrain_s"] = time.time() - t
    return timings


def rl(method: str, out: Path, args) -> float:
    config, _, preset = METHODS[method]
    extra = [f"log_root_dir={out / 'log'}", "run_prefix=cmp", f"seed={args.seed}", *preset, *args.thread_overrides,
             f"rolf.max_global_step={args.rl_steps}", f"rolf.evaluate_every={max(args.rl_steps // 8, 500)}",
             f"rolf.log_every={max(args.rl_steps // 20, 500)}", f"rolf.ckpt_every={args.rl_steps}"]
    if method == "skimo":
        ckpt = out / "log" / f"maze.skimo.pretrain.cmp.{args.seed}" / "ckpt" / f"maze_ckpt_{args.skimo_pretrain_steps:011d}.pt"
        extra += ["rolf.phase=rl", f"rolf.pretrain_ckpt_path={ckpt}", f"rolf.horizon_step={args.rl_steps}",
                  f"rolf.std_step={args.rl_steps}", f"rolf.warm_up_step={min(10_000, args.rl_steps // 5)}"]
    elif method.startswith("spirl"):
        extra += [f"rolf.prior_path={out / SPIRL_PRIOR}"]
    if method != "skimo":  # warm-ups count in the budget: at most a fifth of it
        default = int(float(run.compose_config(config).rolf.warm_up_step))
        extra += [f"rolf.warm_up_step={min(default, args.rl_steps // 5)}"]
    t = time.time()
    run.main(run.compose_config(config, extra))
    return time.time() - t


def success_curve(rows: list[dict]) -> dict[str, list]:
    """Success rate vs env steps from train episodes (mean per log window) and test episodes; maze reward 100."""
    out = {}
    for key in ("train_ep", "test_ep"):
        steps, vals = series(rows, f"{key}/rew")
        out[key] = [steps, [v / 100.0 for v in vals]]
    return out


OB_KEYS = ("ob", "ob_next")


def stored_positions(state) -> np.ndarray:
    """Every maze observation (x, y) stored in a checkpoint's replay buffers: arrays under the buffers' field names
    "ob" / "ob_next" whose last dim is the maze's 4 (SkiMo/SPiRL buffers hold skill-boundary observations, flat
    methods every step). Network weights (keys like "encoders.ob.fc.fcs.0.weight") are not observations."""
    found: list[np.ndarray] = []

    def walk(node, key: str = "") -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, str(k))
        elif isinstance(node, (list, tuple)):
            for v in node:
                walk(v, key)
        elif key in OB_KEYS and hasattr(node, "shape") and len(node.shape) >= 2 and node.shape[-1] == 4:
            arr = node.detach().cpu().numpy() if hasattr(node, "detach") else np.asarray(node)
            found.append(arr.reshape(-1, 4)[:, :2].astype(np.float64))

    walk(state)
    return np.concatenate(found) if found else np.zeros((0, 2))


def exploration(run_dir: Path, goal=(18.0, 8.0), start=(10.0, 24.0)) -> dict[str, float]:
    """How far each method's data got when success is 0 everywhere: the closest stored observation to the goal and
    the number of distinct unit cells stored (from the last RL checkpoint's replay buffer)."""
    import torch

    ckpts = sorted((run_dir / "ckpt").glob("*.pt"))
    if not ckpts:
        return {}
    xy = stored_positions(torch.load(ckpts[-1], map_location="cpu", weights_only=False))
    xy = xy[np.isfinite(xy).all(1) & (np.abs(xy) < 1e3).all(1)]
    if not len(xy):
        return {}
    dist = np.linalg.norm(xy - np.asarray(goal), axis=1)
    return {"closest_to_goal": float(dist.min()), "start_to_goal": float(np.linalg.norm(np.subtract(start, goal))),
            "cells_visited": len(np.unique(np.floor(xy).astype(np.int64), axis=0)), "stored_obs": len(xy)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "compare_maze"))
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--rl-steps", type=int, default=50_000)
    ap.add_argument("--skimo-pretrain-steps", type=int, default=3000)
    ap.add_argument("--spirl-pretrain-steps", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="torch threads of every run (default: torch's choice; "
                                                                 "use 1 when other jobs share the cores)")
    ap.add_argument("--analyse-only", action="store_true")
    args = ap.parse_args()
    args.thread_overrides = [f"num_threads={args.threads}"] if args.threads else []
    args.methods = [m for m in args.methods.split(",") if m]
    unknown = sorted(set(args.methods) - set(METHODS))
    if unknown:
        ap.error(f"unknown methods {unknown}; available: {sorted(METHODS)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "compare_maze.json"
    previous = json.loads(json_path.read_text()) if args.analyse_only and json_path.exists() else {}
    timings = previous.get("timings", {})
    if args.analyse_only and "rl_steps" in previous:
        args.rl_steps = int(previous["rl_steps"])  # the budget the analysed runs were given
    if not args.analyse_only:
        timings.update(pretrain(out, args))
        for m in args.methods:
            timings[f"{m}_rl_s"] = rl(m, out, args)
    curves, explored = {}, {}
    for m in args.methods:
        run_dir = out / "log" / f"maze.{METHODS[m][1]}.rl.cmp.{args.seed}"
        curves[m] = success_curve(read_metrics(run_dir))
        explored[m] = exploration(run_dir)
    result = {"rl_steps": args.rl_steps, "timings": timings, "curves": curves, "exploration": explored}
    json_path.write_text(json.dumps(result, indent=1))
    plot(result, out / "compare_maze.png")
    for m, c in curves.items():
        for key, (steps, vals) in c.items():
            if vals:
                print(f"{m} {key} final {vals[-1]:.3f} max {max(vals):.3f} mean {np.mean(vals):.3f} "
                      f"({len(vals)} points, last at {steps[-1]} env steps)")
    for m, e in explored.items():
        if e:
            print(f"{m} closest approach to the goal {e['closest_to_goal']:.1f} (start {e['start_to_goal']:.1f} away), "
                  f"{e['cells_visited']} cells visited ({e['stored_obs']} stored observations)")
    for k, v in timings.items():
        print(f"{k} {v:.0f}")


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    for i, (m, c) in enumerate(result["curves"].items()):
        steps, vals = c["train_ep"]
        if vals:
            ax.plot(steps, vals, "-", color=f"C{i}", label=m)
        steps, vals = c["test_ep"]
        if vals:
            ax.plot(steps, vals, "o", color=f"C{i}", ms=3)
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("env steps")
    ax.set_ylabel("success rate (lines: train episodes, dots: test)")
    ax.set_title(f"maze, CPU scale ({result['rl_steps']} env steps per method)")
    ax.legend(fontsize=8)
    explored = {m: e for m, e in result.get("exploration", {}).items() if e}
    if explored:
        names = list(explored)
        ax2.barh(names, [explored[m]["closest_to_goal"] for m in names], color=[f"C{list(result['curves']).index(m)}"
                                                                                for m in names])
        ax2.axvline(2.0, color="k", ls="--", lw=1, label="success radius")
        ax2.axvline(next(iter(explored.values()))["start_to_goal"], color="gray", ls=":", lw=1, label="start")
        ax2.invert_yaxis()
        ax2.set_xlabel("closest stored observation to the goal")
        ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
