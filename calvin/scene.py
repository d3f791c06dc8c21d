"""Procedural CALVIN scene D (play table) and the CALVIN Panda for PyBullet (spec `calvin.md` §1-§3).

Nothing of calvin_env is vendored (its licence is ambiguous, calvin.md §2). Instead:

- The desk is a URDF text generated here: static boxes for the body, and the four articulated parts of
  `calvin_table_D.urdf` loaded with `globalScaling=0.8`, with the measured world-frame joint types, axes, ranges,
  positions and masses (calvin.md's scene-D table): sliding door (prismatic along −x, 0..0.28), drawer (prismatic
  along −y, 0..0.22), button (prismatic along −z, 0..0.02), switch (prismatic along (0, 0.5, 0.866), 0..0.088),
  and the fixed LED, lightbulb and shelf plank. Collision shapes are boxes/cylinders, not the real meshes.
- The robot is pybullet_data's `franka_panda/panda.urdf` (Apache-2.0, the file CALVIN's Panda is made from),
  patched at load time like `panda_longer_finger.urdf`: box "longer fingers" (x ±0.0105, y 0.004..0.027,
  z 0..0.0964 in the finger frame) and a fixed `tcp` link 0.14 m below `panda_hand`.

Blocks (red, blue, pink) are optional (`add_blocks`); SkiMo's 21-d observation excludes them.
"""

from __future__ import annotations

import os
import re
import tempfile

import numpy as np
import pybullet as p
import pybullet_data

# Robot: base pose (facing +y), reset joints, real joint limits (calvin.md "Action and control").
ROBOT_BASE = (-0.34, -0.46, 0.24)
Q0 = (-1.21779206, 1.03987646, 2.11978261, -2.34205014, -0.87015947, 1.64119353, 0.55344866)
LL = np.array([-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973])
UL = np.array([2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973])
FINGER_OPEN = 0.04  # per finger; width 0.08 when open

# Desk joints, in scene_obs order (doors, then button, then switch).
SLIDE, DRAWER, BUTTON, SWITCH = "base__slide", "base__drawer", "base__button", "base__switch"
DESK_JOINTS = (SLIDE, DRAWER, BUTTON, SWITCH)
JOINT_RANGES = {SLIDE: (0.0, 0.28), DRAWER: (0.0, 0.22), BUTTON: (0.0, 0.02), SWITCH: (0.0, 0.088)}
SWITCH_AXIS = np.array([0.0, 0.5, 0.8660254])
BUTTON_PRESSED = 0.01  # LED toggles on a rising edge of button > 0.01
SWITCH_ON = 0.044  # lightbulb on while switch > 0.044
DOOR_FRICTION_FORCE = 4.0  # VELOCITY_CONTROL(target 0) on slide, drawer, switch; POSITION_CONTROL(0) on button

# Blocks (calvin.md "Other scene facts"): half extents, mass 1 kg, colour.
BLOCKS = {
    "red": ((0.028, 0.02, 0.02), (1.0, 0.1, 0.1, 1.0)),
    "blue": ((0.02, 0.02, 0.02), (0.1, 0.2, 1.0, 1.0)),
    "pink": ((0.04, 0.02, 0.02), (1.0, 0.4, 0.8, 1.0)),
}
BLOCK_SURFACES = {  # [[x_lo, y_lo], [x_hi, y_hi]] at z = 0.46
    "table": ((0.0, -0.15), (0.35, -0.03)),
    "slider_left": ((-0.32, 0.05), (-0.16, 0.12)),
    "slider_right": ((-0.05, 0.05), (0.13, 0.12)),
}
TABLE_Z = 0.46

_WOOD = "0.55 0.35 0.2 1"
_HANDLE = "0.15 0.15 0.15 1"


# ---------------------------------------------------------------- URDF text
def _box(lo, hi, rgba: str = _WOOD, mat: str = "wood") -> str:
    lo, hi = np.array(lo, float), np.array(hi, float)
    c, s = (lo + hi) / 2, hi - lo
    geo = f'<geometry><box size="{s[0]:.4f} {s[1]:.4f} {s[2]:.4f}"/></geometry>'
    org = f'<origin xyz="{c[0]:.4f} {c[1]:.4f} {c[2]:.4f}" rpy="0 0 0"/>'
    return (f'<visual>{org}{geo}<material name="{mat}"><color rgba="{rgba}"/></material></visual>'
            f'<collision>{org}{geo}</collision>')


def _link(name: str, mass: float, shapes: list[str], com=(0.0, 0.0, 0.0)) -> str:
    inertial = (f'<inertial><origin xyz="{com[0]} {com[1]} {com[2]}"/><mass value="{mass}"/>'
                '<inertia ixx="0.01" ixy="0" ixz="0" iyy="0.01" iyz="0" izz="0.01"/></inertial>')
    return f'<link name="{name}">{inertial}{"".join(shapes)}</link>'


def _joint(name: str, jtype: str, child: str, axis=(0, 0, 0), lim=None, parent: str = "base_link") -> str:
    s = (f'<joint name="{name}" type="{jtype}"><parent link="{parent}"/><child link="{child}"/>'
         f'<origin xyz="0 0 0" rpy="0 0 0"/><axis xyz="{axis[0]} {axis[1]} {axis[2]}"/>')
    if lim is not None:
        s += f'<limit lower="{lim[0]}" upper="{lim[1]}" effort="0" velocity="0"/>'
    return s + "</joint>"


def desk_urdf() -> str:
    """Scene D's desk as URDF text. All joint frames sit at the world origin (the desk is loaded at the origin),
    so the link geometry below is in world coordinates at joint state 0."""
    base = [
        _box([-0.44, -0.18, 0.42], [0.44, 0.02, 0.46]),    # table top (front part), top at z = 0.46
        _box([-0.44, 0.02, 0.40], [0.44, 0.18, 0.42]),     # under the shelf plank
        _box([0.16, 0.02, 0.42], [0.44, 0.18, 0.46]),      # right part of the back
        _box([-0.44, -0.18, 0.0], [-0.40, -0.14, 0.42]),   # legs
        _box([0.40, -0.18, 0.0], [0.44, -0.14, 0.42]),
        _box([-0.44, 0.14, 0.0], [-0.40, 0.18, 0.42]),
        _box([0.40, 0.14, 0.0], [0.44, 0.18, 0.42]),
        _box([-0.06, -0.16, 0.28], [0.42, 0.18, 0.29]),    # drawer housing floor (the drawer does not rest on it)
        _box([-0.44, 0.16, 0.42], [0.44, 0.18, 0.648]),    # cabinet back wall
        _box([-0.44, 0.12, 0.628], [0.44, 0.16, 0.648]),   # cabinet top (behind the inclined front)
        _box([0.24, 0.08, 0.44], [0.36, 0.09, 0.64]),      # switch bay back panel (approximate, vertical)
        _box([-0.44, 0.02, 0.42], [-0.36, 0.16, 0.628]),   # cabinet left wall
        _box([0.16, 0.02, 0.46], [0.24, 0.16, 0.628]),     # divider (left shelf | switch bay)
        _box([0.36, 0.02, 0.46], [0.44, 0.16, 0.628]),     # right wall
    ]
    links = [_link("base_link", 0.0, base)]
    joints = []
    # sliding door: prismatic along world −x, 0..0.28 (move_slider_left: +0.15)
    door = ('<origin xyz="0.04 0.0665 0.5405" rpy="-0.5236 0 0"/>'
            '<geometry><box size="0.28 0.02 0.2204"/></geometry>')  # inclined (60°) panel, as the real mesh
    links.append(_link("slide_link", 1.543, [
        (f'<visual>{door}<material name="wood"><color rgba="{_WOOD}"/></material></visual>'
         f'<collision>{door}</collision>'),
        _box([0.02, -0.031, 0.476], [0.06, -0.02, 0.613], _HANDLE, "h"),  # vertical handle bar
        _box([0.02, -0.02, 0.476], [0.06, 0.02, 0.49], _HANDLE, "h"),     # lower standoff
        _box([0.02, -0.02, 0.60], [0.06, 0.098, 0.613], _HANDLE, "h"),    # upper standoff
    ], com=(0.04, 0.05, 0.55)))
    joints.append(_joint(SLIDE, "prismatic", "slide_link", (-1, 0, 0), JOINT_RANGES[SLIDE]))
    # drawer: prismatic along world −y, 0..0.22 (open_drawer: +0.12)
    links.append(_link("drawer_link", 4.231, [
        _box([-0.04, -0.18, 0.30], [0.40, -0.16, 0.40]),   # front
        _box([-0.04, -0.16, 0.30], [0.40, 0.06, 0.32]),    # floor
        _box([-0.04, -0.16, 0.32], [-0.02, 0.06, 0.38]),   # sides and back
        _box([0.38, -0.16, 0.32], [0.40, 0.06, 0.38]),
        _box([-0.02, 0.04, 0.32], [0.38, 0.06, 0.38]),
        _box([0.06, -0.26, 0.345], [0.294, -0.24, 0.375], _HANDLE, "h"),  # handle bar and standoffs
        _box([0.06, -0.24, 0.345], [0.085, -0.18, 0.375], _HANDLE, "h"),
        _box([0.269, -0.24, 0.345], [0.294, -0.18, 0.375], _HANDLE, "h"),
    ], com=(0.18, -0.05, 0.33)))
    joints.append(_joint(DRAWER, "prismatic", "drawer_link", (0, -1, 0), JOINT_RANGES[DRAWER]))
    # button: prismatic along world −z, 0..0.02 (toggles the LED on the press edge at 0.01)
    cyl = '<origin xyz="-0.12 -0.12 0.472"/><geometry><cylinder radius="0.035" length="0.03"/></geometry>'
    links.append(_link("button_link", 0.154, [
        f'<visual>{cyl}<material name="blk"><color rgba="0 0 0 1"/></material></visual><collision>{cyl}</collision>'
    ], com=(-0.12, -0.12, 0.472)))
    joints.append(_joint(BUTTON, "prismatic", "button_link", (0, 0, -1), JOINT_RANGES[BUTTON]))
    # switch: prismatic along (0, 0.5, 0.866), 0..0.088 (lightbulb on while > 0.044)
    sw = '<origin xyz="0.30 0.02 0.515" rpy="-0.5236 0 0"/><geometry><box size="0.10 0.02 0.03"/></geometry>'
    links.append(_link("switch_link", 0.239, [
        f'<visual>{sw}<material name="g"><color rgba="0.4 0.4 0.4 1"/></material></visual><collision>{sw}</collision>'
    ], com=(0.30, 0.02, 0.515)))
    joints.append(_joint(SWITCH, "prismatic", "switch_link", tuple(SWITCH_AXIS), JOINT_RANGES[SWITCH]))
    # fixed: LED, lightbulb, plank
    links.append(_link("led_link", 0.204, [_box([-0.203, 0.137, 0.645], [-0.037, 0.183, 0.667], "1 1 1 1", "w")]))
    joints.append(_joint("base__led", "fixed", "led_link"))
    bulb = '<origin xyz="0.30 0.16 0.68"/><geometry><sphere radius="0.031"/></geometry>'
    links.append(_link("light_link", 0.174, [
        f'<visual>{bulb}<material name="w"><color rgba="1 1 1 1"/></material></visual><collision>{bulb}</collision>']))
    joints.append(_joint("base__light", "fixed", "light_link"))
    links.append(_link("plank_link", 2.844, [_box([-0.36, 0.02, 0.42], [0.16, 0.16, 0.44])]))
    joints.append(_joint("base__plank", "fixed", "plank_link"))
    # pybullet's URDF parser chokes on very long lines: one element per line
    return ('<?xml version="1.0"?>\n<robot name="calvin_like_desk_D">' + "".join(links) + "".join(joints)
            + "</robot>").replace("><", ">\n<")


def panda_urdf() -> str:
    """pybullet_data's panda.urdf with box longer fingers and a `tcp` link 0.14 m below `panda_hand` (rpy 0)."""
    d = pybullet_data.getDataPath()
    with open(os.path.join(d, "franka_panda", "panda.urdf")) as f:
        txt = f.read()
    txt = txt.replace("package://meshes/", os.path.join(d, "franka_panda", "meshes") + "/")

    def finger(name: str, sign: int) -> str:
        box = (f'<origin xyz="0 {sign * 0.0155} 0.0482" rpy="0 0 0"/>'
               '<geometry><box size="0.021 0.023 0.0964"/></geometry>')
        return (f'<link name="{name}"><contact><lateral_friction value="1.0"/><spinning_friction value="0.1"/></contact>'
                '<inertial><origin xyz="0 0 0.04"/><mass value="0.1"/>'
                '<inertia ixx="0.1" ixy="0" ixz="0" iyy="0.1" iyz="0" izz="0.1"/></inertial>'
                f'<visual>{box}<material name="fw"><color rgba="0.9 0.9 0.9 1"/></material></visual>'
                f'<collision>{box}</collision></link>')

    for name, sign in (("panda_leftfinger", 1), ("panda_rightfinger", -1)):
        txt, n = re.subn(rf'<link name="{name}">.*?</link>', finger(name, sign), txt, flags=re.DOTALL)
        if n != 1:
            raise RuntimeError(f"pybullet_data panda.urdf has an unexpected layout (link {name} found {n} times)")
    tcp = ('<joint name="tcp_joint" type="fixed"><parent link="panda_hand"/><child link="tcp"/>'
           '<origin xyz="0 0 0.14" rpy="0 0 0"/></joint><link name="tcp"><inertial><mass value="0.00001"/>'
           '<inertia ixx="0.1" ixy="0" ixz="0" iyy="0.1" iyz="0" izz="0.1"/></inertial></link></robot>')
    return txt.replace("</robot>", tcp)


def _load_urdf_text(text: str, cid: int, **kwargs) -> int:
    """Loads URDF text through a temporary file (meshes are referenced by absolute path, so the file can go)."""
    with tempfile.TemporaryDirectory(prefix="calvin_scene_") as tmp:
        path = os.path.join(tmp, "model.urdf")
        with open(path, "w") as f:
            f.write(text)
        return p.loadURDF(path, physicsClientId=cid, **kwargs)


# ---------------------------------------------------------------- loading
class Scene:
    """Handles of one loaded scene in one physics client: robot, desk, joint indices, optional blocks."""

    def __init__(self, cid: int, add_blocks: bool = False):
        self.cid = cid
        self.robot = _load_urdf_text(panda_urdf(), cid, basePosition=ROBOT_BASE, useFixedBase=True)
        self.desk = _load_urdf_text(desk_urdf(), cid, basePosition=(0, 0, 0), useFixedBase=True)
        # Floor: a finite 3 m × 3 m static box instead of pybullet's infinite plane, whose unbounded AABB would
        # put every robot link into the narrow phase at every substep (same contact surface at z = 0).
        floor = p.createCollisionShape(p.GEOM_BOX, halfExtents=(1.5, 1.5, 0.01), physicsClientId=cid)
        self.floor = p.createMultiBody(0.0, floor, basePosition=(0, 0, -0.01), physicsClientId=cid)
        rj = self.joint_indices(self.robot)
        self.tcp = rj["tcp_joint"]  # a fixed joint's index is its child link's index
        self.arm = [rj[f"panda_joint{i}"] for i in range(1, 8)]
        self.fingers = [rj["panda_finger_joint1"], rj["panda_finger_joint2"]]
        self.ndof = p.computeDofCount(self.robot, physicsClientId=cid)  # 7 arm + 2 fingers (IK arrays)
        gear = p.createConstraint(self.robot, self.fingers[0], self.robot, self.fingers[1], p.JOINT_GEAR, [1, 0, 0],
                                  [0, 0, 0], [0, 0, 0], physicsClientId=cid)
        p.changeConstraint(gear, gearRatio=-1, erp=0.1, maxForce=50, physicsClientId=cid)
        dj = self.joint_indices(self.desk)
        self.desk_joints = [dj[n] for n in DESK_JOINTS]
        self.led_link, self.light_link = dj["base__led"], dj["base__light"]
        self.blocks: dict[str, int] = {}
        self.with_blocks = bool(add_blocks)

    def create_blocks(self) -> None:
        """(Re-)creates the 3 blocks (at a parking pose; the env places them). Fresh bodies carry no contact
        history, which keeps resets deterministic."""
        self.remove_blocks()
        for name, (half, rgba) in BLOCKS.items():
            col = p.createCollisionShape(p.GEOM_BOX, halfExtents=half, physicsClientId=self.cid)
            vis = p.createVisualShape(p.GEOM_BOX, halfExtents=half, rgbaColor=rgba, physicsClientId=self.cid)
            self.blocks[name] = p.createMultiBody(1.0, col, vis, basePosition=(0, -0.1, 1.0), physicsClientId=self.cid)

    def remove_blocks(self) -> None:
        for b in self.blocks.values():
            p.removeBody(b, physicsClientId=self.cid)
        self.blocks = {}

    def joint_indices(self, body: int) -> dict[str, int]:
        return {p.getJointInfo(body, i, physicsClientId=self.cid)[1].decode(): i
                for i in range(p.getNumJoints(body, physicsClientId=self.cid))}
