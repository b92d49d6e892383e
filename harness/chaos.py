"""Fault injection against a smoke-sized run: kill, corrupt and race on purpose, then check nothing was lost.

    python -m harness.chaos --data-source cifar10=PATH [--seeds 0,1,2] [--epochs 3] [--workdir DIR]

computes a few small ResNet18 runs once cleanly, then again in another cache while it SIGKILLs workers
mid-epoch, fills the disk, leaves half-written temporaries, corrupts a checkpoint, races three workers
on the same runs, and truncates, empties and hand-edits finished entries. It prints one table row per
fault (faults injected, runs finished, runs whose numbers are identical to the clean run's, finished
files lost) and exits 1 unless, at the end, every run is finished, identical, and no file was lost.

`python -m harness.chaos work --cache DIR ...` is the worker it starts (the tests start it too): it gets
the runs through runner.Suite, prints `EPOCH <key> <n>` after each checkpoint and `RESULT <json>` at the end.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

from . import store
from .cache import RunCache

ROOT = Path(__file__).resolve().parent.parent
FINISHED = ("result.json", "final.pt")


# ---- the worker ---------------------------------------------------------------------------------------
def small_suite(cache: RunCache, sources, seeds: tuple[int, ...], epochs: int, device: str = "cpu",
                session: str = "chaos", log=print):
    """A runner.Suite at the smallest size that still trains and attacks for real: 64 training images
    in 2 steps of 32 per epoch, PGD (1 step, eps 8/255) on 32 test images after each epoch."""
    from . import runtime
    from .config import AttackConfig, Profile
    from .runner import Suite
    profile = Profile(name="chaos", seeds=seeds, epochs=epochs, train_subset=64,
                      attack=AttackConfig(eps=(8.0,), steps=1, n_eval=32), max_input_size=None,
                      decides=False, substitute_data=False)
    dev = runtime.pick_device(device)
    return Suite(profile, sources, cache, dev, runtime.resolve_precision("fp32", dev), session=session, log=log)


def small_claim(dataset: str, variants: dict | None = None):
    """A claim whose runs are `variants` (default: ResNet18 with 32-image batches) x the suite's seeds."""
    from .config import Claim, Recipe, Variant
    variants = variants or {"resnet18": Variant("resnet18", "baseline", Recipe(batch_size=32))}
    first = next(iter(variants))
    return Claim(statement="chaos", better=first, worse=first, variants=variants, datasets=(dataset,),
                 epochs=1, eps=(8.0,), deciding_eps=8.0)


def work(args) -> int:
    from . import data, runtime
    torch.set_num_threads(1)  # the same float reduction order in every process
    runtime.set_deterministic(args.deterministic)
    if args.disk_full_after is not None:
        _fill_disk_after(args.disk_full_after)
    sources = data.Sources(bindings=tuple(data.parse_binding(b) for b in args.data_source), allow_download=False)
    dataset = sources.bindings[0][0]
    seeds = tuple(int(s) for s in args.seeds.split(","))
    cache = _TracedCache(args.cache)
    suite = small_suite(cache, sources, seeds[::-1] if args.reverse else seeds, args.epochs, args.device,
                        args.session, log=lambda line: print(line, file=sys.stderr, flush=True))
    runs = [r for rs in suite.curves(small_claim(dataset), dataset).values() for r in rs]
    summary = {r["key"]: {"status": r["status"], "error": r.get("error"), "records": numbers(r["records"]),
                          "weights": weights_digest(cache.final_state(r["key"])) if r["status"] == "done" else None}
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
class Worker:
    """A `work` subprocess, read as it runs: `epochs` lists the (key, epoch) checkpoints it saved."""

    def __init__(self, cache: Path, *options: str):
        cmd = [sys.executable, "-m", "harness.chaos", "work", "--cache", str(cache), *options]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, "OMP_NUM_THREADS": "1"})
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
                raise TimeoutError(f"worker saved {len(self.epochs)} of {n} checkpoints (exit {self.proc.poll()}):"
                                   f"\n{self.stderr_tail()}")
            time.sleep(0.02)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.wait(30)

    def wait(self, timeout: float = 300) -> int:
        rc = self.proc.wait(timeout)
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


def export_subset(ds, folder: Path, n_train: int = 64, n_test: int = 32) -> Path:
    """The first images of a loaded dataset as an ImageFolder of PNGs (lossless): a real dataset small
    enough that a worker decodes it in a moment. Bind it with --data-source NAME=folder."""
    from PIL import Image
    for split, x, y, n in (("train", ds.train_x, ds.train_y, n_train), ("test", ds.test_x, ds.test_y, n_test)):
        for i, (image, label) in enumerate(zip(x[:n], y[:n])):
            path = Path(folder) / split / f"{int(label):03d}" / f"{i:05d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            pixels = image.permute(1, 2, 0).numpy()
            Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels).save(path)
    return Path(folder)


# ---- faults and the audit ------------------------------------------------------------------------------
def corrupt(path: Path, how: str) -> None:
    """Damage a file in place, as a crash, a bad disk or a person might (deliberately not atomic)."""
    data = path.read_bytes()
    if how == "truncate":
        path.write_bytes(data[:len(data) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "garbage":
        path.write_bytes(random.Random(0).randbytes(max(len(data), 64)))
    elif how == "flip":  # one bit, mid-file: a bad disk sector
        path.write_bytes(data[:len(data) // 2] + bytes([data[len(data) // 2] ^ 1]) + data[len(data) // 2 + 1:])
    elif how == "edit":  # a hand edit: valid JSON, one number changed, the checksum left as it was
        doc = json.loads(data)
        doc["payload"]["records"][0]["clean"] = 1.0 - doc["payload"]["records"][0]["clean"]
        path.write_text(json.dumps(doc))
    else:
        raise ValueError(f"unknown corruption {how!r}: truncate, empty, garbage, flip or edit")


def _finished_files(cache: Path) -> dict[Path, str]:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest()
            for name in FINISHED for p in (cache / "runs").glob(f"*/{name}")}


def _checkpoint_epochs(cache: Path) -> dict[Path, int]:
    return {p.parent: len(s["records"]) if isinstance(s := store.load_tensors(p), dict) else 0
            for p in (cache / "runs").glob("*/checkpoint.pt")}


class Audit:
    """What a step lost: finished files gone or changed, and checkpoints that went back (a run finished
    since has none), except in the run folders the step damaged on purpose."""

    def __init__(self, cache: Path):
        self.cache, self.damaged = cache, set()
        self.files, self.epochs = _finished_files(cache), _checkpoint_epochs(cache)

    def lost(self) -> int:
        files, epochs = _finished_files(self.cache), _checkpoint_epochs(self.cache)
        gone = [p for p, digest in self.files.items() if p.parent not in self.damaged and files.get(p) != digest]
        went_back = [d for d, n in self.epochs.items() if d not in self.damaged and epochs.get(d, 0) < n
                     and not (d / "result.json").exists()]
        return len(gone) + len(went_back)


def finished_and_identical(cache: Path, clean: dict[str, dict]) -> tuple[int, int]:
    """How many runs are finished, and how many of those have the clean run's per-epoch numbers and
    final weights, bit for bit."""
    done = same = 0
    for p in (cache / "runs").glob("*/result.json"):
        try:
            result = store.read_json(p, checksum=True)
        except (ValueError, OSError):
            continue
        done += 1
        same += p.parent.name in clean and numbers(result["records"]) == clean[p.parent.name]["records"] and \
            weights_digest(store.load_tensors(p.parent / "final.pt")) == clean[p.parent.name]["weights"]
    return done, same


# ---- the fault-injection run ---------------------------------------------------------------------------
def chaos(args) -> int:
    root = Path(args.workdir or tempfile.mkdtemp(prefix="advhyp-chaos-"))
    opts = [*(f"--data-source={b}" for b in args.data_source), f"--seeds={args.seeds}", f"--epochs={args.epochs}"]
    print(f"chaos: clean run in {root / 'clean'} ...", flush=True)
    clean = clean_run(root / "clean", *opts)
    cache, rng, rows = root / "chaos", random.Random(args.seed), []

    def step(fault: str, action) -> None:
        audit = Audit(cache)
        injected, note, ok = action(audit)
        rows.append((fault, injected, *finished_and_identical(cache, clean), audit.lost(), note, ok))
        print(f"chaos: {fault}: {note}", flush=True)

    def kill_mid_epoch(audit):
        w = Worker(cache, *opts)
        w.wait_for_epochs(1)
        time.sleep(rng.uniform(0, 0.5))  # somewhere in the next epoch (or its checkpoint write)
        w.kill()
        return 1, f"killed after {len(w.epochs)} checkpoint(s)", True

    def disk_full(audit):
        w = Worker(cache, *opts, "--disk-full-after=1")
        rc = w.wait()
        said = next((line.strip() for line in w.stderr if "cannot write" in line), "")
        ok = rc != 0 and "disk is full" in said and str(cache / "runs") in said
        return 1, f"exit {rc}: {said.split('): ')[0]})" if said else f"exit {rc} without a clear message", ok

    def leftovers(audit):
        old = time.time() - 7200
        folders = [p for p in (cache / "runs").iterdir() if p.is_dir()] + [cache / "data"]
        for folder in folders:
            tmp = folder / f"{store.TMP_PREFIX}result.json.chaos"
            tmp.write_bytes(b'{"payload": {"key": "half a fi')
            os.utime(tmp, (old, old))
        checkpoints = sorted((cache / "runs").glob("*/checkpoint.pt"))
        for c in checkpoints[:1]:
            corrupt(c, "garbage")
            audit.damaged.add(c.parent)
        return len(folders) + len(checkpoints[:1]), f"{len(folders)} temporaries, {len(checkpoints[:1])} " \
                                                      f"garbage checkpoint(s)", True

    def race(audit):
        workers = [Worker(cache, *opts, *(["--reverse"] if i == 1 else [])) for i in range(3)]
        for w in workers:
            w.finish()
        trained = [e for w in workers for e in w.epochs]
        twice = len(trained) - len(set(trained))
        left = list(cache.rglob(store.TMP_PREFIX + "*"))
        return 1, f"3 workers trained {len(trained)} epochs, {twice} twice; {len(left)} temporaries left", \
            twice == 0 and not left

    def damage_finished(audit):
        runs = sorted((cache / "runs").glob("*/result.json"))  # one fault per run, so each is seen
        damage = list(zip(runs, ("truncate", "edit"))) + [(p.parent / "final.pt", "empty") for p in runs[2:3]]
        for path, how in damage:
            corrupt(path, how)
            audit.damaged.add(path.parent)
        summary = Worker(cache, *opts).finish()
        named = all(any(str(p) in w for w in summary["warnings"]) for p, _ in damage)
        return len(damage), f"{', '.join(how for _, how in damage)}: recomputed, " \
                            f"{'each named' if named else 'NOT all named'} in warnings", named

    for _ in range(2):
        step("SIGKILL a worker mid-epoch", kill_mid_epoch)
    step("disk full (ENOSPC) while training", disk_full)
    step("half-written temporaries, garbage checkpoint", leftovers)
    step("three workers race on the same runs", race)
    step("finished entries damaged", damage_finished)
    return _table(rows, len(clean))


def _table(rows: list[tuple], n_runs: int) -> int:
    head = ("fault", "injected", "finished", "identical", "lost", "note")
    lines = [(f, str(i), f"{d}/{n_runs}", f"{s}/{d}", str(lost), ("" if ok else "FAILED: ") + note)
             for f, i, d, s, lost, note, ok in rows]
    _, _, done, same, _, _, _ = rows[-1]
    total_lost = sum(r[4] for r in rows)
    lines.append(("total", str(sum(r[1] for r in rows)), f"{done}/{n_runs}", f"{same}/{done}", str(total_lost), ""))
    widths = [max(len(x[i]) for x in [head, *lines]) for i in range(len(head) - 1)]
    for line in [head, *lines]:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))) +
              "  " + line[-1])
    ok = done == same == n_runs and total_lost == 0 and all(r[-1] for r in rows)
    print("chaos: " + ("nothing lost, every number identical to the clean run" if ok else "FAILED"))
    return 0 if ok else 1


def _parser(worker: bool) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m harness.chaos" + (" work" if worker else ""), description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-source", action="append", required=True, help="NAME=PATH of a real dataset")
    p.add_argument("--seeds", default="0,1,2", help="one run per seed, e.g. 0,1,2")
    p.add_argument("--epochs", type=int, default=3)
    if not worker:
        p.add_argument("--workdir", help="where the clean and the chaos caches go (default: a new temporary folder)")
        p.add_argument("--seed", type=int, default=0, help="seeds when the kills land")
        return p
    p.add_argument("--cache", required=True, help="the cache folder")
    p.add_argument("--reverse", action="store_true", help="ask for the runs in reverse order")
    p.add_argument("--session", default="chaos", help="failures of this session are not retried in it")
    p.add_argument("--device", default="cpu")
    p.add_argument("--deterministic", action="store_true", help="runtime.set_deterministic(True)")
    p.add_argument("--disk-full-after", type=int, help="simulate a full disk after this many file writes")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["work"]:
        try:
            return work(_parser(worker=True).parse_args(argv[1:]))
        except store.StoreError as e:
            print(f"chaos worker: {e.strerror}", file=sys.stderr)
            return 2
    return chaos(_parser(worker=False).parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
