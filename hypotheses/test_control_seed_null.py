"""Control: a variant compared with itself under different seeds must come out not significant.

The suite's calibration check on real training: ResNet18 (the pooling hypothesis's Max arm) on the
profile's seeds against the same recipe on seeds 100 and up. Any verdict other than inconclusive means
the test, the seeding or the cache is broken, and fails. The first arm's runs are the pooling
hypothesis's Max runs, shared through the cache.
"""
from harness import SGD_RESNET, Claim, Variant

CLAIM = Claim(
    statement="ResNet18 on one set of seeds has the same tradeoff as on another (a null control)",
    better="Seeds A", worse="Seeds B",
    variants={"Seeds A": Variant("resnet18", "baseline", SGD_RESNET),
              "Seeds B": Variant("resnet18", "baseline", SGD_RESNET, seed_offset=100)},
    datasets=("cifar10",), epochs=10, factor="seed", eps=(1.0,), deciding_eps=1, expect="null")


def test_same_variant_different_seeds_is_not_significant(suite, dataset, eps):
    case = suite.evaluate(CLAIM, dataset, eps)
    suite.conclude(case)
