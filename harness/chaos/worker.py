"""The chaos worker (`python -m harness.chaos work`): a few small real runs through the runner and the run
cache, announcing each checkpoint on stdout; and `Worker`, the handle that starts and reads one."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

from ..cache import store
from ..cache.runs import RunCache

ROOT = Path(__file__).resolve().parents[2]  # the repository: workers run there, so `harness` is this one


# ---- the worker ---------------------------------------------------------------------------------------
def small_profile(seeds: tuple[int, ...], epochs: int):
    """The smallest size that still trains and attacks for real: 64 training images (2 steps of 32 per
    epoch), PGD (1 step, eps 8/255) on 32 test images after each epoch. The tests train at it too."""
    from ..spec.config import AttackConfig, Profile
    return Profile(name="chaos", seeds=seeds, epochs=epochs, train_subset=64,
                   attack=AttackConfig(eps=(8.0,), steps=1, n_eval=32), max_input_size=None,
                   decides=False, substitute_data=False)


def run_small(cache: RunCache, sources, seeds: tuple[int, ...], epochs: int, device: str, session: str,
              log) -> list:
    """The one place chaos gets runs: ResNet18 (batches of 32) once per seed on the first dataset of
    `sources`, at `small_profile`'s size, through a LocalExecutor on `cache`. Returns the Runs."""
    from ..run import runtime
    from ..spec import plan
    from ..spec.claim import Claim
    from ..spec.config import Recipe, Variant
    from ..executors.local import LocalExecutor
    dataset = sources.bindings[0][0]
    claim = Claim(statement="chaos", better="resnet18", worse="resnet18", datasets=(dataset,), epochs=1,
                  variants={"resnet18": Variant("resnet18", "baseline", Recipe(batch_size=32))},
                  eps=(8.0,), deciding_eps=8.0)
    executor = LocalExecutor(cache=cache, sources=sources, device=runtime.pick_device(device), final_eval=None,
                             session=session, log=log)
    p = plan.Plan(claim, small_profile(seeds, epochs), (dataset,), claim.eps)
    return [r for rs in executor.runs(plan.run_configs(p, dataset, "fp32")).values() for r in rs]


def work(args) -> int:
    from ..run import data, runtime
    torch.set_num_threads(1)  # the same float reduction order in every process
    runtime.set_deterministic(args.deterministic)
    if args.disk_full_after is not None:
        _fill_disk_after(args.disk_full_after)
    sources = data.Sources(bindings=tuple(data.parse_binding(b) for b in args.data_source), allow_download=False)
    seeds = tuple(int(s) for s in args.seeds.split(","))
    cache = _TracedCache(args.cache)
    runs = run_small(cache, sources, seeds[::-1] if args.reverse else seeds, args.epochs, args.device,
                     args.session, log=lambda line: print(line, file=sys.stderr, flush=True))
    summary = {r.key: {"status": r.status, "error": r.error, "records": numbers(r.to_dict()["records"]),
                       "weights": weights_digest(cache.final_state(r.key)) if r.status == "done" else None}
               for r in runs}
    print("RESULT " + json.dumps({"runs": summary, "warnings": cache.warnings}), flush=True)
    return 0


class _TracedCache(RunCache):
    """Announces each saved checkpoint on stdout, so a driver knows which epochs are safely on disk."""

    def checkpointer(self, key):
        checkpoint = super().checkpointer(key)
        save = checkpoint.save

        def traced(state):
            save(state)
            print(f"EPOCH {key} {len(state['records'])}", flush=True)
        checkpoint.save = traced
        return checkpoint


def _fill_disk_after(n_writes: int) -> None:
    """From the (n+1)-th atomic write on, the temporary file is /dev/full: the kernel answers ENOSPC."""
    real, count = tempfile.mkstemp, [0]

    def mkstemp(*a, **kw):
        fd, path = real(*a, **kw)
        count[0] += 1
        if count[0] > n_writes:
            os.close(fd)
            fd = os.open("/dev/full", os.O_WRONLY)
        return fd, path
    tempfile.mkstemp = mkstemp


def numbers(records: list[dict]) -> list[dict]:
    """A run's per-epoch records without wall-clock times: what must be identical across reruns."""
    return [{k: v for k, v in r.items() if not k.endswith("seconds")} for r in records]


def weights_digest(state: dict | None) -> str | None:
    if state is None:
        return None
    h = hashlib.sha256()
    for name in sorted(state):
        h.update(name.encode())
        h.update(state[name].detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


# ---- driving workers ----------------------------------------------------------------------------------
def default_sigint() -> None:
    """In a child before it runs: SIGINT back to its default, which Python turns into KeyboardInterrupt. A
    parent started in the background (`cmd &` in a script) ignores SIGINT, and its children would inherit that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Worker:
    """A `work` subprocess, read as it runs: `epochs` lists the (key, epoch) checkpoints it saved."""

    def __init__(self, cache: Path, *options: str):
        cmd = [sys.executable, "-m", "harness.chaos", "work", "--cache", str(cache), *options]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, "OMP_NUM_THREADS": "1"}, preexec_fn=default_sigint)
        self.epochs: list[tuple[str, int]] = []
        self.summary: dict | None = None
        self.stderr: list[str] = []
        self._threads = [threading.Thread(target=self._read_stdout, daemon=True),
                         threading.Thread(target=lambda: self.stderr.extend(self.proc.stderr), daemon=True)]
        for t in self._threads:
            t.start()

    def _read_stdout(self):
        for line in self.proc.stdout:
            if line.startswith("EPOCH "):
                _, key, n = line.split()
                self.epochs.append((key, int(n)))
            elif line.startswith("RESULT "):
                self.summary = json.loads(line[len("RESULT "):])

    def wait_for_epochs(self, n: int, timeout: float = 120) -> None:
        """Until this worker has saved n checkpoints; TimeoutError (naming its stderr) otherwise."""
        deadline = time.monotonic() + timeout
        while len(self.epochs) < n:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()  # a worker given up on stops training
                raise TimeoutError(f"worker saved {len(self.epochs)} of {n} checkpoints (exit {self.proc.poll()}):"
                                   f"\n{self.stderr_tail()}")
            time.sleep(0.02)

    def wait_for(self, condition, timeout: float = 120) -> bool:
        """Until condition() holds (True) or this worker has ended without it (False; RuntimeError with its
        stderr if it failed); after `timeout` seconds the worker is killed and TimeoutError raised."""
        deadline = time.monotonic() + timeout
        while not condition():
            if self.proc.poll() is not None:
                if self.wait() != 0:
                    raise RuntimeError(f"worker exited {self.proc.returncode}:\n{self.stderr_tail()}")
                return bool(condition())
            if time.monotonic() > deadline:
                self.proc.kill()
                raise TimeoutError(f"worker did not get there in {timeout} s:\n{self.stderr_tail()}")
            time.sleep(0.02)
        return True

    def send(self, *sigs: int, gap: float) -> int:
        """Send `sigs`, `gap` seconds apart, while the worker runs; returns how many it was sent."""
        sent = 0
        for i, sig in enumerate(sigs):
            time.sleep(gap if i else 0)
            if self.proc.poll() is not None:
                break
            self.proc.send_signal(sig)
            sent += 1
        return sent

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.wait(30)

    def wait(self, timeout: float = 300) -> int:
        """The worker's exit status; after `timeout` seconds it is killed and TimeoutExpired raised."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()  # a worker given up on stops training (and holding its run's lock)
            self.proc.wait()
            raise
        for t in self._threads:
            t.join(timeout)
        return rc

    def finish(self, timeout: float = 300) -> dict:
        """The worker's summary; RuntimeError with its stderr if it ended without one."""
        rc = self.wait(timeout)
        if rc != 0 or self.summary is None:
            raise RuntimeError(f"worker exited {rc}:\n{self.stderr_tail()}")
        return self.summary

    def stderr_tail(self, n: int = 15) -> str:
        return "".join(self.stderr[-n:])


def clean_run(cache: Path, *options: str) -> dict:
    """{key: run summary} of one undisturbed worker; computed once per `cache` (kept in clean.json)."""
    memo = Path(cache) / "clean.json"
    if not memo.exists():
        store.write_json(memo, Worker(cache, *options).finish()["runs"])
    return store.read_json(memo)
