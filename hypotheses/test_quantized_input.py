"""H1, the post's comparison: rounded 8-bit ordinal inputs (Round) give ViT-tiny a better
clean-vs-adversarial tradeoff than normalized float inputs (Baseline), on CIFAR-10 and CIFAR-100.

Source: the research post (shared/claims/source-post.txt), first experiment (Figure 1).
  Baseline: uint8 -> [0, 1] -> normalize (dataset mean/std) -> resize to 224 -> ViT-tiny/16
  Round:    uint8 -> [0, 1] -> resize to 224 -> torch.round(x*255)/255 -> ViT-tiny/16 (no normalize)
Published protocol: randomly initialised, 40 epochs, 3 seeds per variant, one (clean acc, PGD acc)
point per epoch on the test set.

The post crafted its adversarial examples with the rounding removed (mode `off`). Rounding has a zero
gradient, so the suite also attacks through it with BPDA (`bpda`) and with its true gradient (`exact`,
which gradient masking fools), and decides on the strongest of the three per example: a gain that is
only masking cannot pass.

What it can conclude: whether the post's pipeline, as a whole, gives a better tradeoff than the usual one
(a replication of Figure 1). What it cannot: why. Round differs from Baseline in two factors at once, it
rounds and it drops normalization (its inputs are about 4x smaller and not centred), so a verdict here
does not say that rounding (or ordinal data) is the cause. H1's 2x2 design separates the two:
test_rounding_unnormalized.py (Round vs Plain) and test_rounding_normalized.py (NormRound vs Baseline)
test rounding at a fixed input scale, test_normalization_report.py reports normalization alone (Plain vs
Baseline), and the report's 2x2 table shows which factor carries the effect. The four modules name
identical Variants, so their runs are shared through the cache.
"""
from harness import ADAMW_VIT, ROUNDING_MODES, Claim, Claimed, Variant
from hypotheses.h1_2x2 import H1_2X2

CLAIM = Claim(
    statement="ViT-tiny fed rounded 8-bit inputs (Round) has a better clean-vs-adversarial tradeoff "
              "than with normalized float inputs (Baseline)",
    better="Round", worse="Baseline",
    variants={"Baseline": Variant("vit_tiny", "baseline", ADAMW_VIT, input_size=224),
              "Round": Variant("vit_tiny", "round", ADAMW_VIT, input_size=224)},
    datasets=("cifar10", "cifar100"), epochs=40, factor="pipeline", deciding_eps=1, modes=ROUNDING_MODES,
    claimed=Claimed("better", "research post, first experiment (Figure 1; no size given)"))
DESIGN = H1_2X2  # the report's 2x2 table of the arms these modules share


def test_rounded_input_improves_vit_tradeoff(suite, dataset, eps):
    case = suite.evaluate(CLAIM, dataset, eps)  # trains or loads every variant x seed, then compares
    suite.conclude(case)
