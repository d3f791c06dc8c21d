"""Comparing two runs of one config: their metrics rows and the tensors of their checkpoints (exact resume)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

# Wall-clock values: the only logged values that differ between an uninterrupted and a resumed run.
WALL_CLOCK_KEYS = ("steps_per_sec",)


def metrics_rows(run_dir: Path) -> list[dict]:
    """metrics.jsonl without the wall-clock values, pictures named by file name (the run directories differ)."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: Path(v).name if isinstance(v, str) and v.endswith(".png") else v for k, v in r.items()
             if not k.endswith(WALL_CLOCK_KEYS)} for r in rows]


def flatten(x: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(x, dict):
        return {k: v for key, item in x.items() for k, v in flatten(item, f"{prefix}.{key}").items()}
    if isinstance(x, (list, tuple)):
        return {k: v for i, item in enumerate(x) for k, v in flatten(item, f"{prefix}[{i}]").items()}
    return {prefix: x}


def checkpoint_differences(a: dict, b: dict) -> list[str]:
    """Keys of two checkpoint dicts (or parts of them) whose tensors or values are not identical."""
    fa, fb = flatten(a), flatten(b)
    if fa.keys() != fb.keys():
        return sorted(set(fa) ^ set(fb))
    return [k for k in fa if not (torch.equal(fa[k], fb[k]) if torch.is_tensor(fa[k]) else fa[k] == fb[k])]


def assert_same_rows(straight: list[dict], resumed: list[dict]) -> None:
    assert len(resumed) == len(straight), f"{len(resumed)} rows after the resume, {len(straight)} uninterrupted"
    for i, (a, b) in enumerate(zip(straight, resumed)):
        assert a == b, f"row {i} differs:\n uninterrupted {a}\n resumed       {b}"
