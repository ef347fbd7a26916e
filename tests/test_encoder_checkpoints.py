"""Released pSp / e4e / ReStyle checkpoints: strict safe loading, codes against a plain re-computation, refusals.

The files are written in the released layout (``wplus.formats._testing_psp``) with thin backbones (stem width 8:
the released names and nesting, smaller tensors) and a 64 px decoder (10 W+ rows of 32). The reference below is
written from the released key names alone with torch.nn.functional, independent of wplus.models.psp_encoders.
(benchmarks/encoder_originals.py compares full-width files against the original repositories' classes.)
"""

from __future__ import annotations

import argparse
import math

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from wplus import CheckpointError, ConfigError, load_encoder
from wplus.formats._testing_psp import FLAVOURS, released_opts, write_psp_checkpoint
from wplus.models.stylegan2 import StyleGAN2Config, random_generator

WIDTH = 8


@pytest.fixture(scope="module")
def G():
    cfg = StyleGAN2Config(img_resolution=64, z_dim=32, w_dim=32, channel_base=512, channel_max=32, mapping_layers=2)
    return random_generator(cfg, seed=1, noise_strength=0.1, w_avg_samples=200)


@pytest.fixture(scope="module")
def files(G, tmp_path_factory):
    d = tmp_path_factory.mktemp("encoders")
    return {fl: write_psp_checkpoint(d / f"{fl}.pt", G, fl, width=WIDTH, seed=3) for fl in FLAVOURS}


@pytest.fixture(scope="module")
def images():
    return torch.rand(2, 3, 256, 256, generator=torch.Generator().manual_seed(0)) * 2 - 1


# ---- the independent reference: released key names -> functional ops ----------------------------------------------


def _bn(x, sd, p):
    return F.batch_norm(x, sd[f"{p}.running_mean"], sd[f"{p}.running_var"], sd[f"{p}.weight"], sd[f"{p}.bias"],
                        False, 0.0, 1e-5)  # fmt: skip


def _unit(x, sd, p, stride):
    r = _bn(x, sd, f"{p}.res_layer.0")
    r = F.conv2d(r, sd[f"{p}.res_layer.1.weight"], padding=1)
    r = F.prelu(r, sd[f"{p}.res_layer.2.weight"])
    r = F.conv2d(r, sd[f"{p}.res_layer.3.weight"], stride=stride, padding=1)
    r = _bn(r, sd, f"{p}.res_layer.4")
    s = F.relu(F.conv2d(r.mean((2, 3), keepdim=True), sd[f"{p}.res_layer.5.fc1.weight"]))
    r = r * torch.sigmoid(F.conv2d(s, sd[f"{p}.res_layer.5.fc2.weight"]))
    if f"{p}.shortcut_layer.0.weight" in sd:
        short = _bn(F.conv2d(x, sd[f"{p}.shortcut_layer.0.weight"], stride=stride), sd, f"{p}.shortcut_layer.1")
    else:
        short = x[:, :, ::stride, ::stride]
    return r + short


def _backbone(x, sd):
    x = F.prelu(
        _bn(F.conv2d(x, sd["input_layer.0.weight"], padding=1), sd, "input_layer.1"), sd["input_layer.2.weight"]
    )
    taps = {}
    for i in range(24):
        x = _unit(x, sd, f"body.{i}", 2 if i in (0, 3, 7, 21) else 1)
        taps[i] = x
    return taps[6], taps[20], taps[23]


def _map2style(x, sd, i):
    j = 0
    while f"styles.{i}.convs.{j}.weight" in sd:
        x = F.leaky_relu(F.conv2d(x, sd[f"styles.{i}.convs.{j}.weight"], sd[f"styles.{i}.convs.{j}.bias"], 2, 1), 0.01)
        j += 2
    w = sd[f"styles.{i}.linear.weight"]
    return F.linear(x.flatten(1), w / math.sqrt(w.shape[1]), sd[f"styles.{i}.linear.bias"])


def reference_codes(sd, opts, x):
    """The encoder's raw output [B, n, 512-or-w_dim] from the state dict (no latent_avg)."""
    c1, c2, c3 = _backbone(x, sd)
    etype = opts["encoder_type"]
    if etype == "BackboneEncoderUsingLastLayerIntoW":
        w = sd["linear.weight"]
        return F.linear(c3.mean((2, 3)), w / math.sqrt(w.shape[1]), sd["linear.bias"])
    n = sum(1 for k in sd if k.endswith(".linear.weight"))
    if etype in ("BackboneEncoder", "ProgressiveBackboneEncoder"):
        maps = [c3] * n
    else:

        def up(a, b):
            return F.interpolate(a, size=b.shape[-2:], mode="bilinear", align_corners=True) + b

        p2 = up(c3, F.conv2d(c2, sd["latlayer1.weight"], sd["latlayer1.bias"]))
        p1 = up(p2, F.conv2d(c1, sd["latlayer2.weight"], sd["latlayer2.bias"]))
        maps = [c3 if i < 3 else p2 if i < 7 else p1 for i in range(n)]
    rows = [_map2style(m, sd, i) for i, m in enumerate(maps)]
    if etype in ("Encoder4Editing", "ProgressiveBackboneEncoder"):
        return torch.stack([rows[0]] + [rows[0] + r for r in rows[1:]], dim=1)
    return torch.stack(rows, dim=1)


def _read(path):
    ckpt = torch.load(path, weights_only=True)
    sd = {k[8:]: v for k, v in ckpt["state_dict"].items() if k.startswith("encoder.")}
    return ckpt, sd


# ---- loading and codes --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("flavour", ["psp", "psp-w", "e4e"])
def test_single_pass_layouts_match_reference(files, images, flavour):
    enc = load_encoder(files[flavour])
    ckpt, sd = _read(files[flavour])
    assert enc.kind == flavour and enc.iterations == 0
    with torch.no_grad():
        ref = reference_codes(sd, ckpt["opts"], images)
    if ref.ndim == 2:
        ref = ref[:, None].expand(-1, 10, -1)
    ref = ref + ckpt["latent_avg"]  # start_from_latent_avg in the released options
    ws = enc.encode(images)
    assert ws.shape == (2, 10, 32)
    torch.testing.assert_close(ws, ref, rtol=1e-5, atol=1e-5)
    assert (ws - ckpt["latent_avg"]).abs().max() > 0.05  # the encoder contributes, not only latent_avg


def test_restyle_loop_matches_reference(files, images):
    """ReStyle: step 0 reads image || G(latent_avg) pooled to 256, adds to latent_avg; step k reads step k-1's
    reconstruction and adds its residual. Checked for both ReStyle layouts and the pSp-FPN variant."""
    x = images[:1]
    for flavour in ("restyle-psp", "restyle-e4e", "restyle-fpn"):
        enc = load_encoder(files[flavour])
        ckpt, sd = _read(files[flavour])
        assert enc.kind.startswith("restyle") and enc.iterations == 5
        steps = enc.steps(x, 2)
        with torch.no_grad():
            avg = F.adaptive_avg_pool2d(enc.G.synthesis(ckpt["latent_avg"][None], noise_mode="const"), 256)
            previous = ckpt["latent_avg"].expand(1, -1, -1)
            for k in range(2):
                recon = avg.expand(1, -1, -1, -1) if k == 0 else F.adaptive_avg_pool2d(enc.render(steps.ws[k - 1]), 256)
                torch.testing.assert_close(steps.inputs[k], torch.cat([x, recon], 1), rtol=0, atol=0)
                residual = reference_codes(sd, ckpt["opts"], steps.inputs[k])
                torch.testing.assert_close(steps.ws[k], previous + residual, rtol=1e-5, atol=1e-5)
                previous = steps.ws[k]
        torch.testing.assert_close(enc.encode(x, 2), steps.ws[-1])


def test_decoder_is_the_written_generator(files, G):
    enc = load_encoder(files["e4e"])
    ws = G.mapping(torch.randn(2, 32, generator=torch.Generator().manual_seed(2)), None)
    torch.testing.assert_close(enc.render(ws), G.synthesis(ws, noise_mode="const"), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(enc.G.w_avg, G.w_avg)


def test_start_from_latent_avg_off_and_e4e_training_file(G, tmp_path, images):
    opts = released_opts("psp", 64, start_from_latent_avg=False)
    on = load_encoder(write_psp_checkpoint(tmp_path / "on.pt", G, "psp", width=WIDTH, seed=4))
    off = load_encoder(write_psp_checkpoint(tmp_path / "off.pt", G, "psp", width=WIDTH, seed=4, opts=opts))
    x = images[:1]
    torch.testing.assert_close(on.encode(x) - off.encode(x), on.latent_avg.expand(1, -1, -1), rtol=1e-5, atol=1e-5)
    e4e = load_encoder(write_psp_checkpoint(tmp_path / "t.pt", G, "e4e", width=WIDTH, training=True))
    assert e4e.kind == "e4e"
    with pytest.raises(ConfigError, match="single-pass"):
        e4e.encode(x, iterations=3)


def test_loaded_file_is_also_a_generator(files, G):
    import wplus

    G2 = wplus.load_generator(str(files["restyle-psp"]))
    ws = G.w_avg.expand(1, G.num_ws, -1)
    torch.testing.assert_close(G2.synthesis(ws, noise_mode="const"), G.synthesis(ws, noise_mode="const"))


# ---- refusals: one line naming the file ---------------------------------------------------------------------------


def _broken(G, tmp_path, name, edit=None, opts=None):
    good = tmp_path / "good.pt"
    write_psp_checkpoint(good, G, "psp", width=WIDTH)
    ckpt = torch.load(good, weights_only=True)
    state = dict(ckpt["state_dict"])
    if edit:
        edit(state)
    return write_psp_checkpoint(tmp_path / name, G, "psp", width=WIDTH, state=state, opts=opts or ckpt["opts"])


def _refusal(path, match):
    with pytest.raises(CheckpointError, match=match) as e:
        load_encoder(path)
    msg = str(e.value)
    assert str(path) in msg and "\n" not in msg
    return msg


def test_missing_and_extra_tensors(G, tmp_path):
    p = _broken(G, tmp_path, "missing.pt", lambda s: s.pop("encoder.body.5.res_layer.5.fc1.weight"))
    assert "encoder.body.5.res_layer.5.fc1.weight" in _refusal(p, "1 encoder tensors missing")
    p = _broken(G, tmp_path, "extra.pt", lambda s: s.update({"encoder.styles.10.linear.weight": torch.zeros(32, 32)}))
    assert "encoder.styles.10.linear.weight" in _refusal(p, "unexpected encoder tensors")
    p = _broken(G, tmp_path, "shape.pt", lambda s: s.update({"encoder.latlayer1.bias": torch.zeros(7)}))
    _refusal(p, r"encoder.latlayer1.bias has shape \[7\], expected \[64\]")
    p = _broken(G, tmp_path, "nodec.pt", lambda s: [s.pop(k) for k in list(s) if k.startswith("decoder.")])
    _refusal(p, "no decoder")


def test_pickled_opts_object_and_unknown_type(G, tmp_path):
    opts = argparse.Namespace(**released_opts("psp", 64))
    p = write_psp_checkpoint(tmp_path / "ns.pt", G, "psp", width=WIDTH, opts=opts)  # type: ignore[arg-type]
    assert "plain dict" in _refusal(p, "refusing to load")
    p = _broken(G, tmp_path, "type.pt", opts=released_opts("psp", 64, encoder_type="ResNetGradualStyleEncoder"))
    _refusal(p, "'ResNetGradualStyleEncoder', expected a released encoder")
    p = _broken(G, tmp_path, "size.pt", opts=released_opts("psp", 1024))
    _refusal(p, "missing|decoder takes")


def test_not_a_checkpoint(tmp_path):
    p = tmp_path / "g.pt"
    torch.save({"g_ema": {}}, p)
    _refusal(p, "expected a dict with 'state_dict'")
    p.write_bytes(b"")
    _refusal(p, "empty")


# ---- the command --------------------------------------------------------------------------------------------------


def test_encode_command_writes_projection_folders(files, G, tmp_path):
    import numpy as np
    from PIL import Image

    from wplus.cli.main import cli
    from wplus.io.latents import load_latent
    from wplus.loading import file_sha256

    Image.fromarray((np.random.default_rng(0).random((70, 90, 3)) * 255).astype("uint8")).save(tmp_path / "a.png")
    out = tmp_path / "out"
    args = ["encode", str(tmp_path / "a.png"), "--encoder", str(files["restyle-e4e"]), "--outdir", str(out)]
    r = CliRunner().invoke(cli, [*args, "--iterations", "2", "--json"])
    assert r.exit_code == 0, r.output
    folder = out / "a"
    assert {"latent.npz", "latent.npy", "projection.png", "target.png", "metrics.json", "config.json"} <= {
        f.name for f in folder.iterdir()
    }
    import json

    m = json.loads((folder / "metrics.json").read_text())
    assert m["iterations"] == 2 and m["milliseconds"] > 0 and math.isfinite(m["psnr"]) and "ssim" in m
    lat = load_latent(folder / "latent.npz")
    assert lat.ws.shape == (1, 10, 32) and lat.model_sha256 == file_sha256(files["restyle-e4e"])
    r = CliRunner().invoke(cli, ["encode", str(tmp_path / "a.png"), "--encoder", str(files["psp"]), "--outdir",
                                 str(out), "--iterations", "3"])  # fmt: skip
    assert r.exit_code != 0 and "single-pass" in r.output
    r = CliRunner().invoke(cli, ["encode", str(tmp_path / "a.png"), "--encoder", "no-such-encoder", "--outdir",
                                 str(out)])  # fmt: skip
    assert r.exit_code != 0 and "psp-ffhq-encode" in r.output


def test_registered_encoders():
    from wplus.hub import get_spec

    for name in ("psp-ffhq-encode", "e4e-ffhq-encode", "restyle-psp-ffhq", "restyle-e4e-ffhq"):
        spec = get_spec(name)
        assert spec.kind == "psp-encoder" and spec.urls[0].startswith("https://drive.google.com/")
        assert spec.sha256 is None and spec.source.startswith("https://github.com/")
