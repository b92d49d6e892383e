"""Dose-response claims (harness.spec.claim.TrendClaim) judged by the one judge (harness.judge.verdict.judge)
from constructed runs: the same rules as pairs (Holm, masking, design, equivalence, parity at collection)."""
import dataclasses
import math

import pytest

from helpers import NO_CHECKS, make_run
from harness.judge import inference, verdict
from harness.run.data import Sources
from harness.spec import plan
from harness.spec.case import Case
from harness.spec.claim import TrendClaim
from harness.spec.config import PROFILES, ConfigError, Recipe, Variant

BITS = (8, 6, 4, 2)
CHECKS = NO_CHECKS


def _claim(expect="decreasing", datasets=("toy",), bits=BITS, **kwargs):
    levels = {b: Variant("vit_tiny", "round", pipeline_kwargs={"bits": b}) for b in bits}
    return TrendClaim(statement="fewer bits, better tradeoff", unit="bits", levels=levels, datasets=datasets,
                      epochs=2, expect=expect, eps=(1.0,), modes=("off", "bpda", "exact"),
                      factor="pipeline_kwargs.bits", **kwargs)


def _run(key, clean, adv, status="done"):
    """Two epochs; the second at `clean`, `adv` (the first half as good): dominated area = clean * adv."""
    return make_run(key, [clean / 2, clean], {"off": [min(1.0, adv / 2 + 0.1), min(1.0, adv + 0.1)],
                                              "strongest": [adv / 2, adv]}, status=status)


def _runs(adv_of_bits, noise=(0.0, 0.012, -0.01), bits=BITS):
    """level name -> 3 seeds; adversarial accuracy adv_of_bits(b) + a per-seed offset; clean rises with bits."""
    return {f"{b} bits": [_run(f"b{b}s{s}", 0.5 + 0.02 * b, adv_of_bits(b) + d) for s, d in enumerate(noise)]
            for b in bits}


def _judge(claim, family, dataset="toy", profile="paper", checks=CHECKS):
    p = plan.Plan(claim=claim, profile=PROFILES[profile], datasets=tuple(family), eps=(1.0,))
    return verdict.judge(p, dataset, 1.0, family, checks, 0.05, nodeid="h.py::t[toy-eps1]", module="h")


def test_a_clean_dose_in_the_claimed_direction_is_supported_and_passes():
    case = _judge(_claim(), {"toy": _runs(lambda b: 0.40 - 0.03 * b)})
    tr = case.trend
    assert case.kind == "trend" and tr.levels == [2.0, 4.0, 6.0, 8.0]
    assert tr.names == ["2 bits", "4 bits", "6 bits", "8 bits"]
    assert tr.slope < 0 and tr.ci[1] < 0 and case.test.p_greater < 0.01 < 0.99 < case.test.p_less
    # the test holds the trend in the claimed direction: a positive effect is a falling score
    assert case.test.method == "trend" and case.test.effect == pytest.approx(-tr.slope)
    assert case.test.ci[0] == pytest.approx(-tr.ci[1]) and case.test.n == [3, 3, 3, 3]
    assert (case.better, case.worse) == ("2 bits", "8 bits")
    assert case.verdict == "supported" and case.outcome == "passed"
    # the clean cost: final clean accuracy 0.5 + 0.02 b rises with bits, exactly (no per-seed noise)
    assert tr.clean_cost.values["8 bits"] == pytest.approx([0.66] * 3)
    assert tr.clean_cost.slope == pytest.approx(0.02)
    assert set(case.per_mode) == {"off", "bpda", "exact"} and [p.eps for p in case.along_eps] == [1.0]
    assert Case.from_dict(case.to_dict()) == case  # it travels as JSON like every case
    assert "slope of dominated_area along bits" in verdict.message(case)


def test_a_flat_dose_is_inconclusive_and_fails_when_it_decides():
    case = _judge(_claim(), {"toy": _runs(lambda b: 0.2, noise=(0.0, 0.03, -0.02))})
    assert case.test.p_greater > 0.05 and case.test.p_less > 0.05
    assert case.verdict == "inconclusive" and case.outcome == "failed"


def test_a_reversed_dose_is_contradicted():
    case = _judge(_claim(), {"toy": _runs(lambda b: 0.10 + 0.03 * b)})
    assert case.test.effect < 0 and case.test.p_less < 0.01
    assert case.verdict == "contradicted" and case.outcome == "failed"
    rising = _judge(_claim(expect="increasing"), {"toy": _runs(lambda b: 0.10 + 0.03 * b)})
    assert rising.verdict == "supported" and (rising.better, rising.worse) == ("8 bits", "2 bits")


def test_holm_adjusts_across_the_claims_datasets():
    claim = _claim(datasets=("a", "b"))
    family = {"a": _runs(lambda b: 0.40 - 0.03 * b), "b": _runs(lambda b: 0.2, noise=(0.0, 0.03, -0.02))}
    case = _judge(claim, family, dataset="a")
    assert case.test.p_adj_greater == pytest.approx(min(1.0, 2 * case.test.p_greater))
    assert case.test.holm_family == ["a eps=1", "b eps=1"]


def test_smoke_skips_and_a_failed_run_or_masking_warning_fails():
    runs = _runs(lambda b: 0.40 - 0.03 * b)
    assert _judge(_claim(), {"toy": runs}, profile="smoke").outcome == "skipped"
    masked = _judge(_claim(), {"toy": runs}, checks=dataclasses.replace(NO_CHECKS, masking_warnings=["2 bits/s0: FAILED"]))
    assert masked.verdict == "supported (unverified)" and masked.outcome == "failed"
    broken = dict(runs, **{"4 bits": runs["4 bits"][:1] + [_run("x", 0, 0, status="failed")] * 2})
    case = _judge(_claim(), {"toy": broken}, profile="smoke")
    assert case.outcome == "failed" and math.isnan(case.test.p_greater) and case.problems
    assert case.test.n == [3, 1, 3, 3]


# ---- the rules pairs get, for trends too (issue 21) ---------------------------------------------------
def test_a_contradicted_dose_with_a_failed_masking_check_is_unverified():
    case = _judge(_claim(), {"toy": _runs(lambda b: 0.10 + 0.03 * b)},
                  checks=dataclasses.replace(NO_CHECKS, masking_warnings=["8 bits/s0: gradients_not_masked: FAILED"]))
    assert case.verdict == "contradicted (unverified)" and case.outcome == "failed"


def test_a_dose_without_final_checks_cannot_pass():
    case = _judge(_claim(), {"toy": _runs(lambda b: 0.40 - 0.03 * b)}, checks=None)
    assert case.verdict == "supported (unverified)" and case.outcome == "failed"
    assert any("no final-checkpoint checks ran" in p for p in case.problems)


def test_a_two_level_dose_on_three_seeds_is_underpowered_as_a_pair_is():
    """Two levels of 3 seeds, Holm over 2 datasets: the exact floor 1/20 is above 0.0304 / 2."""
    claim = _claim(datasets=("a", "b"), bits=(8, 2))
    flat = _runs(lambda b: 0.2, noise=(0.0, 0.03, -0.02), bits=(8, 2))
    case = _judge(claim, {"a": flat, "b": flat}, dataset="a")
    assert case.test.design.underpowered and case.test.design.p_min_exact == pytest.approx(1 / 20)
    assert case.verdict == "underpowered" and "run the confirm look" in verdict.message(case)
    four = _runs(lambda b: 0.2, noise=(0.0, 0.03, -0.02))  # 4 levels: the exact floor is 1/369600
    assert _judge(_claim(datasets=("a", "b")), {"a": four, "b": four}, dataset="a").verdict == "inconclusive"


def test_a_dose_within_its_margin_is_negligible_and_an_equivalence_claim_passes():
    """Clean accuracy rises with bits, so the score (clean x adv) does too, by 0.004 per bit: significant, and
    well inside a margin of 0.01 per bit."""
    claim = _claim(expect="equivalent", equivalent_within=0.01)
    case = _judge(claim, {"toy": _runs(lambda b: 0.2, noise=(0.0, 0.002, -0.002))})
    assert case.trend.slope == pytest.approx(0.004) and case.test.p_adj_greater <= case.level
    assert case.equivalence.p_adj <= case.level and case.verdict == "negligible" and case.outcome == "passed"
    steep = _judge(claim, {"toy": _runs(lambda b: 0.40 - 0.03 * b)})
    assert steep.verdict == "contradicted" and steep.outcome == "failed"  # read as increasing: it falls


def test_a_dose_whose_levels_differ_in_more_than_the_dose_is_confounded_at_collection(tmp_path):
    """The bit-depth dose whose 2-bit level got another learning rate and input size came out supported with
    parity []: the planned configs now stop it before anything trains, under every profile."""
    claim = _claim(datasets=("cifar10",))
    two = dataclasses.replace(claim.levels[2], recipe=Recipe(lr=0.1), input_size=64)
    confounded = dataclasses.replace(claim, levels={**claim.levels, 2: two})
    (tmp_path / "train").mkdir(), (tmp_path / "test").mkdir()  # planning checks the binding, reads nothing
    sources = Sources(bindings=(("cifar10", str(tmp_path)),))
    for profile in ("smoke", "paper"):
        with pytest.raises(ConfigError, match=r"confounded: .*input_size: 2 bits \d+, 4 bits None.*recipe\.lr"):
            plan.plan(confounded, PROFILES[profile], sources)
    assert plan.parity(plan.Plan(claim, PROFILES["paper"], ("cifar10",), (1.0,))) == []


@pytest.mark.parametrize("levels, expect, match", [
    ({8: Variant("vit_tiny", "round")}, "decreasing", "at least 2 finite numeric doses"),
    ({"8": Variant("vit_tiny", "round"), 4: Variant("vit_tiny", "round")}, "decreasing", "finite numeric doses"),
    ({8: Variant("vit_tiny", "round"), 4: Variant("vit_tiny", "round")}, "better", "'increasing' or 'decreasing'"),
    ({8: Variant("vit_tiny", "round"), 4: Variant("vit_tiny", "round")}, "equivalent", "needs a margin"),
])
def test_a_bad_trend_claim_names_the_fix(levels, expect, match):
    with pytest.raises(ConfigError, match=match):
        TrendClaim(statement="s", unit="bits", levels=levels, datasets=("cifar10",), epochs=1, expect=expect)


def test_a_two_level_trend_is_the_pairs_statistic_per_unit_of_dose():
    low, high = [0.20, 0.22, 0.25], [0.30, 0.29, 0.35, 0.33]
    t, w = inference.trend([2, 6], [low, high]), inference.welch(high, low)
    assert t["effect"] == pytest.approx(w["effect"] / 4) and t["se"] == pytest.approx(w["se"] / 4)
    assert t["df"] == w["df"] == 2  # Hsu: min(3, 4) - 1
