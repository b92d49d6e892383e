"""A session's results as flat tables, where researchers already work (pandas, R, seaborn, a spreadsheet).

    python -m harness.report.tables REPORT_FOLDER [--tensorboard DIR]

writes, beside results.json:
  results.csv  one row per run x epoch x eps x attack mode (long format): the accuracies, the run's settings
               (its RunConfig, flattened: `recipe.lr`, `attack.steps`; kwargs and lists as JSON) and the
               environment of the worker that recorded it (`env.torch`, `env.gpu`, `env.git`). A run that
               failed or is missing has one row, with its status and error and no epoch.
  cases.csv    one row per case: the claim, dataset, eps, verdict, effect with its 95% CI, the p-values, the
               seeds, the profile, and the keys of its runs (`run_keys`, to join with results.csv).
Cells: numbers as Python writes them (`nan` where nothing was measured), booleans `True`/`False`, nothing
as an empty cell, lists and dicts as JSON. Every session writes both; `python -m harness.report` rewrites
them with the page; --tensorboard also writes TensorBoard event files (harness.report.tracker).
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import sys
from pathlib import Path

from ..cache import store
from ..spec import results
from ..spec.case import Case
from ..spec.config import ConfigError
from ..spec.records import Run


def cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def flat(obj, prefix: str = "") -> dict:
    """A dataclass (or dict) as {dotted name: value}; dataclasses and dicts open up, other values stay."""
    items = dataclasses.asdict(obj).items() if dataclasses.is_dataclass(obj) else obj.items()
    out = {}
    for name, value in items:
        if isinstance(value, dict) and not name.endswith("kwargs"):  # kwargs: one JSON cell, whatever the keys
            out.update(flat(value, f"{prefix}{name}."))
        else:
            out[prefix + name] = value
    return out


def run_settings(run: Run, session: dict) -> dict:
    """A run's settings (its RunConfig, the variant's fields at the top), how and where it was computed."""
    config = flat(run.config)
    settings = {k.removeprefix("variant."): v for k, v in config.items()}
    env = next((e for name, e in session.get("workers", {}).items() if name.endswith(f":{run.device}")),
               session.get("controller", {}))  # the worker on the run's device, else the controller
    return {**settings, "dataset_used": run.dataset_used, "data_fingerprint": run.data_fingerprint,
            "code_version": run.code_version, "device": run.device,
            **flat(run.trained_with or {}, "trained_with."), "train_wall_seconds": run.train_wall_seconds,
            "error": run.error, **flat(env, "env.")}


def run_rows(run: Run, session: dict) -> list[dict]:
    head = {"run_key": run.key, "label": run.label, "status": run.status}
    settings = run_settings(run, session)
    rows = [{**head, "epoch": r.epoch, "eps": float(eps), "attack": attack, "adv_acc": acc, "clean_acc": r.clean,
             "train_loss": r.train_loss, "epoch_seconds": r.seconds, "train_seconds": r.train_seconds, **settings}
            for r in run.records for eps, modes in sorted(r.adv.items(), key=lambda e: float(e[0]))
            for attack, acc in sorted(modes.items())]
    return rows or [{**head, **settings}]


def case_row(case: Case) -> dict:
    """The case's one row of cases.csv (and its JUnit properties): every field of a Case the tables name."""
    t = case.test
    return {"nodeid": case.nodeid, "module": case.module, "statement": case.statement, "kind": case.kind,
            "dataset": case.dataset, "dataset_used": case.dataset_used, "eps": case.eps,
            "deciding_eps": case.deciding_eps, "deciding": case.decides, "better": case.better,
            "worse": case.worse, "expect": case.expect, "verdict": case.verdict, "outcome": case.outcome,
            "primary": case.primary, "attack": case.attack, "effect": t.effect, "ci_low": t.ci[0],
            "ci_high": t.ci[1], "p_greater": t.p_greater, "p_less": t.p_less, "p_perm": t.p_perm,
            "p_min": t.p_min, "p_adj_greater": t.p_adj_greater, "p_adj_less": t.p_adj_less, "method": t.method,
            "n": t.n, "seeds": case.seeds, "epochs": case.epochs, "reading": case.reading,
            "profile": case.profile, "profile_decides": case.profile_decides, "alpha": case.alpha,
            "level": case.level,
            "reduced": case.reduced, "allow_reduced": case.allow_reduced, "problems": case.problems,
            "masking_warnings": case.masking_warnings, "failed_runs": case.failed_runs, "run_keys": case.run_keys}


JUNIT = ("verdict", "deciding", "effect", "ci_low", "ci_high", "p_greater", "p_less", "p_perm", "p_adj_greater")


def junit_properties(case: Case) -> list[tuple[str, str]]:
    """What a hypothesis test's JUnit testcase carries as <property> elements (junit_family xunit1)."""
    row = case_row(case)
    return [(f"advhyp.{name}", cell(row[name])) for name in JUNIT]


def to_csv(rows: list[dict]) -> bytes:
    columns = list(dict.fromkeys(k for row in rows for k in row))  # every row's columns, in first-seen order
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, restval="")
    writer.writeheader()
    writer.writerows({k: cell(v) for k, v in row.items()} for row in rows)
    return out.getvalue().encode()


def write(folder: Path, doc: results.Results | None = None) -> list[Path]:
    """results.csv and cases.csv in `folder`, from `doc` (default: the folder's results.json)."""
    folder = Path(folder)
    doc = doc or results.load(folder)
    tables = {"results.csv": [row for key in sorted(doc.runs) for row in run_rows(doc.runs[key], doc.session)],
              "cases.csv": [case_row(c) for c in sorted(doc.cases, key=lambda c: (c.module, c.dataset, c.eps))]}
    for name, rows in tables.items():
        store.atomic_write(folder / name, to_csv(rows), "--reports-dir")
    return [folder / name for name in tables]


def export(folder: Path, tensorboard: str | None = None) -> None:
    """The controller's exports at the end of a session: the tables, and TensorBoard's files where asked.
    A failure is one line on stderr (results.json is saved: they can be rebuilt from it)."""
    try:
        doc = results.load(folder)
        write(folder, doc)
        if tensorboard:
            from . import tracker
            tracker.write(Path(tensorboard), doc, Path(folder).name)
    except (Exception, KeyboardInterrupt) as e:
        sys.stderr.write(f"advhyp: could not export {folder}'s tables ({type(e).__name__}: {e}); rebuild them "
                         f"with: python -m harness.report.tables {folder}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.report.tables", description=__doc__.split("\n")[0])
    parser.add_argument("folder", help="a session folder, reports/<timestamp>, holding results.json")
    parser.add_argument("--tensorboard", metavar="DIR", default="",
                        help="also write TensorBoard event files under DIR/<session folder name>/")
    args = parser.parse_args(argv)
    path = Path(args.folder)
    try:
        doc = results.load(path)
        folder = path if path.is_dir() else path.parent
        paths = write(folder, doc)
        if args.tensorboard:
            from . import tracker
            paths.append(tracker.write(tracker.check(Path(args.tensorboard), "--tensorboard"), doc, folder.name))
    except (results.ResultsError, ConfigError) as e:
        print(f"harness.report.tables: {e}", file=sys.stderr)
        return 2
    except store.StoreError as e:
        print(f"harness.report.tables: {e}", file=sys.stderr)
        return 1
    print("\n".join(map(str, paths)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
