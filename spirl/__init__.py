"""SPiRL baseline (skimo-spec.md §3.4): the closed-loop skill-prior model and its pre-training."""

from spirl.model import ENV_PRIORS, SPiRLConfig, SPiRLModel

__all__ = ["ENV_PRIORS", "SPiRLConfig", "SPiRLModel"]
