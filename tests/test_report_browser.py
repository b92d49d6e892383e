"""The report in a real headless browser (Debian's chromium): the page loads without JavaScript errors,
every figure decodes, the control case is there, and a screenshot is kept.

The page's own inline script writes what it saw on load into <body> attributes (data-images-ok,
data-images-total, data-js-errors, data-checked); `chromium --dump-dom` prints the DOM after load.
The screenshot goes to $ADVHYP_SCREENSHOT_DIR (CI keeps it), else to the test's tmp folder.
"""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from test_report import sample_doc, write_doc  # the same small results.json as the fast tests

from harness.report import page as report

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is missing: install Debian's "
                                                               "chromium package to run the browser test")


def chromium(tmp_path: Path, page: Path, *args: str) -> str:
    profile = tmp_path / f"chromium-profile-{len(list(tmp_path.glob('chromium-profile-*')))}"  # fresh each time
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", *args, page.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def body_attributes(dom: str) -> dict[str, str]:
    body = re.search(r"<body([^>]*)>", dom).group(1)
    return dict(re.findall(r'([\w-]+)="([^"]*)"', body))


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    folder = write_doc(tmp_path_factory.mktemp("browser") / "20261126-010000", sample_doc())
    return report.render(folder)


def test_page_loads_without_errors_and_every_figure_renders(page, tmp_path):
    html = page.read_text()
    expected = 2 * len(sample_doc()["cases"]) + 1  # two per case (curves, effect along eps), one case's diagnostics
    dom = chromium(tmp_path, page, "--dump-dom")
    seen = body_attributes(dom)
    assert seen.get("data-checked") == "yes", "the page's check script did not run"
    assert seen["data-js-errors"] == ""
    assert int(seen["data-figures"]) == html.count("<img ") == expected
    assert int(seen["data-images-total"]) == int(seen["data-images-ok"]) == expected
    assert re.search(r"<td>test_control_seed_null</td>", dom)  # the null control is in the summary
    assert "<script>alert" not in dom  # hostile strings in the results stayed text

    shots = Path(os.environ.get("ADVHYP_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    shot = shots / "report.png"
    shot.unlink(missing_ok=True)
    chromium(tmp_path, page, f"--screenshot={shot}", "--window-size=1400,3000")
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 50_000


def test_the_check_catches_a_broken_figure_and_a_script_error(page, tmp_path):
    """The browser check can fail: one corrupted image and one throwing script are both reported."""
    html = page.read_text()
    start = html.index("base64,") + len("base64,")
    broken = html[:start] + "AAAA" + html[start + 4:]  # a PNG whose signature is gone
    broken = broken.replace("</body>", "<script>notAFunction()</script></body>")
    bad = tmp_path / "broken.html"
    bad.write_text(broken)
    seen = body_attributes(chromium(tmp_path, bad, "--dump-dom"))
    assert int(seen["data-images-ok"]) == int(seen["data-images-total"]) - 1
    assert "notAFunction" in seen["data-js-errors"]


def test_h1s_page_shows_the_2x2_the_dose_response_and_claimed_beside_measured(tmp_path):
    """The five H1 modules' page (tests/test_factorial.py's session: real run configs, judged cases)."""
    from test_factorial import _doc
    page = report.render(write_doc(tmp_path / "20261201-010000", _doc()))
    dom = chromium(tmp_path, page, "--dump-dom")
    seen = body_attributes(dom)
    assert seen["data-js-errors"] == "" and int(seen["data-images-total"]) == int(seen["data-images-ok"]) > 0
    assert "H1's 2x2: normalization × rounding" in dom and "Dose response" in dom
    row = re.search(r"<tr><td>test_quantized_input</td>.*?</tr>", dom).group(0)
    assert "better (no size given) (research post, first experiment (Figure 1; no size given)) →" in row
