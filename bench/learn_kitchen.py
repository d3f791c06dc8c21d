"""Learning evidence for SkiMo on the kitchen at CPU scale (<= 60 min on 2 cores): scripted data generation ->
pre-training -> held-out multi-step prediction error -> RL on both task orders (kitchen and mis-aligned kitchen,
from the same pre-trained checkpoint) -> JSON + PNG.

    python bench/learn_kitchen.py [--out bench/results/learn_kitchen] [--pretrain-steps 1500] [--rl-steps 30000]

Writes <out>/learn_kitchen.json and <out>/learn_kitchen.png: pre-training losses; the skill model's prediction
error of the robot and object state vs a "predict no motion" baseline; subtasks completed per episode vs env
steps, per task order.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.learn_common import SkillBench, run_skill_bench


def _generate(path: str, size: int, seed: int) -> dict:
    from d4rl.generate import generate_kitchen_dataset

    return generate_kitchen_dataset(path, num_episodes=size, seed=seed)


KITCHEN = SkillBench(env="kitchen", config="skimo_kitchen", generate=_generate, default_size=600,
                     parts={"robot": slice(0, 9), "objects": slice(9, 30)}, tasks=("base", "misaligned"))

if __name__ == "__main__":
    run_skill_bench(KITCHEN, ROOT)
