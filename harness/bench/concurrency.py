"""The harness's training loop as a timing primitive, and whether concurrency beats one process.

Two ways to fill one GPU with a small, launch-bound model: K processes each training one run (what
`pytest -n K` does), or S seeds in one process in lockstep, their parameters stacked and the step
vmapped (torch.func), so each kernel launch serves S runs. BatchNorm works under vmap because its
running statistics are stacked with the parameters (functional_call takes both).
"""
from __future__ import annotations

import copy
import multiprocessing
import time
from typing import Callable

import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap

from ..run import runtime, train
from ..spec.config import AttackConfig, Recipe, RunConfig, Variant
from ..run.data import Dataset, augment

PROCESSES = (1, 3)  # as `pytest -n 3`
LOCKSTEP_SEEDS = 3


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def synthetic(n_train: int, n_test: int, channels: int = 3, size: int = 32, classes: int = 10) -> Dataset:
    """Random uint8 images (CIFAR-10's shape by default): throughput does not depend on their content."""
    g = torch.Generator().manual_seed(0)
    img = lambda n: torch.randint(0, 256, (n, channels, size, size), dtype=torch.uint8, generator=g)
    lab = lambda n: torch.randint(0, classes, (n,), generator=g)
    return Dataset(name=f"synthetic uint8 {size}x{size}x{channels}", train_x=img(n_train), train_y=lab(n_train),
                   test_x=img(n_test), test_y=lab(n_test), num_classes=classes, fingerprint="synthetic",
                   source="synthetic")


def run_config(model: str, input_size: int | None, recipe: Recipe, ds: Dataset, precision: str,
               seed: int = 0) -> RunConfig:
    return RunConfig(dataset=ds.name, variant=Variant(model, "baseline", recipe, input_size=input_size),
                     seed=seed, epochs=1, train_subset=None, attack=AttackConfig(), precision=precision)


def harness_trainer(model: str, input_size: int | None, recipe: Recipe, ds: Dataset, device: torch.device,
                    precision: str, batch: int, compiled: bool = False
                    ) -> tuple[Callable[[int], None], torch.nn.Module, torch.nn.Module]:
    """(run_steps(n): n steps of train.run's loop then a device sync, the model, the model as the steps
    call it: compiled or the model itself) on ds's images moved to the device, as train.run holds them."""
    cfg = run_config(model, input_size, recipe, ds, precision)
    net = train.build(cfg, ds, device)
    stepper = torch.compile(net) if compiled else net
    opt = train.make_optimizer(net.parameters(), recipe, device)
    sched = train.make_schedule(opt, warmup_steps=1, total_steps=10**9)
    channels_last = train.channels_last(net, device)
    x, y = ds.train_x.to(device), ds.train_y.to(device)
    gen = torch.Generator(device=device).manual_seed(0)

    def run_steps(n: int) -> None:
        net.train()
        for _ in range(n):
            idx = torch.randint(len(x), (batch,), device=device, generator=gen)
            train.train_step(stepper, sched, x[idx], y[idx], recipe, gen, precision, channels_last)
        sync(device)
    return run_steps, net, stepper


def lockstep_trainer(model: str, input_size: int | None, recipe: Recipe, ds: Dataset, device: torch.device,
                     precision: str, batch: int, seeds: int) -> Callable[[int], torch.Tensor]:
    """run_steps(n) -> the last step's per-seed losses, shape (seeds,): `seeds` runs (seeds 0..seeds-1,
    each its own batch) trained in lockstep, one vmapped step for all."""
    nets = [train.build(run_config(model, input_size, recipe, ds, precision, seed=s), ds, device)
            for s in range(seeds)]
    params, buffers = stack_module_state(nets)
    skeleton = copy.deepcopy(nets[0]).to("meta")
    opt = train.make_optimizer(params.values(), recipe, device, stacked=True)
    sched = train.make_schedule(opt, warmup_steps=1, total_steps=10**9)
    x, y = ds.train_x.to(device), ds.train_y.to(device)
    gen = torch.Generator(device=device).manual_seed(0)

    def loss(p, b, xb, yb):
        return F.cross_entropy(functional_call(skeleton, (p, b), (xb,)).float(), yb,
                               label_smoothing=recipe.label_smoothing)

    def run_steps(n: int) -> torch.Tensor:
        losses = torch.zeros(seeds, device=device)
        for _ in range(n):
            idx = torch.randint(len(x), (seeds * batch,), device=device, generator=gen)
            xb = augment(x[idx], recipe.crop_padding, gen).float().div_(255)
            with runtime.autocast(device, precision):
                losses = vmap(loss)(params, buffers, xb.view(seeds, batch, *xb.shape[1:]),
                                    y[idx].view(seeds, batch))
            opt.zero_grad(set_to_none=True)
            losses.sum().backward()
            opt.step()
            sched.step()
        sync(device)
        return losses.detach()
    return run_steps


def _worker(args: tuple, barrier, queue) -> None:
    """One of K processes: warm up, wait for all, time `steps` steps; reports (start, end, images)."""
    model, input_size, recipe, shape, device, precision, batch, warmup, steps = args
    try:
        runtime.set_deterministic(False)
        ds = synthetic(max(4096, batch), 0, *shape)
        run_steps, _, _ = harness_trainer(model, input_size, recipe, ds, torch.device(device), precision, batch)
        run_steps(warmup)
        barrier.wait()
        start = time.monotonic()  # CLOCK_MONOTONIC: one clock for all processes of the machine
        run_steps(steps)
        queue.put((start, time.monotonic(), batch * steps))
    except BaseException as e:
        barrier.abort()
        queue.put(f"{type(e).__name__}: {e}")


def processes_img_s(k: int, args: tuple) -> float:
    """Aggregate training images/s of k processes, each training its own model on the same device."""
    ctx = multiprocessing.get_context("spawn")  # CUDA cannot be forked
    barrier, queue = ctx.Barrier(k), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(args, barrier, queue), daemon=True) for _ in range(k)]
    for p in procs:
        p.start()
    outs = [queue.get(timeout=900) for _ in procs]
    for p in procs:
        p.join()
    failed = [o for o in outs if isinstance(o, str)]
    if failed:
        raise RuntimeError(f"a benchmark process failed: {failed[0]}")
    return sum(o[2] for o in outs) / (max(o[1] for o in outs) - min(o[0] for o in outs))


def concurrency(model: str, input_size: int | None, recipe: Recipe, ds: Dataset, device: torch.device,
                precision: str, batch: int, warmup: int, steps: int) -> dict:
    """Aggregate training images/s of 1 and 3 processes and of lockstep seeds in this process."""
    shape = (ds.channels, ds.size, ds.num_classes)
    args = (model, input_size, recipe, shape, str(device), precision, batch, warmup, steps)
    img_s = {f"{k} process{'es' if k > 1 else ''}": processes_img_s(k, args) for k in PROCESSES}
    run_steps = lockstep_trainer(model, input_size, recipe, ds, device, precision, batch, LOCKSTEP_SEEDS)
    run_steps(warmup)
    start = time.perf_counter()
    run_steps(steps)
    img_s[f"lockstep {LOCKSTEP_SEEDS} seeds (vmap)"] = LOCKSTEP_SEEDS * batch * steps / (time.perf_counter() - start)
    one = img_s["1 process"]
    return {"model": model, "input_size": input_size, "batch": batch, "steps": steps, "img_s": img_s,
            "speedup": img_s[f"{PROCESSES[-1]} processes"] / one, "best": max(img_s, key=img_s.get)}
