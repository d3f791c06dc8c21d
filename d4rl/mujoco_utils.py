"""Small helpers shared by the MuJoCo simulations (maze, kitchen)."""

from __future__ import annotations

import logging

import mujoco
import numpy as np

log = logging.getLogger("skimo")


def _log_mujoco_warning(message: str) -> None:
    log.warning("MuJoCo: %s", message.strip())


# MuJoCo's default warning handler appends to MUJOCO_LOG.TXT in the working directory (the repo root, for a
# user): warnings go to Python logging instead. Diverged states are detected and handled by the envs (`diverged`).
mujoco.set_mju_user_warning(_log_mujoco_warning)

# MuJoCo's warnings for a diverged simulation (it auto-resets mjData when they fire).
BAD_STATE_WARNINGS = np.array([mujoco.mjtWarning.mjWARN_BADQACC, mujoco.mjtWarning.mjWARN_BADQPOS,
                               mujoco.mjtWarning.mjWARN_BADQVEL], dtype=np.int64)


def diverged(data: mujoco.MjData) -> bool:
    """True if MuJoCo flagged a diverged state since the warnings were last cleared (mj_resetData clears them)."""
    return bool(data.warning.number[BAD_STATE_WARNINGS].any())
