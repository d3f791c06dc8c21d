"""Closed-loop scripted primitives for the CALVIN-like play table (for a scripted play-data generator).

Every primitive is a function `(env_or_sim, rng, noise) -> (obs_seq, actions, success)`:
- `env_or_sim`: a `CalvinEnv` (stepped through `env.step`, observations in its layout) or a `CalvinSim` (stepped
  directly, 39-d full observations);
- `rng`: `np.random.Generator` (action noise, waypoint jitter, free-motion targets);
- `noise`: std of the Gaussian noise added to the 6 motion dims of every action (clipped to [−1, 1]); waypoints
  of the free approach moves are also jittered by U(−1, 1)·noise·2 cm. 0 = noise-free.
Returns `obs_seq` (T+1, d) float32 (the first entry is the observation before the first action), `actions`
(T, 7) float32 (the executed, noisy actions, in the env's relative-action interface) and `success` (bool, the
primitive's goal state holds at the end).

The controller is the prototype's waypoint follower (calvin.md §3, `full_seq.py`): each action moves the
*integrated target pose* (privileged state that a generator may use) toward the waypoint, saturated at the action
bounds; a waypoint is reached when the measured TCP is within `tol` and the target orientation within 0.02 rad.
Primitives start from arbitrary states: they first retreat to a safe height in front of the desk, move above their
approach point, act, and retreat again, so that any primitive can follow any other.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pybullet as p

from calvin.env import MAX_REL_ORN, MAX_REL_POS, CalvinSim, wrap_angle
from calvin.scene import SWITCH_AXIS

Z_SAFE = 0.62  # TCP height that clears everything in front of the cabinet (y <= Y_SAFE)
Y_SAFE = -0.12
E0 = np.array([3.0905, -0.0291, 1.5001])  # TCP Euler at reset: gripper pointing down, fingers along world x
OPEN, CLOSE = 1.0, -1.0
FREE_LOW, FREE_HIGH = np.array([-0.25, -0.32, 0.50]), np.array([0.30, -0.14, 0.70])  # free-motion target box


def _tilted(e: np.ndarray, angle: float) -> np.ndarray:
    """The orientation `e` rotated by `angle` about world x, as Euler angles continuous with `e`."""
    q = p.multiplyTransforms([0, 0, 0], p.getQuaternionFromEuler([angle, 0, 0]), [0, 0, 0],
                             p.getQuaternionFromEuler(e))[1]
    return e + wrap_angle(np.array(p.getEulerFromQuaternion(q)) - e)


E_SWITCH = _tilted(E0, 0.5236)  # 30° about world x: fingertips can get under / onto the switch lever


class _Run:
    """Steps an env or a sim and records observations and actions."""

    def __init__(self, env_or_sim, rng: np.random.Generator, noise: float, max_steps: int = 400):
        self.env = env_or_sim if hasattr(env_or_sim, "sim") else None
        self.sim: CalvinSim = env_or_sim.sim if self.env is not None else env_or_sim
        self.rng, self.noise, self.max_steps = rng, float(noise), max_steps
        self.obs = [self._observe()]
        self.actions: list[np.ndarray] = []

    def _observe(self) -> np.ndarray:
        return self.env.observe() if self.env is not None else self.sim.observe(full=True)

    @property
    def out_of_budget(self) -> bool:
        return len(self.actions) >= self.max_steps

    def step(self, a: np.ndarray) -> None:
        a = np.asarray(a, dtype=np.float64).copy()
        if self.noise > 0:
            a[:6] += self.rng.normal(0.0, self.noise, 6)
        a = np.clip(a, -1.0, 1.0)
        if self.env is not None:
            self.env.step(a)
        else:
            self.sim.step(a)
        self.actions.append(a.astype(np.float32))
        self.obs.append(self._observe())

    def go(self, pos, eul=E0, grip: float = CLOSE, n: int = 60, tol: float = 0.01, jitter: bool = False) -> bool:
        """Moves the target toward (pos, eul) until the measured TCP is within tol. Returns True if reached."""
        pos = np.asarray(pos, dtype=np.float64)
        if jitter and self.noise > 0:
            pos = pos + self.rng.uniform(-1, 1, 3) * self.noise * 0.02
        eul = np.asarray(eul, dtype=np.float64)
        for _ in range(n):
            de = wrap_angle(eul - self.sim.target_orn)
            tcp = self.sim.tcp_pose()[0]
            if np.linalg.norm(pos - tcp) < tol and np.abs(de).max() < 0.02:
                return True
            if self.out_of_budget:
                return False
            a = np.zeros(7)
            a[:3] = np.clip((pos - self.sim.target_pos) / MAX_REL_POS, -1, 1)
            a[3:6] = np.clip(de / MAX_REL_ORN, -1, 1)
            a[6] = grip
            self.step(a)
        return bool(np.linalg.norm(pos - self.sim.tcp_pose()[0]) < tol)

    def retreat(self, grip: float = CLOSE) -> None:
        """Leaves the desk from anywhere: back out to y <= Y_SAFE if in front of the cabinet, then up to Z_SAFE."""
        tcp = self.sim.tcp_pose()[0]
        if tcp[1] > Y_SAFE and tcp[2] < Z_SAFE - 0.02:
            self.go([tcp[0], Y_SAFE, max(tcp[2], 0.47)], self.sim.target_orn, grip, n=30, tol=0.02)
            tcp = self.sim.tcp_pose()[0]
        if tcp[2] < Z_SAFE - 0.02:
            self.go([tcp[0], tcp[1], Z_SAFE], self.sim.target_orn, grip, n=30, tol=0.02)

    def transit(self, pos, eul=E0, grip: float = CLOSE) -> None:
        """Retreat, then move at the safe height to above `pos` (y clamped to Y_SAFE) with orientation `eul`."""
        self.retreat(grip)
        self.go([pos[0], min(pos[1], Y_SAFE), Z_SAFE], eul, grip, n=60, tol=0.02, jitter=True)

    def result(self, success: bool):
        return (np.asarray(self.obs, dtype=np.float32), np.asarray(self.actions, dtype=np.float32).reshape(-1, 7),
                bool(success))


def _scene(run: _Run) -> np.ndarray:
    return run.sim.scene_obs(with_blocks=False)


# ---------------------------------------------------------------- drawer
def open_drawer(env_or_sim, rng: np.random.Generator, noise: float = 0.0):
    """Hook the closed fingers between the handle bar and the drawer front, pull along −y. Success: drawer > 0.15."""
    run = _Run(env_or_sim, rng, noise)
    d = _scene(run)[1]
    x, y_gap = 0.177, -0.21 - d  # between the bar (y −0.26..−0.24 at d = 0) and the drawer front (y −0.18)
    run.transit([x, y_gap, 0.44])
    run.go([x, y_gap, 0.44], n=40)
    run.go([x, y_gap, 0.36], n=40)
    run.go([x, -0.42, 0.36], n=60)
    run.go([x, -0.42, 0.50], n=30, tol=0.02)
    run.retreat()
    return run.result(_scene(run)[1] > 0.15)


def close_drawer(env_or_sim, rng: np.random.Generator, noise: float = 0.0):
    """Put the closed fingers in front of the handle bar and push along +y. Success: drawer < 0.05."""
    run = _Run(env_or_sim, rng, noise)
    d = _scene(run)[1]
    x, y_front = 0.177, -0.30 - d  # 4 cm in front of the bar
    run.transit([x, y_front, 0.44])
    run.go([x, y_front, 0.44], n=40)
    run.go([x, y_front, 0.36], n=40)
    run.go([x, -0.255, 0.36], n=60)
    run.go([x, -0.32, 0.36], n=30, tol=0.02)
    run.retreat()
    return run.result(_scene(run)[1] < 0.05)


# ---------------------------------------------------------------- sliding door
def _slider(env_or_sim, rng, noise, left: bool):
    run = _Run(env_or_sim, rng, noise)
    s = _scene(run)[0]
    handle_lo, handle_hi = 0.02 - s, 0.06 - s  # handle bar x extent at slide s (the door moves along −x)
    y, z = -0.025, 0.53
    # The sweep stops just short of pushing the handle against the door's joint limit (pushing against the limit
    # can wedge the fingers behind the handle bar); the door's momentum usually carries it further.
    # Pushing −x, the hand body (~0.105 m left of the TCP) meets the handle's top; pushing +x, the fingers do.
    if left:  # start right of the handle, sweep −x until the handle is at slide ≈ 0.235
        x0, x1 = handle_hi + 0.15, -0.07
    else:  # start left of the handle, sweep +x until the handle is at slide ≈ 0.01
        x0, x1 = handle_lo - 0.15, -0.015
    run.transit([x0, y, z])
    run.go([x0, y, Z_SAFE], n=40)
    run.go([x0, y, z], n=40)
    run.go([x1, y, z], n=80)
    run.go([x1, Y_SAFE, z + 0.07], n=30, tol=0.02)
    run.retreat()
    s1 = _scene(run)[0]
    return run.result(s1 > 0.18 if left else s1 < 0.08)


def slider_left(env_or_sim, rng: np.random.Generator, noise: float = 0.0):
    """Push the sliding door's handle toward −x with the side of the hand. Success: slide > 0.18."""
    return _slider(env_or_sim, rng, noise, left=True)


def slider_right(env_or_sim, rng: np.random.Generator, noise: float = 0.0):
    """Push the sliding door's handle toward +x with the side of the hand. Success: slide < 0.08."""
    return _slider(env_or_sim, rng, noise, left=False)


# ---------------------------------------------------------------- button
def press_button(env_or_sim, rng: np.random.Generator, noise: float = 0.0):
    """Press the button down with the closed fingers (toggles the LED). Success: the LED toggled."""
    run = _Run(env_or_sim, rng, noise)
    led0 = run.sim.led
    bx, by = -0.12, -0.12
    run.transit([bx, by, 0.56])
    run.go([bx, by, 0.56], n=40)
    run.go([bx, by, 0.465], n=30)
    run.go([bx, by, 0.56], n=30, tol=0.02)
    run.retreat()
    return run.result(run.sim.led != led0)


# ---------------------------------------------------------------- switch
_SWITCH_BAR0 = np.array([0.30, 0.02, 0.515])  # lever centre at switch = 0
_B = np.array([0.0, 0.8660254, -0.5])  # perpendicular to the slot, into the cabinet


def _switch(env_or_sim, rng, noise, up: bool):
    run = _Run(env_or_sim, rng, noise)
    u = _scene(run)[3]
    A = SWITCH_AXIS
    bar = _SWITCH_BAR0 + u * A
    if up:  # fingertips under the lever, push along +A
        contact = bar - 0.018 * A - 0.0128 * _B
        end = _SWITCH_BAR0 + 0.085 * A - 0.018 * A - 0.0128 * _B
    else:  # fingertips on top of the lever, push along −A
        contact = bar + 0.025 * A - 0.0128 * _B
        end = _SWITCH_BAR0 - 0.008 * A + 0.025 * A - 0.0128 * _B
    approach = contact + np.array([0.0, -0.06, 0.0 if up else 0.03])
    run.transit(approach, E_SWITCH)
    run.go(approach, E_SWITCH, n=50)
    run.go(contact, E_SWITCH, n=30)
    run.go(end, E_SWITCH, n=40)
    run.go(end + np.array([0.0, -0.08, 0.02]), E_SWITCH, n=30, tol=0.02)
    run.retreat()
    run.go([run.sim.tcp_pose()[0][0], Y_SAFE, Z_SAFE], E0, n=30, tol=0.02)
    u1 = _scene(run)[3]
    return run.result(u1 > 0.06 if up else u1 < 0.03)


def switch_up(env_or_sim, rng: np.random.Generator, noise: float = 0.0):
    """Tilt the gripper 30° about x, get under the switch lever and push it up its slot. Success: switch > 0.06
    (lightbulb on)."""
    return _switch(env_or_sim, rng, noise, up=True)


def switch_down(env_or_sim, rng: np.random.Generator, noise: float = 0.0):
    """Tilt the gripper 30° about x, get on top of the switch lever and push it down its slot. Success: switch <
    0.03 (lightbulb off)."""
    return _switch(env_or_sim, rng, noise, up=False)


# ---------------------------------------------------------------- free motion
def free_motion(env_or_sim, rng: np.random.Generator, noise: float = 0.0):
    """Move to a random pose in front of the desk (position uniform in FREE_LOW..FREE_HIGH, orientation E0 +
    U(−0.3, 0.3)³ rad, random gripper). Success: TCP within 2 cm and the target orientation within 0.02 rad."""
    run = _Run(env_or_sim, rng, noise)
    pos = rng.uniform(FREE_LOW, FREE_HIGH)
    eul = E0 + rng.uniform(-0.3, 0.3, 3)
    grip = OPEN if rng.random() < 0.5 else CLOSE
    run.transit(pos, eul, grip)
    ok = run.go(pos, eul, grip, n=60, tol=0.02)
    return run.result(ok)


PRIMITIVES: dict[str, Callable] = {
    "open_drawer": open_drawer, "close_drawer": close_drawer, "slider_left": slider_left,
    "slider_right": slider_right, "press_button": press_button, "switch_up": switch_up, "switch_down": switch_down,
    "free_motion": free_motion,
}
