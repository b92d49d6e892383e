"""PGD counts an example as fooled when ANY iterate fools the deployed model (harness.run.attacks): checked
against a full-length reference that steps every example to the end and scores every iterate, and shown
stronger than scoring the last iterate only."""
import copy
import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from harness.run import attacks, pipelines
from harness.spec.config import AttackConfig


def reference(model, x, y, eps, steps, step_size, restarts, seed, mode):
    """Textbook PGD, written apart from harness.run.attacks: every example takes every step of every restart
    from the same random starts as `attacks.pgd`, and every iterate, the start included, is scored on the
    deployed model. Returns (robust under the any-iterate rule, robust under the last-iterate rule)."""
    with torch.no_grad():
        clean = model(x).argmax(1) == y
    any_ok, last_ok = clean.clone(), clean.clone()
    lo, hi = (x - eps).clamp(min=0), (x + eps).clamp(max=1)
    for r in range(restarts):
        xi = torch.min(torch.max(attacks.random_start(x, eps, seed * 1000 + r), lo), hi)
        for t in range(steps + 1):
            with torch.no_grad():
                right = model(xi).argmax(1) == y  # deployed: outside the crafting block
            any_ok &= right
            if t == steps:
                break
            xg = xi.clone().requires_grad_(True)
            with pipelines.crafting(model, mode or "exact"):
                loss = F.cross_entropy(model(xg).float(), y, reduction="sum")
            grad, = torch.autograd.grad(loss, xg)
            xi = torch.min(torch.max(xi + step_size * grad.sign(), lo), hi)
        last_ok &= right
    return any_ok, last_ok


@pytest.fixture(scope="module")
def double_net(trained_small_net):
    """The trained small net in float64, on 64 test images: early exit changes which examples share a
    batch, and so the last bits of float32 results; in float64 no such difference reaches a prediction
    or a gradient's sign, so the reference must agree example by example."""
    net, x, y = trained_small_net
    return copy.deepcopy(net).double().eval(), x[:64].double(), y[:64]


@pytest.mark.parametrize("pipeline, mode", [("baseline", None), ("round", "bpda"), ("round", "off"),
                                            ("round", "exact")])
def test_same_robustness_as_a_full_length_reference(double_net, eps_units, pipeline, mode):
    net, x, y = double_net
    c = x.shape[1]
    model = pipelines.Deployed(pipelines.create(pipeline, (0.0,) * c, (1.0,) * c, None), net).double().eval()
    eps, steps, restarts, seed = eps_units / 255 / 2, 6, 2, 3  # half the usual radius: not everything falls
    any_ok, last_ok = reference(model, x, y, eps, steps, eps / 2, restarts, seed, mode)
    # Fooled examples stop stepping, or step to the end; the rows come exactly or padded to a few shapes (in
    # chunks of 20, so that chunks and padding both happen): the same result.
    for early_exit, shapes in itertools.product((True, False), attacks.ATTACK_SHAPES):
        cfg = AttackConfig(steps=steps, step_ratio=0.5, restarts=restarts, modes=(mode or "pgd",), eval_seed=seed)
        ours = attacks.pgd(model, x, y, eps, cfg, attacks.Context(batch=20, early_exit=early_exit, shapes=shapes))
        assert torch.equal(ours, any_ok), (early_exit, shapes, (ours != any_ok).nonzero().squeeze(1).tolist())
    assert not (any_ok & ~last_ok).any()  # any-iterate is never weaker than last-iterate
    if mode != "exact":
        assert 0 < any_ok.sum() < (model(x).argmax(1) == y).sum()  # the attack fools some, not all


class Notch(nn.Module):
    """Two classes on one-pixel images: class 0, unless the pixel lies within `width` of `centre`, where
    class 1 wins. PGD on class 0 walks towards the centre; with steps wider than the notch it then
    oscillates across it, fooled on every other step, so its last iterate may be right again."""

    def __init__(self, centre=0.6, width=0.02):
        super().__init__()
        self.centre, self.width = centre, width

    def forward(self, x):
        margin = (x.flatten(1).mean(1) - self.centre).abs() - self.width
        return torch.stack([margin, torch.zeros_like(margin)], 1)


@pytest.mark.parametrize("pipeline, mode", [(None, None), ("round", "bpda"), ("round", "off")])
def test_an_example_fooled_mid_way_stays_fooled_though_the_last_iterate_is_right(pipeline, mode):
    notch = Notch()
    model = notch if pipeline is None else pipelines.Deployed(pipelines.create(pipeline, None, None, None), notch)
    x, y = torch.full((200, 1, 1, 1), 0.5), torch.zeros(200, dtype=torch.long)
    eps, step, steps = 0.2, 0.05, 10
    ours = attacks.pgd(model.eval(), x, y, eps, AttackConfig(steps=steps, step_ratio=step / eps,
                                                            modes=(mode or "pgd",)))
    any_ok, last_ok = reference(model, x, y, eps, steps, step, 1, 0, mode)
    recovered = last_ok & ~any_ok  # fooled at some step, right at the last
    assert recovered.sum() >= 20, recovered.sum()  # the last-iterate rule is weaker here, by many examples
    assert torch.equal(ours, any_ok)
    assert not ours[recovered].any()
