"""CI's control session can fail: on real runs, judged by the real verdict code, the controls meet their known
answers with the attacks as they are, and miss them when an attack is deliberately broken.

The runs: the positive and the masking control (hypotheses/test_control_*.py) at a smaller size than their
protocol (2,048 CIFAR-10 training images, 3 epochs, 3 seeds, 128 evaluation images, smaller final checks),
trained here through a LocalExecutor and judged with harness.judge.verdict.judge, as the suite fixture does.
The breakages:
- PGD's step set to zero (the attack keeps its random start): the per-epoch curves are made with it, so the
  runs are trained again, in a cache of their own; the positive control is no longer supported.
- masking checks that can no longer fail (their slack the whole accuracy range, the gradient check off): the
  masking control is then supported, its masking named by nothing.
- a score that flips sign: the positive control is contradicted.
CIFAR-10 only (the controls' eps 8/255 is CIFAR's radius): CI binds it.
"""
from __future__ import annotations

import dataclasses

import pytest

from harness.cache.runs import RunCache
from harness.executors.local import LocalExecutor
from harness.judge import stats, verdict
from harness.run import attacks, diagnostics, runtime
from harness.spec import plan
from harness.spec.config import AttackConfig, FinalEvalConfig, Profile
from test_controls import control

SMALL = Profile(name="controls-small", seeds=(0, 1, 2), epochs=3, train_subset=2048,
                attack=AttackConfig(eps=(8.0,), n_eval=128), max_input_size=None, decides=True,
                substitute_data=False,
                final_eval=FinalEvalConfig(n_eval=128, apgd_steps=10, square_queries=50, steps_curve=(1, 5),
                                           eps_curve=(8, 255), tolerance=0.05))  # 0.05: 6 of 128 examples
POSITIVE, MASKED = "test_control_fast_at", "test_control_logit_scale"


@pytest.fixture(scope="module")
def cifar10(real_dataset_name) -> str:
    if real_dataset_name != "cifar10":
        pytest.skip("the controls attack at CIFAR-10's 8/255: bind it with --data-source cifar10=PATH")
    return real_dataset_name


def judged(cache: RunCache, sources, dataset: str, names=(POSITIVE, MASKED),
           final_eval: FinalEvalConfig = SMALL.final_eval) -> dict:
    """module -> the case of each control named at its deciding eps, from runs in `cache` (trained where
    missing)."""
    ex = LocalExecutor(cache=cache, sources=sources, device=runtime.pick_device("cpu"), final_eval=final_eval,
                       session="broken-attack", log=lambda line: None)
    cases = {}
    for name in names:
        claim = dataclasses.replace(control(name), datasets=(dataset,))
        p = plan.Plan(claim, SMALL, (dataset,), claim.eps, allow_reduced=True)  # CI binds the JPEG copy
        configs = plan.run_configs(p, dataset, "fp32")
        runs = ex.runs(configs)
        checks = ex.final_checks(claim, configs, runs)
        cases[name] = verdict.judge(p, dataset, claim.deciding_eps, {dataset: runs}, checks, 0.05)
    return cases


def test_the_controls_meet_their_known_answers_and_miss_when_a_check_or_the_score_breaks(tmp_path, sources, cifar10,
                                                                                    monkeypatch):
    """One test, so that xdist trains these runs once: the intact controls, then the same runs judged with the
    masking checks unable to fail, then with the score's sign flipped."""
    cache = RunCache(tmp_path / "cache")
    cases = judged(cache, sources, cifar10)
    positive, masked = cases[POSITIVE], cases[MASKED]
    assert (positive.verdict, positive.outcome) == ("supported", "passed"), verdict.message(positive)
    assert positive.test.ci[0] > 0 and positive.masking_warnings == []
    assert (masked.verdict, masked.outcome) == ("supported (unverified)", "passed"), verdict.message(masked)
    assert any("gradients_not_masked" in w for w in masked.masking_warnings)

    lax = dataclasses.replace(SMALL.final_eval, tolerance=1.0, attack_gap=1.0)  # the final checks run again
    monkeypatch.setattr(diagnostics, "_gradients_flow", lambda beats: {"ok": True, "detail": "ok (not checked)"})
    unnamed = judged(cache, sources, cifar10, (MASKED,), lax)[MASKED]
    assert (unnamed.verdict, unnamed.outcome) == ("supported", "failed"), verdict.message(unnamed)
    assert unnamed.masking_warnings == [] and "the checks did not name it" in unnamed.problems[0]

    area = stats.dominated_area
    monkeypatch.setattr(stats, "dominated_area", lambda clean, adv: -area(clean, adv))
    flipped = judged(cache, sources, cifar10, (POSITIVE,))[POSITIVE]
    assert (flipped.verdict, flipped.outcome) == ("contradicted", "failed"), verdict.message(flipped)


def test_pgd_with_a_zero_step_makes_the_positive_control_miss(tmp_path, sources, cifar10, monkeypatch):
    chunk = attacks._attack_chunk  # every PGD (per epoch and final) steps through it; APGD and Square do not

    def zero_step(model, x, y, start, eps, cfg, ctx, judge):
        return chunk(model, x, y, start, eps, dataclasses.replace(cfg, step_ratio=0.0), ctx, judge)
    monkeypatch.setattr(attacks, "_attack_chunk", zero_step)
    broken = judged(RunCache(tmp_path / "cache"), sources, cifar10, (POSITIVE,))[POSITIVE]
    assert broken.verdict != "supported" and broken.outcome == "failed", verdict.message(broken)
    assert broken.test.effect < 0  # unattacked, the standard network's higher clean accuracy wins
