"""Pictures people can read: captioned frames, small models' frames enlarged with nearest-neighbour (--scale)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from wplus.cli.main import cli
from wplus.edits.render import render
from wplus.errors import ConfigError
from wplus.io.checkpoint import save_generator
from wplus.io.images import captioned_grid, frame_scale, upscale
from wplus.io.latents import Latent, save_latent
from wplus.shipped import load_shipped_generator, shipped_smile_direction_path

PAD = 2  # captioned_grid's default padding


def _frames(count, size=8, seed=0):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(count)]


def _cell(sheet, col, w, h, row=0, band=0):
    """Frame (col, row) of a sheet and its caption band, as arrays."""
    x, y = PAD + col * (w + PAD), PAD + row * (h + band + PAD)
    return sheet[y : y + h, x : x + w], sheet[y + h : y + h + band, x : x + w]


def _is_blocks_of(big, small, k):
    """Every k x k block of ``big`` is one pixel of ``small``."""
    h, w, c = small.shape
    return np.array_equal(big.reshape(h, k, w, k, c), np.broadcast_to(small[:, None, :, None], (h, k, w, k, c)))


def test_frame_scale_picks_the_smallest_factor_reaching_256():
    assert [frame_scale(s) for s in (16, 64, 100, 255, 256, 1024)] == [16, 4, 3, 2, 1, 1]
    assert frame_scale(64, 1) == 1 and frame_scale(64, 2) == 2
    with pytest.raises(ConfigError, match="positive integer"):
        frame_scale(64, 0)


def test_captioned_grid_draws_each_caption_under_its_enlarged_frame():
    frames = _frames(3)
    plain = np.asarray(captioned_grid(frames, cols=3, scale=4))
    sheet = np.asarray(captioned_grid(frames, ["s=-3", "", "s=3"], cols=3, scale=4))
    assert plain.shape == (32 + 2 * PAD, 3 * 32 + 4 * PAD, 3)
    band = sheet.shape[0] - 2 * PAD - 32
    assert band >= 10  # a band under the frames holds the captions
    for col, frame in enumerate(frames):
        img, caption = _cell(sheet, col, 32, 32, band=band)
        assert _is_blocks_of(img, np.asarray(frame), 4)  # nearest-neighbour: each pixel became a 4 x 4 block
        assert (caption.min() < 128) == (col != 1)  # dark text where there is a caption, plain white where none
    left, right = _cell(sheet, 0, 32, 32, band=band)[1], _cell(sheet, 2, 32, 32, band=band)[1]
    assert not np.array_equal(left, right)  # the text itself is drawn, not a fixed mark
    with pytest.raises(ValueError, match="2 captions"):
        captioned_grid(frames, ["a", "b"], cols=3)


def test_upscale_one_keeps_the_frame():
    frame = _frames(1)[0]
    assert upscale(frame, 1) is frame and upscale(frame, 3).size == (24, 24)


@pytest.fixture(scope="module")
def shipped_edit(tmp_path_factory):
    """edit on the shipped 64-px model with the shipped smile direction: default scale and --scale 1."""
    tmp = tmp_path_factory.mktemp("pictures")
    G = load_shipped_generator()
    ws = G.w_avg.expand(1, G.num_ws, G.w_dim) + 0.5 * torch.randn(
        1, G.num_ws, G.w_dim, generator=torch.Generator().manual_seed(0)
    )
    latent = save_latent(tmp / "face.npz", Latent(ws=ws), npy=False)
    runs = {}
    for name, extra in (("default", []), ("one", ["--scale", "1"])):
        args = ["edit", latent, "--direction", shipped_smile_direction_path(), "--strength", "0,2",
                "--model", "cartoon-faces-64", "--outdir", tmp / name, "--device", "cpu", *extra]  # fmt: skip
        r = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
        assert r.exit_code == 0, r.output
        runs[name] = tmp / name
    return G, ws, runs


def test_small_model_frames_are_enlarged_to_256_with_nearest_neighbour(shipped_edit):
    G, ws, runs = shipped_edit
    want = np.asarray(render(G, ws)[0])  # strength 0 is the code itself, with the model's constant noise
    with Image.open(runs["default"] / "edit.png") as im:
        sheet = np.asarray(im.convert("RGB"))
    img, caption = _cell(sheet, 0, 256, 256, band=sheet.shape[0] - 2 * PAD - 256)
    assert _is_blocks_of(img, want, 4)
    assert caption.size and caption.min() < 128  # "s=0" under the frame
    with Image.open(runs["default"] / "edit.gif") as gif:
        assert gif.size == (256, 256)  # the animation is enlarged the same way (without captions)


def test_scale_one_keeps_small_frames(shipped_edit):
    G, ws, runs = shipped_edit
    with Image.open(runs["one"] / "edit.png") as im:
        sheet = np.asarray(im.convert("RGB"))
    assert np.array_equal(_cell(sheet, 0, 64, 64)[0], np.asarray(render(G, ws)[0]))
    assert sheet.shape[1] == 2 * 64 + 3 * PAD and sheet.shape[0] > 64 + 2 * PAD  # two frames and a caption band
    with Image.open(runs["one"] / "edit.gif") as gif:
        assert gif.size == (64, 64)


@pytest.fixture
def tiny_latents(tmp_path, tiny_generator):
    G = tiny_generator
    model = save_generator(G, tmp_path / "tiny.safetensors")
    gen = torch.Generator().manual_seed(1)
    paths = [save_latent(tmp_path / f"{n}.npz", Latent(ws=torch.randn(1, G.num_ws, G.w_dim, generator=gen)), npy=False)
             for n in ("anna", "bob", "cleo")]  # fmt: skip
    return tmp_path, model, paths


@pytest.mark.parametrize("command", ["morph", "expression", "mix"])
def test_every_edit_picture_is_captioned_and_enlarged(tiny_latents, tiny_generator, command):
    tmp, model, (a, b, c) = tiny_latents
    G = tiny_generator
    args = {
        "morph": ["morph", a, b, "--frames", 3],
        "expression": ["expression", a, b, c, "--strength", "0,1"],
        "mix": ["mix", a, b, c, "--layers", "fine"],
    }[command]
    out = tmp / command
    r = CliRunner().invoke(cli, [str(x) for x in [*args, "--model", model, "--outdir", out, "--device", "cpu"]])
    assert r.exit_code == 0, r.output
    with Image.open(out / f"{command}.png") as im:
        sheet = np.asarray(im.convert("RGB"))
    k = 256 // G.img_resolution  # 16 px frames become 256 px
    rows = 2 if command == "mix" else 1  # mix: the styles' row, then one row per content
    band = (sheet.shape[0] - (rows + 1) * PAD) // rows - 256
    first = render(G, torch.from_numpy(np.load(a)["w"]))[0]
    if command == "mix":  # the top-left tile is blank; the content 'anna' heads the second row
        img, caption = _cell(sheet, 0, 256, 256, row=1, band=band)
        assert caption.min() < 128 and _cell(sheet, 0, 256, 256, band=band)[1].min() == 255
    else:  # morph's t=0 frame and expression's lambda=0 frame are the first input
        img, caption = _cell(sheet, 0, 256, 256, band=band)
        assert caption.min() < 128
    assert _is_blocks_of(img, np.asarray(first), k)
