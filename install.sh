#!/usr/bin/env bash
# Set up skimo on a fresh machine (Python >= 3.11 with pip): the project, its test tools (pytest) and the exact
# library versions the test suite was run with (constraints.txt). Installs into the active Python environment;
# make and activate a virtualenv first if you want isolation:  python3 -m venv .venv && . .venv/bin/activate
#
#   bash install.sh            # CPU: torch 2.13.0 (the CPU wheel where one is provided locally), then the project
#   bash install.sh --cuda     # CUDA: torch 2.13.0 from $TORCH_INDEX_URL (the PyTorch wheel index for your CUDA)
#   bash install.sh --dev      # also the linter (ruff)
#   bash install.sh --unpinned # newest releases pyproject.toml allows, ignoring constraints.txt (to refresh it)
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
cuda=0
dev=0
pinned=1
for arg in "$@"; do
  case "$arg" in
    --cuda) cuda=1 ;;
    --dev) dev=1 ;;
    --unpinned) pinned=0 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option '$arg' (expected --cuda, --dev, --unpinned)" >&2; exit 2 ;;
  esac
done

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "install.sh: skimo needs Python >= 3.11; $PYTHON is $("$PYTHON" -V 2>&1) (set PYTHON=/path/to/python3.11)" >&2
  exit 2
fi

constraints=()
[ "$pinned" = 1 ] && constraints=(-c constraints.txt)

"$PYTHON" -m pip install --upgrade --quiet pip
if [ "$cuda" = 1 ]; then
  if [ -z "${TORCH_INDEX_URL:-}" ]; then
    echo "install.sh --cuda: set TORCH_INDEX_URL to the PyTorch wheel index matching your CUDA version" >&2
    exit 2
  fi
  "$PYTHON" -m pip install "${constraints[@]}" "torch==2.13.0" --index-url "$TORCH_INDEX_URL"
else
  # Installed first and pinned, so that the project's own `torch>=2.2` is already satisfied and pip does not
  # pull a multi-GB CUDA build on machines that provide the CPU wheel.
  "$PYTHON" -m pip install "${constraints[@]}" "torch==2.13.0"
fi
extras="test"
[ "$dev" = 1 ] && extras="test,dev"
"$PYTHON" -m pip install "${constraints[@]}" -e ".[${extras}]"
"$PYTHON" - <<'PY'
from importlib.metadata import version

import torch

libs = ", ".join(f"{name} {version(name)}" for name in ("mujoco", "gymnasium", "gymnasium-robotics", "pybullet",
                                                       "hydra-core", "pytest"))
print(f"skimo ready: torch {torch.__version__} (cuda available: {torch.cuda.is_available()}), {libs}")
PY
