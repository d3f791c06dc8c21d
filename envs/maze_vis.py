"""The maze pictures the original logs (spec §1.7, §3.1.11): predicted vs ground-truth skill rollouts in
pre-training, episode trajectories, replay-buffer visitation and the value heat-map in RL. PNG files.

Every picture shows the maze (the skill rollouts zoomed in, one panel per window) in the original's orientation (`d4rl.maze_layout.to_plot_xy`: a state (x, y)
is drawn at (40.3 − y, x − 0.3)), with ticks in the agent's own coordinates (qpos; the integer position n lies in
maze cell n), a legend for every marker and line style, and labelled colour bars.

Paths are drawn where the agent really was: episodes through every env step. The env's reset noise,
(10, 24) + U(−2, 2)², puts about a quarter of the starts inside a wall block (d4rl does the same), and MuJoCo's
sphere–box contact does not push a centre that deep out (see `d4rl.maze_layout`): the agent really stays and moves
inside the block. Those stretches are highlighted and named in the legend instead of looking like a drawing error.
A jump no physics step can make (a simulation reset after an error) breaks the line.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.lines import Line2D
from matplotlib.patches import Circle, Patch, Rectangle

from d4rl.maze_layout import SIZE, draw_maze, is_wall_pos, load_layout, pos_to_cell, to_plot_xy

WALL = (0.55, 0.55, 0.55)  # neutral grey: leaves every colour to the data
WALL_HIT = "#d62728"  # outline of a wall block the agent was inside
DPI = 100
MAX_STEP = 0.5  # qpos moved in one env step above which a path is broken (physics: <= ~0.06 at |qvel| <= 5)
SMALL = 8  # legend font size


def unpreprocess_maze_xy(ob: np.ndarray) -> np.ndarray:
    """Inverse of the maze preprocessing for positions: (x/40 - 0.5) -> x."""
    return (np.asarray(ob)[..., :2] + 0.5) * 40.0


def draw_maze_axes(ax) -> None:
    """The whole maze on `ax`: walls, and ticks in the agent's coordinates (qpos; the integer position n lies in
    maze cell n) at plot x = 40.3 − y, plot y = x − 0.3 (`to_plot_xy`), with axis labels saying so."""
    draw_maze(ax, color=WALL)
    major = np.arange(0, 41, 5)
    ax.set_xticks(40.3 - major, [str(v) for v in major])
    ax.set_yticks(major - 0.3, [str(v) for v in major])
    ax.set_xticks(40.3 - np.arange(0, 41), minor=True)
    ax.set_yticks(np.arange(0, 41) - 0.3, minor=True)
    ax.set_xlim(-1, SIZE - 1)
    ax.set_ylim(-1, SIZE - 1)
    ax.tick_params(which="minor", length=2)
    ax.tick_params(which="major", length=5, labelsize=9)
    ax.set_xlabel("agent y  (qpos; maze column, y grows to the left)", fontsize=10)
    ax.set_ylabel("agent x  (qpos; maze row)", fontsize=10)


def _broken_at_jumps(xy: np.ndarray, keep: np.ndarray | None = None) -> np.ndarray:
    """Positions (T, 2) -> plot coordinates, with a NaN row (a gap in the line) between two steps that moved more
    than `MAX_STEP` and, if given, at every position where `keep` (T,) is False."""
    p = to_plot_xy(xy)
    if keep is not None:
        p[~keep] = np.nan
    if len(xy) < 2:
        return p
    jumps = np.flatnonzero(np.linalg.norm(np.diff(xy, axis=0), axis=1) > MAX_STEP) + 1
    return np.insert(p, jumps, np.nan, axis=0) if len(jumps) else p


def _wall_runs(xy: np.ndarray) -> np.ndarray:
    """Plot coordinates of the stretches of a path (T, 2) inside wall cells, NaN elsewhere (one step of context
    on each side so a stretch that ends at a wall face reaches it)."""
    inside = is_wall_pos(xy)
    keep = inside.copy()
    keep[1:] |= inside[:-1]
    keep[:-1] |= inside[1:]
    return _broken_at_jumps(xy, keep)


class MazeVisualizer:
    """Writes the maze pictures into `out_dir` as `<name>_<11-digit step>.png`.

    Args:
        out_dir: folder for the PNG files (created).
        start: centre of the task's start region (agent qpos).
        start_range: half-width of the uniform start noise.
        goal: task goal (agent qpos).
        goal_radius: success distance around the goal.
    """

    def __init__(self, out_dir: str | Path, start: tuple[float, float] = (10.0, 24.0), start_range: float = 2.0,
                 goal: tuple[float, float] = (18.0, 8.0), goal_radius: float = 2.0):
        self.out_dir = Path(out_dir)  # made with the first picture
        self.start = np.asarray(start, dtype=np.float64)
        self.start_range = float(start_range)
        self.goal = np.asarray(goal, dtype=np.float64)
        self.goal_radius = float(goal_radius)

    # ------------------------------------------------------------------ common parts
    def _save(self, fig, name: str, step: int) -> Path:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / f"{name}_{int(step):011d}.png"
        fig.savefig(path, dpi=DPI, bbox_inches="tight", pad_inches=0.15)
        plt.close(fig)
        return path

    def _figure(self, title: str, width: float = 10.0):
        """Figure with one maze panel of about 700 px and room on the right or below for a legend and a colour
        bar."""
        fig, ax = plt.subplots(figsize=(width, 8.4), layout="constrained")
        draw_maze_axes(ax)
        ax.set_title(title, fontsize=12)
        return fig, ax

    def _task(self, ax, handles: list) -> None:
        """Start region (dashed square) and goal region (circle), with their legend entries."""
        lo = to_plot_xy(self.start + np.array([-self.start_range, self.start_range]))  # lower left in the plot
        side = 2.0 * self.start_range
        ax.add_patch(Rectangle(tuple(lo), side, side, fill=False, ls="--", lw=2.0, ec="black", zorder=4))
        goal = to_plot_xy(self.goal)
        ax.add_patch(Circle(tuple(goal), self.goal_radius, fill=False, lw=2.0, ec="tab:red", zorder=4))
        ax.plot(*goal, "+", color="tab:red", ms=9, mew=1.5, zorder=4)
        s, r, g = self.start, self.start_range, self.goal
        handles += [
            Patch(facecolor="none", edgecolor="black", ls="--", lw=2.0,
                  label=f"start region ({s[0]:g}, {s[1]:g}) ± {r:g}"),
            Line2D([], [], color="tab:red", marker="o", ms=12, mfc="none", mew=2.0, ls="none",
                   label=f"goal region: within {self.goal_radius:g} of ({g[0]:g}, {g[1]:g})"),
        ]

    @staticmethod
    def _wall_handle() -> Patch:
        return Patch(facecolor=WALL, edgecolor="none", label="wall block")

    @staticmethod
    def _legend(ax, handles: list, **kwargs):
        kw = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "fontsize": SMALL, "borderaxespad": 0.0, **kwargs}
        return ax.legend(handles=handles, **kw)

    # ------------------------------------------------------------------ pictures
    def skill_rollout(self, step: int, gt: np.ndarray, pred: np.ndarray, recon: np.ndarray,
                      gt_steps: np.ndarray | None = None) -> Path:
        """Skill-level predictions of the model on held-out windows, one zoomed panel per window.

        Args:
            gt, pred, recon: preprocessed observations (N, L+1, d_o) at skill boundaries: ground truth, decoded
                open-loop latent rollout, decoded per-step reconstruction.
            gt_steps: optional raw observations of the same windows at every env step (N, L·H+1, d_o); then the
                true path is drawn through every step instead of straight lines between skill boundaries.
        """
        n = len(gt)
        cols = min(4, max(n, 1))
        rows = max(1, -(-n // cols))
        panel = 5.0 if rows == 1 else 3.9  # inches; one row alone still makes a picture over 600 px high
        fig, axes = plt.subplots(rows, cols, figsize=(max(8.0, panel * cols), panel * rows + 1.8), squeeze=False,
                                 layout="constrained")
        fig.suptitle(f"Skill dynamics model on {n} held-out windows of {gt.shape[1] - 1} skills, "
                     f"pre-training step {int(step):,}\n(zoomed; open-loop prediction rolls the model out from the "
                     "first state only)", fontsize=12)
        true_label = "true path, every env step" if gt_steps is not None else \
            "true path (straight lines between skill boundaries)"
        for i, ax in enumerate(axes.reshape(-1)):
            if i >= n:
                ax.set_axis_off()
                continue
            g, p, r = (unpreprocess_maze_xy(a[i]) for a in (gt, pred, recon))
            true_xy = np.asarray(gt_steps[i], dtype=np.float64)[:, :2] if gt_steps is not None else g
            draw_maze(ax, color=WALL)
            ax.plot(*_broken_at_jumps(true_xy).T, "-", color="black", lw=1.6, zorder=2)
            ax.plot(*to_plot_xy(g).T, "o", color="black", ms=4, zorder=3)
            ax.plot(*to_plot_xy(r).T, ":", color="tab:orange", marker="+", lw=1.4, ms=8, mew=1.6, zorder=4)
            ax.plot(*to_plot_xy(p).T, "--", color="tab:blue", marker="x", lw=1.4, ms=6, mew=1.6, zorder=5)
            ax.plot(*to_plot_xy(g[0]), "o", color="tab:green", ms=10, mec="black", mew=1.0, zorder=6)
            self._zoom(ax, np.concatenate([true_xy, g, p, r]))
            ax.set_title(f"window {i + 1}", fontsize=10)
        handles = [Line2D([], [], marker="o", color="tab:green", mec="black", ms=10, ls="none", label="window start"),
                   Line2D([], [], color="black", lw=1.6, marker="o", ms=4, label=f"{true_label}; dots: skill boundaries"),
                   Line2D([], [], color="tab:blue", ls="--", marker="x", lw=1.4, ms=6, mew=1.6,
                          label="open-loop prediction D(h_k), h_k rolled out by the skill dynamics model"),
                   Line2D([], [], color="tab:orange", ls=":", marker="+", lw=1.4, ms=8, mew=1.6,
                          label="reconstruction D(E(o_k)) of each true state at a skill boundary"),
                   self._wall_handle()]
        fig.legend(handles=handles, loc="outside lower center", ncol=2, fontsize=SMALL + 1)
        for ax in axes.reshape(-1)[:n]:  # on every panel: keeps the panels the same size
            ax.set_xlabel("agent y  (qpos, grows to the left)", fontsize=9)
            ax.set_ylabel("agent x  (qpos)", fontsize=9)
        return self._save(fig, "skill_rollout", step)

    @staticmethod
    def _zoom(ax, xy: np.ndarray, margin: float = 1.5, min_span: float = 6.0) -> None:
        """Square view around the positions (M, 2), at most the whole maze (a wild prediction runs off the panel),
        with ticks in agent coordinates."""
        xy = xy[np.isfinite(xy).all(axis=1)]
        p = np.clip(to_plot_xy(xy), -1.0, SIZE - 1.0) if len(xy) else np.array([[20.0, 20.0]])
        lo, hi = p.min(0), p.max(0)
        half = min(max((hi - lo).max() / 2.0 + margin, min_span / 2.0), SIZE / 2.0)
        cx, cy = np.clip((lo + hi) / 2.0, half - 1.0, SIZE - 1.0 - half)
        span = 2.0 * half
        tick = next((t for t in (1, 2, 5) if span / t <= 8), 10)
        ys = np.arange(np.floor(40.3 - cx - half), np.ceil(40.3 - cx + half) + 1)
        xs = np.arange(np.floor(cy + 0.3 - half), np.ceil(cy + 0.3 + half) + 1)
        ys, xs = ys[ys % tick == 0], xs[xs % tick == 0]
        ax.set_xticks(40.3 - ys, [f"{v:g}" for v in ys])
        ax.set_yticks(xs - 0.3, [f"{v:g}" for v in xs])
        ax.set_xlim(cx - half, cx + half)  # after the ticks: set_xticks widens the limits to the ticks
        ax.set_ylim(cy - half, cy + half)
        ax.tick_params(labelsize=8)

    def episode(self, step: int, name: str, trajectories: list[np.ndarray]) -> Path:
        """Raw observation sequences (T, d_o) of whole episodes, drawn through every env step."""
        fig, ax = self._figure(f"{name}: {len(trajectories)} episode(s) at step {int(step):,}", width=11.5)
        handles: list = []
        in_wall_any, successes = False, 0
        for i, traj in enumerate(trajectories):
            xy = np.asarray(traj, dtype=np.float64)[:, :2]
            color = plt.cm.tab10(i % 10)
            success = bool(np.linalg.norm(xy[-1] - self.goal) <= self.goal_radius)
            successes += success
            n_wall = int(is_wall_pos(xy).sum())
            if n_wall:
                in_wall_any = True
                ax.plot(*_wall_runs(xy).T, "-", color="magenta", lw=6, alpha=0.45, solid_capstyle="round", zorder=2)
            ax.plot(*_broken_at_jumps(xy).T, "-", color=color, lw=1.6, zorder=3)
            p = to_plot_xy(xy)
            ax.plot(*p[0], "o", color=color, ms=7, mec="black", mew=1.0, zorder=5)
            ax.plot(*p[-1], "*" if success else "X", color=color, ms=15 if success else 11, mec="black", mew=1.0,
                    zorder=5)
            if len(trajectories) <= 10:
                verdict = "reached the goal" if success else "did not reach the goal"
                walls = f",\n    {n_wall} of its states inside a wall block" if n_wall else ""
                handles.append(Line2D([], [], color=color, lw=2.0,
                                      label=f"episode {i + 1}: {len(xy) - 1} steps, {verdict}{walls}"))
        if len(trajectories) > 10:
            handles.append(Line2D([], [], color="gray", lw=2.0, label="path, one colour per episode "
                                                                     f"({successes}/{len(trajectories)} reached the goal)"))
        handles += [Line2D([], [], marker="o", color="white", mec="black", ms=8, ls="none", label="episode start"),
                    Line2D([], [], marker="*", color="white", mec="black", ms=14, ls="none",
                           label="episode end: reached the goal"),
                    Line2D([], [], marker="X", color="white", mec="black", ms=10, ls="none",
                           label="episode end: goal not reached")]
        if in_wall_any:
            handles.append(Line2D([], [], color="magenta", lw=6, alpha=0.45,
                                  label="agent inside a wall block\n(the reset noise started it there)"))
        self._task(ax, handles)
        handles.append(self._wall_handle())
        self._legend(ax, handles)
        return self._save(fig, name.replace("/", "_"), step)

    def replay(self, step: int, obs: np.ndarray) -> Path:
        """Visitation of raw observations (N, d_o): visits per maze cell on a log colour scale."""
        xy = np.asarray(obs, dtype=np.float64)[:, :2]
        cells = pos_to_cell(xy)
        ok = np.all((cells >= 0) & (cells < SIZE), axis=1)
        counts = np.zeros((SIZE, SIZE))
        np.add.at(counts, (cells[ok, 0], cells[ok, 1]), 1.0)
        walls = load_layout()
        free_visited = int(((counts > 0) & ~walls).sum())
        fig, ax = self._figure(f"Replay-buffer visitation: {len(xy):,} states at step {int(step):,}\n"
                               f"({free_visited} of {int((~walls).sum())} free cells visited)", width=8.6)
        image = np.ma.masked_equal(counts[:, ::-1], 0.0)  # same cell placement as draw_maze
        im = ax.imshow(image, origin="lower", extent=(-1, SIZE - 1, -1, SIZE - 1), cmap="viridis",
                       norm=LogNorm(vmin=1.0, vmax=max(2.0, counts.max())), interpolation="nearest", zorder=1)
        handles: list = []
        hit = np.argwhere(walls & (counts > 0))
        for w, h in hit:  # wall cells the agent was inside (reset noise): outlined so they still read as walls
            ax.add_patch(Rectangle((SIZE - 2 - h, w - 1), 1, 1, fill=False, ec=WALL_HIT, lw=1.2, hatch="///",
                                   zorder=2))
        cbar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
        cbar.set_label("visits per cell (log scale)", fontsize=10)
        self._task(ax, handles)
        handles += [self._wall_handle(), Patch(facecolor="white", edgecolor="0.6", label="free cell, never visited")]
        if len(hit):
            handles.append(Patch(facecolor="none", edgecolor=WALL_HIT, hatch="///",
                                 label="wall block the agent was inside\n(the reset noise started it there)"))
        self._legend(ax, handles, loc="upper center", bbox_to_anchor=(0.5, -0.09), ncol=2)
        return self._save(fig, "replay_vis", step)

    def value_heatmap(self, step: int, obs: np.ndarray, values: np.ndarray) -> Path:
        """Critic values `values` (N,) of raw observations (N, d_o), one dot per state."""
        xy = np.asarray(obs, dtype=np.float64)[:, :2]
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        fig, ax = self._figure(f"Critic value of {len(xy):,} replayed states at step {int(step):,}", width=8.6)
        p = to_plot_xy(xy)
        sc = ax.scatter(p[:, 0], p[:, 1], c=values, s=9, cmap="viridis", edgecolors="none", zorder=2)
        cbar = fig.colorbar(sc, ax=ax, fraction=0.046, pad=0.03)
        cbar.set_label("Q(s, π(s))", fontsize=10)
        handles: list = [Line2D([], [], marker="o", ls="none", color="tab:olive", ms=4,
                                label="replayed state, coloured by its value")]
        inside = is_wall_pos(xy)
        if inside.any():
            ax.scatter(p[inside, 0], p[inside, 1], s=22, facecolors="none", edgecolors=WALL_HIT, lw=0.8, zorder=3)
            handles.append(Line2D([], [], marker="o", ls="none", mfc="none", mec=WALL_HIT, ms=6,
                                  label="state inside a wall block\n(the reset noise started it there)"))
        self._task(ax, handles)
        handles.append(self._wall_handle())
        self._legend(ax, handles, loc="upper center", bbox_to_anchor=(0.5, -0.09), ncol=2)
        return self._save(fig, "value_heatmap", step)
