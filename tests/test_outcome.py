"""How a case becomes a test outcome (harness.plugin.outcome): what may pass, and what must not."""
import pytest

from harness.plugin import outcome

DECIDING = {"profile_decides": True, "decides": True, "expect": "better", "verdict": "supported", "problems": [],
            "masking_warnings": []}


def _case(**changes) -> dict:
    return {**DECIDING, **changes}


@pytest.mark.parametrize("case, expected", [
    (_case(), "passed"),
    (_case(verdict="inconclusive"), "failed"),
    (_case(verdict="contradicted"), "failed"),
    # A supported claim whose attacks the masking checks cannot vouch for is not evidence.
    (_case(masking_warnings=["round/s0: gradients_not_masked: FAILED"]), "failed"),
    # Survivors only: a run of the seeds failed, so the test saw part of the evidence.
    (_case(problems=["Round/s2 failed: TrainingDiverged"]), "failed"),
    # The null control passes on no evidence of a difference, never on no evidence at all.
    (_case(expect="null", verdict="inconclusive"), "passed"),
    (_case(expect="null", verdict="supported"), "failed"),
    (_case(expect="null", verdict="inconclusive", problems=["fewer than 2 finished seeds (0 vs 0)"]), "failed"),
    (_case(expect="null", verdict="inconclusive", problems=["every seed of both variants has the same score"]),
     "failed"),
    # Cases that do not decide are skips whatever they found: a pass would read as "supported".
    (_case(profile_decides=False), "skipped"),
    (_case(decides=False, verdict="contradicted"), "skipped"),
])
def test_outcome(case, expected):
    assert outcome(case) == expected
