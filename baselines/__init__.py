"""The paper's baselines, built from the shared rolf parts (one planner, one latent model, one buffer family)."""
