"""`python -m harness.bench`: the harness against the pipeline users would write, side by side, on one device.

For each model (resnet18_32, vit_32: ViT-tiny patch 4 at 32 px, vit_224: ViT-tiny patch 16 resized from
32 px) it times training and PGD on both sides in this one process:
  reference (harness.bench.reference): DataLoader workers + per-image CPU transforms, fp32, torchattacks.PGD;
  harness: train.build + train.train_step (data on the device, on-device crop/flip, bf16 autocast on GPUs,
           torch.compile where asked) and harness.run.attacks.pgd (early exit off, so both sides do equal work).
It prints images/s, harness/reference ratios, achieved FLOP/s against a bf16 (GPU) or fp32 (CPU) matmul
peak measured in the same run, the paper profile's wall time projected from the measured rates, and, with
--concurrency, whether several processes or lockstep seeds (torch.func.vmap) beat one process.
It measures and compares; it judges nothing: the speed targets and the numbers measured against them
are documentation (the README), not code.

  python -m harness.bench                       # GPU: --size full; CPU: --size small (a minute or two)
  python -m harness.bench --models vit_224 --compile on --out bench.json
  python -m harness.bench --data-source cifar10=PATH.zip   # real images instead of synthetic ones
  python -m harness.bench --suite               # also time the suite's own epochs (harness.bench.suite)

--suite trains one real run of each kind the hypotheses plan under the paper profile (model, input size,
attack modes...) with the suite's own training code, reads its per-epoch training and evaluation seconds,
and projects the paper profile per hypothesis and in total from them, beside the rate-based projection.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import time
from pathlib import Path

from ..run import runtime
from ..spec.config import ConfigError
from ..run.data import Sources, load, parse_binding
from .concurrency import concurrency, synthetic
from .measure import COMPILE_GAINS, SIZES, SPECS, bench_model, matmul_peak
from .suite import SUITE_SIZES, suite_projection, suite_table
from .workload import EVAL_IMAGES, EVAL_STEPS, paper_workload, project


def table(report: dict) -> str:
    """The report as the printed table: rates, harness/reference ratios, share of the peak, projection."""
    peak = report["peak_flops"]
    lines = [f"{report['environment'].get('gpu', 'CPU')}: {report['peak_dtype']} matmul peak "
             f"{peak / 1e12:.1f} TFLOP/s; data: {report['data']}; precision {report['precision']}",
             f"{'model':12} {'path':18} {'train img/s':>11} {'PGD img/s':>10} {'train x':>8} {'PGD x':>6} "
             f"{'TFLOP/s':>8} {'% peak':>7}"]
    for name, m in report["models"].items():
        ref_pgd = m["pgd"]["reference"]
        for path in ("reference", "harness_eager", "harness_compiled"):
            if path not in m["train"]:
                continue
            rate, pgd = m["train"][path], m["pgd"][path]
            tflops = 3 * m["forward_flops"] * rate / 1e12
            ratio = rate / m["train"]["reference"]
            pgd_ratio = pgd / ref_pgd if path != "reference" and ref_pgd else None
            lines.append(f"{name:12} {path:18} {_rate(rate):>11} {_rate(pgd):>10} {ratio:8.2f} "
                         f"{_fmt(pgd_ratio, '.2f'):>6} {tflops:8.2f} {100 * tflops * 1e12 / peak:6.1f}%")
        lines.append(f"{name:12} {'harness, new shapes':18} {'':>11} {_rate(m['pgd']['harness_new_shapes']):>10}")
        lines.append(f"{name:12} {'harness, buckets':18} {'':>11} {_rate(m['pgd']['harness_buckets']):>10}")
    proj = report["projection"]
    lines.append(f"paper profile (PGD-{EVAL_STEPS} eval on {EVAL_IMAGES} images, no early exit): "
                 f"{proj['one_process_s'] / 60:.1f} min in one process, {proj['concurrent_s'] / 60:.1f} min "
                 f"concurrent{'' if proj['complete'] else ' (INCOMPLETE: run vit_224 and resnet18_32)'}")
    for p in proj["parts"]:
        lines.append(f"  {p['part']:42} {p['runs']} runs x {p['epochs']} epochs x ({p['epoch_train_s']:.2f} s "
                     f"train + {p['epoch_eval_s']:.2f} s eval) = {p['seconds'] / 60:.1f} min")
    if report.get("concurrency"):
        c = report["concurrency"]
        lines.append(f"concurrency ({c['model']}, aggregate img/s): " + ", ".join(
            f"{k} {v:,.0f}" for k, v in c["img_s"].items()) + f"; best: {c['best']}")
    return "\n".join(lines)


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def parse(argv) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m harness.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", choices=SIZES, help="default: full on a GPU, small on the CPU")
    p.add_argument("--models", help=f"comma-separated, of {','.join(SPECS)} (default: all on a GPU, "
                                    f"resnet18_32,vit_32 on the CPU)")
    p.add_argument("--compile", choices=("auto", "on", "off"), default="auto",
                   help=f"also time torch.compile: auto = on a GPU for {', '.join(COMPILE_GAINS)}")
    p.add_argument("--concurrency", action=argparse.BooleanOptionalAction, default=None,
                   help="1 vs 3 processes and lockstep seeds (default: on with --size full)")
    p.add_argument("--suite", action="store_true",
                   help="also time the suite's own epochs and project the paper profile from them")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: a GPU if any)")
    p.add_argument("--data-source", help="NAME=PATH: real images (default: synthetic uint8 images)")
    p.add_argument("--cache-dir", default=".cache/advhyp", help="where decoded datasets are cached")
    p.add_argument("--out", default="reports/bench.json", help="where the JSON results go")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    """Measure, write the JSON report to --out, print the table; returns the report."""
    args = parse(argv)
    device = runtime.pick_device(args.device)
    precision = runtime.resolve_precision("auto", device)
    runtime.set_deterministic(False)  # cuDNN autotuning as the suite runs: training on both sides (the
    # harness's attacks run without it: runtime.without_autotuning)
    gpu = device.type == "cuda"
    size = SIZES[args.size or ("full" if gpu else "small")]
    names = args.models.split(",") if args.models else list(SPECS) if gpu else ["resnet18_32", "vit_32"]
    unknown = [n for n in names if n not in SPECS]
    if unknown:
        raise ConfigError(f"--models {args.models!r}: unknown {unknown}; choose from {','.join(SPECS)}")
    if args.data_source:
        name, path = parse_binding(args.data_source)
        ds = load(name, Sources(bindings=((name, path),), allow_download=False), Path(args.cache_dir))
    else:
        ds = synthetic(size.train_images, size.pgd_images)
    workers = min(8, os.cpu_count() or 1) if gpu else min(2, (os.cpu_count() or 1) - 1)
    peak, peak_dtype = matmul_peak(device)
    results, start = {}, time.perf_counter()
    for n in names:
        compile_ = args.compile == "on" or (args.compile == "auto" and gpu and n in COMPILE_GAINS)
        results[n] = bench_model(n, ds, device, precision, size, compile_, workers)
        print(f"{n}: train {results[n]['train']['ratio']:.2f}x, PGD {_fmt(results[n]['pgd']['ratio'], '.2f')}x "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
    conc = None
    if args.concurrency if args.concurrency is not None else size is SIZES["full"]:
        spec = SPECS["resnet18_32"]
        conc = concurrency(spec.model, spec.input_size, spec.recipe, ds, device, precision,
                           size.batch or spec.recipe.batch_size, size.warmup, size.concurrency_steps)
    speedup = {"resnet18_32": conc["speedup"]} if conc else {}
    projection = project(paper_workload(), {n: m["train"]["harness"] for n, m in results.items()},
                         {n: m["pgd"]["harness"] for n, m in results.items()}, size.pgd_steps, speedup)
    suite = suite_projection(ds, device, precision, SUITE_SIZES[args.size or ("full" if gpu else "small")]) \
        if args.suite else None
    report = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "environment": runtime.environment(device), "precision": precision, "size": dataclasses.asdict(size),
              "data": ds.name, "reference_workers": workers, "peak_flops": peak, "peak_dtype": peak_dtype,
              "models": results, "concurrency": conc, "projection": projection, "suite": suite}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(table(report))
    if suite:
        print(suite_table(suite))
    print(f"written to {args.out}")
    return report
