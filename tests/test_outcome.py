"""How a case becomes a test outcome (harness.judge.verdict.outcome): what may pass, and what must not."""
import pytest

from harness.spec.case import Case
from harness.spec.claim import Claimed, Known
from harness.judge.verdict import outcome
from helpers import DECIDING, sample_case

_case = sample_case


KNOWN = Known("contradicted", data="cifar10", code="c0de", card="H100", date="2026-11-26")


@pytest.mark.parametrize("case, expected", [
    (_case(), "passed"),
    (_case(verdict="inconclusive"), "failed"),
    (_case(verdict="contradicted"), "failed"),
    # A supported claim whose attacks the masking checks cannot vouch for is not evidence.
    (_case(verdict="supported (unverified)", masking_warnings=["round/s0: gradients_not_masked: FAILED"]), "failed"),
    # Survivors only: a run of the seeds failed, so the test saw part of the evidence.
    (_case(failed_runs=["Round/s2 failed: TrainingDiverged"]), "failed"),
    # The null control passes on no evidence of a difference, never on no evidence at all.
    (_case(expect="null", verdict="inconclusive"), "passed"),
    (_case(expect="null", verdict="supported"), "failed"),
    (_case(expect="null", verdict="inconclusive", problems=["fewer than 2 finished seeds (0 vs 0)"]), "failed"),
    (_case(expect="null", verdict="inconclusive", problems=["every seed of every arm has the same score"]),
     "failed"),
    # Cases that do not decide are skips whatever they found: a pass would read as "supported".
    (_case(profile_decides=False), "skipped"),
    (_case(decides=False, verdict="contradicted"), "skipped"),
    (_case(profile_decides=False, problems=["every seed of every arm has the same score"]), "skipped"),
    # ... but a run that failed fails the test under every profile: a crash must turn CI red.
    (_case(profile_decides=False, failed_runs=["Avg/s1 failed: RuntimeError"]), "failed"),
    (_case(decides=False, failed_runs=["Avg/s1 missing: not in the cache"]), "failed"),
    # A reduced protocol reports; it decides only when asked to, and says so.
    (_case(reduced=["5 epochs, the claim's protocol has 10"]), "skipped"),
    (_case(reduced=["alpha 0.1 is above 0.05"]), "skipped"),
    (_case(reduced=["ran on cifar10-jpeg75, bound in place of cifar10"], allow_reduced=True), "passed"),
    # A recorded verdict observed again is an expected outcome; a changed one fails, naming both ...
    (_case(verdict="contradicted", known=KNOWN), "xfailed"),
    (_case(verdict="inconclusive", known=KNOWN), "failed"),
    # ... unless the record was measured on other data or code: then it fails nothing until re-measured.
    (_case(verdict="inconclusive", known=KNOWN, known_stale="measured on cifar10-jpeg75"), "xfailed"),
    (_case(known=KNOWN, known_stale="measured on cifar10-jpeg75"), "passed"),
    # Equivalence passes inside the margin, with or without a significant difference, never unverified.
    (_case(expect="equivalent", verdict="equivalent"), "passed"),
    (_case(expect="equivalent", verdict="negligible"), "passed"),
    (_case(expect="equivalent", verdict="equivalent (unverified)"), "failed"),
    (_case(expect="equivalent", verdict="inconclusive"), "failed"),
    (_case(expect="decreasing", verdict="supported"), "passed"),
    (_case(expect="decreasing", verdict="supported (unverified)"), "failed"),
])
def test_outcome(case, expected):
    assert outcome(case) == expected


def test_case_round_trips_through_its_dict_and_rejects_a_wrong_type():
    d = DECIDING.to_dict()
    assert Case.from_dict(d) == DECIDING
    from harness.spec.schema import SchemaError
    with pytest.raises(SchemaError, match=r"case\.test\.p_greater = 'low' must be a number"):
        Case.from_dict({**d, "test": {**d["test"], "p_greater": "low"}})
    with pytest.raises(SchemaError, match=r"case lacks field 'verdict'"):
        Case.from_dict({k: v for k, v in d.items() if k != "verdict"})
    known = sample_case(known=KNOWN, claimed=Claimed("better", "a post", 0.02), reading="replicated").to_dict()
    assert Case.from_dict(known).known == KNOWN and Case.from_dict(known).claimed.size == 0.02
