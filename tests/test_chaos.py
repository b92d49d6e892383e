"""The fault-injection tool end to end, at its --quick size: real workers killed, signalled and racing,
junk and mismatched data, a damaged decoded-data cache and damaged finished entries, on real images.
Its table must count every fault and say that nothing was lost. (The full run, with full and read-only
folders and sessions, is run by hand: docs/cache.md has its table.)"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from harness.chaos import clean_environment

ROOT = Path(__file__).resolve().parent.parent

# --quick on 2 seeds: 1 kill, 5 junk files, 4 damaged decoded-data caches, 2 mismatched copies, 3 to 7
# signals (2 + 3 + 2 pressed at three workers; a press that finds its worker gone is not sent), 1 race,
# 2 damaged finished entries (one per run).
SIGNALS = "SIGINT/SIGTERM x2-3 to 3 racing workers"
EXPECTED = {"SIGKILL a worker mid-epoch": 1, "junk files added to the data folder": 5,
            "decoded-data cache damaged": 4, "train/test class folders differ": 2, SIGNALS: range(3, 8),
            "three workers race on the same runs": 1, "finished entries damaged": 2}


def _rows(out: str) -> dict[str, list[str]]:
    """fault -> [injected, finished, identical, lost, note] from the printed table (columns are 2+ spaces apart)."""
    rows = {}
    for line in out[out.index("fault  "):].splitlines()[1:]:
        if line.startswith("chaos: "):
            break
        fault, *rest = re.split(r"\s{2,}", line.strip(), maxsplit=5)
        rows[fault] = rest
    return rows


def test_quick_chaos_counts_every_fault_and_loses_nothing(tiny_images, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "harness.chaos", "--quick", f"--data-source=cifar10={tiny_images}",
                           "--seeds=0,1", "--epochs=2", f"--workdir={tmp_path}"], cwd=ROOT, capture_output=True,
                          text=True, env={**clean_environment(), "OMP_NUM_THREADS": "1"}, timeout=1800)
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-3000:]
    rows = _rows(out)
    injected = {fault: int(r[0]) for fault, r in rows.items() if fault != "total"}
    assert injected.keys() == EXPECTED.keys()
    assert all(n in EXPECTED[f] if isinstance(EXPECTED[f], range) else n == EXPECTED[f] for f, n in injected.items())
    assert all(r[3] == "0" and "FAILED" not in " ".join(r) for r in rows.values()), out
    assert rows["total"][:4] == [str(sum(injected.values())), "2/2", "2/2", "0"]
    assert out.rstrip().endswith("chaos: nothing lost, every number identical to the clean run")
