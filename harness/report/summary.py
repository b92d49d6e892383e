"""A session's results as a GitHub-flavoured Markdown job summary (what a CI run's summary page shows).

    python -m harness.report.summary REPORT_FOLDER_OR_results.json [--wall-seconds N]

prints: the session (profile, times, git, exit status), one table row per case (hypothesis, case, verdict,
effect [95% CI], outcome), the tests that stopped before producing a case, the drift against a baseline
where results.json has one ("drift", see harness/report/drift.py), the wall time, and the report folder.
A missing or bad file prints one line on stderr and exits 2.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from ..spec import results


def markdown(doc: dict, folder: Path, wall_seconds: float | None = None) -> str:
    s = doc["session"]
    lines = [f"## advhyp: {len(doc['cases'])} cases, {s.get('profile')} profile", ""]
    lines.append(f"Started {s.get('started')}, finished {s.get('finished', '(not finished)')}; "
                 f"git {_code(s.get('controller', {}).get('git'))}; pytest exit status {s.get('exit_status')}.")
    if doc["partial"]:
        lines.append("")
        lines.append("**Partial:** the session was interrupted; the results below are what finished.")
    lines += ["", "| hypothesis | case | verdict | effect [95% CI] | outcome |", "|---|---|---|---|---|"]
    for c in sorted(doc["cases"], key=lambda c: (c["module"], c["dataset"], c["eps"])):
        t = c["test"]
        lines.append(_row(c["module"], _case(c), f"**{c['verdict']}**", _effect(t.get("effect"), t.get("ci")),
                          c["outcome"]))
    if doc["errors"]:
        lines += ["", f"**{len(doc['errors'])} test(s) stopped before producing a case:**", ""]
        lines += [f"- {_code(e['nodeid'])}: {_cell(_last_line(e.get('message', '')))}" for e in doc["errors"]]
    if doc.get("drift"):
        lines += ["", *drift_markdown(doc["drift"])]
    lines.append("")
    if wall_seconds is not None:
        lines.append(f"Wall time: {_duration(wall_seconds)}.  ")
    lines.append(f"Report: {_code(str(folder))} (index.html, results.json); {len(doc['warnings'])} warning(s) there.")
    return "\n".join(lines) + "\n"


def drift_markdown(d: dict) -> list[str]:
    """The drift section (harness.report.drift.drift's result) as Markdown lines."""
    b = d["baseline"]
    lines = [f"### Drift against {b.get('started')} (git {_code(b.get('git'))}, {b.get('profile')} profile"
             f"{', partial' if b.get('partial') else ''})", ""]
    if not any(d[k] for k in ("verdict_changes", "effect_shifts", "run_shifts", "only_in_current",
                              "only_in_baseline")):
        return lines + ["No verdict changed; no effect or run moved beyond its spread."]
    if d["verdict_changes"]:
        lines += ["**Verdicts changed:**", "", "| hypothesis | case | baseline | now |", "|---|---|---|---|"]
        lines += [_row(v["module"], _case(v), v["baseline"], f"**{v['current']}**") for v in d["verdict_changes"]]
        lines.append("")
    if d["effect_shifts"]:
        lines += ["**Effects whose 95% CIs no longer overlap:**", "", "| hypothesis | case | baseline | now |",
                  "|---|---|---|---|"]
        lines += [_row(e["module"], _case(e), _effect(e["baseline"]["effect"], e["baseline"]["ci"]),
                       _effect(e["current"]["effect"], e["current"]["ci"])) for e in d["effect_shifts"]]
        lines.append("")
    if d["run_shifts"]:
        lines += ["**Runs whose final accuracy moved beyond their seed spread** (mean ± sd over seeds):", "",
                  "| hypothesis | dataset | arm | metric | baseline | now | change | allowed |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in d["run_shifts"]:
            metric = "clean" if r["metric"] == "clean" else f"adversarial, eps {r['eps']:g}/255"
            lines.append(_row(r["module"], r["dataset"], r["arm"], metric, _spread(r["baseline"]),
                              _spread(r["current"]), f"{r['delta']:+.3f}", f"±{r['limit']:.3f}"))
        lines.append("")
    for key, what in (("only_in_current", "Only tonight"), ("only_in_baseline", "Only in the baseline")):
        if d[key]:
            lines.append(f"{what}: " + "; ".join(f"{c['module']} ({_case(c)}, {c['verdict']})" for c in d[key]) + ".")
    return lines


def _row(*cells) -> str:
    return "| " + " | ".join(_cell(str(c)) for c in cells) + " |"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")  # a pipe or newline would break the table


def _code(text) -> str:
    return f"`{str(text).replace('`', '')}`"


def _case(c: dict) -> str:
    return f"{c['dataset']}, eps {c['eps']:g}/255"


def _number(x, fmt: str) -> str:
    return "n/a" if not isinstance(x, (int, float)) or math.isnan(x) else format(x, fmt)


def _effect(effect, ci) -> str:
    lo, hi = ci if isinstance(ci, (list, tuple)) and len(ci) == 2 else (None, None)
    return f"{_number(effect, '+.4f')} [{_number(lo, '+.4f')}, {_number(hi, '+.4f')}]"


def _spread(side: dict) -> str:
    return f"{side['mean']:.3f} ± {side['sd']:.3f} (n={side['n']})"


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    h, m, s = s // 3600, s % 3600 // 60, s % 60
    return f"{h} h {m:02d} min {s:02d} s" if h else f"{m} min {s:02d} s"


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):  # NaN fails too
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds >= 0, e.g. --wall-seconds 3723")
    return value


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.report.summary", description=__doc__.split("\n")[0])
    parser.add_argument("report", help="a reports/<timestamp> folder or its results.json")
    parser.add_argument("--wall-seconds", type=_seconds, default=None, help="the session's wall time, in seconds")
    args = parser.parse_args(argv)
    path = Path(args.report)
    try:
        doc = results.load(path)
    except results.ResultsError as e:
        print(f"harness.report.summary: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"harness.report.summary: cannot read {path} ({e.strerror}): pass a reports/<timestamp> folder",
              file=sys.stderr)
        return 2
    try:
        text = markdown(doc, path if path.is_dir() else path.parent, args.wall_seconds)
    except (AttributeError, KeyError, TypeError, ValueError) as e:  # validated, but for the free-form session
        print(f"harness.report.summary: {path}: a field is missing or malformed ({type(e).__name__}: {e}); "
              f"re-run the session", file=sys.stderr)
        return 2
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
