"""The verdict module: cases judged from constructed runs, through the real policy. Each defect issue 21 found
has a test here (or beside the code it concerns) that now gives the right state."""
import dataclasses
import io
import math
import zipfile

import numpy as np
import pytest
from PIL import Image

from helpers import NO_CHECKS, make_run
from harness.judge import inference, verdict
from harness.report import claims, summary
from harness.run import data
from harness.spec import plan, results
from harness.spec.claim import Claim, Claimed
from harness.spec.config import LOOKS, PROFILES, Variant
from hypotheses.test_pooling_type import CLAIM as H2

CHECKS = NO_CHECKS
MASKED = dataclasses.replace(NO_CHECKS, masking_warnings=["A/s0: gradients_not_masked: FAILED"])
ARMS = {"A": Variant("resnet18", "baseline"), "B": Variant("resnet18", "baseline", model_kwargs={"pooling": "avg"})}


def _claim(**kwargs) -> Claim:
    return Claim(**{"statement": "A beats B", "better": "A", "worse": "B", "datasets": ("toy",), "epochs": 2,
                    "variants": ARMS, "factor": "model_kwargs.pooling", **kwargs})


def _judge(claim, runs, dataset="toy", eps=1.0, profile="paper", checks=CHECKS, alpha=0.05):
    p = plan.Plan(claim=claim, profile=PROFILES[profile], datasets=(dataset,), eps=(eps,))
    return verdict.judge(p, dataset, eps, {dataset: runs}, checks, alpha)


def _run(key, clean, adv, used="toy"):
    return make_run(key, clean, adv, dataset_used=used)


def _scored(used="toy", **arms) -> dict:
    """arm -> one-epoch runs at clean accuracy 0.5 whose dominated area is exactly the given score."""
    return {arm: [_run(f"{arm}{s}", [0.5], [2 * x], used) for s, x in enumerate(xs)] for arm, xs in arms.items()}


# ---- a case from constructed runs ------------------------------------------------------------------
def test_case_compares_the_primary_score_across_seeds():
    runs = {"A": [_run("a0", [0.5, 0.6], [0.30, 0.20]), _run("a1", [0.5, 0.6], [0.31, 0.21]),
                  _run("a2", [0.5, 0.6], [0.32, 0.22])],
            "B": [_run("b0", [0.5, 0.6], [0.10, 0.05]), _run("b1", [0.5, 0.6], [0.11, 0.06]),
                  _run("b2", [0.5, 0.6], [0.12, 0.04])]}
    case = _judge(_claim(), runs)
    # A's seed 0: .5*.3 + (.6-.5)*.2 = .17
    assert case.scores["A"]["dominated_area"][0] == pytest.approx(0.17)
    assert case.test.effect > 0 and case.test.p_greater < case.level and case.verdict == "supported"
    assert case.test.df == 2 and case.outcome == "passed"  # Hsu: min(3, 3) - 1
    failed = dict(runs, B=runs["B"][:1] + [make_run("bx", [], [], status="failed")] * 2)
    case = _judge(_claim(), failed)
    assert any("boom" in f for f in case.failed_runs) and math.isnan(case.test.p_greater)
    assert case.outcome == "failed"


# ---- equivalence: two one-sided tests decide alone ----------------------------------------------------
def test_a_precise_difference_inside_the_margin_is_negligible_and_an_equivalence_claim_passes():
    """Effect 0.005, 90% CI about [0.0045, 0.0055], margin 0.02, 6 seeds: the old judge read it supported and
    failed the equivalence claim (equivalent only when the difference was not significant)."""
    claim = _claim(expect="equivalent", equivalent_within=0.02)
    noise = [0.0, 0.0003, -0.0003, 0.0002, -0.0002, 0.0]
    case = _judge(claim, _scored(A=[0.305 + e for e in noise], B=[0.300 - e for e in noise]), profile="confirm")
    e = case.equivalence
    assert case.test.effect == pytest.approx(0.005) and 0.0044 < e.ci[0] < e.ci[1] < 0.0056
    assert case.test.p_adj_greater <= case.level and e.p_adj <= case.level
    assert case.verdict == "negligible" and case.outcome == "passed"
    assert "equivalence within +-0.02: TOST p" in verdict.message(case)


def test_a_true_difference_well_inside_the_margin_is_declared_equivalent_nearly_always():
    """True difference 0.008, sd 0.003, 6 seeds, margin 0.02: TOST declares equivalence in every run; the old
    judge did in 0.5%."""
    claim, rng = _claim(expect="equivalent", equivalent_within=0.02), np.random.default_rng(4)
    passed = sum(_judge(claim, _scored(A=rng.normal(0.308, 0.003, 6), B=rng.normal(0.3, 0.003, 6)),
                        profile="confirm").outcome == "passed" for _ in range(100))
    assert passed >= 98


def test_equivalence_never_passes_on_failed_or_missing_masking_checks():
    """Masked attacks on both arms make them look equally robust."""
    claim = _claim(expect="equivalent", equivalent_within=0.02)
    runs = _scored(A=[0.300, 0.302, 0.298], B=[0.301, 0.299, 0.300])
    assert _judge(claim, runs).verdict == "equivalent"
    for checks in (MASKED, None):
        case = _judge(claim, runs, checks=checks)
        assert case.verdict == "equivalent (unverified)" and case.outcome == "failed"


# ---- the seed procedure keeps its error rate: each look at Pocock's level ------------------------------
def test_each_look_decides_at_pococks_level_not_at_alpha():
    """p = 0.037 was supported at 0.05 on the paper look, and a confirm look could then add a second chance;
    both looks now decide at 0.0304 (tests/test_null_simulation.py measures the procedure's rate)."""
    assert LOOKS == (3, 6) and inference.pocock(0.05, LOOKS) == pytest.approx(0.0304, abs=1e-4)
    case = _judge(_claim(), _scored(A=[0.328, 0.338, 0.348], B=[0.30, 0.31, 0.32]))
    assert 0.0304 < case.test.p_adj_greater < 0.05 and case.level == pytest.approx(0.0304, abs=1e-4)
    assert case.verdict in ("inconclusive", "underpowered") and case.outcome == "failed"
    assert "each look at 0.0304" in verdict.message(case)


def test_seeds_that_are_not_a_look_of_the_design_are_reduced():
    four = dataclasses.replace(PROFILES["paper"], seeds=(0, 1, 2, 3))
    assert any("not a look of the pre-registered design (3 then 6" in r
               for r in plan.shortfalls(_claim(), four, ("toy",), ()))
    assert plan.shortfalls(_claim(), PROFILES["confirm"], ("toy",), ()) == ()


def test_underpowered_says_what_is_true_of_the_t_test():
    """3 vs 3 at 0.0304: the exact floor 1/20 is above it, yet Welch's test decides on the same design."""
    case = _judge(_claim(), _scored(A=[0.30, 0.33, 0.31], B=[0.31, 0.30, 0.32]))
    msg = verdict.message(case)
    assert case.verdict == "underpowered" and "no distribution-free test could" in msg
    assert "the t-test could only by leaning on normality" in msg and "4 seeds per arm can reach it" in msg


# ---- readings that say what happened --------------------------------------------------------------------
def test_supported_with_a_failed_masking_check_is_unverified_and_does_not_read_replicated():
    claim = _claim(claimed=Claimed("better", "a post"))
    runs = _scored(A=[0.40, 0.41, 0.42], B=[0.30, 0.31, 0.32])
    assert _judge(claim, runs).reading == "replicated"
    case = _judge(claim, runs, checks=MASKED)
    assert case.verdict == "supported (unverified)" and case.reading == "supported (unverified)"
    assert case.outcome == "failed"
    assert 'class="verdict supported-unverified">supported (unverified)<' in claims.verdict_cell(case)


def test_a_reduced_protocol_says_so_in_the_verdict_cell_and_the_summary():
    """A case on data bound in place of the claim's (here: a copy not recognised by its content)."""
    case = _judge(_claim(datasets=("cifar10",)), _scored("cifar10-unverified", A=[0.40, 0.41, 0.42],
                                                         B=[0.30, 0.31, 0.32]), dataset="cifar10")
    assert case.reduced == ["ran on cifar10-unverified, bound in place of cifar10"] and case.outcome == "skipped"
    assert "reduced: ran on cifar10-unverified, bound in place of cifar10" in claims.verdict_cell(case)
    doc = results.Results(schema=results.SCHEMA, session={}, partial=False, cases=[case], runs={}, errors=[], warnings=[])
    assert "**supported** (reduced: ran on cifar10-unverified" in summary.markdown(doc, "reports/x")


def test_an_alpha_above_five_percent_is_reduced():
    case = _judge(_claim(), _scored(A=[0.40, 0.41, 0.42], B=[0.30, 0.31, 0.32]), alpha=0.1)
    assert case.reduced == ["alpha 0.1 is above 0.05"] and case.outcome == "skipped"
    assert case.level == pytest.approx(inference.pocock(0.1, LOOKS))


def test_a_random_zip_bound_as_cifar10_is_not_reported_as_cifar10(tmp_path):
    """30 random JPEG images bound as cifar10=.../cifar10.zip used to load as cifar10 and decide."""
    path, rng = tmp_path / "cifar10.zip", np.random.default_rng(0)
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(30):
            buf = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buf, format="JPEG")
            zf.writestr(f"{'train' if i < 20 else 'test'}/c{i % 2}/{i}.jpg", buf.getvalue())
    data._LOADED.clear()
    ds = data.load("cifar10", data.Sources(bindings=(("cifar10", str(path)),)), tmp_path / "cache")
    assert ds.name == "cifar10-unverified" and "content is not the original cifar10" in ds.notes[-1]


# ---- a recorded verdict carries its provenance --------------------------------------------------------------
def test_h2s_record_from_the_jpeg_copy_and_older_code_does_not_fail_a_night_on_lossless_cifar10():
    k = H2.known
    assert (k.verdict, k.data, k.profile) == ("contradicted", "cifar10-jpeg75", "paper") and k.code and k.card
    p = plan.Plan(claim=H2, profile=PROFILES["paper"], datasets=("cifar10",), eps=(1.0,))
    runs = {arm: [dataclasses.replace(r, code_version="0123456789abcdef") for r in rs] for arm, rs in
            _scored("cifar10", Max=[0.30, 0.33, 0.31], Avg=[0.31, 0.30, 0.32]).items()}
    case = verdict.judge(p, "cifar10", 1.0, {"cifar10": runs}, CHECKS, 0.05)
    assert case.known == k and "measured on cifar10-jpeg75, these runs read cifar10" in case.known_stale
    assert "these runs ran code 0123456789abcdef" in case.known_stale
    assert case.verdict != "contradicted" and case.outcome == "xfailed"  # not "VERDICT CHANGED"
    assert "does not apply to these runs" in verdict.message(case)
    assert "stale: measured on cifar10-jpeg75" in claims.verdict_cell(case)
    fresh = dataclasses.replace(k, data="cifar10", code="0123456789abcdef")
    case = verdict.judge(dataclasses.replace(p, claim=dataclasses.replace(H2, known=fresh)), "cifar10", 1.0,
                         {"cifar10": runs}, CHECKS, 0.05)
    assert case.known_stale is None and case.outcome == "failed"  # measured here: a change fails, naming both
    assert verdict.message(case).startswith("VERDICT CHANGED: recorded 'contradicted'")
