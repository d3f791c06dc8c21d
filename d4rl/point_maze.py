"""d4rl's maze2d point mass on the official `mujoco` bindings, and SkiMo's maze task (`ACRandMaze0S40Env`).

Physics (spec §5.2): a sphere (r 0.1, density 1000) on two damped slide joints, no gravity, Euler integrator with
dt 0.01, one physics step per env step, two motors (gear 100, ctrl in [−1, 1]); joint velocities are clipped to
±5 before every step. Walls are boxes of half-size 0.5 at world (w + 1, h + 1) for every wall cell (w, h); the
particle body sits at world (1.2, 1.2), so qpos (w, h) is inside cell (w, h) (see `d4rl.maze_layout`).
d4rl's ground plane is left out: it only touches the particle along z, which no joint can move, so it never
changes the motion (it would only cost a contact per step).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import gymnasium
import mujoco
import numpy as np
from gymnasium import spaces

from d4rl.maze_layout import load_layout
from d4rl.mujoco_utils import diverged

ENV_ID = "skimo/Maze-v0"
VEL_CLIP = 5.0


def point_maze_xml(walls: np.ndarray) -> str:
    """MJCF of the point maze.

    Args:
        walls: bool array (W, H), True = wall.
    Returns:
        The model as an XML string.
    """
    wall_geoms = "\n".join(
        f'    <geom name="wall_{w}_{h}" type="box" pos="{w + 1.0} {h + 1.0} 0" size="0.5 0.5 0.2" material="wall"/>'
        for w, h in np.argwhere(walls))
    return f"""<mujoco model="point_maze">
  <compiler inertiafromgeom="true" angle="radian" coordinate="local"/>
  <option timestep="0.01" gravity="0 0 0" iterations="20" integrator="Euler"/>
  <default>
    <joint damping="1" limited="false"/>
    <geom friction=".5 .1 .1" density="1000" margin="0.002" condim="1" contype="2" conaffinity="1"/>
  </default>
  <asset>
    <material name="wall" rgba=".7 .5 .3 1"/>
  </asset>
  <worldbody>
    <body name="particle" pos="1.2 1.2 0">
      <geom name="particle_geom" type="sphere" size="0.1" rgba="0 0 1 1" contype="1"/>
      <joint name="ball_x" type="slide" pos="0 0 0" axis="1 0 0"/>
      <joint name="ball_y" type="slide" pos="0 0 0" axis="0 1 0"/>
    </body>
{wall_geoms}
  </worldbody>
  <actuator>
    <motor joint="ball_x" ctrlrange="-1 1" ctrllimited="true" gear="100"/>
    <motor joint="ball_y" ctrlrange="-1 1" ctrllimited="true" gear="100"/>
  </actuator>
</mujoco>
"""


@lru_cache(maxsize=1)
def _maze_model() -> mujoco.MjModel:
    """The compiled randMaze0S40 model (compiled once per process; MjModel is read-only during stepping)."""
    return mujoco.MjModel.from_xml_string(point_maze_xml(load_layout()))


class PointMassSim:
    """Bare point-mass simulation shared by the Gymnasium env and the dataset generator.

    `step` does what d4rl's `MazeEnv.step` does to the physics: clip the action to [−1, 1], clip qvel to ±5,
    set ctrl, one `mj_step`. It writes into preallocated buffers; the returned observation is a fresh copy.
    """

    def __init__(self, model: mujoco.MjModel | None = None):
        self.model = model if model is not None else _maze_model()
        self.data = mujoco.MjData(self.model)
        self._qpos, self._qvel, self._ctrl = self.data.qpos, self.data.qvel, self.data.ctrl  # views, (2,)
        self._obs = np.empty(4, dtype=np.float64)

    @property
    def mass(self) -> float:
        """Mass of the particle (kg)."""
        return float(self.model.body_mass[self.model.body("particle").id])

    def set_state(self, qpos: np.ndarray, qvel: np.ndarray) -> np.ndarray:
        """Resets all simulator state (solver warm start included, so results never depend on history) and
        teleports the particle. Returns the observation (4,) float32, no physics step."""
        mujoco.mj_resetData(self.model, self.data)
        self._qpos[:] = qpos
        self._qvel[:] = qvel
        mujoco.mj_forward(self.model, self.data)
        return self.obs()

    def obs(self) -> np.ndarray:
        """[x, y, vx, vy] as float32 (4,)."""
        self._obs[:2] = self._qpos
        self._obs[2:] = self._qvel
        return self._obs.astype(np.float32)

    def advance(self, action: np.ndarray) -> None:
        """One env step without building an observation (read `data.qpos` / `data.qvel`)."""
        np.minimum(np.maximum(action, -1.0, out=self._ctrl), 1.0, out=self._ctrl)  # raw ufuncs: np.clip is slower
        np.minimum(np.maximum(self._qvel, -VEL_CLIP, out=self._qvel), VEL_CLIP, out=self._qvel)
        mujoco.mj_step(self.model, self.data)

    def step(self, action: np.ndarray) -> np.ndarray:
        """One env step. Returns the observation (4,) float32 after it."""
        self.advance(action)
        return self.obs()

    def unstable(self) -> bool:
        """True if MuJoCo flagged a diverged state since the last `set_state` (it then auto-resets the data)."""
        return diverged(self.data)


class MazeEnv(gymnasium.Env):
    """SkiMo's `ACRandMaze0S40Env`: reach (18, 8) from around (10, 24) in the randMaze0S40 layout.

    Reward 100 within distance 2 of the goal (episode terminates), else 0; truncation after
    `max_episode_steps`. Seeded through Gymnasium (`reset(seed=...)` -> `self.np_random`), never the global RNG.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, max_episode_steps: int = 2000, start: tuple[float, float] = (10.0, 24.0),
                 goal: tuple[float, float] = (18.0, 8.0), start_rand_range: float = 2.0, success_radius: float = 2.0,
                 reward: float = 100.0):
        self.max_episode_steps = int(max_episode_steps)
        self.start = np.asarray(start, dtype=np.float64)
        self.goal = np.asarray(goal, dtype=np.float64)
        self.start_rand_range = float(start_rand_range)
        self.success_radius = float(success_radius)
        self.success_reward = float(reward)
        self.sim = PointMassSim()
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(4,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self._elapsed = 0
        self._zero = np.zeros(2)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        noise = self.np_random.uniform(-self.start_rand_range, self.start_rand_range, size=2)
        self.sim.set_state(self.start + noise, self._zero)
        ob = self.sim.step(self._zero)  # one zero-action step, not counted (as the original)
        self._elapsed = 0
        return ob, {"success": 0.0}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        self._elapsed += 1
        truncated = self._elapsed >= self.max_episode_steps
        try:
            ob = self.sim.step(np.asarray(action, dtype=np.float64))
            failed = self.sim.unstable() or not np.isfinite(ob).all()
        except mujoco.FatalError:
            ob, failed = np.zeros(4, dtype=np.float32), True
        if failed:  # spec §5.2: simulation error -> reward −100 and done
            return np.nan_to_num(ob, nan=0.0, posinf=0.0, neginf=0.0), -self.success_reward, True, truncated, \
                {"success": 0.0, "sim_error": 1.0}
        dx, dy = float(ob[0]) - self.goal[0], float(ob[1]) - self.goal[1]
        success = float(dx * dx + dy * dy <= self.success_radius ** 2)
        return ob, success * self.success_reward, bool(success), truncated, {"success": success}

    def set_state(self, qpos: np.ndarray, qvel: np.ndarray) -> np.ndarray:
        """Teleports the particle (tests, debugging). Returns the observation (4,) float32."""
        return self.sim.set_state(qpos, qvel)


def register() -> None:
    """Registers `skimo/Maze-v0` with Gymnasium (idempotent)."""
    if ENV_ID not in gymnasium.envs.registry:
        gymnasium.register(id=ENV_ID, entry_point="d4rl.point_maze:MazeEnv")


register()
