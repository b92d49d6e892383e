"""H1: rounded 8-bit ordinal inputs give ViT-tiny a better clean-vs-adversarial tradeoff than
normalized float inputs, on CIFAR-10 and CIFAR-100.

Source: the research post (shared/claims/source-post.txt), first experiment.
  Baseline: uint8 -> [0, 1] -> normalize (dataset mean/std) -> resize to 224 -> ViT-tiny/16
  Round:    uint8 -> [0, 1] -> resize to 224 -> torch.round(x*255)/255 -> ViT-tiny/16 (no normalize)
Published protocol: randomly initialised, 40 epochs, 3 seeds per variant, one (clean acc, PGD acc)
point per epoch on the test set.

The post crafted its adversarial examples with the rounding removed (mode `off`). Rounding has a zero
gradient, so the suite also attacks through it with BPDA (`bpda`) and with its true gradient (`exact`,
which gradient masking fools), and decides on the strongest of the three per example: a gain that is
only masking cannot pass.
"""
from harness import ADAMW_VIT, ROUNDING_MODES, Claim, Claimed, Variant

CLAIM = Claim(
    statement="ViT-tiny fed rounded 8-bit inputs (Round) has a better clean-vs-adversarial tradeoff "
              "than with normalized float inputs (Baseline)",
    better="Round", worse="Baseline",
    variants={"Baseline": Variant("vit_tiny", "baseline", ADAMW_VIT, input_size=224),
              "Round": Variant("vit_tiny", "round", ADAMW_VIT, input_size=224)},
    datasets=("cifar10", "cifar100"), epochs=40, factor="pipeline", deciding_eps=1, modes=ROUNDING_MODES,
    claimed=Claimed("better", "research post, first experiment (Figure 1; no size given)"))


def test_rounded_input_improves_vit_tradeoff(suite, dataset, eps):
    case = suite.evaluate(CLAIM, dataset, eps)  # trains or loads every variant x seed, then compares
    suite.conclude(case)
