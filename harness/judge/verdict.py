"""The whole verdict policy in one place: evidence per case, Holm across a claim's datasets, the verdict,
the test outcome, and the message a failing test prints.

Pure: it reads finished runs (plain dicts with per-epoch records) and returns a `Case`; the plugin only
translates `Case.outcome` into pass, skip or fail.

Longer than 300 lines on purpose: the policy for pairs and for dose trends is kept in this one module,
so that every rule a verdict depends on can be read in one place.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..spec import budget
from . import inference, stats
from ..run.attacks import eps_key
from ..spec.case import Case, Evidence
from ..spec.config import NO_ROUNDING, STRONGEST, Claim
from ..spec.plan import Plan

Runs = dict[str, list[dict]]  # arm -> one run dict per seed (status "done", "failed" or "missing")
VERDICTS = {  # verdict -> what it means, as the report's guide and the README say it
    "supported": "the better arm's score is higher, Holm-adjusted p <= alpha",
    "supported (unverified)": "higher at p <= alpha, but a masking check failed: the gain may be the attack "
                              "failing (gradient masking), not robustness",
    "contradicted": "the better arm's score is lower, Holm-adjusted p <= alpha, and every masking check passed",
    "contradicted (unverified)": "lower at p <= alpha, but a masking check failed: the attack on the claimed-better "
                                 "arm may be weaker than it looks",
    "equivalent": "the difference lies within the claim's margin (two one-sided tests at alpha)",
    "inconclusive": "neither direction reaches alpha, though the design could have",
    "underpowered": "neither direction reaches alpha, and with these seeds the exact test cannot reach Holm's "
                    "threshold at all: more seeds are needed (the confirm profile has 6 per arm)",
    "confounded": "the arms differ in a setting other than the claim's declared factor: no verdict is drawn",
}


def judge(p: Plan, dataset: str, eps: float, family: dict[str, Runs], checks: dict | None, alpha: float,
          nodeid: str = "", module: str = "") -> Case:
    """The case of `p` on `dataset` at `eps`. `family` holds the runs of every dataset in the case's Holm
    family (p.family), `checks` the final-checkpoint checks ({"transfer", "masking_warnings"}), or None
    when the profile runs none."""
    claim, runs = p.claim, family[dataset]
    names = p.family(dataset, eps)
    ev = evidence(claim.better, claim.worse, runs, eps, alpha, claim.score, len(names))
    in_family = eps == claim.deciding_eps
    decides = in_family and claim.decides  # a report claim (Claim.decides False) decides at no eps
    raw = {d: ev["test"] if d == dataset else
           evidence(claim.better, claim.worse, family[d], eps, alpha, claim.score, len(names))["test"] for d in names}
    adj_g = inference.holm([raw[d]["p_greater"] for d in names])
    adj_l = inference.holm([raw[d]["p_less"] for d in names])
    i = names.index(dataset)
    test = Evidence(**ev["test"], p_adj_greater=adj_g[i], p_adj_less=adj_l[i],
                    holm_family=[f"{d} eps={eps:g}" for d in names] if in_family else [])
    problems = list(ev["problems"])
    if checks is None and claim.expect in ("better", "masked"):
        problems.append("no final-checkpoint checks ran (the profile has no final evaluation), so nothing "
                        "vouches that the attacks were not masked")
    checks = checks or {"transfer": [], "masking_warnings": []}
    if claim.expect == "masked" and not any(w.startswith((r["label"] + ":", r["label"] + " ("))
                                            for r in runs[claim.better] for w in checks["masking_warnings"]):
        problems.append(f"no masking check failed on {claim.better}, whose gain is masking by construction: "
                        f"the checks did not name it")
    equivalence = (inference.tost(ev["scores"][claim.better][claim.score], ev["scores"][claim.worse][claim.score],
                                  claim.equivalent_within, alpha) if claim.equivalent_within else None)
    parity = differences(claim, runs)
    state = verdict_of(test, alpha, claim.expect, equivalence, parity, checks["masking_warnings"])
    case = Case(
        nodeid=nodeid, module=module, statement=claim.statement, better=claim.better, worse=claim.worse,
        expect=claim.expect, dataset=dataset, dataset_used=ev["dataset_used"], eps=float(eps),
        deciding_eps=float(claim.deciding_eps), decides=decides, profile=p.profile.name,
        profile_decides=p.profile.decides, alpha=alpha, seeds=list(p.profile.seeds), epochs=p.epochs,
        primary=claim.score, attack=STRONGEST, shared_clean_range=ev["shared_clean_range"],
        scores=ev["scores"], test=test, per_mode=per_mode(claim.better, claim.worse, runs, eps, alpha, claim.score,
                                                          claim.modes),
        run_keys={n: [r["key"] for r in rs] for n, rs in runs.items()},
        transfer=checks["transfer"], masking_warnings=checks["masking_warnings"],
        failed_runs=[f"{r['label']} {r['status']}: {r.get('error')}" for rs in runs.values() for r in rs
                     if r["status"] != "done"],
        problems=problems, notes=list(p.notes), reduced=reduced(p, ev["dataset_used"], dataset),
        allow_reduced=p.allow_reduced, verdict=state, outcome="", design=test.design,
        equivalence=equivalence, parity=parity, intended=dict(claim.intended),
        claimed=claimed_reading(claim, state, test), known=_known(claim, p.profile.name),
        along_eps=along_eps(claim, runs, alpha))
    return dataclasses.replace(case, outcome=outcome(case))


def reduced(p: Plan, used: str | None, dataset: str) -> list[str]:
    """The plan's shortfalls, and data bound in place of the claim's dataset (a lossy copy, a stand-in)."""
    out = list(p.reduced)
    if p.profile.decides and used and used != dataset and not p.notes:
        out.append(f"ran on {used}, bound in place of {dataset}")
    return out


def verdict_of(test: Evidence, alpha: float, expect: str, equivalence: dict | None, parity: list[str],
               masking_warnings: list[str]) -> str:
    """One case's verdict from its Holm-adjusted evidence (see VERDICTS)."""
    if parity:
        return "confounded"
    v = inference.verdict(test.p_adj_greater, test.p_adj_less, alpha)
    if v in ("supported", "contradicted") and masking_warnings:
        return f"{v} (unverified)"
    if v == "inconclusive" and equivalence and equivalence.get("equivalent"):
        return "equivalent"
    if v == "inconclusive" and expect != "null" and test.problem is None and test.design.get("underpowered"):
        return "underpowered"  # a null control asks for no significance: its inconclusive stays one
    return v


def differences(claim: Claim, runs: Runs) -> list[str]:
    """Settings in which the arms' runs differ besides the declared factor and the declared intended
    differences, seed by seed: "attack.n_eval: Max 1000, Avg 500". Attack effort is compared as gradient
    attacks per example (a rounding arm's modes against the others' restarts), not as raw settings."""
    declared = [k if k.split(".")[0] in RUN_FIELDS else f"variant.{k}" for k in (claim.factor, *claim.intended) if k]
    arms = {name: rs for name, rs in runs.items() if rs}
    out: dict[str, str] = {}
    for seeds in zip(*arms.values()):
        flat = {name: _settings(r) for name, r in zip(arms, seeds)}
        for k in sorted(set().union(*flat.values())):
            values = {name: f.get(k) for name, f in flat.items()}
            if len(set(map(repr, values.values()))) > 1 and not any(_within(k, d) for d in declared):
                out.setdefault(k, f"{k}: " + ", ".join(f"{n} {v}" for n, v in values.items()))
    return list(out.values())


RUN_FIELDS = ("dataset", "seed", "epochs", "train_subset", "attack", "precision", "data")  # else: variant.*


def _within(key: str, declared: str) -> bool:
    """Whether flat setting `key` belongs to `declared` (or holds it: an empty model_kwargs beside pooling=avg)."""
    return key == declared or key.startswith(declared + ".") or declared.startswith(key + ".")


def _settings(run: dict) -> dict:
    """A run's fully resolved settings as flat keys, its seed and per-arm seed offset left out (the seed
    is the unit of replication), with the attack effort in place of modes and restarts."""
    flat = dict(_flat(run.get("config") or {}))
    modes = flat.pop("attack.modes", [NO_ROUNDING])
    flat["attack.gradient_attacks_per_example"] = flat.pop("attack.restarts", 1) * len(budget.gradient_modes(modes))
    for k in ("seed", "variant.seed_offset"):
        flat.pop(k, None)
    if run.get("data_fingerprint"):
        flat["data"] = run["data_fingerprint"]
    return flat


def _flat(obj, prefix: str = ""):
    if isinstance(obj, dict) and obj:
        for k, v in obj.items():
            yield from _flat(v, f"{prefix}.{k}" if prefix else str(k))
    else:
        yield prefix, obj


def claimed_reading(claim: Claim, state: str, test: Evidence) -> dict | None:
    """The source's claim beside the measurement: "replicated" (supported, and the claimed size inside the
    95% CI where a size is given), "direction only" (supported, the claimed size outside the CI), or the
    verdict itself."""
    c = claim.claimed
    if c is None:
        return None
    reading = state
    if state == "supported":
        sized = c.size is not None and not (test.ci[0] <= c.size <= test.ci[1])
        reading = "direction only" if sized else "replicated"
    return {"direction": c.direction, "size": c.size, "source": c.source, "reading": reading}


def _known(claim: Claim, profile: str) -> dict | None:
    k = claim.known
    return {"verdict": k.verdict, "evidence": k.evidence, "profile": k.profile} if k and k.profile == profile else None


def along_eps(claim: Claim, runs: Runs, alpha: float) -> list[dict]:
    """The effect and its 95% CI at every radius the finished runs evaluated (raw, not Holm-adjusted)."""
    done = [r for rs in runs.values() for r in rs if r["status"] == "done" and r["records"]]
    if not done:
        return []
    out = []
    for ek in sorted(done[0]["records"][0]["adv"], key=float):
        t = evidence(claim.better, claim.worse, runs, float(ek), alpha, claim.score)["test"]
        out.append({"eps": float(ek), "effect": t["effect"], "ci": t["ci"], "p_greater": t["p_greater"]})
    return out


def outcome(case: Case) -> str:
    """The test's outcome: failed, passed, xfailed (the recorded verdict, observed again), or skipped
    (computed but not decided)."""
    if case.failed_runs:  # under every profile: a crash in a hypothesis must turn CI red
        return "failed"
    if not (case.profile_decides and case.decides) or (case.reduced and not case.allow_reduced):
        return "skipped"
    if case.problems or case.parity:  # untestable, or confounded: neither a claim nor a null is shown
        return "failed"
    if case.known:
        return "xfailed" if case.verdict == case.known["verdict"] else "failed"
    if case.expect == "null":
        return "passed" if case.verdict == "inconclusive" else "failed"
    if case.expect == "equivalent":
        return "passed" if case.verdict == "equivalent" else "failed"
    if case.expect == "masked":  # a masking control: never supported, its masking named (`judge`)
        return "passed" if case.verdict != "supported" and case.masking_warnings else "failed"
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
    if case.verdict in ("inconclusive", "underpowered") and case.expect == "better":
        why = "no number of seeds (the effect is not in the claimed direction)" if not t.effect > 0 \
            else "more than 100,000"
        lines.append(f"seeds per variant a t-test would need for 80% power at this effect (a planning figure): "
                     f"{t.seeds_needed or why}")
    if case.known and case.verdict != case.known["verdict"]:
        lines.insert(0, f"VERDICT CHANGED: recorded {case.known['verdict']!r} ({case.known['evidence']}), "
                        f"observed {case.verdict!r}")
    elif case.known:
        lines.insert(0, f"the recorded verdict, observed again: {case.known['verdict']} ({case.known['evidence']})")
    if case.verdict == "underpowered":
        lines.append(f"underpowered design: the exact test's smallest p with {case.test.n} seeds is "
                     f"{case.design.get('p_min_exact', float('nan')):.3g} > {case.design.get('alpha_holm', float('nan')):.3g}"
                     f" (Holm's threshold); {case.design.get('seeds_for_exact')} seeds per arm can reach it")
    if case.equivalence:
        e = case.equivalence
        lines.append(f"equivalence within +-{e['margin']:g}: TOST p = {e['p_tost']:.3g}, "
                     f"{100 * e['ci_level']:.0f}% CI {e['ci'][0]:+.4f} .. {e['ci'][1]:+.4f}")
    lines += [f"confounded: {d}" for d in case.parity]
    lines += [f"failed run: {f}" for f in case.failed_runs]
    lines += [f"problem: {p}" for p in case.problems]
    lines += [f"masking check failed: {w}" for w in case.masking_warnings]
    lines += [f"note: {n}" for n in case.notes]
    if case.reduced:
        lines.append(f"reduced protocol{' (decided, --allow-reduced)' if case.allow_reduced else ''}: "
                     + "; ".join(case.reduced))
    if not case.profile_decides:
        lines.insert(0, f"not decided: the {case.profile} profile computes everything and decides no claim")
    elif case.reduced and not case.allow_reduced:
        lines.insert(0, "reported only: a reduced protocol decides nothing (pass --allow-reduced to decide)")
    elif not case.decides:
        lines.insert(0, f"reported only: the claim is decided at eps {case.deciding_eps:g}/255"
                     if case.eps != case.deciding_eps else
                     "reported only: this claim is a report (decides=False); its verdict is shown, not tested")
    return "\n".join(lines)


def evidence(better: str, worse: str, runs: Runs, eps: float, alpha: float, score: str, family: int = 1) -> dict:
    """Scores per seed and the test of 'better > worse' at one eps, on the strongest attack."""
    ek = eps_key(eps)
    pair = (better, worse)
    curves = {n: _curves([r for r in runs[n] if r["status"] == "done"], ek) for n in pair}
    cleans = [c for n in pair if curves[n] for c in curves[n][0]]
    lo, hi = stats.shared_range(cleans) if cleans else (math.nan, math.nan)
    scores = {n: stats.scores(curves[n][0], curves[n][1][STRONGEST], lo, hi) if curves[n]
              else {s: [] for s in stats.SCORES} for n in pair}
    test = inference.compare(scores[better][score], scores[worse][score], alpha, family)
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
        c = inference.compare(s[better], s[worse], alpha)
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


# ---- dose-response claims (harness.spec.config.TrendClaim) ----------------------------------------------------
def judge_trend(p: Plan, dataset: str, eps: float, family: dict[str, Runs], checks: dict | None, alpha: float,
                nodeid: str = "", module: str = "") -> Case:
    """The case of a TrendClaim `p.claim` on `dataset` at `eps`: one linear trend of the per-seed score
    along the dose (harness.judge.inference.trend; arms are the levels, ascending dose), Holm-adjusted across
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
    adj_claimed = inference.holm([fits[d]["trend"][f"p_{claim.expect}"] for d in names])[i]
    adj_other = inference.holm([fits[d]["trend"][f"p_{other}"] for d in names])[i]
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
    state = inference.verdict(adj_claimed, adj_other, alpha)
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
        problems=problems, notes=list(p.notes), reduced=reduced(p, fit["dataset_used"], dataset),
        allow_reduced=p.allow_reduced, verdict=state, outcome="",
        kind="trend", trend={"unit": claim.unit, "direction": claim.expect, "names": list(claim.variants),
                             **tr, **adj, "clean_cost": fit["clean_cost"]},
        claimed=claimed_reading(claim, state, test), known=_known(claim, p.profile.name))
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
