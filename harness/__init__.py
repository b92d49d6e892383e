"""A pytest-style hypothesis test suite for adversarial robustness: the shared harness.

Hypothesis modules need only what is exported here; see README.md, "Adding a hypothesis".
"""
from .spec.claim import Claim, Claimed, Known, TrendClaim
from .spec.config import ADAMW_VIT, CPU_PROTOCOL, ROUNDING_MODES, SGD_RESNET, SGD_SMALL, Recipe, Variant
from .spec.design import Contrast, Factorial

__all__ = ["ADAMW_VIT", "CPU_PROTOCOL", "ROUNDING_MODES", "SGD_RESNET", "SGD_SMALL", "Claim", "Claimed", "Contrast",
           "Factorial", "Known", "Recipe", "TrendClaim", "Variant"]
