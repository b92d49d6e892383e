"""Final evaluation and gradient-masking diagnostics (harness.run.diagnostics): the output schema, the
checks quiet on a sound evaluation and firing on a masked one, and the transfer check."""
import dataclasses
import json
import sys

import pytest
import torch

from harness.run import attacks, diagnostics, pipelines
from harness.spec.config import AttackConfig, ConfigError, FinalEvalConfig

CFG = FinalEvalConfig(n_eval=64, apgd_steps=5, square_queries=100, steps_curve=(1, 2, 5),
                      eps_curve=(2, 8, 255), tolerance=0.05)  # 0.05 = 3 of 64 examples
CHECKS = {"more_effort_finds_little", "unbounded_attack_wins", "gradient_free_not_stronger", "apgd_not_stronger",
          "gradients_not_masked"}


@pytest.fixture(scope="module")
def models(trained_small_net):
    """The same trained net behind Round and behind Baseline (identity normalization, so it sees what
    it was trained on): (round model, baseline model, images, labels)."""
    net, x, y = trained_small_net
    c = x.shape[1]
    rounding = pipelines.Deployed(pipelines.create("round", None, None, None), net).eval()
    baseline = pipelines.Deployed(pipelines.create("baseline", (0.0,) * c, (1.0,) * c, None), net).eval()
    return rounding, baseline, x, y


@pytest.fixture(scope="module")
def attack(eps_units):
    """The run's attack at the dataset's usual radius (tests/conftest.py): large enough that Square, with few
    queries, fools this small net."""
    return AttackConfig(eps=(eps_units,), steps=10, step_ratio=0.25, eval_seed=0)


def final(model, x, y, attack, cfg=CFG, **change):
    """diagnostics.final_evaluation of `attack` with `change` (its fields: modes, steps, ...)."""
    return diagnostics.final_evaluation(model, x, y, dataclasses.replace(attack, **change), cfg, "fp32")


@pytest.fixture(scope="module")
def sound(models, attack):
    """All three modes: the strongest per example is BPDA's or off's, which have gradients."""
    rounding, _, x, y = models
    pytest.importorskip("torchattacks")
    return final(rounding, x, y, attack, modes=("off", "bpda", "exact"))


@pytest.fixture(scope="module")
def masked(models, attack):
    """Only `exact`: the verdict would rest on an attack whose gradient is zero (the post's trap)."""
    rounding, _, x, y = models
    pytest.importorskip("torchattacks")
    return final(rounding, x, y, attack, modes=("exact",))


def _plain_json(value) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain_json(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain_json(v) for v in value)
    return value is None or type(value) in (bool, int, float, str)


def test_output_schema_is_plain_json_with_every_field(sound, eps_units):
    assert set(sound) == {"n", "clean", "eps", "pgd", "apgd_ce", "apgd_dlr", "square", "zero_grad", "steps_curve",
                          "eps_curve", "strongest_overall", "checks", "warnings", "seconds"}
    assert _plain_json(sound) and json.loads(json.dumps(sound)) == sound
    assert sound["n"] == CFG.n_eval and sound["eps"] == eps_units
    assert set(sound["pgd"]) == {"off", "bpda", "exact", "strongest"}
    assert set(sound["apgd_ce"]) == set(sound["apgd_dlr"]) == {"off", "bpda", "strongest"}  # exact: no gradient
    assert sound["steps_curve"]["steps"] == list(CFG.steps_curve) and len(sound["steps_curve"]["acc"]) == 3
    assert sound["eps_curve"]["eps"] == [2.0, 8.0, 255.0] and len(sound["eps_curve"]["acc"]) == 3
    assert set(sound["checks"]) == CHECKS
    assert all(set(c) == {"ok", "detail"} and isinstance(c["ok"], bool) for c in sound["checks"].values())


def test_strongest_is_the_per_example_worst_case(sound):
    pgd = sound["pgd"]
    assert pgd["strongest"] <= min(pgd["off"], pgd["bpda"], pgd["exact"])
    every = [pgd["strongest"], sound["apgd_ce"]["strongest"], sound["apgd_dlr"]["strongest"], sound["square"]]
    assert sound["strongest_overall"] <= min(every)
    assert sound["apgd_ce"]["strongest"] <= sound["clean"] and sound["strongest_overall"] < sound["clean"]


def test_sound_evaluation_passes_every_check(sound):
    assert {name: c["ok"] for name, c in sound["checks"].items()} == dict.fromkeys(CHECKS, True), sound["checks"]
    assert sound["warnings"] == []
    assert sound["zero_grad"] == {"off": 0.0, "bpda": 0.0, "exact": 1.0}  # exact is masked, as expected
    assert sound["eps_curve"]["acc"][-1] == 0.0


def test_masked_evaluation_fails_the_checks_that_catch_it(masked):
    ok = {name: c["ok"] for name, c in masked["checks"].items()}
    assert ok == {"more_effort_finds_little": ok["more_effort_finds_little"],  # random starts: a few or none
                  "unbounded_attack_wins": False, "gradient_free_not_stronger": False, "gradients_not_masked": False,
                  "apgd_not_stronger": False}  # not checked: no mode with a gradient, so APGD could not run
    assert masked["apgd_ce"] is None and masked["apgd_dlr"] is None  # no mode with a gradient to run APGD on
    assert masked["pgd"]["exact"] >= masked["clean"] - CFG.tolerance  # PGD found (almost) nothing ...
    assert masked["square"] < masked["pgd"]["exact"] - CFG.tolerance  # ... where a gradient-free attack did
    assert masked["warnings"] == []  # failed checks live in `checks` only, so the report lists each once
    assert all("FAILED" in c["detail"] for c in masked["checks"].values() if not c["ok"])
    assert "no mode with a gradient (only exact)" in masked["checks"]["gradients_not_masked"]["detail"]


def test_a_weak_per_epoch_pgd_fails_the_apgd_check(models, attack):
    """One PGD step of eps/20 barely moves an image; APGD, at the same eps, finds what it missed."""
    pytest.importorskip("torchattacks")
    rounding, _, x, y = models
    weak = final(rounding, x, y, attack, modes=("bpda",), steps=1, step_ratio=0.05)
    check = weak["checks"]["apgd_not_stronger"]
    assert not check["ok"] and "FAILED" in check["detail"]
    assert weak["apgd_ce"]["strongest"] < weak["pgd"]["strongest"] - CFG.tolerance


def test_missing_torchattacks_records_null_and_a_warning(models, monkeypatch):
    rounding, _, x, y = models
    monkeypatch.setitem(sys.modules, "torchattacks", None)  # `import torchattacks` now raises ImportError
    cfg = FinalEvalConfig(n_eval=16, apgd_steps=2, square_queries=2, steps_curve=(1,), eps_curve=(255,))
    out = diagnostics.final_evaluation(rounding, x, y, AttackConfig(eps=(8.0,), steps=2, modes=("bpda",)), cfg, "fp32")
    assert out["apgd_ce"] is None and out["apgd_dlr"] is None and out["square"] is None
    assert diagnostics.MISSING_LIBRARY in out["warnings"]
    assert not out["checks"]["gradient_free_not_stronger"]["ok"]  # unverified is not passed
    assert not out["checks"]["apgd_not_stronger"]["ok"] and "torchattacks missing" in \
        out["checks"]["apgd_not_stronger"]["detail"]
    assert out["strongest_overall"] == out["pgd"]["strongest"]


def test_library_attacks_are_deterministic_and_leave_the_global_rng_alone(models):
    torchattacks = pytest.importorskip("torchattacks")
    rounding, _, x, y = models
    x, y = x[:32], y[:32]
    clean = attacks.predict(rounding, x, "fp32", 500) == y
    make = lambda net: torchattacks.APGD(net, eps=8 / 255, steps=3, seed=1)
    torch.manual_seed(123)
    first = diagnostics._attack_with(rounding, x, y, clean, "bpda", "fp32", make)
    after = torch.rand(1)
    torch.manual_seed(123)
    assert torch.equal(first, diagnostics._attack_with(rounding, x, y, clean, "bpda", "fp32", make))
    assert torch.equal(after, torch.rand(1))
    assert not rounding.training  # torchattacks puts the wrapper's training flag back, not ours


def test_transfer_check_passes_when_whitebox_is_sound_and_fails_when_masked(models, sound, masked, attack):
    rounding, baseline, x, y = models
    x, y = x[:CFG.n_eval], y[:CFG.n_eval]
    args = dict(attack_cfg=dataclasses.replace(attack, steps=5), precision="fp32", tolerance=CFG.tolerance)
    honest = diagnostics.transfer_check(baseline, rounding, x, y, whitebox_acc=sound["pgd"]["strongest"], **args)
    fooled = diagnostics.transfer_check(baseline, rounding, x, y, whitebox_acc=masked["pgd"]["strongest"], **args)
    assert set(honest) == {"eps", "transfer_acc", "whitebox_acc", "ok", "detail"} and _plain_json(honest)
    assert honest["ok"] and not fooled["ok"]
    assert honest["transfer_acc"] == fooled["transfer_acc"] < masked["pgd"]["strongest"] - CFG.tolerance
    assert "FAILED" in fooled["detail"] and f"{CFG.tolerance:g}" in fooled["detail"]


def test_unknown_modes_are_a_clear_error(models, attack):
    rounding, _, x, y = models
    with pytest.raises(ConfigError, match=r"attack modes \['soft'\].*off, bpda, exact, pgd"):
        final(rounding, x, y, attack, modes=("soft",))


class Saturated(torch.nn.Module):
    """`model`'s logits times `scale`: the cross-entropy of a confidently right example rounds to exactly
    zero, and so does its gradient, while the DLR loss (a ratio of logit gaps) does not change at all."""

    def __init__(self, model, scale):
        super().__init__()
        self.model, self.scale = model, scale

    def forward(self, x):
        return self.model(x) * self.scale


def test_apgd_dlr_finds_what_saturated_cross_entropy_misses(models, attack):
    pytest.importorskip("torchattacks")
    _, baseline, x, y = models
    saturated = Saturated(baseline, 1e4).eval()
    out = final(saturated, x, y, attack, modes=("pgd",))
    assert out["zero_grad"]["pgd"] > 0.3  # cross-entropy saturated on many examples
    assert out["apgd_dlr"]["strongest"] < out["apgd_ce"]["strongest"] - CFG.tolerance
    assert out["apgd_dlr"]["strongest"] < out["pgd"]["strongest"] - CFG.tolerance
    check = out["checks"]["apgd_not_stronger"]
    assert not check["ok"] and f"DLR {out['apgd_dlr']['strongest']:.3f}" in check["detail"]
    no_dlr = final(saturated, x, y, attack, dataclasses.replace(CFG, apgd_dlr=False), modes=("pgd",))
    assert no_dlr["apgd_dlr"] is None and no_dlr["apgd_ce"] == out["apgd_ce"]


def test_transfer_crafts_through_the_sources_rounding_with_bpda(models, attack):
    rounding, baseline, x, y = models
    x, y = x[:CFG.n_eval], y[:CFG.n_eval]
    args = dict(attack_cfg=dataclasses.replace(attack, steps=5), precision="fp32", whitebox_acc=0.0,
                tolerance=CFG.tolerance)
    there = diagnostics.transfer_check(baseline, rounding, x, y, **args)
    back = diagnostics.transfer_check(rounding, baseline, x, y, **args)
    assert back["detail"].startswith("PGD-5 crafted on the source (bpda)")
    assert there["detail"].startswith("PGD-5 crafted on the source (as deployed)")


def test_a_transfer_from_a_model_to_itself_is_its_white_box_pgd(models, eps_units):
    """Both score every iterate on the deployed target: from the same start, the same examples fall."""
    rounding, _, x, y = models
    x, y = x[:CFG.n_eval], y[:CFG.n_eval]
    eps, seed = eps_units / 255, 2
    at_eps = AttackConfig(eps=(eps_units,), steps=5, eval_seed=seed * 1000)  # the transfer's start: pgd's first
    self_transfer = diagnostics.transfer_check(rounding, rounding, x, y, at_eps, "fp32", whitebox_acc=0.0,
                                               tolerance=CFG.tolerance)
    white_box = attacks.pgd(rounding, x, y, eps, AttackConfig(steps=5, modes=("bpda",), eval_seed=seed))
    assert self_transfer["transfer_acc"] == attacks.accuracy(white_box)


def test_final_pgd_uses_the_runs_restarts(models, attack, monkeypatch):
    rounding, _, x, y = models
    monkeypatch.setitem(sys.modules, "torchattacks", None)  # PGD only: the library's attacks are not the point
    one, two = (final(rounding, x, y, attack, modes=("off", "bpda"), restarts=r) for r in (1, 2))
    x, y = x[:CFG.n_eval], y[:CFG.n_eval]
    eps = attack.eps[0] / 255
    for mode, first in (("off", 0), ("bpda", 2)):  # gradient mode j starts at start j * restarts
        cfg = dataclasses.replace(attack, restarts=2, modes=(mode,))
        expect = attacks.pgd(rounding, x, y, eps, cfg, first_start=first)
        assert two["pgd"][mode] == attacks.accuracy(expect)
        assert two["pgd"][mode] <= one["pgd"][mode]


# ---- each check fails on a masked model and passes on an honest one -------------------------------------------
class _Noise(torch.autograd.Function):
    """The identity, whose backward passes the true gradient for a random share `p` of the examples and noise
    for the others."""

    @staticmethod
    def forward(ctx, x, p):
        ctx.p = p
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        true = (torch.rand(len(grad), *[1] * (grad.dim() - 1)) < ctx.p).to(grad.dtype)
        return true * grad + (1 - true) * torch.randn_like(grad), None


class NoisyGradient(torch.nn.Module):
    """`model` behind a layer whose gradient is right only for a share `p` of the examples per call, noise for
    the others (stochastic gradients, as a randomized defence gives; inside the network, where BPDA through
    the input rounding cannot mend them). p = 0: the gradient says nothing at all."""

    def __init__(self, model, p=0.0):
        super().__init__()
        self.model, self.p = model, p

    def forward(self, x):
        return self.model(_Noise.apply(x, self.p))


def test_more_steps_and_restarts_find_little_on_an_honest_model_and_much_on_a_noisy_gradient(models, attack):
    """Scored on every iterate, a longer attack's accuracy can never rise, so "accuracy must not rise with more
    steps" could not fail. The check now runs PGD with the curve's most steps (20) from twice as many fresh
    starts: on the honest model it finds at most a tolerance more; behind a gradient that is right one call in
    five, the run's PGD-10 is far from converged and the longer attack finds more (0.08-0.14 of the examples,
    Fashion-MNIST and CIFAR-10, two noise seeds)."""
    _, baseline, x, y = models
    cfg = dataclasses.replace(CFG, steps_curve=(1, 5, 20))
    honest = final(baseline, x, y, attack, cfg, modes=("pgd",))["checks"]["more_effort_finds_little"]
    assert honest["ok"] and "PGD-20 from 2 fresh starts" in honest["detail"]
    for seed in (0, 1):  # the noise layer's draws
        torch.manual_seed(seed)
        noisy = final(NoisyGradient(baseline, 0.2).eval(), x, y, attack, cfg, modes=("pgd",))
        check = noisy["checks"]["more_effort_finds_little"]
        assert not check["ok"] and "FAILED: at most 0.05 more" in check["detail"]


def test_the_gradient_check_means_something_on_a_rounding_arm(models, attack, trained_small_net, sound):
    """On a rounding arm `off` and `bpda` always have gradients, so "zero under every mode" could not fail
    there. The check now asks whether each gradient the attack uses beats a random step on the deployed model:
    the honest Round arm's do; a network whose gradient is noise behind the same rounding fails, through BPDA
    too, though none of its gradients is ever zero (and so does the same noise without rounding)."""
    pytest.importorskip("torchattacks")
    torch.manual_seed(0)
    _, baseline, x, y = models
    noisy_round = pipelines.Deployed(pipelines.create("round", None, None, None),
                                     NoisyGradient(trained_small_net[0])).eval()
    bad = [final(noisy_round, x, y, attack, modes=("off", "bpda", "exact")),
           final(NoisyGradient(baseline).eval(), x, y, attack, modes=("pgd",))]
    assert sound["checks"]["gradients_not_masked"]["ok"], sound["checks"]["gradients_not_masked"]
    assert bad[0]["zero_grad"]["off"] == bad[0]["zero_grad"]["bpda"] == 0.0  # the old check passed it
    for out in bad:
        check = out["checks"]["gradients_not_masked"]
        assert not check["ok"] and "FAILED: each must exceed" in check["detail"], check
    assert "bpda" in bad[0]["checks"]["gradients_not_masked"]["detail"]


def test_the_unbounded_and_gradient_free_checks_fail_on_a_masked_attack_and_pass_on_an_honest_one(sound, masked):
    """The APGD check's pair is test_a_weak_per_epoch_pgd_fails_the_apgd_check and the sound evaluation."""
    for name in ("unbounded_attack_wins", "gradient_free_not_stronger", "apgd_not_stronger"):
        assert sound["checks"][name]["ok"] and not masked["checks"][name]["ok"]
