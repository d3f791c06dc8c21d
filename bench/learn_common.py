"""Shared pieces of the learning benchmarks: reading a run's metrics, loading a pre-trained agent, the
pre-training loss panel/summary (`learn_maze.py`), and the whole generate -> pre-train -> prediction error ->
RL-per-task benchmark of the multi-task envs (`SkillBench`, used by `learn_kitchen.py` and `learn_calvin.py`)."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rolf.utils.checkpoint import load_checkpoint
from skimo_agent import SkiMoAgent, build_agent

PRETRAIN_KEYS = ("ll_actor_loss", "consistency_loss", "hl_actor_loss", "hl_recon_loss", "vae_kl_div")
PRETRAIN_EVAL_KEYS = ("ll_actor_loss", "consistency_loss")


def read_metrics(run_dir: Path) -> list[dict]:
    """A run's metrics.jsonl as a list of rows ([] if it logged nothing yet)."""
    path = run_dir / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def series(rows: list[dict], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of every row that logged `key` as a float."""
    pts = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), float)]
    return [p[0] for p in pts], [p[1] for p in pts]


def pretrain_series(rows: list[dict]) -> dict[str, dict]:
    """{"pretrain": {loss: (steps, values)}, "pretrain_eval": {...}} from a pre-training run's rows."""
    return {"pretrain": {k: series(rows, f"pretrain/{k}") for k in PRETRAIN_KEYS},
            "pretrain_eval": {k: series(rows, f"pretrain_eval/{k}") for k in PRETRAIN_EVAL_KEYS}}


def load_agent(cfg, ckpt: Path, phase: str) -> SkiMoAgent:
    """A SkiMo agent built from `cfg` with the pre-trained weights of `ckpt`."""
    agent = build_agent(cfg, phase)
    agent.load_pretrained(load_checkpoint(ckpt)["agent"])
    return agent


def plot_pretrain_losses(ax, result: dict) -> None:
    for key, (steps, vals) in result["pretrain"].items():
        if vals:
            ax.plot(steps, vals, label=key)
    ax.set_yscale("symlog", linthresh=1e-2)
    ax.set_xlabel("pre-training step")
    ax.set_title("pre-training losses")
    ax.legend(fontsize=7)


def print_pretrain_summary(result: dict) -> None:
    for k, v in result["timings"].items():
        print(f"{k} {v:.1f}")
    for k, (steps, vals) in result["pretrain"].items():
        if vals:
            print(f"pretrain/{k} first {vals[0]:.4g} last {vals[-1]:.4g}")


# ---------------------------------------------------------------- multi-task skill benchmark (kitchen, CALVIN)
@dataclass(frozen=True)
class SkillBench:
    """What differs between the kitchen and CALVIN learning benchmarks."""

    env: str  # env id and file prefix: "kitchen"
    config: str  # run config: "skimo_kitchen"
    generate: Callable[[str, int, int], dict]  # (path, size, seed) -> generator stats
    default_size: int  # episodes / chunks generated when the data file does not exist
    parts: dict[str, slice]  # state groups for the prediction error, e.g. {"robot": slice(0, 9), ...}
    tasks: tuple[str, ...] = ("default",)  # RL runs: values of env.task ("default": no override)
    n_tasks: int = 4  # y-axis limit: subtasks per episode
    reward_per_task: float = 1.0  # env reward of one completed subtask
    skills_ahead: int = 10  # prediction horizon in skills
    rl_overrides: tuple[str, ...] = field(default=())


def rms(x: np.ndarray) -> np.ndarray:
    """Root mean square over the last axis, then mean over the batch: (B, K, d) -> (K,)."""
    return np.sqrt((x ** 2).mean(-1)).mean(0)


def prediction_error(agent: SkiMoAgent, data_path: str, spec, parts: dict[str, slice], skills_ahead: int,
                     n_batches: int = 8) -> dict[str, list[float]]:
    """Held-out (last 1 % of the file) open-loop prediction error per skill step k = 0..K: per state group, the RMS
    error of the decoded latent rollout (`model_*`), of "the state stays at o_0" (`no_motion_*`) and of the decoder
    at the true latents (`reconstruction_*`); plus the latent MSE of the rollout and of "h stays h_0" against the
    target encoder (what the consistency loss trains)."""
    from skill_trainer import dataset_buffers

    _, val = dataset_buffers(data_path, spec, 0.99, np.random.default_rng(123))
    acc: dict[str, list] = {}

    def add(key: str, value: np.ndarray) -> None:
        acc.setdefault(key, []).append(value)

    for _ in range(n_batches):
        pred = agent.open_loop_prediction(val.sample(64, skills_ahead * agent.c.skill_horizon + 1))
        gt, p, r = pred["gt"], pred["pred"], pred["recon"]  # (B, K+1, d_o)
        for part, sl in parts.items():
            add(f"model_{part}", rms(p[..., sl] - gt[..., sl]))
            add(f"no_motion_{part}", rms(gt[:, :1, sl] - gt[..., sl]))
            add(f"reconstruction_{part}", rms(r[..., sl] - gt[..., sl]))
        add("latent_model", ((pred["h_pred"] - pred["h_target"]) ** 2).mean(-1).mean(0))
        add("latent_no_motion", ((pred["h_target"][:, :1] - pred["h_target"]) ** 2).mean(-1).mean(0))
    return {k: np.mean(v, 0).tolist() for k, v in acc.items()}


def run_skill_bench(b: SkillBench, root: Path, argv: list[str] | None = None) -> dict:
    """generate (if needed) -> pre-train -> prediction error -> one RL run per task -> <out>/learn_<env>.json/.png."""
    import run
    from envs import get_env_spec

    ap = argparse.ArgumentParser(prog=f"bench/learn_{b.env}.py")
    ap.add_argument("--out", default=str(root / "bench" / "results" / f"learn_{b.env}"))
    ap.add_argument("--data", default=str(root / "data" / f"{b.env}.gz"))
    ap.add_argument("--data-size", type=int, default=b.default_size, help="generated if --data does not exist")
    ap.add_argument("--pretrain-steps", type=int, default=1500)
    ap.add_argument("--pretrain-batch", type=int, default=256)
    ap.add_argument("--rl-steps", type=int, default=30_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--prefix", default="learn")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--analyse-only", action="store_true", help="reuse the runs already in --out; redo the analysis")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log_root = out / "log"
    json_path = out / f"learn_{b.env}.json"
    timings: dict[str, float] = {}
    common = [f"log_root_dir={log_root}", f"seed={args.seed}", "+preset=cpu_quick",
              *([f"num_threads={args.threads}"] if args.threads else [])]
    compose = lambda extra: run.compose_config(b.config, common + extra)

    data_stats = None
    if not args.analyse_only and not Path(args.data).exists():
        data_stats = b.generate(args.data, args.data_size, args.seed)
        timings["data_s"] = data_stats["seconds"]
    pre_cfg = compose([f"run_prefix={args.prefix}", f"rolf.pretrain.data_path={args.data}",
                       f"rolf.pretrain.max_global_step={args.pretrain_steps}", "rolf.pretrain.train_iter=1",
                       f"rolf.pretrain.batch_size={args.pretrain_batch}", f"rolf.pretrain.ckpt_every={args.pretrain_steps}"])
    if not args.analyse_only:
        t = time.time()
        run.main(pre_cfg)
        timings["pretrain_s"] = time.time() - t
    pre_dir = log_root / f"{b.env}.skimo.pretrain.{args.prefix}.{args.seed}"
    ckpt = pre_dir / "ckpt" / f"{b.env}_ckpt_{args.pretrain_steps:011d}.pt"
    pred_err = prediction_error(load_agent(pre_cfg, ckpt, "pretrain"), args.data, get_env_spec(b.env), b.parts,
                                b.skills_ahead)

    rl_rows = {}
    for task in b.tasks:
        prefix = f"{args.prefix}_{task}"
        rl_cfg = compose([f"run_prefix={prefix}", "rolf.phase=rl", f"rolf.pretrain_ckpt_path={ckpt}",
                          f"rolf.max_global_step={args.rl_steps}", "rolf.warm_up_step=5000",
                          f"rolf.horizon_step={args.rl_steps}", f"rolf.std_step={args.rl_steps}",
                          f"rolf.evaluate_every={max(args.rl_steps // 6, 2500)}", "rolf.log_every=2500",
                          *b.rl_overrides, *([] if task == "default" else [f"env.task={task}"])])
        if not args.analyse_only:
            t = time.time()
            run.main(rl_cfg)
            timings[f"rl_{task}_s"] = time.time() - t
        rl_rows[task] = read_metrics(log_root / f"{b.env}.skimo.rl.{prefix}.{args.seed}")
    if args.analyse_only and json_path.exists():
        previous = json.loads(json_path.read_text())
        timings, data_stats = previous["timings"], previous["data"]

    def tasks_done(rows: list[dict], key: str) -> tuple[list[int], list[float]]:
        steps, vals = series(rows, key)
        return steps, [v / b.reward_per_task for v in vals]

    result = {
        "timings": timings,
        "data": data_stats,
        **pretrain_series(read_metrics(pre_dir)),
        "prediction_error": pred_err,
        "rl_subtasks": {task: {key: tasks_done(rows, f"{key.replace('_mean', '')}/rew")
                               for key in ("train_ep_mean", "train_ep_max", "test_ep")}
                        for task, rows in rl_rows.items()},
    }
    json_path.write_text(json.dumps(result, indent=1))
    plot_skill_bench(b, result, out / f"learn_{b.env}.png")
    summarize_skill_bench(result)
    return result


def plot_skill_bench(b: SkillBench, result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2))
    plot_pretrain_losses(axes[0], result)
    ax = axes[1]
    err = result["prediction_error"]
    for i, part in enumerate(b.parts):
        ax.plot(err[f"model_{part}"], "o-", color=f"C{i}", label=f"{part}: skill dynamics model (decoded)")
        ax.plot(err[f"no_motion_{part}"], "s--", color=f"C{i}", label=f"{part}: predict no motion")
    ax.set_xlabel("skills ahead (x10 env steps)")
    ax.set_ylabel("RMS state error")
    ax.set_title("held-out multi-step prediction error")
    ax.legend(fontsize=7)
    ax = axes[2]
    for i, (task, curves) in enumerate(result["rl_subtasks"].items()):
        for key, style in (("train_ep_mean", "-"), ("test_ep", "o--")):
            steps, vals = curves[key]
            if vals:
                ax.plot(steps, vals, style, color=f"C{i}", label=f"{task}: {key}")
    ax.set_ylim(-0.1, b.n_tasks + 0.1)
    ax.set_xlabel("env steps")
    ax.set_ylabel("subtasks completed per episode")
    ax.set_title(f"RL on {b.env}: " + ", ".join(b.tasks))
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def summarize_skill_bench(result: dict) -> None:
    print_pretrain_summary(result)
    if result.get("data"):
        d = result["data"]
        print("data " + " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in d.items()))
    err = result["prediction_error"]
    n = len(err["latent_model"])
    for k in sorted({1, min(5, n - 1), n - 1}):
        print(f"pred_err_k{k} " + " ".join(f"{name} {vals[k]:.4g}" for name, vals in err.items()))
    for task, curves in result["rl_subtasks"].items():
        for key, (steps, vals) in curves.items():
            if vals:
                print(f"rl_{task}_{key} final {vals[-1]:.3f} max {max(vals):.3f} mean {np.mean(vals):.3f} "
                      f"(at {steps[-1]} env steps, {len(vals)} points)")
