"""The fault-injection run: a clean run, then each fault in turn on another cache, and the audit of what
each fault lost (finished files, checkpoints, numbers different from the clean run's)."""
from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
import time
from pathlib import Path

from .. import store
from .worker import Worker, clean_run, numbers, weights_digest

FINISHED = ("result.json", "final.pt")


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
