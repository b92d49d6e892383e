"""One training run: data on the device, epochs, and an evaluation point after each epoch.

All randomness comes from generators seeded by (seed, arm, epoch) through config.derive_seed, so a run
resumed from the checkpoint of epoch k draws exactly what an uninterrupted run draws from epoch k+1 on.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Callable, Protocol

import torch
import torch.nn.functional as F

from . import models, pipelines
from .attacks import Context, evaluate
from ..spec.config import Recipe, RunConfig, arm_identity, derive_seed
from ..spec.records import EpochRecord
from .data import Dataset, augment, fixed_subset
from .runtime import autocast

SUBSET_SEED = 0  # which fixed training subset a profile's train_subset takes


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


class Checkpointer(Protocol):
    def load(self) -> dict | None: ...
    def save(self, state: dict) -> None: ...


def build(cfg: RunConfig, ds: Dataset, device: torch.device) -> pipelines.Deployed:
    """The model as attacked: the variant's pipeline in front of its network, initialised from the run's
    seed and the arm (config.derive_seed)."""
    v = cfg.variant
    torch.manual_seed(derive_seed(cfg.seed, "init", arm_identity(v)))
    size = v.input_size or ds.size
    net = models.create(v.model, ds.num_classes, ds.channels, size, **v.model_kwargs)
    mean, std = ds.mean_std
    pipe = pipelines.create(v.pipeline, mean, std, v.input_size, **v.pipeline_kwargs)
    model = pipelines.Deployed(pipe, net).to(device)
    if channels_last(model, device):
        model = model.to(memory_format=torch.channels_last)
    return model


def channels_last(model: pipelines.Deployed, device: torch.device) -> bool:
    """Whether `model` runs channels-last (with its inputs): convolutional networks on GPUs."""
    return models.is_convolutional(model[1]) and device.type == "cuda"


def make_optimizer(params, r: Recipe, device: torch.device, stacked: bool = False) -> torch.optim.Optimizer:
    """The recipe's optimizer over `params`. Weight decay on weight matrices and kernels only, not on biases
    and norm scales; `stacked`: parameters carry a leading seed dimension (harness.bench.concurrency)."""
    params = list(params)
    matrix_ndim = 3 if stacked else 2
    decay = [p for p in params if p.ndim >= matrix_ndim]
    rest = [p for p in params if p.ndim < matrix_ndim]
    groups = [{"params": decay, "weight_decay": r.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    fused = device.type == "cuda"
    if r.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=r.lr, momentum=0.9, nesterov=True, fused=fused)
    if r.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=r.lr, betas=(0.9, 0.999), fused=fused)
    raise ValueError(f"unknown optimizer {r.optimizer!r}: choose sgd or adamw")


def make_schedule(opt, warmup_steps: int, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def train_step(net: torch.nn.Module, sched: torch.optim.lr_scheduler.LRScheduler, x: torch.Tensor, y: torch.Tensor,
               r: Recipe, gen: torch.Generator, precision: str, channels_last: bool) -> torch.Tensor:
    """One step of `sched`'s optimizer on a uint8 batch x (augmented here, on its device); returns the detached
    loss. Shared by `run` and harness.bench, so the benchmark times the code that trains."""
    opt = sched.optimizer
    xb = augment(x, r.crop_padding, gen).float().div_(255)
    if channels_last:
        xb = xb.contiguous(memory_format=torch.channels_last)
    if r.adversarial == "fgsm_rs":
        xb = fgsm_rs(net, xb, y, r.adv_eps / 255, r.adv_step / 255, gen, precision)
    with autocast(xb.device, precision):
        loss = F.cross_entropy(net(xb).float(), y, label_smoothing=r.label_smoothing)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sched.step()
    return loss.detach()


@dataclass(frozen=True)
class Trained:
    """What `run` returns: one record per epoch, the final weights, the weights of the best epochs other than
    the last ({epoch: state}, the epoch of highest adversarial accuracy at each eps), states on the CPU, and
    what ran at which precision (pipelines.Deployed.precision_note)."""
    records: list[EpochRecord]
    final_state: dict
    best_states: dict[int, dict]
    precision: dict[str, str]


def fgsm_rs(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, step: float,
            gen: torch.Generator, precision: str) -> torch.Tensor:
    """The batch's FGSM examples from a uniform random start, projected onto the eps-ball and [0, 1]
    (Wong, Rice and Kolter 2020, "Fast is better than free": eps 8/255, step 10/255 on CIFAR-10). Crafted
    through `net` as it trains (the deployed pipeline included, batch norm in training mode, as theirs)."""
    start = (x + (torch.rand(x.shape, device=x.device, generator=gen) * 2 - 1) * eps).clamp_(0, 1)
    start.requires_grad_(True)
    with autocast(x.device, precision):
        loss = F.cross_entropy(net(start).float(), y)
    grad, = torch.autograd.grad(loss, start)
    return torch.min(torch.max(start.detach() + step * grad.sign(), x - eps), x + eps).clamp_(0, 1)


def run(cfg: RunConfig, ds: Dataset, device: torch.device, checkpoint: Checkpointer | None = None,
        on_epoch: Callable[[EpochRecord], None] = lambda record: None, compile_mode: str = "off",
        early_exit: bool = True, attack_shapes: str = "exact") -> Trained:
    """Train `cfg`, evaluating after every epoch, resuming from `checkpoint` where it holds finished epochs.

    compile_mode "auto" compiles the training step on GPUs for transformers only: on an H200 it gave ViT-tiny
    1.7x at 224 px and ResNet18 nothing (launch-bound; shared/PERF-NOTES.md), and compiling costs a minute.
    `early_exit` and `attack_shapes` change what the epochs' attacks cost, not what they find (harness.run.attacks).
    """
    r = cfg.variant.recipe
    model = build(cfg, ds, device)
    conv_layout = channels_last(model, device)
    compiled = compile_mode == "on" or (compile_mode == "auto" and device.type == "cuda" and not conv_layout)
    net_for_steps = torch.compile(model) if compiled else model
    train_idx = fixed_subset(len(ds.train_x), cfg.train_subset, SUBSET_SEED)
    train_x, train_y = ds.train_x[train_idx].to(device), ds.train_y[train_idx].to(device)
    eval_x, eval_y = eval_set(cfg, ds, device)

    batch = min(r.batch_size, len(train_x))
    steps_per_epoch = len(train_x) // batch  # the last partial batch is dropped: every step the same shape
    opt = make_optimizer(model.parameters(), r, device)
    sched = make_schedule(opt, round(r.warmup_epochs * steps_per_epoch), cfg.epochs * steps_per_epoch)
    records: list[EpochRecord] = []
    best: dict[int, dict] = {}  # epoch -> weights, for the best epochs at some eps so far
    state = checkpoint.load() if checkpoint else None
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        records = [EpochRecord(**r) for r in state["records"]]
        best = {int(e): w for e, w in state["best"].items()}

    gen = torch.Generator(device=device)
    for epoch in range(len(records) + 1, cfg.epochs + 1):
        start = time.perf_counter()
        model.train()
        gen.manual_seed(derive_seed(cfg.seed, "order", arm_identity(cfg.variant), epoch))
        order = torch.randperm(len(train_x), device=device, generator=gen)
        loss_sum = torch.zeros((), device=device)
        for step in range(steps_per_epoch):
            idx = order[step * batch:(step + 1) * batch]
            loss_sum += train_step(net_for_steps, sched, train_x[idx], train_y[idx], r, gen, cfg.precision,
                                   conv_layout)
        train_loss = loss_sum.item() / steps_per_epoch  # the one host sync of the epoch
        if not math.isfinite(train_loss):
            raise TrainingDiverged(f"{cfg.label}: the training loss became {train_loss} in epoch {epoch}: "
                                   f"lower the learning rate (recipe lr={r.lr}) or use fp32 (--precision fp32)")
        train_seconds = time.perf_counter() - start
        point = evaluate(model, eval_x, eval_y, cfg.attack, model.rounds, attack_seed(cfg, epoch),
                         Context(cfg.precision, early_exit=early_exit, shapes=attack_shapes))
        records.append(EpochRecord(epoch=epoch, train_loss=train_loss, train_seconds=train_seconds,
                                   seconds=time.perf_counter() - start, **point))
        keep = {best_epoch(records, eps) for eps in cfg.attack.eps}
        best = {e: best[e] if e in best else cpu_state(model) for e in sorted(keep)}
        if checkpoint:  # plain types only: the cache reads checkpoints back with weights_only=True
            checkpoint.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                             "scheduler": sched.state_dict(), "records": [dataclasses.asdict(r) for r in records],
                             "best": {str(e): w for e, w in best.items()}})
        on_epoch(records[-1])
    best.pop(len(records), None)  # the last epoch's weights are the final ones
    return Trained(records, cpu_state(model), best, model.precision_note(cfg.precision))


def best_epoch(records: list[EpochRecord], eps: float) -> int:
    """The epoch of highest strongest-attack accuracy at `eps` (the first of ties; Run.best_epoch)."""
    return max(records, key=lambda r: r.adv_at(eps)).epoch


def eval_set(cfg: RunConfig, ds: Dataset, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed test subset every epoch of `cfg` is attacked on: images in [0, 1] and labels, on `device`."""
    idx = fixed_subset(len(ds.test_x), cfg.attack.n_eval, cfg.attack.eval_seed)
    return ds.test_x[idx].to(device).float().div_(255), ds.test_y[idx].to(device)


def attack_seed(cfg: RunConfig, epoch: int) -> int:
    """The seed of epoch `epoch`'s attacks (their random starts)."""
    return derive_seed(cfg.attack.eval_seed, "attack", epoch) % 2 ** 31


def cpu_state(model: torch.nn.Module) -> dict:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
