"""Promises 1 (atomic publish), 4 (corruption), 9 (safe loading) and 10 (disk full, read-only cache) of
the run cache, in-process on a real cache: one small ResNet18 run on real images, interrupted after its
first epoch (a checkpoint) and then finished (a result)."""
from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
import threading
import traceback
from pathlib import Path

import pytest
import torch

from harness import chaos
from harness.spec import results
from harness.cache import store
from harness.cache.runs import Checkpoint, RunCache
from harness.run.data import Sources
from helpers import small_claim, small_suite


CLAIM = small_claim("cifar10")  # one ResNet18 run per seed


def _suite(root, tiny_images, seeds=(0,), **kw):
    sources = Sources(bindings=(("cifar10", str(tiny_images)),), allow_download=False)
    return small_suite(RunCache(root), sources, seeds, epochs=2, **kw)


def _stop_after_first_epoch(line: str) -> None:
    if " epoch " in line:  # not the line saying the run starts
        raise KeyboardInterrupt(line)  # Ctrl-C right after the first epoch's checkpoint


@pytest.fixture(scope="module")
def snapshots(tiny_images, tmp_path_factory):
    """{"interrupted": a cache holding a 1-epoch checkpoint, "finished": the same run done, "key": its key,
    "published": every path os.replace put in place meanwhile}. Copy a snapshot before changing it."""
    root = tmp_path_factory.mktemp("cache-snapshots")
    published = []
    real_replace = os.replace
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "replace", lambda src, dst: (published.append((str(src), str(dst))), real_replace(src, dst)))
        with pytest.raises(KeyboardInterrupt):
            _suite(root / "cache", tiny_images, log=_stop_after_first_epoch).curves(CLAIM, "cifar10")
        shutil.copytree(root / "cache", root / "interrupted")
        _suite(root / "cache", tiny_images).curves(CLAIM, "cifar10")
        results.write(root / "report", results.new({}))
    key, = [p.name for p in (root / "cache" / "runs").iterdir() if p.is_dir()]
    return {"interrupted": root / "interrupted", "finished": root / "cache", "key": key, "published": published,
            "report": root / "report"}


def _copy(snapshots, which: str, dest):
    return shutil.copytree(snapshots[which], dest / which)


# ---- 1. atomic publish ---------------------------------------------------------------------------------
def test_every_file_the_cache_and_report_wrote_was_renamed_from_a_temporary_in_its_folder(snapshots):
    by_destination = {dst: src for src, dst in snapshots["published"]}
    written = [p for folder in (snapshots["finished"], snapshots["report"]) for p in folder.rglob("*")
               if p.is_file() and p.suffix != ".lock"]  # lock files hold no data
    assert {p.name for p in written} >= {"result.json", "final.pt", "results.json"}
    for p in written:
        src = by_destination.get(str(p))
        assert src is not None, f"{p} was written in place, not published by a rename"
        assert os.path.dirname(src) == str(p.parent) and os.path.basename(src).startswith(store.TMP_PREFIX)
    assert not list(snapshots["finished"].rglob(store.TMP_PREFIX + "*"))


def test_a_reader_sees_the_old_file_or_the_new_one_never_a_partial_one(tmp_path):
    path, old, new = tmp_path / "result.json", b"o" * 2_000_000, b"n" * 3_000_000
    store.atomic_write(path, old)
    seen, done = set(), threading.Event()

    def read():
        while not done.is_set():
            seen.add(path.read_bytes())
    reader = threading.Thread(target=read)
    reader.start()
    for i in range(40):
        store.atomic_write(path, new if i % 2 == 0 else old)
    done.set()
    reader.join()
    assert seen <= {old, new} and len(seen) == 2


def test_a_write_interrupted_midway_keeps_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "result.json"
    store.write_json(path, {"n": 1}, checksum=True)

    def killed(fd):
        raise KeyboardInterrupt
    monkeypatch.setattr(os, "fsync", killed)
    with pytest.raises(KeyboardInterrupt):
        store.write_json(path, {"n": 2}, checksum=True)
    assert store.read_json(path, checksum=True) == {"n": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_leftover_temporaries_are_ignored_and_cleaned(snapshots, tmp_path):
    root, key = _copy(snapshots, "finished", tmp_path), snapshots["key"]
    in_run = root / "runs" / key / f"{store.TMP_PREFIX}result.json.dead"  # a killed trainer's, just now
    old_data = root / "data" / f"{store.TMP_PREFIX}x.pt.dead"  # a killed data writer's, hours ago
    young_data = root / "data" / f"{store.TMP_PREFIX}x.pt.live"  # maybe a live writer's: not touched
    old_data.parent.mkdir(exist_ok=True)  # absent where this process had the data decoded already (memo)
    for p in (in_run, old_data, young_data):
        p.write_bytes(b'{"payload": {"key": "half a fi')
    os.utime(old_data, (0, 0))
    cache = RunCache(root)
    assert not old_data.exists() and young_data.exists() and in_run.exists()
    assert cache.lookup(key).key == key and not cache.warnings
    cache.lock(key, blocking=False).release()  # the key's lock holder is its folder's only writer
    assert not in_run.exists()


# ---- 4. corruption -------------------------------------------------------------------------------------
DAMAGE = ("truncate", "empty", "garbage", "flip")  # see chaos.corrupt


@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize("name", ["result.json", "final.pt"])
def test_a_damaged_finished_entry_is_detected_moved_aside_and_named(snapshots, tmp_path, name, damage):
    root, key = _copy(snapshots, "finished", tmp_path), snapshots["key"]
    chaos.corrupt(root / "runs" / key / name, damage)
    cache = RunCache(root)
    assert cache.lookup(key) is None
    assert not (root / "runs" / key / "result.json").exists()  # the next lookup misses: recomputed
    assert any(str(root / "runs" / key / name) in w and "quarantine" in w for w in cache.warnings)
    assert len(list((root / "quarantine").iterdir())) >= 1


@pytest.mark.parametrize("edit", ["a number", "the key", "an epoch record"])
def test_a_hand_edited_result_fails_its_checksum_or_schema(snapshots, tmp_path, edit):
    root, key = _copy(snapshots, "finished", tmp_path), snapshots["key"]
    path = root / "runs" / key / "result.json"
    payload = store.read_json(path, checksum=True)
    if edit == "a number":  # edited by hand: the checksum no longer matches
        chaos.corrupt(path, "edit")
    elif edit == "the key":  # a valid checksum over the wrong run: the schema check catches it
        store.write_json(path, {**payload, "key": "0" * 24}, checksum=True)
    else:
        store.write_json(path, {**payload, "records": payload["records"][:1]}, checksum=True)
    cache = RunCache(root)
    assert cache.lookup(key) is None and any(str(path) in w for w in cache.warnings)


@pytest.mark.parametrize("damage", [*DAMAGE, "another run's", "missing fields"])
def test_a_damaged_checkpoint_is_detected_moved_aside_and_named(snapshots, tmp_path, damage):
    root, key = _copy(snapshots, "interrupted", tmp_path), snapshots["key"]
    path = root / "runs" / key / "checkpoint.pt"
    state = store.load_tensors(path)
    assert state["key"] == key and [r["epoch"] for r in state["records"]] == [1]
    if damage == "another run's":
        store.save_tensors(path, {**state, "key": "0" * 24})
    elif damage == "missing fields":
        store.save_tensors(path, {k: v for k, v in state.items() if k != "optimizer"})
    else:
        chaos.corrupt(path, damage)
    cache = RunCache(root)
    assert Checkpoint(cache, key).load() is None
    assert not path.exists() and any(str(path) in w for w in cache.warnings)


def test_a_corrupt_checkpoint_or_result_is_recomputed_to_the_same_numbers(snapshots, tiny_images, tmp_path):
    finished = store.read_json(snapshots["finished"] / "runs" / snapshots["key"] / "result.json", checksum=True)
    for which, name in (("interrupted", "checkpoint.pt"), ("finished", "result.json")):
        root = _copy(snapshots, which, tmp_path)
        chaos.corrupt(root / "runs" / snapshots["key"] / name, "garbage")
        trained = []
        suite = _suite(root, tiny_images, log=trained.append)
        run, = suite.curves(CLAIM, "cifar10")["resnet18"]
        assert len([t for t in trained if " epoch " in t]) == 2, f"{name}: expected both epochs retrained, got {trained}"
        assert chaos.numbers(run.to_dict()["records"]) == chaos.numbers(finished["records"])
        assert any(name in w for w in suite.cache.warnings)


def test_a_derived_result_is_computed_once_and_recomputed_when_damaged(snapshots, tmp_path):
    root, key = _copy(snapshots, "finished", tmp_path), snapshots["key"]
    calls = []

    def compute():
        calls.append(1)
        return {"apgd": 0.25}
    cache = RunCache(root)
    assert cache.derived(key, "final-x", compute) == cache.derived(key, "final-x", compute) == {"apgd": 0.25}
    assert len(calls) == 1
    chaos.corrupt(root / "runs" / key / "final-x.json", "truncate")
    assert cache.derived(key, "final-x", compute) == {"apgd": 0.25} and len(calls) == 2
    assert any(str(root / "runs" / key / "final-x.json") in w for w in cache.warnings)


# ---- 9. safe loading -----------------------------------------------------------------------------------
class _RunsCodeWhenUnpickled:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_checkpoints_load_weights_only_so_a_pickle_that_runs_code_is_refused(snapshots, tmp_path):
    root, key = _copy(snapshots, "interrupted", tmp_path), snapshots["key"]
    path, marker = root / "runs" / key / "checkpoint.pt", tmp_path / "code-ran"
    state = store.load_tensors(path)
    store.save_tensors(path, {**state, "records": _RunsCodeWhenUnpickled(marker)})
    torch.load(path, weights_only=False)  # the file really is dangerous: a plain load runs its code
    assert marker.exists()
    marker.rmdir()
    cache = RunCache(root)
    assert Checkpoint(cache, key).load() is None
    assert not marker.exists() and any("checkpoint" in w for w in cache.warnings)


def test_results_json_is_validated_before_use(snapshots, tmp_path):
    folder = tmp_path / "report"
    doc = results.new({"profile": "smoke"})
    results.write(folder, doc)
    assert results.load(folder).schema == results.SCHEMA
    broken = {"not JSON": "{\"schema\": \"advhyp-res", "schema": json.dumps({**doc, "schema": "other/9"}),
              "field type": json.dumps({**doc, "cases": {}}),
              "dangling run": json.dumps({**doc, "cases": [{"nodeid": "n", "module": "m", "statement": "s",
                                          "dataset": "d", "eps": 1, "decides": True, "verdict": "v", "outcome": "o",
                                          "test": {}, "scores": {}, "run_keys": {"A": ["nokey"]}, "profile": "p"}]})}
    for what, text in broken.items():
        (folder / "results.json").write_text(text)
        with pytest.raises(results.ResultsError):
            results.load(folder)


# ---- 10. disk full, read-only cache -------------------------------------------------------------------
def test_disk_full_stops_with_a_message_naming_the_folder_and_keeps_finished_runs(snapshots, tiny_images,
                                                                                  tmp_path, monkeypatch):
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full to make the kernel answer ENOSPC")
    root, key = _copy(snapshots, "finished", tmp_path), snapshots["key"]
    before = (root / "runs" / key / "result.json").read_bytes()
    real_mkstemp = tempfile.mkstemp

    def on_a_full_disk(*a, **kw):  # the temporary is created, but every write to it gets ENOSPC
        fd, name = real_mkstemp(*a, **kw)
        os.close(fd)
        return os.open("/dev/full", os.O_WRONLY), name
    monkeypatch.setattr(tempfile, "mkstemp", on_a_full_disk)
    suite = _suite(root, tiny_images, seeds=(0, 1))
    with pytest.raises(store.StoreError) as stopped:
        suite.curves(CLAIM, "cifar10")
    assert stopped.value.errno == errno.ENOSPC
    message = str(stopped.value)
    assert "the disk is full" in message and str(root / "runs") in message and "--cache-dir" in message
    assert (root / "runs" / key / "result.json").read_bytes() == before
    assert suite.cache.lookup(key) is not None
    assert not list(root.rglob(store.TMP_PREFIX + "*")) and not list(root.rglob("failed.json"))


def _as_unprivileged_user(check) -> None:
    """Run `check()` where the file system refuses writes: as this user if it is not root (root ignores
    permissions), else in a forked child that has dropped to the user `nobody`."""
    if os.geteuid() != 0:
        return check()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            os.setgid(65534)
            os.setuid(65534)
            check()
            code, text = 0, ""
        except BaseException:
            code, text = 1, traceback.format_exc()
        os.write(write, text.encode())
        os._exit(code)
    os.close(write)
    with os.fdopen(read) as f:
        text = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, text


def test_read_only_cache_keeps_serving_finished_runs_and_names_the_folder_it_cannot_write(snapshots):
    base = tempfile.mkdtemp(prefix="advhyp-readonly-")  # not under tmp_path: `nobody` must reach it
    try:
        root = Path(shutil.copytree(snapshots["finished"], os.path.join(base, "cache")))
        for folder, dirs, files in os.walk(base):
            os.chmod(folder, 0o555)
        key = snapshots["key"]

        def check():
            cache = RunCache(root)
            assert cache.lookup(key).key == key
            for attempt in (lambda: cache.lock("f" * 24, blocking=False), lambda: results.write(root / "report", {})):
                with pytest.raises(store.StoreError) as refused:
                    attempt()
                assert "permission denied" in str(refused.value) and str(root) in str(refused.value)
        _as_unprivileged_user(check)
    finally:
        for folder, dirs, files in os.walk(base):
            os.chmod(folder, 0o755)
        shutil.rmtree(base)
