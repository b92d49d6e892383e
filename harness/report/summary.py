"""A session's results as a GitHub-flavoured Markdown job summary (what a CI run's summary page shows).

    python -m harness.report.summary REPORT_FOLDER_OR_results.json [--wall-seconds N]

prints: the session (profile, times, git, exit status), one table row per case (hypothesis, case, verdict,
effect [95% CI], outcome), the tests that stopped before producing a case, the drift against a baseline
where results.json has one ("drift", see harness/report/drift.py), the wall time, and the report folder;
in at most 1,000,000 bytes (GitHub's step summary shows 1 MiB), rows past it left out and counted.
A missing or bad file prints one line on stderr and exits 2.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from ..spec import results


LIMIT = 1_000_000  # bytes: under the 1 MiB (1,048,576) GitHub shows of a step's summary


def markdown(doc: results.Results, folder: Path, wall_seconds: float | None = None, limit: int = LIMIT) -> str:
    """The summary in at most `limit` bytes: errors and drift take at most half the room, case rows the
    rest; what does not fit is left out, and a line says how many and where they all are."""
    s = doc.session
    head = [f"## advhyp: {len(doc.cases)} cases, {s.get('profile')} profile", ""]
    head.append(f"Started {s.get('started')}, finished {s.get('finished', '(not finished)')}; "
                f"git {_code(s.get('controller', {}).get('git'))}; pytest exit status {s.get('exit_status')}.")
    if doc.partial:
        head.append("")
        head.append("**Partial:** the session was interrupted; the results below are what finished.")
    head += ["", "| hypothesis | case | verdict | effect [95% CI] | outcome |", "|---|---|---|---|---|"]
    rows = [_row(c.module, _case(c), f"**{c.verdict}**" + (f" (reduced: {'; '.join(c.reduced)})" if c.reduced
                                                                else ""), _effect(c.test.effect, c.test.ci), c.outcome)
            for c in sorted(doc.cases, key=lambda c: (c.module, c.dataset, c.eps))]
    rest = []
    if doc.errors:
        rest += ["", f"**{len(doc.errors)} test(s) stopped before producing a case:**", ""]
        rest += [f"- {_code(e.nodeid)}: {_cell(_last_line(e.message))}" for e in doc.errors]
    if doc.drift:
        rest += ["", *drift_markdown(doc.drift)]
    foot = [""]
    if wall_seconds is not None:
        foot.append(f"Wall time: {_duration(wall_seconds)}.  ")
    foot.append(f"Report: {_code(str(folder))} (index.html, results.json); {len(doc.warnings)} warning(s) there.")
    where = f"{_code(str(folder))}: index.html and cases.csv"
    room = limit - _size(head + foot)
    rest = _fit(rest, room // 2, f"lines of errors and drift left out here; all of them are in {where}")
    rows = _fit(rows, room - _size(rest), f"case rows left out here (a step summary shows 1 MiB); every case "
                                          f"is in {where}")
    return "\n".join(head + rows + rest + foot) + "\n"


def _size(lines: list[str]) -> int:
    return sum(len(line.encode()) + 1 for line in lines)


def _fit(lines: list[str], room: int, what: str) -> list[str]:
    """`lines` if they fit in `room` bytes; else the first that fit with a note saying how many did not."""
    if _size(lines) <= room:
        return lines
    kept, used = [], _size(["", f"*{len(lines)} {what}.*"])  # the note, at its longest
    for line in lines:
        used += len(line.encode()) + 1
        if used > room:
            break
        kept.append(line)
    return kept + ["", f"*{len(lines) - len(kept)} {what}.*"]


def drift_markdown(d: results.Drift) -> list[str]:
    """The drift section as Markdown lines."""
    b = d.baseline
    lines = [f"### Drift against {b.started} (git {_code(b.git)}, {b.profile} profile"
             f"{', partial' if b.partial else ''})", ""]
    if not (d.verdict_changes or d.effect_shifts or d.run_shifts or d.only_in_current or d.only_in_baseline):
        return lines + ["No verdict changed; no effect or run moved beyond its spread."]
    if d.verdict_changes:
        lines += ["**Verdicts changed:**", "", "| hypothesis | case | baseline | now |", "|---|---|---|---|"]
        lines += [_row(v.module, _case(v), v.baseline, f"**{v.current}**") for v in d.verdict_changes]
        lines.append("")
    if d.effect_shifts:
        lines += ["**Effects whose 95% CIs no longer overlap:**", "", "| hypothesis | case | baseline | now |",
                  "|---|---|---|---|"]
        lines += [_row(e.module, _case(e), _effect(e.baseline.effect, e.baseline.ci),
                       _effect(e.current.effect, e.current.ci)) for e in d.effect_shifts]
        lines.append("")
    if d.run_shifts:
        lines += ["**Runs whose final accuracy moved beyond their seed spread** (mean ± sd over seeds):", "",
                  "| hypothesis | dataset | arm | metric | baseline | now | change | allowed |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in d.run_shifts:
            metric = "clean" if r.metric == "clean" else f"adversarial, eps {r.eps:g}/255"
            lines.append(_row(r.module, r.dataset, r.arm, metric, _spread(r.baseline), _spread(r.current),
                              f"{r.delta:+.3f}", f"±{r.limit:.3f}"))
        lines.append("")
    for cases, what in ((d.only_in_current, "Only tonight"), (d.only_in_baseline, "Only in the baseline")):
        if cases:
            lines.append(f"{what}: " + "; ".join(f"{c.module} ({_case(c)}, {c.verdict})" for c in cases) + ".")
    return lines


def _row(*cells) -> str:
    return "| " + " | ".join(_cell(str(c)) for c in cells) + " |"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")  # a pipe or newline would break the table


def _code(text) -> str:
    return f"`{str(text).replace('`', '')}`"


def _case(c: results.Where) -> str:
    return f"{c.dataset}, eps {c.eps:g}/255"


def _number(x, fmt: str) -> str:
    return "n/a" if not isinstance(x, (int, float)) or math.isnan(x) else format(x, fmt)


def _effect(effect, ci) -> str:
    lo, hi = ci if isinstance(ci, (list, tuple)) and len(ci) == 2 else (None, None)
    return f"{_number(effect, '+.4f')} [{_number(lo, '+.4f')}, {_number(hi, '+.4f')}]"


def _spread(side: results.Spread) -> str:
    return f"{side.mean:.3f} ± {side.sd:.3f} (n={side.n})"


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
