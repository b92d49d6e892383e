"""Beyond the post, bit depth as a dose: the fewer bits ViT-tiny's [0, 1] inputs are rounded to (8, 6, 4,
2), the better its clean-vs-adversarial tradeoff, on CIFAR-10.

  level b: uint8 -> [0, 1] -> resize to 224 -> round(x * L) / L, L = 2^b - 1 -> ViT-tiny/16 (no normalize)
The post tested 8 bits only; its takeaway, "the more discrete/quantized the data is, the more robust",
implies a score that falls as the bit depth rises: the claimed direction is "decreasing" along bits.
Protocol, recipe and attacks as H1 (40 epochs, the strongest of `off`, `bpda` and `exact` per example).

Decided by one trend test, not pairwise tests: the slope of the per-seed primary score on the bit depth,
its standard error from each level's own variance, one-sided p in the claimed direction, Holm across
datasets (harness.judge.inference.trend, harness.judge.verdict.judge). Supported: the score falls with bits at
alpha; contradicted: it rises; else inconclusive. The trend of the final clean accuracy is shown beside
it as the clean cost of rounding harder (2 bits leaves 4 grey levels per channel), and not tested.

What it can conclude: whether the tradeoff moves with bit depth, as a linear trend across 2 to 8 bits.
What it cannot: that every step is monotone (a U shape with a net slope passes), anything about
normalized inputs, or a cause beyond the rounding grid: coarser grids also make more of the perturbation
vanish under rounding, which the `exact` attack and the masking checks are there to catch. The 8-bit
level is H1's Round arm (same runs, through the cache).
"""
from harness import ADAMW_VIT, ROUNDING_MODES, Claimed, TrendClaim, Variant

# 8 bits is the `round` pipeline's default: no kwarg, so the level is H1's Round Variant and shares its runs.
LEVELS = {b: Variant("vit_tiny", "round", ADAMW_VIT, input_size=224,
                     pipeline_kwargs={} if b == 8 else {"bits": b}) for b in (8, 6, 4, 2)}

CLAIM = TrendClaim(
    statement="The fewer bits ViT-tiny's inputs are rounded to (8, 6, 4, 2), the better its "
              "clean-vs-adversarial tradeoff",
    unit="bits", levels=LEVELS, datasets=("cifar10",), epochs=40, expect="decreasing", deciding_eps=1,
    modes=ROUNDING_MODES, factor="pipeline_kwargs.bits",
    claimed=Claimed("decreasing", "research post, first experiment's takeaway: 'the more discrete/quantized "
                                  "the data is, the more robust' (implied; the post tested 8 bits only)"))


def test_fewer_bits_improve_vit_tradeoff(suite, dataset, eps):
    case = suite.evaluate(CLAIM, dataset, eps)  # one arm per bit depth; decided by the trend across them
    suite.conclude(case)
