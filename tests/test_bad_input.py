"""Bad input on the command line stops the run with one clear message naming the value and the fix."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("args, message", [
    (["--profile", "nope"], "unknown profile 'nope': choose one of smoke, paper"),
    (["--eps", "0"], "eps 0 is out of range: eps is in 1/255 units and must be in (0, 255]"),
    (["--eps", "256"], "eps 256 is out of range"),
    (["--eps", "one"], "--eps 'one' is not a comma-separated list of numbers"),
    (["--seeds", "3"], "at least 2 distinct seeds per variant, e.g. --seeds 0,1,2"),
    (["--seeds", "1,1"], "seeds [1, 1] repeat a seed: list each once"),
    (["--seeds", "0,1,1"], "seeds [0, 1, 1] repeat a seed"),
    (["--epochs", "0"], "epochs 0 must be at least 1"),
    (["--alpha", "5"], "--alpha '5' must be a number in (0, 0.5)"),
    (["--alpha", "0.5"], "--alpha '0.5' must be a number in (0, 0.5), e.g. 0.05"),
    (["--datasets", "imagenet7"], "unknown dataset 'imagenet7': use one of cifar10, cifar100, fashion-mnist"),
    (["--data-source", "cifar10"], "--data-source 'cifar10' is not NAME=PATH"),
    (["--precision", "fp8"], "unknown precision 'fp8': choose one of auto, bf16, fp32"),
    (["--compile", "maybe"], "--compile 'maybe': use auto, on or off"),
])
def test_bad_option_is_one_clear_usage_error(args, message, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pytest", "hypotheses/", "--collect-only", "-q",
                           "-p", "no:cacheprovider", "--cache-dir", str(tmp_path / "c"),
                           "--reports-dir", str(tmp_path / "r"), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 4, proc.stdout + proc.stderr  # pytest's usage-error status
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
