"""The known-answer controls (hypotheses/test_control_*.py): the protocol they declare, adversarial training as
a recipe setting, the logit-scale network, the masking control's outcome and the calibration table.
tests/test_broken_attack.py shows on real runs that a broken attack makes them miss."""
from __future__ import annotations

import dataclasses
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from harness.bench.workload import paper_runs
from harness.judge import verdict
from harness.report import page as report
from harness.run import models, train
from harness.spec import plan, results
from harness.spec.config import PROFILES, AttackConfig, ConfigError, Recipe, key
from helpers import NO_CHECKS, make_run, run_dict, sample_case

ROOT = Path(__file__).resolve().parent.parent
DECIDED = ("test_control_fast_at", "test_control_logit_scale", "test_control_seed_null")
REPORTED = ("test_control_discretize_bpda",)  # decides=False: no known answer at the CPU protocol's scale
CONTROLS = DECIDED + REPORTED


def control(name: str):
    """A hypothesis module's CLAIM, loaded from its file."""
    spec = importlib.util.spec_from_file_location(f"control_{name}", ROOT / "hypotheses" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.CLAIM


def test_k_control_selects_exactly_the_controls():
    out = subprocess.run([sys.executable, "-m", "pytest", "hypotheses/", "-k", "control", "--collect-only", "-q",
                          "-p", "no:cacheprovider"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    modules = {m for m in re.findall(r"^hypotheses/(\w+)\.py::", out.stdout, re.M)}
    assert modules == set(CONTROLS)


def test_controls_declare_a_cpu_protocol_that_the_paper_profile_decides_and_share_standard_runs():
    runs = paper_runs()
    for name in CONTROLS:
        cfgs = list(runs[name].values())
        assert {(c.variant.model, c.epochs, c.train_subset, c.attack.n_eval) for c in cfgs} == {
            ("test_resnet", 5, 10_000, 200)}
        assert len(cfgs) == 2 * len(PROFILES["paper"].seeds)
        assert plan.shortfalls(control(name), PROFILES["paper"], ("cifar10",), ()) == ()  # it decides
    standard = set(runs["test_control_fast_at"]) & set(runs["test_control_logit_scale"])
    assert len(standard) == 3 and standard < set(runs["test_control_seed_null"])  # one Standard arm, 3 seeds
    # A deciding profile below the claim's protocol falls short of it; the smoke profile's subset is smaller still.
    small = dataclasses.replace(PROFILES["paper"], attack=AttackConfig(n_eval=128))
    assert plan.shortfalls(control(CONTROLS[0]), small, ("cifar10",), ()) == (
        "128 evaluation images, the protocol has 200",)
    smoke = plan.Plan(control(CONTROLS[0]), PROFILES["smoke"], ("cifar10",), (8.0,))
    assert {(c.train_subset, c.attack.n_eval) for cs in plan.run_configs(smoke, "cifar10", "fp32").values()
            for c in cs} == {(1024, 128)}


@pytest.mark.parametrize("field, value", [("train_subset", 0), ("n_eval", -5), ("n_eval", 2.5), ("train_subset", True)])
def test_a_protocol_size_that_is_not_a_count_of_images_is_refused(field, value):
    with pytest.raises(ConfigError, match=rf"{field}={value!r}: give a number of images"):
        dataclasses.replace(control(CONTROLS[0]), **{field: value})


def test_adversarial_training_is_in_the_cache_key_and_the_parity_check():
    claim = control("test_control_fast_at")
    p = plan.Plan(claim, PROFILES["paper"], ("cifar10",), (8.0,))
    cfgs = plan.run_configs(p, "cifar10", "fp32")
    standard, fgsm = cfgs["Standard"][0], cfgs["FGSM-RS"][0]
    assert fgsm.variant.recipe.adversarial == "fgsm_rs" and standard.variant.recipe.adversarial is None
    assert key(standard, "d", "c") != key(dataclasses.replace(standard, variant=fgsm.variant), "d", "c")
    assert plan.parity(p) == []  # the declared factor
    assert plan.parity(dataclasses.replace(p, claim=dataclasses.replace(claim, factor=None))) == [
        "variant.recipe.adversarial: Standard None, FGSM-RS fgsm_rs"]  # changed silently: confounded
    with pytest.raises(ConfigError, match=r"adversarial='pgd': use one of \(None, 'fgsm_rs'\)"):
        Recipe(adversarial="pgd")


def test_fgsm_rs_crafts_inside_the_ball_and_the_adversarial_recipe_trains_on_it():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10))
    x, y = torch.rand(64, 3, 8, 8), torch.randint(0, 10, (64,))
    eps = 8 / 255
    adv = train.fgsm_rs(net, x, y, eps, 10 / 255, torch.Generator().manual_seed(1), "fp32")
    assert (adv - x).abs().max() <= eps + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    assert F.cross_entropy(net(adv), y) > F.cross_entropy(net(x), y) + 0.01  # it attacks
    assert torch.equal(adv, train.fgsm_rs(net, x, y, eps, 10 / 255, torch.Generator().manual_seed(1), "fp32"))
    # One training step of each recipe from the same weights on the same batch: the adversarial one's loss
    # is the loss on its FGSM examples, so higher.
    images = (x * 255).to(torch.uint8)
    losses = {}
    for adversarial in (None, "fgsm_rs"):
        r = Recipe(adversarial=adversarial, crop_padding=0)
        model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10))
        model.load_state_dict(net.state_dict())
        opt = train.make_optimizer(model.parameters(), r, torch.device("cpu"))
        sched = train.make_schedule(opt, 0, 1)
        losses[adversarial] = train.train_step(model, sched, images, y, r, torch.Generator().manual_seed(2),
                                               "fp32", False).item()
    assert losses["fgsm_rs"] > losses[None] + 0.01


def test_logit_scale_multiplies_the_logits_at_deployment_only():
    torch.manual_seed(0)
    net = models.create("test_resnet", 10, 3, 32, logit_scale=1e4)
    assert isinstance(net, models.LogitScale) and sum(p.numel() for p in net.parameters()) == 373_658
    x = torch.rand(8, 3, 32, 32)
    net.eval()
    with torch.no_grad():
        inner, deployed = net.net(x), net(x)
    assert torch.allclose(deployed, inner * 1e4) and torch.equal(deployed.argmax(1), inner.argmax(1))
    net.train()
    with torch.no_grad():
        assert torch.equal(net(x), net.net(x))  # trained as the unscaled network
    assert not isinstance(models.create("test_resnet", 10, 3, 32), models.LogitScale)
    with pytest.raises(ConfigError, match="logit_scale=0: use a positive number"):
        models.create("test_resnet", 10, 3, 32, logit_scale=0)


def test_a_masking_control_passes_only_unsupported_with_its_masking_named_on_its_better_arm():
    claim = control("test_control_logit_scale")
    p = plan.Plan(claim, PROFILES["paper"], ("cifar10",), (8.0,))
    runs = {arm: [make_run(f"{arm}{s}", [0.6], [adv + 0.01 * s], eps=8.0, dataset_used="cifar10", label=f"{arm}/s{s}")
                  for s in range(3)] for arm, adv in (("Scaled", 0.6), ("Standard", 0.01))}

    def judged(*warnings):
        return verdict.judge(p, "cifar10", 8.0, {"cifar10": runs},
                             dataclasses.replace(NO_CHECKS, masking_warnings=list(warnings)), 0.05)
    named = judged("Scaled/s0: gradients_not_masked: FAILED", "Standard/s1: steps_monotone: FAILED")
    assert (named.verdict, named.outcome, named.problems) == ("supported (unverified)", "passed", [])
    unnamed = judged()  # masking that no check names: the suite would call it robust
    assert (unnamed.verdict, unnamed.outcome) == ("supported", "failed")
    assert unnamed.problems == ["no masking check failed on Scaled, whose gain is masking by construction: the "
                                "checks did not name it"]
    wrong_arm = judged("Standard/s0 (epoch 1, its best adversarial accuracy): apgd_not_stronger: FAILED")
    assert wrong_arm.outcome == "failed" and wrong_arm.problems == unnamed.problems
    best_epoch = judged("Scaled/s2 (epoch 1, its best adversarial accuracy): apgd_not_stronger: FAILED")
    assert best_epoch.outcome == "passed"
    warned = ["Scaled/s0: square: FAILED"]
    assert verdict.outcome(sample_case(expect="masked", verdict="inconclusive", masking_warnings=warned)) == "passed"
    assert verdict.outcome(sample_case(expect="masked", verdict="supported", masking_warnings=warned)) == "failed"
    assert verdict.outcome(sample_case(expect="masked", verdict="inconclusive")) == "failed"


def test_calibration_table_follows_the_board_with_each_controls_known_answer_and_result(tmp_path):
    doc = control_doc()
    html = report.page(doc, "controls")
    assert html.index('id="board"') < html.index('id="calibration"') < html.index('id="claim-0"')
    table = re.search(r'<table class="calibration">(.*?)</table>', html, re.S).group(1)
    rows = re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>")[1], re.S)
    by_module = {re.search(r">(test_control_\w+)</a> · cifar10</td>", r).group(1): r for r in rows}
    assert set(by_module) == set(CONTROLS)
    fast = by_module["test_control_fast_at"]
    assert "supported, every masking check passing" in fast and "Wong, Rice and Kolter 2020" in fast
    assert '<span class="verdict supported">supported</span>' in fast
    assert '<span class="check ok">met</span> (0 failed masking check(s))' in fast
    assert "FGSM-RS − Standard: +0.1200" in fast  # (0.25 - 0.05) x 0.6 clean: the dominated area
    assert "training: FGSM-RS: fgsm_rs, eps 8/255, step 10/255; Standard: none / evaluation: PGD-10" in fast
    masked = by_module["test_control_logit_scale"]
    assert '<span class="verdict supported-unverified">supported (unverified)</span>' in masked
    assert '<span class="check ok">met</span> (1 failed masking check(s))' in masked and "never supported" in masked
    null = by_module["test_control_seed_null"]
    assert '<span class="check bad">MISSED</span> (0 failed masking check(s))' in null  # it found a gain
    assert '<span class="verdict supported">' in null and "A/A" in null
    reported = by_module["test_control_discretize_bpda"]
    assert "none at this scale: reported beside its source" in reported and "97% attack success" in reported
    assert '<span class="check note">not decided here</span>' in reported
    # (0.55 - 0.05..0.07) x 0.6 under exact alone, masking's credit; off and bpda score as the strongest does
    assert "2-bit − Standard: +0.0000 [" in reported and \
        "(each mode alone: off +0.0060, bpda +0.0000, exact +0.2940)" in reported
    assert "4 control(s): 2 met, 1 MISSED, 1 not decided here." in html


def control_doc() -> results.Results:
    """A paper-profile results.json of the four controls, judged from made-up runs: the positive and the
    masking control meet their known answers, the null control (given a real difference) misses, the
    reported one decides nothing (its exact mode masked)."""
    cases, all_runs = [], {}
    for name, warnings, gap in (("test_control_fast_at", [], 0.2), ("test_control_logit_scale", ["better"], 0.5),
                                ("test_control_seed_null", [], 0.2), ("test_control_discretize_bpda", [], 0.0)):
        claim = control(name)
        p = plan.Plan(claim, PROFILES["paper"], ("cifar10",), claim.eps)
        def adv(arm, i):  # the rounding arm: its exact gradient masked (PGD through it finds nothing)
            a = [0.05 + gap * (arm == claim.better) + 0.01 * i]
            return {"off": [a[0] + 0.01], "bpda": a, "exact": [0.55], "strongest": a} if arm == "2-bit" else a
        runs = {arm: [make_run(f"{name}-{c.label}", [0.6], adv(arm, i), eps=claim.deciding_eps, config=c,
                               dataset_used="cifar10", label=c.label)
                      for i, c in enumerate(cs)] for arm, cs in plan.run_configs(p, "cifar10", "fp32").items()}
        masking = [f"{runs[claim.better][0].label}: gradients_not_masked: FAILED" for _ in warnings]
        case = verdict.judge(p, "cifar10", claim.deciding_eps, {"cifar10": runs},
                             dataclasses.replace(NO_CHECKS, masking_warnings=masking), 0.05, module=name,
                             nodeid=f"hypotheses/{name}.py::test[cifar10-eps{claim.deciding_eps:g}]")
        cases.append(case.to_dict())
        all_runs.update({r.key: run_dict(r) for rs in runs.values() for r in rs})
    doc = results.new({"profile": "paper", "alpha": 0.05})
    doc.update(partial=False, cases=cases, runs=all_runs)
    return results.parse(results.plain(doc))


def test_calibration_table_renders_in_chromium(tmp_path):
    from test_report_browser import CHROMIUM, body_attributes, chromium
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is missing: install Debian's chromium package to run the browser check")
    folder = tmp_path / "20261205-000000"
    folder.mkdir()
    results.write(folder, control_doc())
    page = report.render(folder)
    dom = chromium(tmp_path, page, "--dump-dom")
    assert body_attributes(dom)["data-js-errors"] == ""
    table = re.search(r'<table class="calibration">(.*?)</table>', dom, re.S).group(1)
    assert table.count('<tr><td><a href="#claim-') == len(CONTROLS) and "Controls: known answers" in dom
    shots = tmp_path / "calibration.png"
    chromium(tmp_path, page, f"--screenshot={shots}", "--window-size=1400,900")
    assert shots.stat().st_size > 20_000


def test_a_run_cases_share_keeps_the_final_checks_one_case_attached():
    doc = results.new({"profile": "paper"})
    results.add(doc, {"runs": {"k": {"key": "k", "records": [], "final": {"eps": 8.0}}}})
    results.add(doc, {"runs": {"k": {"key": "k", "records": []}}})  # the null control's copy: no final checks
    assert doc["runs"]["k"]["final"] == {"eps": 8.0}
