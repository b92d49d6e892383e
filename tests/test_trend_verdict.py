"""Dose-response claims (harness.spec.config.TrendClaim) judged by harness.judge.verdict.judge_trend from constructed runs."""
import dataclasses
import math

import pytest
from helpers import NO_CHECKS, make_run

from harness.spec import plan
from harness.judge import verdict
from harness.spec.case import Case
from harness.spec.config import PROFILES, ConfigError, TrendClaim, Variant

BITS = (8, 6, 4, 2)


def _claim(expect="decreasing", datasets=("toy",)):
    levels = {b: Variant("vit_tiny", "round", pipeline_kwargs={"bits": b}) for b in BITS}
    return TrendClaim(statement="fewer bits, better tradeoff", unit="bits", levels=levels, datasets=datasets,
                      epochs=2, expect=expect, eps=(1.0,), modes=("off", "bpda", "exact"))


def _run(key, clean, adv, status="done"):
    """Two epochs; the second at `clean`, `adv` (the first half as good): dominated area = clean * adv."""
    return make_run(key, [clean / 2, clean], {"off": [min(1.0, adv / 2 + 0.1), min(1.0, adv + 0.1)],
                                              "strongest": [adv / 2, adv]}, status=status)


def _runs(adv_of_bits, noise=(0.0, 0.012, -0.01)):
    """level name -> 3 seeds; adversarial accuracy adv_of_bits(b) + a per-seed offset; clean rises with bits."""
    return {f"{b} bits": [_run(f"b{b}s{s}", 0.5 + 0.02 * b, adv_of_bits(b) + d) for s, d in enumerate(noise)]
            for b in BITS}


def _judge(claim, family, dataset="toy", profile="paper", checks=None):
    p = plan.Plan(claim=claim, profile=PROFILES[profile], datasets=tuple(family), eps=(1.0,))
    checks = NO_CHECKS if checks is None else checks
    return verdict.judge_trend(p, dataset, 1.0, family, checks, 0.05, nodeid="h.py::t[toy-eps1]", module="h")


def test_a_clean_dose_in_the_claimed_direction_is_supported_and_passes():
    case = _judge(_claim(), {"toy": _runs(lambda b: 0.40 - 0.03 * b)})
    tr = case.trend
    assert case.kind == "trend" and tr["levels"] == [2.0, 4.0, 6.0, 8.0] and tr["names"] == ["2 bits", "4 bits",
                                                                                           "6 bits", "8 bits"]
    assert tr["slope"] < 0 and tr["ci"][1] < 0 and tr["p_decreasing"] < 0.01 < 0.99 < tr["p_increasing"]
    # the test holds the trend in the claimed direction: a positive effect is a falling score
    assert case.test.method == "trend" and case.test.effect == pytest.approx(-tr["slope"])
    assert case.test.ci[0] == pytest.approx(-tr["ci"][1]) and case.test.p_greater == tr["p_decreasing"]
    assert case.test.n == [3, 3, 3, 3]
    assert (case.better, case.worse) == ("2 bits", "8 bits")
    assert case.verdict == "supported" and case.outcome == "passed"
    # the clean cost: final clean accuracy 0.5 + 0.02 b rises with bits, exactly (no per-seed noise)
    assert tr["clean_cost"]["values"]["8 bits"] == pytest.approx([0.66] * 3)
    assert tr["clean_cost"]["slope"] == pytest.approx(0.02)
    assert set(case.per_mode) == {"off", "bpda", "exact"}
    assert Case.from_dict(case.to_dict()) == case  # it travels as JSON like every case
    assert "slope of dominated_area along bits" in verdict.message(case)


def test_a_flat_dose_is_inconclusive_and_fails_when_it_decides():
    case = _judge(_claim(), {"toy": _runs(lambda b: 0.2, noise=(0.0, 0.03, -0.02))})
    assert case.trend["p_decreasing"] > 0.05 and case.trend["p_increasing"] > 0.05
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
    assert masked.verdict == "supported" and masked.outcome == "failed"
    broken = dict(runs, **{"4 bits": runs["4 bits"][:1] + [_run("x", 0, 0, status="failed")] * 2})
    case = _judge(_claim(), {"toy": broken}, profile="smoke")
    assert case.outcome == "failed" and math.isnan(case.test.p_greater) and case.problems
    assert case.trend["n"] == [3, 1, 3, 3]


@pytest.mark.parametrize("levels, expect, match", [
    ({8: Variant("vit_tiny", "round")}, "decreasing", "at least 2 finite numeric doses"),
    ({"8": Variant("vit_tiny", "round"), 4: Variant("vit_tiny", "round")}, "decreasing", "finite numeric doses"),
    ({8: Variant("vit_tiny", "round"), 4: Variant("vit_tiny", "round")}, "better", "'increasing' or 'decreasing'"),
])
def test_a_bad_trend_claim_names_the_fix(levels, expect, match):
    with pytest.raises(ConfigError, match=match):
        TrendClaim(statement="s", unit="bits", levels=levels, datasets=("cifar10",), epochs=1, expect=expect)
