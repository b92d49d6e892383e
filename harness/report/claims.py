"""The claims in detail: one folded section per claim and dataset, its eps inside (harness.report.page).

Each section: the claim, the verdict at every eps with its statistics, one figure for all its eps, the
attack modes side by side, the final-checkpoint checks at the deciding eps as one row per check (the
attacks on each run behind a fold, one table per arm, runs as columns), and, folded, the test record and
the runs. Also the helpers the board shares: a claim's cases and runs, its deciding case, its texts.
"""
from __future__ import annotations

from . import figures
from .markup import Markup, badge, esc, flat, fold, img, interval, num, table
from ..spec.case import Case
from ..spec.config import STRONGEST, eps_key
from ..spec.records import FinalEvaluation, Run


def by_claim(cases: list[Case]) -> list[list[Case]]:
    """The cases grouped by claim and dataset (module, dataset), each group's eps ascending."""
    groups: dict[tuple[str, str], list[Case]] = {}
    for c in sorted(cases, key=lambda c: (c.module, c.dataset, c.eps)):
        groups.setdefault((c.module, c.dataset), []).append(c)
    return list(groups.values())


def deciding(group: list[Case]) -> Case:
    """The case at the claim's deciding eps (the first case when the session did not run that eps)."""
    return next((c for c in group if c.eps == c.deciding_eps), group[0])


def case_runs(case: Case, runs: dict[str, Run]) -> dict[str, list[Run]]:
    """variant -> its runs, the better arm first, then the worse one, then any other (a trend: by dose)."""
    order = list(case.run_keys) if case.kind == "trend" else \
        sorted(case.run_keys, key=lambda v: (v != case.better, v != case.worse))
    return {v: [runs[k] for k in case.run_keys[v]] for v in order}


def finals(case: Case, runs: dict[str, list[Run]]) -> list[tuple[str, str, FinalEvaluation]]:
    """(arm, "arm s<seed>[ @ epoch e]", evaluation) of each run's final and best-epoch checks at the case's eps."""
    return [(v, f"{v} s{r.config.seed}" + ("" if f is r.final else f" @ epoch {f.epoch}"), f)
            for v, rs in runs.items() for r in rs for f in (r.final, r.best) if f is not None and f.eps == case.eps]


def notes(case: Case) -> list[str]:
    """What qualifies the verdict: reported only, reduced, a control, a recorded verdict."""
    out = ["reported only"] if case.profile_decides and not case.decides else []  # a whole profile: the header says
    if case.reduced:
        out.append(f"reduced: {'; '.join(case.reduced)}")
    if case.expect == "null":
        out.append("control: passes when inconclusive, with every run finished")
    if case.known:
        k = case.known
        out.append(f"recorded: {k.verdict} ({k.data}, code {k.code}, {k.card}, {k.date})"
                   + (f"; stale: {case.known_stale}" if case.known_stale else ""))
    return out


def verdict_cell(case: Case) -> Markup:
    return Markup(badge(case.verdict) + "".join(f' <span class="note">{esc(n)}</span>' for n in notes(case)))


def effect_name(case: Case) -> str:
    return f"slope per {case.trend.unit}" if case.trend else f"{case.better} − {case.worse}"


def effect(case: Case) -> str:
    """The effect on the primary score with its 95% CI; a trend: the slope as measured, per unit of dose."""
    return interval(case.trend.slope, case.trend.ci, "+.4g") if case.trend else interval(case.test.effect, case.test.ci)


def effect_text(case: Case) -> str:
    return f"{effect_name(case)}: {effect(case)}" + (f", claimed {case.trend.direction}" if case.trend else "")


def claimed_text(case: Case) -> str:
    c = case.claimed
    if not c:
        return "—"
    size = f" by {num(c.size, '+.4f')}" if c.size is not None else " (no size given)"
    return f"{c.direction}{size} ({c.source}) → {case.reading}"


# ---- one claim's section ----------------------------------------------------------------------------------
def section(i: int, group: list[Case], all_runs: dict[str, Run]) -> str:
    d = deciding(group)
    runs = case_runs(d, all_runs)
    issues = dict.fromkeys(x for c in group for x in c.failed_runs + c.problems + c.notes)  # once, not per eps
    rows = [[Markup(f"<b>{num(c.eps, 'g')}</b>" if c is d else num(c.eps, "g")), verdict_cell(c), effect_text(c),
             num(c.test.p_greater), num(c.test.p_adj_greater), f"{num(c.test.p_perm)} (min {num(c.test.p_min)})",
             " / ".join(map(str, c.test.n)), c.outcome] for c in group]
    body = [f"<p>claimed (source) → reading: {esc(claimed_text(d))}; the deciding eps is {num(d.deciding_eps, 'g')}"
            f"/255; seeds {esc(d.seeds)}, {d.epochs} epochs, {esc(d.profile)} profile, data read: "
            f"{esc(d.dataset_used)}</p>",
            f'<ul class="warn">{"".join(f"<li>{esc(x)}</li>" for x in issues)}</ul>' if issues else "",
            table(["eps (1/255)", "verdict", "effect on the primary score [95% CI]", "p (one-sided)", "p (Holm)",
                   "p (permutation)", "seeds per arm", "pytest"], rows, "eps"),
            img(figures.claim_figure(group, runs), f"tradeoff, scores and effect along eps: {d.module}, {d.dataset}"),
            per_mode_table(group), diagnostics(d, runs),
            fold("the test record at each eps, and the runs", record_table(group) + runs_table(runs, eps_key(d.eps)))]
    summary = (f'<b>{esc(d.module)}</b> · {esc(d.dataset)} · {badge(d.verdict)} '
               f'<span class="note">{esc(d.statement)}</span>')
    return Markup(f'<details class="claim" id="claim-{i}"><summary>{summary}</summary>{"".join(body)}</details>')


def per_mode_table(group: list[Case]) -> str:
    """The effect under each attack mode at each eps: the post's protocol (off) beside the strongest."""
    if not any(c.per_mode for c in group):
        return ""
    modes = list(dict.fromkeys(m for c in group for m in c.per_mode))
    rows = [[m, *(f"{num(c.per_mode[m].effect, '+.4f')} (p {num(c.per_mode[m].p_greater)})" if m in c.per_mode
                  else None for c in group)] for m in modes]
    rows.append([Markup(f"<b>{STRONGEST}</b> (decides)"),
                 *(f"{num(c.test.effect, '+.4f')} (p {num(c.test.p_greater)})" for c in group)])
    what = "slope, claimed direction" if group[0].kind == "trend" else "effect"
    return (f"<h3>Per attack mode: {what} on {esc(group[0].primary)} (one-sided p, raw)</h3>"
            + table(["attack mode", *(f"eps {num(c.eps, 'g')}" for c in group)], rows))


def diagnostics(case: Case, runs: dict[str, list[Run]]) -> str:
    """The final-checkpoint checks at the deciding eps, one row per check; the attacks per run behind a fold."""
    evaluated = finals(case, runs)
    transfers = [t for t in case.transfer if t.eps == case.eps]
    if not (evaluated or transfers):
        return ""
    outcomes: dict[str, list[tuple[str, bool, str]]] = {}  # check -> (run, ok, detail)
    for _, label, f in evaluated:
        for name, c in f.checks.items():
            outcomes.setdefault(name, []).append((label, c.ok, c.detail))
    for t in transfers:
        outcomes.setdefault(f"transfer {t.direction} ({t.weights} weights)", []).append(
            (f"{t.source} → {t.target}", t.ok, f"{t.detail} (transfer {num(t.transfer_acc)}, white-box "
                                              f"{num(t.whitebox_acc)})"))
    rows = [[name, f"{sum(ok for _, ok, _ in xs)}/{len(xs)}",
             Markup("<br>".join(f"<b>{esc(run)}</b>: {esc(detail)}" for run, ok, detail in xs if not ok)) or "—"]
            for name, xs in outcomes.items()]
    warnings = [f"{w} ({sum(w in f.warnings for _, _, f in evaluated)} of {len(evaluated)} evaluations)"
                for w in dict.fromkeys(w for _, _, f in evaluated for w in f.warnings)]  # a failed check: a row above
    parts = [f"<h3>Final-checkpoint checks at eps {num(case.eps, 'g')}/255 (final weights, and the epoch of best "
             f"adversarial accuracy)</h3>",
             f'<ul class="warn">{"".join(f"<li>{esc(w)}</li>" for w in warnings)}</ul>' if warnings else "",
             table(["check", "passed", "failed: run and detail"], rows, "checks")]
    if evaluated:
        png = figures.diagnostics_figure(evaluated)
        parts.append(fold("the attacks on each checkpoint", attacks_tables(evaluated)
                          + (img(png, f"final-checkpoint curves of {case.nodeid}") if png else "")))
    return "\n".join(parts)


def attacks_tables(evaluated: list[tuple[str, str, FinalEvaluation]]) -> str:
    """One table per arm: a row per measurement (new fields show up as rows), a column per checkpoint."""
    skip = ("steps_curve", "eps_curve", "checks", "warnings", "epoch")  # drawn, counted above, listed, labelled
    out = []
    for arm in dict.fromkeys(v for v, _, _ in evaluated):
        cols = [(label, dict(flat({k: x for k, x in vars(f).items() if k not in skip}))) for v, label, f in evaluated
                if v == arm]
        names = list(dict.fromkeys(n for _, values in cols for n in values))
        out.append(table([arm, *(label for label, _ in cols)], [[n, *(vs.get(n) for _, vs in cols)] for n in names],
                         "attacks"))
    return "".join(out)


def record_table(group: list[Case]) -> str:
    """The test's record at each eps (Evidence, and the equivalence test where the claim has a margin)."""
    records = [dict(flat({k: v for k, v in c.test.to_dict().items() if k not in ("effect", "ci")}))
               | (dict(flat(c.equivalence.to_dict(), "equivalence")) if c.equivalence else {}) for c in group]
    names = list(dict.fromkeys(n for r in records for n in r))
    return table(["field", *(f"eps {num(c.eps, 'g')}" for c in group)], [[n, *(r.get(n) for r in records)]
                                                                          for n in names], "kv")


def runs_table(runs: dict[str, list[Run]], ek: str) -> str:
    rows = [[v, r.label, r.key, r.status, r.dataset_used, len(r.records), r.records[-1].clean if r.records else None,
             r.records[-1].adv.get(ek, {}).get(STRONGEST) if r.records else None, r.train_wall_seconds, r.error]
            for v, rs in runs.items() for r in rs]
    return table(["variant", "run", "key", "status", "dataset used", "epochs", "last clean",
                  f"last adv ({STRONGEST})", "train seconds", "error"], rows, "runs")
