"""The report in a real headless browser (Debian's chromium), read as a researcher reads it, at 1366 x 768.

On the main job's page (a real smoke session: `pytest hypotheses/` on the tests' tiny data) and on a
constructed paper-profile page (every hypothesis module on its datasets and eps, 3 seeds x its epochs, final
checks on every run): the board's rows are on the first screen, nothing overflows horizontally with every
fold closed or every fold open, every figure decodes, the folds open, and the page is small enough (1.5 MB,
5 MB). A screenshot of each first screen is kept. The check itself can fail: a broken figure and a script
error are both caught.

The page's own inline script writes what it saw on load into <body> attributes (figures decoded, script
errors, scrollWidth and clientWidth, the window, where the board ends); `chromium --dump-dom` prints the DOM
after load. Screenshots go to $ADVHYP_SCREENSHOT_DIR (CI keeps reports/ci), else to the test's tmp folder.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_report import sample_doc, write_doc  # the same small results.json as the fast tests

from harness.judge import verdict
from harness.report import page as report
from harness.spec import plan, results
from harness.spec.config import PROFILES, key
from harness.spec.records import Check, EpochRecord, FinalChecks, FinalEvaluation, Run, Transfer
from helpers import run_dict

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parent.parent
WINDOW = "1366,768"
OPEN_ALL = "<script>document.querySelectorAll('details').forEach(function (d) { d.open = true; });</script>"
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is missing: install Debian's "
                                                               "chromium package to run the browser test")


def chromium(tmp_path: Path, page: Path, *args: str, fragment: str = "") -> str:
    profile = tmp_path / f"chromium-profile-{len(list(tmp_path.glob('chromium-profile-*')))}"  # fresh each time
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic",
           f"--user-data-dir={profile}", *args, page.as_uri() + fragment]
    if not any(a.startswith("--window-size=") for a in args):
        cmd.insert(-1, f"--window-size={WINDOW}")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def body_attributes(dom: str) -> dict[str, str]:
    body = re.search(r"<body([^>]*)>", dom).group(1)
    return dict(re.findall(r'([\w-]+)="([^"]*)"', body))


def screenshot(tmp_path: Path, page: Path, name: str) -> Path:
    """The page's first screen at 1366 x 768, kept under $ADVHYP_SCREENSHOT_DIR."""
    shots = Path(os.environ.get("ADVHYP_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    shot = shots / name
    shot.unlink(missing_ok=True)
    chromium(tmp_path, page, f"--screenshot={shot}")
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 20_000
    return shot


def read_as_a_researcher(tmp_path: Path, page: Path, max_bytes: int, shot: str) -> str:
    """Every promise of the reading, on one page; returns its DOM after load (folds closed)."""
    html = page.read_text()
    assert page.stat().st_size <= max_bytes, f"{page} weighs {page.stat().st_size:,} bytes"
    assert len(set(re.findall(r'src="data:image/png;base64,([^"]+)"', html))) == html.count("data:image/png")
    dom = chromium(tmp_path, page, "--dump-dom")
    opened = tmp_path / f"open-{page.parent.name}.html"
    opened.write_text(html.replace("</body>", OPEN_ALL + "</body>"))
    dom_open = chromium(tmp_path, opened, "--dump-dom")
    for seen in (body_attributes(dom), body_attributes(dom_open)):
        assert seen.get("data-checked") == "yes", "the page's check script did not run"
        assert seen["data-js-errors"] == ""
        assert int(seen["data-figures"]) == html.count("<img ") == int(seen["data-images-total"])
        assert int(seen["data-images-ok"]) == int(seen["data-images-total"]) > 0  # every figure decoded
        width, height = map(int, seen["data-window"].split("x"))
        assert width == 1366 and int(seen["data-scroll-width"]) <= int(seen["data-client-width"]) <= width, seen
        assert seen["data-overflowing"] == ""  # no element reaches past the window's right edge
        assert 0 < int(seen["data-board-bottom"]) <= height  # the board's last row is on the first screen
    assert dom_open.count("<details") == html.count("<details") == dom_open.count(' open=""') > 0  # folds open
    screenshot(tmp_path, page, shot)
    return dom


# ---- the main job's page: a real smoke session ---------------------------------------------------------
@pytest.fixture(scope="module")
def smoke_page(tiny_images, tmp_path_factory) -> Path:
    """`pytest hypotheses/` under the smoke profile on the tests' tiny data (a few minutes on 2 CPU cores)."""
    root = tmp_path_factory.mktemp("smoke-session")
    proc = subprocess.run([sys.executable, "-m", "pytest", "hypotheses/", "-q", "-p", "no:cacheprovider",
                           f"--data-source=cifar10={tiny_images}", f"--cache-dir={root / 'cache'}",
                           f"--reports-dir={root / 'reports'}"], cwd=ROOT, capture_output=True, text=True,
                          timeout=2400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    [folder] = (root / "reports").iterdir()
    return folder / "index.html"


def test_the_main_jobs_page_reads_in_one_screen(smoke_page, tmp_path):
    dom = read_as_a_researcher(tmp_path, smoke_page, 1_500_000, "smoke-board.png")
    doc = results.load(smoke_page.parent)
    claims = {(c.module, c.dataset) for c in doc.cases}
    board = re.search(r'<table class="board">(.*?)</table>', dom, re.S).group(1)
    assert board.count("<tr>") - 1 == len({c for c in claims if "control" not in c[0]}) == 6  # one row per claim
    assert 'id="calibration"' in dom and "test_control_seed_null" in dom
    assert "H1's 2x2: normalization × rounding" in dom  # declared by the H1 modules, recorded by the session


# ---- a constructed paper-profile page --------------------------------------------------------------------
def _unit(*parts) -> float:
    """A number in [0, 1) fixed by `parts`: the constructed accuracies are the same wherever a run is built."""
    return int(hashlib.sha256(repr(parts).encode()).hexdigest()[:8], 16) / 16 ** 8


def _run(cfg, deciding_eps: float) -> Run:
    """A finished run of `cfg`: clean accuracy rising over its epochs, adversarial accuracy per eps and mode
    falling with eps, an arm-level robustness that its seeds share, and its final-checkpoint evaluations."""
    run_key = key(cfg, "fingerprint", "code")
    arm = 0.25 + 0.2 * _unit(dataclasses.replace(cfg, seed=0))
    noise = 0.02 * _unit(run_key)
    modes = {m: {"off": 1.15, "bpda": 1.05, "exact": 1.6}.get(m, 1.0) for m in cfg.attack.modes}
    records = []
    for e in range(1, cfg.epochs + 1):
        clean = min(0.9, 0.3 + 0.5 * e / cfg.epochs + noise)
        adv = {f"{eps:g}": {m: min(clean, clean * (arm + noise) * f / (1 + eps / 4)) for m, f in modes.items()}
               for eps in cfg.attack.eps}
        records.append(EpochRecord(epoch=e, clean=clean, adv={k: {**v, "strongest": min(v.values())}
                                                            for k, v in adv.items()}))
    last = records[-1].adv[f"{deciding_eps:g}"]
    checks = {name: Check(ok=True, detail=f"{name}: within the tolerance") for name in (
        "apgd_not_stronger", "gradient_free_not_stronger", "gradients_not_masked", "more_effort_finds_little",
        "unbounded_attack_wins")}
    final = FinalEvaluation(
        n=500, clean=records[-1].clean, eps=deciding_eps, pgd=dict(last), square=last["strongest"] + 0.02,
        apgd_ce={m: v - 0.01 for m, v in last.items()}, apgd_dlr={m: v - 0.005 for m, v in last.items()},
        zero_grad={m: 1.0 if m == "exact" else 0.0 for m in modes}, strongest_overall=last["strongest"] - 0.01,
        steps_curve={"steps": [1, 5, 10, 20], "acc": [last["strongest"] + d for d in (0.1, 0.03, 0.0, -0.005)]},
        eps_curve={"eps": [1, 4, 16, 64, 255], "acc": [last["strongest"] / (1 + x / 4) for x in (0, 4, 16, 64, 255)]},
        checks=checks, warnings=[], seconds=40.0)
    best = dataclasses.replace(final, epoch=cfg.epochs - 3)
    return Run(key=run_key, status="done", label=cfg.label, config=cfg, records=records, dataset_used=cfg.dataset,
               train_wall_seconds=600.0 * cfg.epochs, final=final, best=best)


def paper_doc() -> dict:
    """Every hypothesis module under the paper profile on its own datasets and eps, judged by the real verdict
    module; runs shared between modules are the same runs (the same keys), as the cache makes them."""
    doc = results.new({"profile": "paper", "alpha": 0.05, "started": "2026-12-05 01:00:00", "exit_status": 1,
                       "controller": {"git": "abc1234", "device": "cuda:0"}})
    for path in sorted((ROOT / "hypotheses").glob("test_*.py")):
        spec = importlib.util.spec_from_file_location(f"paper_page_{path.stem}", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        claim = mod.CLAIM
        p = plan.Plan(claim=claim, profile=PROFILES["paper"], datasets=claim.datasets, eps=claim.eps)
        family = {d: {arm: [_run(c, claim.deciding_eps) for c in cs]
                      for arm, cs in plan.run_configs(p, d, "fp32").items()} for d in claim.datasets}
        for d, runs in family.items():
            pairs = list(zip(*runs.values()))[:3] if len(runs) == 2 else []
            checks = FinalChecks(
                finals={r.key: r.final for rs in runs.values() for r in rs},
                bests={r.key: r.best for rs in runs.values() for r in rs}, masking_warnings=[],
                transfer=[Transfer(eps=claim.deciding_eps, direction=direction, transfer_acc=0.4, whitebox_acc=0.3,
                                   ok=True, detail="transfer is weaker than white-box", source=a.label, target=b.label,
                                   weights=weights)
                          for b, a in pairs for direction in ("worse->better", "better->worse")
                          for weights in ("final", "best")])
            for eps in claim.eps:
                case = verdict.judge(p, d, eps, family, checks, 0.05, module=path.stem,
                                     nodeid=f"hypotheses/{path.name}::t[{d}-eps{eps:g}]")
                results.add(doc, results.plain({"case": case.to_dict(), "design": getattr(mod, "DESIGN", None),
                                                "runs": {r.key: run_dict(r) for rs in runs.values() for r in rs}}))
    doc["partial"] = False
    return doc


@pytest.fixture(scope="module")
def paper_page(tmp_path_factory) -> Path:
    return report.render(write_doc(tmp_path_factory.mktemp("paper") / "20261205-010000", paper_doc()))


def test_a_paper_profile_page_reads_in_one_screen(paper_page, tmp_path):
    dom = read_as_a_researcher(tmp_path, paper_page, 5_000_000, "paper-board.png")
    doc = results.load(paper_page.parent)
    assert len(doc.cases) == 44  # H1's four modules on 2 datasets x 4 eps, the dose, pooling x 4 eps, 4 controls
    board = re.search(r'<table class="board">(.*?)</table>', dom, re.S).group(1)
    assert board.count("<tr>") - 1 == 10  # one row per claim and dataset (not per eps), the controls apart
    assert board.count('class="chip ') == 40 and board.count(' deciding"') == 10  # the other eps: a strip
    assert dom.count("H1's 2x2: normalization × rounding") == 2  # one table per dataset


# ---- the check can fail; H1's page --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    folder = write_doc(tmp_path_factory.mktemp("browser") / "20261126-010000", sample_doc())
    return report.render(folder)


def test_the_check_catches_a_broken_figure_a_script_error_and_a_wide_table(page, tmp_path):
    html = page.read_text()
    dom = chromium(tmp_path, page, "--dump-dom")
    seen = body_attributes(dom)
    assert seen["data-js-errors"] == "" and seen["data-overflowing"] == "" and ' open=""' not in dom
    linked = chromium(tmp_path, page, "--dump-dom", fragment="#claim-1")  # the board's link to a claim opens it
    assert re.findall(r'<details class="claim" id="(claim-\d)" open="">', linked) == ["claim-1"]
    assert int(seen["data-images-ok"]) == int(seen["data-images-total"]) == html.count("<img ")
    start = html.index("base64,") + len("base64,")
    broken = html[:start] + "AAAA" + html[start + 4:]  # a figure whose signature is gone
    broken = broken.replace("</body>", '<script>notAFunction()</script><table><tr><td style="white-space:nowrap">'
                                       + "wide " * 400 + "</td></tr></table></body>")
    bad = tmp_path / "broken.html"
    bad.write_text(broken)
    seen = body_attributes(chromium(tmp_path, bad, "--dump-dom"))
    assert int(seen["data-images-ok"]) == int(seen["data-images-total"]) - 1
    assert "notAFunction" in seen["data-js-errors"]
    assert int(seen["data-scroll-width"]) > int(seen["data-client-width"]) and "TABLE" in seen["data-overflowing"]


def test_h1s_page_shows_the_2x2_the_dose_response_and_claimed_beside_measured(tmp_path):
    """The five H1 modules' page (tests/test_factorial.py's session: real run configs, judged cases)."""
    from test_factorial import _doc
    page = report.render(write_doc(tmp_path / "20261201-010000", _doc()))
    dom = chromium(tmp_path, page, "--dump-dom")
    seen = body_attributes(dom)
    assert seen["data-js-errors"] == "" and int(seen["data-images-total"]) == int(seen["data-images-ok"]) > 0
    assert "H1's 2x2: normalization × rounding" in dom and "Dose response" in dom
    row = re.search(r'<tr><td rowspan="1"><b title="[^"]*">quantized_input</b>.*?</tr>', dom).group(0)
    assert '<span title="research post, first experiment (Figure 1; no size given)">better →' in row
