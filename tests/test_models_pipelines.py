"""Input pipelines (rounding, normalization, resize), rounding modes, and the pooling swap."""
import pytest
import torch
from torch import nn

from harness import models, pipelines
from harness.config import ConfigError


def _images(n=4, size=8, seed=0):
    return torch.randint(0, 256, (n, 3, size, size), generator=torch.Generator().manual_seed(seed)).float() / 255


def test_round_output_is_on_the_k_over_255_grid_after_resizing():
    x = _images()
    out = pipelines.create("round", None, None, size=13)(x)  # 8 -> 13 moves pixels off the grid ...
    assert out.shape[-1] == 13
    assert torch.equal(out * 255, torch.round(out * 255))  # ... and rounding puts them back on it
    assert not torch.equal(pipelines.resize(x, 13) * 255, torch.round(pipelines.resize(x, 13) * 255))


def test_round_is_the_identity_on_clean_cifar_pixels_without_resize():
    x = _images()
    assert torch.equal(pipelines.create("round", None, None, size=None)(x), x)


def test_baseline_normalizes_then_resizes_and_does_not_round():
    x = _images()
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    out = pipelines.create("baseline", mean, std, size=13)(x)
    expected = pipelines.resize((x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1), 13)
    torch.testing.assert_close(out, expected)
    scaled = out * torch.tensor(std).view(1, 3, 1, 1) + torch.tensor(mean).view(1, 3, 1, 1)
    assert not torch.allclose(scaled * 255, torch.round(scaled * 255), atol=1e-3)


@pytest.mark.parametrize("mode, grad_is_zero", [("exact", True), ("bpda", False), ("off", False)])
def test_rounding_modes_give_the_gradient_they_promise(mode, grad_is_zero):
    model = pipelines.Deployed(pipelines.create("round", None, None, size=13), nn.Flatten())
    x = _images().requires_grad_(True)
    with pipelines.crafting(model, mode):
        out = model(x)
    out.sum().backward()
    assert (x.grad.abs().sum() == 0) == grad_is_zero
    if mode == "bpda":  # forward is the deployed (rounded) one
        assert torch.equal(out, model(x).detach())
    assert model[0].mode == "exact"  # back to deployed after the block


def test_unknown_names_are_clear_errors():
    with pytest.raises(ConfigError, match="unknown pipeline 'norm'.*baseline, round"):
        pipelines.create("norm", None, None, None)
    with pytest.raises(ConfigError, match="unknown rounding mode 'soft'"):
        with pipelines.crafting(nn.Identity(), "soft"):
            pass
    with pytest.raises(ConfigError, match="unknown model 'resnet19'.*resnet18"):
        models.create("resnet19", 10, 3, 32)
    with pytest.raises(ConfigError, match="unknown pooling 'min'"):
        models.create("resnet18", 10, 3, 32, pooling="min")


def test_avg_variant_has_no_max_pooling_left_and_keeps_kernel_stride_padding():
    mx = models.create("resnet18", 10, 3, 32, pooling="max")
    avg = models.create("resnet18", 10, 3, 32, pooling="avg")
    assert models.count_max_pools(mx) == 1 and models.count_max_pools(avg) == 0
    assert isinstance(avg.maxpool, nn.AvgPool2d)
    assert (avg.maxpool.kernel_size, avg.maxpool.stride, avg.maxpool.padding) == (
        mx.maxpool.kernel_size, mx.maxpool.stride, mx.maxpool.padding)
    # identical otherwise: same parameter shapes, and the same logits where the pools agree (constant input)
    assert [p.shape for p in mx.parameters()] == [p.shape for p in avg.parameters()]


def test_swap_replaces_every_max_pool_in_any_network():
    net = nn.Sequential(nn.MaxPool2d(2), nn.Sequential(nn.Conv2d(1, 1, 1), nn.MaxPool2d(3, 1, 1)),
                        nn.AdaptiveMaxPool2d(1))
    assert sorted(models.swap_max_for_avg(net)) == ["0", "1.1", "2"]
    assert models.count_max_pools(net) == 0


def test_vit_takes_the_resized_input():
    vit = models.create("vit_tiny", 10, 3, 48)
    assert vit(torch.zeros(2, 3, 48, 48)).shape == (2, 10)
    assert not models.is_convolutional(vit) and models.is_convolutional(models.create("resnet18", 10, 3, 32))
