"""The calibration table below the board: how the suite did on its known-answer controls.

A control is a hypothesis module whose name contains `control` (`pytest hypotheses/ -k control` selects
them). One row per control and dataset at its deciding eps: the known answer (from the claim's `expect`),
the verdict, the effect with its 95% CI, the per-seed primary scores, and whether the answer was met.
"""
from __future__ import annotations

from .claims import deciding
from .markup import Markup, badge, esc, interval, num, table
from ..spec.case import Case

KNOWN_ANSWERS = {  # Claim.expect -> the answer a control must give
    "better": "supported, every masking check passing",
    "null": "inconclusive (the arms differ in their seeds alone)",
    "equivalent": "equivalent within the claim's margin",
}
MET = {"passed": "met", "failed": "MISSED", "skipped": "not decided here", "xfailed": "met (recorded verdict)"}
STATE = {"failed": "bad", "skipped": "note"}  # the check colours of harness.report.assets


def is_control(case: Case) -> bool:
    return "control" in case.module


def section(groups: list[list[Case]]) -> str:
    """The calibration table of the controls among the claims (groups: harness.report.claims.by_claim),
    linked to their sections; empty when there are none."""
    controls = [(i, deciding(g)) for i, g in enumerate(groups) if is_control(g[0])]
    if not controls:
        return ""
    rows = [[Markup(f'<a href="#claim-{i}">{esc(c.module)}</a> · {esc(c.dataset)}'),
             KNOWN_ANSWERS.get(c.expect, c.expect), badge(c.verdict),
             f"{c.better} − {c.worse}: {interval(c.test.effect, c.test.ci)}",
             "; ".join(f"{arm}: " + ", ".join(num(s, ".4f") for s in c.scores.get(arm, {}).get(c.primary, []))
                       for arm in (c.better, c.worse)),
             Markup(f'<span class="check {STATE.get(c.outcome, "ok")}">{esc(MET.get(c.outcome, c.outcome))}</span>')]
            for i, c in controls]
    missed = sum(c.outcome == "failed" for _, c in controls)
    return (f'<h2 id="calibration">Controls: known answers</h2><p>{len(controls) - missed} of {len(controls)} '
            f"control(s) not missed. A missed control means an attack, a masking check or the statistics is broken, "
            f"whatever the claims above say.</p>"
            + table(["control", "known answer", "verdict", "effect [95% CI]", "per-seed primary scores", "answer"],
                    rows, "calibration"))
