"""Promise 2 (resume) and 8 (determinism), with real processes: a worker SIGKILLed in the middle of an
epoch resumes from its last finished epoch, with per-epoch numbers and final weights identical to an
uninterrupted run's, on the CPU. The worker is `python -m harness.chaos work` (ResNet18, 64 real
training images, 3 epochs of 2 steps, PGD on 32 test images)."""
from __future__ import annotations

import time

from harness import chaos
from harness.cache import store


def test_sigkill_mid_epoch_resumes_from_last_finished_epoch_with_identical_numbers(worker_options, worker_epochs,
                                                                                    clean_runs, tmp_path):
    cache = tmp_path / "cache"
    first = chaos.Worker(cache, *worker_options, "--seeds=0")
    first.wait_for_epochs(1)
    time.sleep(0.1)  # into epoch 2's training
    first.kill()
    key = first.epochs[0][0]
    checkpoint = store.load_tensors(cache / "runs" / key / "checkpoint.pt")
    finished = len(checkpoint["records"])
    assert 1 <= finished < worker_epochs, "the kill did not land mid-run"
    assert not (cache / "runs" / key / "result.json").exists()

    second = chaos.Worker(cache, *worker_options, "--seeds=0")
    summary = second.finish()
    resumed = [(key, e) for e in range(finished + 1, worker_epochs + 1)]
    assert second.epochs == resumed, "did not resume where it stopped"
    assert summary["runs"][key]["records"] == clean_runs[key]["records"]
    assert summary["runs"][key]["weights"] == clean_runs[key]["weights"]
    assert len(clean_runs[key]["records"]) == worker_epochs and clean_runs[key]["weights"]
