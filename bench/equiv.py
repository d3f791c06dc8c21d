"""Do two revisions compute the same thing? Logged losses of a few SkiMo steps on one seed, side by side.

    python bench/equiv.py --base REV [--head REV] [--steps 3] [--rl-overrides "" rolf.sac=true ...]

For maze and kitchen pre-training, and for maze RL updates under each set of overrides (default: the defaults,
`rolf.fix_actor_latent=true` and `rolf.sac=true`), each revision runs the same seeded steps on the same small
synthetic batches in its own process; the report is the largest relative difference over every logged value and a
parameter checksum. A speed change that keeps the maths prints differences at float rounding (~1e-7 to 1e-5).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.ab import ROOT, checkout, import_revision, remove_worktree

RL_OVERRIDES = ("", "rolf.fix_actor_latent=true", "rolf.sac=true")


def worker(root: str, kind: str, env: str, overrides: list[str], steps: int) -> dict[str, float]:
    """Logged values of `steps` pre-training steps (kind "pre") or RL updates ("rl") with the code at `root`."""
    import torch

    compose_config, build_agent = import_revision(root)

    torch.manual_seed(0)
    torch.set_num_threads(1)
    cfg = compose_config(f"skimo_{env}", ["rolf.prior_reg_critic=true", *overrides] if kind == "rl" else overrides)
    pre = build_agent(cfg, "pretrain")
    rng = np.random.default_rng(0)
    scale = 40.0 if env == "maze" else 1.0
    batch = {"ob": (rng.random((16, 101, pre.ob_dim)) * scale).astype(np.float32),
             "ac": rng.uniform(-1, 1, (16, 101, pre.ac_dim)).astype(np.float32)}
    out: dict[str, float] = {}
    if kind == "pre":
        for i in range(steps):
            out.update({f"{i}/{k}": float(v) for k, v in pre.pretrain_step(batch).items()})
        out["param_abs_sum"] = float(sum(p.abs().sum() for p in pre.skill_agent.parameters()))
        return out
    for _ in range(3):
        pre.pretrain_step(batch)
    agent = build_agent(cfg, "rl")
    agent.load_pretrained(pre.state_dict())
    rl_batch = {"ob": (rng.random((32, 11, pre.ob_dim)) * scale).astype(np.float32),
                "ac": rng.uniform(-1, 1, (32, 10, 10)).astype(np.float32),
                "rew": rng.random((32, 10)).astype(np.float32), "done": np.zeros((32, 10), np.float32)}
    torch.manual_seed(1)
    for i in range(steps):
        out.update({f"{i}/{k}": float(v) for k, v in agent.rl_step(rl_batch).items()})
    out["actor_param_abs_sum"] = float(sum(p.abs().sum() for p in agent.meta_agent.actor.parameters()))
    out["model_param_abs_sum"] = float(sum(p.abs().sum() for p in agent.meta_agent.model.parameters()))
    return out


def _run(tree: Path, kind: str, env: str, overrides: str, steps: int) -> dict[str, float]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(tree), "--kind", kind, "--env", env,
           "--overrides", overrides, "--steps", str(steps)]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=tree, check=False)
    if out.returncode != 0:
        sys.exit(f"{tree} {kind} {env} {overrides!r} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def max_relative_difference(base: dict[str, float], head: dict[str, float]) -> tuple[float, str]:
    if base.keys() != head.keys():
        raise ValueError(f"the revisions log different values: only base {sorted(base.keys() - head.keys())}, "
                         f"only head {sorted(head.keys() - base.keys())}")
    rel = {k: abs(base[k] - head[k]) / max(abs(base[k]), 1e-8) for k in base}
    worst = max(rel, key=rel.get)
    return rel[worst], worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", help="git revision to compare against (required)")
    ap.add_argument("--head", default=None, help="git revision (default: the working tree)")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--rl-overrides", nargs="*", default=list(RL_OVERRIDES),
                    help='space-separated override sets for the RL runs ("" = defaults)')
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--kind", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--env", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--overrides", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.kind, args.env, args.overrides.split(), args.steps)))
        return
    if not args.base:
        sys.exit("--base: a git revision to compare against is required (e.g. --base HEAD~3)")
    cases = [("pre", "maze", ""), ("pre", "kitchen", "")] + [("rl", "maze", o) for o in args.rl_overrides]
    with tempfile.TemporaryDirectory(prefix="skimo_equiv_") as tmp:
        base_tree = checkout(args.base, Path(tmp) / "base")
        head_tree = checkout(args.head, Path(tmp) / "head") if args.head else ROOT
        try:
            for kind, env, overrides in cases:
                base = _run(base_tree, kind, env, overrides, args.steps)
                head = _run(head_tree, kind, env, overrides, args.steps)
                rel, worst = max_relative_difference(base, head)
                label = {"pre": "pre-training", "rl": "RL update"}[kind]
                print(f"{env} {label} [{overrides or 'defaults'}]: {args.steps} steps, {len(base)} values, "
                      f"max relative difference {rel:.2e} ({worst})")
        finally:
            for tree in (base_tree, head_tree):
                if tree != ROOT:
                    remove_worktree(tree)


if __name__ == "__main__":
    main()
