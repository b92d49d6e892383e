"""Verdict drift: what changed between two sessions' results.json (this night against the last).

Cases are matched by (module, dataset, eps), not by nodeid, which changes when a test is renamed or
parametrized differently. For each matched case, drift reports:

- a verdict change: the baseline's verdict differs from the current one (this alone sets "changed");
- an effect shift: the two 95% confidence intervals of the case's effect no longer overlap (touching
  intervals overlap; a NaN bound compares nothing);
- a run shift, per arm of the case and per metric: the final clean accuracy, and the final adversarial
  accuracy (the `strongest` attack at the case's eps), of the arm's finished runs. With m and s the mean
  and across-seed sample standard deviation (n - 1; 0 for a single seed) of that final value over the
  arm's seeds, the arm shifted when |m_current - m_baseline| > max(2 * max(s_current, s_baseline),
  RUN_SHIFT_FLOOR). The floor (0.01, an accuracy) keeps seeds that agree exactly from flagging any move.
  Clean accuracy is reported once per (module, dataset, arm), since every eps case shares its runs.

Cases found in only one of the two sessions are listed. Everything returned is plain JSON.
Pure: no torch, no I/O except load_baseline, which validates the baseline in full: drift itself then
meets only the shapes the schema allows.
"""
from __future__ import annotations

import math
import statistics
from pathlib import Path

from ..spec import results
from ..spec.config import STRONGEST, ConfigError, eps_key

RUN_SHIFT_FLOOR = 0.01  # accuracy (fraction of images); the smallest move of an arm's mean that counts
RUN_SHIFT_SPREADS = 2.0  # how many across-seed standard deviations an arm's mean may move


class BaselineError(ConfigError):
    """The baseline file exists but is not a results.json this harness reads (edited, truncated, an older
    format): the session runs without drift and says so in one line."""


def load_baseline(path) -> results.Results:
    """The results.json at path (or in the folder path), validated in full as the report reads it. A path
    that does not exist is a ConfigError (the option is wrong); a file that is not a valid results.json is
    a BaselineError. Each is one line naming the file, the field and the fix."""
    path = Path(path)
    file = path / "results.json" if path.is_dir() else path
    if not file.is_file():
        raise ConfigError(f"--baseline {file} does not exist: pass the results.json of an earlier session "
                          f"(reports/<timestamp>/results.json)")
    try:
        return results.load(file)
    except results.ResultsError as e:
        raise BaselineError(f"--baseline {e}") from None


def drift(current: results.Results, baseline: results.Results) -> dict:
    """Compare the current session's results with the baseline's (see the module doc)."""
    session = baseline.session  # free-form: each field read as text, or None
    controller = session.get("controller") if isinstance(session.get("controller"), dict) else {}
    out = {"baseline": {"started": _text(session.get("started")), "git": _text(controller.get("git")),
                        "profile": _text(session.get("profile")), "partial": baseline.partial},
           "verdict_changes": [], "effect_shifts": [], "run_shifts": [], "only_in_current": [],
           "only_in_baseline": []}
    cur, base = _cases(current), _cases(baseline)
    out["only_in_current"] = [_where(c) | {"verdict": c.verdict} for k, c in cur.items() if k not in base]
    out["only_in_baseline"] = [_where(c) | {"verdict": c.verdict} for k, c in base.items() if k not in cur]
    clean_seen = set()
    for key, c in cur.items():
        b = base.get(key)
        if b is None:
            continue
        if c.verdict != b.verdict:
            out["verdict_changes"].append(_where(c) | {"baseline": b.verdict, "current": c.verdict})
        if _disjoint(c.test.ci, b.test.ci):
            out["effect_shifts"].append(_where(c) | {"baseline": {"effect": b.test.effect, "ci": b.test.ci},
                                                     "current": {"effect": c.test.effect, "ci": c.test.ci}})
        for arm in c.run_keys:
            if arm not in b.run_keys:
                continue
            metrics = [("adv", c.eps)]
            if (c.module, c.dataset, arm) not in clean_seen:
                clean_seen.add((c.module, c.dataset, arm))
                metrics.insert(0, ("clean", None))
            for metric, eps in metrics:
                shift = _run_shift(_finals(current, c, arm, eps), _finals(baseline, b, arm, eps))
                if shift:
                    where = {"module": c.module, "dataset": c.dataset, "eps": c.eps if eps else None}
                    out["run_shifts"].append(where | {"arm": arm, "metric": metric, **shift})
    out["changed"] = bool(out["verdict_changes"])
    return out


def _text(x) -> str | None:
    return None if x is None else str(x)


def _cases(doc: results.Results) -> dict:
    """{(module, dataset, eps key): case}; a repeated key keeps the last case, as results.add does."""
    return {(c.module, c.dataset, eps_key(c.eps)): c for c in doc.cases}


def _where(case) -> dict:
    return {"module": case.module, "dataset": case.dataset, "eps": case.eps, "nodeid": case.nodeid}


def _disjoint(a, b) -> bool:
    if any(math.isnan(x) for x in (*a, *b)):
        return False
    return a[1] < b[0] or b[1] < a[0]


def _finals(doc: results.Results, case, arm: str, eps: float | None) -> list[float]:
    """The final-epoch clean accuracy (eps None), or strongest adversarial accuracy at eps, of each finished
    run of the arm."""
    values = []
    for key in case.run_keys.get(arm, []):
        run = doc.runs[key]
        if not run.done:
            continue
        last = run.records[-1]
        value = last.clean if eps is None else last.adv.get(eps_key(eps), {}).get(STRONGEST, math.nan)
        if not math.isnan(value):
            values.append(float(value))
    return values


def _run_shift(cur: list[float], base: list[float]) -> dict | None:
    """The shift of an arm's mean final value, when it exceeds the seed spread (None otherwise)."""
    if not cur or not base:
        return None
    sd = [statistics.stdev(v) if len(v) > 1 else 0.0 for v in (cur, base)]
    limit = max(RUN_SHIFT_SPREADS * max(sd), RUN_SHIFT_FLOOR)
    m_cur, m_base = statistics.fmean(cur), statistics.fmean(base)
    if abs(m_cur - m_base) <= limit:
        return None
    return {"baseline": {"mean": m_base, "sd": sd[1], "n": len(base)},
            "current": {"mean": m_cur, "sd": sd[0], "n": len(cur)}, "delta": m_cur - m_base, "limit": limit}
