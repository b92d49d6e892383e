"""PGD (harness.run.attacks): bad input, rounding modes, restarts, early exit, precision, and agreement
with torchattacks' PGD as a trusted reference."""
import copy

import pytest
import torch
from torch import nn

from harness.run import attacks, diagnostics, pipelines
from harness.spec.config import AttackConfig, ConfigError, FinalEvalConfig

EPS = 8 / 255
EARLY_EXIT_TOL = 1  # examples: early exit changes only which examples share a batch (float summation order)
BF16_TOL = 0.05  # accuracy: bf16 autocast moves logits by ~1e-2, enough to flip a few borderline examples


@pytest.fixture(scope="module")
def rounding(trained_small_net):
    """The trained net behind a Round pipeline: (deployed model, images, labels, clean-correct mask)."""
    net, x, y = trained_small_net
    model = pipelines.Deployed(pipelines.create("round", None, None, None), net).eval()
    return model, x, y, attacks.predict(model, x, "fp32", 500) == y


@pytest.fixture(scope="module")
def eps(eps_units):
    """The radius the real dataset is usually attacked at (tests/conftest.py), in [0, 1] units."""
    return eps_units / 255


def _acc(mask):
    return mask.float().mean().item()


def craft(model, x, y, start, eps, cfg, ctx=attacks.Context()):
    """PGD's last iterates from `start`, nothing scored: every example steps to the end (as torchattacks')."""
    return attacks.attack(model, x, y, start, eps, cfg, ctx)[0]


def pgd(steps, mode=None, restarts=1, seed=0, step_ratio=0.25) -> AttackConfig:
    """The AttackConfig of one PGD attack: `steps` steps of eps * step_ratio in `mode` (None: no rounding)."""
    return AttackConfig(steps=steps, step_ratio=step_ratio, restarts=restarts, modes=(mode or "pgd",), eval_seed=seed)


# ---- bad input: a clear error before any attack runs ---------------------------------------------------
class Spy(nn.Module):
    """A tiny logits model that counts the forward passes made with gradients on (attack steps)."""

    def __init__(self, softmax=False):
        super().__init__()
        self.linear = nn.Linear(3 * 4 * 4, 3)
        self.softmax, self.attack_calls = softmax, 0

    def forward(self, x):
        self.attack_calls += torch.is_grad_enabled()
        out = self.linear(x.flatten(1))
        return out.softmax(1) if self.softmax else out


def _inputs(n=6):
    gen = torch.Generator().manual_seed(0)
    return torch.rand(n, 3, 4, 4, generator=gen), torch.randint(0, 3, (n,), generator=gen)


@pytest.mark.parametrize("change, message", [
    ({"eps": 8}, "eps 8 is out of range.*8/255"),
    ({"eps": 0}, "eps 0 is out of range"),
    ({"step_ratio": 0}, "step size 0 is out of range"),
    ({"step_ratio": 2 / EPS}, "step size 2 is out of range"),
    ({"steps": -1}, "steps -1 must be a whole number"),
    ({"steps": 2.5}, "steps 2.5 must be a whole number"),
    ({"restarts": 0}, "restarts 0 must be a whole number >= 1"),
    ({"shapes": "fixed"}, "attack shapes 'fixed': choose exact or buckets"),
    ({"mode": "soft"}, "unknown rounding mode 'soft'"),
    ({"precision": "auto"}, "precision 'auto'.*resolve_precision"),
    ({"x": 255 * _inputs()[0]}, r"inputs span \[.*\]: attacks take images in \[0, 1\]"),
    ({"x": _inputs()[0] - 0.5}, r"inputs span \[.*\]: attacks take images in \[0, 1\]"),
    ({"x": _inputs()[0].index_fill(0, torch.tensor([2]), float("nan"))}, "NaN or infinite"),
    ({"y": _inputs()[1][:4]}, "6 images but 4 labels"),
    ({"softmax": True}, "returns probabilities.*remove the final softmax"),
    ({"train": True}, "training mode: call model.eval"),
])
def test_bad_input_is_a_clear_error_before_any_attack_step(change, message):
    x, y = _inputs()
    model = Spy(softmax=change.pop("softmax", False)).train(change.pop("train", False))
    a = dict(x=x, y=y, eps=EPS, steps=3, step_ratio=0.25, mode=None, restarts=1, precision="fp32",
             shapes="exact") | change
    cfg = pgd(a["steps"], a["mode"], a["restarts"], step_ratio=a["step_ratio"])
    with pytest.raises(ConfigError, match=message):
        attacks.pgd(model, a["x"], a["y"], a["eps"], cfg, attacks.Context(a["precision"], shapes=a["shapes"]))
    assert model.attack_calls == 0


def test_a_good_tiny_model_passes_the_checks_and_is_attacked():
    x, y = _inputs()
    torch.manual_seed(0)
    model = Spy().eval()
    # early exit off: a random model may get every example wrong, and then nothing would be attacked
    assert attacks.pgd(model, x, y, EPS, pgd(3), attacks.Context(early_exit=False)).shape == (6,)
    assert model.attack_calls > 0


# ---- rounding: masking reproduced, and undone by bpda and off -----------------------------------------
def test_exact_gradient_is_masked_while_bpda_and_off_break_the_model(rounding, eps):
    model, x, y, clean = rounding
    acc = {mode: _acc(attacks.pgd(model, x, y, eps, pgd(10, mode))) for mode in ("exact", "bpda", "off")}
    assert _acc(clean) > 0.25  # the fixture's net is good enough for robustness to mean something
    assert acc["exact"] >= _acc(clean) - 0.03  # the true gradient of round is zero: PGD barely moves
    assert acc["bpda"] <= _acc(clean) / 3 and acc["off"] <= _acc(clean) / 3


# ---- PGD's own properties -------------------------------------------------------------------------------
def test_accuracy_never_rises_with_more_steps_on_a_fixed_seed(rounding, eps):
    model, x, y, clean = rounding
    acc = [_acc(attacks.pgd(model, x, y, eps, pgd(s, "bpda", seed=3), robust=clean)) for s in (0, 1, 2, 5, 10, 20)]
    assert all(b <= a + 1 / len(x) for a, b in zip(acc, acc[1:])), acc  # at most one example of noise
    assert acc[-1] < acc[0] - 0.1, acc  # and the steps do something


def test_the_same_seed_gives_the_same_examples_and_another_seed_a_different_start(rounding):
    model, x, y, clean = rounding
    run = lambda seed: attacks.pgd(model, x, y, EPS, pgd(2, "bpda", seed=seed), robust=clean)
    assert torch.equal(run(1), run(1))
    assert not torch.equal(attacks.random_start(x, EPS, 1), attacks.random_start(x, EPS, 2))


def test_restarts_keep_the_worst_case_per_example(rounding):
    model, x, y, clean = rounding
    eps, steps, seed = 8 / 255, 1, 5
    with_restarts = attacks.pgd(model, x, y, eps, pgd(steps, "bpda", restarts=3, seed=seed))
    per_restart = []
    for r in range(3):  # restart r starts from the noise seeded seed * 1000 + r; both its iterates are scored
        start = attacks.random_start(x, eps, seed * 1000 + r)
        right = [attacks.predict(model, craft(model, x, y, start, eps, pgd(s, "bpda")), "fp32", 500) == y
                 for s in (0, steps)]
        per_restart.append(clean & right[0] & right[1])
    assert torch.equal(with_restarts, per_restart[0] & per_restart[1] & per_restart[2])
    assert _acc(with_restarts) <= min(_acc(r) for r in per_restart)


def test_early_exit_changes_the_cost_not_the_result(rounding):
    model, x, y, clean = rounding
    fast = attacks.pgd(model, x, y, 2 / 255, pgd(5, "bpda"), attacks.Context(early_exit=True))
    full = attacks.pgd(model, x, y, 2 / 255, pgd(5, "bpda"), attacks.Context(early_exit=False))
    assert (fast != full).sum().item() <= EARLY_EXIT_TOL


def test_bf16_autocast_matches_fp32_within_noise(rounding):
    model, x, y, clean = rounding
    x, y, clean = x[:64], y[:64], clean[:64]  # autocast is slow on the CPU
    fp32, bf16 = (attacks.pgd(model, x, y, 2 / 255, pgd(5, "bpda"), attacks.Context(p), robust=clean)
                  for p in ("fp32", "bf16"))
    assert abs(_acc(fp32) - _acc(bf16)) <= BF16_TOL
    assert (fp32 != bf16).float().mean().item() <= BF16_TOL


# ---- a trusted reference: torchattacks' PGD --------------------------------------------------------------
@pytest.mark.parametrize("pipeline, mode", [("baseline", None), ("round", "bpda")])
def test_same_examples_as_torchattacks_pgd_from_the_same_start(trained_small_net, pipeline, mode):
    torchattacks = pytest.importorskip("torchattacks")
    from harness.run.diagnostics import LibraryView
    net, x, y = trained_small_net
    x, y = x[:128], y[:128]
    pipe = pipelines.create(pipeline, (0.0,) * x.shape[1], (1.0,) * x.shape[1], None)  # identity normalization
    model = pipelines.Deployed(pipe, net).eval()
    eps, alpha, steps = 4 / 255, 1 / 255, 10
    torch.manual_seed(7)  # torchattacks draws its start from the global RNG: draw the same noise here
    start = x + torch.empty_like(x).uniform_(-eps, eps)
    ours = craft(model, x, y, start, eps, pgd(steps, mode, step_ratio=alpha / eps))
    torch.manual_seed(7)
    theirs = torchattacks.PGD(LibraryView(model, mode or "exact", "fp32"), eps=eps, alpha=alpha, steps=steps,
                              random_start=True)(x, y)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)
    ours_pred, theirs_pred = (attacks.predict(model, a, "fp32", 500) for a in (ours, theirs))
    assert torch.equal(ours_pred, theirs_pred)
    assert (ours_pred == y).float().mean() < (attacks.predict(model, x, "fp32", 500) == y).float().mean()


# ---- examples with an exactly zero gradient stop stepping ----------------------------------------------
class Counting(nn.Module):
    """Counts the forward passes `model` makes with gradients on."""

    def __init__(self, model):
        super().__init__()
        self.model, self.grad_calls = model, 0

    def forward(self, x):
        self.grad_calls += torch.is_grad_enabled()
        return self.model(x)


def test_a_masked_attack_takes_one_step_and_leaves_each_image_at_its_start(rounding):
    model, x, y, _ = rounding
    counting, eps = Counting(model).eval(), 4 / 255
    start = attacks.random_start(x, eps, 0)
    adv = craft(counting, x, y, start, eps, pgd(10, "exact"), attacks.Context(batch=100))
    assert counting.grad_calls == 3  # one step per chunk of 100 (256 images), not 10
    assert torch.equal(adv, torch.min(torch.max(start, (x - eps).clamp(min=0)), (x + eps).clamp(max=1)))


class HalfMasked(nn.Module):
    """`net` for images brighter on average than `threshold`, constant logits (a zero gradient) for the others."""

    def __init__(self, net, threshold):
        super().__init__()
        self.net, self.threshold = net, threshold

    def forward(self, x):
        return self.net(x) * (x.flatten(1).mean(1, keepdim=True) > self.threshold)


def test_examples_that_stop_early_leave_the_others_as_torchattacks_steps_them(trained_small_net):
    torchattacks = pytest.importorskip("torchattacks")
    net, x, y = trained_small_net
    x, y = x[:128], y[:128]
    model = HalfMasked(net, x.flatten(1).mean(1).median()).eval()
    eps, alpha, steps = 4 / 255, 1 / 255, 10
    torch.manual_seed(7)  # torchattacks draws its start from the global RNG: draw the same noise here
    start = x + torch.empty_like(x).uniform_(-eps, eps)
    frozen = craft(model, x, y, start, eps, pgd(0, step_ratio=alpha / eps)) == \
        craft(model, x, y, start, eps, pgd(steps, step_ratio=alpha / eps))
    ours = craft(model, x, y, start, eps, pgd(steps, step_ratio=alpha / eps))
    torch.manual_seed(7)
    theirs = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=True)(x, y)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)
    stopped = frozen.flatten(1).all(1)
    assert 0.2 < stopped.float().mean() < 0.8  # both kinds of example are there


# ---- attack shapes: exact, or padded to a few buckets ---------------------------------------------------
class ShapesSeen(nn.Module):
    """Records the batch sizes `model` sees."""

    def __init__(self, model):
        super().__init__()
        self.model, self.sizes = model, []

    def forward(self, x):
        self.sizes.append(len(x))
        return self.model(x)


@pytest.mark.parametrize("n, shapes, padded", [(0, "buckets", 0), (1, "buckets", 63), (63, "buckets", 63),
                                               (64, "buckets", 126), (441, "buckets", 441), (442, "buckets", 500),
                                               (500, "buckets", 500), (137, "exact", 137)])
def test_buckets_are_multiples_of_an_eighth_of_the_chunk(n, shapes, padded):
    assert attacks.padded_size(n, 500, shapes) == padded


def test_bucketed_attacks_see_a_handful_of_shapes_and_find_the_same_examples(trained_small_net, eps_units):
    # float64, as in test_any_iterate: which examples share a pass then changes no prediction and no sign
    net, x, y = trained_small_net
    net, x, y = copy.deepcopy(net).double().eval(), x[:200].double(), y[:200]
    cfg = AttackConfig(eps=(eps_units / 2, eps_units), steps=5, modes=("off", "bpda"), restarts=2, n_eval=200)
    points, seen = {}, {}
    for shapes in attacks.ATTACK_SHAPES:
        model = ShapesSeen(pipelines.Deployed(pipelines.create("round", None, None, None), net).double()).eval()
        points[shapes] = attacks.evaluate(model, x, y, cfg, rounds=True, seed=0,
                                          ctx=attacks.Context(batch=64, shapes=shapes))
        seen[shapes] = model.sizes
    assert points["buckets"] == points["exact"]  # the same accuracies, and the same passes counted (`effort`)
    assert set(seen["buckets"]) <= {8 * k for k in range(1, 9)}  # chunks of 64: multiples of 8
    assert len(set(seen["exact"])) > 2 * len(set(seen["buckets"]))  # early exit's many shapes, without buckets
    assert sum(seen["buckets"]) > sum(seen["exact"])  # the padding was passed through the model ...
    s = points["exact"]["adv"]["%g" % eps_units]["strongest"]
    assert 0 < s < points["exact"]["clean"]  # ... of an attack that fooled some examples and not all


# ---- cuDNN's autotuner: as the attack shapes want it while attacking, as it was after -------------------
class AutotunerSeen(nn.Module):
    """Records torch.backends.cudnn.benchmark at every forward pass of `model`."""

    def __init__(self, model):
        super().__init__()
        self.model, self.seen = model, set()

    def forward(self, x):
        self.seen.add(torch.backends.cudnn.benchmark)
        return self.model(x)


@pytest.mark.parametrize("shapes", attacks.ATTACK_SHAPES)
@pytest.mark.parametrize("autotune_before", [True, False])
def test_attacks_set_the_cudnn_autotuner_by_their_shapes_and_restore_it(rounding, shapes, autotune_before,
                                                                         monkeypatch):
    # exact: early exit hands attacks a new batch size at nearly every call, and the autotuner would time
    # every convolution again for each (harness.run.runtime.without_autotuning); buckets: a handful of shapes,
    # tuned once per process, so it stays as training set it. The final checks always run without it.
    model, x, y, _ = rounding
    seen = AutotunerSeen(model).eval()
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", autotune_before)
    cfg = AttackConfig(eps=(1.0, 4.0), steps=2, modes=("bpda", "exact"), n_eval=len(x))
    point = attacks.evaluate(seen, x[:64], y[:64], cfg, rounds=True, seed=0, ctx=attacks.Context(shapes=shapes))
    attacks.pgd(seen, x[:64], y[:64], 4 / 255, pgd(2, "bpda"), attacks.Context(shapes=shapes))
    assert seen.seen == ({False} if shapes == "exact" else {autotune_before})
    seen.seen.clear()
    tiny = FinalEvalConfig(n_eval=16, apgd_steps=2, square_queries=2, steps_curve=(1,), eps_curve=(255,))
    at_4 = AttackConfig(eps=(4.0,), steps=2, modes=("bpda",))
    diagnostics.final_evaluation(seen, x, y, at_4, tiny, "fp32")
    diagnostics.transfer_check(seen, seen, x[:16], y[:16], at_4, "fp32", whitebox_acc=0.0, tolerance=0.02)
    assert seen.seen == {False}
    assert torch.backends.cudnn.benchmark is autotune_before
    assert set(point["adv"]) == {"1", "4"}
