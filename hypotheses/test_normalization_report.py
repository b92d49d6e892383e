"""H1's 2x2, the normalization effect, REPORTED (decides nothing): ViT-tiny on unnormalized [0, 1] float
inputs (Plain) against normalized float inputs (Baseline), on CIFAR-10 and CIFAR-100.

  Baseline: uint8 -> [0, 1] -> normalize -> resize to 224 -> ViT-tiny/16
  Plain:    uint8 -> [0, 1] -> resize to 224 -> ViT-tiny/16
No rounding in either arm, so both face the same PGD attack.

Why a report: the post does not claim that dropping normalization helps; it is the second factor its
Round changes, measured here so that the post's comparison can be read (Round vs Baseline = rounding +
dropping normalization). `decides=False`: the verdict (supported: Plain's tradeoff is better) is computed,
Holm-adjusted and shown in the report like any other, and the test skips with it in the message under
every profile; a failed run still fails it.

What it can conclude: how much of a difference between Round and Baseline the input scale alone could
explain (Plain's inputs are about 4x smaller than Baseline's and not centred; eps is in pixel units for
both, so both arms face the same perturbations of the image). What it cannot: anything about rounding.
Its runs are shared with the other H1 modules through the cache (the same Variants and attack modes).
"""
from harness import ADAMW_VIT, ROUNDING_MODES, Claim, Variant
from hypotheses.h1_2x2 import H1_2X2

CLAIM = Claim(
    statement="ViT-tiny fed unnormalized [0, 1] float inputs (Plain) has a better clean-vs-adversarial "
              "tradeoff than with normalized float inputs (Baseline) [reported, not decided]",
    better="Plain", worse="Baseline",
    variants={"Baseline": Variant("vit_tiny", "baseline", ADAMW_VIT, input_size=224),
              "Plain": Variant("vit_tiny", "plain", ADAMW_VIT, input_size=224)},
    datasets=("cifar10", "cifar100"), epochs=40, deciding_eps=1, factor="pipeline", decides=False,
    modes=ROUNDING_MODES)  # neither arm rounds: the other H1 modules' settings, so the runs stay shared
DESIGN = H1_2X2  # the report's 2x2 table of the arms these modules share


def test_normalization_effect_on_vit_tradeoff(suite, dataset, eps):
    case = suite.evaluate(CLAIM, dataset, eps)
    suite.conclude(case)
