"""Learning evidence for SkiMo on the maze at CPU scale (<= 60 min on 2 cores):
data generation -> pre-training -> held-out multi-step prediction error -> RL with CEM -> JSON + PNG.

    python bench/learn_maze.py [--out bench/results/learn_maze] [--pretrain-steps 3000] [--rl-steps 200000]

Writes <out>/learn_maze.json and <out>/learn_maze.png (pre-training losses; skill-model prediction error vs a
"predict no motion" baseline; RL success vs env steps) and <out>/prior_skills.png (decoded skills of the prior).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

import run
from bench.learn_common import load_agent, plot_pretrain_losses, pretrain_series, print_pretrain_summary, read_metrics, series
from d4rl.maze_layout import to_plot_xy
from envs import get_env_spec
from envs.maze_vis import draw_maze_axes, unpreprocess_maze_xy
from skill_trainer import dataset_buffers
from skimo_agent import SkiMoAgent


def compose_cfg(overrides: list[str]):
    return run.compose_config("skimo_maze", overrides)


def prediction_error(agent: SkiMoAgent, data_path: str, n_batches: int = 8) -> dict[str, list[float]]:
    """Held-out (last 1 % of the file) open-loop prediction error per skill step k = 0..L.

    - `model` / `no_motion`: decoded position error (maze cells) of the open-loop latent rollout vs the true
      positions, and of "the agent stays at o_0";
    - `decoded_no_motion`: "no motion" passed through the same decoder (decode(E(o_0)) for every k), which carries
      the decoder's own resolution (its std floor 0.1 = 4 cells in preprocessed units) like the model does;
    - `latent_model` / `latent_no_motion`: mean squared latent error vs the target encoder's E(o_k) (what the
      consistency loss trains), for the rollout and for "h stays h_0";
    - `reconstruction`: the decoder's error at the true latents (its resolution).
    """
    spec = get_env_spec("maze")
    _, val = dataset_buffers(data_path, spec, 0.99, np.random.default_rng(123))
    keys = ("model", "no_motion", "decoded_no_motion", "reconstruction", "latent_model", "latent_no_motion")
    acc: dict[str, list] = {k: [] for k in keys}
    for _ in range(n_batches):
        pred = agent.open_loop_prediction(val.sample(64, agent.c.n_skill * agent.c.skill_horizon + 1))
        gt, p, r = (unpreprocess_maze_xy(pred[k]) for k in ("gt", "pred", "recon"))  # (B, L+1, 2) maze units
        acc["model"].append(np.linalg.norm(p - gt, axis=-1).mean(0))
        acc["no_motion"].append(np.linalg.norm(gt[:, :1] - gt, axis=-1).mean(0))
        acc["decoded_no_motion"].append(np.linalg.norm(r[:, :1] - gt, axis=-1).mean(0))
        acc["reconstruction"].append(np.linalg.norm(r - gt, axis=-1).mean(0))  # decoder at the true latents
        acc["latent_model"].append(((pred["h_pred"] - pred["h_target"]) ** 2).mean(-1).mean(0))
        acc["latent_no_motion"].append(((pred["h_target"][:, :1] - pred["h_target"]) ** 2).mean(-1).mean(0))
    return {k: np.mean(v, 0).tolist() for k, v in acc.items()}


def prior_skill_rollouts(agent: SkiMoAgent, path: Path, n: int = 10, skills: int = 40) -> float:
    """Execute skills sampled from the pre-trained prior, starting from random free cells (the task start and n-1
    others); plot; return the mean path length in maze cells."""
    from d4rl.maze_layout import free_cells
    from envs.maze import make_maze_env

    env = make_maze_env(seed=0, max_episode_steps=skills * agent.c.skill_horizon)
    cells = free_cells()
    starts = [None] + [cells[j] for j in np.random.default_rng(0).choice(len(cells), n - 1, replace=False)]
    fig, ax = plt.subplots(figsize=(8, 8))
    draw_maze_axes(ax)
    moved = []
    for i, start in enumerate(starts):
        ob, _ = env.reset(seed=i)
        if start is not None:
            ob = env.set_state(np.asarray(start, np.float64), np.zeros(2))
        traj = [ob]
        for _ in range(skills):
            z, _ = agent.act_meta(ob, None, is_train=True, warm_up=True)  # a skill sampled from the prior
            for _ in range(agent.c.skill_horizon):
                ob, _, term, trunc, _ = env.step(agent.act_skill(ob, z))
                traj.append(ob)
                if term or trunc:
                    break
            if term or trunc:
                break
        traj = np.asarray(traj)
        moved.append(float(np.linalg.norm(np.diff(traj[:, :2], axis=0), axis=1).sum()))
        xy = to_plot_xy(traj[:, :2])
        ax.plot(*xy.T, lw=1.2, color=plt.cm.tab10(i))
        ax.plot(*xy[0], "o", color=plt.cm.tab10(i), ms=7, mec="black")
    ax.plot([], [], "o", color="white", mec="black", ms=7, label=f"start (the task start, then {n - 1} random free cells)")
    ax.plot([], [], "-", color="gray", lw=1.2, label="path through every env step, one colour per start")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), fontsize=9)
    ax.set_title(f"skills sampled from the pre-trained prior ({skills} skills = {skills * agent.c.skill_horizon} steps each)")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return float(np.mean(moved))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "learn_maze"))
    ap.add_argument("--data", default=str(ROOT / "data" / "maze.gz"))
    ap.add_argument("--pretrain-steps", type=int, default=3000)
    ap.add_argument("--pretrain-batch", type=int, default=256)
    ap.add_argument("--rl-steps", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--prefix", default="learn")
    ap.add_argument("--analyse-only", action="store_true", help="reuse the runs already in --out; redo the analysis")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log_root = out / "log"
    timings = {}
    common = [f"log_root_dir={log_root}", f"run_prefix={args.prefix}", f"seed={args.seed}", "+preset=cpu_quick"]

    pre_cfg = compose_cfg(common + [f"rolf.pretrain.data_path={args.data}", f"rolf.pretrain.max_global_step={args.pretrain_steps}",
                                    "rolf.pretrain.train_iter=1", f"rolf.pretrain.batch_size={args.pretrain_batch}",
                                    f"rolf.pretrain.ckpt_every={args.pretrain_steps}"])
    if not args.analyse_only:
        t = time.time()
        run.main(pre_cfg)
        timings["data_and_pretrain_s"] = time.time() - t
    pre_dir = log_root / f"maze.skimo.pretrain.{args.prefix}.{args.seed}"
    ckpt = pre_dir / "ckpt" / f"maze_ckpt_{args.pretrain_steps:011d}.pt"

    agent = load_agent(pre_cfg, ckpt, "pretrain")
    pred_err = prediction_error(agent, args.data)
    moved = prior_skill_rollouts(agent, out / "prior_skills.png")

    rl_cfg = compose_cfg(common + ["rolf.phase=rl", f"rolf.pretrain_ckpt_path={ckpt}", f"rolf.max_global_step={args.rl_steps}",
                                   f"rolf.horizon_step={args.rl_steps}", f"rolf.std_step={args.rl_steps}",
                                   f"rolf.evaluate_every={max(args.rl_steps // 8, 5000)}", "rolf.log_every=5000"])
    if not args.analyse_only:
        t = time.time()
        run.main(rl_cfg)
        timings["rl_s"] = time.time() - t
    else:
        timings = json.loads((out / "learn_maze.json").read_text())["timings"]
    rl_rows = read_metrics(log_root / f"maze.skimo.rl.{args.prefix}.{args.seed}")
    pre_rows = read_metrics(pre_dir)

    result = {
        "timings": timings,
        **pretrain_series(pre_rows),
        "prediction_error": pred_err,
        "prior_skills_mean_path_length": moved,
        "rl_success": {"train_ep_mean": series(rl_rows, "train_ep/rew"), "train_ep_max": series(rl_rows, "train_ep_max/rew"),
                       "test_ep": series(rl_rows, "test_ep/rew")},
    }
    for key in ("train_ep_mean", "train_ep_max", "test_ep"):
        steps, vals = result["rl_success"][key]
        result["rl_success"][key] = [steps, [v / 100.0 for v in vals]]  # reward 100 on success -> success rate
    (out / "learn_maze.json").write_text(json.dumps(result, indent=1))
    plot(result, out / "learn_maze.png")
    summarize(result)


def plot(result: dict, path: Path) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2))
    plot_pretrain_losses(axes[0], result)
    ax = axes[1]
    err = result["prediction_error"]
    ax.plot(err["model"], "o-", label="skill dynamics model (open loop, decoded)")
    ax.plot(err["no_motion"], "s--", label="predict no motion")
    ax.plot(err["decoded_no_motion"], "^:", label="no motion, through the decoder")
    ax.set_xlabel("skills ahead (x10 env steps)")
    ax.set_ylabel("position error (maze cells)")
    ax.set_title("held-out multi-step prediction error")
    ax.legend(fontsize=8)
    ax = axes[2]
    for key, style in (("train_ep_mean", "-"), ("train_ep_max", ":"), ("test_ep", "o--")):
        steps, vals = result["rl_success"][key]
        if vals:
            ax.plot(steps, vals, style, label=key)
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("env steps")
    ax.set_title("RL success rate")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def summarize(result: dict) -> None:
    print_pretrain_summary(result)
    err = result["prediction_error"]
    for k in (1, 5, len(err["model"]) - 1):
        print(f"pred_err_k{k} model {err['model'][k]:.3f} no_motion {err['no_motion'][k]:.3f} "
              f"decoded_no_motion {err['decoded_no_motion'][k]:.3f} reconstruction {err['reconstruction'][k]:.3f} latent_mse model {err['latent_model'][k]:.4g} "
              f"no_motion {err['latent_no_motion'][k]:.4g}")
    print(f"prior_skills_mean_path_length {result['prior_skills_mean_path_length']:.2f}")
    for key, (steps, vals) in result["rl_success"].items():
        if vals:
            print(f"rl_{key} final {vals[-1]:.3f} max {max(vals):.3f} (at {steps[-1]} env steps, {len(vals)} points)")


if __name__ == "__main__":
    main()
