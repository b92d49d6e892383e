"""Positive control (a real effect): fast adversarial training beats standard training at eps 8/255.

Source: Wong, Rice and Kolter 2020, "Fast is better than free: revisiting adversarial training" (ICLR):
FGSM from a uniform random start, eps 8/255, step 10/255, on CIFAR-10. Their PreAct ResNet18 reached 86%
clean and 46% PGD accuracy at 8/255; standard training leaves about 0%.
Known answer: supported at eps 8/255, every masking check passing, the effect far larger than the seed
spread. A miss means that an attack, a check or the statistics broke: CI fails (.ci/run).

Protocol (CPU_PROTOCOL, decided by the paper profile on 2 CPU cores): timm's test_resnet, 10,000 CIFAR-10
training images, 5 epochs, 3 seeds, 200 evaluation images. The training attack runs through the deployed
model (pipeline included), as the evaluation's PGD does. Standard is also the masking and null controls'
arm (shared through the cache). The paper-scale version (ResNet18, the whole training set) is the GPU
check's (tools/gpu_check.sh).
"""
import dataclasses

from harness import CPU_PROTOCOL, SGD_SMALL, Claim, Claimed, Variant

FGSM_RS = dataclasses.replace(SGD_SMALL, adversarial="fgsm_rs")  # eps 8/255, step 10/255: Recipe's defaults

CLAIM = Claim(
    statement="Fast adversarial training (FGSM-RS) gives test_resnet a better clean-vs-PGD tradeoff than "
              "standard training (Standard) at eps 8/255 (positive control)",
    better="FGSM-RS", worse="Standard",
    variants={"Standard": Variant("test_resnet", "baseline", SGD_SMALL),
              "FGSM-RS": Variant("test_resnet", "baseline", FGSM_RS)},
    factor="recipe.adversarial", eps=(8.0,), deciding_eps=8,
    claimed=Claimed("better", "Wong, Rice and Kolter 2020, CIFAR-10: 46% PGD accuracy at 8/255 after "
                              "FGSM-RS training, about 0% after standard training"),
    **CPU_PROTOCOL)


def test_fast_adversarial_training_is_supported(suite, dataset, eps):
    suite.conclude(suite.evaluate(CLAIM, dataset, eps))
