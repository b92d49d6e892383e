"""results.json -> index.html: one self-contained page (inline CSS, figures as base64 PNG, no network).

    python -m harness.report reports/<timestamp>     rebuilds the page from results.json alone

Every string taken from results.json is HTML-escaped on its way to the page: cells go through `cell`,
and only markup built here is wrapped in `Markup`. A tiny inline script records, on load, how many
figures decoded and any JavaScript error as attributes of <body> (the browser test reads them).

Over 300 lines, on purpose: the page's sections read top to bottom in the order they appear,
and splitting them across modules would make a reader jump to follow one page.
"""
from __future__ import annotations

import argparse
import base64
import html
import math
import re
import sys
from pathlib import Path

from . import controls, factorial, figures
from ..spec import results
from ..judge import stats
from ..cache import store
from ..spec.case import Case
from ..run.attacks import eps_key
from ..spec.config import STRONGEST
from ..judge.verdict import VERDICTS
from .assets import CHECK_JS, CSS


class Markup(str):
    """HTML built by this module; any other str is escaped."""


def esc(x) -> str:
    return html.escape(str(x), quote=True)


def num(x, spec: str = ".3g") -> str:
    """A number for a table; a dash for missing or NaN (an untestable case has no p)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return str(x) if isinstance(x, bool) or not isinstance(x, (int, float)) else format(x, spec)


def cell(x) -> str:
    if isinstance(x, Markup):
        return x
    if isinstance(x, float):
        return esc(num(x, ".4g"))
    if isinstance(x, list):
        return esc(", ".join(num(v, ".4g") if isinstance(v, float) else str(v) for v in x))
    return esc("—" if x is None else x)


def table(headers: list | None, rows: list[list], cls: str = "") -> Markup:
    head = "<thead><tr>" + "".join(f"<th>{cell(h)}</th>" for h in headers) + "</tr></thead>" if headers else ""
    body = "".join("<tr>" + "".join(f"<td>{cell(c)}</td>" for c in row) + "</tr>" for row in rows)
    return Markup(f'<table class="{esc(cls)}">{head}<tbody>{body}</tbody></table>')


def img(png: bytes, alt: str) -> Markup:
    return Markup(f'<img src="data:image/png;base64,{base64.b64encode(png).decode()}" alt="{esc(alt)}">')


def flat(obj, prefix: str = "") -> list[tuple[str, object]]:
    """Nested dicts as (dotted path, leaf) rows, so new fields show up without code changes."""
    if isinstance(obj, dict) and obj:
        return [row for k, v in obj.items() for row in flat(v, f"{prefix}.{k}" if prefix else str(k))]
    return [(prefix, obj)]


# ---- the page -----------------------------------------------------------------------------------------
def render(folder) -> Path:
    """Read folder/results.json (validated) and write folder/index.html; returns its path."""
    folder = Path(folder)
    doc = results.load(folder)
    folder = folder if folder.is_dir() else folder.parent
    path = folder / "index.html"
    store.atomic_write(path, page(doc, folder.name).encode(), "--reports-dir")
    return path


def page(doc: dict, title: str) -> str:
    cases = sorted((Case.from_dict(c) for c in doc["cases"]), key=lambda c: (c.module, c.dataset, c.eps))
    stopped = (f'<p class="warn">{len(doc["errors"])} test(s) stopped before reaching a verdict: see '
               f'<a href="#errors">Errors</a>.</p>' if doc["errors"] else "")
    parts = [header(doc, title), controls.section(cases, doc["runs"]), summary(cases), stopped, guide(doc)]
    parts.append(factorial_section(cases, doc["runs"]))
    parts.append(dose_section(cases))
    parts += [case_section(i, c, doc["runs"]) for i, c in enumerate(cases)]
    parts += [drift_section(doc), problems_section(doc), config_section(doc["session"])]
    body = "\n".join(parts)
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<title>advhyp report {esc(title)}</title><style>{CSS}</style><script>{CHECK_JS}</script></head>\n'
            f'<body data-figures="{body.count("<img ")}">\n{body}\n</body></html>\n')


def header(doc: dict, title: str) -> str:
    s = doc["session"]
    controller = s.get("controller") if isinstance(s.get("controller"), dict) else {}
    banner = ('<div class="partial">PARTIAL: this session was interrupted (or is still running); '
              'the cases below are those that finished.</div>' if doc["partial"] else "")
    rows = [["profile", s.get("profile")], ["started", s.get("started")], ["finished", s.get("finished")],
            ["exit status", s.get("exit_status")], ["alpha", s.get("alpha")],
            ["git revision", controller.get("git")]]
    return f"<h1>advhyp report {esc(title)}</h1>{banner}{table(None, rows, 'meta')}"


def verdict_cell(case: Case) -> Markup:
    v = case.verdict
    cls = re.sub(r"\W+", "-", v).strip("-") if v in VERDICTS else "unknown"
    notes = []
    if not case.profile_decides:
        notes.append(f"not decided ({case.profile})")
    elif not case.decides:
        notes.append("reported only")
    if case.expect == "null":
        notes.append("control: passes when inconclusive, with every run finished")
    if case.known:
        notes.append(f"recorded: {case.known['verdict']} ({case.known['evidence']})")
    note = "".join(f' <span class="note">{esc(n)}</span>' for n in notes)
    return Markup(f'<span class="verdict {cls}">{esc(v)}</span>{note}')


def effect_text(case: Case) -> str:
    t = case.test
    if case.kind == "trend":  # the slope along the dose, signed as measured (not in the claimed direction)
        tr = case.trend
        lo, hi = tr.get("ci") or (None, None)
        return (f"slope per {tr.get('unit', '')}: {num(tr.get('slope'), '+.4g')} [{num(lo, '+.4g')}, "
                f"{num(hi, '+.4g')}], claimed {tr.get('direction')}")
    return (f"{case.better} − {case.worse}: {num(t.effect, '+.4f')} "
            f"[{num(t.ci[0], '+.4f')}, {num(t.ci[1], '+.4f')}]")


def case_name(case: Case) -> str:
    return f"{case.dataset}, eps {num(case.eps, 'g')}/255"


def summary(cases: list[Case]) -> str:
    if not cases:
        return "<h2>Summary</h2><p>No case finished.</p>"
    rows = []
    for i, c in enumerate(cases):
        t = c.test
        rows.append([c.module, Markup(f'<a href="#case-{i}">{esc(case_name(c))}</a>'),
                     verdict_cell(c), effect_text(c), claimed_text(c), num(t.p_greater), num(t.p_adj_greater),
                     f"{num(t.p_perm)} (min {num(t.p_min)})",
                     " / ".join(str(n) for n in t.n), c.profile, c.dataset_used, c.outcome])
    headers = ["hypothesis", "case", "verdict", "effect on the primary score [95% CI]", "claimed (source) → reading",
               "p (Welch)", "p (Holm)", "p (permutation)", "seeds per variant", "profile", "dataset used", "pytest"]
    return f"<h2>Summary</h2>{table(headers, rows, 'summary')}"


def claimed_text(case: Case) -> str:
    c = case.claimed
    if not c:
        return "—"
    size = f" by {num(c['size'], '+.4f')}" if c.get("size") is not None else " (no size given)"
    return f"{c['direction']}{size} ({c['source']}) → {c['reading']}"


def guide(doc: dict) -> str:
    alpha = doc["session"].get("alpha", "?")
    scores = "".join(f"<dt>{esc(n)}{' (the default primary score)' if n == stats.PRIMARY else ''}</dt>"
                     f"<dd>{esc(d)}</dd>" for n, d in stats.SCORES.items())
    verdicts = "".join(f"<dt>{esc(v)}</dt><dd>{esc(d)}</dd>" for v, d in VERDICTS.items())
    return (f"<h2>How to read it</h2><p>Each run is scored per seed on its per-epoch (clean accuracy, adversarial "
            f"accuracy) points; adversarial accuracy is the <code>{STRONGEST}</code> attack (per example, the "
            f"worst case over the attacks of that epoch).</p><dl>{scores}</dl>"
            f"<p>Test: Welch's one-sided t-test on the per-seed primary score (better &gt; worse) decides. A "
            f"one-sided permutation test over seed relabelings is shown beside it, with the smallest p its seed "
            f"count allows. Deciding cases (the claim's deciding eps) are Holm-adjusted across the claim's "
            f"datasets; other eps are reported only. Verdicts at alpha = {esc(alpha)}:</p><dl>{verdicts}</dl>"
            f"<p>A deciding case fails whatever its verdict when a run failed or the comparison could not be made "
            f"(listed under problems), and a supported claim fails when a final-checkpoint masking check failed. "
            f"A null control passes when inconclusive on complete evidence. A claim with a recorded verdict is an "
            f"expected outcome (xfail) while that verdict holds, and fails when it changes.</p>")


def case_runs(case: Case, runs: dict) -> dict[str, list[dict]]:
    """variant -> its runs, the better arm first, then the worse one, then any other (a trend: by dose)."""
    order = list(case.run_keys) if case.kind == "trend" else \
        sorted(case.run_keys, key=lambda v: (v != case.better, v != case.worse))
    return {v: [runs[k] for k in case.run_keys[v]] for v in order}


def case_section(i: int, case: Case, all_runs: dict) -> str:
    t, runs, ek = case.test, case_runs(case, all_runs), eps_key(case.eps)
    test_rows = [[k, v] for k, v in vars(t).items() if k not in ("effect", "ci")]
    problems = "".join(f"<li>{esc(p)}</li>" for p in case.failed_runs + case.problems + case.notes)
    parts = [f'<section class="case" id="case-{i}"><h2>{esc(case.module)}: {esc(case_name(case))}</h2>',
             f'<p class="statement">{esc(case.statement)}</p>',
             f"<p>{verdict_cell(case)} &nbsp; effect {esc(effect_text(case))} &nbsp; pytest: {esc(case.outcome)}"
             f" &nbsp; <code>{esc(case.nodeid)}</code></p>",
             f'<ul class="warn">{problems}</ul>' if problems else "",
             img(figures.case_figure(case, runs, ek), f"tradeoff and scores of {case.nodeid}"),
             img(figures.along_eps_figure(case), f"effect along eps of {case.nodeid}") if len(case.along_eps) > 1 else "",
             per_mode_table(case),
             diagnostics(case, runs),
             "<details><summary>test details and runs</summary>", table(["field", "value"], test_rows, "kv"),
             runs_table(runs, ek), "</details></section>"]
    return "\n".join(parts)


def per_mode_table(case: Case) -> str:
    """The decision under each attack mode: the post's protocol (off) beside the strongest attack."""
    per_mode = case.per_mode
    if not per_mode:
        return ""
    better, worse = case.better, case.worse

    def mean(xs):
        xs = [x for x in xs or [] if isinstance(x, (int, float)) and math.isfinite(x)]
        return sum(xs) / len(xs) if xs else None
    rows = [[m, num(r.get("effect"), "+.4f"), num(r.get("p_greater")), num(mean(r.get("scores", {}).get(better))),
             num(mean(r.get("scores", {}).get(worse)))] for m, r in per_mode.items()]
    sc = case.scores
    rows.append([Markup(f"<b>{STRONGEST}</b> (decides)"), num(case.test.effect, "+.4f"),
                 num(case.test.p_greater), num(mean(sc.get(better, {}).get(case.primary))),
                 num(mean(sc.get(worse, {}).get(case.primary)))])
    trend = case.kind == "trend"  # effect: the slope signed so that > 0 is the claimed direction
    headers = ["attack mode", "slope, claimed direction" if trend else "effect (primary)",
               f"p ({'trend' if trend else 'Welch'}, raw)", f"mean {case.primary} {better}",
               f"mean {case.primary} {worse}"]
    return f"<h3>Per attack mode</h3>{table(headers, rows)}"


def diagnostics(case: Case, runs: dict[str, list[dict]]) -> str:
    """Final-checkpoint attacks, masking checks and transfer checks, whatever fields the runs carry; empty
    when none. They were computed at the claim's deciding eps, so they show with that case only."""
    finals = [(v, r["label"] if which == "final" else f"{r['label']} @ epoch {r[which].get('epoch')} (best adv)",
               r[which]) for v, rs in runs.items() for r in rs for which in ("final", "best")
              if isinstance(r.get(which), dict) and r[which].get("eps") in (None, case.eps)]
    transfers = [t for t in case.transfer if t.get("eps") in (None, case.eps)]
    if not (finals or transfers):
        return ""
    # The failed checks, as the runner named them for the test's message; then other problems.
    warnings = list(case.masking_warnings)
    not_scalars = ("steps_curve", "eps_curve", "checks", "warnings", "epoch")  # drawn, counted, listed, labelled
    leaves = [dict(flat({k: x for k, x in f.items() if k not in not_scalars})) for _, _, f in finals]
    columns = list(dict.fromkeys(name for run in leaves for name in run))
    rows = []
    for (v, label, f), values in zip(finals, leaves):
        checks = f.get("checks") if isinstance(f.get("checks"), dict) else {}
        ok = sum(1 for c in checks.values() if isinstance(c, dict) and c.get("ok"))
        rows.append([v, label, *[values.get(c) for c in columns], f"{ok}/{len(checks)} ok" if checks else None])
        warnings += [f"{label}: {w}" for w in f.get("warnings") or []]
    parts = ["<h3>Final-checkpoint diagnostics (and the epoch of best adversarial accuracy)</h3>"]
    if warnings:
        parts.append('<ul class="warn">' + "".join(f"<li>{esc(w)}</li>" for w in warnings) + "</ul>")
    if finals:
        parts.append(table(["variant", "run", *columns, "checks"], rows, "diag"))
        png = figures.diagnostics_figure(finals)
        if png:
            parts.append(img(png, f"final-checkpoint curves of {case.nodeid}"))
    if transfers:
        rows = [[t.get("direction"), t.get("source"), t.get("target"), t.get("transfer_acc"), t.get("whitebox_acc"),
                 "ok" if t.get("ok") else "FAILED", t.get("detail")] for t in transfers]
        parts.append("<h4>Transfer: PGD crafted on one arm, scored on the other (both ways)</h4>" + table(
            ["direction", "source", "target", "transfer acc", "white-box acc", "check", "detail"], rows, "diag"))
    return "\n".join(parts)


def runs_table(runs: dict[str, list[dict]], ek: str) -> str:
    rows = []
    for v, rs in runs.items():
        for r in rs:
            last = r["records"][-1] if r["records"] else {}
            adv = last.get("adv", {}).get(ek, {}).get(STRONGEST) if isinstance(last.get("adv"), dict) else None
            rows.append([v, r["label"], r["key"], r["status"], r.get("dataset_used"), len(r["records"]),
                         last.get("clean"), adv, r.get("train_wall_seconds"), r.get("error")])
    return table(["variant", "run", "key", "status", "dataset used", "epochs", "last clean", f"last adv ({STRONGEST})",
                  "train seconds", "error"], rows, "runs")


def drift_section(doc: dict) -> str:
    """Against --baseline: changed verdicts, effects whose CIs no longer overlap, runs beyond their seed spread."""
    d = doc.get("drift")
    if not isinstance(d, dict):
        return ""
    b = d.get("baseline") or {}
    where = lambda x: f"{x.get('module')} {x.get('dataset')} eps {num(x.get('eps'), 'g')}"  # noqa: E731
    rows = ([["verdict changed", where(x), x.get("baseline"), x.get("current")] for x in d.get("verdict_changes", [])]
            + [["effect moved (CIs disjoint)", where(x), effect_text_of(x.get("baseline")), effect_text_of(x.get("current"))]
               for x in d.get("effect_shifts", [])]
            + [[f"final {x.get('metric')} of {x.get('arm')} beyond its seed spread", where(x),
                num((x.get("baseline") or {}).get("mean")), num((x.get("current") or {}).get("mean"))]
               for x in d.get("run_shifts", [])])
    head = (f"<h2 id=\"drift\">Drift against the baseline</h2><p>baseline: {esc(b.get('started'))}, git "
            f"{esc(b.get('git'))}, {esc(b.get('profile'))} profile. "
            f"{'<b>A verdict changed: the session fails.</b>' if d.get('changed') else 'No verdict changed.'}</p>")
    return head + (table(["what", "case", "baseline", "now"], rows) if rows else "<p>Nothing moved.</p>")


def effect_text_of(x) -> str:
    x = x if isinstance(x, dict) else {}
    ci = x.get("ci") or [None, None]
    return f"{num(x.get('effect'), '+.4f')} [{num(ci[0], '+.4f')}, {num(ci[1], '+.4f')}]"


def factorial_section(cases: list[Case], runs: dict) -> str:
    """H1's 2x2 (normalization x rounding) per dataset, with its effects; empty when no session's runs fill
    all four cells (harness.report.factorial)."""
    parts = []
    for t in factorial.tables(cases, runs):
        def cell_text(name):
            c = t["cells"][name]
            missing = f"; not finished: {', '.join(c['not_finished'])}" if c["not_finished"] else ""
            return f"{name}: {num(c['mean'], '.4f')} ± {num(c['sd'], '.4f')} (n = {c['n']}){missing}"
        grid = [[label, *(cell_text(factorial.LAYOUT[(normalized, rounded)]) for rounded in (False, True))]
                for label, normalized in (("normalized", True), ("unnormalized [0, 1]", False))]
        effects = [[e["name"], num(e["estimate"], "+.4f"), f"[{num(e['ci'][0], '+.4f')}, {num(e['ci'][1], '+.4f')}]",
                    e["what"]] for e in t["effects"]]
        size = f" at {t['input_size']} px" if t["input_size"] else ""
        parts += [f"<h3>{esc(t['dataset'])}: {esc(t['model'])}{esc(size)}, {esc(t['epochs'])} epochs, eps "
                  f"{num(t['eps'], 'g')}/255, mean {esc(t['score'])} ± sd over seeds</h3>",
                  table(["", "float", "rounded (8-bit)"], grid, "factorial"),
                  table(["effect", "estimate", "95% CI", "what it isolates"], effects, "factorial")]
    if not parts:
        return ""
    return ("<h2>H1's 2x2: normalization × rounding</h2><p>Each cell: the per-seed primary score on the strongest "
            "attack at the deciding eps, over the runs the H1 hypotheses share. Effects are contrasts of the cell "
            "means; the intervals treat the cells as independent samples (df = the smallest cell's seeds − 1). "
            "Descriptive: the H1 hypotheses below decide.</p>" + "".join(parts))


def dose_section(cases: list[Case]) -> str:
    """Each dose-response claim at its deciding eps: the score and the clean cost along the dose."""
    parts = []
    for c in (c for c in cases if c.kind == "trend" and c.eps == c.deciding_eps):
        tr, cost = c.trend, c.trend.get("clean_cost", {})
        rows = [[n, k, m, cm] for n, k, m, cm in zip(tr.get("names", []), tr.get("n", []), tr.get("means", []),
                                                     cost.get("means", []))]
        parts += [f"<h3>{esc(c.module)}: {esc(c.dataset)}, eps {num(c.eps, 'g')}/255</h3>",
                  f"<p>{verdict_cell(c)} &nbsp; {esc(effect_text(c))}; one-sided p (claimed direction) "
                  f"{num(c.test.p_greater)}, Holm-adjusted {num(c.test.p_adj_greater)}; clean cost: slope of the "
                  f"final clean accuracy {num(cost.get('slope'), '+.4g')} per {esc(tr.get('unit', ''))}</p>",
                  table(["level", "seeds", f"mean {c.primary}", "mean final clean accuracy"], rows, "dose"),
                  img(figures.dose_figure(c), f"dose response of {c.nodeid}")]
    if not parts:
        return ""
    return ("<h2>Dose response</h2><p>One linear trend test of the per-seed score along the dose decides "
            "(slope from the level means, standard error from each level's own variance, df = the smallest "
            "level's seeds − 1): supported when the Holm-adjusted one-sided p in the claimed direction ≤ alpha, "
            "contradicted when the opposite one is. The clean cost is shown, not tested.</p>" + "".join(parts))


def problems_section(doc: dict) -> str:
    errors = "".join(f"<h3>{esc(e.get('nodeid', '?'))}</h3><pre>{esc(e.get('message', ''))}</pre>"
                     for e in doc["errors"] if isinstance(e, dict))
    warnings = "".join(f"<li>{esc(w)}</li>" for w in doc["warnings"])
    return ((f'<h2 id="errors">Errors</h2><div class="errors">{errors}</div>' if errors else "")
            + (f'<h2>Warnings</h2><ul class="warn">{warnings}</ul>' if warnings else ""))


def config_section(session: dict) -> str:
    rows = [list(r) for r in flat(session)]
    return f"<h2>Configuration and environment</h2>{table(['setting', 'value'], rows, 'kv')}"


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
