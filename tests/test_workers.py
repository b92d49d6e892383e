"""Promise 3 (run once) and 6 (the number of workers and the order of runs change no number), with real
processes racing on one cache through runner.Suite and the cache's flock locks."""
from __future__ import annotations

import subprocess

import pytest

from harness import chaos
from harness.cache import store


def test_three_workers_asking_at_once_train_each_run_once_with_the_numbers_of_one(worker_options, worker_epochs,
                                                                                   clean_runs, tmp_path):
    workers = [chaos.Worker(tmp_path / "cache", *worker_options, "--seeds=0,1", *(["--reverse"] if i == 1 else []))
               for i in range(3)]
    summaries = [w.finish() for w in workers]
    trained = sorted(e for w in workers for e in w.epochs)
    every_epoch_once = sorted((k, e) for k in clean_runs for e in range(1, worker_epochs + 1))
    assert trained == every_epoch_once, "an epoch was trained twice, or never"
    for s in summaries:  # each worker got every run, identical to the single process's
        assert s["runs"] == clean_runs


def test_worker_killed_holding_the_lock_does_not_block_the_others(worker_options, worker_epochs, clean_runs, tmp_path):
    cache = tmp_path / "cache"
    holder = chaos.Worker(cache, *worker_options, "--seeds=0")
    holder.wait_for_epochs(1)
    holder.kill()  # SIGKILL while training, lock held: the kernel releases the flock
    key = holder.epochs[0][0]
    finished = len(store.load_tensors(cache / "runs" / key / "checkpoint.pt")["records"])

    others = [chaos.Worker(cache, *worker_options, "--seeds=0") for _ in range(2)]
    summaries = [w.finish(timeout=180) for w in others]
    assert sorted(e for w in others for e in w.epochs) == [(key, e) for e in range(finished + 1, worker_epochs + 1)]
    assert all(s["runs"][key] == clean_runs[key] for s in summaries)


def test_a_worker_given_up_on_is_killed_not_left_training(worker_options, tmp_path):
    worker = chaos.Worker(tmp_path / "cache", *worker_options, "--seeds=0")
    with pytest.raises(subprocess.TimeoutExpired):
        worker.wait(timeout=0.01)
    assert worker.proc.poll() is not None  # no orphan trains on, holding its run's lock
