"""H1's 2x2, rounding at a fixed input scale without normalization: rounding [0, 1] inputs to the 8-bit
grid (Round) gives ViT-tiny a better clean-vs-adversarial tradeoff than the same unnormalized inputs
left as floats (Plain), on CIFAR-10 and CIFAR-100.

  Plain: uint8 -> [0, 1] -> resize to 224 -> ViT-tiny/16
  Round: uint8 -> [0, 1] -> resize to 224 -> round(x*255)/255 -> ViT-tiny/16
Protocol, recipe and attacks as the post's comparison (test_quantized_input.py); the strongest of the
`off`, `bpda` and `exact` attacks per example decides.

What it can conclude: the effect of rounding alone on unnormalized inputs, the one factor the arms differ
in (both see [0, 1] pixels of the same scale; the rounding arm faces as many gradient attacks as its
modes, the float arm as many restarts: see README, "How a verdict is reached"). What it cannot: whether
rounding helps normalized inputs too (test_rounding_normalized.py, and the interaction in the report's
2x2 table), whether fewer bits help more (test_bit_depth_dose.py), or anything at another input size than
the resize to 224 (the rounding acts on the resized image, after bilinear interpolation left the grid).
Its Round and the post's Round are the same runs (shared through the cache), and so are their Baselines.
"""
from harness import ADAMW_VIT, ROUNDING_MODES, Claim, Variant
from hypotheses.h1_2x2 import H1_2X2

CLAIM = Claim(
    statement="ViT-tiny fed rounded 8-bit [0, 1] inputs (Round) has a better clean-vs-adversarial tradeoff "
              "than with the same unnormalized inputs as floats (Plain)",
    better="Round", worse="Plain",
    variants={"Plain": Variant("vit_tiny", "plain", ADAMW_VIT, input_size=224),
              "Round": Variant("vit_tiny", "round", ADAMW_VIT, input_size=224)},
    datasets=("cifar10", "cifar100"), epochs=40, deciding_eps=1, modes=ROUNDING_MODES, factor="pipeline")
DESIGN = H1_2X2  # the report's 2x2 table of the arms these modules share


def test_rounding_improves_unnormalized_vit_tradeoff(suite, dataset, eps):
    case = suite.evaluate(CLAIM, dataset, eps)
    suite.conclude(case)
