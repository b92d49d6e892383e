"""The calibration table at the top of the report: how the suite did on its known-answer controls.

A control is a hypothesis module whose name contains `control` (`pytest hypotheses/ -k control` selects
them): a real effect it must support, a masked one it must never support and must name, and a null it
must find nothing in. One row per control at its deciding eps: the known answer (from the claim's
`expect`), its source (the claim's `claimed`), the verdict, the effect with its 95% CI and per-seed scores,
the training attack beside the evaluation attack, and whether the suite met the known answer. Self-contained
HTML (every string escaped), so that the page needs one line for it.
"""
from __future__ import annotations

import html
import re

from ..spec.case import Case

KNOWN_ANSWERS = {  # Claim.expect -> the known answer a control must meet
    "better": "supported, every masking check passing",
    "masked": "never supported, and a masking check names the masking on the claimed-better arm",
    "null": "inconclusive (the arms differ in their seeds alone)",
    "equivalent": "equivalent within the claim's margin",
}
MET = {"passed": "met", "xfailed": "met", "failed": "MISSED", "skipped": "not decided here"}  # by pytest outcome


def is_control(case: Case) -> bool:
    return "control" in case.module


def section(cases: list[Case], runs: dict) -> str:
    """The calibration table of the session's control cases at their deciding eps; empty when there are none."""
    controls = [c for c in cases if is_control(c) and c.eps == c.deciding_eps]
    if not controls:
        return ""
    head = ["control", "known answer", "source", "verdict", "effect [95% CI] (primary score)",
            "per-seed scores", "attacks: training / evaluation", "result"]
    rows = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row(c, runs)) + "</tr>" for c in controls)
    tally = ", ".join(f"{sum(MET.get(c.outcome) == m for c in controls)} {m}" for m in dict.fromkeys(MET.values()))
    return (f'<h2 id="calibration">Calibration: the known-answer controls</h2><p>{len(controls)} control(s): '
            f"{esc(tally)}. A control that misses its known answer means that an attack, a masking check or the "
            f"statistics is broken, whatever the claims below say.</p>"
            f'<table class="calibration"><thead><tr>{"".join(f"<th>{esc(h)}</th>" for h in head)}</tr></thead>'
            f"<tbody>{rows}</tbody></table>")


def row(c: Case, runs: dict) -> list[str]:
    t, met = c.test, MET.get(c.outcome, c.outcome)
    checks = f"{len(c.masking_warnings) or 'no'} failed masking check(s)"
    scores = "; ".join(f"{arm}: " + ", ".join(f"{s:.4f}" for s in c.scores.get(arm, {}).get(c.primary, []))
                       for arm in (c.better, c.worse))
    css = re.sub(r"\W+", "-", c.verdict).strip("-")  # the page's verdict classes (harness.report.assets)
    verdict = f'<span class="verdict {esc(css)}">{esc(c.verdict)}</span>'
    effect = f"{c.better} − {c.worse}: {t.effect:+.4f} [{t.ci[0]:+.4f}, {t.ci[1]:+.4f}]"
    return [f"{esc(c.module)}<br>{esc(c.dataset)}, eps {c.eps:g}/255, {esc(c.profile)} profile",
            esc(KNOWN_ANSWERS.get(c.expect, c.expect)), esc((c.claimed or {}).get("source", "—")), verdict,
            esc(effect), esc(scores), esc(attacks(c, runs)),
            f"<b>{esc(met)}</b> ({checks})" if met == "MISSED" else f"{esc(met)} ({checks})"]


def attacks(c: Case, runs: dict) -> str:
    """What each arm trained against, and the per-epoch attack that scored it (from its first run's config)."""
    parts, evaluation = [], "—"
    for arm in (c.better, c.worse):
        keys = c.run_keys.get(arm) or [None]
        cfg = (runs.get(keys[0]) or {}).get("config") or {}
        recipe, attack = cfg.get("variant", {}).get("recipe", {}), cfg.get("attack", {})
        adv = recipe.get("adversarial")
        parts.append(f"{arm}: {adv}, eps {recipe.get('adv_eps'):g}/255, step {recipe.get('adv_step'):g}/255"
                     if adv else f"{arm}: none")
        if attack:
            evaluation = (f"PGD-{attack.get('steps')} step eps×{attack.get('step_ratio'):g}, "
                          f"{attack.get('restarts')} restart(s), {attack.get('n_eval')} images")
    return f"training: {'; '.join(parts)} / evaluation: {evaluation}"


def esc(x) -> str:
    return html.escape(str(x), quote=True)
