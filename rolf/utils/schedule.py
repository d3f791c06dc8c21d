"""Step predicates (spec §3.1.3)."""

from __future__ import annotations


class Every:
    """True the first time step >= last + every; then last advances by `every` (no drift). every <= 0: never."""

    def __init__(self, every: int, start: int = 0):
        self.every = int(every)
        self.last = int(start)

    def __call__(self, step: int) -> bool:
        if self.every <= 0:
            return False
        if step >= self.last + self.every:
            self.last += self.every * ((step - self.last) // self.every)
            return True
        return False
