"""From claim to runs: the run cache's hits and misses, failed runs, and the profile's effect on runs."""
import dataclasses

import pytest
import torch

from harness import train
from harness.cache import RunCache
from harness.config import PROFILES, AttackConfig, Claim, ConfigError, Recipe, Variant
from harness.runner import Suite

TINY = dataclasses.replace(PROFILES["smoke"], seeds=(0, 1), epochs=1, train_subset=64,
                           attack=AttackConfig(eps=(1.0,), steps=1, n_eval=16), final_eval=None)
CLAIM = Claim(statement="toy", better="A", worse="B", datasets=("cifar10",), epochs=1, eps=(1.0,),
              variants={"A": Variant("resnet18", "baseline", Recipe(batch_size=32)),
                        "B": Variant("resnet18", "baseline", Recipe(batch_size=32), pooling="avg")})


@pytest.fixture
def suite(sources, real_dataset, tmp_path, pytestconfig):
    cache = RunCache(tmp_path / "cache")
    (cache.root / "data").mkdir(parents=True)
    for f in (pytestconfig.advhyp_settings.cache_dir / "data").glob("*.pt"):  # decoded data, not runs
        (cache.root / "data" / f.name).symlink_to(f)
    return Suite(profile=TINY, sources=sources, cache=cache, device=torch.device("cpu"), precision="fp32",
                 session="test", log=lambda line: None)


@pytest.fixture
def count_trainings(monkeypatch):
    calls = []
    real = train.run

    def counting(cfg, *args, **kwargs):
        calls.append(cfg.label)
        return real(cfg, *args, **kwargs)
    monkeypatch.setattr(train, "run", counting)
    return calls


def test_a_finished_run_is_never_trained_twice(suite, count_trainings, real_dataset_name):
    first = suite.curves(CLAIM, real_dataset_name)
    assert len(count_trainings) == 4  # 2 variants x 2 seeds
    second = suite.curves(CLAIM, real_dataset_name)
    assert len(count_trainings) == 4  # all hits
    assert first == second  # identical numbers from the cache
    assert all(r["status"] == "done" and len(r["records"]) == 1 for rs in first.values() for r in rs)
    assert all(r["trained_with"] == {"compile": "off", "early_exit": True, "deterministic": False, "session": "test"}
               for rs in second.values() for r in rs)  # a cache hit says what it was trained under


def test_a_changed_setting_misses_the_cache(suite, count_trainings, real_dataset_name):
    suite.curves(CLAIM, real_dataset_name)
    suite.profile = dataclasses.replace(TINY, attack=dataclasses.replace(TINY.attack, steps=2))
    suite.curves(CLAIM, real_dataset_name)
    assert len(count_trainings) == 8


def test_a_diverging_run_is_reported_failed_not_cached_and_others_finish(suite, count_trainings, real_dataset_name):
    diverging = Variant("resnet18", "baseline", Recipe(lr=1e12, batch_size=32))
    exploding = dataclasses.replace(CLAIM, variants={**CLAIM.variants, "B": diverging})
    runs = suite.curves(exploding, real_dataset_name)
    assert [r["status"] for r in runs["A"]] == ["done", "done"]
    assert [r["status"] for r in runs["B"]] == ["failed", "failed"]
    assert "loss became" in runs["B"][0]["error"] and "lower the learning rate" in runs["B"][0]["error"]
    assert suite.cache.lookup(runs["B"][0]["key"]) is None  # nothing finished is published
    assert suite.cache.lookup(runs["A"][0]["key"]) is not None
    case = suite.evaluate(exploding, real_dataset_name, 1.0)
    assert case["verdict"] == "inconclusive" and any("failed" in p for p in case["problems"])


def test_profile_shapes_the_runs(suite):
    vit = Variant("vit_tiny", "round", input_size=224, seed_offset=100)
    claim = dataclasses.replace(CLAIM, variants={"A": vit, "B": vit}, modes=("off", "bpda", "exact"))
    cfgs = suite.run_configs(claim, vit, "cifar10")
    assert [c.seed for c in cfgs] == [100, 101]
    assert cfgs[0].variant.input_size == TINY.max_input_size  # 224 is capped on the smoke profile
    assert cfgs[0].variant.seed_offset == 0  # the seed itself is in the key, not the offset
    assert cfgs[0].attack.modes == ("off", "bpda", "exact")
    assert suite.run_configs(claim, CLAIM.variants["A"], "cifar10")[0].attack.modes == ("pgd",)


def test_seeds_that_make_two_arms_share_a_run_are_refused_before_training(suite, count_trainings, real_dataset_name):
    """Seeds 0,1 with an arm offset by 1 would count run seed 1 in both arms: the same evidence twice."""
    twin = dataclasses.replace(CLAIM, variants={"A": CLAIM.variants["A"],
                                                "B": dataclasses.replace(CLAIM.variants["A"], seed_offset=1)})
    with pytest.raises(ConfigError, match=r"seeds \[0, 1\] make the variants share runs.*--seeds"):
        suite.curves(twin, real_dataset_name)
    assert count_trainings == []


def test_a_claim_without_final_checks_cannot_pass(suite, real_dataset_name):
    case = suite.evaluate(CLAIM, real_dataset_name, 1.0)  # TINY has no final evaluation
    assert any("no final-checkpoint checks ran" in p for p in case["problems"])
    assert case["masking_warnings"] == [] and case["transfer"] == []
