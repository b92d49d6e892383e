"""Masking control (no real effect, by construction): logits multiplied by 10^4 at deployment.

The Scaled arm is test_resnet trained as Standard is, deployed with its logits x10^4 (harness.run.models
LogitScale, eval mode only). Its predictions are those of an unscaled network, so its true robustness is an
unscaled network's; but its softmax saturates, cross-entropy gradients vanish (exactly zero in fp32), and
cross-entropy PGD finds almost nothing. Any gain PGD measures is gradient masking.
Source: Carlini and Wagner 2016, "Defensive distillation is not robust to adversarial examples" (a
distilled network is such a scaled network; a margin loss breaks it); Athalye, Carlini and Wagner 2018,
"Obfuscated gradients give a false sense of security".
Known answer: never supported, and a masking check fails on the Scaled arm (APGD-DLR's margin loss and
Square see through the scale; the zero-gradient check names the vanished gradients). A miss means that the
masking checks broke: CI fails (.ci/run).

Protocol: CPU_PROTOCOL, as the positive control (test_control_fast_at.py), whose Standard runs it shares.
"""
from harness import CPU_PROTOCOL, SGD_SMALL, Claim, Claimed, Variant

CLAIM = Claim(
    statement="test_resnet deployed with its logits x10^4 (Scaled) has a better clean-vs-PGD tradeoff than as "
              "trained (Standard) at eps 8/255 (masking control)",
    better="Scaled", worse="Standard",
    variants={"Standard": Variant("test_resnet", "baseline", SGD_SMALL),
              "Scaled": Variant("test_resnet", "baseline", SGD_SMALL, model_kwargs={"logit_scale": 1e4})},
    factor="model_kwargs.logit_scale", eps=(8.0,), deciding_eps=8, expect="masked",
    claimed=Claimed("better", "by construction: cross-entropy PGD is masked (Carlini and Wagner 2016; "
                              "Athalye, Carlini and Wagner 2018)"),
    **CPU_PROTOCOL)


def test_logit_scale_is_never_supported_and_its_masking_named(suite, dataset, eps):
    suite.conclude(suite.evaluate(CLAIM, dataset, eps))
