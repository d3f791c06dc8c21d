"""Numerical guards: the first NaN/inf among the values an update reports (its losses and gradient norms)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch


def first_non_finite(info: dict[str, Any]) -> tuple[str, float] | None:
    """(key, value) of the first NaN/inf value of an update's info, else None. One host sync per device."""
    flags: dict[torch.device, list[torch.Tensor]] = defaultdict(list)
    for v in info.values():
        t = torch.as_tensor(v)
        flags[t.device].append(torch.isfinite(t).all())
    if all(bool(torch.stack(f).all()) for f in flags.values()):
        return None
    for k, v in info.items():
        t = torch.as_tensor(v)
        if not bool(torch.isfinite(t).all()):
            return k, float(t[~torch.isfinite(t)].reshape(-1)[0])
    return None  # pragma: no cover - unreachable
