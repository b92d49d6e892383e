"""The report's figures: matplotlib (Agg) -> palette PNG bytes. One figure per claim and dataset (its eps
drawn together), one of its final-checkpoint curves, a dose's; and the board's thumbnails as small SVG.

Inputs: harness.spec.case.Case objects and, per variant, its runs (harness.spec.records.Run).
Runs that failed or have no records are left out of every plot; a panel with nothing to show says so.
"""
from __future__ import annotations

import functools
import io
import math

import matplotlib

matplotlib.use("Agg")  # no display: the report is rendered in pytest's controller and in CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: E402
from PIL import Image  # noqa: E402  (matplotlib's own dependency)

from ..judge import stats  # noqa: E402
from ..spec.config import STRONGEST, eps_key  # noqa: E402
from ..spec.records import FinalEvaluation, Run  # noqa: E402

DPI = 80
MODE_STYLES = {STRONGEST: "-", "off": "--", "bpda": ":", "exact": "-.", "pgd": (0, (1, 3))}


def colors(variants) -> dict[str, str]:
    """One colour per variant, stable within a case (the better arm first)."""
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return {v: matplotlib.colors.to_hex(cycle[i % len(cycle)]) for i, v in enumerate(variants)}  # hex: also for HTML


def finished(runs: list[Run]) -> list[Run]:
    return [r for r in runs if r.done]


def series(run: Run, ek: str, mode: str) -> tuple[list, list, list]:
    """(epochs, clean, adv) of one run at eps key `ek` under attack `mode`; records lacking it are skipped."""
    rows = [(r.epoch, r.clean, r.adv[ek][mode]) for r in run.records if mode in r.adv.get(ek, {})]
    return tuple(list(col) for col in zip(*rows)) if rows else ([], [], [])


def modes(runs: list[Run], ek: str) -> list[str]:
    """The attack modes worth a line: the strongest, plus each mode when there are several (with one,
    e.g. plain `pgd`, it equals the strongest)."""
    found = []
    for r in runs:
        for rec in r.records:
            for m in rec.adv.get(ek, {}):
                if m not in found:
                    found.append(m)
    others = [m for m in found if m != STRONGEST]
    return [STRONGEST] + (others if len(others) > 1 else [])


def epoch_means(runs: list[Run], ek: str, mode: str) -> tuple[list, list, list]:
    """Per-epoch means across seeds: (epochs, mean clean, mean adv), each epoch over the seeds that have it."""
    by_epoch: dict[int, list] = {}
    for r in runs:
        for e, c, a in zip(*series(r, ek, mode)):
            by_epoch.setdefault(e, []).append((c, a))
    epochs = sorted(by_epoch)
    return (epochs, [float(np.mean([p[0] for p in by_epoch[e]])) for e in epochs],
            [float(np.mean([p[1] for p in by_epoch[e]])) for e in epochs])


def plain_text(draw):
    """Names come from results.json: draw them as text, so a `$` in a variant name is not parsed as TeX
    (unbalanced TeX would raise and lose the whole report)."""
    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        with plt.rc_context({"text.parse_math": False}):
            return draw(*args, **kwargs)
    return wrapper


@plain_text
def claim_figure(cases: list, runs: dict[str, list[Run]]) -> bytes:
    """One claim on one dataset, drawn once for all its eps (cases: one per eps, ascending): the tradeoff at
    each eps; each score per seed along eps; clean accuracy per epoch, adversarial accuracy per epoch at the
    deciding eps (one line per attack mode), and the effect along eps."""
    deciding = next((c for c in cases if c.eps == c.deciding_eps), cases[0])
    fig = plt.figure(figsize=(14, 9.5))
    rows = fig.subfigures(3, 1, height_ratios=(1, 0.9, 1))
    col = colors(runs)
    done = {v: finished(rs) for v, rs in runs.items()}
    for ax, case in zip(rows[0].subplots(1, max(len(cases), 3), squeeze=False)[0], cases):
        _tradeoff(ax, done, eps_key(case.eps), col, f"tradeoff at eps {case.eps:g}/255" + (
            " (decides)" if case is deciding else ""))
    for ax in rows[0].axes[len(cases):]:
        ax.remove()
    for ax, name in zip(rows[1].subplots(1, len(stats.SCORES)), stats.SCORES):
        _strips(ax, cases, name, col)
    clean, adv, along = rows[2].subplots(1, 3)
    _clean_by_epoch(clean, done, col)
    _adv_by_epoch(adv, done, eps_key(deciding.eps), col)
    _along_eps(along, deciding)
    for row in rows:
        row.subplots_adjust(left=0.05, right=0.99, top=0.88, bottom=0.16, wspace=0.3)
    return _png(fig)


def _tradeoff(ax, done, ek, col, title: str) -> None:
    for v, rs in done.items():
        for r in rs:
            _, clean, adv = series(r, ek, STRONGEST)
            ax.scatter(clean, adv, s=14, color=col[v], alpha=0.45, linewidths=0)
        _, clean, adv = epoch_means(rs, ek, STRONGEST)
        ax.plot(clean, adv, "-o", ms=3, color=col[v], label=f"{v} (mean per epoch)")
    _finish(ax, f"{title}: a dot per epoch and seed", "clean accuracy", f"adv accuracy ({STRONGEST})", done)


def _clean_by_epoch(ax, done, col) -> None:
    for v, rs in done.items():
        for r in rs:
            ax.plot([x.epoch for x in r.records], [x.clean for x in r.records], color=col[v], alpha=0.25, lw=1)
        epochs = sorted({x.epoch for r in rs for x in r.records})
        means = [np.mean([x.clean for r in rs for x in r.records if x.epoch == e]) for e in epochs]
        ax.plot(epochs, means, "-o", ms=3, color=col[v], label=v)
    _finish(ax, "clean accuracy (thin: seeds)", "epoch", "clean accuracy", done)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _adv_by_epoch(ax, done, ek, col) -> None:
    for v, rs in done.items():
        for m in modes(rs, ek):
            epochs, _, adv = epoch_means(rs, ek, m)
            ax.plot(epochs, adv, linestyle=MODE_STYLES.get(m, "-"), marker="o", ms=2.5, color=col[v],
                    label=f"{v} {m}")
    _finish(ax, f"adv accuracy at eps {ek}/255, mean over seeds", "epoch", "adv accuracy", done)
    if len(ax.get_lines()) > 6:
        ax.legend(fontsize=6, ncols=2)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _strips(ax, cases, name: str, col) -> None:
    """One score per seed at each eps: a column of dots per arm, its mean as a bar."""
    arms = list(cases[0].scores)
    width = 0.7 / max(len(arms), 1)
    shown = False
    for x, case in enumerate(cases):
        for i, v in enumerate(arms):
            vals = [s for s in case.scores.get(v, {}).get(name, []) if isinstance(s, (int, float)) and math.isfinite(s)]
            if not vals:
                continue
            shown = True
            at = x - 0.35 + width * (i + 0.5)
            ax.scatter(np.full(len(vals), at), vals, s=12, color=col.get(v, "grey"), zorder=3,
                       label=v if x == 0 else None)
            ax.hlines(np.mean(vals), at - width / 3, at + width / 3, color=col.get(v, "grey"), lw=2)
    ax.set_xticks(range(len(cases)), [f"{c.eps:g}" for c in cases])
    primary = name == cases[0].primary
    ax.set(title=name + (" (primary)" if primary else ""), xlabel="eps (1/255)")
    ax.title.set_fontsize(9)
    if primary:
        ax.set_facecolor("#fff6d5")
        ax.title.set_fontweight("bold")
    if shown:
        ax.legend(fontsize=6)
    else:
        ax.text(0.5, 0.5, "no finite scores", ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.tick_params(labelsize=7)
    ax.grid(axis="y", alpha=0.3)


def _along_eps(ax, case) -> None:
    """The effect (better - worse, primary score; a trend: the slope) and its 95% CI at every eps, the
    deciding eps marked."""
    pts = [p for p in case.along_eps if math.isfinite(p.effect)]
    eps = [p.eps for p in pts]
    ax.errorbar(eps, [p.effect for p in pts], color="#333", marker="o", capsize=3,
                yerr=[[p.effect - p.ci[0] for p in pts], [p.ci[1] - p.effect for p in pts]])
    ax.axhline(0, color="grey", lw=0.8)
    ax.axvline(case.deciding_eps, color="#c77c00", ls="--", lw=1, label=f"deciding eps {case.deciding_eps:g}/255")
    if eps:
        ax.set_xscale("log", base=2)
        ax.set_xticks(eps, [f"{e:g}" for e in eps])
    what = f"slope per {case.trend.unit}, claimed direction" if case.trend else f"{case.better} − {case.worse}"
    _finish(ax, f"{what} along eps", "eps (1/255)", f"effect on {case.primary}", {"": pts})
    ax.legend(fontsize=7)


@plain_text
def diagnostics_figure(finals: list[tuple[str, str, FinalEvaluation]]) -> bytes | None:
    """PGD steps curve and eps curve of each run's final checkpoint; finals: (variant, run label, final).
    None when no run has either curve."""
    curves = [(v, label, f.steps_curve, f.eps_curve) for v, label, f in finals]
    if not any(s or e for _, _, s, e in curves):
        return None
    fig, (ax_steps, ax_eps) = plt.subplots(1, 2, figsize=(10, 3.4))
    col = colors(dict.fromkeys(v for v, *_ in curves))
    for v, label, steps, eps in curves:
        if steps:
            for name, acc in _lines(steps.get("acc")):
                ax_steps.plot(steps.get("steps", []), acc, "-o", ms=3, color=col[v], label=f"{label} {name}".strip())
        if eps:
            for name, acc in _lines(eps.get("acc")):
                ax_eps.plot(eps.get("eps", []), acc, "-o", ms=3, color=col[v], label=f"{label} {name}".strip())
    ax_steps.set(title="PGD steps (every iterate scored)", xlabel="steps", ylabel="adv accuracy")
    ax_eps.set(title="eps: accuracy must fall to ~0", xlabel="eps (1/255)", ylabel="adv accuracy", xscale="symlog")
    ax_steps.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_eps.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))  # plain numbers, not mathtext
    for ax in (ax_steps, ax_eps):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    fig.tight_layout()
    return _png(fig)


def _lines(acc) -> list[tuple[str, list]]:
    """A curve's accuracies: a list, or a dict of lists per attack mode."""
    if isinstance(acc, dict):
        return [(str(k), v) for k, v in acc.items() if isinstance(v, list)]
    return [("", acc)] if isinstance(acc, list) else []


def _finish(ax, title, xlabel, ylabel, done) -> None:
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.title.set_fontsize(9)
    ax.grid(alpha=0.3)
    if any(done.values()):
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "no finished runs", ha="center", va="center", transform=ax.transAxes, color="grey")


def _png(fig) -> bytes:
    """The figure as a palette PNG (64 colours: a third of the RGB file's bytes, no visible loss on plots)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    plt.close(fig)
    out = io.BytesIO()  # no version stamp in PIL's file either: the bytes depend on the figure alone
    Image.open(buf).convert("RGB").quantize(64, method=Image.Quantize.MEDIANCUT).save(out, "PNG", optimize=True)
    return out.getvalue()


def thumbnail(runs: dict[str, list[Run]], eps: float, width: int = 100, height: int = 34) -> bytes:
    """The board's tradeoff thumbnail, as a small SVG: each arm's mean (clean, adversarial) accuracy per epoch
    at `eps`, the last epoch dotted, in the colours of the claim's figure; axes fitted to the points."""
    ek, col = eps_key(eps), colors(runs)
    curves = {v: epoch_means(finished(rs), ek, STRONGEST)[1:] for v, rs in runs.items()}
    xs = [x for cl, _ in curves.values() for x in cl]
    ys = [y for _, adv in curves.values() for y in adv]
    shapes = []
    if xs:
        x0, x1, y1 = min(xs), max(max(xs), min(xs) + 1e-3), max(max(ys), 1e-3)
        for v, (clean, adv) in curves.items():
            pts = [(3 + (x - x0) / (x1 - x0) * (width - 6), height - 3 - y / y1 * (height - 6))
                   for x, y in zip(clean, adv)]
            if pts:
                line = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
                shapes.append(f'<polyline points="{line}" fill="none" stroke="{col[v]}" stroke-width="1.5"/>'
                              f'<circle cx="{pts[-1][0]:.1f}" cy="{pts[-1][1]:.1f}" r="2" fill="{col[v]}"/>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">'
            f'<rect x="0.5" y="0.5" width="{width - 1}" height="{height - 1}" fill="#fff" stroke="#ccc"/>'
            + "".join(shapes) + "</svg>").encode()


@plain_text
def dose_figure(case) -> bytes:
    """A trend case (Case.kind "trend"): its primary score and its final clean accuracy against the dose,
    one dot per seed, the level means joined, and the fitted slope dashed through the means' centre."""
    tr = case.trend
    names, levels, cost = tr.names, tr.levels, tr.clean_cost
    panels = [(f"{case.primary} ({case.attack} attack, eps {case.eps:g}/255)",
               [case.scores.get(n, {}).get(case.primary, []) for n in names], tr.means, tr.slope),
              ("final clean accuracy (the clean cost)", [cost.values.get(n, []) for n in names], cost.means,
               cost.slope)]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, (title, per_level, level_means, slope) in zip(axes, panels):
        shown = False
        for x, ys in zip(levels, per_level):
            ys = [y for y in ys if isinstance(y, (int, float)) and math.isfinite(y)]
            if ys:
                shown = True
                ax.scatter(np.full(len(ys), x) + np.linspace(-0.08, 0.08, len(ys)), ys, s=16, color="C0",
                           alpha=0.6, linewidths=0, zorder=3)
        means = [m for m in level_means if math.isfinite(m)]
        if shown and len(means) == len(levels):
            ax.plot(levels, means, "-o", ms=4, color="C0", label="mean per level")
            if math.isfinite(slope):
                centre_x, centre_y = float(np.mean(levels)), float(np.nanmean(means))
                line = [centre_y + slope * (x - centre_x) for x in levels]
                ax.plot(levels, line, "--", color="C3", label=f"trend: {slope:+.3g} per {tr.unit}")
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "no finished runs", ha="center", va="center", transform=ax.transAxes, color="grey")
        ax.set_xticks(levels, [f"{x:g}" for x in levels])
        ax.set(title=title, xlabel=tr.unit)
        ax.title.set_fontsize(9)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)
