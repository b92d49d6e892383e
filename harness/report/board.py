"""The verdict board: the page's first screen, one row per claim and dataset (not per eps).

A row: the claim (its arms in the colours of its figures), the verdict at the deciding eps, the effect with
its 95% CI, what the source claimed beside what was measured, the checks (masking, equal attack effort, the
protocol), the other eps as a strip of small badges, and a tradeoff thumbnail. Controls have their own
table (harness.report.controls); the warnings follow both.
"""
from __future__ import annotations

from . import figures
from .claims import case_runs, deciding, effect, effect_name, effect_text, finals, notes
from .controls import is_control
from .markup import Markup, badge, cell, esc, img, num, verdict_class
from ..spec import results
from ..spec.budget import gradient_modes
from ..spec.case import Case
from ..spec.records import Run


def board(groups: list[list[Case]], runs: dict[str, Run]) -> str:
    """The board: a block of rows per claim (module), one row per dataset, controls left out."""
    by_module: dict[str, list[tuple[int, list[Case]]]] = {}
    for i, g in enumerate(groups):
        if not is_control(g[0]):
            by_module.setdefault(g[0].module, []).append((i, g))
    if not by_module:
        return '<section id="board"><h2>Verdicts</h2><p>No claim finished.</p></section>'
    body = ""
    for blocks in by_module.values():
        for n, (i, g) in enumerate(blocks):
            claim = f'<td rowspan="{len(blocks)}">{claim_cell(g, runs)}</td>' if n == 0 else ""
            body += f"<tr>{claim}" + "".join(f"<td>{cell(c)}</td>" for c in row(i, g, runs)) + "</tr>"
    head = "".join(f"<th>{h}</th>" for h in ("claim", "data", "verdict (deciding eps)", "effect [95% CI]",
                                              "claimed → measured", "checks", "all eps", "tradeoff"))
    return (f'<section id="board"><h2>Verdicts</h2><table class="board"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></section>")


def claim_cell(group: list[Case], all_runs: dict[str, Run]) -> Markup:
    """The claim's name (its statement as the tooltip) and its arms, in the colours of its figures."""
    d = deciding(group)
    colours = figures.colors(case_runs(d, all_runs))
    arms = (" → " if d.kind == "trend" else " vs ").join(f'<span style="color:{c}">{esc(v)}</span>'
                                                        for v, c in colours.items())
    return Markup(f'<b title="{esc(d.statement)}">{esc(d.module.removeprefix("test_"))}</b>'
                  f'<div class="sub">{arms}</div>')


def row(i: int, group: list[Case], all_runs: dict[str, Run]) -> list:
    d = deciding(group)
    runs = case_runs(d, all_runs)
    data = Markup(f'<a href="#claim-{i}">{esc(d.dataset)}</a>')
    short = ["reported only"] * (d.profile_decides and not d.decides) + ["reduced"] * bool(d.reduced) + (
        [f"recorded {d.known.verdict}{' (stale)' if d.known_stale else ''}"] if d.known else [])  # in full: tooltip
    if d.eps != d.deciding_eps:
        short.append(f"eps {num(d.deciding_eps, 'g')} not run")
    verdict = Markup(f'{badge(d.verdict)}<div class="sub nowrap" title="{esc("; ".join(notes(d)))}">'
                     f'{esc("; ".join([f"pytest: {d.outcome}", *short]))}</div>')
    measured = Markup(f'<span class="nowrap">{esc(effect(d))}</span>'
                      f'<div class="sub">{esc(effect_name(d))}; Holm p {num(d.test.p_adj_greater, ".2g")}</div>')
    claimed = Markup(f'<span title="{esc(d.claimed.source)}">{esc(d.claimed.direction)}'
                     f'{esc("" if d.claimed.size is None else f" by {d.claimed.size:+.4f}")} → {esc(d.reading)}'
                     f'</span>') if d.claimed else "—"
    thumb = img(figures.thumbnail(runs, d.eps), f"tradeoff at eps {num(d.eps, 'g')}/255: mean per epoch of each arm",
                "svg+xml")
    return [data, verdict, measured, claimed, checks(d, runs), strip(group, d), thumb]


def checks(case: Case, runs: dict[str, list[Run]]) -> Markup:
    """Masking, equal attack effort, protocol and failed runs, one short line each, coloured by state."""
    evaluated = [c.ok for _, _, f in finals(case, runs) for c in f.checks.values()]
    evaluated += [t.ok for t in case.transfer if t.eps == case.eps]
    if case.masking_warnings:
        masking = ("bad", f"masking: {len(case.masking_warnings)} of {len(evaluated)} FAILED")
    elif evaluated:
        masking = ("ok", f"masking {sum(evaluated)}/{len(evaluated)} ok")
    else:
        masking = ("note" if case.expect == "null" else "warn", "no masking check ran")
    effort = {v: rs[0].config.attack.restarts * len(gradient_modes(rs[0].config.attack.modes))
              for v, rs in runs.items() if rs}
    parity = ("ok", f"equal effort: {next(iter(effort.values()))} attacks/example") if len(set(effort.values())) == 1 \
        else ("bad", "UNEQUAL effort: " + ", ".join(f"{v} {n}" for v, n in effort.items()))
    protocol = [("warn", f"reduced protocol ({len(case.reduced)})")] if case.reduced else \
        [("ok", "full protocol")] if case.profile_decides else []  # an undeciding profile: said once, above
    failed = [("bad", f"{len(case.failed_runs)} run(s) failed")] if case.failed_runs else []
    tip = "; ".join(case.reduced + case.masking_warnings + case.failed_runs)
    first, second = (" · ".join(f'<span class="check {state}">{esc(text)}</span>' for state, text in line)
                     for line in ([masking, *protocol, *failed], [parity]))
    return Markup(f'<div title="{esc(tip)}">{first}<div>{second}</div></div>')


def strip(group: list[Case], d: Case) -> Markup:
    """Every eps as a small badge coloured by its verdict, the deciding one outlined; the verdict and the
    effect in its tooltip."""
    chips = [f'<span class="chip {verdict_class(c.verdict)}{" deciding" if c is d else ""}" '
             f'title="eps {num(c.eps, "g")}/255: {esc(c.verdict)}, {esc(effect_text(c))}">{num(c.eps, "g")}</span>'
             for c in group]
    return Markup("".join(chips))


def warnings(doc: results.Results, groups: list[list[Case]]) -> str:
    """What a reader must know before trusting the board: tests that stopped, failed runs, data read in place
    of a claim's, quarantined or skipped files, a changed verdict against the baseline."""
    items = []
    if doc.errors:
        items.append(Markup(f'{len(doc.errors)} test(s) stopped before reaching a verdict: see '
                            f'<a href="#errors">Errors</a>'))
    failed = {k for g in groups for keys in g[0].run_keys.values() for k in keys if doc.runs[k].status != "done"}
    if failed:
        items.append(f"{len(failed)} run(s) failed or are missing: their claims fail (see each claim below)")
    read = dict.fromkeys((c.dataset, c.dataset_used) for g in groups for c in g if c.dataset_used != c.dataset)
    items += [f"{name}: the runs read {used}, bound in its place" for name, used in read]
    items += list(dict.fromkeys(n for g in groups for c in g for n in c.notes)) + doc.warnings
    if doc.drift and doc.drift.changed:
        items.append(Markup('a verdict changed against the baseline: see <a href="#drift">Drift</a>'))
    if not items:
        return "<h2>Warnings</h2><p>None: every test reached a verdict, every run finished on the claims' data.</p>"
    return '<h2 id="warnings">Warnings</h2><ul class="warn">' + "".join(
        f"<li>{x if isinstance(x, Markup) else esc(x)}</li>" for x in dict.fromkeys(items)) + "</ul>"
