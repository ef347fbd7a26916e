"""Tests of the VGG-16 feature extractor and its loader, on files written in torchvision's state-dict layout."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from wplus.errors import CheckpointError, ConfigError, OfflineError
from wplus.models.vgg16 import VGG16_TAPS, VGG16Features, imagenet_normalize, load_vgg16, random_vgg16

# torchvision vgg16 `features` (torchvision ``vgg16``): (index, in_channels, out_channels) of the 13 convs.
TORCHVISION_CONVS = [
    (0, 3, 64),
    (2, 64, 64),
    (5, 64, 128),
    (7, 128, 128),
    (10, 128, 256),
    (12, 256, 256),
    (14, 256, 256),
    (17, 256, 512),
    (19, 512, 512),
    (21, 512, 512),
    (24, 512, 512),
    (26, 512, 512),
    (28, 512, 512),
]


def _classifier_tensors() -> dict[str, torch.Tensor]:
    # The real classifier is 124M parameters; the loader drops these keys by name, so tiny stand-ins suffice.
    return {f"classifier.{i}.{p}": torch.zeros(2) for i in (0, 3, 6) for p in ("weight", "bias")}


@pytest.fixture(scope="module")
def vgg() -> VGG16Features:
    return random_vgg16(seed=0)


@pytest.fixture(scope="module")
def torchvision_file(vgg: VGG16Features, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("vgg") / "vgg16-397923af.pth"
    torch.save({**vgg.state_dict(), **_classifier_tensors()}, path)
    return path


def test_state_dict_matches_torchvision_layout(vgg: VGG16Features) -> None:
    expected = {}
    for index, cin, cout in TORCHVISION_CONVS:
        expected[f"features.{index}.weight"] = (cout, cin, 3, 3)
        expected[f"features.{index}.bias"] = (cout,)
    assert {k: tuple(v.shape) for k, v in vgg.state_dict().items()} == expected
    assert sum(p.numel() for p in vgg.parameters()) == 14_714_688
    assert len(vgg.features) == 31
    assert all(isinstance(vgg.features[i], nn.MaxPool2d) for i in (4, 9, 16, 23, 30))
    assert all(isinstance(m, nn.ReLU) and not m.inplace for m in vgg.features if isinstance(m, nn.ReLU))


def test_tap_table_follows_torchvision_indices() -> None:
    assert VGG16_TAPS["conv1_1"] == 0 and VGG16_TAPS["relu1_1"] == 1
    assert [VGG16_TAPS[n] for n in ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")] == [3, 8, 15, 22, 29]
    assert [VGG16_TAPS[n] for n in ("relu1_1", "relu1_2", "relu3_2", "relu4_2")] == [1, 3, 13, 20]
    assert [VGG16_TAPS[f"pool{b}"] for b in range(1, 6)] == [4, 9, 16, 23, 30]
    assert len(VGG16_TAPS) == 31


def test_loads_torchvision_file_and_reproduces_outputs(vgg: VGG16Features, torchvision_file: Path) -> None:
    loaded = load_vgg16(torchvision_file)
    assert not loaded.training
    assert not any(p.requires_grad for p in loaded.parameters())
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    taps = ["relu1_2", "conv3_2", "relu4_2", "pool5"]
    want, got = vgg(x, taps), loaded(x, taps)
    for tap in taps:
        torch.testing.assert_close(got[tap], want[tap], rtol=0, atol=0)


def test_loads_features_only_file(vgg: VGG16Features, tmp_path: Path) -> None:
    path = tmp_path / "features.pth"
    torch.save(vgg.state_dict(), path)
    torch.testing.assert_close(load_vgg16(path).features[28].weight, vgg.features[28].weight)


@pytest.mark.parametrize("change", ["missing", "extra", "shape"])
def test_bad_state_dict_names_the_file(vgg: VGG16Features, tmp_path: Path, change: str) -> None:
    state = {**vgg.state_dict(), **_classifier_tensors()}
    if change == "missing":
        del state["features.28.bias"]
    elif change == "extra":
        state["features.31.weight"] = torch.zeros(1)
    else:
        state["features.0.weight"] = torch.zeros(64, 3, 5, 5)
    path = tmp_path / f"{change}.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as info:
        load_vgg16(path)
    assert info.value.path == str(path) and str(path) in str(info.value)
    assert {"missing": "features.28.bias", "extra": "features.31.weight", "shape": "features.0.weight"}[change] in str(
        info.value
    )


@pytest.mark.parametrize("content", ["list", "garbage"])
def test_not_a_state_dict(tmp_path: Path, content: str) -> None:
    path = tmp_path / "bad.pth"
    if content == "list":
        torch.save([torch.zeros(1)], path)
    else:
        path.write_bytes(b"this is not a torch file")
    with pytest.raises(CheckpointError, match="bad.pth"):
        load_vgg16(path)


def test_missing_explicit_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="nope.pth"):
        load_vgg16(tmp_path / "nope.pth")


def test_offline_without_file_is_offline_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WPLUS_OFFLINE", "1")
    with pytest.raises(OfflineError, match="vgg16-397923af.pth"):
        load_vgg16(cache=tmp_path / "cache")


def test_pre_and_post_relu_taps_differ_exactly_by_relu(vgg: VGG16Features) -> None:
    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    names = [n for n in VGG16_TAPS if n.startswith("conv")]
    out = vgg(x, names + [n.replace("conv", "relu") for n in names])
    for name in names:
        torch.testing.assert_close(out[name.replace("conv", "relu")], torch.relu(out[name]), rtol=0, atol=0)
        assert (out[name] < 0).any()  # the pre-ReLU tap really is pre-ReLU


def test_forward_stops_at_deepest_tap(vgg: VGG16Features) -> None:
    called: list[int] = []
    hooks = [m.register_forward_hook(lambda *_, i=i: called.append(i)) for i, m in enumerate(vgg.features)]
    try:
        out = vgg(torch.zeros(1, 3, 16, 16), ["relu1_2", "conv1_1"])
    finally:
        for hook in hooks:
            hook.remove()
    assert called == [0, 1, 2, 3]
    assert set(out) == {"relu1_2", "conv1_1"}


def test_unknown_tap(vgg: VGG16Features) -> None:
    with pytest.raises(ConfigError, match="relu4_2"):
        vgg(torch.zeros(1, 3, 16, 16), ["relu9_9"])


def test_random_vgg16_is_seeded_and_keeps_scale() -> None:
    a, b, c = random_vgg16(3), random_vgg16(3), random_vgg16(4)
    assert torch.equal(a.features[0].weight, b.features[0].weight)
    assert not torch.equal(a.features[0].weight, c.features[0].weight)
    x = imagenet_normalize(torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0)))
    deep = a(x, ["relu5_3"])["relu5_3"]
    assert deep.abs().mean() > 1e-2  # He init: activations do not vanish through 13 layers


def test_imagenet_normalize() -> None:
    x = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1).expand(2, 3, 4, 4)
    torch.testing.assert_close(imagenet_normalize(x), torch.zeros(2, 3, 4, 4))
    ones = imagenet_normalize(torch.ones(1, 3, 1, 1)).flatten()
    torch.testing.assert_close(ones, torch.tensor([0.515 / 0.229, 0.544 / 0.224, 0.594 / 0.225]))
