"""Our safetensors format: one helper for generator, discriminator and training checkpoint, and headers that describe
a network other than the stored tensors (a huge one, say) refused before anything is allocated."""

from __future__ import annotations

import ast
import json
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import wplus
from conftest import tiny_config
from wplus.errors import CheckpointError, ConfigError
from wplus.io import checkpoint as ckpt
from wplus.io.checkpoint import (
    load_discriminator,
    load_native_generator,
    read_metadata,
    save_discriminator,
    save_generator,
    stored_shapes,
    write_checkpoint,
)
from wplus.models.stylegan1 import StyleGAN1Config
from wplus.models.stylegan2 import StyleGAN2Config, random_generator
from wplus.models.stylegan2_discriminator import Discriminator, DiscriminatorConfig
from wplus.train.trainer import TrainConfig, build_networks, load_checkpoint, read_checkpoint_config, save_checkpoint

TINY_TRAIN = dict(resolution=16, z_dim=16, w_dim=16, mapping_layers=2, g_channel_base=128, g_channel_max=16,
                  d_channel_base=128, d_channel_max=16, batch_size=4)  # fmt: skip


@pytest.fixture(scope="module")
def G():
    return random_generator(tiny_config(8), seed=0, w_avg_samples=50)


def rewrite_header(src: Path, dst: Path, key: str, change) -> Path:
    """Copy a file with ``meta[key]`` (JSON) passed through ``change``: a valid safetensors file, tiny tensors."""
    with safe_open(str(src), framework="pt") as f:
        meta = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    meta[key] = json.dumps(change(json.loads(meta[key])))
    save_file(tensors, str(dst), metadata=meta)
    return dst


def _fails_fast(load, path, *words):
    start = time.perf_counter()
    with pytest.raises(CheckpointError) as e:
        load(path)
    assert time.perf_counter() - start < 5
    msg = str(e.value)
    assert msg.startswith(f"{path}: ") and "\n" not in msg, msg
    for w in words:
        assert w in msg, msg
    return msg


def test_generator_header_with_a_huge_network_fails_fast(G, tmp_path):
    src = save_generator(G, tmp_path / "g.safetensors")
    huge = rewrite_header(src, tmp_path / "huge.safetensors", "config", lambda c: {**c, "w_dim": 10**6})
    _fails_fast(load_native_generator, huge, "w_dim must be an integer in [1, 4096], got 1000000")
    # Inside every bound but still a network of tens of GB: caught by the stored shapes, on the meta device.
    big = {"w_dim": 4096, "z_dim": 4096, "img_resolution": 4096, "channel_base": 1 << 22, "channel_max": 4096}
    wide = rewrite_header(src, tmp_path / "wide.safetensors", "config", lambda c: {**c, **big})
    msg = _fails_fast(load_native_generator, wide, "tensors do not match the stored stylegan2 config")
    assert "missing" in msg and "wrong shape" in msg and "(expected [4096" in msg
    assert wplus.load_generator(wide.parent / "g.safetensors").w_dim == G.w_dim  # the honest original loads


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda c: {**c, "img_resolution": 12}, "power of two"),
        (lambda c: {**c, "mapping_layers": 10**6}, "mapping_layers must be an integer in [1, 32]"),
        (lambda c: {**c, "w_dim": 32.5}, "w_dim must be an integer"),
        (lambda c: {**c, "conv_clamp": float("inf")}, "conv_clamp must be a finite number"),
        (lambda c: {**c, "resample_filter": [1] * 1000}, "resample_filter must be 1 to 16 finite taps"),
        (lambda c: [1, 2], "is a JSON object, got a list"),
        (lambda c: {**c, "channel_max": True}, "channel_max must be an integer"),
    ],
)
def test_generator_config_out_of_bounds(G, tmp_path, change, words):
    src = save_generator(G, tmp_path / "g.safetensors")
    _fails_fast(load_native_generator, rewrite_header(src, tmp_path / "bad.safetensors", "config", change), words)


def test_config_bounds_hold_for_every_architecture():
    for bad in ({"w_dim": 0}, {"z_dim": 5000}, {"img_resolution": 8192}, {"c_dim": -1}, {"w_avg_beta": 2.0}):
        with pytest.raises(ConfigError):
            StyleGAN2Config(**bad)
    for bad in ({"fmap_max": 10**6}, {"truncation_psi": float("nan")}, {"blur_filter": ()}, {"letterbox_rows": 2}):
        with pytest.raises(ConfigError):
            StyleGAN1Config(img_resolution=4, **bad) if "letterbox_rows" in bad else StyleGAN1Config(**bad)
    for bad in ({"channel_max": 10**5}, {"mbstd_num_channels": 3, "channel_max": 32}, {"mbstd_group_size": 0}):
        with pytest.raises(ConfigError):
            DiscriminatorConfig(**bad)
    StyleGAN2Config(), StyleGAN1Config(), DiscriminatorConfig()  # the published defaults pass


def test_discriminator_header_with_a_huge_network_fails_fast(tmp_path):
    D = Discriminator(DiscriminatorConfig(img_resolution=16, channel_base=128, channel_max=16))
    src = save_discriminator(D, tmp_path / "D.safetensors")
    huge = rewrite_header(src, tmp_path / "huge.safetensors", "config", lambda c: {**c, "channel_max": 10**6})
    _fails_fast(load_discriminator, huge, "channel_max must be an integer in [1, 4096]")
    big = rewrite_header(
        src,
        tmp_path / "big.safetensors",
        "config",
        lambda c: {**c, "img_resolution": 4096, "channel_base": 1 << 22, "channel_max": 4096},
    )
    _fails_fast(load_discriminator, big, "tensors do not match the stored discriminator config")
    torch.testing.assert_close(load_discriminator(src)(torch.zeros(2, 3, 16, 16)), D(torch.zeros(2, 3, 16, 16)))


def test_training_checkpoint_header_with_a_bigger_network_fails_fast(tmp_path):
    state = build_networks(TrainConfig(**TINY_TRAIN))
    src = save_checkpoint(state, tmp_path / "c.safetensors")
    grown = rewrite_header(
        src, tmp_path / "grown.safetensors", "train_config", lambda c: {**c, "g_channel_max": 4096, "w_dim": 4096}
    )
    _fails_fast(load_checkpoint, grown, "tensors do not match the stored training config")
    huge = rewrite_header(src, tmp_path / "huge.safetensors", "train_config", lambda c: {**c, "w_dim": 10**6})
    _fails_fast(load_checkpoint, huge, "w_dim must be an integer in [1, 4096]")
    _fails_fast(read_checkpoint_config, huge, "w_dim must be an integer")
    assert load_checkpoint(src).config == state.config


def test_training_checkpoint_with_wrong_adam_state_is_refused(tmp_path):
    state = build_networks(TrainConfig(**TINY_TRAIN))
    p = next(state.G.parameters())
    state.opt_G.state[p] = {"step": torch.tensor(1.0), "exp_avg": torch.zeros(3), "exp_avg_sq": torch.zeros(3)}
    path = save_checkpoint(state, tmp_path / "c.safetensors")
    _fails_fast(load_checkpoint, path, "wrong shape 2: opt_G.state.0.exp_avg [3]")


def test_one_writer_for_every_file_we_write(G, tmp_path):
    D = Discriminator(DiscriminatorConfig(img_resolution=16, channel_base=128, channel_max=16))
    files = {
        "stylegan2": save_generator(G, tmp_path / "g.safetensors", metadata={"source": "test", "n": 3}),
        "stylegan2_discriminator": save_discriminator(D, tmp_path / "d.safetensors"),
        "wplus_train_checkpoint": save_checkpoint(build_networks(TrainConfig(**TINY_TRAIN)), tmp_path / "c.st"),
    }
    for arch, path in files.items():
        meta = read_metadata(path, arch=arch)
        assert meta["wplus_format"] == ckpt.FORMAT_VERSION and meta["arch"] == arch
    assert read_metadata(files["stylegan2"])["n"] == "3"
    assert stored_shapes(files["stylegan2"]) == {k: tuple(v.shape) for k, v in G.state_dict().items()}
    with pytest.raises(ConfigError, match="reserved"):
        write_checkpoint(tmp_path / "x.safetensors", {}, arch="stylegan2", metadata={"arch": "other"})
    _fails_fast(load_native_generator, files["stylegan2_discriminator"], "load_discriminator")
    _fails_fast(load_discriminator, files["stylegan2"], "got arch 'stylegan2', expected a discriminator")
    newer = rewrite_header(files["stylegan2"], tmp_path / "v2.safetensors", "config", lambda c: c)
    with safe_open(str(newer), framework="pt") as f:
        meta, tensors = dict(f.metadata()), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    save_file(tensors, str(newer), metadata={**meta, "wplus_format": "2"})
    _fails_fast(load_native_generator, newer, "wplus format '2', this wplus reads '1'; upgrade wplus")


def test_models_do_not_import_io():
    """The models are architectures only: saving and loading them is wplus.io.checkpoint's job."""
    models = Path(wplus.__file__).parent / "models"
    for path in models.glob("*.py"):
        tree = ast.parse(path.read_text())
        top = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
        names = [n.module or "" for n in top if isinstance(n, ast.ImportFrom)] + [
            a.name for n in top if isinstance(n, ast.Import) for a in n.names
        ]
        assert not [m for m in names if m.startswith(("wplus.io", "safetensors"))], path.name


def test_every_checkpoint_writer_gives_new_files_the_usual_permissions(tmp_path):
    import os
    import stat

    from conftest import tiny_config
    from wplus.io.checkpoint import save_discriminator, save_generator
    from wplus.models.stylegan2 import random_generator
    from wplus.models.stylegan2_discriminator import Discriminator, DiscriminatorConfig

    old = os.umask(0o027)
    try:
        g = save_generator(random_generator(tiny_config(16), seed=0), tmp_path / "g.safetensors")
        d = save_discriminator(
            Discriminator(DiscriminatorConfig(img_resolution=16, channel_base=256, channel_max=32)),
            tmp_path / "d.safetensors",
        )
    finally:
        os.umask(old)
    for path in (g, d):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o640, path
