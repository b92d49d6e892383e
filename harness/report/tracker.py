"""A session in TensorBoard (`--tensorboard DIR`, or `python -m harness.report.tables FOLDER --tensorboard DIR`).

Under DIR/<session folder name>/, one TensorBoard run per training run and per case:
  runs/<run label>/     per epoch (the step): `clean`, `adv/eps<E>/<attack mode>` (accuracies), `train_loss`
                        (a label two runs share gets the run's key: `<label>-<key[:8]>`)
  cases/<module>/<dataset>/eps<E>/
                        at step 0: `effect`, `ci_low`, `ci_high`, `p_greater`, `p_perm` (the scalars of cases.csv)
                        and the text `verdict` ("**supported** (passed): the claim")
`tensorboard --logdir DIR` shows them; writing a session again replaces its event files. The optional extra
`tensorboard` installs the package (pip install -e '.[tensorboard]'); torch writes the files.
"""
from __future__ import annotations

import importlib.util
import re
from collections import Counter
from pathlib import Path

from ..cache import store
from ..spec import results
from ..spec.config import ConfigError, eps_key
from .tables import case_row

CASE_SCALARS = ("effect", "ci_low", "ci_high", "p_greater", "p_perm")


def check(path: Path, flag: str = "--tensorboard") -> Path:
    """`path` made absolute, if TensorBoard's files can be written there: else one line naming the fix."""
    store.check_writable(path, flag)
    if importlib.util.find_spec("tensorboard") is None:
        raise ConfigError(f"{flag} {path} needs the tensorboard package: pip install tensorboard (or the "
                          f"suite's extra: pip install -e '.[tensorboard]')")
    return Path(path).absolute()


def folder_name(text: str) -> str:
    """A label as a relative folder: its '/' parts kept, anything else odd made '_' (no '..', no root)."""
    parts = [re.sub(r"[^\w.=,\[\]+-]", "_", p) for p in text.split("/")]
    return "/".join(p for p in parts if p.strip(".")) or "_"


def write(root: Path, doc: results.Results, session: str) -> Path:
    """DIR/<session>/: the event files of every run and case of `doc`; returns that folder."""
    from torch.utils.tensorboard import SummaryWriter  # torch's writer; needs the tensorboard package

    top = Path(root) / folder_name(session)
    for old in top.rglob("events.out.tfevents.*"):  # written by an earlier export of this session
        old.unlink()
    shared = Counter(r.label for r in doc.runs.values())
    for key in sorted(doc.runs):
        run = doc.runs[key]
        name = run.label if shared[run.label] == 1 else f"{run.label}-{key[:8]}"
        with SummaryWriter(str(top / "runs" / folder_name(name))) as w:
            for r in run.records:
                w.add_scalar("clean", r.clean, r.epoch)
                w.add_scalar("train_loss", r.train_loss, r.epoch)
                for eps, modes in r.adv.items():
                    for attack, acc in modes.items():
                        w.add_scalar(f"adv/eps{eps}/{attack}", acc, r.epoch)
    for case in doc.cases:
        row = case_row(case)
        where = top / "cases" / folder_name(f"{case.module}/{case.dataset}/eps{eps_key(case.eps)}")
        with SummaryWriter(str(where)) as w:
            for name in CASE_SCALARS:
                w.add_scalar(name, row[name], 0)
            w.add_text("verdict", f"**{case.verdict}** ({case.outcome}): {case.statement}", 0)
    return top
