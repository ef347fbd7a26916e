"""`wplus demo`, the shipped-model fallback and the quality checks, on tiny stand-ins for the shipped files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import wplus.demo as demo
import wplus.shipped as shipped
from wplus.cli.main import cli
from wplus.demo import demo_targets, even_picks, run_demo
from wplus.edits import apply_direction, load_direction, render, save_direction
from wplus.errors import CheckpointError
from wplus.io.checkpoint import save_discriminator, save_generator
from wplus.loading import resolve_model
from wplus.losses import DiscriminatorFeatures
from wplus.models.stylegan2_discriminator import Discriminator, DiscriminatorConfig
from wplus.train.quality import CheckRun, held_out_faces, projection_psnr, smile_fraction, smile_fraction_steps


@pytest.fixture
def fake_assets(tmp_path, monkeypatch, tiny_generator):
    """Tiny generator and discriminator files standing in for the shipped ones."""
    folder = tmp_path / "assets"
    save_generator(tiny_generator, folder / f"{shipped.SHIPPED_MODEL}.safetensors")
    D = Discriminator(DiscriminatorConfig(img_resolution=16, channel_base=128, channel_max=16))
    save_discriminator(D, folder / f"{shipped.SHIPPED_MODEL}-D.safetensors")
    smile = torch.randn(tiny_generator.num_ws, tiny_generator.w_dim, generator=torch.Generator().manual_seed(3))
    save_direction(folder / f"{shipped.SHIPPED_MODEL}-smile.npz", smile, metadata={"num_pairs": 8, "layers": None})
    glasses = torch.randn(1, tiny_generator.w_dim, generator=torch.Generator().manual_seed(4))
    save_direction(folder / f"{shipped.SHIPPED_MODEL}-glasses.npz", glasses, metadata={"val_accuracy": 0.9})
    m = shipped.SHIPPED_MODEL
    ranges = {"smile": (-1.0, 2.0), "glasses": (-3.0, 3.0)}
    named = [shipped.NamedDirection(m, n, f"{m}-{n}.npz", "", r, "") for n, r in ranges.items()]
    shipped.write_named_directions(folder, m, named)
    monkeypatch.setattr(shipped, "_asset", lambda name: folder / name)
    monkeypatch.setattr(demo, "shipped_smile_direction_path", lambda: folder / f"{shipped.SHIPPED_MODEL}-smile.npz")
    return folder


def test_resolve_model_falls_back_to_the_shipped_model_offline(fake_assets, tmp_path, monkeypatch):
    monkeypatch.setenv("WPLUS_OFFLINE", "1")
    monkeypatch.setenv("WPLUS_CACHE", str(tmp_path / "cache"))
    notices = []
    found = resolve_model(None, notice=notices.append, allow_download=False)
    assert found.shipped and found.path.name == f"{shipped.SHIPPED_MODEL}.safetensors"
    assert len(notices) == 1 and shipped.DEFAULT_MODEL in notices[0] and shipped.SHIPPED_MODEL in notices[0]
    own = fake_assets / f"{shipped.SHIPPED_MODEL}.safetensors"
    found = resolve_model(own)
    assert (found.path, found.shipped) == (own, False)
    with pytest.raises(CheckpointError, match="no-such-model"):
        resolve_model("no-such-model")


def test_shipped_loaders(fake_assets):
    G = shipped.load_shipped_generator()
    D = shipped.load_shipped_discriminator()
    assert G.img_resolution == 16 and D.img_resolution == 16


def test_run_demo_writes_every_artifact(fake_assets, tmp_path):
    G = shipped.load_shipped_generator()
    loss = DiscriminatorFeatures(shipped.load_shipped_discriminator())
    res = run_demo(G, loss, tmp_path / "out", targets=demo_targets(16), loss_name="d", num_steps=2)
    for key in ("reconstructions", "morph_gif", "style_mixing", "expression", "contact_sheet", "latent_a", "target_a"):
        assert res.files[key].is_file(), key
    assert set(res.psnr) == {"a", "b", "target", "neutral", "smiling"}
    assert Image.open(res.files["morph_gif"]).n_frames == 12
    assert Image.open(res.files["target_smiling"]).size == (16, 16)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["num_steps"] == 2 and "smile_direction" not in res.files  # no direction: the one-pair transfer
    assert "attribute_edits" not in res.files and summary["attribute_edits"] == []  # and no named directions
    # The contact sheet's morph row starts on the first frame and ends on the last one.
    assert res.extra["morph_sheet_t"][0] == 0.0 and res.extra["morph_sheet_t"][-1] == 1.0
    assert summary["morph_sheet_t"] == res.extra["morph_sheet_t"]


def test_even_picks_include_both_ends():
    assert even_picks(12, 6) == [0, 2, 4, 7, 9, 11]
    assert even_picks(3, 6) == [0, 1, 2] and even_picks(5, 1) == [4] and even_picks(2, 2) == [0, 1]
    for count in range(2, 40):
        picks = even_picks(count, 6)
        assert picks[0] == 0 and picks[-1] == count - 1 and picks == sorted(set(picks))


def test_run_demo_adds_the_smile_direction(fake_assets, tmp_path):
    G = shipped.load_shipped_generator()
    loss = DiscriminatorFeatures(shipped.load_shipped_discriminator())
    smile = demo.load_shipped_smile(G)
    res = run_demo(G, loss, tmp_path / "out", targets=demo_targets(16), loss_name="d", num_steps=2, smile=smile,
                   smile_strengths=(0.0, 2.0))  # fmt: skip
    saved = load_direction(res.files["smile_direction"], G)
    torch.testing.assert_close(saved.vector, smile.vector)
    assert "8 pairs projected jointly" in res.extra["expression"] and res.extra["strengths"] == [0.0, 2.0]
    # expression.png holds target and target + 2 * smile, rendered from the saved target latent.
    code = torch.from_numpy(np.load(res.files["latent_target"])["w"])
    want = render(G, apply_direction(code, smile, [0.0, 2.0]))
    strip = np.asarray(Image.open(res.files["expression"]), dtype=np.float32)
    left, right = strip[2:18, 2:18], strip[2:18, 20:36]  # image_grid pads by 2 px
    assert np.abs(left - np.asarray(want[0], dtype=np.float32)).max() <= 1
    assert np.abs(right - np.asarray(want[1], dtype=np.float32)).max() <= 1
    assert np.abs(left - right).mean() > 1  # the direction changed the face


def test_run_demo_adds_a_row_of_attribute_edits(fake_assets, tmp_path):
    """One row holds the target at both ends of every named direction's range, so it grows as directions ship."""
    G = shipped.load_shipped_generator()
    loss = DiscriminatorFeatures(shipped.load_shipped_discriminator())
    edits = demo.load_attribute_edits(G)
    assert [(a.name, a.strengths) for a in edits] == [("smile", (-1.0, 2.0)), ("glasses", (-3.0, 3.0))]
    plain = run_demo(G, loss, tmp_path / "plain", targets=demo_targets(16), loss_name="d", num_steps=2)
    res = run_demo(G, loss, tmp_path / "out", targets=demo_targets(16), loss_name="d", num_steps=2,
                   attribute_edits=edits)  # fmt: skip
    assert res.extra["attribute_edits"] == [{"name": "smile", "strengths": [-1.0, 2.0]},
                                            {"name": "glasses", "strengths": [-3.0, 3.0]}]  # fmt: skip
    code = torch.from_numpy(np.load(res.files["latent_target"])["w"])
    want = render(G, torch.cat([apply_direction(code, a.direction, list(a.strengths)) for a in edits]))
    strip = np.asarray(Image.open(res.files["attribute_edits"]), dtype=np.float32)
    assert strip.shape == (16 + 4, 4 * 16 + 5 * 2, 3)  # four tiles: smile -1, +2, glasses -3, +3; 2 px padding
    for k, img in enumerate(want):
        tile = strip[2:18, 2 + 18 * k : 18 + 18 * k]
        assert np.abs(tile - np.asarray(img, dtype=np.float32)).max() <= 1, k
    # The contact sheet gains exactly one row: one section's height, as wide as its five tiles need.
    sheet, before = Image.open(res.files["contact_sheet"]), Image.open(plain.files["contact_sheet"])
    assert sheet.height - before.height == 18 + 3 * 16 + 14 + 2 * 4 and sheet.width >= before.width


def test_demo_targets_pair_differs_only_in_the_mouth():
    t = demo_targets(64)
    assert t["a"].size == (64, 64)
    a = torch.from_numpy(np.asarray(t["neutral"], dtype=np.float32))
    b = torch.from_numpy(np.asarray(t["smiling"], dtype=np.float32))
    rows = (a - b).abs().sum((1, 2)).nonzero().flatten()
    assert rows.numel() > 0 and rows.min() > 32  # only the lower half (the mouth) changes


def test_cli_demo_offline(fake_assets, tmp_path):
    args = ["demo", "--outdir", str(tmp_path / "d"), "--steps", "2", "--device", "cpu"]
    r = CliRunner().invoke(cli, args, env={"MODEL": "gpt-4"})  # a bare MODEL (another tool's) is not ours
    assert r.exit_code == 0, r.output
    assert "contact sheet" in r.output and (tmp_path / "d" / "contact_sheet.png").is_file()
    summary = json.loads((tmp_path / "d" / "summary.json").read_text())
    assert "discriminator features" in summary["loss"] and "Smile direction" in summary["expression"]
    assert (tmp_path / "d" / "smile.npz").is_file() and "smile: the shipped smile direction" in r.stderr
    assert "attribute edits: smile, glasses" in r.stderr and (tmp_path / "d" / "attribute_edits.png").is_file()
    assert [a["name"] for a in summary["attribute_edits"]] == ["smile", "glasses"]
    # stderr is not a terminal here: progress comes as whole lines (no carriage returns), the last at 2/2 steps.
    assert "\r" not in r.stderr and "project: 2/2 step (100%)" in r.stderr


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


def test_quality_checks_report_every_step(fake_assets):
    """The callback (check_demo_model's progress) is called as often as CheckRun.steps / smile_fraction_steps say."""
    G = shipped.load_shipped_generator()
    loss = DiscriminatorFeatures(shipped.load_shipped_discriminator())
    calls = []
    run = CheckRun(num_steps=2, chunk=2, callback=calls.append)
    projection_psnr(G, loss, count=3, run=run)
    assert len(calls) == run.steps(3) == 4
    for method in ("shared", "independent"):
        calls.clear()
        smile = smile_fraction(G, loss, num_pairs=2, num_faces=3, method=method, run=run)
        assert len(calls) == smile_fraction_steps(2, 3, method=method, run=run), method
        assert smile.direction.shape == (G.num_ws, G.w_dim) and smile.direction_norm > 0


def test_cli_demo_names_the_environment_variable_a_bad_model_came_from(tmp_path):
    out = str(tmp_path / "d")
    r = CliRunner().invoke(cli, ["demo", "--outdir", out], env={"WPLUS_MODEL": "gpt-4"})
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert r.output.count("\n") == 1 and "WPLUS_MODEL=gpt-4 (environment variable): gpt-4: no such file" in r.output
    r = CliRunner().invoke(cli, ["demo", "--outdir", out, "--model", "gpt-4"], env={"WPLUS_MODEL": "x"})
    assert r.exit_code == 1 and "WPLUS_MODEL" not in r.output and "gpt-4: no such file" in r.output


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_demo_passes_model_on_as_the_model_option():
    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k != "MODEL"}

    def dry_run(*args: str) -> str:  # -n: print the commands, run none
        return subprocess.run(["make", "-n", "-C", str(root), "demo", *args], capture_output=True, text=True,
                              check=True, env=env).stdout  # fmt: skip

    assert 'wplus demo --outdir demo_out --model "stylegan2-ffhq-256"' in dry_run("MODEL=stylegan2-ffhq-256")
    assert "--model" not in dry_run()
