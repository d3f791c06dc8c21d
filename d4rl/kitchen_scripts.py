"""Scripted demonstrations for the Franka kitchen (`d4rl.kitchen`): one task-space controller and seven short
waypoint scripts, used to make a "kitchen-mixed"-style offline dataset without D4RL's human demonstrations.

Controller (`TaskSpaceController`): damped least squares on the `end_effector` site (`mj_jacSite`, arm joints
0–6) for position + orientation, a null-space push off the joint limits (and optionally toward a rest posture),
and the inverse of the env's control law
(target = last noisy robot qpos + 2·a·0.08 s): the joint-velocity command is turned into the position target that
makes the damped position servos move at that velocity while holding the arm against gravity (servo offset
`qfrc_bias / kp`), then into the action. One Jacobian solve per step.

Scripts: each subtask is a list of `Phase`s (end-effector target relative to the object's site or joint, gripper
command, tolerance, step budget) computed from the simulator's current state. Every script starts by backing off
to a safe plane in front of the kitchen (y <= SAFE_Y) and crossing it, so scripts chain from any other script's
end pose, and ends with a release and a short retreat. Door and knob scripts share one primitive (`turn`: the
gripper follows the joint's arc a fixed lead ahead of the joint's current angle); pushes stop early once the
object is within EARLY_STOP_DIST of its goal. Known limits (chained runs): an opened hinge door is in the way of
the light-switch and slide scripts, and the kettle transport can knock the bottom-burner knob.

Frames: world x points right, y forward (into the kitchen), z up. The gripper's "forward" orientation (approach
axis = site z along +y, fingers spread along world x, site x up) is the reset orientation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import mujoco
import numpy as np

from d4rl.kitchen import (
    ACTION_SCALE,
    INIT_QPOS,
    N_ROBOT,
    OBS_ELEMENT_GOALS,
    OBS_ELEMENT_INDICES,
    SUBTASKS,
    KitchenSim,
    subtask_complete,
)

SUBTASK_NAMES: tuple[str, ...] = SUBTASKS
N_ARM = 7
OPEN, CLOSE = 1.0, -1.0
LIMIT_MARGIN, LIMIT_GAIN = 0.25, 4.0  # null-space push (1/s) off the last 0.25 rad before a joint limit

# Gripper orientations (columns = site x, y, z axes in world coordinates).
R_FORWARD = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])  # approach +y, fingers along x


def rot_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rot_y(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rot_x(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rotation_error(target: np.ndarray, current: np.ndarray) -> np.ndarray:
    """World-frame rotation vector (axis · angle) taking `current` to `target` (3x3 rotation matrices)."""
    quat = np.empty(4)
    mujoco.mju_mat2Quat(quat, (target @ current.T).ravel())
    if quat[0] < 0.0:
        quat = -quat
    sin_half = np.linalg.norm(quat[1:])
    if sin_half < 1e-9:
        return np.zeros(3)
    return quat[1:] * (2.0 * np.arctan2(sin_half, quat[0]) / sin_half)


@dataclass
class ScriptNoise:
    waypoint: float = 0.01  # σ (m) of Gaussian noise on each waypoint
    action: float = 0.05  # σ of Gaussian noise added to each action before clipping to [-1, 1]


class TaskSpaceController:
    """End-effector pose servo for `KitchenSim`: (target position, target orientation, gripper) -> action (9,).

    Args:
        sim: the simulator (its `model`/`data` are read, never written).
        pos_gain, rot_gain: proportional gains (1/s) on the position (m) and rotation (rad) errors.
        max_lin, max_rot: caps on the commanded linear (m/s) and angular (rad/s) speed.
        damping: λ of the damped least squares.
        posture_gain: null-space pull (1/s) toward `rest`.
    """

    def __init__(self, sim: KitchenSim, pos_gain: float = 8.0, rot_gain: float = 5.0, max_lin: float = 0.6,
                 max_rot: float = 2.0, damping: float = 0.05, posture_gain: float = 0.0,
                 rest: np.ndarray | None = None):
        self.sim, self.model, self.data = sim, sim.model, sim.data
        self.site = self.model.site("end_effector").id
        self.pos_gain, self.rot_gain = pos_gain, rot_gain
        self.max_lin, self.max_rot = max_lin, max_rot
        self.lam2 = damping ** 2
        self.posture_gain = posture_gain
        self.rest = INIT_QPOS[:N_ARM].copy() if rest is None else np.asarray(rest, dtype=float)
        kp = self.model.actuator_gainprm[:N_ROBOT, 0]
        self._inv_kp = 1.0 / kp
        self._servo_damping = self.model.dof_damping[:N_ROBOT].copy()
        lo, hi = self.model.jnt_range[:N_ARM].T
        self._lim_lo, self._lim_hi = lo + LIMIT_MARGIN, hi - LIMIT_MARGIN
        self._jacp = np.zeros((3, self.model.nv))
        self._jacr = np.zeros((3, self.model.nv))
        self._jac = np.zeros((6, N_ARM))
        self._twist = np.zeros(6)
        self._scale = 1.0 / (ACTION_SCALE * sim.dt)

    def ee_pos(self) -> np.ndarray:
        return self.data.site_xpos[self.site].copy()

    def ee_rot(self) -> np.ndarray:
        return self.data.site_xmat[self.site].reshape(3, 3).copy()

    def action(self, obs: np.ndarray, pos: np.ndarray, rot: np.ndarray | None, grip: float,
               max_lin: float | None = None) -> np.ndarray:
        """Action (9,) in [-1, 1] moving the end effector toward (pos, rot) (rot None: free orientation).

        `obs` is the observation the action will be applied in (its noisy robot qpos is the control law's base).
        """
        d = self.data
        mujoco.mj_jacSite(self.model, d, self._jacp, self._jacr, self.site)
        jac, twist = self._jac, self._twist
        jac[:3] = self._jacp[:, :N_ARM]
        jac[3:] = self._jacr[:, :N_ARM]
        v = self.pos_gain * (pos - d.site_xpos[self.site])
        cap = self.max_lin if max_lin is None else max_lin
        speed = np.linalg.norm(v)
        if speed > cap:
            v *= cap / speed
        twist[:3] = v
        if rot is None:
            jac[3:] *= 0.05  # orientation almost free: keep the solve well-posed
            twist[3:] = 0.0
        else:
            w = self.rot_gain * rotation_error(rot, d.site_xmat[self.site].reshape(3, 3))
            ang = np.linalg.norm(w)
            if ang > self.max_rot:
                w *= self.max_rot / ang
            twist[3:] = w
        q = d.qpos[:N_ARM]
        # damped pseudo-inverse; null-space term: toward the rest posture, away from the joint limits
        jjt = jac @ jac.T
        jjt[np.diag_indices(6)] += self.lam2
        pinv = jac.T @ np.linalg.inv(jjt)
        qdot = pinv @ twist
        posture = self.posture_gain * (self.rest - q)
        posture += LIMIT_GAIN * (np.maximum(self._lim_lo - q, 0.0) - np.maximum(q - self._lim_hi, 0.0))
        qdot += posture - pinv @ (jac @ posture)
        # joint velocity -> servo target (damped servo: kp·(target − q) = damping·qdot + bias) -> action
        target = d.qpos[:N_ROBOT].copy()
        target[:N_ARM] += (self._servo_damping[:N_ARM] * qdot + d.qfrc_bias[:N_ARM]) * self._inv_kp[:N_ARM]
        act = np.empty(N_ROBOT)
        act[:N_ARM] = (target[:N_ARM] - obs[:N_ARM]) * self._scale
        act[N_ARM:] = grip
        return act


def axis_rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    """3x3 rotation by `angle` about the unit vector `axis` (Rodrigues)."""
    x, y, z = axis
    k = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    return np.eye(3) + np.sin(angle) * k + (1.0 - np.cos(angle)) * (k @ k)


# ---------------------------------------------------------------- scripts
Target = Callable[[], tuple[np.ndarray, np.ndarray | None]]


@dataclass
class Phase:
    """One segment of a script: servo the end effector to `target()` with the gripper at `grip`.

    Ends when the position error < `tol` and the rotation error < `rot_tol` (after at least `min_steps`), when
    `done()` returns True, or after `steps` steps.
    """
    target: Target
    grip: float = OPEN
    tol: float = 0.02
    rot_tol: float = 0.15
    steps: int = 30
    min_steps: int = 0
    done: Callable[[], bool] | None = None
    speed: float | None = None  # cap on the end-effector speed (m/s); None: the controller's
    noise: float = 1.0  # scale of the waypoint noise on the target position (small near contacts)


@dataclass
class Script:
    """Phases to run; `retreat` is built and run once the main phases end (or the subtask completes early,
    if `early_stop`)."""
    phases: list[Phase]
    retreat: Callable[[], list[Phase]]
    early_stop: bool = False


class _Scene:
    """Read-only views of the simulator state that the scripts need (sites, joints, end effector)."""

    def __init__(self, sim: KitchenSim, ctrl: TaskSpaceController):
        self.sim, self.model, self.data, self.ctrl = sim, sim.model, sim.data, ctrl

    def site(self, name: str) -> np.ndarray:
        return self.data.site_xpos[self.model.site(name).id].copy()

    def qpos(self, joint: str) -> float:
        return float(self.data.qpos[self.model.joint(joint).qposadr[0]])

    def body_pos(self, name: str) -> np.ndarray:
        return self.data.xpos[self.model.body(name).id].copy()

    def body_yaw(self, name: str) -> float:
        xmat = self.data.xmat[self.model.body(name).id]
        return float(np.arctan2(xmat[3], xmat[0]))


def fixed(pos, rot=None) -> Target:
    pos = np.asarray(pos, dtype=float)
    return lambda: (pos, rot)


# Safe plane in front of the kitchen (m): every script first backs off to y <= SAFE_Y, then moves within it.
SAFE_Y = 0.22


def approach(scene: _Scene, pre: np.ndarray, rot: np.ndarray, grip: float = OPEN) -> list[Phase]:
    """Back off from wherever the arm is (open gripper, y <= SAFE_Y), move across to `pre`'s x/z, then in to
    `pre` with orientation `rot`. Loose tolerances on the via points."""
    ee = scene.ctrl.ee_pos()
    phases = []
    if ee[1] > SAFE_Y + 0.05:
        back = np.array([ee[0], SAFE_Y, np.clip(ee[2], 1.9, 2.5)])
        phases.append(Phase(fixed(back, None), grip=OPEN, tol=0.06, steps=15, noise=0.0))
    via = np.array([pre[0], min(pre[1], SAFE_Y), pre[2]])
    phases.append(Phase(fixed(via, rot), grip=grip, tol=0.05, rot_tol=0.3, steps=30))
    phases.append(Phase(fixed(pre, rot), grip=grip, tol=0.01, rot_tol=0.05, steps=20, noise=0.3))
    return phases


def back_off(scene: _Scene, direction: np.ndarray, dist: float = 0.1, release: int = 0) -> list[Phase]:
    """Retreat: open the gripper for `release` steps in place, then move `dist` along `direction`."""
    ee = scene.ctrl.ee_pos()
    rot = scene.ctrl.ee_rot()
    phases = []
    if release:
        phases.append(Phase(fixed(ee, rot), grip=OPEN, tol=0.0, steps=release, noise=0.0))
    phases.append(Phase(fixed(ee + dist * np.asarray(direction), rot), grip=OPEN, tol=0.03, rot_tol=1.0,
                        steps=10, noise=0.0))
    return phases


def turn(scene: _Scene, joint: str, goal: float, grasp_pos: np.ndarray, grasp_rot: np.ndarray,
         lead: float, steps: int, grip: float = CLOSE, rot_ratio: float = 1.0) -> Phase:
    """Turns a hinge joint to `goal` by moving the gripper (holding the handle at `grasp_pos`, `grasp_rot`)
    along the arc around the joint axis, `lead` rad ahead of the joint's current angle; the gripper turns by
    `rot_ratio` times the arc angle (< 1 where the handle may roll in the fingers and reach is short)."""
    jid = scene.model.joint(joint).id
    anchor = scene.data.xanchor[jid].copy()
    axis = scene.data.xaxis[jid].copy()
    q0 = scene.qpos(joint)
    sign = 1.0 if goal > q0 else -1.0
    arm = grasp_pos - anchor

    def target():
        q = scene.qpos(joint)
        phi = (q - q0) + sign * lead
        phi = sign * min(sign * phi, sign * (goal - q0) + 0.1)
        r = axis_rotation(axis, phi)
        return anchor + r @ arm, axis_rotation(axis, rot_ratio * phi) @ grasp_rot

    return Phase(target, grip=grip, tol=0.0, rot_tol=0.0, steps=steps,
                 done=lambda: sign * (scene.qpos(joint) - goal) >= 0.0)


# Tuned script parameters (measured over seeds; see the module docstring).
R_DOWN = np.array([[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, -1.0]]).T  # approach -z, fingers along y
# microwave: approach pitched down (rad; the handle is out of reach level), arc lead (rad), door goal (rad), and
# gripper yaw / door angle ratio (the round handle rolls in the fingers; full yaw runs out of reach and slips)
MICRO_PITCH, MICRO_LEAD, MICRO_GOAL, MICRO_RATIO = 0.5, 0.15, -0.75, 0.1
HINGE_LEAD, HINGE_RATIO = 0.3, 0.3  # the same for the right hinge door
# knobs: the damped knob (2 N·m·s/rad) needs the fingertips pressed on the knob's disc (grasp 1.5 cm behind
# the knob site) and a small lead, else the fin slips out of the fingers
KNOB_DEPTH, KNOB_LEAD = -0.015, 0.25
LIGHT_PITCH, LIGHT_SPEED = 0.45, 0.3  # light switch: finger paddle pitched down to span the lever; push speed


def script_microwave(scene: _Scene) -> Script:
    """Grasp the vertical handle bar (approach along the door normal, pitched down), pull it along the door's
    arc to the goal angle, release, back off."""
    handle = scene.site("microhandle_site")
    yaw = scene.body_yaw("microdoorroot")  # door normal = rot_z(yaw) · (0, 1, 0)
    rot = rot_z(yaw) @ rot_x(-MICRO_PITCH) @ R_FORWARD
    grasp = handle
    phases = approach(scene, grasp - 0.12 * rot[:, 2], rot)
    phases += [Phase(fixed(grasp, rot), tol=0.015, steps=20, noise=0.3, speed=0.3),
               Phase(fixed(grasp, rot), grip=CLOSE, tol=0.0, steps=4, noise=0.0),
               turn(scene, "microwave", MICRO_GOAL, grasp, rot, lead=MICRO_LEAD, steps=65, rot_ratio=MICRO_RATIO)]
    return Script(phases, lambda: back_off(scene, -scene.ctrl.ee_rot()[:, 2], 0.1, release=3))


def script_hinge(scene: _Scene) -> Script:
    """Grasp the right door's handle bar, pull it along the door's arc to 1.45 rad, release, back off."""
    handle = scene.site("hinge_site2")
    rot = R_FORWARD
    phases = approach(scene, handle - np.array([0.0, 0.12, 0.0]), rot)
    phases += [Phase(fixed(handle, rot), tol=0.015, steps=20, noise=0.3, speed=0.3),
               Phase(fixed(handle, rot), grip=CLOSE, tol=0.0, steps=4, noise=0.0),
               turn(scene, "right_hinge_cabinet", 1.45, handle, rot, lead=HINGE_LEAD, steps=70, rot_ratio=HINGE_RATIO)]
    return Script(phases, lambda: back_off(scene, -scene.ctrl.ee_rot()[:, 2], 0.1, release=3))


def _knob(scene: _Scene, knob: str, joint: str, goal: float) -> Script:
    """Close the fingers around the knob's fin, fingertips on its disc, and turn the wrist about the knob axis."""
    site = scene.site(knob)
    grasp = site + np.array([0.0, KNOB_DEPTH, 0.0])
    rot = R_FORWARD
    phases = approach(scene, grasp - np.array([0.0, 0.1, 0.0]), rot)
    phases += [Phase(fixed(grasp, rot), tol=0.012, steps=20, noise=0.3, speed=0.3),
               Phase(fixed(grasp, rot), grip=CLOSE, tol=0.0, steps=3, noise=0.0),
               turn(scene, joint, goal, grasp, rot, lead=KNOB_LEAD, steps=50)]
    return Script(phases, lambda: back_off(scene, np.array([0.0, -1.0, 0.0]), 0.1, release=2))


def script_bottom_burner(scene: _Scene) -> Script:
    return _knob(scene, "knob2_site", "knob_Joint_2", -1.0)


def script_top_burner(scene: _Scene) -> Script:
    return _knob(scene, "knob4_site", "knob_Joint_4", -1.0)


def script_light(scene: _Scene) -> Script:
    """Push the switch lever (a capsule sticking out toward the robot) to the left with the closed fingers,
    pitched down so that the finger paddle spans the lever's height."""
    site = scene.site("light_site")
    rot = rot_x(-LIGHT_PITCH) @ R_FORWARD
    start = site + np.array([0.06, -0.03, 0.005])
    phases = approach(scene, start - np.array([0.0, 0.08, 0.0]), rot, grip=CLOSE)
    phases += [Phase(fixed(start, rot), grip=CLOSE, tol=0.01, steps=20, noise=0.3, speed=0.3),
               Phase(fixed(site + np.array([-0.12, -0.03, 0.005]), rot), grip=CLOSE, tol=0.015, steps=40,
                     noise=0.3, speed=LIGHT_SPEED)]
    return Script(phases, lambda: back_off(scene, np.array([0.0, -1.0, 0.0]), 0.1), early_stop=True)


def script_slide(scene: _Scene) -> Script:
    """Push the slide door's handle to the right with the closed fingers."""
    site = scene.site("slide_site")
    rot = R_FORWARD
    start = site + np.array([-0.07, -0.01, 0.0])
    phases = approach(scene, start - np.array([0.0, 0.1, 0.0]), rot, grip=CLOSE)
    phases += [Phase(fixed(start, rot), grip=CLOSE, tol=0.015, steps=20),
               Phase(fixed(site + np.array([0.33, -0.01, 0.0]), rot), grip=CLOSE, tol=0.02, steps=40)]
    return Script(phases, lambda: back_off(scene, np.array([0.0, -1.0, 0.0]), 0.1), early_stop=True)


def script_kettle(scene: _Scene) -> Script:
    """Top-down grasp of the handle bar, lift, carry toward the back-left burner (to 0.12 m short of the goal:
    the completion test allows 0.3, and the hood limits the reach), lower, release, rise."""
    handle = scene.site("kettle_site")
    kettle = scene.body_pos("kettle")
    goal = OBS_ELEMENT_GOALS["kettle"][:3]
    place = handle + (goal - kettle) + np.array([0.0, -0.12, 0.0])
    place[2] = handle[2] + 0.01
    rot = R_DOWN
    lift = 0.07
    phases = approach(scene, handle + np.array([0.0, 0.0, 0.12]), rot)
    phases += [Phase(fixed(handle, rot), tol=0.012, steps=20, noise=0.3, speed=0.3),
               Phase(fixed(handle, rot), grip=CLOSE, tol=0.0, steps=4, noise=0.0),
               Phase(fixed(handle + np.array([0.0, 0.0, lift]), rot), grip=CLOSE, tol=0.03, steps=15, noise=0.0),
               Phase(fixed(place + np.array([0.0, 0.0, lift]), rot), grip=CLOSE, tol=0.03, steps=30),
               Phase(fixed(place, rot), grip=CLOSE, tol=0.02, steps=15, noise=0.0)]
    return Script(phases, lambda: back_off(scene, np.array([0.0, 0.0, 1.0]), 0.1, release=3))


EARLY_STOP_DIST = 0.15  # push scripts stop once this close to the goal (the completion threshold is 0.3)


def _goal_distance(obs: np.ndarray, name: str) -> float:
    return float(np.linalg.norm(obs[OBS_ELEMENT_INDICES[name]] - OBS_ELEMENT_GOALS[name]))


_TRACE: Callable | None = None  # debugging hook: called (scene, phase, steps, retreating) after each phase

SCRIPTS: dict[str, Callable[[_Scene], Script]] = {
    "microwave": script_microwave,
    "kettle": script_kettle,
    "bottom burner": script_bottom_burner,
    "top burner": script_top_burner,
    "light switch": script_light,
    "slide cabinet": script_slide,
    "hinge cabinet": script_hinge,
}


def run_subtask(sim: KitchenSim, name: str, rng: np.random.Generator, obs: np.ndarray,
                noise: ScriptNoise | None = None, max_steps: int = 120) -> tuple[np.ndarray, np.ndarray, bool]:
    """Runs the script for subtask `name` from the simulator's current state.

    Args:
        sim: the simulator, stepped with `sim.step(action, rng)`.
        name: one of `SUBTASK_NAMES`.
        rng: drives the observation noise, the waypoint noise and the action noise.
        obs: the current noisy 30-d observation.
        noise: waypoint / action noise (None: `ScriptNoise()` defaults).
        max_steps: step budget.

    Returns:
        (obs_seq (T, 30) float32: obs_seq[t] is the observation actions[t] was taken in; actions (T, 9) float32 in
        [-1, 1]; success: the subtask is complete in the last observation). T = 0 if it is complete already.
    """
    if name not in SCRIPTS:
        raise ValueError(f"unknown kitchen subtask {name!r}; available: {list(SUBTASK_NAMES)}")
    noise = ScriptNoise() if noise is None else noise
    ctrl = TaskSpaceController(sim)
    scene = _Scene(sim, ctrl)
    obs_seq, actions = [], []
    if subtask_complete(obs, name):
        return np.zeros((0, len(obs)), np.float32), np.zeros((0, N_ROBOT), np.float32), True
    script = SCRIPTS[name](scene)
    queue = list(script.phases)
    retreating = False
    while len(actions) < max_steps:
        if not queue:
            if retreating:
                break
            queue, retreating = list(script.retreat()), True
            continue
        phase = queue.pop(0)
        start = len(actions)
        offset = rng.normal(0.0, noise.waypoint * phase.noise, 3) if phase.noise * noise.waypoint > 0 else np.zeros(3)
        for k in range(phase.steps):
            if len(actions) >= max_steps:
                break
            pos, rot = phase.target()
            pos = pos + offset
            act = ctrl.action(obs, pos, rot, phase.grip, phase.speed)
            if noise.action > 0:
                act = act + rng.normal(0.0, noise.action, N_ROBOT)
            act = np.clip(act, -1.0, 1.0)
            obs_seq.append(obs)
            actions.append(act)
            obs = sim.step(act, rng)
            if script.early_stop and not retreating and _goal_distance(obs, name) < EARLY_STOP_DIST:
                queue = []
                break
            if phase.done is not None and phase.done():
                break
            if k + 1 >= phase.min_steps and phase.tol > 0:
                err = np.linalg.norm(pos - ctrl.ee_pos())
                if err < phase.tol and (rot is None or np.linalg.norm(rotation_error(rot, ctrl.ee_rot())) < phase.rot_tol):
                    break
        if _TRACE is not None:
            _TRACE(scene, phase, len(actions) - start, retreating)
    return (np.asarray(obs_seq, np.float32).reshape(-1, len(obs)), np.asarray(actions, np.float32).reshape(-1, N_ROBOT),
            bool(subtask_complete(obs, name)))
