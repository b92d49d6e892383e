"""results.json -> index.html: one self-contained page (inline CSS, figures embedded, no network).

    python -m harness.report reports/<timestamp>     rebuilds the page from results.json alone

The page in reading order: the verdict board (one row per claim, harness.report.board), the controls'
calibration table, the warnings, the declared designs (factorial tables, dose responses), each claim in
detail behind a fold (harness.report.claims), drift, errors, how to read it, the configuration. A tiny
inline script records on load what the browser test checks (figures decoded, script errors, the page's
width and where the board ends) as attributes of <body>, and opens the fold a link points to.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import board, claims, controls, factorial, figures
from .assets import CHECK_JS, CSS
from .markup import Markup, esc, flat, fold, img, interval, num, table
from ..cache import store
from ..judge import stats
from ..judge.verdict import VERDICTS
from ..spec import results
from ..spec.config import STRONGEST


def render(folder) -> Path:
    """Read folder/results.json (validated) and write folder/index.html; returns its path."""
    folder = Path(folder)
    doc = results.load(folder)
    folder = folder if folder.is_dir() else folder.parent
    path = folder / "index.html"
    store.atomic_write(path, page(doc, folder.name).encode(), "--reports-dir")
    return path


def page(doc: results.Results, title: str) -> str:
    groups = claims.by_claim(doc.cases)
    parts = [header(doc, title), board.board(groups, doc.runs), controls.section(groups, doc.runs), board.warnings(doc, groups),
             designs(doc, groups), "<h2>Claims in detail</h2>" if groups else "",
             *(claims.section(i, g, doc.runs) for i, g in enumerate(groups)),
             drift_section(doc), errors_section(doc), guide(doc), config_section(doc.session)]
    body = "\n".join(parts)
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<title>advhyp report {esc(title)}</title><style>{CSS}</style><script>{CHECK_JS}</script></head>\n'
            f'<body data-figures="{body.count("<img ")}">\n{body}\n</body></html>\n')


def header(doc: results.Results, title: str) -> str:
    s = doc.session
    controller = s.get("controller") if isinstance(s.get("controller"), dict) else {}
    banner = ('<div class="partial">PARTIAL: this session was interrupted (or is still running); '
              'the cases below are those that finished.</div>' if doc.partial else "")
    meta = [("profile", s.get("profile")), ("started", s.get("started")), ("finished", s.get("finished")),
            ("exit status", s.get("exit_status")), ("alpha", s.get("alpha")), ("git", controller.get("git"))]
    line = " · ".join(f"{name} <b>{esc(num(value))}</b>" for name, value in meta)
    if any(not c.profile_decides for c in doc.cases):  # said once here, not on every verdict
        line += f'<br><b>The {esc(s.get("profile"))} profile computes every verdict and decides none</b> (tests skip).'
    return f'<h1>advhyp report {esc(title)}</h1>{banner}<p class="meta">{line}</p>'


def designs(doc: results.Results, groups: list) -> str:
    """The factorial designs the hypotheses declare, then each dose response at its deciding eps."""
    return "".join(factorial_table(t) for t in factorial.tables(doc.designs, doc.cases, doc.runs)) + "".join(
        dose_section(claims.deciding(g)) for g in groups if claims.deciding(g).kind == "trend")


def factorial_table(t: dict) -> str:
    """One declared design on one dataset: the cell means as a grid (rows: the first factor's levels, columns:
    the others'), and its contrasts."""
    design = t["design"]
    first, *others = design.factors.values()
    columns = [()]
    for levels in others:
        columns = [(*c, v) for c in columns for v in levels]

    def text(name):
        c = t["cells"][name]
        missing = f"; not finished: {', '.join(c['not_finished'])}" if c["not_finished"] else ""
        return f"{name}: {num(c['mean'], '.4f')} ± {num(c['sd'], '.4f')} (n = {c['n']}){missing}"
    grid = [[row, *(text(design.cell_at((row, *col))) for col in columns)] for row in first]
    effects = [[e["name"], num(e["estimate"], "+.4f"), f"[{num(e['ci'][0], '+.4f')}, {num(e['ci'][1], '+.4f')}]",
                e["what"]] for e in t["effects"]]
    size = f" at {t['input_size']} px" if t["input_size"] else ""
    return (f"<h2>{esc(design.title)}</h2><p>{esc(t['dataset'])}: {esc(t['model'])}{esc(size)}, {esc(t['epochs'])} "
            f"epochs, eps {num(t['eps'], 'g')}/255. A cell: mean {esc(t['score'])} ± sd over seeds (strongest attack) "
            f"of the runs {esc(', '.join(design.modules))} share; the intervals treat the cells as independent (df = "
            f"the smallest cell's seeds − 1). Descriptive: the modules decide.</p>"
            + table(["", *(" · ".join(col) for col in columns)], grid, "factorial")
            + table(["contrast", "estimate", "95% CI", "what it isolates"], effects, "factorial"))


def dose_section(c) -> str:
    """A dose-response claim at its deciding eps: the score and the clean cost along the dose, one linear trend
    test deciding (slope from the level means, standard error from each level's own variance)."""
    tr, cost = c.trend, c.trend.clean_cost
    rows = [[n, k, m, cm] for n, k, m, cm in zip(tr.names, c.test.n, tr.means, cost.means)]
    return (f"<h2>Dose response: {esc(c.module)} on {esc(c.dataset)}, eps {num(c.eps, 'g')}/255</h2>"
            f"<p>{claims.verdict_cell(c)} &nbsp; {esc(claims.effect_text(c))}; one-sided p (claimed direction) "
            f"{num(c.test.p_greater)}, Holm-adjusted {num(c.test.p_adj_greater)}; clean cost (shown, not tested): "
            f"slope of the final clean accuracy {num(cost.slope, '+.4g')} per {esc(tr.unit)}</p>"
            + table(["level", "seeds", f"mean {c.primary}", "mean final clean accuracy"], rows, "dose")
            + img(figures.dose_figure(c), f"dose response of {c.nodeid}"))


def drift_section(doc: results.Results) -> str:
    """Against --baseline: changed verdicts, effects whose CIs no longer overlap, runs beyond their seed spread."""
    d = doc.drift
    if d is None:
        return ""
    where = lambda x: f"{x.module} {x.dataset} eps {num(x.eps, 'g')}"  # noqa: E731
    rows = ([["verdict changed", where(x), x.baseline, x.current] for x in d.verdict_changes]
            + [["effect moved (CIs disjoint)", where(x), interval(x.baseline.effect, x.baseline.ci),
                interval(x.current.effect, x.current.ci)] for x in d.effect_shifts]
            + [[f"final {x.metric} of {x.arm} beyond its seed spread", where(x), num(x.baseline.mean),
                num(x.current.mean)] for x in d.run_shifts])
    b = d.baseline
    head = (f"<h2 id=\"drift\">Drift against the baseline</h2><p>baseline: {esc(b.started)}, git "
            f"{esc(b.git)}, {esc(b.profile)} profile. "
            f"{'<b>A verdict changed: the session fails.</b>' if d.changed else 'No verdict changed.'}</p>")
    return head + (table(["what", "case", "baseline", "now"], rows) if rows else "<p>Nothing moved.</p>")


def errors_section(doc: results.Results) -> str:
    errors = "".join(f"<h3>{esc(e.nodeid)}</h3><pre>{esc(e.message)}</pre>" for e in doc.errors)
    return f'<h2 id="errors">Errors</h2><div class="errors">{errors}</div>' if errors else ""


def guide(doc: results.Results) -> str:
    """How a verdict is reached, in short (README.md, "How a verdict is reached", has it in full)."""
    scores = "".join(f"<dt>{esc(n)}{' (primary: decides)' if n == stats.PRIMARY else ''}</dt><dd>{esc(d)}</dd>"
                     for n, d in stats.SCORES.items())
    verdicts = "".join(f"<dt>{esc(v)}</dt><dd>{esc(d)}</dd>" for v, d in VERDICTS.items())
    return fold("<b>How to read this page</b>", Markup(
        f"<p>Each run is scored per seed on its per-epoch (clean accuracy, adversarial accuracy) points; the "
        f"adversarial accuracy is the <code>{STRONGEST}</code> attack (per example, the worst case over the "
        f"epoch's attacks). The claim's statistic on the per-seed primary score decides, one-sided in the claimed "
        f"direction (Welch's difference for a pair, the slope for a dose), Holm-adjusted across the claim's "
        f"datasets at its deciding eps, at each look's Pocock level for alpha {esc(doc.session.get('alpha', '?'))}"
        f"; other eps are reported only. A claim fails when a run failed, a masking check failed on a supported "
        f"claim, or it could not be tested; a recorded verdict is expected (xfail) while it holds.</p>"
        f"<dl>{scores}</dl><dl>{verdicts}</dl>"), "guide")


def config_section(session: dict) -> str:
    return fold("<b>Configuration and environment</b>", table(["setting", "value"], [list(r) for r in flat(session)],
                                                               "kv"), "config")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.report",
                                     description="Rebuild a session's index.html from its results.json alone.")
    parser.add_argument("folder", help="a session folder, reports/<timestamp>, holding results.json")
    args = parser.parse_args(argv)
    try:
        print(render(args.folder))
    except results.ResultsError as e:
        print(f"harness.report: {e}", file=sys.stderr)
        return 2
    except store.StoreError as e:
        print(f"harness.report: {e.strerror}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
