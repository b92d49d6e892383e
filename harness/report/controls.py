"""The calibration table below the board: how the suite did on its known-answer controls.

A control is a hypothesis module whose name contains `control` (`pytest hypotheses/ -k control` selects
them): a real effect it must support, a masked one it must never support and must name, and a null it must
find nothing in; a reported control (`decides=False`) has no known answer at its scale and is shown beside
its source's. One row per control and dataset at its deciding eps: the known answer (from the claim's
`expect`) and its source, the verdict, the effect with its 95% CI, the per-seed primary scores, what each
arm trained against beside the attack that scored it, and whether the answer was met.
"""
from __future__ import annotations

from .claims import deciding
from .markup import Markup, badge, esc, interval, num, table
from ..spec.case import Case
from ..spec.records import Run

KNOWN_ANSWERS = {  # Claim.expect -> the answer a control must give
    "better": "supported, every masking check passing",
    "masked": "never supported, and a masking check names the masking on the claimed-better arm",
    "null": "inconclusive (the arms differ in their seeds alone)",
    "equivalent": "equivalent within the claim's margin",
}
REPORTED = "none at this scale: reported beside its source (decides=False)"
MET = {"passed": "met", "failed": "MISSED", "skipped": "not decided here", "xfailed": "met (recorded verdict)"}
STATE = {"failed": "bad", "skipped": "note"}  # the check colours of harness.report.assets


def is_control(case: Case) -> bool:
    return "control" in case.module


def section(groups: list[list[Case]], runs: dict[str, Run]) -> str:
    """The calibration table of the controls among the claims (groups: harness.report.claims.by_claim),
    linked to their sections; empty when there are none."""
    controls = [(i, deciding(g)) for i, g in enumerate(groups) if is_control(g[0])]
    if not controls:
        return ""
    rows = [[Markup(f'<a href="#claim-{i}">{esc(c.module)}</a> · {esc(c.dataset)}'),
             KNOWN_ANSWERS.get(c.expect, c.expect) if c.decides else REPORTED,
             c.claimed.source if c.claimed else "—", badge(c.verdict),
             f"{c.better} − {c.worse}: {interval(c.test.effect, c.test.ci)}" + by_mode(c),
             "; ".join(f"{arm}: " + ", ".join(num(s, ".4f") for s in c.scores.get(arm, {}).get(c.primary, []))
                       for arm in (c.better, c.worse)),
             attacks(c, runs),
             Markup(f'<span class="check {STATE.get(c.outcome, "ok")}">{esc(MET.get(c.outcome, c.outcome))}</span> '
                    f'({len(c.masking_warnings)} failed masking check(s))')]
            for i, c in controls]
    count = {m: sum(MET.get(c.outcome, c.outcome).startswith(m) for _, c in controls)
             for m in ("met", "MISSED", "not decided here")}
    return (f'<h2 id="calibration">Controls: known answers</h2><p>{len(controls)} control(s): {count["met"]} met, '
            f'{count["MISSED"]} MISSED, {count["not decided here"]} not decided here. A missed control means an '
            f"attack, a masking check or the statistics is broken, whatever the claims above say.</p>"
            + table(["control", "known answer", "source", "verdict", "effect [95% CI]", "per-seed primary scores",
                     "training / evaluation attack", "answer"], rows, "calibration"))


def by_mode(c: Case) -> str:
    """A rounding arm's effect under each crafting mode alone (the strongest decides): `exact` shows what a
    masked attack would have credited."""
    if not c.per_mode:
        return ""
    return " (each mode alone: " + ", ".join(f"{m} {num(e.effect, '+.4f')}" for m, e in c.per_mode.items()) + ")"


def attacks(c: Case, runs: dict[str, Run]) -> str:
    """What each arm trained against, and the per-epoch attack that scored it (from its first run's config)."""
    parts, evaluation = [], "—"
    for arm in (c.better, c.worse):
        run = runs.get((c.run_keys.get(arm) or [""])[0])
        if run is None:
            continue
        r, a = run.config.variant.recipe, run.config.attack
        parts.append(f"{arm}: {r.adversarial}, eps {r.adv_eps:g}/255, step {r.adv_step:g}/255" if r.adversarial
                     else f"{arm}: none")
        evaluation = f"PGD-{a.steps}, step eps×{a.step_ratio:g}, {a.restarts} restart(s), {a.n_eval} images"
    return f"training: {'; '.join(parts) or '—'} / evaluation: {evaluation}"
