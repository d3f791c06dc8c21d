"""Mixed precision (`rolf.precision`): 32 (default, plain fp32) or bf16 (autocast: matmuls in bfloat16, everything
else and every parameter, optimiser state and loss in fp32).

Networks return fp32 at their boundaries (`MLP.forward`, the LSTM head), so distributions, KL estimates and losses
are computed in fp32 whatever the precision; only the matmul inputs are rounded. On CPUs without AVX-512 BF16 /
AMX, torch's bf16 matmul is a slow fallback (bench/speed.py prints the machine's bf16 matmul peak): use bf16 on
CPUs that have it and on GPUs.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, ContextManager

import torch

from rolf.errors import UserError

_PRECISIONS = {"32": None, "fp32": None, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16}


class PrecisionError(UserError, ValueError):
    pass


def parse_precision(value: Any) -> torch.dtype | None:
    """`rolf.precision` -> the autocast dtype (None = plain fp32)."""
    key = str(value).strip().lower()
    if key not in _PRECISIONS:
        raise PrecisionError(f"rolf.precision={value!r}: expected 32 or bf16")
    return _PRECISIONS[key]


def autocast_factory(device: torch.device, dtype: torch.dtype | None) -> Callable[[], ContextManager]:
    """A zero-argument context-manager factory: autocast to `dtype` on `device`, or a no-op for fp32."""
    if dtype is None:
        return contextlib.nullcontext
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)
