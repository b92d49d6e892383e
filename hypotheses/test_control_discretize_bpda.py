"""Discretization control, REPORTED (decides nothing): 2-bit inputs against standard inputs at eps 4/255.

The 2-bit arm is test_resnet trained and deployed with its [0, 1] inputs snapped to 4 grey levels per channel
before normalization (pipeline `norm_round`, bits=2); Standard is the same network on normalized floats, so
the arms differ in the rounding alone. Rounding has a zero gradient: PGD through it (`exact`) cannot move,
and any gain it shows is gradient masking. The suite attacks the 2-bit arm three ways (`off`, rounding
removed; `bpda`, round forward and identity backward; `exact`) and scores the strongest per example, with
Standard given as many gradient attacks per example; the report shows each mode's effect beside it.
Source: Athalye, Carlini and Wagner 2018, "Obfuscated gradients give a false sense of security" (BPDA breaks
input discretization); Carlini's self-study course in evaluating adversarial robustness, whose 2-bit
discretization defense BPDA breaks at 4/255 with 97% attack success on CIFAR-10.
Reported, not decided (`decides=False`): unlike the logit-scale control, discretization's true robustness
is not known by construction (at 4/255 only pixels within 4/255 of a rounding threshold can move at all), so
no verdict is a known answer at this scale. What the page shows: the strongest attack's verdict, the exact
mode's masked effect beside the BPDA and `off` effects, and the masking checks on the 2-bit arm.

Protocol: CPU_PROTOCOL, as the other controls.
"""
from harness import CPU_PROTOCOL, ROUNDING_MODES, SGD_SMALL, Claim, Claimed, Variant

CLAIM = Claim(
    statement="test_resnet fed 2-bit inputs (2-bit) has a better clean-vs-PGD tradeoff than with standard "
              "inputs (Standard) at eps 4/255 (discretization control, reported)",
    better="2-bit", worse="Standard",
    variants={"Standard": Variant("test_resnet", "baseline", SGD_SMALL),
              "2-bit": Variant("test_resnet", "norm_round", SGD_SMALL, pipeline_kwargs={"bits": 2})},
    factor="pipeline", intended={"pipeline_kwargs.bits": "the rounding grid: 2 bits, the self-study's defense"},
    eps=(4.0,), deciding_eps=4, modes=ROUNDING_MODES, decides=False,
    claimed=Claimed("better", "the defense's claim; Carlini's self-study breaks 2-bit discretization with BPDA "
                              "(97% attack success at 4/255, CIFAR-10)"),
    **CPU_PROTOCOL)


def test_two_bit_inputs_are_reported_beside_their_bpda_attack(suite, dataset, eps):
    suite.conclude(suite.evaluate(CLAIM, dataset, eps))
