"""Adam with rolf's conventions (eps 1e-7, global grad-norm clip) — the original's `AdamAMP` (spec §3.1.8)."""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn


class ClippedAdam:
    def __init__(self, modules: Iterable[nn.Module | nn.Parameter], lr: float, grad_clip: float, weight_decay: float = 0.0):
        params: list[nn.Parameter] = []
        for m in modules:
            params.extend([m] if isinstance(m, nn.Parameter) else m.parameters())
        # de-duplicate while keeping order (a module may be listed through two parents)
        seen: set[int] = set()
        self.params = [p for p in params if not (id(p) in seen or seen.add(id(p)))]
        self.optim = torch.optim.Adam(self.params, lr=lr, eps=1e-7, weight_decay=weight_decay)
        self.grad_clip = grad_clip

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def clip_and_step(self) -> torch.Tensor:
        """Clip the gradients already accumulated on this optimiser's parameters and step. Returns the pre-clip norm."""
        norm = nn.utils.clip_grad_norm_(self.params, self.grad_clip, foreach=True)
        self.optim.step()
        return norm

    def step(self, loss: torch.Tensor) -> torch.Tensor:
        """zero grads -> backward -> clip -> step (AdamAMP.step)."""
        self.zero_grad()
        loss.backward()
        return self.clip_and_step()

    def state_dict(self) -> dict:
        return self.optim.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.optim.load_state_dict(state)

