"""The whole verdict policy in one place: evidence per case, Holm across a claim's datasets, the verdict,
the test outcome, and the message a failing test prints.

Pure: it reads finished runs (plain dicts with per-epoch records) and returns a `Case`; the plugin only
translates `Case.outcome` into pass, skip or fail.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from . import inference, stats
from .attacks import eps_key
from .case import Case, Evidence
from .config import STRONGEST
from .plan import Plan

Runs = dict[str, list[dict]]  # arm -> one run dict per seed (status "done", "failed" or "missing")


def judge(p: Plan, dataset: str, eps: float, family: dict[str, Runs], checks: dict | None, alpha: float,
          nodeid: str = "", module: str = "") -> Case:
    """The case of `p` on `dataset` at `eps`. `family` holds the runs of every dataset in the case's Holm
    family (p.family), `checks` the final-checkpoint checks ({"transfer", "masking_warnings"}), or None
    when the profile runs none."""
    claim, runs = p.claim, family[dataset]
    ev = evidence(claim.better, claim.worse, runs, eps, alpha, claim.score)
    modes = per_mode(claim.better, claim.worse, runs, eps, alpha, claim.score, claim.modes)
    in_family = eps == claim.deciding_eps
    decides = in_family and claim.decides  # a report claim (Claim.decides False) decides at no eps
    names = p.family(dataset, eps)
    raw = {d: ev["test"] if d == dataset else
           evidence(claim.better, claim.worse, family[d], eps, alpha, claim.score)["test"] for d in names}
    adj_g = stats.holm([raw[d]["p_greater"] for d in names])
    adj_l = stats.holm([raw[d]["p_less"] for d in names])
    i = names.index(dataset)
    test = Evidence(**ev["test"], p_adj_greater=adj_g[i], p_adj_less=adj_l[i],
                    holm_family=[f"{d} eps={eps:g}" for d in names] if in_family else [])
    problems = list(ev["problems"])
    if checks is None and claim.expect == "better":
        problems.append("no final-checkpoint checks ran (the profile has no final evaluation), so nothing "
                        "vouches that the attacks were not masked")
    checks = checks or {"transfer": [], "masking_warnings": []}
    case = Case(
        nodeid=nodeid, module=module, statement=claim.statement, better=claim.better, worse=claim.worse,
        expect=claim.expect, dataset=dataset, dataset_used=ev["dataset_used"], eps=float(eps),
        deciding_eps=float(claim.deciding_eps), decides=decides, profile=p.profile.name,
        profile_decides=p.profile.decides, alpha=alpha, seeds=list(p.profile.seeds), epochs=p.epochs,
        primary=claim.score, attack=STRONGEST, shared_clean_range=ev["shared_clean_range"],
        scores=ev["scores"], test=test, per_mode=modes, run_keys={n: [r["key"] for r in rs] for n, rs in runs.items()},
        transfer=checks["transfer"], masking_warnings=checks["masking_warnings"],
        failed_runs=[f"{r['label']} {r['status']}: {r.get('error')}" for rs in runs.values() for r in rs
                     if r["status"] != "done"],
        problems=problems, notes=list(p.notes),
        verdict=stats.verdict(test.p_adj_greater, test.p_adj_less, alpha), outcome="")
    return dataclasses.replace(case, outcome=outcome(case))


def outcome(case: Case) -> str:
    """The test's outcome: failed, passed, or skipped (computed but not decided)."""
    if case.failed_runs:  # under every profile: a crash in a hypothesis must turn CI red
        return "failed"
    if not (case.profile_decides and case.decides):
        return "skipped"
    if case.problems:  # an untestable comparison: neither a claim nor a null is shown
        return "failed"
    if case.expect == "null":
        return "passed" if case.verdict == "inconclusive" else "failed"
    # A gain the masking checks cannot vouch for is not evidence: supported + a failed check fails.
    return "passed" if case.verdict == "supported" and not case.masking_warnings else "failed"


def message(case: Case) -> str:
    """What the test prints: the claim and its settings, the evidence, and every reason it did not pass."""
    t = case.test
    lines = [f"{case.statement} [{case.dataset}, eps {case.eps:g}/255, {case.profile} profile, "
             f"{case.epochs} epochs, seeds {case.seeds}, alpha {case.alpha:g}]",
             trend_line(case) if case.kind == "trend" else
             f"verdict: {case.verdict}; effect {case.better} - {case.worse} on {case.primary} = "
             f"{t.effect:+.4f} (95% CI {t.ci[0]:+.4f} .. {t.ci[1]:+.4f}); one-sided Welch p = "
             f"{t.p_greater:.3g} (Holm-adjusted {t.p_adj_greater:.3g}); permutation p = {t.p_perm:.3g} "
             f"(smallest possible {t.p_min:.3g}); n = {t.n}"]
    if case.verdict == "inconclusive" and case.expect == "better":
        why = "no number of seeds (the effect is not in the claimed direction)" if not t.effect > 0 \
            else "more than 100,000"
        lines.append(f"seeds per variant a t-test would need for 80% power at this effect (a planning figure): "
                     f"{t.seeds_needed or why}")
    lines += [f"failed run: {f}" for f in case.failed_runs]
    lines += [f"problem: {p}" for p in case.problems]
    lines += [f"masking check failed: {w}" for w in case.masking_warnings]
    lines += [f"note: {n}" for n in case.notes]
    if not case.profile_decides:
        lines.insert(0, f"not decided: the {case.profile} profile computes everything and decides no claim")
    elif not case.decides:
        lines.insert(0, f"reported only: the claim is decided at eps {case.deciding_eps:g}/255"
                     if case.eps != case.deciding_eps else
                     "reported only: this claim is a report (decides=False); its verdict is shown, not tested")
    return "\n".join(lines)


def evidence(better: str, worse: str, runs: Runs, eps: float, alpha: float, score: str) -> dict:
    """Scores per seed and the test of 'better > worse' at one eps, on the strongest attack."""
    ek = eps_key(eps)
    pair = (better, worse)
    curves = {n: _curves([r for r in runs[n] if r["status"] == "done"], ek) for n in pair}
    cleans = [c for n in pair if curves[n] for c in curves[n][0]]
    lo, hi = stats.shared_range(cleans) if cleans else (math.nan, math.nan)
    scores = {n: stats.scores(curves[n][0], curves[n][1][STRONGEST], lo, hi) if curves[n]
              else {s: [] for s in stats.SCORES} for n in pair}
    test = stats.compare(scores[better][score], scores[worse][score], alpha)
    return {"test": test, "scores": scores, "shared_clean_range": [lo, hi],
            "problems": [test["problem"]] if test.get("problem") else [],
            "dataset_used": next((r.get("dataset_used") for rs in runs.values() for r in rs
                                  if r.get("dataset_used")), None)}


def per_mode(better: str, worse: str, runs: Runs, eps: float, alpha: float, score: str,
             modes: tuple[str, ...]) -> dict:
    """Each rounding mode's attack on its own, beside the strongest that decides (rounding claims only)."""
    ek = eps_key(eps)
    curves = {n: _curves([r for r in runs[n] if r["status"] == "done"], ek) for n in (better, worse)}
    if len(modes) < 2 or not all(curves.values()):
        return {}
    lo, hi = stats.shared_range([c for n in curves for c in curves[n][0]])
    out = {}
    for mode in modes:
        s = {n: stats.scores(curves[n][0], curves[n][1].get(mode, curves[n][1][STRONGEST]), lo, hi)[score]
             for n in (better, worse)}
        c = stats.compare(s[better], s[worse], alpha)
        out[mode] = {"effect": c["effect"], "p_greater": c["p_greater"], "scores": s}
    return out


def _curves(finished: list[dict], ek: str):
    """(clean, {attack: adv}) of one variant's finished runs, arrays shaped (n_seeds, n_epochs); None if none."""
    if not finished:
        return None
    clean = np.array([[e["clean"] for e in r["records"]] for r in finished])
    adv = {m: np.array([[e["adv"][ek][m] for e in r["records"]] for r in finished])
           for m in finished[0]["records"][0]["adv"][ek]}
    return clean, adv


# ---- dose-response claims (harness.config.TrendClaim) ----------------------------------------------------
def judge_trend(p: Plan, dataset: str, eps: float, family: dict[str, Runs], checks: dict | None, alpha: float,
                nodeid: str = "", module: str = "") -> Case:
    """The case of a TrendClaim `p.claim` on `dataset` at `eps`: one linear trend of the per-seed score
    along the dose (harness.inference.trend; arms are the levels, ascending dose), Holm-adjusted across
    the family's datasets as pairs are. `test` holds the trend in the claimed direction: effect = the
    slope (score units per unit of dose) signed so that > 0 is the claimed direction, p_greater its
    one-sided p, p_less the opposite one's. Verdict: supported when the Holm-adjusted p of the claimed
    direction <= alpha, contradicted when that of the opposite direction is, else inconclusive; the outcome
    follows the pairs' rules (`outcome`). The final clean accuracy's trend (the clean cost) is shown, not
    tested against anything."""
    claim = p.claim
    sign = 1.0 if claim.expect == "increasing" else -1.0
    other = "decreasing" if claim.expect == "increasing" else "increasing"
    names = p.family(dataset, eps)
    fits = {d: _trend_fit(claim, family[d], eps) for d in names}
    fit, i = fits[dataset], names.index(dataset)
    tr = fit["trend"]
    adj_claimed = stats.holm([fits[d]["trend"][f"p_{claim.expect}"] for d in names])[i]
    adj_other = stats.holm([fits[d]["trend"][f"p_{other}"] for d in names])[i]
    decides = eps == claim.deciding_eps
    test = Evidence(n=tr["n"], effect=sign * tr["slope"], ci=sorted(sign * c for c in tr["ci"]),
                    p_greater=tr[f"p_{claim.expect}"], p_less=tr[f"p_{other}"], p_perm=math.nan, p_min=math.nan,
                    seeds_needed=None, problem=tr["problem"], df=tr["df"], p_adj_greater=adj_claimed,
                    p_adj_less=adj_other, holm_family=[f"{d} eps={eps:g}" for d in names] if decides else [],
                    method="trend")
    problems = [tr["problem"]] if tr["problem"] else []
    if checks is None:
        problems.append("no final-checkpoint checks ran (the profile has no final evaluation), so nothing "
                        "vouches that the attacks were not masked")
    checks = checks or {"transfer": [], "masking_warnings": []}
    adj = {f"p_adj_{claim.expect}": adj_claimed, f"p_adj_{other}": adj_other}
    runs = family[dataset]
    case = Case(
        nodeid=nodeid, module=module, statement=claim.statement, better=claim.better, worse=claim.worse,
        expect=claim.expect, dataset=dataset, dataset_used=fit["dataset_used"], eps=float(eps),
        deciding_eps=float(claim.deciding_eps), decides=decides, profile=p.profile.name,
        profile_decides=p.profile.decides, alpha=alpha, seeds=list(p.profile.seeds), epochs=p.epochs,
        primary=claim.score, attack=STRONGEST, shared_clean_range=fit["shared_clean_range"], scores=fit["scores"],
        test=test, per_mode=fit["per_mode"], run_keys={n: [r["key"] for r in rs] for n, rs in runs.items()},
        transfer=checks["transfer"], masking_warnings=checks["masking_warnings"],
        failed_runs=[f"{r['label']} {r['status']}: {r.get('error')}" for rs in runs.values() for r in rs
                     if r["status"] != "done"],
        problems=problems, notes=list(p.notes), verdict=stats.verdict(adj_claimed, adj_other, alpha), outcome="",
        kind="trend", trend={"unit": claim.unit, "direction": claim.expect, "names": list(claim.variants),
                             **tr, **adj, "clean_cost": fit["clean_cost"]},
        claimed=dataclasses.asdict(claim.claimed) if claim.claimed else None,
        known=dataclasses.asdict(claim.known) if claim.known else None)
    return dataclasses.replace(case, outcome=outcome(case))


def _trend_fit(claim, runs: Runs, eps: float) -> dict:
    """Per-level scores at one eps on the strongest attack, the score's trend along the dose, each attack
    mode's trend, and the trend of the final clean accuracy (the clean cost)."""
    ek, names, doses = eps_key(eps), list(claim.variants), list(claim.doses)
    curves = {n: _curves([r for r in runs[n] if r["status"] == "done"], ek) for n in names}
    cleans = [c for cv in curves.values() if cv for c in cv[0]]
    lo, hi = stats.shared_range(cleans) if cleans else (math.nan, math.nan)

    def scored(mode: str) -> dict:
        return {n: stats.scores(cv[0], cv[1].get(mode, cv[1][STRONGEST]), lo, hi) if cv
                else {s: [] for s in stats.SCORES} for n, cv in curves.items()}
    scores = scored(STRONGEST)
    sign = 1.0 if claim.expect == "increasing" else -1.0
    per_mode_ = {}
    if len(claim.modes) > 1 and all(curves.values()):
        for mode in claim.modes:
            s = {n: v[claim.score] for n, v in scored(mode).items()}
            t = inference.trend(doses, [s[n] for n in names])
            per_mode_[mode] = {"effect": sign * t["slope"], "p_greater": t[f"p_{claim.expect}"], "scores": s}
    clean = {n: [float(row[-1]) for row in cv[0]] if cv else [] for n, cv in curves.items()}
    return {"trend": inference.trend(doses, [scores[n][claim.score] for n in names]), "scores": scores,
            "per_mode": per_mode_, "shared_clean_range": [lo, hi],
            "clean_cost": {"score": "final clean accuracy", "values": clean,
                           **inference.trend(doses, [clean[n] for n in names])},
            "dataset_used": next((r.get("dataset_used") for rs in runs.values() for r in rs
                                  if r.get("dataset_used")), None)}


def trend_line(case: Case) -> str:
    """The evidence line of a trend case's message."""
    tr, t = case.trend, case.test
    unit = tr.get("unit", "unit")
    means = ", ".join(f"{n} {m:.4f}" for n, m in zip(tr.get("names", []), tr.get("means", [])))
    cost = tr.get("clean_cost", {})
    return (f"verdict: {case.verdict}; slope of {case.primary} along {unit} = {tr.get('slope', math.nan):+.4g} "
            f"per {unit} (95% CI {tr.get('ci', [math.nan] * 2)[0]:+.4g} .. {tr.get('ci', [math.nan] * 2)[1]:+.4g}); "
            f"claimed {tr.get('direction')}: one-sided p = {t.p_greater:.3g} (Holm-adjusted {t.p_adj_greater:.3g}), "
            f"opposite direction p = {t.p_less:.3g}; seeds per level {t.n}; means: {means}; clean cost: final "
            f"clean accuracy slope {cost.get('slope', math.nan):+.4g} per {unit} "
            f"(p decreasing {cost.get('p_decreasing', math.nan):.3g})")
