"""The main job end to end, twice: the second run trains nothing and gives identical numbers."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _pytest(tmp_path, sources, *args):
    bindings = [f"--data-source={n}={p}" for n, p in sources.bindings]
    return subprocess.run([sys.executable, "-m", "pytest", "hypotheses/test_pooling_type.py", "-q", "-p",
                           "no:cacheprovider", "--seeds", "0,1", "--epochs", "1", "--eps", "1,8",
                           "--cache-dir", str(tmp_path / "cache"), "--reports-dir", str(tmp_path / "reports"),
                           *bindings, *args], cwd=ROOT, capture_output=True, text=True, timeout=900)


def test_second_run_is_all_cache_hits_with_identical_numbers(tmp_path, sources):
    first = _pytest(tmp_path, sources)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    second = _pytest(tmp_path, sources)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    folders = sorted((tmp_path / "reports").iterdir())
    assert len(folders) == 2
    assert "epoch 1/1" in (folders[0] / "progress.log").read_text()
    assert not (folders[1] / "progress.log").exists()  # nothing trained the second time
    docs = [json.loads((f / "results.json").read_text()) for f in folders]
    for doc in docs:
        assert doc["partial"] is False and doc["session"]["profile"] == "smoke"
        assert {c["eps"] for c in doc["cases"]} == {1.0, 8.0}
        assert all(c["verdict"] in ("supported", "contradicted", "inconclusive") for c in doc["cases"])
        assert all(c["outcome"] == "skipped" for c in doc["cases"])  # smoke decides nothing
        assert len(doc["runs"]) == 4 and all(len(r["records"]) == 1 for r in doc["runs"].values())
    numbers = [sorted((c["nodeid"], json.dumps(c["scores"]), json.dumps(c["test"])) for c in d["cases"]) for d in docs]
    assert numbers[0] == numbers[1]
    assert docs[0]["runs"] == docs[1]["runs"]
