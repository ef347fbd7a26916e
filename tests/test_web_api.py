"""The web UI's API through gradio_client, against a server started in this process on 127.0.0.1 (a free port).

A tiny generator file written here, a few steps of the MSE loss: each call takes a fraction of a second of CPU.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import zipfile

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from conftest import FakeDetector, tiny_config
from wplus.cli.main import cli
from wplus.edits.directions import save_direction
from wplus.errors import WplusError
from wplus.io.checkpoint import save_generator
from wplus.models.stylegan2 import random_generator
from wplus.projection.outputs import FOLDER_FILES
from wplus.web.app import ENDPOINTS, build_app, launch_app

ARGS = dict(align=False, preset="default", space="w+", steps=4, loss="mse", tune=False, tune_steps=2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    patch = pytest.MonkeyPatch()
    patch.setenv("WPLUS_OFFLINE", "1")  # nothing may reach the network
    root = tmp_path_factory.mktemp("web")
    model = save_generator(random_generator(tiny_config(16), seed=1, noise_strength=0.1), root / "tiny.safetensors")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(root / "face.png")
    app = build_app(model, device="cpu", workdir=root / "work", max_upload_mb=0.05, max_pixels=100 * 100)
    port = _free_port()
    launch_app(app, port=port, block=False, quiet=True)
    client = Client(f"http://127.0.0.1:{port}/", verbose=False)
    yield app, client, root
    client.close()
    app.close()
    patch.undo()


def _project(client, image, **kw):
    return client.predict(handle_file(str(image)), *{**ARGS, **kw}.values(), api_name="/project")


def _pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def test_every_action_is_a_named_endpoint(server):
    _, client, _ = server
    named = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {f"/{name}" for name in ENDPOINTS} <= set(named)


def test_project_writes_the_folder_and_edits_render_it(server, tmp_path):
    app, client, root = server
    target, recon, status, latent, pngs, archive = _project(client, root / "face.png")
    assert "PSNR" in status and "dB" in status
    with zipfile.ZipFile(archive) as z:
        names = {n.split("/")[-1] for n in z.namelist()}
    assert set(FOLDER_FILES) <= names
    assert {os.path.basename(p) for p in pngs} == {"projection.png", "target.png"}
    assert np.array_equal(_pixels(recon), _pixels(next(p for p in pngs if p.endswith("projection.png"))))
    # Edit at strength 0 renders the embedding itself; an uploaded direction moves it.
    direction = save_direction(tmp_path / "d.npz", torch.randn(1, 32) * 3)
    same = client.predict(handle_file(latent), 0, handle_file(str(direction)), 0, -1, api_name="/edit")
    moved = client.predict(handle_file(latent), 0, handle_file(str(direction)), 3, -1, api_name="/edit")
    assert np.array_equal(_pixels(same), _pixels(recon))
    assert np.abs(_pixels(moved) - _pixels(same)).mean() > 1
    # Mixing a code with itself, and transferring a zero expression difference, give the code back.
    mixed = client.predict(handle_file(latent), handle_file(latent), "2-4", api_name="/mix")
    assert np.array_equal(_pixels(mixed), _pixels(recon))
    other = _project(client, root / "face.png", steps=2)[3]  # another code: now the layer range matters
    coarse = _pixels(client.predict(handle_file(latent), handle_file(other), "0-1", api_name="/mix"))
    fine = _pixels(client.predict(handle_file(latent), handle_file(other), "fine", api_name="/mix"))
    assert np.abs(coarse - fine).mean() > 0.1
    with pytest.raises(AppError, match="outside"):
        client.predict(handle_file(latent), handle_file(latent), "3-40", api_name="/mix")
    expr = client.predict(handle_file(latent), handle_file(latent), handle_file(latent), 1.5, api_name="/expression")
    assert np.array_equal(_pixels(expr), _pixels(recon))
    frames, gif = client.predict(handle_file(latent), handle_file(latent), 5, api_name="/morph")
    assert len(frames) == 5 and gif.endswith(".gif")


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("notes.png", b"this is not an image", "cannot read image"),
        ("cut.png", None, "cannot read image"),  # a truncated PNG
        ("huge.png", "bomb", "pixels"),  # 120x120 > max_pixels 100x100: refused from the header
    ],
)
def test_bad_uploads_get_one_line_and_the_server_goes_on(server, tmp_path, name, content, expected):

    app, client, root = server
    path = tmp_path / name
    if content is None:
        Image.new("RGB", (32, 32), "red").save(path)
        path.write_bytes(path.read_bytes()[:60])
    elif content == "bomb":
        Image.new("RGB", (120, 120), "red").save(path)
    else:
        path.write_bytes(content)
    with pytest.raises(AppError) as err:
        _project(client, path)
    message = str(err.value)
    assert expected in message and name in message and "\n" not in message and "Traceback" not in message
    assert str(tmp_path) not in message  # the upload's name, not the server's path
    assert "PSNR" in _project(client, root / "face.png")[2]  # still serving


def test_uploads_over_the_size_limit_are_refused(server, tmp_path):
    from wplus.errors import ConfigError

    app, client, _ = server
    assert client.config["max_file_size"] == int(0.05 * 2**20)  # Gradio refuses bigger uploads itself
    big = tmp_path / "big.png"
    big.write_bytes(os.urandom(60_000))
    with pytest.raises(ConfigError, match=r"big.png: 0.1 MB, expected at most 0.0 MB"):
        app.wplus_service.check_upload(big)  # and the service, for files that reach it another way


def test_pivotal_tuning_and_masked_projection(server, tmp_path):
    _, client, root = server
    _, recon, status, latent, _, archive = _project(client, root / "face.png", tune=True, tune_steps=2)
    assert "before pivotal tuning" in status
    assert "tuning.safetensors" in {n.split("/")[-1] for n in zipfile.ZipFile(archive).namelist()}
    edited = client.predict(handle_file(latent), 0, None, 0, -1, api_name="/edit")
    assert np.array_equal(_pixels(edited), _pixels(recon))  # edits render with the tuned generator
    layer = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    layer.paste((255, 0, 0, 255), (0, 0, 20, 40))
    layer.save(tmp_path / "layer.png")
    editor = {"background": handle_file(str(root / "face.png")), "layers": [handle_file(str(tmp_path / "layer.png"))],
              "composite": handle_file(str(root / "face.png")), "id": None}  # fmt: skip
    out = client.predict(editor, "skip the painted areas (occluders)", 1.0, 3, "mse", api_name="/project_masked")
    with zipfile.ZipFile(out[5]) as z:
        name = next(n for n in z.namelist() if n.endswith("mask.png"))
        mask = np.asarray(Image.open(z.open(name)).convert("L"))
    assert mask[:, :4].max() == 0 and mask[:, -4:].min() == 255  # painted left half skipped, right half kept


def test_aligned_embeddings_are_pasted_back_into_their_photo(server, tmp_path):
    app, client, _ = server
    service = app.wplus_service
    yy, xx = np.mgrid[:60, :90]
    photo = np.stack([xx * 2, yy * 3, (xx + yy) % 256], -1).astype(np.uint8)
    Image.fromarray(photo).save(tmp_path / "photo.png")
    service._detector = FakeDetector()  # dlib's landmark model is not needed offline: one face in the middle
    try:
        _, recon, _, latent, pngs, archive = _project(client, tmp_path / "photo.png", align=True)
    finally:
        service._detector = None
    names = {n.split("/")[-1] for n in zipfile.ZipFile(archive).namelist()}
    assert {"align.json", "pasted.png", "photo.png"} <= names
    direction = save_direction(tmp_path / "d.npz", torch.randn(1, 32) * 3)
    edited = client.predict(handle_file(latent), 0, handle_file(str(direction)), 3, -1, api_name="/edit")
    pasted = _pixels(client.predict(handle_file(latent), handle_file(edited), api_name="/paste"))
    assert pasted.shape == photo.shape
    changed = np.abs(pasted - photo.astype(np.int16)).max(-1) > 0
    ys, xs = np.nonzero(changed)
    assert changed.any() and not changed[:, :10].any() and not changed[:, -10:].any()  # inside the face only
    assert 20 < xs.mean() < 70 and 15 < ys.mean() < 50
    # A latent this server did not align has nothing to be pasted into.
    _, _, _, plain, _, _ = _project(client, server[2] / "face.png")
    assert client.predict(handle_file(plain), handle_file(edited), api_name="/paste") is None


def test_a_projection_can_be_cancelled(server):
    app, client, root = server
    job = client.submit(handle_file(str(root / "face.png")), *{**ARGS, "steps": 5000}.values(), api_name="/project")
    deadline = time.time() + 120
    while not any(t.name == "wplus-projection" for t in threading.enumerate()) and time.time() < deadline:
        time.sleep(0.05)
    job.cancel()
    while any(t.name == "wplus-projection" for t in threading.enumerate()) and time.time() < deadline:
        time.sleep(0.05)
    assert not any(t.name == "wplus-projection" for t in threading.enumerate()), "the worker kept optimising"
    assert "PSNR" in _project(client, root / "face.png")[2]  # the queue slot is free again


def test_projections_share_one_queue_slot(server):
    app, _, _ = server
    fns = {fn.api_name: fn for fn in app.fns.values()}
    assert fns["project"].concurrency_limit == fns["project_masked"].concurrency_limit == 1
    assert fns["project"].concurrency_id == fns["project_masked"].concurrency_id


def test_serve_without_gradio_says_what_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio now raises ImportError
    result = CliRunner().invoke(cli, ["serve", "--port", "1"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == ["Error: the web UI needs Gradio: pip install 'wplus[web]'"]


def test_edit_tab_has_one_slider_per_named_direction(tmp_path, monkeypatch, tiny_generator):
    from conftest import fake_named_assets

    monkeypatch.setenv("WPLUS_OFFLINE", "1")
    model = fake_named_assets(tmp_path, tiny_generator, monkeypatch)  # smile and glasses, strengths -2..3
    app = build_app(str(model), device="cpu", workdir=tmp_path / "work")  # the shipped model, known by its hash
    sliders = {c["props"].get("elem_id"): c["props"] for c in app.config["components"] if c["type"] == "slider"}
    assert {"smile-slider", "glasses-slider"} <= set(sliders) and "named-none" not in sliders
    assert (sliders["glasses-slider"]["minimum"], sliders["glasses-slider"]["maximum"]) == (-2.0, 3.0)
    port = _free_port()
    launch_app(app, port=port, block=False, quiet=True)
    client = Client(f"http://127.0.0.1:{port}/", verbose=False)
    try:
        named = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
        assert len(named["/edit"]["parameters"]) == 1 + 2 + 3  # latent, smile, glasses, file, strength, component
        rng = np.random.default_rng(1)
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(tmp_path / "face.png")
        latent = _project(client, tmp_path / "face.png", steps=2)[3]
        same = _pixels(client.predict(handle_file(latent), 0, 0, None, 0, -1, api_name="/edit"))
        glasses = _pixels(client.predict(handle_file(latent), 0, 3, None, 0, -1, api_name="/edit"))
        smile = _pixels(client.predict(handle_file(latent), 3, 0, None, 0, -1, api_name="/edit"))
        assert np.abs(glasses - same).mean() > 1 and np.abs(smile - glasses).mean() > 1
    finally:
        client.close()
        app.close()
    service = app.wplus_service
    with pytest.raises(WplusError, match="no named direction 'beard'; available: smile, glasses"):
        service.edit(latent, named={"beard": 1.0})
