"""The maze pictures the original logs (spec §1.7, §3.1.11): predicted vs ground-truth skill rollouts in
pre-training, episode trajectories, replay-buffer visitation and the value heat-map in RL. PNG files."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from d4rl.maze_layout import draw_maze, to_plot_xy


def unpreprocess_maze_xy(ob: np.ndarray) -> np.ndarray:
    """Inverse of the maze preprocessing for positions: (x/40 - 0.5) -> x."""
    return (np.asarray(ob)[..., :2] + 0.5) * 40.0


class MazeVisualizer:
    def __init__(self, out_dir: str | Path):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)

    def _save(self, fig, name: str, step: int) -> Path:
        path = self.out_dir / f"{name}_{int(step):011d}.png"
        fig.savefig(path, dpi=80, bbox_inches="tight")
        plt.close(fig)
        return path

    def _axes(self, n: int = 1, title: str = ""):
        fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 4.2), squeeze=False)
        for ax in axes[0]:
            draw_maze(ax)
            ax.set_xticks([])
            ax.set_yticks([])
        fig.suptitle(title)
        return fig, axes[0]

    def skill_rollout(self, step: int, gt: np.ndarray, pred: np.ndarray, recon: np.ndarray) -> Path:
        """gt, pred, recon: preprocessed observations (N, L+1, d_o) at skill boundaries: ground truth, decoded
        open-loop latent rollout, decoded per-step reconstruction."""
        fig, axes = self._axes(2, f"pre-training step {step}: skill-level predictions")
        for i in range(len(gt)):
            color = plt.cm.tab10(i % 10)
            g, p, r = (to_plot_xy(unpreprocess_maze_xy(a[i])) for a in (gt, pred, recon))
            axes[0].plot(*g.T, "-o", color=color, ms=3, lw=1.5)
            axes[0].plot(*p.T, "--x", color=color, ms=3, lw=1)
            axes[1].plot(*g.T, "-o", color=color, ms=3, lw=1.5)
            axes[1].plot(*r.T, ":+", color=color, ms=3, lw=1)
        axes[0].set_title("skill_rollout (solid: true, dashed: open-loop)")
        axes[1].set_title("model_prediction (dotted: reconstruction)")
        return self._save(fig, "skill_rollout", step)

    def episode(self, step: int, name: str, trajectories: list[np.ndarray]) -> Path:
        """Raw observation sequences (T, d_o) of whole episodes."""
        fig, (ax,) = self._axes(1, f"{name} step {step}")
        for i, traj in enumerate(trajectories):
            xy = to_plot_xy(np.asarray(traj)[:, :2])
            ax.plot(*xy.T, "-", color=plt.cm.tab10(i % 10), lw=1.2)
            ax.plot(*xy[0], "go", ms=6)
            ax.plot(*xy[-1], "rx", ms=6)
        self._mark_task(ax)
        return self._save(fig, name.replace("/", "_"), step)

    def replay(self, step: int, obs: np.ndarray) -> Path:
        fig, (ax,) = self._axes(1, f"replay visitation, {len(obs)} states")
        xy = to_plot_xy(np.asarray(obs)[:, :2])
        ax.hist2d(xy[:, 0], xy[:, 1], bins=80, range=[[0, 40], [0, 40]], cmap="Blues", cmin=1, alpha=0.8)
        self._mark_task(ax)
        return self._save(fig, "replay_vis", step)

    def value_heatmap(self, step: int, obs: np.ndarray, values: np.ndarray) -> Path:
        fig, (ax,) = self._axes(1, "Q(s, pi(s)) over replayed states")
        xy = to_plot_xy(np.asarray(obs)[:, :2])
        sc = ax.scatter(xy[:, 0], xy[:, 1], c=values, s=4, cmap="viridis")
        fig.colorbar(sc, ax=ax, fraction=0.046)
        self._mark_task(ax)
        return self._save(fig, "value_heatmap", step)

    def _mark_task(self, ax) -> None:
        start, goal = to_plot_xy(np.array([[10.0, 24.0], [18.0, 8.0]]))
        ax.add_patch(plt.Circle(tuple(goal), 2.0, color="red", fill=False, lw=1.5))
        ax.plot(*start, "g^", ms=7)
