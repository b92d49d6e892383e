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
from ..spec.config import STRONGEST, ConfigError

RUN_SHIFT_FLOOR = 0.01  # accuracy (fraction of images); the smallest move of an arm's mean that counts
RUN_SHIFT_SPREADS = 2.0  # how many across-seed standard deviations an arm's mean may move


class BaselineError(ConfigError):
    """The baseline file exists but is not a results.json this harness reads (edited, truncated, an older
    format): the session runs without drift and says so in one line."""


def load_baseline(path) -> dict:
    """The results.json at path (or in the folder path), validated in full (harness.spec.results.validate).
    A path that does not exist is a ConfigError (the option is wrong); a file that is not a valid
    results.json is a BaselineError. Each is one line naming the file, the field and the fix."""
    path = Path(path)
    file = path / "results.json" if path.is_dir() else path
    fix = "pass the results.json of an earlier session (reports/<timestamp>/results.json)"
    if not file.is_file():
        raise ConfigError(f"--baseline {file} does not exist: {fix}")
    try:
        return results.load(file)
    except results.ResultsError as e:
        raise BaselineError(f"--baseline {e}") from None


def drift(current: dict, baseline: dict) -> dict:
    """Compare the current session's results.json document with the baseline's (see the module doc)."""
    session = baseline["session"]  # free-form: each field read as text, or None
    controller = session.get("controller") if isinstance(session.get("controller"), dict) else {}
    out = {"baseline": {"started": _text(session.get("started")), "git": _text(controller.get("git")),
                        "profile": _text(session.get("profile")), "partial": baseline["partial"]},
           "verdict_changes": [], "effect_shifts": [], "run_shifts": [], "only_in_current": [],
           "only_in_baseline": []}
    cur, base = _cases(current), _cases(baseline)
    out["only_in_current"] = [_where(c) | {"verdict": c["verdict"]} for k, c in cur.items() if k not in base]
    out["only_in_baseline"] = [_where(c) | {"verdict": c["verdict"]} for k, c in base.items() if k not in cur]
    clean_seen = set()
    for key, c in cur.items():
        b = base.get(key)
        if b is None:
            continue
        if c["verdict"] != b["verdict"]:
            out["verdict_changes"].append(_where(c) | {"baseline": b["verdict"], "current": c["verdict"]})
        ct, bt = c.get("test") or {}, b.get("test") or {}
        if _disjoint(ct.get("ci"), bt.get("ci")):
            out["effect_shifts"].append(_where(c) | {"baseline": {"effect": bt.get("effect"), "ci": bt["ci"]},
                                                     "current": {"effect": ct.get("effect"), "ci": ct["ci"]}})
        for arm in c.get("run_keys", {}):
            if arm not in b.get("run_keys", {}):
                continue
            metrics = [("adv", _eps_key(c["eps"]))]
            if (c["module"], c["dataset"], arm) not in clean_seen:
                clean_seen.add((c["module"], c["dataset"], arm))
                metrics.insert(0, ("clean", None))
            for metric, eps in metrics:
                shift = _run_shift(_finals(current, c, arm, metric, eps), _finals(baseline, b, arm, metric, eps))
                if shift:
                    where = {"module": c["module"], "dataset": c["dataset"], "eps": c["eps"] if eps else None}
                    out["run_shifts"].append(where | {"arm": arm, "metric": metric, **shift})
    out["changed"] = bool(out["verdict_changes"])
    return out


def _text(x) -> str | None:
    return None if x is None else str(x)


def _eps_key(eps) -> str:
    return f"{float(eps):g}"  # how records name an eps ("1", "0.5")


def _cases(doc: dict) -> dict:
    """{(module, dataset, eps key): case}; a repeated key keeps the last case, as results.add does."""
    return {(c["module"], c["dataset"], _eps_key(c["eps"])): c for c in doc.get("cases", [])}


def _where(case: dict) -> dict:
    return {"module": case["module"], "dataset": case["dataset"], "eps": case["eps"], "nodeid": case.get("nodeid")}


def _disjoint(a, b) -> bool:
    if not (isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b) == 2):
        return False
    if any(not isinstance(x, (int, float)) or math.isnan(x) for x in (*a, *b)):
        return False
    return a[1] < b[0] or b[1] < a[0]


def _finals(doc: dict, case: dict, arm: str, metric: str, eps: str | None) -> list[float]:
    """The final-epoch value of metric for each finished run of the arm that has it."""
    values = []
    for key in case["run_keys"].get(arm, []):
        run = doc.get("runs", {}).get(key)
        if not run or run.get("status") != "done" or not run.get("records"):
            continue
        last = max(run["records"], key=lambda r: r["epoch"])
        value = last.get("clean") if metric == "clean" else last.get("adv", {}).get(eps, {}).get(STRONGEST)
        if isinstance(value, (int, float)) and not math.isnan(value):
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
