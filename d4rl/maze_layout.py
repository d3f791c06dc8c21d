"""The `randMaze0S40` layout (42×42 with the wall border) and the coordinate conventions around it.

Conventions (inherited from d4rl's point maze):
- `walls[w, h]` is the cell in row `w`, column `h` of the layout file; `True` = wall.
- The wall box of cell (w, h) is centred at world (w + 1, h + 1) with half-size 0.5; the particle body sits at
  world (1.2, 1.2) + qpos. So the agent's qpos (x, y) lies in cell (floor(x + 0.7), floor(y + 0.7)): cell (w, h)
  spans qpos [w − 0.7, w + 0.3] × [h − 0.7, h + 0.3], and qpos (w, h) is 0.2 off that cell's centre.
- Plots: the original draws a 40×40 layout image with extent (0, 40, 0, 40) and plots a state (x, y) at
  (40 − y, x). That image is off the physics by the 0.2-cell offset plus its own half-cell rounding, so here the
  same orientation is kept but the shift is made exact: (x, y) -> (40.3 − y, x − 0.3). The inner 40×40 cells then
  fill exactly (0, 40, 0, 40), and a drawn position lies in a wall cell only where the agent really is inside a
  wall box: the task's reset noise, (10, 24) + U(−2, 2)², starts about a quarter of the episodes there (as d4rl).
  A sphere centre more than 0.2 (the box's half-height) inside a box gets its contact normal along z, which no joint
  can move, and one near a face shared with the next wall box is pushed into that box; so the agent stays, and
  moves, inside wall blocks (`envs.maze_vis` marks those stretches).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

LAYOUT_PATH = Path(__file__).resolve().parent / "assets" / "maze_randMaze0S40.txt"
SIZE = 42  # cells per side, wall border included
QPOS_TO_CELL = 0.7  # cell = floor(qpos + 0.7)
WALL_COLOR = (0.7, 0.5, 0.3)


@lru_cache(maxsize=1)
def layout_string() -> str:
    """The layout file as 42 lines of `#` (wall), `O` (free) and `G` (free, marker only)."""
    return LAYOUT_PATH.read_text()


@lru_cache(maxsize=1)
def _walls() -> np.ndarray:
    rows = layout_string().split()
    if len(rows) != SIZE or any(len(r) != SIZE for r in rows) or set("".join(rows)) - set("#OG"):
        raise ValueError(f"{LAYOUT_PATH}: expected {SIZE} rows of {SIZE} characters from '#OG'")
    walls = np.array([[c == "#" for c in r] for r in rows], dtype=bool)
    walls.setflags(write=False)
    return walls


def load_layout() -> np.ndarray:
    """Returns:
        Read-only bool array (42, 42), True = wall, indexed [w, h] (cached).
    """
    return _walls()


@lru_cache(maxsize=1)
def _free_cells() -> np.ndarray:
    cells = np.argwhere(~_walls()).astype(np.int64)  # (N, 2), row-major order
    cells.setflags(write=False)
    return cells


def free_cells() -> np.ndarray:
    """Returns:
        Read-only int array (N, 2) of the free cells (w, h), row-major order.
    """
    return _free_cells()


def pos_to_cell(xy: np.ndarray) -> np.ndarray:
    """Layout cell containing each agent position.

    Args:
        xy: agent positions (qpos), shape (..., 2).
    Returns:
        int array (..., 2) of cell indices (w, h).
    """
    return np.floor(np.asarray(xy, dtype=np.float64) + QPOS_TO_CELL).astype(np.int64)


def is_wall_pos(xy: np.ndarray) -> np.ndarray:
    """True where an agent position (..., 2) lies inside a wall cell (or outside the layout)."""
    cells = pos_to_cell(xy)
    inside = np.all((cells >= 0) & (cells < SIZE), axis=-1)
    clipped = np.clip(cells, 0, SIZE - 1)
    return ~inside | _walls()[clipped[..., 0], clipped[..., 1]]


def to_plot_xy(xy: np.ndarray) -> np.ndarray:
    """Agent positions (..., 2) -> plot coordinates (..., 2) matching `draw_maze`: (40.3 − y, x − 0.3)."""
    xy = np.asarray(xy, dtype=np.float64)
    return np.stack([40.0 + (1.0 - QPOS_TO_CELL) - xy[..., 1], xy[..., 0] - (1.0 - QPOS_TO_CELL)], axis=-1)


def draw_maze(ax, color: tuple[float, float, float] = WALL_COLOR) -> None:
    """Draws the walls on a matplotlib axis: the inner 40×40 cells fill (0, 40, 0, 40), the border lies around it.

    Cell (w, h) is drawn at plot x ∈ [40 − h, 41 − h], plot y ∈ [w − 1, w] (consistent with `to_plot_xy`).
    """
    from matplotlib.colors import ListedColormap

    image = _walls()[:, ::-1].astype(np.float32)  # image[r, c]: r = w (plot y), c = 41 − h (plot x)
    cmap = ListedColormap([(1.0, 1.0, 1.0), color])
    ax.imshow(image, origin="lower", extent=(-1, SIZE - 1, -1, SIZE - 1), cmap=cmap, vmin=0, vmax=1,
              interpolation="nearest", zorder=0)
    ax.set_xlim(-1, SIZE - 1)
    ax.set_ylim(-1, SIZE - 1)
    ax.set_aspect("equal")
