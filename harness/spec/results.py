"""results.json: the one record of a pytest session, from which the report is rebuilt.

{
  "schema": SCHEMA, "partial": bool,          # partial: the session was interrupted or is still running
  "session": {...},                           # profile, overrides, options, environment, times, exit status
  "cases": [case, ...],                       # one per hypothesis test case: harness.spec.case.Case
  "runs": {key: run, ...},                    # every run a case refers to, with its per-epoch records
  "errors": [{"nodeid", "message"}],          # tests that stopped before producing a case
  "warnings": [str, ...],                     # what the harness noticed and handled
  "drift": Drift                              # with --baseline: what changed since (harness.report.drift)
  "designs": [design, ...]                    # factorial designs the cases' modules declare: harness.spec.design
}
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..cache import store
from .case import Case
from .design import Factorial
from .records import Run
from .schema import SchemaError, check, from_dict

SCHEMA = "advhyp-results/3"  # 3: typed runs (harness.spec.records) and cases (a head plus typed evidence)


class ResultsError(ValueError):
    """results.json is unreadable or does not follow the schema; the message says where."""


def new(session: dict) -> dict:
    return {"schema": SCHEMA, "partial": True, "session": session, "cases": [], "runs": {}, "errors": [],
            "warnings": [], "designs": []}


def add(doc: dict, payload: dict) -> None:
    """Merge one test's payload ({"case", "runs", "warnings", "env", "design"}) sent by a worker."""
    if payload.get("case"):
        doc["cases"] = [c for c in doc["cases"] if c["nodeid"] != payload["case"]["nodeid"]] + [payload["case"]]
        if payload.get("design"):  # recorded once, with every module that declares it
            design = payload["design"]
            known = next((d for d in doc.setdefault("designs", []) if d["title"] == design["title"]), None)
            if known is None:
                doc["designs"].append(known := {**design, "modules": []})
            known["modules"] = sorted({*known["modules"], payload["case"]["module"]})
    for k, run in payload.get("runs", {}).items():  # a run cases share keeps what each attached (a null
        doc["runs"][k] = {**doc["runs"].get(k, {}), **{f: v for f, v in run.items() if v is not None}}
        #                 control's has no final checks; another case's has)
    for w in payload.get("warnings", []):
        if w not in doc["warnings"]:
            doc["warnings"].append(w)
    if payload.get("env"):
        doc["session"].setdefault("workers", {}).update(payload["env"])


def write(folder: Path, doc: dict) -> Path:
    path = Path(folder) / "results.json"
    store.atomic_write(path, json.dumps(plain(doc), indent=1, allow_nan=True).encode(), "--reports-dir")
    return path


def plain(x):
    """Only JSON types (a numpy float or tensor would break the file and xdist's transport)."""
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return plain(dataclasses.asdict(x))
    if isinstance(x, dict):
        return {str(k): plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    if isinstance(x, bool) or x is None or isinstance(x, str):
        return x
    if isinstance(x, int):
        return int(x)
    if hasattr(x, "item"):
        return plain(x.item())
    if isinstance(x, float):
        return float(x)
    return str(x)


# ---- the drift record (harness.report.drift.drift's result): its schema, checked as a Case's is -------------
@dataclass(frozen=True)
class DriftBaseline:
    started: str | None
    git: str | None
    profile: str | None
    partial: bool | None


@dataclass(frozen=True)
class Where:  # a case, as drift names it
    module: str
    dataset: str
    eps: float
    nodeid: str | None


@dataclass(frozen=True)
class DriftCase(Where):  # a case found in one of the two sessions only
    verdict: str


@dataclass(frozen=True)
class VerdictChange(Where):
    baseline: str
    current: str


@dataclass(frozen=True)
class Effect:
    effect: float
    ci: list[float]


@dataclass(frozen=True)
class EffectShift(Where):
    baseline: Effect
    current: Effect


@dataclass(frozen=True)
class Spread:
    mean: float
    sd: float
    n: int


@dataclass(frozen=True)
class RunShift:
    module: str
    dataset: str
    eps: float | None  # None for the clean metric
    arm: str
    metric: str  # "clean" or "adv"
    baseline: Spread
    current: Spread
    delta: float
    limit: float


@dataclass(frozen=True)
class Drift:
    baseline: DriftBaseline
    verdict_changes: list[VerdictChange]
    effect_shifts: list[EffectShift]
    run_shifts: list[RunShift]
    only_in_current: list[DriftCase]
    only_in_baseline: list[DriftCase]
    changed: bool

    def __post_init__(self):
        for i, r in enumerate(self.run_shifts):
            if (r.metric, r.eps is None) not in (("clean", True), ("adv", False)):
                raise ValueError(f"run_shifts[{i}]: metric {r.metric!r} with eps {r.eps!r}: 'clean' has no eps, "
                                 f"'adv' has one")
        for i, e in enumerate(self.effect_shifts):
            if len(e.baseline.ci) != 2 or len(e.current.ci) != 2:
                raise ValueError(f"effect_shifts[{i}]: a ci is [low, high]")


@dataclass(frozen=True)
class ErrorRecord:
    """A hypothesis test that stopped before producing a case (bad data, a crash)."""
    nodeid: str
    message: str
    when: str = "call"


@dataclass(frozen=True)
class Results:
    """results.json, typed: what the report, the summary and drift read."""
    schema: str
    partial: bool
    session: dict  # the settings and environment as recorded (free-form: the report lists every leaf)
    cases: list[Case]
    runs: dict[str, Run]
    errors: list[ErrorRecord]
    warnings: list[str]
    drift: Drift | None = None  # against --baseline (harness.report.drift)
    designs: list[Factorial] = field(default_factory=list)


def load(folder_or_file: Path) -> Results:
    """The results.json in a session folder (or at this path), validated (ResultsError names what is wrong)."""
    path = Path(folder_or_file)
    path = path / "results.json" if path.is_dir() else path
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise ResultsError(f"{path} does not exist: pass a reports/<timestamp> folder written by a pytest "
                           f"run") from None
    except json.JSONDecodeError as e:
        raise ResultsError(f"{path} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}); "
                           f"it was truncated or edited") from None
    except UnicodeDecodeError:
        raise ResultsError(f"{path} is not text (a binary file): pass the results.json a pytest run wrote") from None
    except OSError as e:
        raise ResultsError(f"{path} cannot be read ({e.strerror}): check its permissions") from None
    return parse(doc, str(path))


def parse(doc: dict, where: str = "results.json") -> Results:
    """The typed document; ResultsError names the first field that is missing or of the wrong type (every
    field of every case and run: their dataclasses are the schema) or a case's run that is not there."""
    if not isinstance(doc, dict):
        raise ResultsError(f"{where}: the top level must be an object")
    if doc.get("schema") != SCHEMA:
        raise ResultsError(f"{where}: schema is {doc.get('schema')!r}, this harness reads {SCHEMA!r}; "
                           f"re-run the suite to produce a current results.json")
    try:
        runs = {k: Run.from_dict(r, f"{where}: runs[{k!r}]")
                for k, r in check(doc.get("runs"), dict, f"{where}: runs").items()}
        typed = from_dict(Results, {**doc, "runs": {}}, f"{where}: ")
    except SchemaError as e:
        raise ResultsError(str(e)) from None
    for i, case in enumerate(typed.cases):
        missing = next((k for keys in case.run_keys.values() for k in keys if k not in runs), None)
        if missing:
            raise ResultsError(f"{where}: cases[{i}] ({case.nodeid}) refers to run {missing!r}, which is not in 'runs'")
    return dataclasses.replace(typed, runs=runs)
