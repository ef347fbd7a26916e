"""Foreign StyleGAN2 checkpoints (NVIDIA pickles, TF pickles, rosinality .pt) load faithfully, running no code.

Each test writes a file in the real on-disk structure from a random tiny model (wplus.formats._testing), loads it
through ``load_generator`` and compares renders with the source model.
"""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

import pytest
import torch

from conftest import tiny_config
from wplus.errors import CheckpointError
from wplus.formats import _testing as W
from wplus.formats.dispatch import sniff_format
from wplus.loading import load_generator, load_generator_info
from wplus.models.stylegan2 import Generator, random_generator, seeded_init_
from wplus.models.stylegan2_discriminator import DiscriminatorConfig

TOL = 1e-5


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def G():
    return random_generator(tiny_config(16, conv_clamp=256.0), seed=3, noise_strength=0.2)


@pytest.fixture(scope="module")
def G_plain():
    """No conv_clamp: rosinality files and bare state dicts cannot record one."""
    return random_generator(tiny_config(16), seed=8, noise_strength=0.2)


def assert_same_renders(src: Generator, loaded: Generator, c: torch.Tensor | None = None) -> None:
    assert loaded.config == src.config
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(2, src.z_dim, generator=gen)
    ws_plus = torch.randn(2, src.num_ws, src.w_dim, generator=gen)
    with torch.no_grad():
        w = src.mapping(z, c)
        assert (loaded.mapping(z, c) - w).abs().max() <= TOL  # W
        assert (loaded.synthesis(ws_plus) - src.synthesis(ws_plus)).abs().max() <= TOL  # W+, const noise
        a = src(z, c, truncation_psi=0.7, noise_mode="const")  # truncation towards w_avg
        b = loaded(z, c, truncation_psi=0.7, noise_mode="const")
        assert (a - b).abs().max() <= TOL
        assert torch.equal(loaded.w_avg, src.w_avg)
        for x, y in zip(loaded.noise_maps(), src.noise_maps(), strict=True):
            assert torch.equal(x, y)


@pytest.mark.parametrize("flat", [False, True], ids=["ada-nested-kwargs", "stylegan3-repo-flat-kwargs"])
@pytest.mark.parametrize("numpy1", [False, True], ids=["numpy2-names", "numpy1-names"])
def test_nvidia_pickle_renders_like_source(G, tmp_path, flat, numpy1):
    path = W.write_nvidia_pickle(G, tmp_path / "net.pkl", flat_kwargs=flat, numpy1=numpy1)
    marker = b"numpy.core.multiarray" if numpy1 else b"numpy._core.multiarray"
    assert marker in path.read_bytes() and b"torch_utils.persistence" in path.read_bytes()
    assert sniff_format(path) == "nvidia-pkl"
    assert_same_renders(G, load_generator(path))


def test_nvidia_fp16_layers_load_as_float32(G, tmp_path):
    path = W.write_nvidia_pickle(G, tmp_path / "fp16.pkl", fp16_min_res=8)
    loaded = load_generator(path)
    assert all(t.dtype == torch.float32 for t in loaded.state_dict().values())
    assert_same_renders(W.fp16_rounded(G, 8), loaded)


def test_nvidia_uses_g_ema_not_g(G, tmp_path):
    other = random_generator(G.config, seed=99, noise_strength=0.2)
    D = W.random_discriminator(DiscriminatorConfig(img_resolution=16, channel_base=256, channel_max=32))
    path = W.write_nvidia_pickle(G, tmp_path / "net.pkl", D=D)
    from wplus.formats.nvidia_pkl import read_nvidia_pickle

    assert set(read_nvidia_pickle(path)) == {"G", "D", "G_ema", "training_set_kwargs", "augment_pipe"}
    assert_same_renders(G, load_generator(path))
    # A file whose G differs from G_ema must load G_ema.
    from wplus.formats._testing import _dump, _nvidia_record

    g_ema = _nvidia_record(G, "", 0)
    g_ema.meta["state"]["_init_kwargs"] = W._EasyDict(z_dim=G.z_dim, c_dim=0, img_resolution=16, conv_clamp=256.0)
    _dump(
        {"G": _nvidia_record(other, "", 0), "G_ema": g_ema, "D": None}, tmp_path / "two.pkl", protocol=4, numpy1=False
    )
    assert_same_renders(G, load_generator(tmp_path / "two.pkl"))


def test_nvidia_conditional_model(tmp_path):
    cfg = tiny_config(16, c_dim=4)
    src = seeded_init_(Generator(cfg), 5).eval().requires_grad_(False)
    path = W.write_nvidia_pickle(src, tmp_path / "cond.pkl")
    loaded = load_generator(path)
    assert loaded.c_dim == 4
    c = torch.nn.functional.one_hot(torch.tensor([1, 3]), 4).float()
    assert_same_renders(src, loaded, c)


@pytest.mark.parametrize("arch", ["orig", "resnet"])
def test_nvidia_other_architectures(tmp_path, arch):
    src = random_generator(tiny_config(16, architecture=arch), seed=4, noise_strength=0.1, w_avg_samples=200)
    assert_same_renders(src, load_generator(W.write_nvidia_pickle(src, tmp_path / "a.pkl")))


def test_stylegan3_pickle_without_kwargs_is_refused(G, tmp_path):
    # A StyleGAN3 record is recognised by its SynthesisInput; without _init_kwargs its architecture is unknowable.
    rec = W._nvidia_record(G, "", 0)
    syn = rec.meta["state"]["_modules"]["synthesis"]
    syn.meta["state"]["_modules"] = {"input": W._Record({**syn.meta, "class_name": "SynthesisInput", "state": {}})}
    W._dump({"G_ema": rec}, tmp_path / "sg3.pkl", protocol=4, numpy1=False)
    with pytest.raises(CheckpointError, match=r"sg3\.pkl.*StyleGAN3 G_ema has no _init_kwargs"):
        load_generator(tmp_path / "sg3.pkl")


@pytest.mark.parametrize("version", [4, 5], ids=["stylegan2-tf-v4-with-lod", "ada-tf-v5"])
@pytest.mark.parametrize("numpy1", [False, True], ids=["numpy2-names", "numpy1-names"])
def test_tf_pickle_renders_like_source(G, tmp_path, version, numpy1):
    path = W.write_tf_pickle(G, tmp_path / "tf.pkl", version=version, numpy1=numpy1)
    assert sniff_format(path) == "tf-pkl"
    loaded = load_generator(path)
    if version == 4:  # original StyleGAN2 TF pickles record no conv_clamp
        loaded = Generator(G.config)
        loaded.load_state_dict(load_generator(path).state_dict())
    assert_same_renders(G, loaded.eval())


def test_tf_pickle_orig_architecture(tmp_path):
    src = random_generator(tiny_config(16, architecture="orig"), seed=6, noise_strength=0.1, w_avg_samples=200)
    assert_same_renders(src, load_generator(W.write_tf_pickle(src, tmp_path / "orig.pkl")))


def test_tf_layout_conversions_are_applied(G, tmp_path):
    from wplus.formats.tf_stylegan2 import read_tf_pickle, tf_variables

    tf = tf_variables(read_tf_pickle(W.write_tf_pickle(G, tmp_path / "tf.pkl"))[2])
    w = G.synthesis.b8.conv0.weight.numpy()
    assert tf["synthesis/8x8/Conv0_up/weight"].shape == (3, 3, w.shape[1], w.shape[0])  # HWIO
    assert (tf["synthesis/8x8/Conv0_up/weight"][::-1, ::-1].transpose(3, 2, 0, 1) == w).all()  # flipped
    assert (tf["synthesis/8x8/Conv1/mod_bias"] + 1 == G.synthesis.b8.conv1.affine.bias.numpy()).all()
    assert tf["synthesis/noise2"].shape == (1, 1, 8, 8) and "lod" in tf and "dlatent_avg" in tf


def test_tf_stylegan1_is_sent_to_its_reader(G, tmp_path):
    from tf_stylegan1_writer import write_tf_stylegan1
    from wplus.models.stylegan1 import Generator as StyleGAN1Generator

    path = tmp_path / "v1.pkl"
    write_tf_stylegan1(path, 16, fmap_base=64, fmap_max=16, seed=1)
    G1 = load_generator(path)
    assert isinstance(G1, StyleGAN1Generator) and G1.img_resolution == 16
    # A version-3 network whose variables are StyleGAN2's is neither: the v1 reader refuses it, naming the file.
    bogus = W.write_tf_pickle(G, tmp_path / "bogus.pkl", version=3)
    with pytest.raises(CheckpointError, match=r"bogus\.pkl"):
        load_generator(bogus)


@pytest.mark.parametrize("with_args", [True, False], ids=["with-argparse-namespace", "converted"])
def test_rosinality_renders_like_source(G_plain, tmp_path, with_args):
    path = W.write_rosinality(G_plain, tmp_path / "ckpt.pt", with_args=with_args)
    assert sniff_format(path) == "torch"
    assert_same_renders(G_plain, load_generator(path))


def test_rosinality_without_latent_avg_estimates_w_avg(G, tmp_path):
    loaded = load_generator(W.write_rosinality(G, tmp_path / "noavg.pth", with_latent_avg=False))
    assert loaded.w_avg.abs().sum() > 0
    assert torch.allclose(loaded.w_avg, G.w_avg, atol=0.5)


def test_inferred_config_and_provenance(tmp_path):
    cfg = tiny_config(32, channel_base=512, channel_max=32, mapping_layers=3, conv_clamp=256.0, num_fp16_res=2)
    src = random_generator(cfg, seed=7, w_avg_samples=100)
    info = load_generator_info(W.write_nvidia_pickle(src, tmp_path / "cfg.pkl"))
    assert info.G.config == cfg
    assert info.model_id == "cfg" and len(info.sha256) == 64


def test_converted_file_loads_without_pickle(G, tmp_path):
    from wplus.io.checkpoint import load_native_generator, save_generator

    out = save_generator(load_generator(W.write_nvidia_pickle(G, tmp_path / "n.pkl")), tmp_path / "n.safetensors")
    assert_same_renders(G, load_native_generator(out))


@pytest.mark.parametrize(
    "name,content",
    [
        ("empty.pkl", b""),
        ("empty.pt", b""),
        ("text.pkl", b"hello, I am not a checkpoint"),
        ("png.pt", b"\x89PNG\r\n\x1a\n" + bytes(64)),
        ("list.pkl", pickle.dumps([1, 2, 3])),
        ("dict.pkl", pickle.dumps({"G": 1})),
        ("zip.pt", b"PK\x03\x04" + bytes(40)),
    ],
)
def test_broken_and_wrong_type_files_name_the_file(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=name.replace(".", r"\.")):
        load_generator(path)


@pytest.mark.parametrize("writer", ["nvidia", "tf", "rosinality"])
def test_truncated_files_name_the_file(G, tmp_path, writer):
    write = {"nvidia": W.write_nvidia_pickle, "tf": W.write_tf_pickle, "rosinality": W.write_rosinality}[writer]
    path = write(G, tmp_path / ("full.pt" if writer == "rosinality" else "full.pkl"))
    cut = tmp_path / ("cut" + path.suffix)
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"cut\."):
        load_generator(cut)


def test_wrong_weights_for_a_stylegan2_are_refused(G_plain, tmp_path):
    G = G_plain
    sd = {k: v for k, v in G.state_dict().items() if "b16.conv1" not in k}
    torch.save(sd, tmp_path / "partial.pt")
    with pytest.raises(CheckpointError, match=r"partial\.pt"):
        load_generator(tmp_path / "partial.pt")
    torch.save(copy.deepcopy(G.state_dict()), tmp_path / "bare.pt")
    assert_same_renders(G, load_generator(tmp_path / "bare.pt"))


def test_unknown_suffix_is_refused(tmp_path):
    (tmp_path / "x.ckpt").write_bytes(b"abc")
    with pytest.raises(CheckpointError, match=r"x\.ckpt.*unsupported"):
        load_generator(Path(tmp_path / "x.ckpt"))
