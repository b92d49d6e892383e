"""Collection only plans: `pytest --collect-only hypotheses/` picks no device, opens no cache, decodes no data,
builds no model (so it imports neither timm nor torch._dynamo: half of a bad option's answer time)."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

GUARD = '''
import pathlib
import sys
from harness.cache import runs as cache
from harness.run import data, runtime
LOG = pathlib.Path(__file__).with_name("touched.log")

def _noting(name, real):
    def wrapper(*args, **kwargs):
        with LOG.open("a") as f:
            f.write(name + "\\n")
        return real(*args, **kwargs)
    return wrapper

runtime.pick_device = _noting("pick_device", runtime.pick_device)
runtime.set_deterministic = _noting("set_deterministic", runtime.set_deterministic)
cache.RunCache.__init__ = _noting("RunCache", cache.RunCache.__init__)
data.load = _noting("data.load", data.load)

def pytest_collection_finish(session):  # what only building or compiling a model needs (seconds to import)
    for name in ("timm", "torch._dynamo"):
        if name in sys.modules:
            with LOG.open("a") as f:
                f.write("import " + name + "\\n")
'''


def test_collect_only_touches_no_device_no_cache_and_no_data(tmp_path):
    (tmp_path / "collect_guard.py").write_text(GUARD)
    cache_dir = tmp_path / "cache"
    proc = subprocess.run([sys.executable, "-m", "pytest", "hypotheses/", "--collect-only", "-q", "-p", "collect_guard",
                           "-p", "no:cacheprovider", f"--cache-dir={cache_dir}", f"--reports-dir={tmp_path / 'r'}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "test_max_pooling_improves_resnet_tradeoff" in proc.stdout  # it did collect the hypotheses
    assert not (tmp_path / "touched.log").exists(), (tmp_path / "touched.log").read_text()
    assert not cache_dir.exists()
    assert not any((tmp_path / "r").glob("*/results.json"))  # and wrote no report
