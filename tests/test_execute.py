"""From claim to runs: the plan, the run cache's hits and misses, failed runs, collect mode, and the
profile's effect on runs."""
import copy
import dataclasses

import pytest
import torch

from harness.spec import plan
from harness import plugin
from harness.run import train
from harness.judge import verdict
from harness.cache.runs import RunCache
from harness.spec.claim import Claim
from harness.spec.config import (ADAMW_VIT, PROFILES, SGD_RESNET, AttackConfig, ConfigError, FinalEvalConfig, Recipe,
                                 RunConfig, Variant)
from harness.chaos import numbers
from harness.executors.local import CollectExecutor, LocalExecutor
from harness.spec.records import TrainedWith
from helpers import make_run

TINY = dataclasses.replace(PROFILES["smoke"], seeds=(0, 1), epochs=1, train_subset=64,
                           attack=AttackConfig(eps=(1.0,), steps=1, n_eval=16), final_eval=None)
CLAIM = Claim(statement="toy", better="A", worse="B", datasets=("cifar10",), epochs=1, eps=(1.0,),
              variants={"A": Variant("resnet18", "baseline", Recipe(batch_size=32)),
                        "B": Variant("resnet18", "baseline", Recipe(batch_size=32), model_kwargs={"pooling": "avg"})})


@pytest.fixture
def cache(tmp_path, pytestconfig):
    cache = RunCache(tmp_path / "cache")
    (cache.root / "data").mkdir(parents=True)
    for f in (plugin.settings_of(pytestconfig).cache_dir / "data").glob("*.pt"):  # decoded data, not runs
        (cache.root / "data" / f.name).symlink_to(f)
    return cache


def executor(cache, sources, kind=LocalExecutor):
    return kind(cache=cache, sources=sources, device=torch.device("cpu"), final_eval=None, session="test",
                log=lambda line: None)


def configs(claim, dataset, profile=TINY):
    return plan.run_configs(plan.Plan(claim, profile, (dataset,), claim.eps), dataset, "fp32")


@pytest.fixture
def count_trainings(monkeypatch):
    calls = []
    real = train.run

    def counting(cfg, *args, **kwargs):
        calls.append(cfg.label)
        return real(cfg, *args, **kwargs)
    monkeypatch.setattr(train, "run", counting)
    return calls


def test_a_finished_run_is_never_trained_twice(cache, sources, count_trainings, real_dataset_name):
    ex = executor(cache, sources)
    first = ex.runs(configs(CLAIM, real_dataset_name))
    assert len(count_trainings) == 4  # 2 variants x 2 seeds
    second = ex.runs(configs(CLAIM, real_dataset_name))
    assert len(count_trainings) == 4  # all hits
    assert first == second  # identical numbers from the cache
    assert all(r.status == "done" and len(r.records) == 1 for rs in first.values() for r in rs)
    assert all(r.trained_with == TrainedWith(compile="off", early_exit=True, attack_shapes="exact", deterministic=False,
                                             threads=1, session="test", precision={"pipeline": "fp32", "first_layer":
                                                                        "conv1 fp32 (no TF32)", "rest": "fp32"})
               for rs in second.values() for r in rs)  # a cache hit says what it was trained under (conftest: 1 thread)


def test_a_changed_setting_misses_the_cache(cache, sources, count_trainings, real_dataset_name):
    ex = executor(cache, sources)
    ex.runs(configs(CLAIM, real_dataset_name))
    ex.runs(configs(CLAIM, real_dataset_name, dataclasses.replace(TINY, attack=dataclasses.replace(TINY.attack, steps=2))))
    assert len(count_trainings) == 8


def test_collect_mode_trains_nothing_and_names_the_missing_runs(cache, sources, count_trainings, real_dataset_name):
    ex = executor(cache, sources)
    ex.runs({"A": configs(CLAIM, real_dataset_name)["A"]})  # arm A is cached, arm B is not
    count_trainings.clear()
    runs = executor(cache, sources, CollectExecutor).runs(configs(CLAIM, real_dataset_name))
    assert count_trainings == []
    assert [r.status for r in runs["A"]] == ["done", "done"]
    assert [r.status for r in runs["B"]] == ["missing", "missing"]
    assert "collect mode trains nothing" in runs["B"][0].error
    p = plan.Plan(CLAIM, TINY, (real_dataset_name,), (1.0,))
    case = verdict.judge(p, real_dataset_name, 1.0, {real_dataset_name: runs}, None, 0.05)
    assert case.outcome == "failed" and len(case.failed_runs) == 2 and "missing" in case.failed_runs[0]


def test_a_diverging_run_is_reported_failed_not_cached_and_others_finish(cache, sources, count_trainings,
                                                                          real_dataset_name):
    diverging = Variant("resnet18", "baseline", Recipe(lr=1e30, batch_size=32))  # overflows fp32 after a step
    exploding = dataclasses.replace(CLAIM, variants={**CLAIM.variants, "B": diverging}, factor="recipe")
    runs = executor(cache, sources).runs(configs(exploding, real_dataset_name))
    assert [r.status for r in runs["A"]] == ["done", "done"]
    assert [r.status for r in runs["B"]] == ["failed", "failed"]
    assert "loss became" in runs["B"][0].error and "lower the learning rate" in runs["B"][0].error
    assert cache.lookup(runs["B"][0].key) is None  # nothing finished is published
    assert cache.lookup(runs["A"][0].key) is not None
    p = plan.Plan(exploding, TINY, (real_dataset_name,), (1.0,))
    case = verdict.judge(p, real_dataset_name, 1.0, {real_dataset_name: runs}, None, 0.05)
    assert case.verdict == "inconclusive" and case.outcome == "failed"  # smoke decides nothing, yet fails
    assert any("failed" in f for f in case.failed_runs)


def test_profile_shapes_the_runs():
    vit = Variant("vit_tiny", "round", input_size=224, seed_offset=100)
    claim = dataclasses.replace(CLAIM, variants={"A": vit, "B": CLAIM.variants["A"]}, modes=("off", "bpda", "exact"))
    cfgs = configs(claim, "cifar10")
    assert [c.seed for c in cfgs["A"]] == [100, 101]
    assert cfgs["A"][0].variant.input_size == TINY.max_input_size  # 224 is capped on the smoke profile
    assert cfgs["A"][0].variant.recipe == TINY.recipe(vit.recipe)  # batch capped, lr scaled, warmup replaced
    assert cfgs["A"][0].variant.seed_offset == 0  # the seed itself is in the key, not the offset
    assert cfgs["A"][0].attack.modes == ("off", "bpda", "exact")
    assert cfgs["B"][0].attack.modes == ("pgd",)


def test_profile_recipe_caps_scales_and_replaces_warmup_only():
    smoke, paper = PROFILES["smoke"], PROFILES["paper"]
    for r in (SGD_RESNET, ADAMW_VIT):
        assert paper.recipe(r) == r  # the published protocol trains the recipes as written
        s = smoke.recipe(r)
        assert (s.batch_size, s.warmup_epochs) == (smoke.max_batch_size, smoke.warmup_epochs)
        assert s.lr == pytest.approx(r.lr * smoke.lr_scale) and s.lr < r.lr
        assert dataclasses.replace(s, batch_size=r.batch_size, lr=r.lr, warmup_epochs=r.warmup_epochs) == r
    assert smoke.recipe(Recipe(batch_size=16)).batch_size == 16  # a cap, never an increase


def test_seeds_that_make_two_arms_share_a_run_are_refused_before_training():
    """Seeds 0,1 with an arm offset by 1 would count run seed 1 in both arms: the same evidence twice."""
    twin = dataclasses.replace(CLAIM, variants={"A": CLAIM.variants["A"],
                                                "B": dataclasses.replace(CLAIM.variants["A"], seed_offset=1)})
    with pytest.raises(ConfigError, match=r"seeds \[0, 1\] make the variants share runs.*--seeds"):
        configs(twin, "cifar10")


def test_arms_differing_in_an_undeclared_setting_are_confounded_until_it_is_declared():
    """Arm parity, from the planned run configs (harness.spec.plan.parity): the arms' resolved settings may
    differ only in the claim's factor, or in a difference the claim declares intended; attack effort is
    compared as gradient attacks per example. A confounded claim stops at collection, before anything trains."""
    claim = dataclasses.replace(CLAIM, factor="model_kwargs.pooling")
    parity = lambda c: plan.parity(plan.Plan(c, PROFILES["paper"], ("toy",), (1.0,)))  # noqa: E731
    assert parity(claim) == []
    slower = dataclasses.replace(claim, variants={**claim.variants, "B": dataclasses.replace(
        claim.variants["B"], recipe=Recipe(batch_size=32, lr=0.1))})
    assert parity(slower) == ["variant.recipe.lr: A 0.2, B 0.1"]
    assert parity(dataclasses.replace(slower, intended={"recipe.lr": "B's recipe is the source's"})) == []
    # a rounding arm's two gradient modes against the other arm's two restarts: equal effort, by construction
    rounding = dataclasses.replace(CLAIM, factor="pipeline", modes=("off", "bpda", "exact"),
                                   variants={"A": Variant("resnet18", "round"), "B": Variant("resnet18", "baseline")})
    assert parity(rounding) == []


def test_equal_attack_effort_arms_without_rounding_get_a_restart_per_gradient_mode():
    rounding = dataclasses.replace(CLAIM, variants={"A": Variant("resnet18", "round"), "B": CLAIM.variants["A"]},
                                   modes=("off", "bpda", "exact"))
    cfgs = configs(rounding, "cifar10")
    assert cfgs["A"][0].attack.restarts == 1 and cfgs["A"][0].attack.modes == ("off", "bpda", "exact")
    assert cfgs["B"][0].attack.restarts == 2 and cfgs["B"][0].attack.modes == ("pgd",)
    assert configs(CLAIM, "cifar10")["B"][0].attack.restarts == 1  # no rounding arm: one attack each


def test_final_checks_transfer_both_ways_seed_by_seed_at_the_final_and_the_best_epochs(cache, sources,
                                                                                       real_dataset_name):
    tiny = FinalEvalConfig(n_eval=8, apgd_steps=1, apgd_dlr=False, square_queries=1, steps_curve=(1,),
                           eps_curve=(1.0,), tolerance=1.0, attack_gap=1.0)
    ex = dataclasses.replace(executor(cache, sources), final_eval=tiny)
    claim = CLAIM
    cfgs = configs(claim, real_dataset_name, dataclasses.replace(TINY, epochs=3))
    runs = ex.runs(cfgs)
    assert all(len(r.records) == 3 for rs in runs.values() for r in rs)
    checks = ex.final_checks(claim, cfgs, runs)
    a, b = ([c.label for c in cfgs[arm]] for arm in ("A", "B"))
    finals = [(t.direction, t.source, t.target) for t in checks.transfer if t.weights == "final"]
    assert finals == [("worse->better", b[0], a[0]), ("better->worse", a[0], b[0]),
                      ("worse->better", b[1], a[1]), ("better->worse", a[1], b[1])]
    # where a seed pair has a best epoch before the last, the transfers run again on those weights, both ways
    early = {(r.label, r.best_epoch(1.0)) for rs in runs.values() for r in rs if r.best_epoch(1.0) < 3}
    assert early, "no run's best epoch came before its last: the test needs one (change the seeds)"
    bests = [(t.direction, t.source, t.target) for t in checks.transfer if t.weights == "best"]
    pairs_with_early = sum(any(label in (a[s], b[s]) for label, _ in early) for s in range(2))
    assert len(bests) == 2 * pairs_with_early
    assert set(checks.bests) == {r.key for rs in runs.values() for r in rs if r.best_epoch(1.0) < 3}
    assert all(checks.bests[r.key].epoch == r.best_epoch(1.0) for rs in runs.values() for r in rs if r.key in checks.bests)
    assert checks.masking_warnings == []  # tolerance 1: nothing can fail
    recorded = checks.attach(runs)  # the runs as results.json keeps them: with their evaluations
    assert all(r.final is checks.finals[r.key] and r.best is checks.bests.get(r.key) for rs in recorded.values() for r in rs)
    assert all(r.final is None for rs in runs.values() for r in rs)  # the runs the executor returned are unchanged


def test_a_claim_without_final_checks_cannot_pass():
    runs = {arm: [make_run(f"{arm}{s}", [0.5], [0.1 + 0.1 * (arm == "A") + 0.01 * s]) for s in range(3)]
            for arm in ("A", "B")}
    p = plan.Plan(CLAIM, PROFILES["paper"], ("toy",), (1.0,))
    case = verdict.judge(p, "toy", 1.0, {"toy": runs}, None, 0.05)  # None: the profile ran no final checks
    assert case.verdict == "supported (unverified)" and case.outcome == "failed"
    assert any("no final-checkpoint checks ran" in p for p in case.problems)
    assert case.masking_warnings == [] and case.transfer == []


def test_arms_with_one_seed_are_independent_draws_and_one_arm_is_reproducible(real_dataset):
    """Seeds are decorrelated per arm: Max and Avg with seed 0 start from different weights (a correlated
    pair would make Welch's test across seeds wrong); the same variant and seed starts identically."""
    from harness.spec.config import RunConfig, arm_identity, derive_seed
    a, b = (RunConfig(dataset="x", variant=v, seed=0, epochs=1, train_subset=None, attack=TINY.attack,
                      precision="fp32") for v in (CLAIM.variants["A"], CLAIM.variants["B"]))
    build = lambda cfg: train.build(cfg, real_dataset, torch.device("cpu"))[1].conv1.weight  # noqa: E731
    assert not torch.equal(build(a), build(b))
    assert torch.equal(build(a), build(dataclasses.replace(a)))
    assert derive_seed(0, "order", arm_identity(a.variant), 1) != derive_seed(0, "order", arm_identity(b.variant), 1)
    assert derive_seed(0, "order", arm_identity(a.variant), 1) != derive_seed(0, "order", arm_identity(a.variant), 2)


class _Recorder:
    """A Checkpointer that keeps every epoch's saved state in memory, optionally starting from one."""

    def __init__(self, start: dict | None = None):
        self.saved, self.start = [], start

    def load(self):
        return self.start

    def save(self, state):
        self.saved.append(copy.deepcopy(state))


def test_the_best_epochs_weights_are_kept_and_survive_a_resume(real_dataset):
    """train.run returns the weights of every epoch best_epoch names at some eps (the last excepted), equal
    to that epoch's weights, and a run resumed from a checkpoint returns the same, bit for bit (CPU)."""
    attack = AttackConfig(eps=(1.0, 255.0), steps=4, n_eval=32)  # at 255/255 every epoch ties at 0: epoch 1 wins
    cfg = RunConfig(dataset="x", variant=CLAIM.variants["A"], seed=0, epochs=3, train_subset=64, attack=attack,
                    precision="fp32")
    whole = _Recorder()
    trained = train.run(cfg, real_dataset, torch.device("cpu"), whole)
    records, final, best = trained.records, trained.final_state, trained.best_states
    wanted = {train.best_epoch(records, float(ek)) for ek in records[0].adv} - {3}
    assert wanted and set(best) == wanted
    for e, state in best.items():
        assert all(torch.equal(state[k], v) for k, v in whole.saved[e - 1]["model"].items())
    resumed = train.run(cfg, real_dataset, torch.device("cpu"), _Recorder(start=whole.saved[0]))
    as_dicts = lambda rs: numbers([dataclasses.asdict(r) for r in rs])  # noqa: E731
    assert as_dicts(resumed.records) == as_dicts(records) and set(resumed.best_states) == set(best)
    assert all(torch.equal(resumed.best_states[e][k], v) for e in best for k, v in best[e].items())
    assert all(torch.equal(resumed.final_state[k], v) for k, v in final.items())


def test_best_epoch_is_the_highest_strongest_accuracy_and_the_first_of_ties():
    run = make_run("r", [0.5] * 4, [0.2, 0.5, 0.5, 0.1])
    assert run.best_epoch(1.0) == train.best_epoch(run.records, 1.0) == 2
