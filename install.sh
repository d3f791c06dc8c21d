#!/usr/bin/env bash
# Set up skimo on a fresh machine (Python >= 3.10 with pip). Installs into the active Python environment;
# make and activate a virtualenv first if you want isolation:  python3 -m venv .venv && . .venv/bin/activate
#
#   bash install.sh            # CPU: torch 2.13.0 (the CPU wheel where one is provided locally), then the project
#   bash install.sh --cuda     # CUDA: torch 2.13.0 from $TORCH_INDEX_URL (the PyTorch wheel index for your CUDA)
#   bash install.sh --dev      # also test tools (pytest, ruff)
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
cuda=0
dev=0
for arg in "$@"; do
  case "$arg" in
    --cuda) cuda=1 ;;
    --dev) dev=1 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option '$arg' (expected --cuda, --dev)" >&2; exit 2 ;;
  esac
done

"$PYTHON" -m pip install --upgrade --quiet pip
if [ "$cuda" = 1 ]; then
  if [ -z "${TORCH_INDEX_URL:-}" ]; then
    echo "install.sh --cuda: set TORCH_INDEX_URL to the PyTorch wheel index matching your CUDA version" >&2
    exit 2
  fi
  "$PYTHON" -m pip install "torch==2.13.0" --index-url "$TORCH_INDEX_URL"
else
  # Installed first and pinned, so that the project's own `torch>=2.2` is already satisfied and pip does not
  # pull a multi-GB CUDA build on machines that provide the CPU wheel.
  "$PYTHON" -m pip install "torch==2.13.0"
fi
extras=""
[ "$dev" = 1 ] && extras="[test]"
"$PYTHON" -m pip install -e ".${extras}"
"$PYTHON" - <<'PY'
import mujoco, torch, gymnasium, hydra
print(f"skimo ready: torch {torch.__version__} (cuda available: {torch.cuda.is_available()}), mujoco {mujoco.__version__}, "
      f"gymnasium {gymnasium.__version__}, hydra {hydra.__version__}")
PY
