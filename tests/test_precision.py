"""The float arm stays float: the pipeline and the network's first layer run in fp32 (no autocast, no TF32)
on the precision path the paper profile uses (bf16 autocast; CPU autocast casts the same way)."""
import copy
import os

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from harness.run import models, pipelines, runtime

# CIFAR-10's usual per-channel mean and std (the Baseline's normalization on the paper profile)
CIFAR10_STATS = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
BF16 = (torch.device("cpu"), "bf16")
ATOL = 1e-5  # first-layer output units


def _first_layer_outputs(model: pipelines.Deployed, images: list[torch.Tensor]) -> list[torch.Tensor]:
    layer = model[1].get_submodule(model.first_layer)
    outputs = []
    handle = layer.register_forward_hook(lambda m, i, o: outputs.append(o))
    with runtime.autocast(*BF16), torch.no_grad():
        for x in images:
            model(x)
    handle.remove()
    return outputs


@pytest.mark.parametrize("pipeline", ["baseline", "plain"])
@pytest.mark.parametrize("name, first", [("vit_tiny", "patch_embed.proj"), ("resnet18", "conv1")])
def test_sub_level_changes_of_a_bright_pixel_reach_the_first_layer_under_bf16_autocast(name, first, pipeline):
    torch.manual_seed(0)
    model = pipelines.Deployed(pipelines.create(pipeline, *CIFAR10_STATS, None), models.create(name, 10, 3, 32))
    model.eval()
    assert model.first_layer == first
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    x[0, :, 8, 8] = 0.8  # one bright pixel: bf16 spacing there is about one level (unnormalized)
    deltas = (1 / 255, 0.6 / 255)
    moved = []
    for d in deltas:
        moved.append(x.clone())
        moved[-1][0, 0, 8, 8] += d
    base, *outs = _first_layer_outputs(model, [x, *moved])
    layer = model[1].get_submodule(first)
    scale = 1 / CIFAR10_STATS[1][0] if pipeline == "baseline" else 1.0
    for d, out in zip(deltas, outs):
        assert out.dtype == torch.float32
        assert not torch.equal(out, base)  # bf16 would leave plain's 0.6/255 change bit-identical
        # and by what the weights say: the layer is linear, so the change is its response to the delta image
        delta = torch.zeros(1, 3, 32, 32, dtype=torch.float64)
        delta[0, 0, 8, 8] = d * scale
        expected = F.conv2d(delta, layer.weight.detach().double(), None, layer.stride, layer.padding)
        # fp32 gets it to about 2e-7; bf16 (outputs of size ~1, spacing ~4e-3) cannot: atol sits between
        assert expected.abs().max() > 5 * ATOL
        torch.testing.assert_close((out - base).double(), expected, rtol=0, atol=ATOL)


class _Probe(torch.autograd.Function):
    """Identity that records, in forward and backward, what a first layer's kernels would see."""
    seen: list = []

    @staticmethod
    def forward(ctx, x):
        _Probe.seen.append(("forward", x.dtype, torch.is_autocast_enabled("cpu"), _flags()))
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        _Probe.seen.append(("backward", _flags()))
        return g


class _ProbedConv(nn.Conv2d):
    def forward(self, x):
        return super().forward(_Probe.apply(x))


def _flags():
    return torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision


def _probed_model():
    torch.manual_seed(0)
    net = nn.Sequential(_ProbedConv(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(3))
    return pipelines.Deployed(pipelines.create("round", None, None, None), net)


@pytest.mark.parametrize("compiled", [False, True])
def test_first_layer_runs_without_autocast_and_tf32_forward_and_backward_and_flags_come_back(compiled):
    model = _probed_model()
    model(torch.rand(2, 1, 6, 6))  # materialise the lazy layer
    step = torch.compile(model, backend="aot_eager") if compiled else model
    ambient = _flags()
    _Probe.seen.clear()
    x = torch.rand(2, 1, 6, 6, requires_grad=True)
    with runtime.autocast(*BF16):
        out = step(x)
    assert out.dtype == torch.bfloat16  # the rest of the network did run in bf16
    out.float().sum().backward()
    assert _Probe.seen == [("forward", torch.float32, False, ("ieee", "ieee")), ("backward", ("ieee", "ieee"))]
    assert _flags() == ambient and x.grad is not None


def test_the_rule_survives_a_deep_copy_and_the_record_says_what_ran_how():
    model = _probed_model()
    twin = copy.deepcopy(model)
    assert twin[1][0].forward.__self__ is twin[1][0]  # bound to the copy, not to the original's layer
    assert twin.precision_note("bf16") == {"pipeline": "fp32", "first_layer": "0 fp32 (no TF32)", "rest": "bf16"}
    vit = pipelines.Deployed(pipelines.create("plain", None, None, None), models.create("vit_tiny", 10, 3, 32))
    assert vit.precision_note("fp32")["first_layer"] == "patch_embed.proj fp32 (no TF32)"
    assert pipelines.Deployed(nn.Identity(), nn.Flatten()).precision_note("fp32")["first_layer"] == "none"


@pytest.mark.parametrize("cap, workers, expected", [(None, 1, os.cpu_count()), ("1", 1, 1), ("1", 3, 1),
                                                    ("", 1, os.cpu_count()), (None, 64, 1)])
def test_each_worker_gets_its_share_of_the_cores_capped_by_omp_num_threads(cap, workers, expected, monkeypatch):
    before = torch.get_num_threads()
    if cap is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", cap)
    try:
        runtime.share_cpu(workers)
        assert torch.get_num_threads() == max(1, min(expected, (os.cpu_count() or 1) // workers))
    finally:
        torch.set_num_threads(before)
