"""The verdict module: cases judged from constructed runs, through the real policy."""
import math

import pytest

from harness.spec import plan
from harness.judge import verdict
from harness.spec.config import PROFILES, Claim, Variant
from helpers import NO_CHECKS, make_run


def _judge(claim, runs, dataset="toy", eps=1.0):
    p = plan.Plan(claim=claim, profile=PROFILES["paper"], datasets=(dataset,), eps=(eps,))
    return verdict.judge(p, dataset, eps, {dataset: runs}, NO_CHECKS, 0.05)


# ---- a case from constructed runs ------------------------------------------------------------------
_run = make_run


def test_case_compares_the_primary_score_across_seeds():
    claim = Claim(statement="A beats B", better="A", worse="B", datasets=("toy",), epochs=2,
                  variants={"A": Variant("resnet18", "baseline"), "B": Variant("resnet18", "baseline")})
    runs = {"A": [_run("a0", [0.5, 0.6], [0.30, 0.20]), _run("a1", [0.5, 0.6], [0.31, 0.21]),
                  _run("a2", [0.5, 0.6], [0.32, 0.22])],
            "B": [_run("b0", [0.5, 0.6], [0.10, 0.05]), _run("b1", [0.5, 0.6], [0.11, 0.06]),
                  _run("b2", [0.5, 0.6], [0.12, 0.04])]}
    case = _judge(claim, runs)
    # A's seed 0: .5*.3 + (.6-.5)*.2 = .17
    assert case.scores["A"]["dominated_area"][0] == pytest.approx(0.17)
    assert case.test.effect > 0 and case.test.p_greater < 0.05 and case.verdict == "supported"
    failed = dict(runs, B=runs["B"][:1] + [make_run("bx", [], [], status="failed")] * 2)
    case = _judge(claim, failed)
    assert any("boom" in f for f in case.failed_runs) and math.isnan(case.test.p_greater)
    assert case.outcome == "failed"
