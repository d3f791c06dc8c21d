"""d4rl's `WaypointController` for the point maze: grid Q-iteration for waypoints, then PD control (spec §5.1).

Grid model (d4rl `gridcraft`, deterministic): states are the layout cells, actions NOOP, UP (0, −1), DOWN (0, +1),
LEFT (−1, 0), RIGHT (+1, 0) in that order (4-connected); a move into a wall or off the grid stays put. Reward 1 in
the target cell. Q-iteration runs 200 sweeps with γ 0.99, vectorised over all cells; ties in the greedy rollout go
to the first action in the order above (as `np.argmax` in the original).
"""

from __future__ import annotations

import math

import numpy as np

GRID_ACTIONS = np.array([[0, 0], [0, -1], [0, 1], [-1, 0], [1, 0]], dtype=np.int64)  # noop, up, down, left, right


class GridPlanner:
    """Q-iteration and greedy waypoint paths on a wall grid.

    Only free cells are states (a wall cell can never be entered, so leaving it out changes no free cell's value).
    The greedy policy of each target is cached: it is a pure function of the target.

    Args:
        walls: bool array (W, H), True = wall.
        num_iters: Q-iteration sweeps (d4rl fork: 200).
        discount: γ.
    """

    def __init__(self, walls: np.ndarray, num_iters: int = 200, discount: float = 0.99, cache_size: int = 4096):
        self.walls = np.asarray(walls, dtype=bool)
        self.shape = self.walls.shape
        self.num_iters = num_iters
        self.discount = discount
        self.cells = np.argwhere(~self.walls)  # (N, 2) free cells, row-major
        self._index = -np.ones(self.shape, dtype=np.int64)  # cell -> state index, −1 for walls
        self._index[self.cells[:, 0], self.cells[:, 1]] = np.arange(len(self.cells))
        self.next_state = self._transitions()  # (5, N) state reached by each action
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._cache_size = cache_size

    def _transitions(self) -> np.ndarray:
        w_size, h_size = self.shape
        moved = self.cells[None] + GRID_ACTIONS[:, None]  # (5, N, 2)
        inside = (moved >= 0).all(-1) & (moved[..., 0] < w_size) & (moved[..., 1] < h_size)
        moved = np.clip(moved, 0, [w_size - 1, h_size - 1])
        nxt = self._index[moved[..., 0], moved[..., 1]]  # (5, N), −1 where the move hits a wall
        stay = np.broadcast_to(np.arange(len(self.cells)), nxt.shape)
        return np.where(inside & (nxt >= 0), nxt, stay)  # illegal moves stay put (NOOP)

    def state(self, cell: tuple[int, int]) -> int:
        """State index of a free cell (ValueError for a wall or off-grid cell)."""
        w, h = int(cell[0]), int(cell[1])
        if not (0 <= w < self.shape[0] and 0 <= h < self.shape[1]) or self._index[w, h] < 0:
            raise ValueError(f"cell {(w, h)} is not a free cell")
        return int(self._index[w, h])

    def q_values(self, target_cell: tuple[int, int]) -> np.ndarray:
        """Q (N, 5) over the free cells after `num_iters` sweeps of Q ← r + γ·max_a' Q(s', a'), Q₀ = 0,
        r(s) = 1[s = target] (d4rl `q_iteration` with a deterministic grid)."""
        reward = np.zeros(len(self.cells))
        reward[self.state(target_cell)] = 1.0
        value = np.zeros_like(reward)
        q = np.zeros(self.next_state.shape)  # (5, N)
        for _ in range(self.num_iters):
            np.take(value, self.next_state, out=q)
            q *= self.discount
            q += reward
            q.max(axis=0, out=value)
        return q.T

    def _policy(self, target_cell: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        key = self.state(target_cell)
        if key not in self._cache:
            if len(self._cache) >= self._cache_size:
                self._cache.pop(next(iter(self._cache)))
            q = self.q_values(target_cell)
            self._cache[key] = (q.argmax(axis=1), q.max(axis=1) > 0.0)  # first max wins ties, as np.argmax
        return self._cache[key]

    def path(self, start_cell: tuple[int, int], target_cell: tuple[int, int]) -> list[tuple[int, int]] | None:
        """Greedy rollout of the Q-values: the cells visited after `start_cell`, ending with `target_cell`.

        Returns:
            List of cells, or None if the target is unreachable within `num_iters` moves (the original raises
            ValueError and resamples).
        """
        policy, reachable = self._policy(target_cell)
        s, goal = self.state(start_cell), self.state(target_cell)
        if not reachable[s]:
            return None
        cells = []
        # The original stops after 100 grid moves, which can cut long paths in a 40×40 maze and then crash on an
        # assert; any shortest path is shorter than the number of cells, so use that bound.
        for _ in range(len(self.cells)):
            s = int(self.next_state[policy[s], s])
            cells.append((int(self.cells[s, 0]), int(self.cells[s, 1])))
            if s == goal:
                return cells
        return None


class WaypointController:
    """PD controller through jittered waypoints (d4rl's `WaypointController.get_action`, same thresholds).

    Positions are agent qpos; the target and the start are "gridified" by rounding, intermediate waypoints are the
    path cells minus U(0, 0.2) per axis, the last one is the exact target cell. Plain Python floats: this runs once
    per simulated step of the generator.

    Kept exactly as specified (no anti-stuck fix): every waypoint lies in [c − 0.2, c] of a free cell, which the
    particle (free region [c − 0.6, c + 0.2] per axis between walls) can always reach, and the walls are
    frictionless (condim 1), so overshoots slide along walls instead of catching on corners. Over 300 seeded
    trajectories none stalled; the ~9 % that miss the goal run out of the 1600 steps on long (≈ 60+ cell) paths.
    The velocity test (moved < 0.1 per step) never binds: qvel is clipped to ±5, i.e. ≤ 0.053 per step.
    """

    def __init__(self, planner: GridPlanner, solve_thresh: float = 0.1, vel_thresh: float = 0.1,
                 p_gain: float = 10.0, d_gain: float = -1.0):
        self.planner = planner
        self.solve_thresh = solve_thresh
        self.vel_thresh = vel_thresh
        self.p_gain = p_gain
        self.d_gain = d_gain
        self.waypoints: list[tuple[float, float]] = []
        self.target = (0.0, 0.0)
        self._idx = 0
        self._prev = (0.0, 0.0)

    def reset(self, start: np.ndarray, target: np.ndarray, rng: np.random.Generator) -> bool:
        """Plans waypoints from the cell of `start` to the cell of `target` (both (2,) qpos).

        Returns:
            False if the target cell is unreachable (nothing planned).
        """
        start_cell = tuple(int(v) for v in np.rint(start))
        target_cell = tuple(int(v) for v in np.rint(target))
        cells = self.planner.path(start_cell, target_cell)
        if cells is None:
            return False
        jitter = rng.uniform(size=(len(cells), 2)) * 0.2  # (K, 2); the last row is unused
        self.waypoints = [(c[0] - j[0], c[1] - j[1]) for c, j in zip(cells[:-1], jitter[:-1].tolist())]
        self.target = (float(target_cell[0]), float(target_cell[1]))
        self.waypoints.append(self.target)
        self._idx = 0
        self._prev = (float(start_cell[0]), float(start_cell[1]))  # as the original: the start cell, not the position
        return True

    def act(self, x: float, y: float, vx: float, vy: float) -> tuple[float, float, bool]:
        """One control step at position (x, y), velocity (vx, vy).

        Returns:
            (ax, ay, solved): the action clipped to [−1, 1] and whether the target cell is reached (within
            `solve_thresh`, moving less than `vel_thresh` per step).
        """
        moved = math.hypot(self._prev[0] - x, self._prev[1] - y)
        not_solved = math.hypot(x - self.target[0], y - self.target[1]) >= self.solve_thresh or moved >= self.vel_thresh
        wx, wy = self.waypoints[self._idx] if not_solved else self.target
        ax = self.p_gain * (wx - x) + self.d_gain * vx
        ay = self.p_gain * (wy - y) + self.d_gain * vy
        if not_solved and math.hypot(x - wx, y - wy) < self.solve_thresh and moved < self.vel_thresh:
            self._idx = min(self._idx + 1, len(self.waypoints) - 1)
        self._prev = (x, y)
        return min(max(ax, -1.0), 1.0), min(max(ay, -1.0), 1.0), not not_solved

    @property
    def waypoint_index(self) -> int:
        return self._idx
