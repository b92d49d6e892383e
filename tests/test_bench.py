"""harness.bench, the benchmark tool: it runs on the CPU at a tiny size and writes consistent numbers; the
paper projection's arithmetic and workload; lockstep seeds train what separate runs train. Nothing here is
about speed."""
from __future__ import annotations

import dataclasses
import json
import runpy
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from harness.run import train
from harness.bench import cli, measure, suite, workload
from harness.bench.concurrency import lockstep_trainer, run_config, synthetic
from harness.bench.measure import Size
from harness.bench.workload import Work, paper_workload, pgd_passes, project
from harness.spec.config import SGD_RESNET
from harness.run.data import augment

ROOT = Path(__file__).resolve().parent.parent
TINY = Size(batch=4, warmup=1, steps=2, pgd_images=4, pgd_steps=1, pgd_batch=4, train_images=64, concurrency_steps=1,
            repeats=1)


def test_bench_on_cpu_writes_positive_rates_and_their_ratios(tmp_path, monkeypatch, capsys):
    pytest.importorskip("torchattacks")
    monkeypatch.setitem(measure.SIZES, "small", TINY)
    out = tmp_path / "bench.json"
    cli.main(["--device", "cpu", "--size", "small", "--models", "resnet18_32", "--compile", "off",
                "--no-concurrency", "--out", str(out)])
    report = json.loads(out.read_text())
    m = report["models"]["resnet18_32"]
    train_, pgd = m["train"], m["pgd"]
    assert train_["reference"] > 0 and train_["harness_eager"] > 0
    assert train_["harness"] == train_["harness_eager"] and train_["harness_path"] == "harness_eager"
    assert train_["ratio"] == pytest.approx(train_["harness"] / train_["reference"])
    assert pgd["reference"] > 0 and pgd["harness"] == pgd["harness_eager"] > 0 and not pgd["early_exit"]
    assert pgd["ratio"] == pytest.approx(pgd["harness"] / pgd["reference"])
    assert pgd["harness_new_shapes"] > 0  # PGD on batch sizes 3, 2 and 1, each new to the process
    assert pgd["harness_buckets"] > 0  # ... padded to the attack's buckets
    assert m["forward_flops"] > 1e7 and report["peak_flops"] > 0 and report["peak_dtype"] == "float32"
    assert report["environment"]["device"] == "cpu" and report["date"] and report["data"].startswith("synthetic")
    assert not report["projection"]["complete"]  # no vit_224: H1 cannot be projected
    assert [p["model"] for p in report["projection"]["parts"]] == ["resnet18_32"]  # H2 and the control: one cost
    assert "targets" not in report  # targets are documentation: the bench reports measurements only
    printed = capsys.readouterr().out
    assert "resnet18_32  harness_eager" in printed and "resnet18_32  harness, new shapes" in printed
    assert "resnet18_32  harness, buckets" in printed
    assert "target" not in printed.lower()


def test_python_m_harness_bench_is_the_entry_point(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["python -m harness.bench", "--help"])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_module("harness.bench", run_name="__main__")
    assert exit_.value.code == 0 and "--concurrency" in capsys.readouterr().out


def test_unknown_model_is_refused_by_name():
    with pytest.raises(ValueError, match="resnet50.*choose from resnet18_32"):
        cli.main(["--device", "cpu", "--models", "resnet50"])


def test_projection_arithmetic_on_constructed_rates():
    work = (Work("a", "m", runs=2, epochs=3, eps=2, modes=3), Work("b", "n", runs=1, epochs=1, eps=1, modes=1))
    # 12,500 img/s trains 50,000 images in 4 s; PGD-4 at 2,200 img/s is PGD-10 at 1,000 img/s (passes 10 vs 22)
    assert pgd_passes(4) == 10 and pgd_passes(10) == 22
    out = project(work, {"m": 12_500.0}, {"m": 2_200.0}, pgd_steps=4, speedup={"m": 2.0})
    part, = out["parts"]  # "n" was not measured: left out, and the projection says it is incomplete
    assert not out["complete"] and not out["early_exit"]
    assert part["epoch_train_s"] == pytest.approx(4.0)
    assert part["epoch_eval_s"] == pytest.approx(1_000 * 2 * 3 / 1_000)
    assert part["seconds"] == pytest.approx(2 * 3 * (4 + 6))
    assert out["one_process_s"] == pytest.approx(60) and out["concurrent_s"] == pytest.approx(30)
    full = project(work, {"m": 12_500.0, "n": 50_000.0}, {"m": 1_000.0, "n": 1_000.0}, 10, speedup={})
    assert full["complete"] and full["one_process_s"] == pytest.approx(60 + (1 + 1)) == full["concurrent_s"]
    # A masked mode (exact rounding) stops after one step: 4 passes instead of 22, so 2 x 22 + 4 = 48 of 66
    masked = project((dataclasses.replace(work[0], masked=1),), {"m": 12_500.0}, {"m": 1_000.0}, 10, speedup={})
    assert masked["parts"][0]["epoch_eval_s"] == pytest.approx(1_000 * 2 * 48 / 22 / 1_000)


def test_paper_workload_is_derived_from_the_hypotheses_plans():
    """ResNet18: H2's Max and Avg, 3 seeds each; every ViT-tiny/16 run without rounding attacks with as many
    restarts as Round has gradient modes; the controls' test_resnet, which the benchmark does not measure, is
    left out."""
    work = paper_workload()
    assert {w.model for w in work} == {"resnet18_32", "vit_224"}
    resnet = [w for w in work if w.model == "resnet18_32"]
    assert sum(w.runs for w in resnet) == 6 and {(w.epochs, w.eps, w.modes, w.masked) for w in resnet} == {(10, 4, 1, 0)}
    vit = [w for w in work if w.model == "vit_224"]
    assert vit and all(w.epochs == 40 and w.eps == 4 for w in vit)
    assert {(w.modes - w.masked) for w in vit} == {2}  # off + bpda for rounding arms; 2 restarts for the others
    assert {w.masked for w in vit} == {0, 1}  # exact rounding's masked attack: one step, rounding arms only


def test_lockstep_seeds_compute_the_losses_of_separate_runs():
    ds = synthetic(32, 0)
    seeds, batch = 2, 4
    losses = lockstep_trainer("resnet18", None, SGD_RESNET, ds, torch.device("cpu"), "fp32", batch, seeds)(1)
    gen = torch.Generator().manual_seed(0)  # the lockstep trainer's draws, replayed
    idx = torch.randint(len(ds.train_x), (seeds * batch,), generator=gen)
    xb = augment(ds.train_x[idx], SGD_RESNET.crop_padding, gen).float().div_(255).view(seeds, batch, 3, 32, 32)
    yb = ds.train_y[idx].view(seeds, batch)
    for s in range(seeds):
        net = train.build(run_config("resnet18", None, SGD_RESNET, ds, "fp32", seed=s), ds, torch.device("cpu"))
        assert losses[s].item() == pytest.approx(F.cross_entropy(net.train()(xb[s]), yb[s]).item(), rel=1e-4)
    assert losses[0] != losses[1]


def test_suite_runs_are_every_hypothesis_paper_plan_with_shared_runs_counted_once():
    runs = workload.paper_runs()
    assert set(runs) == {p.stem for p in (ROOT / "hypotheses").glob("test_*.py")}
    assert set(runs["test_control_seed_null"]) & set(runs["test_control_fast_at"])  # Seeds A = Standard
    distinct = {k for cfgs in runs.values() for k in cfgs}
    assert len(distinct) < sum(len(c) for c in runs.values())
    assert all(c.epochs in (10, 40) and c.train_subset is None and c.attack.n_eval == 1000
               for h, cfgs in runs.items() if "control" not in h for c in cfgs.values())  # as the suite runs them
    assert all((c.epochs, c.train_subset, c.attack.n_eval) == (5, 10_000, 200)  # the controls' own CPU protocol
               for h, cfgs in runs.items() if "control" in h for c in cfgs.values())


def test_suite_measures_the_runs_own_epochs_and_scales_them_to_the_paper(monkeypatch):
    """One kind, trained for real at a tiny size; the projection multiplies what the records say."""
    [cfg] = [c for c in workload.paper_runs(precision="fp32")["test_pooling_type"].values()][:1]
    tiny = suite.SuiteSize(epochs=2, train_images=24, eval_images=2, max_input_size=32)
    m = suite.measure_kind(cfg, synthetic(64, 8), torch.device("cpu"), tiny)
    assert m["train_images"] == 24 and m["eval_images"] == 2  # ResNet18's batch 512 caps to the 24 images
    assert m["paper_epoch_train_s"] == pytest.approx(m["epoch_train_s"] * 50_000 / 24)
    assert m["paper_epoch_eval_s"] == pytest.approx(m["epoch_eval_s"] * 1000 / 2)
    assert m["epoch_train_s"] > 0 and m["epoch_eval_s"] > 0
    # the last evaluation again under each attack-shape policy: the exact one replays the run's own epoch
    assert set(m["eval_by_shapes"]) == {"exact", "buckets"}
    assert m["eval_by_shapes"]["exact"]["adv"] == m["eval_by_shapes"]["buckets"]["adv"] == m["epoch_adv"]
    assert all(v["eval_s"] > 0 and v["paper_epoch_eval_s"] == pytest.approx(v["eval_s"] * 1000 / 2)
               for v in m["eval_by_shapes"].values())
    monkeypatch.setattr(suite, "measure_kind", lambda c, ds, device, size: {
        **m, "kind": str(suite.kind(c)), "paper_epoch_train_s": 2.0, "paper_epoch_eval_s": 1.0})
    s = suite.suite_projection(synthetic(8, 8), torch.device("cpu"), "fp32", tiny, log=lambda line: None)
    runs = workload.paper_runs(precision="fp32")
    pooling = runs["test_pooling_type"].values()
    assert s["hypotheses"]["test_pooling_type"]["seconds"] == sum(c.epochs * 3.0 for c in pooling)
    distinct = {k: c for cfgs in runs.values() for k, c in cfgs.items()}
    assert s["distinct_runs"] == len(distinct) and s["total_s"] == sum(c.epochs * 3.0 for c in distinct.values())
    assert len(s["kinds"]) == len({suite.kind(c) for c in distinct.values()}) < len(distinct)
    assert "total (each run once)" in suite.suite_table(s)
