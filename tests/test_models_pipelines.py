"""Input pipelines (rounding, normalization, resize), rounding modes, and the pooling swap."""
import pytest
import torch
from torch import nn

from harness.run import models, pipelines
from harness.spec.config import ConfigError


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


# ---- registries: names map to constructors, keyword arguments pass through ------------------------------
def test_unknown_keyword_arguments_name_the_argument_and_the_model_or_pipeline():
    with pytest.raises(ConfigError, match="model 'vit_tiny' does not take the keyword argument 'pooling'"):
        models.create("vit_tiny", 10, 3, 32, pooling="avg")
    with pytest.raises(ConfigError, match="model 'resnet18' does not take the keyword argument 'depth_x'"):
        models.create("resnet18", 10, 3, 32, depth_x=2)  # unknown to timm's ResNet too
    with pytest.raises(ConfigError, match="model 'vit_tiny_p4' does not take the keyword argument 'patch_size'"):
        models.create("vit_tiny_p4", 10, 3, 32, patch_size=8)  # fixed by the registered name
    with pytest.raises(ConfigError, match="unknown act_layer 'relux'"):
        models.create("vit_tiny", 10, 3, 32, act_layer="relux")
    with pytest.raises(ConfigError, match="pipeline 'baseline' does not take the keyword argument 'bits'"):
        pipelines.create("baseline", (0.5,), (0.2,), None, bits=4)
    with pytest.raises(ConfigError, match="unknown pipeline 'jpeg'.*baseline, round, plain, norm_round"):
        pipelines.create("jpeg", None, None, None)
    with pytest.raises(ConfigError, match="bits=0"):
        pipelines.create("round", None, None, None, bits=0)


def test_a_registered_constructor_is_created_by_name_with_its_kwargs():
    @models.register_model("test_tiny_mlp")
    def tiny(num_classes, in_chans, img_size, hidden=4):
        return nn.Sequential(nn.Flatten(), nn.Linear(in_chans * img_size ** 2, hidden), nn.Linear(hidden, num_classes))
    try:
        net = models.create("test_tiny_mlp", 3, 1, 5, hidden=7)
        assert net[1].out_features == 7 and net(torch.zeros(2, 1, 5, 5)).shape == (2, 3)
        with pytest.raises(ValueError, match="registered twice"):
            models.register_model("test_tiny_mlp")(tiny)
    finally:
        del models.MODELS["test_tiny_mlp"]


def test_act_layer_relu_swaps_every_vit_mlp_activation():
    default = models.create("vit_tiny", 10, 3, 32)
    relu = models.create("vit_tiny", 10, 3, 32, act_layer="relu")
    assert all(isinstance(b.mlp.act, nn.GELU) for b in default.blocks)
    assert all(isinstance(b.mlp.act, nn.ReLU) for b in relu.blocks) and len(relu.blocks) == 12
    assert not any(isinstance(m, nn.GELU) for m in relu.modules())
    x = torch.randn(1, 192)  # the same weights give other outputs: the activation really is applied
    relu.blocks[0].mlp.load_state_dict(default.blocks[0].mlp.state_dict())
    assert not torch.allclose(relu.blocks[0].mlp(x), default.blocks[0].mlp(x))


def test_build_passes_the_variants_model_and_pipeline_kwargs():
    from types import SimpleNamespace

    from harness.run import train
    from harness.spec.config import Variant
    ds = SimpleNamespace(size=32, num_classes=10, channels=3, mean_std=((0.5,) * 3, (0.25,) * 3))
    avg = Variant("resnet18", "round", model_kwargs={"pooling": "avg"}, pipeline_kwargs={"bits": 4})
    model = train.build(SimpleNamespace(variant=avg, seed=0), ds, torch.device("cpu"))
    assert isinstance(model[1].maxpool, nn.AvgPool2d) and models.count_max_pools(model[1]) == 0
    assert model[0].levels == 15 and model.rounds
    relu = Variant("vit_tiny", "plain", model_kwargs={"act_layer": "relu"})
    model = train.build(SimpleNamespace(variant=relu, seed=0), ds, torch.device("cpu"))
    assert isinstance(model[1].blocks[0].mlp.act, nn.ReLU) and isinstance(model[0], pipelines.Plain)
    default = train.build(SimpleNamespace(variant=Variant("vit_tiny", "baseline"), seed=0), ds, torch.device("cpu"))
    assert isinstance(default[1].blocks[0].mlp.act, nn.GELU)


# ---- the 2x2 pipelines and bit depth ---------------------------------------------------------------------
def test_plain_resizes_only():
    x = _images()
    torch.testing.assert_close(pipelines.create("plain", None, None, size=13)(x), pipelines.resize(x, 13),
                               rtol=0, atol=0)
    assert torch.equal(pipelines.create("plain", None, None, size=None)(x), x)


def test_norm_round_normalizes_the_rounded_resized_image():
    x = _images()
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    out = pipelines.create("norm_round", mean, std, size=13)(x)
    torch.testing.assert_close(out, (torch.round(pipelines.resize(x, 13) * 255) / 255 - m) / s, rtol=0, atol=0)
    pixels = out * s + m  # undoing the normalization lands on the k/255 grid: it rounded before normalizing
    torch.testing.assert_close(pixels * 255, torch.round(pixels * 255), rtol=0, atol=1e-4)
    assert pipelines.NormRound.rounds and not pipelines.Plain.rounds and not pipelines.Baseline.rounds


@pytest.mark.parametrize("bits", [8, 6, 4, 2])
def test_bit_depth_snaps_to_2_to_the_bits_minus_1_levels(bits):
    ramp = torch.linspace(0, 1, 1001).view(1, 1, 1, -1)
    out = pipelines.create("round", None, None, None, bits=bits)(ramp)
    levels = 2 ** bits - 1
    assert torch.equal(out * levels, torch.round(out * levels))  # on the k/(2^bits - 1) grid ...
    assert len(torch.unique(out)) == levels + 1  # ... and every one of its 2^bits values is reached
    assert (out - ramp).abs().max() <= 0.5 / levels + 1e-6  # nearest level
    if bits == 8:
        assert torch.equal(out, pipelines.create("round", None, None, None)(ramp))  # 8 is the default


# ---- the crafting protocol: any module with `modes` and `set_crafting`, not only Round ----------------------
class Posterize(nn.Module):
    """A masking transform the harness does not know: it only follows the protocol."""
    modes = ("off", "exact")

    def __init__(self):
        super().__init__()
        self.mode, self.calls = "exact", []

    def set_crafting(self, mode):
        if mode not in self.modes:
            raise ConfigError(f"Posterize has no mode {mode!r}")
        self.calls.append(mode)
        previous, self.mode = self.mode, mode
        return previous

    def forward(self, x):
        return x if self.mode == "off" else torch.floor(x * 4) / 4


def test_crafting_sets_and_restores_any_module_that_follows_the_protocol():
    post, rnd = Posterize(), pipelines.create("round", None, None, None)
    model = pipelines.Deployed(nn.Sequential(rnd, post), nn.Flatten())
    assert model.rounds and pipelines.masking_layers(model) == [rnd, post]
    x = _images()
    with pipelines.crafting(model, "off"):
        assert post.mode == "off" and rnd.mode == "off"
        assert torch.equal(model(x), x.flatten(1))
    assert post.mode == "exact" and rnd.mode == "exact" and post.calls == ["off", "exact"]
    with pytest.raises(ConfigError, match="Posterize has no mode 'bpda'"):
        with pipelines.crafting(model, "bpda"):
            pass
    assert rnd.mode == "exact" and post.mode == "exact"  # the module set before the refusal is restored too
    assert not pipelines.Deployed(pipelines.create("plain", None, None, None), nn.Flatten()).rounds
