"""results.json: the one record of a pytest session, from which the report is rebuilt.

{
  "schema": SCHEMA, "partial": bool,          # partial: the session was interrupted or is still running
  "session": {...},                           # profile, overrides, options, environment, times, exit status
  "cases": [case, ...],                       # one per hypothesis test case: harness.spec.case.Case
  "runs": {key: run, ...},                    # every run a case refers to, with its per-epoch records
  "errors": [{"nodeid", "message"}],          # tests that stopped before producing a case
  "warnings": [str, ...]                      # what the harness noticed and handled
}
"""
from __future__ import annotations

import json
from pathlib import Path

from ..cache import store
from .case import Case, SchemaError, check, check_run

SCHEMA = "advhyp-results/2"


class ResultsError(ValueError):
    """results.json is unreadable or does not follow the schema; the message says where."""


def new(session: dict) -> dict:
    return {"schema": SCHEMA, "partial": True, "session": session, "cases": [], "runs": {}, "errors": [],
            "warnings": []}


def add(doc: dict, payload: dict) -> None:
    """Merge one test's payload ({"case", "runs", "warnings", "env"}) sent by a worker."""
    if payload.get("case"):
        doc["cases"] = [c for c in doc["cases"] if c["nodeid"] != payload["case"]["nodeid"]] + [payload["case"]]
    for k, run in payload.get("runs", {}).items():  # a run cases share keeps what each attached (a null
        doc["runs"][k] = {**doc["runs"].get(k, {}), **run}  # control's has no final checks; another case's has)
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


def load(folder_or_file: Path) -> dict:
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
    validate(doc, str(path))
    return doc


def validate(doc: dict, where: str = "results.json") -> None:
    """Raise ResultsError naming the first field that is missing or of the wrong type: every field of every
    case (harness.spec.case.Case is the schema) and of every run."""
    if not isinstance(doc, dict):
        raise ResultsError(f"{where}: the top level must be an object")
    if doc.get("schema") != SCHEMA:
        raise ResultsError(f"{where}: schema is {doc.get('schema')!r}, this harness reads {SCHEMA!r}; "
                           f"re-run the suite to produce a current results.json")
    for name, kind in (("partial", bool), ("session", dict), ("cases", list), ("runs", dict),
                       ("errors", list), ("warnings", list)):
        if not isinstance(doc.get(name), kind):
            raise ResultsError(f"{where}: field {name!r} must be a {'list' if kind is list else 'an object' if kind is dict else kind.__name__}")
    try:
        for k, run in doc["runs"].items():
            check_run(run, f"{where}: runs[{k!r}]")
        for i, c in enumerate(doc["cases"]):
            case = Case.from_dict(c, f"{where}: cases[{i}]")
            for keys in case.run_keys.values():
                for k in keys:
                    if k not in doc["runs"]:
                        raise ResultsError(f"{where}: cases[{i}] ({case.nodeid}) refers to run {k!r}, "
                                           f"which is not in 'runs'")
        for i, w in enumerate(doc["warnings"]):
            check(w, str, f"{where}: warnings[{i}]")
        for i, e in enumerate(doc["errors"]):
            check(e, dict[str, str], f"{where}: errors[{i}]")
    except SchemaError as e:
        raise ResultsError(str(e)) from None
