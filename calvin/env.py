"""SkiMo's CALVIN task (spec §5.4; details in `calvin.md`) on our own PyBullet re-build of calvin_env scene D.

What is reproduced exactly (calvin.md §1, §5):
- Observation layout and units: robot_obs (15) = TCP position (3), TCP Euler (3, pybullet `getEulerFromQuaternion`),
  gripper width (1), arm joints (7), last gripper action (±1); scene_obs = slide, drawer, button, switch,
  lightbulb, LED (+ 3 blocks × (pos 3, Euler 3) in the 39-d layout). SkiMo's observation = the first 21 values.
- Control (calvin_env `Robot.apply_action` with `use_target_pose=True`): a ∈ [−1, 1]^7; Δpos = a[:3]·0.02 m and
  ΔEuler = a[3:6]·0.05 rad are added to an internal target pose that is initialised to the TCP at reset and never
  re-anchored; gripper binarised (a[6] ≥ 0 → open); pybullet null-space IK on the TCP link with limits ±7, ranges 7
  and rest pose q0 + (0.04, 0.04), clipped to the real joint limits; arm POSITION_CONTROL force 200, max velocity
  2 rad/s; fingers to 0.04 (force 2) / 0 (force 200), max velocity 1, coupled by a gear constraint (ratio −1,
  erp 0.1, max force 50); 8 physics substeps of 1/240 s per env step (30 Hz control); then the light logic.
- Light logic: lightbulb on while switch > 0.044 (level-triggered); LED toggles on each rising edge of
  button > 0.01. Door/drawer/switch friction motors (velocity 0, force 4), button spring (position 0, force 4).
- Tasks, in SkiMo's order: open_drawer (drawer − drawer_reset > 0.12) → turn_on_lightbulb (off at reset, on now)
  → move_slider_left (slide − slide_reset > 0.15) → turn_on_led (off at reset, on now). Every step all four are
  evaluated against the reset state and only the next task in the list can pay (at most one per step),
  `reward_norm` each. Terminated when all four are credited, truncated after 360 steps.
- Reset state: doors, button, switch at 0, lights off, robot at q0 with open fingers, gripper action +1, target =
  the TCP; then one physics step (the observation matches calvin_env's at 4 decimals).

Differences from calvin_env + SkiMo's wrapper:
1. Geometry: boxes/cylinders instead of the desk meshes, box fingers, no gel pads (calvin.md §2); joint types, axes,
   ranges, positions and masses are the real ones. Contact outcomes are therefore approximate ("CALVIN-like").
2. Blocks are off by default (SkiMo's observation excludes them; random block positions only make scripted
   play and the tasks less reliable). With `add_blocks=True` three blocks are simulated and sampled on calvin's 3
   surfaces at every reset (uniform surface, position and yaw, resampled until no two touch), driven by the env
   RNG. Without blocks, `full_obs=True` reports the fixed poses `FIXED_BLOCK_OBS` for them (not simulated).
3. `reward_norm` defaults to 100, as SkiMo's wrapper (the framework's `reward_scale` 0.01 brings it back to 1).
4. Stepping after success does not raise (the original raises IndexError); it keeps simulating with reward 0.
5. The observation space is declared Box(−inf, inf) (the original declares Box(−1, 1), which the values exceed).
6. The env is seeded through Gymnasium (`reset(seed=...)`); reset itself is deterministic without blocks, and
   every reset restores a snapshot of the physics state taken at construction (contact caches included), so
   episodes replay bit-exactly for the same actions.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

import gymnasium
import numpy as np
import pybullet as p
from gymnasium import spaces

from calvin.scene import (
    BLOCK_SURFACES,
    BLOCKS,
    BUTTON_PRESSED,
    DOOR_FRICTION_FORCE,
    FINGER_OPEN,
    LL,
    Q0,
    SWITCH_ON,
    TABLE_Z,
    UL,
    Scene,
)

ENV_ID = "skimo/Calvin-v0"
N_ROBOT, N_SCENE = 15, 24
OBS_DIM = 21  # SkiMo: robot_obs + scene_obs[:6]
FULL_OBS_DIM = N_ROBOT + N_SCENE  # 39
AC_DIM = 7
MAX_REL_POS, MAX_REL_ORN = 0.02, 0.05
BULLET_HZ, CONTROL_HZ = 240, 30
ACTION_REPEAT = BULLET_HZ // CONTROL_HZ  # 8
ARM_FORCE, ARM_MAX_VEL = 200.0, 2.0
FINGER_MAX_VEL = 1.0
REWARD_NORM = 100.0

TASKS = ("open_drawer", "turn_on_lightbulb", "move_slider_left", "turn_on_led")
# scene_obs indices
I_SLIDE, I_DRAWER, I_BUTTON, I_SWITCH, I_LIGHTBULB, I_LED = range(6)
DRAWER_THRESH, SLIDE_THRESH = 0.12, 0.15

# Reset observation measured in calvin_env (calvin.md §1, 21-d).
RESET_OBS = np.array([0.0259, -0.2313, 0.5713, 3.0905, -0.0291, 1.5001, 0.08, -1.2178, 1.0399, 2.1198, -2.3421,
                      -0.8702, 1.6412, 0.5534, 1, 0, 0, 0, 0, 0, 0])
# Block poses reported by `full_obs=True` when blocks are not simulated: one fixed, non-touching placement on
# calvin's surfaces (red and blue on the table, pink on the left part of the shelf), resting, yaw 0.
FIXED_BLOCK_OBS = np.array([0.05, -0.09, TABLE_Z + 0.02, 0, 0, 0,
                            0.25, -0.09, TABLE_Z + 0.02, 0, 0, 0,
                            -0.24, 0.085, TABLE_Z + 0.02, 0, 0, 0])


# ---------------------------------------------------------------- task logic (pure functions)
def task_states(scene: np.ndarray, start: np.ndarray) -> dict[str, bool]:
    """calvin_env's task checks (`move_door_rel`, `toggle_light`) of SkiMo's 4 tasks, against the reset state.

    Args:
        scene: current scene_obs (≥ 6 values: slide, drawer, button, switch, lightbulb, LED).
        start: scene_obs at reset.
    """
    return {
        "open_drawer": bool(scene[I_DRAWER] - start[I_DRAWER] > DRAWER_THRESH),
        "turn_on_lightbulb": bool(start[I_LIGHTBULB] == 0 and scene[I_LIGHTBULB] == 1),
        "move_slider_left": bool(scene[I_SLIDE] - start[I_SLIDE] > SLIDE_THRESH),
        "turn_on_led": bool(start[I_LED] == 0 and scene[I_LED] == 1),
    }


def next_credited(remaining: Sequence[str], done: dict[str, bool]) -> str | None:
    """SkiMo's sequential reward: only the next remaining task can pay, at most one per step. Returns its name if
    it is complete now, else None."""
    if remaining and done[remaining[0]]:
        return remaining[0]
    return None


def wrap_angle(x):
    """Wraps angles to [−π, π)."""
    return (np.asarray(x) + np.pi) % (2 * np.pi) - np.pi


# ---------------------------------------------------------------- simulation
class CalvinSim:
    """One physics client (DIRECT) with scene D and calvin_env's robot controller.

    Shared by the Gymnasium env and the scripted primitives. Public state: `target_pos`, `target_orn` (the
    integrated target pose, raw Euler), `gripper_action` (±1), `led`, `lightbulb`.
    """

    def __init__(self, add_blocks: bool = False):
        self.cid = p.connect(p.DIRECT)
        c = self.cid
        p.setTimeStep(1.0 / BULLET_HZ, physicsClientId=c)
        p.setGravity(0, 0, -9.8, physicsClientId=c)
        p.setPhysicsEngineParameter(deterministicOverlappingPairs=1, physicsClientId=c)
        self.scene = s = Scene(c, add_blocks=add_blocks)
        self.robot, self.desk, self.tcp = s.robot, s.desk, s.tcp
        self._robot_joints = s.arm + s.fingers
        self._ik_limits = ([-7.0] * s.ndof, [7.0] * s.ndof, [7.0] * s.ndof)
        self._rest = list(Q0) + [FINGER_OPEN] * (s.ndof - 7)
        for j in s.desk_joints:  # friction motors; the button (index 2) springs back to 0
            if j == s.desk_joints[2]:
                p.setJointMotorControl2(self.desk, j, p.POSITION_CONTROL, targetPosition=0.0, force=DOOR_FRICTION_FORCE,
                                        physicsClientId=c)
            else:
                p.setJointMotorControl2(self.desk, j, p.VELOCITY_CONTROL, targetVelocity=0.0,
                                        force=DOOR_FRICTION_FORCE, physicsClientId=c)
        self.target_pos = np.zeros(3)
        self.target_orn = np.zeros(3)
        self.gripper_action = 1
        self.led, self.lightbulb, self._prev_pressed = 0, 0, False
        self._set_robot_state(np.array(Q0), FINGER_OPEN, 1)
        self._snapshot = p.saveState(physicsClientId=c)

    # ------------------------------------------------------------ low level
    def close(self) -> None:
        if self.cid is not None and p.isConnected(self.cid):
            p.disconnect(self.cid)
        self.cid = None

    def __del__(self):
        with contextlib.suppress(p.error, TypeError, AttributeError):  # interpreter shutdown
            self.close()

    def _command_arm(self, q: np.ndarray) -> None:
        for j, qj in zip(self.scene.arm, q):
            p.setJointMotorControl2(self.robot, j, p.POSITION_CONTROL, targetPosition=float(qj), force=ARM_FORCE,
                                    maxVelocity=ARM_MAX_VEL, physicsClientId=self.cid)

    def _command_gripper(self, action: int) -> None:
        tgt, force = (FINGER_OPEN, ARM_FORCE / 100) if action == 1 else (0.0, ARM_FORCE)
        for f in self.scene.fingers:
            p.setJointMotorControl2(self.robot, f, p.POSITION_CONTROL, targetPosition=tgt, force=force,
                                    maxVelocity=FINGER_MAX_VEL, physicsClientId=self.cid)

    def _set_robot_state(self, q: np.ndarray, finger: float, gripper_action: int) -> None:
        c = self.cid
        for j, qj in zip(self.scene.arm, q):
            p.resetJointState(self.robot, j, float(qj), physicsClientId=c)
        for f in self.scene.fingers:
            p.resetJointState(self.robot, f, float(finger), physicsClientId=c)
        self._command_arm(q)
        self.gripper_action = int(gripper_action)
        self._command_gripper(self.gripper_action)
        self.target_pos, self.target_orn = self.tcp_pose(forward_kinematics=True)

    def tcp_pose(self, forward_kinematics: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Measured TCP position and pybullet Euler angles (world frame)."""
        pos, orn = p.getLinkState(self.robot, self.tcp, computeForwardKinematics=forward_kinematics,
                                  physicsClientId=self.cid)[4:6]
        return np.array(pos), np.array(p.getEulerFromQuaternion(orn))

    # ------------------------------------------------------------ observation
    def robot_obs(self) -> np.ndarray:
        """(15,) float64: TCP pos, TCP Euler, gripper width, 7 arm joints, last gripper action."""
        states = p.getJointStates(self.robot, self._robot_joints, physicsClientId=self.cid)
        q = [s[0] for s in states]
        pos, eul = self.tcp_pose()
        return np.array([*pos, *eul, q[7] + q[8], *q[:7], self.gripper_action], dtype=np.float64)

    def desk_state(self) -> np.ndarray:
        """(4,) slide, drawer, button, switch joint positions."""
        return np.array([s[0] for s in p.getJointStates(self.desk, self.scene.desk_joints, physicsClientId=self.cid)])

    def block_obs(self) -> np.ndarray:
        """(18,) red, blue, pink block pose (pos, Euler); `FIXED_BLOCK_OBS` when blocks are not simulated."""
        if not self.scene.blocks:
            return FIXED_BLOCK_OBS.copy()
        out = []
        for b in self.scene.blocks.values():
            pos, orn = p.getBasePositionAndOrientation(b, physicsClientId=self.cid)
            out += [*pos, *p.getEulerFromQuaternion(orn)]
        return np.array(out)

    def scene_obs(self, with_blocks: bool = True) -> np.ndarray:
        """(24,) or, without blocks, (6,): slide, drawer, button, switch, lightbulb, LED [, blocks]."""
        s6 = np.concatenate([self.desk_state(), [self.lightbulb, self.led]])
        return np.concatenate([s6, self.block_obs()]) if with_blocks else s6

    def observe(self, full: bool = False) -> np.ndarray:
        """float32 observation: 21-d (SkiMo) or, with `full`, 39-d (robot_obs ⊕ scene_obs)."""
        return np.concatenate([self.robot_obs(), self.scene_obs(with_blocks=full)]).astype(np.float32)

    # ------------------------------------------------------------ reset / state setting
    def reset(self, rng: np.random.Generator | None = None) -> None:
        """calvin_env's reset (calvin.md "Initial state"): restores the construction snapshot (scene at 0, robot at
        q0, open fingers), lights off, target = TCP, blocks resampled with `rng` (if simulated), one physics step."""
        c = self.cid
        self.scene.remove_blocks()  # the snapshot has no blocks; blocks are re-created fresh (no contact history)
        p.restoreState(self._snapshot, physicsClientId=c)
        self._command_arm(np.array(Q0))
        self.gripper_action = 1
        self._command_gripper(1)
        self.led, self.lightbulb, self._prev_pressed = 0, 0, False
        if self.scene.with_blocks:
            self.scene.create_blocks()
            self._sample_blocks(rng if rng is not None else np.random.default_rng())
        self.target_pos, self.target_orn = self.tcp_pose(forward_kinematics=True)
        p.stepSimulation(physicsClientId=c)

    def _sample_blocks(self, rng: np.random.Generator, tries: int = 1000) -> None:
        c, names = self.cid, list(BLOCK_SURFACES)
        for _ in range(tries):
            for name, b in self.scene.blocks.items():
                (x0, y0), (x1, y1) = BLOCK_SURFACES[names[rng.integers(len(names))]]
                pos = (rng.uniform(x0, x1), rng.uniform(y0, y1), TABLE_Z + BLOCKS[name][0][2])
                orn = p.getQuaternionFromEuler((0, 0, rng.uniform(-np.pi, np.pi)))
                p.resetBasePositionAndOrientation(b, pos, orn, physicsClientId=c)
            bodies = list(self.scene.blocks.values())
            if all(not p.getClosestPoints(a, b, 0.0, physicsClientId=c)
                   for i, a in enumerate(bodies) for b in bodies[i + 1:]):
                return

    def set_scene(self, slide: float | None = None, drawer: float | None = None, button: float | None = None,
                  switch: float | None = None, lightbulb: int | None = None, led: int | None = None) -> None:
        """Teleports desk joints (zero velocity) and/or sets the light states (tests, scripted starts). Setting the
        switch also sets the lightbulb by its rule; setting the button does not toggle the LED."""
        for idx, v in enumerate((slide, drawer, button, switch)):
            if v is not None:
                p.resetJointState(self.desk, self.scene.desk_joints[idx], float(v), physicsClientId=self.cid)
        if switch is not None:
            self.lightbulb = int(switch > SWITCH_ON)
        if button is not None:
            self._prev_pressed = button > BUTTON_PRESSED
        if lightbulb is not None:
            self.lightbulb = int(lightbulb)
        if led is not None:
            self.led = int(led)

    def set_robot(self, q: Sequence[float], gripper_open: bool = True) -> None:
        """Teleports the arm to joint angles q (7,), fingers open/closed, and re-anchors the target to the TCP."""
        self._set_robot_state(np.asarray(q, float), FINGER_OPEN if gripper_open else 0.0, 1 if gripper_open else -1)

    # ------------------------------------------------------------ control
    def step(self, action: np.ndarray) -> None:
        """One env step: relative action -> target pose -> IK -> motors, 8 physics substeps, light logic."""
        c = self.cid
        a = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        self.target_pos = self.target_pos + a[:3] * MAX_REL_POS
        self.target_orn = self.target_orn + a[3:6] * MAX_REL_ORN
        quat = p.getQuaternionFromEuler(self.target_orn)
        q = p.calculateInverseKinematics(self.robot, self.tcp, self.target_pos, quat, *self._ik_limits, self._rest,
                                         physicsClientId=c)
        self._command_arm(np.clip(q[:7], LL, UL))
        self.gripper_action = 1 if a[6] >= 0 else -1
        self._command_gripper(self.gripper_action)
        for _ in range(ACTION_REPEAT):
            p.stepSimulation(physicsClientId=c)
        self._update_lights()

    def _update_lights(self) -> None:
        states = p.getJointStates(self.desk, self.scene.desk_joints[2:4], physicsClientId=self.cid)
        pressed = states[0][0] > BUTTON_PRESSED
        if pressed and not self._prev_pressed:
            self.led = 1 - self.led
        self._prev_pressed = pressed
        self.lightbulb = int(states[1][0] > SWITCH_ON)


# ---------------------------------------------------------------- Gymnasium env
class CalvinEnv(gymnasium.Env):
    """SkiMo's CALVIN task: open_drawer → turn_on_lightbulb → move_slider_left → turn_on_led within 360 steps.

    Observation: 21-d float32 (robot_obs 15 + slide, drawer, button, switch, lightbulb, LED), or 39-d with
    `full_obs=True`. Action: 7-d relative end-effector command in [−1, 1].
    Reward: `reward_norm` when the next task in order becomes complete (at most one per step).
    Info (every step): one 0/1 flag per task (1 once credited) and "success" (1 once all are credited).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(self, max_episode_steps: int = 360, reward_norm: float = REWARD_NORM, full_obs: bool = False,
                 add_blocks: bool = False, tasks: Iterable[str] = TASKS):
        """
        Args:
            max_episode_steps: truncation horizon (SkiMo: 360).
            reward_norm: reward per credited task (SkiMo's wrapper: 100; rolf's reward_scale 0.01 rescales it).
            full_obs: 39-d robot_obs ⊕ scene_obs instead of SkiMo's 21-d.
            add_blocks: simulate the 3 blocks (random on calvin's surfaces at each reset).
            tasks: ordered task list (any of `TASKS`).
        """
        self.tasks = tuple(tasks)
        unknown = [t for t in self.tasks if t not in TASKS]
        if unknown:
            raise ValueError(f"unknown calvin tasks {unknown}; available: {list(TASKS)}")
        self.max_episode_steps = int(max_episode_steps)
        self.reward_norm = float(reward_norm)
        self.full_obs = bool(full_obs)
        self.sim = CalvinSim(add_blocks=add_blocks)
        ob_dim = FULL_OBS_DIM if self.full_obs else OBS_DIM
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(ob_dim,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(AC_DIM,), dtype=np.float32)
        self.remaining: list[str] = list(self.tasks)
        self.start_scene = np.zeros(6)
        self._elapsed = 0

    def _info(self) -> dict[str, float]:
        info = {name: float(name not in self.remaining) for name in self.tasks}
        info["success"] = float(not self.remaining)
        return info

    def observe(self) -> np.ndarray:
        return self.sim.observe(full=self.full_obs)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.sim.reset(self.np_random)
        self.start_scene = self.sim.scene_obs(with_blocks=False)
        self.remaining = list(self.tasks)
        self._elapsed = 0
        return self.observe(), self._info()

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        self._elapsed += 1
        self.sim.step(action)
        scene = self.sim.scene_obs(with_blocks=False)
        credited = next_credited(self.remaining, task_states(scene, self.start_scene))
        reward = 0.0
        if credited is not None:
            self.remaining.pop(0)
            reward = self.reward_norm
        terminated = not self.remaining
        truncated = self._elapsed >= self.max_episode_steps
        return self.observe(), reward, terminated, truncated, self._info()

    def close(self) -> None:
        self.sim.close()


def register() -> None:
    """Registers `skimo/Calvin-v0` with Gymnasium (idempotent)."""
    if ENV_ID not in gymnasium.envs.registry:
        gymnasium.register(id=ENV_ID, entry_point="calvin.env:CalvinEnv", max_episode_steps=None)


register()
