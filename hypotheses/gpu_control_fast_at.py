"""The positive control at paper scale, for a GPU (tools/gpu_check.sh runs it; `pytest hypotheses/` does
not collect it: its file name does not start with test_).

As test_control_fast_at.py, at the literature's scale: the suite's ResNet18 (H2's network; Wong et al.
trained a PreAct ResNet18 for 15 epochs with a cyclic learning rate) on the whole CIFAR-10 training set,
10 epochs of the suite's SGD recipe, 1,000 evaluation images. Standard is H2's Max arm, shared through the
cache. Published: 86% clean and 46% PGD accuracy at 8/255 after FGSM-RS training, about 0% PGD accuracy
after standard training; gpu_check.sh prints the measured accuracies beside them.
Known answer: supported at eps 8/255, every masking check passing.
"""
import dataclasses

from harness import SGD_RESNET, Claim, Claimed, Variant

CLAIM = Claim(
    statement="Fast adversarial training (FGSM-RS) gives ResNet18 a better clean-vs-PGD tradeoff than standard "
              "training (Standard) at eps 8/255 (positive control, paper scale)",
    better="FGSM-RS", worse="Standard",
    variants={"Standard": Variant("resnet18", "baseline", SGD_RESNET),
              "FGSM-RS": Variant("resnet18", "baseline", dataclasses.replace(SGD_RESNET, adversarial="fgsm_rs"))},
    datasets=("cifar10",), epochs=10, factor="recipe.adversarial", eps=(8.0,), deciding_eps=8,
    claimed=Claimed("better", "Wong, Rice and Kolter 2020, CIFAR-10 PreAct ResNet18: 86% clean, 46% PGD accuracy "
                              "at 8/255 after FGSM-RS training; about 0% after standard training"))


def test_fast_adversarial_training_is_supported_at_paper_scale(suite, dataset, eps):
    suite.conclude(suite.evaluate(CLAIM, dataset, eps))
