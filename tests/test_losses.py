"""Tests of Image2StyleGAN's perceptual + MSE loss against a direct recomputation of Eq. 1 and 2."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from wplus.errors import ConfigError, ShapeError
from wplus.losses import LossTarget, PerceptualLoss
from wplus.models.vgg16 import VGG16Features, random_vgg16

# torchvision `features` indices of conv1_1, conv1_2, conv3_2, conv4_2 and of their ReLUs (torchvision ``vgg16``).
PRE_RELU = [0, 2, 12, 19]
POST_RELU = [1, 3, 13, 20]
LAYERS = ["conv1_1", "conv1_2", "conv3_2", "conv4_2"]


@pytest.fixture(scope="module")
def vgg() -> VGG16Features:
    return random_vgg16(seed=0)


def _images(batch: int, size: int, seed: int) -> torch.Tensor:
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _reference(vgg: VGG16Features, x: torch.Tensor, y: torch.Tensor, indices: list[int], resize: int | None) -> dict:
    """Eq. 1 and 2 written out directly: sum_j ||F_j(x) - F_j(y)||^2 / N_j and ||x - y||^2 / N, per image."""

    def features(img: torch.Tensor) -> list[torch.Tensor]:
        if resize is not None and img.shape[-1] > resize:
            img = F.interpolate(img, size=(resize, resize), mode="area")
        elif resize is not None and img.shape[-1] < resize:
            img = F.interpolate(img, size=(resize, resize), mode="bilinear", align_corners=False)
        img = (img + 1) / 2
        img = (img - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(
            1, 3, 1, 1
        )
        outputs = []
        for index, layer in enumerate(vgg.features[: max(indices) + 1]):
            img = layer(img)
            if index in indices:
                outputs.append(img)
        return outputs

    out = {}
    for name, fx, fy in zip(LAYERS, features(x), features(y), strict=True):
        out[name] = ((fx - fy) ** 2).sum(dim=(1, 2, 3)) / fx[0].numel()
    out["perceptual"] = sum(out[name] for name in LAYERS)
    out["mse"] = ((x - y) ** 2).sum(dim=(1, 2, 3)) / x[0].numel()
    out["total"] = out["perceptual"] + out["mse"]
    return out


@pytest.mark.parametrize(
    ("taps", "indices", "size", "resize"),
    [
        ("post_relu", POST_RELU, 16, 8),
        ("pre_relu", PRE_RELU, 16, 8),
        ("post_relu", POST_RELU, 8, None),
        ("post_relu", POST_RELU, 4, 8),
    ],
)
def test_matches_direct_recomputation(
    vgg: VGG16Features, taps: str, indices: list[int], size: int, resize: int | None, device: torch.device
) -> None:
    x, y = _images(2, size, 1), _images(2, size, 2)
    want = _reference(vgg, x, y, indices, resize)  # on the CPU
    loss = PerceptualLoss(copy.deepcopy(vgg), taps=taps, resize=resize).to(device)
    got = {k: v.cpu() for k, v in loss(x.to(device), loss.prepare_target(y.to(device))).items()}
    assert set(got) == set(want)
    for key, value in want.items():
        assert got[key].shape == (2,)
        torch.testing.assert_close(got[key], value, rtol=1e-5, atol=1e-7)


def test_weights_combine_terms(vgg: VGG16Features) -> None:
    loss = PerceptualLoss(vgg, layer_weights=[1.0, 0.5, 2.0, 0.0], perceptual_weight=3.0, mse_weight=0.25, resize=8)
    x, y = _images(2, 16, 3), _images(2, 16, 4)
    terms = loss(x, loss.prepare_target(y))
    perceptual = terms["conv1_1"] + 0.5 * terms["conv1_2"] + 2.0 * terms["conv3_2"]
    torch.testing.assert_close(terms["perceptual"], perceptual)
    torch.testing.assert_close(terms["total"], 3.0 * perceptual + 0.25 * terms["mse"])


def test_batch_equals_per_image(vgg: VGG16Features, device: torch.device) -> None:
    loss = PerceptualLoss(copy.deepcopy(vgg), resize=8).to(device)
    x, y = _images(3, 12, 5).to(device), _images(3, 12, 6).to(device)
    xb = x.clone().requires_grad_(True)
    batch = loss(xb, loss.prepare_target(y))
    batch["total"].sum().backward()
    for i in range(3):
        xi = x[i : i + 1].clone().requires_grad_(True)
        single = loss(xi, loss.prepare_target(y[i : i + 1]))
        single["total"].sum().backward()
        for key in batch:
            torch.testing.assert_close(batch[key][i : i + 1], single[key], rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(xb.grad[i : i + 1], xi.grad, rtol=1e-4, atol=1e-8)


def test_single_target_broadcasts_over_batch(vgg: VGG16Features) -> None:
    loss = PerceptualLoss(vgg, resize=8)
    x, y = _images(2, 16, 7), _images(1, 16, 8)
    shared = loss(x, loss.prepare_target(y))["total"]
    repeated = loss(x, loss.prepare_target(y.expand(2, -1, -1, -1)))["total"]
    torch.testing.assert_close(shared, repeated)


def test_zero_perceptual_weight_skips_vgg(monkeypatch: pytest.MonkeyPatch) -> None:
    vgg = random_vgg16(seed=1)

    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("VGG was run")

    monkeypatch.setattr(vgg, "forward", boom)
    loss = PerceptualLoss(vgg, perceptual_weight=0.0)
    x, y = _images(2, 16, 9), _images(2, 16, 10)
    target = loss.prepare_target(y)
    assert target.features == {}
    terms = loss(x, target)
    assert set(terms) == {"perceptual", "mse", "total"}
    torch.testing.assert_close(terms["perceptual"], torch.zeros(2))
    torch.testing.assert_close(terms["total"], ((x - y) ** 2).mean(dim=(1, 2, 3)))


def test_identical_images_give_zero(vgg: VGG16Features) -> None:
    loss = PerceptualLoss(vgg, resize=8)
    x = _images(2, 16, 11)
    terms = loss(x, loss.prepare_target(x.clone()))
    for value in terms.values():
        assert torch.equal(value, torch.zeros(2))


def test_target_is_constant(vgg: VGG16Features) -> None:
    loss = PerceptualLoss(vgg, resize=8)
    y = _images(1, 16, 12).requires_grad_(True)
    target = loss.prepare_target(y)
    assert isinstance(target, LossTarget)
    assert not target.image.requires_grad
    assert all(not f.requires_grad for f in target.features.values())
    assert set(target.features) == {"relu1_1", "relu1_2", "relu3_2", "relu4_2"}


def test_unknown_layer_lists_valid_names(vgg: VGG16Features) -> None:
    with pytest.raises(ConfigError, match="conv4_2") as info:
        PerceptualLoss(vgg, layers=("conv1_1", "conv6_1"))
    assert "conv6_1" in str(info.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"layers": ()},
        {"layers": ("conv1_1", "conv1_1")},
        {"taps": "sideways"},
        {"layer_weights": [1.0]},
        {"perceptual_weight": -1.0},
        {"mse_weight": float("nan")},
        {"resize": 0},
    ],
)
def test_bad_options(vgg: VGG16Features, kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        PerceptualLoss(vgg, **kwargs)


def test_mismatched_target(vgg: VGG16Features) -> None:
    post = PerceptualLoss(vgg, resize=8)
    pre = PerceptualLoss(vgg, taps="pre_relu", resize=8)
    x = _images(2, 16, 13)
    with pytest.raises(ConfigError, match="prepare_target"):
        pre(x, post.prepare_target(x))
    with pytest.raises(ShapeError):
        post(x, post.prepare_target(_images(2, 8, 14)))
    with pytest.raises(ShapeError):
        post(x[:, :1], post.prepare_target(x))
