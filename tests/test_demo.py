"""`wplus demo`, the shipped-model fallback and the quality checks, on tiny stand-ins for the shipped files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import wplus.shipped as shipped
from wplus.cli.main import cli
from wplus.demo import demo_targets, run_demo
from wplus.errors import CheckpointError
from wplus.io.checkpoint import save_discriminator, save_generator
from wplus.losses import DiscriminatorFeatures
from wplus.models.stylegan2_discriminator import Discriminator, DiscriminatorConfig
from wplus.train.quality import CheckRun, held_out_faces, projection_psnr, smile_fraction


@pytest.fixture
def fake_assets(tmp_path, monkeypatch, tiny_generator):
    """Tiny generator and discriminator files standing in for the shipped ones."""
    folder = tmp_path / "assets"
    save_generator(tiny_generator, folder / f"{shipped.SHIPPED_MODEL}.safetensors")
    D = Discriminator(DiscriminatorConfig(img_resolution=16, channel_base=128, channel_max=16))
    save_discriminator(D, folder / f"{shipped.SHIPPED_MODEL}-D.safetensors")
    monkeypatch.setattr(shipped, "_asset", lambda name: folder / name)
    return folder


def test_resolve_model_falls_back_to_the_shipped_model_offline(fake_assets, tmp_path, monkeypatch):
    monkeypatch.setenv("WPLUS_OFFLINE", "1")
    monkeypatch.setenv("WPLUS_CACHE", str(tmp_path / "cache"))
    notices = []
    path, is_shipped = shipped.resolve_model(None, notice=notices.append, allow_download=False)
    assert is_shipped and path.name == f"{shipped.SHIPPED_MODEL}.safetensors"
    assert len(notices) == 1 and shipped.DEFAULT_MODEL in notices[0] and shipped.SHIPPED_MODEL in notices[0]
    own = fake_assets / f"{shipped.SHIPPED_MODEL}.safetensors"
    assert shipped.resolve_model(own) == (own, False)
    with pytest.raises(CheckpointError, match="no-such-model"):
        shipped.resolve_model("no-such-model")


def test_shipped_loaders(fake_assets):
    G = shipped.load_shipped_generator()
    D = shipped.load_shipped_discriminator()
    assert G.img_resolution == 16 and D.img_resolution == 16


def test_run_demo_writes_every_artifact(fake_assets, tmp_path):
    G = shipped.load_shipped_generator()
    loss = DiscriminatorFeatures(shipped.load_shipped_discriminator())
    res = run_demo(G, loss, tmp_path / "out", targets=demo_targets(16), loss_name="d", num_steps=2)
    for key in ("reconstructions", "morph_gif", "style_mixing", "expression", "contact_sheet", "latent_a"):
        assert res.files[key].is_file(), key
    assert set(res.psnr) == {"a", "b", "target", "neutral", "smiling"}
    assert Image.open(res.files["morph_gif"]).n_frames == 12
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["num_steps"] == 2


def test_demo_targets_pair_differs_only_in_the_mouth():
    t = demo_targets(64)
    assert t["a"].size == (64, 64)
    a = torch.from_numpy(np.asarray(t["neutral"], dtype=np.float32))
    b = torch.from_numpy(np.asarray(t["smiling"], dtype=np.float32))
    rows = (a - b).abs().sum((1, 2)).nonzero().flatten()
    assert rows.numel() > 0 and rows.min() > 32  # only the lower half (the mouth) changes


def test_cli_demo_offline(fake_assets, tmp_path):
    r = CliRunner().invoke(cli, ["demo", "--outdir", str(tmp_path / "d"), "--steps", "2", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert "contact sheet" in r.output and (tmp_path / "d" / "contact_sheet.png").is_file()
    assert "discriminator features" in json.loads((tmp_path / "d" / "summary.json").read_text())["loss"]


def test_quality_checks_run(fake_assets):
    G = shipped.load_shipped_generator()
    loss = DiscriminatorFeatures(shipped.load_shipped_discriminator())
    scores = projection_psnr(G, loss, count=2, run=CheckRun(num_steps=2))
    assert len(scores) == 2 and all(s > 0 for s in scores)
    smile = smile_fraction(G, loss, num_pairs=2, num_faces=2, run=CheckRun(num_steps=2))
    assert len(smile.fractions) == 2 and all(0 <= f <= 1 for f in smile.fractions)
    # Chunking only bounds memory: the codes equal those of one batch.
    faces = held_out_faces(0, 3, G.img_resolution)
    one, _ = CheckRun(num_steps=3, chunk=3).project(G, faces, loss)
    split, _ = CheckRun(num_steps=3, chunk=1).project(G, faces, loss)
    torch.testing.assert_close(one, split, atol=1e-4, rtol=0)
