"""SkiMo's Franka kitchen (spec §5.3; the SPiRL/SkiLD d4rl fork's `kitchen-mixed-v0` / `kitchen-mlsh-v0`) on the
simulation of gymnasium-robotics `FrankaKitchen-v1`.

What is taken from FrankaKitchen-v1: its MuJoCo model (`kitchen_env_model.xml`, qpos = robot 9 + objects 21, the
same layout and joint order as D4RL's), its robot config (`franka_config.xml`: position/velocity bounds and noise
amplitudes, the same file D4RL reads), its initial qpos (identical to D4RL's `init_qpos`), its control law and its
timing (40 substeps of 0.002 s = 0.08 s per env step). What is implemented here, following D4RL and the fork:

- Observation: 30-d = robot qpos (9) + object qpos (21) (= FrankaKitchen's `observation[0:9] ++ observation[18:39]`),
  float32; `with_goal=True` appends the 30-d goal vector (zeros except `OBS_ELEMENT_GOALS` at
  `OBS_ELEMENT_INDICES` of the goal task's subtasks: the fork's `_get_task_goal()`).
- Ordered completion (the fork's `ENFORCE_TASK_ORDER`): at each step the longest prefix of the remaining subtasks
  that are all complete (distance to goal < `BONUS_THRESH`) is counted, +1 reward each, and removed; the episode
  terminates when none remain and is truncated after `max_episode_steps` (280).
- A simulation error (MuJoCo's diverged-state warnings or `mujoco.FatalError`) ends the episode with reward −100
  (SkiMo's wrapper around mujoco-py's `MujocoException`, spec §5.2).

Differences between FrankaKitchen-v1 and D4RL's kitchen, and how they are handled:

1. Observation noise. D4RL adds U(−1, 1) × 0.1 × `pos_noise_amp` (config entries qpos0..qpos29) to robot AND object
   qpos (`robot_noise_ratio = 0.1` for both). FrankaKitchen-v1 uses 0.01 for the robot and 0.0005 for objects, and
   its object amplitudes are shifted by one joint (`robot_pos_noise_amp[8:]`). Here: D4RL's noise (ratio 0.1 on
   all 30 entries, correctly aligned); `noise_ratio` changes it (0 = noise-free).
2. Completion test. FrankaKitchen-v1 tests the noise-free `data.qpos`; D4RL tests the noisy observation. Here:
   the observation, as D4RL.
3. Reward order and goal. FrankaKitchen-v1 counts tasks in any order; the fork counts them in order (above). The
   fork's observation goal is always the base task's (`_get_task_goal()` defaults to microwave, kettle, bottom
   burner, light switch, for `kitchen-mlsh-v0` too) while its reward uses the task's own goals; `goal_task`
   selects the appended goal (default "base", as the fork).
4. Simulator build. D4RL ran `franka_kitchen_jntpos_act_ab.xml` in dm_control/mujoco 2.x; FrankaKitchen-v1 is a
   re-made model on MuJoCo 3 (same joints, bodies and init qpos; contact and actuator details may differ). Not
   fixable here: trajectories recorded in D4RL do not replay exactly (the Minari re-release says the same).
5. The FrankaKitchen-v1 env class itself is not instantiated: its constructor fails with mujoco 3.17 (an
   assertion in gymnasium-robotics' `get_joint_qpos`: `numpy.int32 in (mjtJoint, ...)` is False there; it works
   with mujoco 3.3.7), and stepping the model directly skips its per-step joint-name lookups (~8 % faster). The
   physics is the same: with noise off, 280 random-action steps of this class and of FrankaKitchen-v1 (mujoco
   3.3.7) agree to float32 rounding (max |Δobs| 1.2e-7).
6. Initial state: identical (`init_qpos`, zero velocity, no reset noise, in both). Frame skip, control law (target
   = last noisy robot qpos + clip(2·a, velocity bounds) · 0.08, clipped to the position bounds) and the 280-step
   limit are identical too.
"""

from __future__ import annotations

import importlib.util
import xml.etree.ElementTree as ET
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import gymnasium
import mujoco
import numpy as np
from gymnasium import spaces

from d4rl.mujoco_utils import diverged

ENV_ID = "skimo/Kitchen-v0"
N_ROBOT, N_OBJECT = 9, 21
OBS_DIM = N_ROBOT + N_OBJECT
FRAME_SKIP = 40
ACTION_SCALE = 2.0  # D4RL act_amp: action in [−1, 1] -> joint velocity target in [−2, 2] rad/s (m/s for the fingers)
NOISE_RATIO = 0.1  # D4RL robot_noise_ratio ("10% as per robot_config specs"), robot and objects
SIM_ERROR_REWARD = -100.0

# D4RL kitchen_envs.py: indices into the 30-d observation, goal values, completion threshold.
OBS_ELEMENT_INDICES: dict[str, np.ndarray] = {
    "bottom burner": np.array([11, 12]),
    "top burner": np.array([15, 16]),
    "light switch": np.array([17, 18]),
    "slide cabinet": np.array([19]),
    "hinge cabinet": np.array([20, 21]),
    "microwave": np.array([22]),
    "kettle": np.array([23, 24, 25, 26, 27, 28, 29]),
}
OBS_ELEMENT_GOALS: dict[str, np.ndarray] = {
    "bottom burner": np.array([-0.88, -0.01]),
    "top burner": np.array([-0.92, -0.01]),
    "light switch": np.array([-0.69, -0.05]),
    "slide cabinet": np.array([0.37]),
    "hinge cabinet": np.array([0.0, 1.45]),
    "microwave": np.array([-0.75]),
    "kettle": np.array([-0.23, 0.75, 1.62, 0.99, 0.0, 0.0, -0.06]),
}
BONUS_THRESH = 0.3
SUBTASKS = tuple(OBS_ELEMENT_INDICES)
TASKS: dict[str, tuple[str, ...]] = {
    "base": ("microwave", "kettle", "bottom burner", "light switch"),  # kitchen-mixed-v0
    "misaligned": ("microwave", "light switch", "slide cabinet", "hinge cabinet"),  # kitchen-mlsh-v0
}

# D4RL KitchenV0.init_qpos ("for the microwave kettle slide hinge"); FrankaKitchen-v1 uses the same values.
INIT_QPOS = np.array([
    1.48388023e-01, -1.76848573e+00, 1.84390296e+00, -2.47685760e+00, 2.60252026e-01, 7.12533105e-01,
    1.59515394e+00, 4.79267505e-02, 3.71350919e-02, -2.66279850e-04, -5.18043486e-05, 3.12877220e-05,
    -4.51199853e-05, -3.90842156e-06, -4.22629655e-05, 6.28065475e-05, 4.04984708e-05, 4.62730939e-04,
    -2.26906415e-04, -4.65501369e-04, -6.44129196e-03, -1.77048263e-03, 1.08009684e-03, -2.69397440e-01,
    3.50383255e-01, 1.61944683e+00, 1.00618764e+00, 4.06395120e-03, -6.62095997e-03, -2.68278933e-04])


# ---------------------------------------------------------------- task logic (pure functions)
def check_task(name: str) -> tuple[str, ...]:
    """The ordered subtasks of a task name ("base" or "misaligned").

    Raises:
        ValueError: unknown task, one line listing the known ones.
    """
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown kitchen task {name!r}; available: {sorted(TASKS)}") from None


def subtask_complete(obs: np.ndarray, name: str) -> bool:
    """D4RL's completion test: ‖obs[indices] − goal‖ < 0.3.

    Args:
        obs: (≥30,) observation (robot qpos 9 + object qpos 21 [+ goal]).
        name: a subtask in `SUBTASKS`.
    """
    diff = obs[OBS_ELEMENT_INDICES[name]] - OBS_ELEMENT_GOALS[name]
    return float(np.sqrt(np.dot(diff, diff))) < BONUS_THRESH


def ordered_completions(remaining: Iterable[str], obs: np.ndarray) -> list[str]:
    """The remaining subtasks that count at this step: a subtask counts only if it and every subtask before it in
    `remaining` are complete (the fork's ENFORCE_TASK_ORDER), i.e. the longest complete prefix."""
    counted = []
    for name in remaining:
        if not subtask_complete(obs, name):
            break
        counted.append(name)
    return counted


def task_goal(subtasks: Iterable[str]) -> np.ndarray:
    """D4RL's 30-d goal vector: zeros, with each subtask's goal at its observation indices. float32 (30,)."""
    goal = np.zeros(OBS_DIM, dtype=np.float32)
    for name in subtasks:
        goal[OBS_ELEMENT_INDICES[name]] = OBS_ELEMENT_GOALS[name]
    return goal


# ---------------------------------------------------------------- simulation
def assets_dir() -> Path:
    """gymnasium-robotics' kitchen assets, located without importing the package (its import registers ~100 envs
    and prints a warning)."""
    spec = importlib.util.find_spec("gymnasium_robotics")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the kitchen needs gymnasium-robotics: pip install 'gymnasium-robotics>=1.4,<2'")
    return Path(list(spec.submodule_search_locations)[0]) / "envs" / "assets" / "kitchen_franka"


@lru_cache(maxsize=1)
def kitchen_model() -> mujoco.MjModel:
    """FrankaKitchen-v1's compiled model (compiled once per process; MjModel is read-only during stepping)."""
    return mujoco.MjModel.from_xml_path(str(assets_dir() / "kitchen_assets" / "kitchen_env_model.xml"))


@lru_cache(maxsize=1)
def robot_config() -> dict[str, np.ndarray]:
    """`franka_config.xml` entries qpos0..qpos29 (as D4RL reads them: n_jnt + n_obj = 30 entries).

    Returns:
        {"pos_bound": (30, 2), "vel_bound": (30, 2), "pos_noise_amp": (30,)}.
    """
    root = ET.parse(assets_dir() / "franka_assets" / "franka_config.xml").getroot()
    nodes = [root.find(f"qpos{i}") for i in range(OBS_DIM)]
    read = lambda key: np.array([[float(v) for v in n.get(key).split()] for n in nodes])  # noqa: E731
    return {"pos_bound": read("pos_bound"), "vel_bound": read("vel_bound"), "pos_noise_amp": read("pos_noise_amp")[:, 0]}


class KitchenSim:
    """Bare kitchen physics with D4RL's observation noise and velocity-to-position control.

    Shared by the Gymnasium env and scripted controllers (`model`, `data` are public).
    """

    def __init__(self, noise_ratio: float = NOISE_RATIO, model: mujoco.MjModel | None = None):
        self.model = model if model is not None else kitchen_model()
        self.data = mujoco.MjData(self.model)
        cfg = robot_config()
        self.noise_amp = noise_ratio * cfg["pos_noise_amp"]
        self.dt = FRAME_SKIP * self.model.opt.timestep
        self._vel_lo, self._vel_hi = cfg["vel_bound"][:N_ROBOT].T.copy()
        self._pos_lo, self._pos_hi = cfg["pos_bound"][:N_ROBOT].T.copy()
        self._last_robot_qpos = INIT_QPOS[:N_ROBOT].copy()
        self.last_obs = INIT_QPOS.astype(np.float32)

    def set_state(self, qpos: np.ndarray, qvel: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
        """Resets all simulator state (warnings and warm start included) and sets qpos (30,) / qvel (29,) (None:
        zero). Returns the noisy observation (30,) float32; it is also the base of the next control target."""
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[:] = qpos
        if qvel is not None:
            self.data.qvel[:] = qvel
        mujoco.mj_forward(self.model, self.data)
        return self.observe(rng)

    def reset(self, rng: np.random.Generator) -> np.ndarray:
        """D4RL's reset: `INIT_QPOS`, zero velocity, no reset noise. Returns the observation (30,) float32."""
        return self.set_state(INIT_QPOS, None, rng)

    def observe(self, rng: np.random.Generator) -> np.ndarray:
        """qpos (30,) + U(−1, 1) · noise_ratio · amp, float32; remembers the noisy robot part for the control law
        and the whole observation as `last_obs` (what a caller of a scripted segment continues from)."""
        obs = self.data.qpos + self.noise_amp * rng.uniform(-1.0, 1.0, size=OBS_DIM)
        self._last_robot_qpos = obs[:N_ROBOT]
        self.last_obs = obs.astype(np.float32)
        return self.last_obs

    def control(self, action: np.ndarray) -> np.ndarray:
        """D4RL Robot_VelAct: position target = last observed robot qpos + clip(2·a, velocity bounds) · dt, clipped
        to the position bounds. Returns ctrl (9,)."""
        vel = np.minimum(np.maximum(ACTION_SCALE * np.clip(action, -1.0, 1.0), self._vel_lo), self._vel_hi)
        return np.minimum(np.maximum(self._last_robot_qpos + vel * self.dt, self._pos_lo), self._pos_hi)

    def advance(self, action: np.ndarray) -> None:
        """One env step (40 substeps) without an observation."""
        self.data.ctrl[:] = self.control(action)
        mujoco.mj_step(self.model, self.data, nstep=FRAME_SKIP)

    def step(self, action: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One env step. Returns the noisy observation (30,) float32 after it."""
        self.advance(action)
        return self.observe(rng)

    def unstable(self) -> bool:
        """True if MuJoCo flagged a diverged state since the last `set_state` (it then auto-resets the data)."""
        return diverged(self.data)


# ---------------------------------------------------------------- Gymnasium env
class KitchenEnv(gymnasium.Env):
    """SkiMo's kitchen task: complete 4 subtasks in order within 280 steps (+1 reward each).

    Info (every step): one 0/1 flag per subtask of the task ("microwave", "kettle", ...): 1 once counted.
    Seeded through Gymnasium (`reset(seed=...)` -> `self.np_random`, which drives the observation noise).
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, task: str = "base", max_episode_steps: int = 280, with_goal: bool = False,
                 noise_ratio: float = NOISE_RATIO, goal_task: str = "base"):
        """
        Args:
            task: "base" (microwave → kettle → bottom burner → light switch) or "misaligned" (microwave → light
                switch → slide cabinet → hinge cabinet).
            max_episode_steps: truncation horizon.
            with_goal: append the 30-d goal vector (60-d observation, the SPiRL family's input).
            noise_ratio: observation-noise scale × the config's amplitudes (D4RL: 0.1; 0: noise-free).
            goal_task: task whose goals fill the appended goal vector (the fork: always "base").
        """
        self.task = task
        self.subtasks = check_task(task)
        self.max_episode_steps = int(max_episode_steps)
        self.with_goal = bool(with_goal)
        self.goal = task_goal(check_task(goal_task))
        self.sim = KitchenSim(noise_ratio)
        ob_dim = 2 * OBS_DIM if self.with_goal else OBS_DIM
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(ob_dim,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(N_ROBOT,), dtype=np.float32)
        self.remaining: list[str] = list(self.subtasks)
        self._elapsed = 0

    def _ob(self, obs30: np.ndarray) -> np.ndarray:
        return np.concatenate([obs30, self.goal]) if self.with_goal else obs30

    def _info(self) -> dict[str, float]:
        return {name: float(name not in self.remaining) for name in self.subtasks}

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.remaining = list(self.subtasks)
        self._elapsed = 0
        return self._ob(self.sim.reset(self.np_random)), self._info()

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        self._elapsed += 1
        truncated = self._elapsed >= self.max_episode_steps
        try:
            obs = self.sim.step(np.asarray(action, dtype=np.float64), self.np_random)
            failed = self.sim.unstable() or not np.isfinite(obs).all()
        except mujoco.FatalError:
            obs, failed = np.zeros(OBS_DIM, dtype=np.float32), True
        if failed:  # spec §5.2: simulation error -> reward −100 and done
            obs = np.nan_to_num(obs, nan=0.0, posinf=0.0, neginf=0.0)
            return self._ob(obs), SIM_ERROR_REWARD, True, truncated, {**self._info(), "sim_error": 1.0}
        counted = ordered_completions(self.remaining, obs)
        del self.remaining[:len(counted)]
        return self._ob(obs), float(len(counted)), not self.remaining, truncated, self._info()

    def set_state(self, qpos: np.ndarray, qvel: np.ndarray | None = None) -> np.ndarray:
        """Teleports the whole scene (tests, scripted controllers); the task progress is kept. Returns the
        observation."""
        return self._ob(self.sim.set_state(qpos, qvel, self.np_random))


def register() -> None:
    """Registers `skimo/Kitchen-v0` with Gymnasium (idempotent)."""
    if ENV_ID not in gymnasium.envs.registry:
        gymnasium.register(id=ENV_ID, entry_point="d4rl.kitchen:KitchenEnv", max_episode_steps=None)


register()
