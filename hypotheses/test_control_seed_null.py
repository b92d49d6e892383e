"""Null control: one arm compared with itself on other seeds must come out not significant.

The suite's calibration on real training: the controls' Standard arm (test_resnet, CPU_PROTOCOL) on the
profile's seeds against the same arm on seeds 100 and up. Seeds A are the positive and masking controls'
Standard runs, shared through the cache. Known answer: inconclusive; any other verdict means that the
test, the seeding or the cache broke, and fails. Its expected false alarm rate is 7.8% (either direction
at alpha 0.05, 3 seeds: tests/test_null_simulation.py). It reads no final-checkpoint check
(harness.spec.plan.checks_masking), so it decides at eps 1/255, where PGD leaves a measurable accuracy.
"""
from harness import CPU_PROTOCOL, SGD_SMALL, Claim, Claimed, Variant

CLAIM = Claim(
    statement="test_resnet on one set of seeds has the same tradeoff as on another (null control)",
    better="Seeds A", worse="Seeds B",
    variants={"Seeds A": Variant("test_resnet", "baseline", SGD_SMALL),
              "Seeds B": Variant("test_resnet", "baseline", SGD_SMALL, seed_offset=100)},
    factor="seed", eps=(1.0,), deciding_eps=1, expect="null",
    claimed=Claimed("equivalent", "A/A: the arms differ in their seeds alone"), **CPU_PROTOCOL)


def test_same_variant_different_seeds_is_not_significant(suite, dataset, eps):
    case = suite.evaluate(CLAIM, dataset, eps)
    suite.conclude(case)
