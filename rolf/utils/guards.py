"""Numerical guards: the first NaN/inf among the values updates report (their losses and gradient norms)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import torch


def first_non_finite(infos: dict[str, Any] | list[dict[str, Any]]) -> tuple[int, str, float] | None:
    """(index of the info, key, value) of the first NaN/inf among one update's info or a list of them, else None.

    All values of a device are checked by one `isfinite` over their concatenation: one host sync per device."""
    infos = [infos] if isinstance(infos, dict) else infos
    values: dict[torch.device, list[torch.Tensor]] = defaultdict(list)
    for info in infos:
        for v in info.values():
            t = torch.as_tensor(v)
            values[t.device].append(t.detach().reshape(-1).float())
    if all(bool(torch.isfinite(torch.cat(vs)).all()) for vs in values.values()):
        return None
    for i, info in enumerate(infos):  # only on the way out: find which
        for k, v in info.items():
            t = torch.as_tensor(v).detach().reshape(-1)
            bad = ~torch.isfinite(t)
            if bool(bad.any()):
                return i, k, float(t[bad][0])
    return None  # pragma: no cover - unreachable


def diverged_message(key: str, value: float, where: str, last_good: Path | None) -> str:
    """The one line a run stops with when `key` became `value` (NaN/inf) `where`."""
    kept = f"its last good checkpoint is {last_good}" if last_good is not None else "no checkpoint had been saved"
    return f"non-finite {key} ({value}) {where}: the run stopped without saving; {kept}"
