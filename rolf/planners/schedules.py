"""Step schedules (spec §3.1.3)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LinearDecay:
    """f(t) = (1 - c) * start + c * end with c = clip(t / steps, 0, 1)."""

    start: float
    end: float
    steps: float

    def __call__(self, t: float) -> float:
        c = min(max(t / self.steps, 0.0), 1.0) if self.steps > 0 else 1.0
        return (1.0 - c) * self.start + c * self.end
