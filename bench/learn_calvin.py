"""Learning evidence for SkiMo on our CALVIN table at CPU scale (<= 60 min on 2 cores): scripted play
generation -> pre-training (n_skill 1, as the original's CALVIN config) -> held-out multi-step prediction error ->
RL on open_drawer -> turn_on_lightbulb -> move_slider_left -> turn_on_led -> JSON + PNG.

    python bench/learn_calvin.py [--out bench/results/learn_calvin] [--pretrain-steps 1500] [--rl-steps 30000]

Writes <out>/learn_calvin.json and <out>/learn_calvin.png: pre-training losses; the skill model's prediction error
(5 skills ahead) of the robot state and the articulated scene state vs a "predict no motion" baseline; tasks
completed per episode vs env steps.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.learn_common import SkillBench, run_skill_bench


def _generate(path: str, size: int, seed: int) -> dict:
    from calvin.generate import generate_calvin_dataset

    return generate_calvin_dataset(path, num_chunks=size, seed=seed)


CALVIN = SkillBench(env="calvin", config="skimo_calvin", generate=_generate, default_size=300,
                    parts={"robot": slice(0, 15), "scene": slice(15, 21)}, reward_per_task=100.0, skills_ahead=5)

if __name__ == "__main__":
    run_skill_bench(CALVIN, ROOT)
