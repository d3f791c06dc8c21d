"""Alternating A/B timing of two revisions: the fair way to compare speed on a host whose throughput drifts.

    python bench/ab.py --base REV [--head REV] [--rounds 5] [--reps 8] [--envs maze,kitchen]
                       [--figures pretrain_iter,rl_update,cem_plan_h10,cem_plan_h1] [--threads 2]

Each round runs, for each revision in turn and each env, one fresh process that times the figures of
bench/speed.py (median of --reps calls after warm-up); the report is the median over rounds of those medians, the
fastest call seen, and base / head. `--base` is checked out into a temporary git worktree; `--head` defaults to the
working tree (uncommitted changes included). The timed process imports the revision's own code (run.py,
skimo_agent.py, rolf/) through its path, so any revision with `compose_config`, `build_agent`, `pretrain_step`,
`rl_step`, `act_meta` and `set_step` can be measured.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for bench.timing; import_revision puts the measured revision ahead of it
from bench.timing import timeit

FIGURES = ("pretrain_iter", "rl_update", "cem_plan_h10", "cem_plan_h1")
RL_BATCH = {"maze": 128, "kitchen": 256}
OB_SCALE = {"maze": 40.0, "kitchen": 1.0}


def import_revision(root: str):
    """(compose_config, build_agent) from the code checked out at `root`, which goes first on sys.path."""
    sys.path.insert(0, root)
    import skimo_agent
    from run import compose_config

    if not Path(skimo_agent.__file__).resolve().is_relative_to(Path(root).resolve()):
        raise RuntimeError(f"imported {skimo_agent.__file__}, not the revision at {root}")
    return compose_config, skimo_agent.build_agent


def worker(root: str, env: str, figures: list[str], reps: int, threads: int) -> dict[str, list[float]]:
    """Times the figures with the code of the revision checked out at `root` (seconds)."""
    import torch

    compose_config, build_agent = import_revision(root)
    try:
        from rolf.utils.perf import tune_malloc
        tune_malloc()
    except ImportError:  # a revision from before tune_malloc
        pass
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    cfg = compose_config(f"skimo_{env}", [])
    pre = build_agent(cfg, "pretrain")
    d_o, d_a = pre.ob_dim, pre.ac_dim
    agent = build_agent(cfg, "rl")
    agent.load_pretrained(pre.state_dict())
    n = RL_BATCH[env]
    batch = {"ob": (rng.random((512, 101, d_o)) * OB_SCALE[env]).astype(np.float32),
             "ac": rng.uniform(-1, 1, (512, 101, d_a)).astype(np.float32)}
    rl_batch = {"ob": (rng.random((n, 11, d_o)) * OB_SCALE[env]).astype(np.float32),
                "ac": rng.uniform(-1, 1, (n, 10, 10)).astype(np.float32),
                "rew": np.zeros((n, 10), np.float32), "done": np.zeros((n, 10), np.float32)}
    ob = (rng.random(d_o) * OB_SCALE[env]).astype(np.float32)

    def plan_at(step: int):
        def plan():
            agent.set_step(step)
            agent.act_meta(ob, None, True)
        return plan

    fns = {"pretrain_iter": (lambda: pre.pretrain_step(batch), max(reps // 2, 2)),
           "rl_update": (lambda: agent.rl_step(rl_batch), reps),
           "cem_plan_h10": (plan_at(10**7), reps), "cem_plan_h1": (plan_at(0), 2 * reps)}
    return {name: list(timeit(*fns[name], warmup=1)[:2]) for name in figures}


def checkout(rev: str, into: Path) -> Path:
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(into), rev], check=True)
    return into


def remove_worktree(tree: Path) -> None:
    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", help="git revision to compare against (required)")
    ap.add_argument("--head", default=None, help="git revision (default: the working tree)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--reps", type=int, default=8)
    ap.add_argument("--envs", default="maze,kitchen")
    ap.add_argument("--figures", default=",".join(FIGURES))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # internal: time the tree at this path
    ap.add_argument("--env", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    figures = args.figures.split(",")
    unknown = sorted(set(figures) - set(FIGURES))
    if unknown:
        sys.exit(f"--figures: unknown {unknown}; expected a comma-separated subset of {list(FIGURES)}")
    if args.worker:
        print(json.dumps(worker(args.worker, args.env, figures, args.reps, args.threads)))
        return
    if not args.base:
        sys.exit("--base: a git revision to compare against is required (e.g. --base HEAD~3)")

    with tempfile.TemporaryDirectory(prefix="skimo_ab_") as tmp:
        trees = {"base": checkout(args.base, Path(tmp) / "base")}
        trees["head"] = checkout(args.head, Path(tmp) / "head") if args.head else ROOT
        try:
            results: dict[tuple[str, str, str], list[list[float]]] = defaultdict(list)
            for r in range(args.rounds):
                for side, tree in trees.items():
                    for env in args.envs.split(","):
                        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(tree),
                               "--env", env, "--figures", args.figures, "--reps", str(args.reps),
                               "--threads", str(args.threads)]
                        out = subprocess.run(cmd, capture_output=True, text=True, cwd=tree, check=False)
                        if out.returncode != 0:
                            sys.exit(f"{side} ({tree}) {env} failed:\n{out.stderr[-3000:]}")
                        for name, value in json.loads(out.stdout.strip().splitlines()[-1]).items():
                            results[(env, name, side)].append(value)
                print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
        finally:
            for side, tree in trees.items():
                if tree != ROOT:
                    remove_worktree(tree)
    for env in args.envs.split(","):
        for name in figures:
            row = {side: np.array(results[(env, name, side)]) for side in trees}
            med = {side: float(np.median(v[:, 0])) for side, v in row.items()}
            fastest = {side: float(v[:, 1].min()) for side, v in row.items()}
            unit, scale = ("ms", 1e3) if name.startswith("cem") else ("s", 1.0)
            print(f"{env}_{name} base {med['base'] * scale:.4g} head {med['head'] * scale:.4g} {unit} "
                  f"(fastest {fastest['base'] * scale:.4g} / {fastest['head'] * scale:.4g}) "
                  f"base/head {med['base'] / med['head']:.2f}")


if __name__ == "__main__":
    main()
