"""Damaging files on purpose (`corrupt`), the audit of what each fault lost (finished files, checkpoints,
numbers different from the clean run's) and the table of all faults."""
from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

from ..cache import store
from .worker import numbers, weights_digest

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


def on_disk(cache: Path) -> dict[str, dict]:
    """{key: {"records", "weights"}} of every finished run in `cache` whose result and weights are intact:
    its per-epoch numbers (numbers()) and the digest of its final weights."""
    found = {}
    for p in (cache / "runs").glob("*/result.json"):
        try:
            result = store.read_json(p, checksum=True)
        except (ValueError, OSError):
            continue
        found[p.parent.name] = {"records": numbers(result["records"]),
                                "weights": weights_digest(store.load_tensors(p.parent / "final.pt"))}
    return found


def finished_and_identical(cache: Path, clean: dict[str, dict]) -> tuple[int, int]:
    """How many runs are finished, and how many of those have the clean run's per-epoch numbers and
    final weights, bit for bit."""
    found = on_disk(cache)
    return len(found), sum(k in clean and v["records"] == clean[k]["records"] and v["weights"] == clean[k]["weights"]
                           for k, v in found.items())


# ---- the table ----------------------------------------------------------------------------------------
def table(rows: list[tuple], n_runs: int) -> int:
    """Print one line per step (fault, injected, finished, identical, lost, note; a note starts with FAILED
    where the outcome was not the promised one) and the total; 0 if every run ended finished and identical
    to the clean run, nothing was lost and every outcome was the promised one, else 1."""
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
