"""The maze pictures: size, legends, labelled colour bars, and paths drawn where the agent really was."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.colors import LogNorm
from PIL import Image

from d4rl.maze_layout import is_wall_pos
from d4rl.point_maze import MazeEnv
from envs.maze import preprocess_maze_ob
from envs.maze_vis import MazeVisualizer, _broken_at_jumps, draw_maze_axes, to_plot_xy

MIN_PX = 600


class SpyVisualizer(MazeVisualizer):
    """Keeps every saved figure (closing a figure leaves its artists readable)."""

    def __init__(self, out_dir):
        super().__init__(out_dir)
        self.figs = {}

    def _save(self, fig, name, step):
        self.figs[name] = fig
        return super()._save(fig, name, step)


@pytest.fixture(scope="module")
def episodes() -> list[np.ndarray]:
    """Real env episodes, 300 steps each, random actions held for 10 steps (as skills). Seed 4's reset noise puts
    the agent inside a wall block."""
    env, rng, out = MazeEnv(max_episode_steps=300), np.random.default_rng(0), []
    for seed in (0, 4, 7):
        ob, _ = env.reset(seed=seed)
        obs = [ob]
        for t in range(300):
            if t % 10 == 0:
                action = rng.uniform(-1.0, 1.0, size=2)
            ob, _, terminated, truncated, _ = env.step(action)
            obs.append(ob)
            if terminated or truncated:
                break
        out.append(np.asarray(obs))
    return out


def colorbars(fig) -> list:
    return [a.colorbar for ax in fig.axes for a in ax.get_children() if getattr(a, "colorbar", None) is not None]


def legend_labels(fig) -> list[str]:
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None] + list(fig.legends)
    return [t.get_text() for leg in legends for t in leg.get_texts()]


def check_png(path, name: str, step: int) -> None:
    assert path.name == f"{name}_{step:011d}.png" and path.exists()
    width, height = Image.open(path).size
    assert width >= MIN_PX and height >= MIN_PX, (path.name, width, height)


def test_episode_picture(tmp_path, episodes):
    vis = SpyVisualizer(tmp_path)
    check_png(vis.episode(12, "test_ep", episodes), "test_ep", 12)
    labels = " | ".join(legend_labels(vis.figs["test_ep"]))
    for words in ("episode start", "reached the goal", "goal not reached", "start region", "goal region",
                  "wall block", "inside a wall block"):  # seed 4 starts inside a wall: the legend says so
        assert words in labels, words
    check_png(vis.episode(3, "pretrain/episode", episodes[:1]), "pretrain_episode", 3)


def test_replay_picture(tmp_path, episodes):
    vis = SpyVisualizer(tmp_path)
    check_png(vis.replay(5, np.concatenate(episodes)), "replay_vis", 5)
    fig = vis.figs["replay_vis"]
    (cbar,) = colorbars(fig)
    assert cbar.ax.get_ylabel() == "visits per cell (log scale)" and isinstance(cbar.norm, LogNorm)
    assert "start region" in " ".join(legend_labels(fig))
    check_png(vis.replay(6, episodes[0][:1]), "replay_vis", 6)  # a single state: a valid log scale still


def test_value_heatmap_picture(tmp_path, episodes):
    vis = SpyVisualizer(tmp_path)
    obs = np.concatenate(episodes)
    obs = obs[np.linspace(0, len(obs) - 1, 4000).astype(int)]  # the trainer's sample size
    check_png(vis.value_heatmap(7, obs, -np.linalg.norm(obs[:, :2] - [18.0, 8.0], axis=1)), "value_heatmap", 7)
    fig = vis.figs["value_heatmap"]
    (cbar,) = colorbars(fig)
    assert cbar.ax.get_ylabel() == "Q(s, π(s))"
    assert "goal region" in " ".join(legend_labels(fig))


@pytest.mark.parametrize("with_steps", [False, True])
def test_skill_rollout_picture(tmp_path, episodes, with_steps):
    vis = SpyVisualizer(tmp_path)
    windows = np.stack([e[:101] for e in episodes])  # (N, L·H + 1, 4) raw, H = 10
    gt = preprocess_maze_ob(windows[:, ::10])
    pred = gt + 0.01 * np.random.default_rng(0).normal(size=gt.shape)
    path = vis.skill_rollout(9, gt, pred, gt.copy(), **({"gt_steps": windows} if with_steps else {}))
    check_png(path, "skill_rollout", 9)
    labels = " | ".join(legend_labels(vis.figs["skill_rollout"]))
    for words in ("window start", "true path", "open-loop prediction", "reconstruction"):
        assert words in labels, words


def test_drawn_paths_stay_out_of_drawn_walls(episodes):
    """Every env step of real episodes, mapped by `to_plot_xy` onto the wall image `draw_maze` really draws, lands
    in a drawn wall cell exactly where the env put the agent inside a wall; the straight segments between
    consecutive steps (the drawn line) cross no drawn wall outside those stretches."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    draw_maze_axes(ax)
    (image,) = ax.images
    walls_drawn = np.asarray(image.get_array()) > 0.5  # (rows, cols)
    left, right, bottom, top = image.get_extent()
    plt.close(fig)

    def drawn_wall(p: np.ndarray) -> np.ndarray:  # plot coordinates (..., 2) -> on a drawn wall pixel
        rows, cols = walls_drawn.shape
        c = np.floor((p[..., 0] - left) / (right - left) * cols).astype(int)
        r = np.floor((p[..., 1] - bottom) / (top - bottom) * rows).astype(int)
        return walls_drawn[np.clip(r, 0, rows - 1), np.clip(c, 0, cols - 1)]

    in_wall_total = 0
    for obs in episodes:
        xy = obs[:, :2].astype(np.float64)
        inside = is_wall_pos(xy)
        in_wall_total += int(inside.sum())
        np.testing.assert_array_equal(drawn_wall(to_plot_xy(xy)), inside)
        t = np.linspace(0.0, 1.0, 21)[None, :, None]
        segments = xy[:-1, None] + t * (xy[1:] - xy[:-1])[:, None]  # (T-1, 21, 2)
        clean = ~(inside[:-1] | inside[1:])
        assert not drawn_wall(to_plot_xy(segments[clean])).any()
    assert in_wall_total > 0  # the exception is exercised: the env started the agent inside a wall


def test_path_breaks_at_impossible_jumps():
    xy = np.array([[10.0, 24.0], [10.05, 24.0], [0.0, 0.0], [0.0, 0.05]])  # a simulation reset to the origin
    p = _broken_at_jumps(xy)
    assert p.shape == (5, 2) and np.isnan(p[2]).all()
    np.testing.assert_allclose(p[[0, 1, 3, 4]], to_plot_xy(xy))
