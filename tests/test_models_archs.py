"""ResNet-18 (CIFAR stem), WRN, fastnet and the ImageNet ResNets: forward/backward, shapes, exact parameter counts."""

from __future__ import annotations

import pytest
import torch

from cifarb.errors import CifarbError
from cifarb.models import ARCHS, build_model
from cifarb.models.fastnet import FastNet
from cifarb.models.imagenet import IMAGENET_MEAN


def _n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _meta(arch: str, num_classes: int = 10, **options) -> torch.nn.Module:
    """Build on the meta device: exact shapes, no memory or init cost (WRN-28-10 has 36 M parameters)."""
    with torch.device("meta"):
        return build_model(arch, num_classes, **options)


def _conv(c_in: int, c_out: int, k: int, bias: bool = False) -> int:
    return c_in * c_out * k * k + (c_out if bias else 0)


def _resnet18_count(num_classes: int) -> int:
    """Closed form for the CIFAR-stem ResNet-18: stem, 8 basic blocks, 3 projection shortcuts, linear."""
    total = _conv(3, 64, 3) + 2 * 64
    c_in = 64
    for c, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        for b in range(2):
            total += _conv(c_in, c, 3) + _conv(c, c, 3) + 4 * c
            if b == 0 and (stride != 1 or c_in != c):
                total += _conv(c_in, c, 1) + 2 * c
            c_in = c
    return total + 512 * num_classes + num_classes


def _wrn_count(depth: int, k: int, num_classes: int) -> int:
    n = (depth - 4) // 6
    total = _conv(3, 16, 3)
    c_in = 16
    for c in (16 * k, 32 * k, 64 * k):
        for b in range(n):
            total += 2 * c_in + _conv(c_in, c, 3) + 2 * c + _conv(c, c, 3)
            if b == 0 and c_in != c or b == 0 and c != 16 * k:
                total += _conv(c_in, c, 1)
            c_in = c
    return total + 2 * c_in + c_in * num_classes + num_classes


def _fastnet_count(widths, stem, num_classes):
    total = _conv(3, stem, 2, bias=True)
    c_in = stem
    for c in widths:
        total += _conv(c_in, c, 3) + _conv(c, c, 3) + 4 * c
        c_in = c
    return total + c_in * num_classes


def test_every_contract_name_builds_lazily():
    assert set(ARCHS) == {
        "resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "resnet18", "wrn28_10", "fastnet",
        "resnet18_imagenet", "resnet50_imagenet",
        # the chenyaofo family (tests/test_zoo_chenyaofo.py)
        "resnet20_b", "resnet32_b", "resnet44_b", "resnet56_b", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn",
        "mobilenetv2_x0_5", "mobilenetv2_x0_75", "mobilenetv2_x1_0", "mobilenetv2_x1_4", "shufflenetv2_x0_5",
        "shufflenetv2_x1_0", "shufflenetv2_x1_5", "shufflenetv2_x2_0", "repvgg_a0", "repvgg_a1", "repvgg_a2",
    }  # fmt: skip
    with pytest.raises(CifarbError, match="unknown architecture"):
        build_model("resnet19")


@pytest.mark.parametrize("num_classes", [10, 100])
def test_exact_parameter_counts(num_classes):
    assert _n_params(_meta("resnet18", num_classes)) == _resnet18_count(num_classes)
    assert _n_params(_meta("wrn28_10", num_classes)) == _wrn_count(28, 10, num_classes)
    assert _n_params(_meta("fastnet", num_classes)) == _fastnet_count((64, 128, 256), 24, num_classes)
    for name, depth in (("resnet18_imagenet", 18), ("resnet50_imagenet", 50)):
        m = _meta(name, num_classes, pretrained=False)
        # torchvision's published ImageNet sizes, with the 1000-way head swapped for num_classes
        tv = {18: 11_689_512, 50: 25_557_032}[depth]
        fc_in = {18: 512, 50: 2048}[depth]
        assert _n_params(m) == tv - (fc_in * 1000 + 1000) + fc_in * num_classes + num_classes


def test_well_known_sizes_for_ten_classes():
    assert _n_params(_meta("resnet18")) == 11_173_962  # kuangliu/pytorch-cifar
    assert _n_params(_meta("wrn28_10")) == 36_479_194  # Zagoruyko & Komodakis: 36.5 M
    assert _n_params(_meta("fastnet")) == 1_161_272
    assert _n_params(_meta("fastnet", widths=(64, 256, 256))) == 1_972_792  # airbench94's widths
    assert _n_params(_meta("wrn28_10", depth=16, widen_factor=4)) == _wrn_count(16, 4, 10)


def _step(model: torch.nn.Module, x: torch.Tensor, num_classes: int) -> None:
    model.train()
    out = model(x)
    assert out.shape == (x.shape[0], num_classes) and torch.isfinite(out).all()
    torch.nn.functional.cross_entropy(out, torch.arange(x.shape[0]) % num_classes).backward()
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert trainable and all(p.grad is not None and torch.isfinite(p.grad).all() for p in trainable)


@pytest.mark.parametrize(
    ("arch", "options", "num_classes"),
    [
        ("resnet18", {}, 10),
        ("wrn28_10", {"depth": 10, "widen_factor": 2, "dropout": 0.3}, 100),
        ("fastnet", {}, 10),
        ("fastnet", {"widths": [16, 32, 32], "stem_width": 8}, 100),
        ("resnet18_imagenet", {"pretrained": False, "image_size": 32}, 10),
        ("resnet50_imagenet", {"pretrained": False, "image_size": 32}, 100),
    ],
)
def test_forward_backward_on_synthetic_data(arch, options, num_classes):
    torch.manual_seed(0)
    model = build_model(arch, num_classes, **options)
    _step(model, torch.randn(2, 3, 32, 32), num_classes)


def test_fastnet_is_channels_last_friendly():
    torch.manual_seed(0)
    model = build_model("fastnet").eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)
        cl = model.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(ref, cl, atol=1e-4, rtol=1e-4)


def test_wrn28_10_forward_shape():
    torch.manual_seed(0)
    model = build_model("wrn28_10").eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 32, 32))
    assert out.shape == (1, 10) and torch.isfinite(out).all()


def test_imagenet_models_resize_inside_the_module():
    model = build_model("resnet18_imagenet", pretrained=False).eval()
    assert model.image_size == 224 and model.mean == IMAGENET_MEAN
    seen = []
    model.net.conv1.register_forward_hook(lambda m, i, o: seen.append(i[0].shape))
    with torch.no_grad():
        out = model(torch.randn(1, 3, 32, 32))
    assert out.shape == (1, 10) and seen == [(1, 3, 224, 224)]
    # the network sees the bilinear upsampling of the 32 x 32 input
    small = build_model("resnet18_imagenet", pretrained=False, image_size=48).eval()
    x = torch.randn(1, 3, 32, 32)
    big = torch.nn.functional.interpolate(x, size=48, mode="bilinear", align_corners=False)
    with torch.no_grad():
        assert torch.allclose(small(x), small.net(big), atol=1e-5)


def test_imagenet_pretrained_weights_fail_cleanly_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty cache, so the weights must be downloaded

    def no_network(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(CifarbError, match="pretrained=False"):
        build_model("resnet18_imagenet")
    with pytest.raises(CifarbError, match="unknown weights"):
        build_model("resnet50_imagenet", weights="IMAGENET9K")


def test_imagenet_pretrained_weights_load_when_cached(monkeypatch, tmp_path):
    """Simulate the cache torchvision fills on a user's machine: the weights load into `net`."""
    from torchvision.models import ResNet18_Weights, resnet18

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    reference = resnet18()
    ckpt_dir = tmp_path / "hub" / "checkpoints"
    ckpt_dir.mkdir(parents=True)
    url = ResNet18_Weights.DEFAULT.url
    torch.save(reference.state_dict(), ckpt_dir / url.rsplit("/", 1)[1])
    monkeypatch.setattr(torch.hub, "check_integrity", lambda *a, **k: True, raising=False)
    model = build_model("resnet18_imagenet", pretrained=True, weights="DEFAULT")
    assert torch.equal(model.net.conv1.weight, reference.conv1.weight)
    assert model.net.fc.out_features == 10


@pytest.mark.parametrize("arch", ["resnet18", "wrn28_10", "fastnet", "resnet18_imagenet"])
def test_unknown_options_are_clear_errors(arch):
    with pytest.raises(CifarbError):
        build_model(arch, colour="blue")


def test_bad_wrn_and_imagenet_options():
    with pytest.raises(CifarbError, match="6n\\+4"):
        build_model("wrn28_10", depth=27)
    with pytest.raises(CifarbError, match="image_size"):
        build_model("resnet18_imagenet", pretrained=False, image_size=8)


def test_fastnet_whitening_init_whitens_patches():
    torch.manual_seed(0)
    mixing = torch.tensor([[1.0, 0.5, 0.2], [0.0, 1.0, 0.4], [0.0, 0.0, 0.3]])
    images = torch.einsum("ij,njhw->nihw", mixing, torch.randn(64, 3, 16, 16))
    images = torch.nn.functional.avg_pool2d(images, 3, 1, 1)  # correlated neighbouring pixels
    model = FastNet()
    model.init_whitening(images, eps=0.0)
    out = torch.nn.functional.conv2d(images, model.stem.weight[:12])  # the 12 positive filters
    flat = out.permute(0, 2, 3, 1).reshape(-1, 12)
    cov = torch.cov(flat.T)
    assert torch.allclose(cov, torch.eye(12), atol=0.05)
    assert torch.equal(model.stem.weight[12:], -model.stem.weight[:12])
