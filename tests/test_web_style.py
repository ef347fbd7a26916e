"""The web UI's Style channels tab: the service's style-space actions on a tiny generator (16 px, a few sample images,
a small part catalogue: each call a fraction of a second of CPU), then the same through gradio_client against a
server on 127.0.0.1. The wplus cache is a temporary folder: nothing is written to the user's.
"""

from __future__ import annotations

import re
import socket

import numpy as np
import pytest
import torch
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from conftest import tiny_config
from wplus.errors import ConfigError
from wplus.io.checkpoint import save_generator
from wplus.loading import load_generator_info
from wplus.models.stylegan2 import random_generator
from wplus.stylespace import locate_region, parse_channel, style_layers, to_styles
from wplus.stylespace.locate import parse_region
from wplus.web.app import build_app, launch_app
from wplus.web.service import STYLE_TOP, Cancelled, EmbedRequest, WebService

BOX = "2,2,8,8"
SAMPLES = 2


@pytest.fixture(scope="module")
def setup(tmp_path_factory, one_thread):
    patch = pytest.MonkeyPatch()
    patch.setenv("WPLUS_OFFLINE", "1")
    root = tmp_path_factory.mktemp("style")
    patch.setenv("WPLUS_CACHE", str(root / "cache"))  # channel effects and catalogues: not the user's cache
    model = save_generator(random_generator(tiny_config(16), seed=1, noise_strength=0.1), root / "tiny.safetensors")
    service = WebService(load_generator_info(model), device=torch.device("cpu"), workdir=root / "work",
                         part_samples=16)  # fmt: skip
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(root / f"{name}.png")
    a = service.embed(EmbedRequest(image=root / "a.png", steps=3, loss="mse")).latent
    b = service.embed(EmbedRequest(image=root / "b.png", steps=3, loss="mse")).latent
    yield service, model, root, a, b
    patch.undo()


def _pixels(image) -> np.ndarray:
    image = Image.open(image) if not isinstance(image, Image.Image) else image
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def test_channels_for_a_box_are_ranked_and_named(setup):
    service, _, _, a, _ = setup
    assert not service.effects_ready(SAMPLES)
    seen = []
    found = service.style_channels(a, BOX, samples=SAMPLES, on_progress=lambda d, t: seen.append((d, t)))
    assert seen and seen[-1][0] == seen[-1][1]  # progress reached every channel
    assert service.effects_ready(SAMPLES)  # in memory and in the (temporary) wplus cache
    assert len(found) == STYLE_TOP
    assert all(re.fullmatch(r"\d+_\d+", c.name) for c in found)
    shares = [c.share for c in found]
    assert shares == sorted(shares, reverse=True) and 0 < shares[-1] <= shares[0] <= 1
    full = locate_region(service.style_effects(SAMPLES), parse_region(BOX, 16).mask)
    assert [c.name for c in found] == [c.name for c in full[:STYLE_TOP]]
    other = service.style_channels(a, "9,9,16,16", samples=SAMPLES)  # cached effects: another box at once
    assert [c.name for c in other] != [c.name for c in found]


def test_finding_channels_can_be_cancelled(setup):
    service, _, _, a, _ = setup
    with pytest.raises(Cancelled, match="cancelled"):
        service.style_channels(a, BOX, samples=3, should_stop=lambda: True)
    assert not service.effects_ready(3)


def test_one_slider_moves_one_channel_and_changes_the_render(setup):
    service, _, _, a, _ = setup
    found = [c.name for c in service.style_channels(a, BOX, samples=SAMPLES)]
    still = service.style_render(a, found, [0.0] * len(found))
    assert np.array_equal(_pixels(still), _pixels(service.edit(a)))  # 0 everywhere: the embedding, with its noise
    base, moved, _, _ = service.style_edit(a, found, [4.0] + [0.0] * (len(found) - 1))
    layer, c = parse_channel(style_layers(service.G), found[0])
    sigma = float(service.style_stats().std[layer.name][0, c])
    for name in base:
        changed = (moved[name] != base[name]).nonzero()[:, 1].tolist()
        assert changed == ([c] if name == layer.name else []), name
    assert float(moved[layer.name][0, c] - base[layer.name][0, c]) == pytest.approx(4 * sigma, rel=1e-5)
    after = service.style_render(a, ",".join(found), [4.0] + [0.0] * (len(found) - 1))
    assert np.abs(_pixels(after) - _pixels(still)).mean() > 0.5


def test_transfer_keeps_every_channel_outside_the_selection(setup):
    service, _, root, a, b = setup
    result = service.style_transfer(a, b, BOX, strength=1.0)
    target, reference = result.target, to_styles(service.G, service.code(b).ws)
    sel = result.selection
    assert 0 < sel.count < target.dims
    for name in target:
        keep = ~sel.mask[name]
        assert torch.equal(result.styles[name][:, keep], target[name][:, keep]), name
        assert torch.allclose(result.styles[name][:, sel.mask[name]], reference[name][:, sel.mask[name]])
    assert result.label == f"box {BOX}"
    assert np.abs(_pixels(result.image) - _pixels(service.edit(a))).mean() > 0.1
    half = service.style_transfer(a, b, BOX, strength=0.5).styles
    for name in target:
        expect = torch.where(sel.mask[name], (target[name] + reference[name]) / 2, target[name])
        assert torch.allclose(half[name], expect, atol=1e-6)
    # A photo as the reference is embedded first.
    photo = service.style_transfer(a, root / "b.png", BOX, reference_steps=2, reference_loss="mse")
    assert photo.selection.count == sel.count  # the same box selects the same channels


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s, a, b: s.style_channels(a, "0,0,17,8"), "region '0,0,17,8': expected 0 <= x0 < x1 <= 16"),
        (lambda s, a, b: s.style_channels(a, "mouth"), "region 'mouth': tiny has no built-in parts; expected a box"),
        (lambda s, a, b: s.style_channels(None, BOX), "no latent yet: embed a photo"),
        (lambda s, a, b: s.style_render(None, "3_1", [1.0]), "no latent yet"),
        (lambda s, a, b: s.style_render(a, "99_1", [1.0]), "channel '99_1': layer index 99 is out of range"),
        (lambda s, a, b: s.style_transfer(a, None, BOX), "no reference (a latent, or a photo to embed) given"),
        (lambda s, a, b: s.style_transfer(a, b, "5,5,5,9"), "region '5,5,5,9': expected 0 <= x0 < x1"),
        (lambda s, a, b: s.style_transfer(a, b, BOX, strength=2), "got strength 2, expected 0 to 1"),
        (lambda s, a, b: s.style_channels(a, BOX, samples=0), "got 0 sample images, expected 1 to 64"),
    ],
)
def test_bad_inputs_get_one_line(setup, call, message):
    service, _, _, a, b = setup
    with pytest.raises(ConfigError) as err:
        call(service, a, b)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_the_tab_through_the_api(setup):
    service, model, root, a, b = setup
    app = build_app(model, device="cpu", workdir=root / "web")
    app.wplus_service.part_samples = 16
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    launch_app(app, port=port, block=False, quiet=True)
    client = Client(f"http://127.0.0.1:{port}/", verbose=False)
    try:
        out = client.predict(handle_file(str(a)), "box (x0,y0,x1,y1)", BOX, SAMPLES, api_name="/style_channels")
        *values, names, status = out
        assert len(values) == STYLE_TOP and names.count(",") == STYLE_TOP - 1 and "box 2,2,8,8" in status
        first = names.split(",")[0]
        zero = client.predict(handle_file(str(a)), names, *[0] * STYLE_TOP, api_name="/style_render")
        moved = client.predict(handle_file(str(a)), names, 6, *[0] * (STYLE_TOP - 1), api_name="/style_render")
        assert np.array_equal(_pixels(zero), _pixels(service.edit(a)).repeat(16, 0).repeat(16, 1))  # 16 px shown x16
        assert np.abs(_pixels(moved) - _pixels(zero)).mean() > 0.5
        assert f"`{first}` = synthesis." in status
        image, status = client.predict(handle_file(str(a)), handle_file(str(b)), "box (x0,y0,x1,y1)", BOX, 1.0, 2,
                                       api_name="/style_transfer")  # fmt: skip
        assert "channels moved 1 of the way" in status and _pixels(image).shape == (256, 256, 3)
        with pytest.raises(AppError) as err:
            client.predict(handle_file(str(a)), "box (x0,y0,x1,y1)", "0,0,20,4", SAMPLES, api_name="/style_channels")
        assert "expected 0 <= x0 < x1 <= 16" in str(err.value) and "\n" not in str(err.value)
        with pytest.raises(AppError, match="no latent yet"):
            client.predict(None, "box (x0,y0,x1,y1)", BOX, SAMPLES, api_name="/style_channels")
        # Two clicks on the (16x enlarged) image make a box, both corners included.
        import gradio as gr

        corner = next(f.fn for f in app.fns.values() if getattr(f.fn, "__name__", "") == "style_corner_fn")
        pending, *_ = corner(None, gr.SelectData(None, {"index": [200, 40], "value": None}))
        assert pending == [12, 2]
        assert corner(pending, gr.SelectData(None, {"index": [35, 130], "value": None}))[1:4] == (
            "2,2,13,9", "2,2,13,9", "box (x0,y0,x1,y1)")  # fmt: skip
    finally:
        client.close()
        app.close()
