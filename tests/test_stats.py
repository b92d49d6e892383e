"""Scores on hand-computed point sets and a case built from constructed runs (the tests themselves:
tests/test_inference.py)."""
import math

import numpy as np
import pytest

from harness.judge import stats


# ---- scores -------------------------------------------------------------------------------------
def test_dominated_area_is_the_union_of_rectangles():
    # [0,.5]x[0,.2] U [0,.8]x[0,.1] = .5*.2 + (.8-.5)*.1
    assert stats.dominated_area([0.5, 0.8], [0.2, 0.1]) == pytest.approx(0.13)
    # a dominated point adds nothing; order does not matter
    assert stats.dominated_area([0.4, 0.8, 0.5], [0.1, 0.1, 0.2]) == pytest.approx(0.13)


def test_dominated_area_of_all_zero_adversarial_accuracy_is_zero():
    assert stats.dominated_area([0.3, 0.6, 0.9], [0.0, 0.0, 0.0]) == 0.0


def test_mean_adv_over_shared_range_integrates_the_envelope():
    # envelope: 0.2 for c <= 0.5, 0.1 for 0.5 < c <= 0.8; over [0.4, 0.7]: (.1*.2 + .2*.1) / .3
    assert stats.mean_adv_over_range([0.5, 0.8], [0.2, 0.1], 0.4, 0.7) == pytest.approx(0.04 / 0.3)
    # a range that is a single point takes the envelope there
    assert stats.mean_adv_over_range([0.5, 0.8], [0.2, 0.1], 0.6, 0.6) == pytest.approx(0.1)


def test_non_overlapping_clean_ranges_give_nan_not_a_number_that_looks_real():
    lo, hi = stats.shared_range([np.array([0.1, 0.2]), np.array([0.5, 0.6])])
    assert (lo, hi) == (0.5, 0.2)
    assert math.isnan(stats.mean_adv_over_range([0.1, 0.2], [0.05, 0.04], lo, hi))


def test_reference_scores():
    adv = np.array([[0.2, 0.4, 0.1]])
    s = stats.scores(np.array([[0.3, 0.5, 0.7]]), adv, 0.3, 0.7)
    assert s["final_adv"] == [0.1]
    assert s["area_over_epochs"] == [pytest.approx((0.3 + 0.25) / 2)]
    assert set(s) == set(stats.SCORES) and stats.PRIMARY in s
