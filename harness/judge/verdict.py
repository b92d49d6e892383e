"""The whole verdict policy in one place, one path for pairs and doses: evidence per case, Holm across a
claim's datasets, the verdict, the test outcome, and the message a failing test prints.

Pure: it reads finished runs and returns a `Case`; the plugin only translates `Case.outcome` into pass,
skip or fail. The claim supplies its statistic (`_statistic`: Welch's for a pair, the slope for a dose);
every other rule (Holm, the sequential level, equivalence, masking, the design, a reduced protocol, a
recorded verdict) reads that statistic the same way. Arm parity is the plan's (harness.spec.plan.parity:
a confounded claim stops at collection, before anything trains).
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from . import inference, stats
from ..spec.case import Case, CleanCost, Design, EpsPoint, Equivalence, Evidence, ModeEvidence, Trend
from ..spec.claim import TrendClaim
from ..spec.config import LOOKS, STRONGEST, eps_key
from ..spec.plan import Plan
from ..spec.records import FinalChecks, Run, Runs
MAX_ALPHA = 0.05  # a larger --alpha still computes every verdict, as a reduced protocol
VERDICTS = {  # verdict -> what it means, as the report's guide and the README say it
    "supported": "the claimed direction, Holm-adjusted p <= the look's level, and every masking check ran and passed",
    "contradicted": "the opposite direction, Holm-adjusted p <= the look's level, every masking check passed",
    "equivalent": "the effect lies within the claim's margin (two one-sided tests, Holm-adjusted, at the look's "
                  "level) and the difference test is not significant",
    "negligible": "within the margin as for equivalent, and the difference test is significant too: a real "
                  "difference, smaller than the margin (an equivalence claim passes)",
    "inconclusive": "neither direction reaches the look's level",
    "underpowered": "neither direction reaches the level, and with these seeds no distribution-free test could "
                    "(the exact permutation floor is above the threshold): the next look (confirm) has the seeds",
    "supported (unverified)": "supported, but a masking check failed or none ran: the attack may be weaker than "
                              "it looks, so the claim does not pass",
    "contradicted (unverified)": "contradicted, but a masking check failed or none ran",
    "equivalent (unverified)": "equivalent, but a masking check failed or none ran: masked attacks on both arms "
                               "make them look equally robust, so the claim does not pass",
    "negligible (unverified)": "negligible, but a masking check failed or none ran",
}
PASSES = {"better": ("supported",), "increasing": ("supported",), "decreasing": ("supported",),
          "equivalent": ("equivalent", "negligible"), "null": ("inconclusive",)}
NO_CHECKS = "no final-checkpoint checks ran (the profile has no final evaluation), so nothing vouches that the " \
            "attacks were not masked"


def judge(p: Plan, dataset: str, eps: float, family: dict[str, Runs], checks: FinalChecks | None,
          alpha: float, nodeid: str = "", module: str = "") -> Case:
    """The case of `p` on `dataset` at `eps`. `family` holds the runs of every dataset in the case's Holm
    family (p.family), `checks` the final-checkpoint checks, or None when the profile runs none. `alpha` is the
    family-wise rate of the whole seed procedure; each look decides at Pocock's level for it."""
    claim, runs, names = p.claim, family[dataset], p.family(dataset, eps)
    level = inference.pocock(alpha, LOOKS)
    fits = {d: _fit(claim, family[d], eps_key(eps)) for d in names}
    fit, i = fits[dataset], names.index(dataset)
    stat, raw = fit["stat"], fit["read"]
    adj_g = inference.holm([fits[d]["read"]["p_greater"] for d in names])[i]
    adj_l = inference.holm([fits[d]["read"]["p_less"] for d in names])[i]
    n = stat["n"]
    scores = fit["scores"]
    pair = not isinstance(claim, TrendClaim)
    test = Evidence(
        method="welch" if pair else "trend", n=n, **raw, p_adj_greater=adj_g, p_adj_less=adj_l,
        holm_family=[f"{d} eps={eps:g}" for d in names] if eps == claim.deciding_eps else [], df=stat["df"],
        p_perm=inference.permutation_p(*(scores[a][claim.score] for a in (claim.better, claim.worse)))
        if pair else math.nan, p_min=inference.min_p_exact(n), problem=stat["problem"],
        seeds_needed=inference.seeds_needed(raw["effect"], stat, level / len(names)),
        design=Design(**inference.design(n, level / len(names), stat)))
    equivalence = None
    if claim.equivalent_within:
        tosts = [inference.tost(fits[d]["stat"], claim.equivalent_within, level) for d in names]
        equivalence = Equivalence(**tosts[i], p_adj=inference.holm([t["p_tost"] for t in tosts])[i])
    used = next((r.dataset_used for rs in runs.values() for r in rs if r.dataset_used), None)
    problems = [stat["problem"]] if stat["problem"] else []
    if checks is None and claim.expect != "null":
        problems.append(NO_CHECKS)
    transfer, masking = (checks.transfer, checks.masking_warnings) if checks else ([], [])
    if claim.expect == "masked" and not any(w.startswith((r.label + ":", r.label + " ("))
                                            for r in runs[claim.better] for w in masking):
        problems.append(f"no masking check failed on {claim.better}, whose gain is masking by construction: "
                        f"the checks did not name it")
    unverified = claim.expect != "null" and (bool(masking) or NO_CHECKS in problems)
    state = verdict_of(claim.expect, test, level, equivalence, unverified)
    known, stale = _known(claim, p.profile.name, used, runs)
    case = Case(
        nodeid=nodeid, module=module, statement=claim.statement, better=claim.better, worse=claim.worse,
        expect=claim.expect, dataset=dataset, dataset_used=used, eps=float(eps), deciding_eps=float(claim.deciding_eps),
        decides=eps == claim.deciding_eps and getattr(claim, "decides", True), profile=p.profile.name,
        profile_decides=p.profile.decides, alpha=alpha, level=level, seeds=list(p.profile.seeds), epochs=p.epochs,
        primary=claim.score, attack=STRONGEST, shared_clean_range=fit["shared"], scores=scores,
        run_keys={a: [r.key for r in rs] for a, rs in runs.items()}, test=test,
        per_mode=_per_mode(claim, runs, eps_key(eps)), along_eps=_along_eps(claim, runs),
        equivalence=equivalence, trend=None if pair else _trend(claim, fit),
        transfer=transfer, masking_warnings=masking,
        failed_runs=[f"{r.label} {r.status}: {r.error}" for rs in runs.values() for r in rs if r.status != "done"],
        problems=problems, notes=list(p.notes), reduced=reduced(p, used, dataset, alpha),
        allow_reduced=p.allow_reduced, verdict=state, outcome="", claimed=claim.claimed,
        reading=reading(claim, state, test), known=known, known_stale=stale)
    return dataclasses.replace(case, outcome=outcome(case))


def verdict_of(expect: str, test: Evidence, level: float, equivalence: Equivalence | None, unverified: bool) -> str:
    """One case's verdict from its Holm-adjusted evidence (see VERDICTS). For an equivalence claim the two
    one-sided tests decide alone, the difference test beside them; for any other claim a stated margin
    only reads an inconclusive difference as equivalent."""
    v = inference.verdict(test.p_adj_greater, test.p_adj_less, level)
    within = equivalence is not None and equivalence.p_adj <= level
    if within and expect == "equivalent":
        v = "equivalent" if v == "inconclusive" else "negligible"
    elif within and v == "inconclusive":
        v = "equivalent"
    elif v == "inconclusive" and expect != "null" and test.problem is None and test.design.underpowered:
        v = "underpowered"  # a null control asks for no significance: its inconclusive stays one
    return f"{v} (unverified)" if unverified and v in ("supported", "contradicted", "equivalent", "negligible") else v


def reduced(p: Plan, used: str | None, dataset: str, alpha: float) -> list[str]:
    """The plan's shortfalls, data bound in place of the claim's dataset (a lossy copy, a stand-in, data
    not recognised by its content), and an alpha above 0.05: a deciding profile reports these only."""
    out = list(p.reduced)
    if p.profile.decides and used and used != dataset and not p.notes:
        out.append(f"ran on {used}, bound in place of {dataset}")
    if p.profile.decides and alpha > MAX_ALPHA:
        out.append(f"alpha {alpha:g} is above {MAX_ALPHA:g}")
    return out


def outcome(case: Case) -> str:
    """The test's outcome: failed, passed, xfailed (the recorded verdict observed again, or a failure under a
    record that does not apply to these runs), or skipped (computed but not decided)."""
    if case.failed_runs:  # under every profile: a crash in a hypothesis must turn CI red
        return "failed"
    if not (case.profile_decides and case.decides) or (case.reduced and not case.allow_reduced):
        return "skipped"
    if case.problems:  # untestable: neither a claim nor a null is shown
        return "failed"
    if case.known and not case.known_stale:
        return "xfailed" if case.verdict == case.known.verdict else "failed"
    if case.expect == "masked":  # a masking control: never supported, its masking named (`judge`)
        return "passed" if case.verdict != "supported" and case.masking_warnings else "failed"
    if case.verdict in PASSES[case.expect]:
        return "passed"
    return "xfailed" if case.known else "failed"  # a stale record: expected to fail, not failed by it


def reading(claim, state: str, test: Evidence) -> str | None:
    """The source's claim beside the measurement: "replicated" (supported, and the claimed size inside the
    95% CI where a size is given), "direction only" (supported, the claimed size outside the CI), or the
    verdict itself."""
    c = claim.claimed
    if c is None:
        return None
    if state == "supported":
        return "direction only" if c.size is not None and not test.ci[0] <= c.size <= test.ci[1] else "replicated"
    return state


def _known(claim, profile: str, used: str | None, runs: Runs):
    """The claim's record for this profile, and why it does not apply to these runs (None where it does)."""
    k = claim.known
    if k is None or k.profile != profile:
        return None, None
    code = next((r.code_version for rs in runs.values() for r in rs if r.code_version), None)
    why = ([f"measured on {k.data}, these runs read {used}"] if used and used != k.data else []) + \
          ([f"measured with code {k.code}, these runs ran code {code}"] if code and code != k.code else [])
    return k, "; ".join(why) or None


# ---- the evidence: scores per seed and the claim's statistic --------------------------------------------
def _curves(runs: list[Run], ek: str):
    """(clean, {attack: adv}) of an arm's finished runs, arrays shaped (n_seeds, n_epochs); None if none."""
    done = [r for r in runs if r.status == "done"]
    if not done:
        return None
    return (np.array([[e.clean for e in r.records] for r in done]),
            {m: np.array([[e.adv[ek][m] for e in r.records] for r in done]) for m in done[0].records[0].adv[ek]})


def _statistic(claim, per_arm: dict[str, list[float]]) -> dict:
    """The claim's statistic on per-seed scores: Welch's better - worse for a pair, the slope along the
    dose for a trend (inference.contrast, both)."""
    if isinstance(claim, TrendClaim):
        return inference.trend(claim.doses, [per_arm[a] for a in claim.variants])
    return inference.welch(per_arm[claim.better], per_arm[claim.worse])


def _sign(claim) -> float:
    return -1.0 if claim.expect == "decreasing" else 1.0


def _fit(claim, runs: Runs, ek: str, mode: str = STRONGEST) -> dict:
    """Every score per seed and arm under `mode`'s attack (the strongest: the worst case per example), the
    statistic on the primary score, and its reading in the claimed direction."""
    curves = {a: _curves(runs[a], ek) for a in claim.variants}
    cleans = [c for cv in curves.values() if cv for c in cv[0]]
    lo, hi = stats.shared_range(cleans) if cleans else (math.nan, math.nan)
    scores = {a: stats.scores(cv[0], cv[1].get(mode, cv[1][STRONGEST]), lo, hi) if cv
              else {s: [] for s in stats.SCORES} for a, cv in curves.items()}
    stat = _statistic(claim, {a: s[claim.score] for a, s in scores.items()})
    return {"scores": scores, "stat": stat, "read": inference.read(stat, _sign(claim)), "shared": [lo, hi],
            "clean": {a: [float(row[-1]) for row in cv[0]] if cv else [] for a, cv in curves.items()}}


def _per_mode(claim, runs: Runs, ek: str) -> dict[str, ModeEvidence]:
    """Each rounding mode's attack on its own, beside the strongest that decides (rounding claims only)."""
    if len(claim.modes) < 2 or not all(_curves(runs[a], ek) for a in claim.variants):
        return {}
    fits = {m: _fit(claim, runs, ek, m) for m in claim.modes}
    return {m: ModeEvidence(effect=f["read"]["effect"], p_greater=f["read"]["p_greater"],
                            scores={a: s[claim.score] for a, s in f["scores"].items()}) for m, f in fits.items()}


def _along_eps(claim, runs: Runs) -> list[EpsPoint]:
    """The effect and its 95% CI at every radius the finished runs evaluated (raw, not Holm-adjusted)."""
    done = [r for rs in runs.values() for r in rs if r.done]
    if not done:
        return []
    out = []
    for ek in sorted(done[0].records[0].adv, key=float):
        t = _fit(claim, runs, ek)["read"]
        out.append(EpsPoint(eps=float(ek), effect=t["effect"], ci=t["ci"], p_greater=t["p_greater"]))
    return out


def _trend(claim: TrendClaim, fit: dict) -> Trend:
    """A dose's levels, its slope as measured, and the trend of the final clean accuracy (the clean cost)."""
    names, stat = list(claim.variants), fit["stat"]
    cost = inference.trend(claim.doses, [fit["clean"][n] for n in names])
    return Trend(unit=claim.unit, direction=claim.expect, names=names, levels=list(claim.doses),
                 means=stat["means"], slope=stat["effect"], ci=inference.read(stat)["ci"],
                 clean_cost=CleanCost(values=fit["clean"], means=cost["means"], slope=cost["effect"],
                                      p_decreasing=inference.read(cost)["p_less"]))


# ---- what a test prints -------------------------------------------------------------------------------
def message(case: Case) -> str:
    """The claim and its settings, the evidence, and every reason it did not pass."""
    t, d = case.test, case.test.design
    lines = [f"{case.statement} [{case.dataset}, eps {case.eps:g}/255, {case.profile} profile, {case.epochs} epochs, "
             f"seeds {case.seeds}, alpha {case.alpha:g}: each look at {case.level:.3g}]", evidence_line(case)]
    if case.equivalence:
        e = case.equivalence
        lines.append(f"equivalence within +-{e.margin:g}: TOST p = {e.p_tost:.3g} (Holm-adjusted {e.p_adj:.3g}), "
                     f"{100 * e.ci_level:.0f}% CI {e.ci[0]:+.4f} .. {e.ci[1]:+.4f}")
    if case.verdict in ("inconclusive", "underpowered") and case.expect not in ("null", "equivalent"):
        why = "no number of seeds (the effect is not in the claimed direction)" if not t.effect > 0 \
            else "more than 100,000"
        lines.append(f"seeds per arm a t-test would need for 80% power at this effect (a planning figure): "
                     f"{t.seeds_needed or why}")
    if case.verdict == "underpowered":
        lines.append(f"underpowered: no direction reached {d.alpha_holm:.3g} (the look's level over the Holm "
                     f"family); with {t.n} seeds no distribution-free test could (the exact permutation floor is "
                     f"{d.p_min_exact:.3g}), and the t-test could only by leaning on normality; "
                     f"{d.seeds_for_exact} seeds per arm can reach it: run the confirm look")
    k = case.known
    if k:
        where = f"{k.data}, code {k.code}, {k.card}, {k.date}"
        if case.known_stale:
            lines.insert(0, f"recorded {k.verdict!r} ({where}) does not apply to these runs ({case.known_stale}): "
                            f"observed {case.verdict!r}; re-measure and update the claim's known=")
        elif case.verdict != k.verdict:
            lines.insert(0, f"VERDICT CHANGED: recorded {k.verdict!r} ({where}), observed {case.verdict!r}")
        else:
            lines.insert(0, f"the recorded verdict, observed again: {k.verdict} ({where})")
    lines += [f"failed run: {f}" for f in case.failed_runs] + [f"problem: {p}" for p in case.problems]
    lines += [f"masking check failed: {w}" for w in case.masking_warnings] + [f"note: {n}" for n in case.notes]
    if case.reduced:
        lines.append(f"reduced: {'; '.join(case.reduced)}{' (decided, --allow-reduced)' if case.allow_reduced else ''}")
    if not case.profile_decides:
        lines.insert(0, f"not decided: the {case.profile} profile computes everything and decides no claim")
    elif case.reduced and not case.allow_reduced:
        lines.insert(0, "reported only: a reduced protocol decides nothing (pass --allow-reduced to decide)")
    elif not case.decides:
        lines.insert(0, f"reported only: the claim is decided at eps {case.deciding_eps:g}/255"
                     if case.eps != case.deciding_eps else
                     "reported only: this claim is a report (decides=False); its verdict is shown, not tested")
    return "\n".join(lines)


def evidence_line(case: Case) -> str:
    t = case.test
    holm = f"one-sided p = {t.p_greater:.3g} (Holm-adjusted {t.p_adj_greater:.3g}), opposite {t.p_less:.3g}"
    if case.trend:
        tr, cost = case.trend, case.trend.clean_cost
        return (f"verdict: {case.verdict}; slope of {case.primary} along {tr.unit} = {tr.slope:+.4g} per {tr.unit} "
                f"(95% CI {tr.ci[0]:+.4g} .. {tr.ci[1]:+.4g}); claimed {tr.direction}: {holm}; seeds per level "
                f"{t.n}; means: {', '.join(f'{n} {m:.4f}' for n, m in zip(tr.names, tr.means))}; clean cost: final "
                f"clean accuracy slope {cost.slope:+.4g} per {tr.unit} (p decreasing {cost.p_decreasing:.3g})")
    return (f"verdict: {case.verdict}; effect {case.better} - {case.worse} on {case.primary} = {t.effect:+.4f} "
            f"(95% CI {t.ci[0]:+.4f} .. {t.ci[1]:+.4f}); Welch's t (df {t.df:g}): {holm}; permutation p = "
            f"{t.p_perm:.3g} (smallest possible {t.p_min:.3g}); n = {t.n}")
