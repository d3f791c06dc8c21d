"""Small helpers shared by the MuJoCo simulations (maze, kitchen)."""

from __future__ import annotations

import mujoco
import numpy as np

# MuJoCo's warnings for a diverged simulation (it auto-resets mjData when they fire).
BAD_STATE_WARNINGS = np.array([mujoco.mjtWarning.mjWARN_BADQACC, mujoco.mjtWarning.mjWARN_BADQPOS,
                               mujoco.mjtWarning.mjWARN_BADQVEL], dtype=np.int64)


def diverged(data: mujoco.MjData) -> bool:
    """True if MuJoCo flagged a diverged state since the warnings were last cleared (mj_resetData clears them)."""
    return bool(data.warning.number[BAD_STATE_WARNINGS].any())
