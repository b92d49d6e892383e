"""Promises 5 (failures are not cached), 6 (invalidation) and 8 (determinism) of the run cache, in-process
with small real ResNet18 runs (runner.Suite at helpers.small_suite's size)."""
from __future__ import annotations

import ast
import dataclasses
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from harness.cache import runs as cache_module
from harness import chaos
from harness.spec import config
from harness.run import runtime
from harness.cache.runs import RunCache, code_version
from harness.spec.config import Recipe, Variant
from harness.run.data import Sources
from helpers import small_claim, small_suite

HARNESS = Path(cache_module.__file__).parents[1]  # harness/
CLAIM = small_claim("cifar10")  # one ResNet18 run per seed


def _suite(root, images, epochs=1, session="night-1", log=None):
    sources = Sources(bindings=(("cifar10", str(images)),), allow_download=False)
    return small_suite(RunCache(root), sources, (0,), epochs, session=session,
                       log=log if log is not None else (lambda line: None))


# ---- 5. failures are not cached ------------------------------------------------------------------------
def test_failed_runs_are_reported_not_cached_do_not_stop_others_and_are_retried(tiny_images, tmp_path):
    claim = small_claim("cifar10", {
        "diverges": Variant("resnet18", "baseline", Recipe(batch_size=32, lr=1e12)),  # loss becomes NaN
        "raises": Variant("resnet18", "baseline", Recipe(batch_size=32, optimizer="no-such-optimizer")),
        "fine": Variant("resnet18", "baseline", Recipe(batch_size=32))})
    suite = _suite(tmp_path, tiny_images)
    runs = {name: r for name, (r,) in suite.curves(claim, "cifar10").items()}
    assert runs["fine"].status == "done" and suite.cache.lookup(runs["fine"].key) is not None
    assert runs["diverges"].status == "failed" and "TrainingDiverged" in runs["diverges"].error
    assert "nan" in runs["diverges"].error
    assert runs["raises"].status == "failed" and "no-such-optimizer" in runs["raises"].error
    failed = [runs["diverges"].key, runs["raises"].key]
    for k in failed:
        assert suite.cache.lookup(k) is None and not (tmp_path / "runs" / k / "result.json").exists()
        assert suite.cache.failure(k)["session"] == "night-1"

    same_night = []  # the same session asks again (another test case): not retried now
    again = _suite(tmp_path, tiny_images, log=same_night.append).curves(claim, "cifar10")
    assert not same_night and again["diverges"][0].status == "failed"

    next_night = []
    _suite(tmp_path, tiny_images, session="night-2", log=next_night.append).curves(claim, "cifar10")
    assert all(any(k[:8] in line and "FAILED" in line for line in next_night) for k in failed), next_night
    assert all(RunCache(tmp_path).failure(k)["session"] == "night-2" for k in failed)


# ---- 6. invalidation ------------------------------------------------------------------------------------
# Settings whose values are a closed set: the other value to try.
_OTHER = {"adversarial": "fgsm_rs"}


def _changed(name, value):
    """A different value of the same kind (a closed set's other member)."""
    if name in _OTHER:
        return _OTHER[name]
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value * 2 + 1
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, tuple):
        return value + value[:1] if value else ("x",)
    if value is None:
        return 7
    if isinstance(value, dict):
        return {**value, "changed": 1}
    raise TypeError(f"no change defined for {value!r}")


def _variations(obj):
    """(dotted field name, obj with that one leaf changed) for every leaf of a frozen dataclass tree."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        inner = _variations(value) if dataclasses.is_dataclass(value) else [("", _changed(f.name, value))]
        for name, new in inner:
            yield f"{f.name}.{name}".rstrip("."), dataclasses.replace(obj, **{f.name: new})


def test_every_setting_the_data_and_the_code_are_in_the_key():
    cfg = config.RunConfig(dataset="cifar10", variant=Variant("resnet18", "baseline"), seed=0, epochs=2,
                           train_subset=64, attack=config.AttackConfig(), precision="fp32")
    base = config.key(cfg, "data-sha", "code-sha")
    variations = dict(_variations(cfg))
    assert len(variations) >= 20  # every field of RunConfig, Variant, Recipe and AttackConfig
    for name, changed in variations.items():
        assert config.key(changed, "data-sha", "code-sha") != base, f"changing {name} keeps the key"
    assert config.key(cfg, "other-data", "code-sha") != base and config.key(cfg, "data-sha", "other-code") != base


@pytest.mark.parametrize("module", cache_module.NUMERIC_MODULES)
def test_editing_a_numeric_module_changes_the_code_version(module, tmp_path):
    same, edited = (shutil.copytree(HARNESS, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
                    for name in ("same", "edited"))
    with open(edited / module, "a") as f:
        f.write("\n# edited\n")
    assert code_version(same) == code_version() != code_version(edited)


def test_the_code_version_is_read_once_per_process(tmp_path):
    """The code that runs is the code imported: an edit after the first read must not move later runs of
    this process to the new code's key."""
    copy = shutil.copytree(HARNESS, tmp_path / "harness", ignore=shutil.ignore_patterns("__pycache__"))
    before = code_version(copy)
    with open(copy / "run" / "train.py", "a") as f:
        f.write("\n# edited mid-session\n")
    assert code_version(copy) == before


# Harness modules the numeric code imports that cannot change a number, and why.
NOT_NUMERIC = {"cache/store.py": "writes and reads bytes back unchanged (the data cache)",
               "spec/registry.py": "maps names to constructors; the constructors' own modules are hashed",
               "spec/schema.py": "checks the types of JSON records; what it accepts passes through unchanged"}


def imported_modules(name: str) -> list[str]:
    """The harness modules (paths under harness/) that module `name` imports with relative imports."""
    package = Path(name).parent.parts
    out = []
    for node in ast.walk(ast.parse((HARNESS / name).read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = [*package[:len(package) - (node.level - 1)], *(node.module.split(".") if node.module else [])]
            paths = [base + [a.name] for a in node.names] if HARNESS.joinpath(*base).is_dir() else [base]
            out += [f"{'/'.join(p)}.py" for p in paths if HARNESS.joinpath(*p).with_suffix(".py").exists()]
    return out


def test_the_code_version_covers_every_module_the_training_and_attacks_import():
    todo, seen = ["run/train.py", "run/attacks.py"], set()
    while todo:
        name = todo.pop()
        seen.add(name)
        todo += [m for m in imported_modules(name) if m not in seen]
    assert {"spec/config.py", "run/pipelines.py"} <= seen  # the walk follows imports across packages
    missing = seen - set(cache_module.NUMERIC_MODULES) - set(NOT_NUMERIC)
    assert not missing, f"add {sorted(missing)} to cache.NUMERIC_MODULES (or to NOT_NUMERIC, with the reason)"


def test_changing_one_pixel_of_the_dataset_misses_the_cache(tiny_images, tmp_path):
    images = shutil.copytree(tiny_images, tmp_path / "images")
    trained = []

    def note(line: str) -> None:  # one line per run trained (and one per epoch, which is not counted)
        trained.extend([line] if line.endswith(" training starts") else [])
    first, = _suite(tmp_path / "cache", images, log=note).curves(CLAIM, "cifar10")["resnet18"]
    assert len(trained) == 1
    _suite(tmp_path / "cache", images, log=note).curves(CLAIM, "cifar10")
    assert len(trained) == 1, "the same data and settings must hit the cache"

    path = next((images / "train").rglob("*.png"))
    pixels = np.array(Image.open(path))
    pixels.flat[0] ^= 1
    Image.fromarray(pixels).save(path)
    second, = _suite(tmp_path / "cache", images, log=note).curves(CLAIM, "cifar10")["resnet18"]
    assert len(trained) == 2 and second.key != first.key
    assert second.data_fingerprint != first.data_fingerprint


# ---- 8. determinism ------------------------------------------------------------------------------------
def test_the_same_run_twice_gives_identical_numbers_and_weights_on_cpu(tiny_images, tmp_path):
    outcomes = []
    for name in ("a", "b"):
        suite = _suite(tmp_path / name, tiny_images, epochs=2)
        run, = suite.curves(CLAIM, "cifar10")["resnet18"]
        outcomes.append((chaos.numbers(run.to_dict()["records"]), chaos.weights_digest(suite.cache.final_state(run.key))))
    assert outcomes[0] == outcomes[1] and len(outcomes[0][0]) == 2


@pytest.fixture
def restore_determinism_settings():
    saved = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
             torch.backends.cudnn.benchmark, os.environ.get("CUBLAS_WORKSPACE_CONFIG"))
    yield
    torch.use_deterministic_algorithms(saved[0])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[1], saved[2]
    if saved[3] is None:
        os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
    else:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = saved[3]


def test_the_deterministic_option_sets_the_gpu_flags_and_the_environment_records_them(restore_determinism_settings):
    os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
    runtime.set_deterministic(False)
    assert runtime.environment(torch.device("cpu"))["deterministic"]["algorithms"] is False
    runtime.set_deterministic(True)
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] in (":4096:8", ":16:8")  # what cuBLAS accepts
    assert runtime.environment(torch.device("cpu"))["deterministic"] == {
        "algorithms": True, "cudnn_deterministic": True, "cudnn_benchmark": False,
        "cublas_workspace_config": os.environ["CUBLAS_WORKSPACE_CONFIG"]}
