"""H1's 2x2, rounding at a fixed input scale with normalization: rounding to the 8-bit grid before
normalizing (NormRound) gives ViT-tiny a better clean-vs-adversarial tradeoff than the usual normalized
float inputs (Baseline), on CIFAR-10 and CIFAR-100.

  Baseline:  uint8 -> [0, 1] -> normalize -> resize to 224 -> ViT-tiny/16
  NormRound: uint8 -> [0, 1] -> resize to 224 -> round(x*255)/255 -> normalize -> ViT-tiny/16
Rounding acts on the [0, 1] pixel grid, after the resize (bilinear interpolation leaves the grid) and
before normalizing (after it the grid is (k/255 - mean)/std per channel): see harness/run/pipelines.py.
Normalizing and resizing commute (a per-channel affine map through an interpolation whose weights sum
to 1), so the network's inputs differ from Baseline's by the rounding alone. Protocol, recipe and attacks
as the post's comparison; the strongest of `off`, `bpda` and `exact` per example decides.

What it can conclude: the effect of rounding alone at the usual normalized input scale, the setting most
models are trained in. What it cannot: the effect without normalization (test_rounding_unnormalized.py),
nor, from this test, whether the two rounding effects differ (the interaction, shown descriptively in the
report's 2x2 table, is not tested). Its Baseline runs are the post's comparison's (shared through the cache).
"""
from harness import ADAMW_VIT, ROUNDING_MODES, Claim, Variant
from hypotheses.h1_2x2 import H1_2X2

CLAIM = Claim(
    statement="ViT-tiny fed rounded 8-bit inputs, then normalized (NormRound), has a better "
              "clean-vs-adversarial tradeoff than with normalized float inputs (Baseline)",
    better="NormRound", worse="Baseline",
    variants={"Baseline": Variant("vit_tiny", "baseline", ADAMW_VIT, input_size=224),
              "NormRound": Variant("vit_tiny", "norm_round", ADAMW_VIT, input_size=224)},
    datasets=("cifar10", "cifar100"), epochs=40, deciding_eps=1, modes=ROUNDING_MODES, factor="pipeline")
DESIGN = H1_2X2  # the report's 2x2 table of the arms these modules share


def test_rounding_improves_normalized_vit_tradeoff(suite, dataset, eps):
    case = suite.evaluate(CLAIM, dataset, eps)
    suite.conclude(case)
