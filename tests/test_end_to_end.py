"""The main job end to end, twice: the second run trains nothing and gives identical numbers, and the
report it writes renders in a real browser with every figure and the control hypothesis."""
import json
import os
import subprocess
import sys
from pathlib import Path

from harness.judge.verdict import VERDICTS
from test_report_browser import CHROMIUM, body_attributes, chromium

ROOT = Path(__file__).resolve().parent.parent


def _pytest(tmp_path, sources, *args):
    bindings = [f"--data-source={n}={p}" for n, p in sources.bindings]
    return subprocess.run([sys.executable, "-m", "pytest", "hypotheses/test_pooling_type.py",
                           "hypotheses/test_control_seed_null.py", "-q", "-p",
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
        assert {(c["module"], c["eps"]) for c in doc["cases"]} == {  # --eps 1,8 overrides every claim's eps
            (m, e) for m in ("test_pooling_type", "test_control_seed_null") for e in (1.0, 8.0)}
        assert all(c["verdict"] in VERDICTS for c in doc["cases"])  # judged
        assert all(c["outcome"] == "skipped" for c in doc["cases"])  # smoke decides nothing
        # Max s0, s1, Avg s0, s1, and the null control's Seeds A s0, s1 and Seeds B s100, s101 (test_resnet)
        assert len(doc["runs"]) == 8 and all(len(r["records"]) == 1 for r in doc["runs"].values())
    numbers = [sorted((c["nodeid"], json.dumps(c["scores"]), json.dumps(c["test"])) for c in d["cases"]) for d in docs]
    assert numbers[0] == numbers[1]
    assert docs[0]["runs"] == docs[1]["runs"]

    if CHROMIUM.exists():  # the smoke run's own page, in a real browser (CI installs chromium)
        page = folders[1] / "index.html"
        dom = chromium(tmp_path, page, "--dump-dom")
        seen = body_attributes(dom)
        assert "(research post, second experiment (no size given)) →" in dom  # H2: claimed beside measured
        assert seen.get("data-checked") == "yes" and seen["data-js-errors"] == ""
        assert int(seen["data-images-total"]) == int(seen["data-images-ok"]) == page.read_text().count("<img ") > 3
        assert "test_control_seed_null" in page.read_text()
        shots = Path(os.environ.get("ADVHYP_SCREENSHOT_DIR") or tmp_path)
        shots.mkdir(parents=True, exist_ok=True)
        chromium(tmp_path, page, f"--screenshot={shots / 'smoke-report.png'}", "--window-size=1400,4000")
        assert (shots / "smoke-report.png").stat().st_size > 50_000
