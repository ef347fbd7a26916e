"""Discriminators read from every checkpoint format that stores one (the offline perceptual loss's network).

Each test writes a file in the real on-disk structure (wplus.formats._testing) from a random tiny D and compares
the loaded D's ``features()`` with a reference written here, directly from the arrays in the file and the
semantics of the tool that wrote them (NVIDIA's conv2d_resample, TF's HWIO cross-correlation, rosinality's Blur +
strided conv); the reference shares no code with wplus's discriminator.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import tiny_config
from wplus.errors import CheckpointError
from wplus.formats import _testing as W
from wplus.formats.dispatch import (
    NoDiscriminatorError,
    find_discriminator,
    load_discriminator_file,
    load_discriminator_for,
    load_foreign_discriminator,
)
from wplus.io.checkpoint import save_discriminator, save_generator
from wplus.losses import DiscriminatorFeatures
from wplus.models.stylegan2 import random_generator
from wplus.models.stylegan2_discriminator import DiscriminatorConfig
from wplus.shipped import shipped_discriminator_path, shipped_generator_path

TOL = 1e-5
SQRT_HALF = math.sqrt(0.5)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def G():
    return random_generator(tiny_config(16), seed=3, w_avg_samples=50)


def d_config(**kw) -> DiscriminatorConfig:
    return DiscriminatorConfig(img_resolution=16, channel_base=256, channel_max=32, **kw)


@pytest.fixture(scope="module")
def images():
    return torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(9)).clamp(-1, 1)


# --------------------------------------------------------------------------------------------------------------------
# Reference forward passes, from the file's arrays.

_BLUR = torch.outer(torch.tensor([1.0, 3, 3, 1]), torch.tensor([1.0, 3, 3, 1])) / 64


def _blur(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Zero-pad by ``pad`` and convolve each channel with the [1,3,3,1] kernel (symmetric: no flip question)."""
    x = F.pad(x, [pad] * 4)
    return F.conv2d(x, _BLUR.expand(x.shape[1], 1, 4, 4), groups=x.shape[1])


def _finish(x, b, *, act: bool, gain: float, clamp: float | None):
    if b is not None:
        x = x + torch.as_tensor(b).reshape(1, -1, 1, 1)
    if act:
        x = F.leaky_relu(x, 0.2) * math.sqrt(2)
    x = x * gain
    return x if clamp is None else x.clamp(-clamp * gain, clamp * gain)


def _oihw_conv(x, w, b, *, down=False, act=True, gain=1.0, clamp=None):
    """NVIDIA Conv2dLayer: w / sqrt(fan_in); down=2 pads by k//2 + 1 per side, blurs, then a stride-2 conv."""
    w = torch.as_tensor(w)
    k = w.shape[-1]
    w = w / math.sqrt(w[0].numel())
    if not down:
        x = F.conv2d(x, w, padding=k // 2)
    elif k == 1:
        x = F.conv2d(_blur(x, 1)[:, :, ::2, ::2], w)
    else:
        x = F.conv2d(_blur(x, 2), w, stride=2)
    return _finish(x, b, act=act, gain=gain, clamp=clamp)


def nvidia_reference(st: dict, img: torch.Tensor, *, resnet=True, clamp=None) -> list[torch.Tensor]:
    """NVIDIA ``Discriminator``'s block outputs, from its state dict (``b{R}.fromrgb``, ``b{r}.conv0/1/skip``)."""
    r = img.shape[-1]
    x = _oihw_conv(img, st[f"b{r}.fromrgb.weight"], st[f"b{r}.fromrgb.bias"], clamp=clamp)
    feats = [x]
    while r > 4:
        g = SQRT_HALF if resnet else 1.0
        h = _oihw_conv(x, st[f"b{r}.conv0.weight"], st[f"b{r}.conv0.bias"], clamp=clamp)
        h = _oihw_conv(h, st[f"b{r}.conv1.weight"], st[f"b{r}.conv1.bias"], down=True, gain=g, clamp=clamp)
        if resnet:
            h = h + _oihw_conv(x, st[f"b{r}.skip.weight"], None, down=True, act=False, gain=SQRT_HALF)
        x = h
        feats.append(x)
        r //= 2
    return feats


def _hwio_xcorr(x: torch.Tensor, w: np.ndarray, *, stride: int, pad: int) -> torch.Tensor:
    """``tf.nn.conv2d`` with an HWIO kernel, written out: out[o, y, x] = sum_{h,w,i} in[i, y*s+h, x*s+w] W[h,w,i,o]."""
    w = torch.from_numpy(np.ascontiguousarray(w))
    kh, kw, cin, cout = w.shape
    x = F.pad(x, [pad] * 4)
    cols = F.unfold(x, (kh, kw), stride=stride)  # [B, cin*kh*kw] in (i, h, w) order
    out = torch.einsum("bkl,ko->bol", cols, w.permute(2, 0, 1, 3).reshape(cin * kh * kw, cout))
    side = (x.shape[-1] - kw) // stride + 1
    return out.reshape(x.shape[0], cout, side, side)


def _tf_conv(x, tf, name, *, down=False, act=True, gain=1.0):
    w = tf[f"{name}/weight"]
    k = w.shape[0]
    w = w / math.sqrt(k * k * w.shape[2])
    if not down:
        x = _hwio_xcorr(x, w, stride=1, pad=k // 2)
    else:  # conv_downsample_2d: blur with pad ((p + 1) // 2, p // 2), p = (4 - 2) + (k - 1), then VALID stride 2
        x = _hwio_xcorr(_blur(x, (2 + k - 1 + 1) // 2), w, stride=2, pad=0)
    return _finish(x, tf.get(f"{name}/bias"), act=act, gain=gain, clamp=None)


def tf_reference(tf: dict[str, np.ndarray], img: torch.Tensor) -> list[torch.Tensor]:
    """TF ``D_stylegan2`` (resnet) block outputs from its variables (HWIO kernels, nothing flipped)."""
    r = img.shape[-1]
    x = _tf_conv(img, tf, f"{r}x{r}/FromRGB")
    feats = [x]
    while r > 4:
        t = x
        x = _tf_conv(x, tf, f"{r}x{r}/Conv0")
        x = _tf_conv(x, tf, f"{r}x{r}/Conv1_down", down=True)
        x = (x + _tf_conv(t, tf, f"{r}x{r}/Skip", down=True, act=False)) * (1 / np.sqrt(2))
        feats.append(x)
        r //= 2
    return feats


def _ros_conv(x, d, name, *, down=False, k=3, act=True):
    """rosinality ConvLayer: [Blur(pad0, pad1)], EqualConv2d (scale 1/sqrt(fan_in)), FusedLeakyReLU(bias)."""
    w = d[f"{name}.{1 if down else 0}.weight"]
    w = w * (1 / math.sqrt(w.shape[1] * k * k))
    if down:
        p = (4 - 2) + (k - 1)
        x = F.pad(x, [(p + 1) // 2, p // 2, (p + 1) // 2, p // 2])
        x = F.conv2d(x, d[f"{name}.0.kernel"].expand(x.shape[1], 1, 4, 4), groups=x.shape[1])
        x = F.conv2d(x, w, stride=2)
    else:
        x = F.conv2d(x, w, padding=k // 2)
    if act:
        x = F.leaky_relu(x + d[f"{name}.{2 if down else 1}.bias"].reshape(1, -1, 1, 1), 0.2) * 2**0.5
    return x


def rosinality_reference(d: dict[str, torch.Tensor], img: torch.Tensor) -> list[torch.Tensor]:
    x = _ros_conv(img, d, "convs.0", k=1)
    feats = [x]
    i = 1
    while f"convs.{i}.conv1.0.weight" in d:
        out = _ros_conv(_ros_conv(x, d, f"convs.{i}.conv1"), d, f"convs.{i}.conv2", down=True)
        x = (out + _ros_conv(x, d, f"convs.{i}.skip", down=True, k=1, act=False)) / math.sqrt(2)
        feats.append(x)
        i += 1
    return feats


def assert_features(D, reference: list[torch.Tensor], images: torch.Tensor) -> None:
    with torch.no_grad():
        ours = D.features(images)
    assert len(ours) == len(reference)
    for a, b in zip(ours, reference, strict=True):
        assert a.shape == b.shape
        assert (a - b).abs().max() <= TOL * max(1.0, float(b.abs().max()))


# --------------------------------------------------------------------------------------------------------------------
# NVIDIA snapshot pickles


@pytest.mark.parametrize(
    "kw",
    [{}, {"conv_clamp": 1.5, "architecture": "orig"}, {"c_dim": 3, "mapping_layers": 2, "mbstd_num_channels": 2}],
    ids=["resnet", "orig-clamped", "conditional"],
)
def test_nvidia_snapshot_discriminator(G, images, tmp_path, kw):
    src = W.random_discriminator(d_config(**kw), seed=1)
    path = W.write_nvidia_pickle(G, tmp_path / "network-snapshot-000100.pkl", D=src)
    D = load_foreign_discriminator(path)
    assert D.config == src.config  # clamp, architecture, label head, mbstd channels inferred, nothing hard-coded
    if kw.get("conv_clamp"):  # the clamp must bind for this test to mean anything
        assert max(float(f.abs().max()) for f in D.features(images)) >= 1.5 * SQRT_HALF - 1e-6
    st = W.nvidia_d_state(src)
    assert_features(
        D, nvidia_reference(st, images, resnet=kw.get("architecture") != "orig", clamp=kw.get("conv_clamp")), images
    )
    c = torch.randn(4, 3) if kw.get("c_dim") else None
    with torch.no_grad():
        assert (D(images, c) - src(images, c)).abs().max() <= TOL
    assert all(t.dtype == torch.float32 and not t.requires_grad for t in D.state_dict().values())
    assert find_discriminator(path) == path
    assert load_discriminator_for(path).config == src.config


def test_nvidia_stylegan3_repo_flat_kwargs_and_numpy1(G, images, tmp_path):
    src = W.random_discriminator(d_config(mbstd_group_size=2), seed=2)
    path = W.write_nvidia_pickle(G, tmp_path / "sg3.pkl", D=src, flat_kwargs=True, numpy1=True)
    D = load_foreign_discriminator(path)
    assert D.config.mbstd_group_size == 2
    assert_features(D, nvidia_reference(W.nvidia_d_state(src), images), images)


def test_nvidia_pickle_without_d_is_one_clear_line(G, tmp_path):
    path = W.write_nvidia_pickle(G, tmp_path / "g-only.pkl")
    with pytest.raises(NoDiscriminatorError) as e:
        load_foreign_discriminator(path)
    msg = str(e.value)
    assert "\n" not in msg and "g-only.pkl" in msg and "stores no discriminator" in msg and "VGG" in msg
    assert find_discriminator(path) is None and load_discriminator_for(path) is None


def test_nvidia_d_with_hostile_global_is_refused(G, tmp_path):
    marker = tmp_path / "pwned"

    class Reduce:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    src = W.random_discriminator(d_config(), seed=1)
    rec = W._nvidia_d_record(src)
    rec.meta["state"]["_modules"]["b16"].meta["state"]["evil"] = Reduce()
    rec.meta["module_src"] = f"import os\nos.system('touch {marker}')\n"
    W._dump({"G_ema": W._nvidia_record(G, "", 0), "D": rec}, tmp_path / "evil.pkl", protocol=4, numpy1=False)
    with pytest.raises(CheckpointError, match=r"evil\.pkl.*(posix|os)\.system"):
        load_foreign_discriminator(tmp_path / "evil.pkl")
    with pytest.raises(CheckpointError, match=r"evil\.pkl"):
        find_discriminator(tmp_path / "evil.pkl")  # a hostile file is an error, never "no D"
    assert not marker.exists()


def test_module_source_of_d_is_never_executed(G, tmp_path):
    marker = tmp_path / "pwned"
    rec = W._nvidia_d_record(W.random_discriminator(d_config(), seed=1))
    rec.meta["module_src"] = f"import os\nos.system('touch {marker}')\n"
    W._dump({"G_ema": W._nvidia_record(G, "", 0), "D": rec}, tmp_path / "src.pkl", protocol=4, numpy1=False)
    assert load_foreign_discriminator(tmp_path / "src.pkl").img_resolution == 16
    assert not marker.exists()


def test_nvidia_d_kwargs_that_contradict_the_weights_are_refused(G, tmp_path):
    rec = W._nvidia_d_record(W.random_discriminator(d_config(), seed=1))
    rec.meta["state"]["_init_kwargs"]["architecture"] = "orig"
    W._dump({"G_ema": W._nvidia_record(G, "", 0), "D": rec}, tmp_path / "lie.pkl", protocol=4, numpy1=False)
    with pytest.raises(CheckpointError, match=r"lie\.pkl.*architecture 'orig'.*'resnet'"):
        load_foreign_discriminator(tmp_path / "lie.pkl")


# --------------------------------------------------------------------------------------------------------------------
# TF (G, D, Gs) pickles


@pytest.mark.parametrize("version", [4, 5], ids=["stylegan2", "stylegan2-ada"])
def test_tf_pickle_discriminator(G, images, tmp_path, version):
    src = W.random_discriminator(d_config(), seed=4)
    path = W.write_tf_pickle(G, tmp_path / "tf.pkl", D=src, version=version)
    D = load_foreign_discriminator(path)
    assert D.config == src.config
    assert_features(D, tf_reference(dict(W.tf_d_variables(src)), images), images)
    assert find_discriminator(path) == path


def test_tf_down_sampling_kernels_are_not_flipped(G, images, tmp_path):
    """A reader that flipped D's kernels (as G's up-sampling ones must be) would disagree with the reference."""
    src = W.random_discriminator(d_config(), seed=4)
    tf = dict(W.tf_d_variables(src))
    flipped = {k: (v[::-1, ::-1] if v.ndim == 4 else v) for k, v in tf.items()}
    ref, wrong = tf_reference(tf, images), tf_reference(flipped, images)
    assert (ref[1] - wrong[1]).abs().max() > 1e-2  # the test can tell the two apart
    assert_features(load_foreign_discriminator(W.write_tf_pickle(G, tmp_path / "tf.pkl", D=src)), ref, images)


def test_tf_pickle_without_d_variables(G, tmp_path):
    path = W.write_tf_pickle(G, tmp_path / "tf-g.pkl")
    with pytest.raises(NoDiscriminatorError, match=r"tf-g\.pkl: .*no variables"):
        load_foreign_discriminator(path)
    assert load_discriminator_for(path) is None


# --------------------------------------------------------------------------------------------------------------------
# rosinality training checkpoints


def test_rosinality_training_checkpoint_discriminator(G, images, tmp_path):
    src = W.random_discriminator(d_config(), seed=5)
    path = W.write_rosinality(G, tmp_path / "050000.pt", D=src)
    D = load_foreign_discriminator(path)
    assert D.config == src.config
    assert_features(D, rosinality_reference(W.rosinality_d_state(src), images), images)
    with torch.no_grad():
        assert (D(images) - src(images)).abs().max() <= TOL
    assert load_discriminator_for(path) is not None


def test_rosinality_g_ema_export_has_no_d(G, tmp_path):
    path = W.write_rosinality(G, tmp_path / "g.pt")
    with pytest.raises(NoDiscriminatorError, match=r"g\.pt: .*no 'd'"):
        load_foreign_discriminator(path)
    assert find_discriminator(path) is None


def test_rosinality_unknown_d_keys_are_refused(G, tmp_path):
    src = W.random_discriminator(d_config(), seed=5)
    path = W.write_rosinality(G, tmp_path / "odd.pt", D=src)
    ckpt = torch.load(path, weights_only=False)
    ckpt["d"]["convs.1.extra.weight"] = torch.zeros(1)
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match=r"odd\.pt.*convs\.1\.extra\.weight"):
        load_foreign_discriminator(path)


# --------------------------------------------------------------------------------------------------------------------
# Our own files, and the rule that finds a generator's D


def test_find_discriminator_rule(G, tmp_path):
    assert find_discriminator(shipped_generator_path()) == shipped_discriminator_path()
    src = W.random_discriminator(d_config(), seed=6)
    run = tmp_path / "run"
    run.mkdir()
    save_generator(G, run / "G_ema.safetensors")
    assert find_discriminator(run / "G_ema.safetensors") is None
    assert load_discriminator_for(run / "G_ema.safetensors") is None
    save_discriminator(src, run / "D.safetensors")
    assert find_discriminator(run / "G_ema.safetensors") == run / "D.safetensors"
    save_generator(G, tmp_path / "faces.safetensors")
    save_discriminator(src, tmp_path / "faces-D.safetensors")
    assert find_discriminator(tmp_path / "faces.safetensors") == tmp_path / "faces-D.safetensors"
    assert load_discriminator_for(tmp_path / "faces.safetensors").config == src.config


def test_a_generator_file_given_as_d_is_one_clear_line(G, tmp_path):
    save_generator(G, tmp_path / "g.safetensors")
    with pytest.raises(NoDiscriminatorError) as e:
        load_discriminator_file(tmp_path / "g.safetensors")
    assert "\n" not in str(e.value) and "g.safetensors" in str(e.value) and "g-D.safetensors" in str(e.value)


def test_saved_old_config_still_loads(tmp_path):
    """Configs written before architecture/conv_clamp/c_dim existed mean an unconditional, unclamped resnet D."""
    src = W.random_discriminator(d_config(), seed=7)
    legacy = {k: v for k, v in src.config.to_dict().items() if k in ("img_resolution", "channel_base", "channel_max")}
    assert DiscriminatorConfig.from_dict(legacy) == src.config


def test_foreign_d_drives_the_discriminator_feature_loss(G, images, tmp_path):
    path = W.write_nvidia_pickle(G, tmp_path / "snap.pkl", D=W.random_discriminator(d_config(), seed=8))
    loss = DiscriminatorFeatures(load_discriminator_for(path))
    with torch.no_grad():
        G_img = G.synthesis(G.mapping(torch.randn(2, G.z_dim), None))
        terms = loss(G_img, loss.prepare_target(images[:1]))
    assert terms["total"].shape == (2,) and bool(torch.isfinite(terms["total"]).all())
    assert bool((terms["perceptual"] > 0).all())


def test_bad_d_configs_are_refused():
    with pytest.raises(ValueError, match="architecture"):
        d_config(architecture="skip")
    with pytest.raises(ValueError, match="mbstd_num_channels"):
        d_config(mbstd_num_channels=3)


def test_no_d_error_names_the_file(tmp_path):
    p = Path(tmp_path / "missing.pkl")
    with pytest.raises(CheckpointError, match="missing.pkl"):
        load_foreign_discriminator(p)


@pytest.mark.parametrize("writer", ["nvidia", "tf", "rosinality"])
def test_weights_convert_writes_d_beside_the_generator(G, images, tmp_path, writer):
    from click.testing import CliRunner

    from wplus.cli.main import cli

    src = W.random_discriminator(d_config(), seed=10)
    write = {"nvidia": W.write_nvidia_pickle, "tf": W.write_tf_pickle, "rosinality": W.write_rosinality}[writer]
    path = write(G, tmp_path / ("in.pt" if writer == "rosinality" else "in.pkl"), D=src)
    out = tmp_path / "out.safetensors"
    r = CliRunner().invoke(cli, ["weights", "convert", str(path), str(out)])
    assert r.exit_code == 0, r.output
    assert find_discriminator(out) == tmp_path / "out-D.safetensors"
    with torch.no_grad():
        a, b = load_discriminator_for(out).features(images), src.features(images)
    assert all((x - y).abs().max() <= TOL for x, y in zip(a, b, strict=True))


def test_weights_convert_of_a_g_only_file_says_so(G, tmp_path):
    from click.testing import CliRunner

    from wplus.cli.main import cli

    path = W.write_nvidia_pickle(G, tmp_path / "g.pkl")
    r = CliRunner().invoke(cli, ["weights", "convert", str(path), str(tmp_path / "o.safetensors")])
    assert r.exit_code == 0 and "stores no discriminator" in r.output
    assert not (tmp_path / "o-D.safetensors").exists()
    with_d = W.write_nvidia_pickle(G, tmp_path / "d.pkl", D=W.random_discriminator(d_config()))
    r = CliRunner().invoke(cli, ["weights", "convert", "--no-d", str(with_d), str(tmp_path / "p.safetensors")])
    assert r.exit_code == 0 and not (tmp_path / "p-D.safetensors").exists()
