"""rolf: the small RL framework SkiMo and its baselines are built on (trainer, rollout, buffers, networks, planners)."""
