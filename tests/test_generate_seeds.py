"""Seeds as NVIDIA's generate.py draws them, StyleGAN v1 truncation as TF's Gs.run, and the options of generate."""

from __future__ import annotations

import click
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from conftest import tiny_config
from wplus.cli.common import MAX_RANGE_COUNT, parse_int_ranges
from wplus.cli.main import cli
from wplus.errors import ConfigError
from wplus.io.checkpoint import save_generator
from wplus.io.images import tensor_to_pil
from wplus.io.latents import load_latent
from wplus.models import stylegan1
from wplus.models.stylegan2 import random_generator
from wplus.seeds import z_from_seed


def numpy_z(seed: int, z_dim: int) -> torch.Tensor:
    """z the way NVIDIA's generate.py and the projecting toolkit draw it, written out independently here."""
    rnd = np.random.RandomState(seed)
    return torch.from_numpy(rnd.randn(1, z_dim)).to(torch.float32)


@pytest.fixture(scope="module")
def sg2_file(tmp_path_factory):
    G = random_generator(tiny_config(16), seed=3, noise_strength=0.1)
    return G, save_generator(G, tmp_path_factory.mktemp("g") / "g.safetensors")


@pytest.fixture(scope="module")
def sg1_file(tmp_path_factory):
    """A 64 px StyleGAN v1 (num_ws 10, so cutoff 8 leaves two rows untruncated)."""
    cfg = stylegan1.StyleGAN1Config(
        img_resolution=64, fmap_base=64, fmap_max=8, z_dim=16, w_dim=16, mapping_layers=2, mapping_fmaps=16
    )
    G = stylegan1.random_generator(cfg, seed=5, w_avg_samples=200)
    return G, save_generator(G, tmp_path_factory.mktemp("g1") / "g1.safetensors")


@pytest.mark.parametrize("seed", [0, 5, 6600, 2**32 - 1])
def test_z_from_seed_is_numpys_randomstate(seed):
    z = z_from_seed(seed, 512)
    assert z.dtype == torch.float32 and z.shape == (1, 512)
    assert torch.equal(z, numpy_z(seed, 512))


@pytest.mark.parametrize("seed", [-1, 2**32, True, 1.5])
def test_z_from_seed_refuses_seeds_randomstate_cannot_take(seed):
    with pytest.raises(ConfigError, match="expected an integer from 0 to 4294967295"):
        z_from_seed(seed, 8)


def test_generate_draws_z_like_nvidia_and_renders_it(sg2_file, tmp_path):
    G, path = sg2_file
    args = ["generate", "--model", str(path), "--seeds", "6600,7", "--save-latents", "--device", "cpu"]
    r = CliRunner().invoke(cli, [*args, "--outdir", str(tmp_path)])
    assert r.exit_code == 0, r.output
    for seed in (6600, 7):
        latent = load_latent(tmp_path / f"seed{seed:04d}.npz")
        z = numpy_z(seed, G.z_dim)
        assert torch.equal(latent.z, z)
        with torch.no_grad():
            ws = G.mapping(z, None)
            image = G.synthesis(ws, noise_mode="const")
        torch.testing.assert_close(latent.ws, ws)
        got = np.asarray(Image.open(tmp_path / f"seed{seed:04d}.png"))
        assert np.array_equal(got, np.asarray(tensor_to_pil(image)))


def test_stylegan1_truncates_the_first_8_layers_like_gs_run(sg1_file, tmp_path):
    G, path = sg1_file
    assert G.num_ws == 10
    z = numpy_z(3, G.z_dim)
    with torch.no_grad():
        w = G.mapping(z)
    w_avg = G.mapping.w_avg

    def run(*extra: str):
        out = tmp_path / "-".join(extra or ("default",))
        args = ["generate", "--model", str(path), "--seeds", "3", "--save-latents", "--device", "cpu", *extra]
        r = CliRunner().invoke(cli, [*args, "--outdir", str(out)])
        assert r.exit_code == 0, r.output
        return load_latent(out / "seed0003.npz").ws

    truncated = w_avg + 0.7 * (w - w_avg)
    ws = run("--trunc", "0.7")
    torch.testing.assert_close(ws[:, :8], truncated[:, :8])
    torch.testing.assert_close(ws[:, 8:], w[:, 8:])  # layers 8 and 9 keep w, as TF's truncation_cutoff=8
    assert not torch.allclose(ws[:, 8:], truncated[:, 8:])
    ws = run("--trunc", "0.7", "--trunc-cutoff", "3")
    torch.testing.assert_close(ws[:, :3], truncated[:, :3])
    torch.testing.assert_close(ws[:, 3:], w[:, 3:])
    torch.testing.assert_close(run(), w)  # psi 1: nothing truncated


def test_stylegan2_truncates_every_layer_by_default(sg2_file, tmp_path):
    G, path = sg2_file
    args = ["generate", "--model", str(path), "--seeds", "1", "--trunc", "0.5", "--save-latents", "--device", "cpu"]
    r = CliRunner().invoke(cli, [*args, "--outdir", str(tmp_path)])
    assert r.exit_code == 0, r.output
    z = numpy_z(1, G.z_dim)
    with torch.no_grad():
        w = G.mapping(z, None)
    torch.testing.assert_close(load_latent(tmp_path / "seed0001.npz").ws, G.w_avg + 0.5 * (w - G.w_avg))


@pytest.mark.parametrize(
    ("seeds", "message"),
    [
        ("5-2", "got the range '5-2', expected the smaller number first ('2-5')"),
        ("4294967296", "expected numbers from 0 to 4294967295 (what NumPy's RandomState takes)"),
        ("0-99999999999", "expected numbers from 0 to 4294967295"),
        ("-3", "expected non-negative integers and ranges"),
        ("1,x", "got 'x' in '1,x'"),
        ("²", "got '²'"),
        (",", "expected at least one number"),
        ("0-4000000", f"expected at most {MAX_RANGE_COUNT:,} in one run"),
    ],
)
def test_bad_seeds_are_refused_naming_the_flag(sg2_file, tmp_path, seeds, message):
    _, path = sg2_file
    r = CliRunner().invoke(cli, ["generate", "--model", str(path), f"--seeds={seeds}", "--outdir", str(tmp_path)])
    assert r.exit_code == 2 and "Invalid value for --seeds:" in r.output and message in r.output, r.output
    assert not list(tmp_path.iterdir())


def test_the_largest_seed_is_accepted(sg2_file, tmp_path):
    _, path = sg2_file
    r = CliRunner().invoke(cli, ["generate", "--model", str(path), "--seeds", "4294967295", "--outdir", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "seed4294967295.png").is_file()


def test_parse_int_ranges_names_the_callers_flag():
    assert parse_int_ranges("0-3,7, 10-11") == [0, 1, 2, 3, 7, 10, 11]
    with pytest.raises(click.BadParameter) as info:
        parse_int_ranges("5-2", param_hint="--layers")
    assert info.value.param_hint == "--layers"
    with pytest.raises(click.BadParameter, match="from 0 to 17"):
        parse_int_ranges("3-18", param_hint="--layers", upper=18)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_trunc_is_refused(sg2_file, tmp_path, value):
    _, path = sg2_file
    r = CliRunner().invoke(cli, ["generate", "--model", str(path), f"--trunc={value}", "--outdir", str(tmp_path)])
    assert r.exit_code == 2 and "Invalid value for --trunc:" in r.output and "finite" in r.output, r.output
