"""The Embed tab starting from the model's encoder: its reconstruction before the first step, then refined.

The shipped model and its shipped encoder (64 px, a few L-BFGS steps of the MSE loss: a second or two), and the tiny
generator of conftest for a model without an encoder and for ``wplus serve --encoder FILE``.
"""

from __future__ import annotations

import json
import socket

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from gradio_client import Client, handle_file
from PIL import Image

from conftest import tiny_config
from wplus.cli.main import cli
from wplus.data.faces import HELD_OUT_SEED_BASE, face_array
from wplus.encoders import encode_for, shipped_encoder_path
from wplus.errors import CheckpointError
from wplus.io.checkpoint import save_generator
from wplus.io.images import pil_to_tensor
from wplus.io.latents import load_latent
from wplus.loading import load_generator_info
from wplus.metrics import psnr
from wplus.models.encoder import EncoderConfig, WEncoder, save_encoder
from wplus.models.stylegan2 import random_generator
from wplus.projection.outputs import FOLDER_FILES
from wplus.projection.project import project
from wplus.projection.settings import resolve_settings
from wplus.web.app import build_app, launch_app
from wplus.web.service import EmbedRequest, WebService

STEPS = 8


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """A service on the shipped model (its shipped encoder found by the file's SHA-256) and a held-out face."""
    patch = pytest.MonkeyPatch()
    patch.setenv("WPLUS_OFFLINE", "1")
    root = tmp_path_factory.mktemp("web-encoder")
    Image.fromarray(face_array(HELD_OUT_SEED_BASE + 1000)).save(root / "face.png")
    service = WebService(load_generator_info("cartoon-faces-64", device=torch.device("cpu")),
                         device=torch.device("cpu"), workdir=root / "work")  # fmt: skip
    yield service, root / "face.png"
    patch.undo()


def _embed(service, image, **kw):
    """The embedding and its events in the order they came: ('start', StartCode) and ('step', ProjectionStep)."""
    events: list = []
    req = EmbedRequest(image=image, **{"preset": "fast", "loss": "mse", "steps": STEPS, **kw})
    result = service.embed(req, on_start=lambda s: events.append(("start", s)),
                           on_step=lambda st: events.append(("step", st)))  # fmt: skip
    return result, events


def _target(service, image) -> torch.Tensor:
    return pil_to_tensor(service.load_target(image, align=False)[0])


def _psnr_of(service, latent_path, target) -> float:
    latent = load_latent(latent_path)
    with torch.no_grad():
        image = service.G.synthesis(latent.ws, noise_mode="const", noise=latent.noise or None)
    return float(psnr(image, target)[0])


def test_the_encoder_reconstruction_comes_first_then_refinement(shipped, one_thread):
    service, image = shipped
    assert service.encoder_name == shipped_encoder_path("cartoon-faces-64").name
    result, events = _embed(service, image)  # start: None is the encoder when the model has one
    kinds = [k for k, _ in events]
    assert kinds == ["start"] + ["step"] * STEPS  # before step 1, once
    start = events[0][1]
    target = _target(service, image)
    with torch.no_grad():
        expected = float(psnr(service.G.synthesis(encode_for(service.G, target), noise_mode="const"), target)[0])
    assert abs(start.psnr - expected) < 1e-3
    assert float(events[1][1].psnr[0]) == pytest.approx(start.psnr, abs=1e-3)  # step 1 renders the same code
    assert start.seconds < 5 and start.image.shape == (1, 3, 64, 64)
    # The refined code is what is written: better than the encoder's (not worse), in the usual files.
    assert result.metrics["psnr"] >= start.psnr - 0.01 and result.metrics["steps"] == STEPS
    assert result.metrics["psnr"] > start.psnr + 0.5  # L-BFGS gains more than half a dB in 8 steps here
    assert set(FOLDER_FILES) <= {p.name for p in result.folder.iterdir()}
    assert _psnr_of(service, result.latent, target) == pytest.approx(result.metrics["psnr"], abs=1e-3)
    config = json.loads((result.folder / "config.json").read_text())
    assert config["started_from"] == "encoder" and config["init"] == "encoder"
    assert config["encoder"]["name"] == service.encoder_name
    assert config["encoder"]["psnr"] == pytest.approx(start.psnr)
    assert result.start is start and not result.notices


def test_average_latent_is_the_old_run_and_encoder_only_the_preset(shipped, one_thread):
    service, image = shipped
    result, events = _embed(service, image, start="mean")
    assert [k for k, _ in events] == ["step"] * STEPS and result.start is None
    target = _target(service, image)
    old = project(service.G, target[None] if target.ndim == 3 else target,
                  settings=resolve_settings("fast", loss="mse", num_steps=STEPS))  # fmt: skip
    assert torch.allclose(load_latent(result.latent).ws, old.ws, atol=1e-5)
    assert json.loads((result.folder / "config.json").read_text())["started_from"] == "mean"
    # Encoder only: the encoder preset, 0 steps; the code as it is, written as a projection is.
    only, events = _embed(service, image, start="encoder-only")
    assert [k for k, _ in events] == ["start"] and only.metrics["steps"] == 0
    assert only.metrics["psnr"] == pytest.approx(events[0][1].psnr, abs=1e-3)
    assert torch.allclose(load_latent(only.latent).ws, encode_for(service.G, target), atol=1e-5)
    assert set(FOLDER_FILES) <= {p.name for p in only.folder.iterdir()}
    assert json.loads((only.folder / "config.json").read_text())["preset"] == "encoder"
    # Z: an encoder predicts W+ codes, so the run starts from the average latent, and says so.
    z, events = _embed(service, image, space="z", steps=1)
    assert [k for k, _ in events] == ["step"] and "not Z" in z.notices[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _radio(app) -> dict:
    return next(c["props"] for c in app.config["components"] if c["props"].get("elem_id") == "start-from")


def test_the_page_streams_the_encoder_preview_before_step_one(shipped, tmp_path, monkeypatch):
    monkeypatch.setenv("WPLUS_OFFLINE", "1")
    service, image = shipped
    app = build_app(service.model, device="cpu", workdir=tmp_path / "work")
    assert _radio(app)["visible"] is not False and _radio(app)["value"] == "encoder"
    port = _free_port()
    launch_app(app, port=port, block=False, quiet=True)
    client = Client(f"http://127.0.0.1:{port}/", verbose=False)
    try:
        job = client.submit(handle_file(str(image)), False, "fast", "w+", STEPS, "mse", False, 2, "encoder",
                            api_name="/project")  # fmt: skip
        final = job.result(timeout=120)
        statuses = [o[2] for o in job.outputs() if isinstance(o[2], str) and o[2]]
    finally:
        client.close()
        app.close()
    first = next(i for i, s in enumerate(statuses) if s.startswith("encoder:"))
    assert " dB in " in statuses[first] and statuses[first].endswith("refining…")
    steps = [i for i, s in enumerate(statuses) if s.startswith("step ")]
    assert steps and first < steps[0] and "(encoder start: " in statuses[steps[0]]
    assert "started from the encoder's code" in final[2]


def test_a_model_without_an_encoder_hides_the_choice_and_falls_back(tmp_path, monkeypatch, one_thread):
    monkeypatch.setenv("WPLUS_OFFLINE", "1")
    G = random_generator(tiny_config(16), seed=1, noise_strength=0.1)
    model = save_generator(G, tmp_path / "tiny.safetensors")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(tmp_path / "f.png")
    app = build_app(str(model), device="cpu", workdir=tmp_path / "work")
    assert _radio(app)["visible"] is False and _radio(app)["value"] == "mean"
    service = app.wplus_service
    assert service.encoder is None
    result, events = _embed(service, tmp_path / "f.png", start="encoder", steps=2)
    assert [k for k, _ in events] == ["step", "step"]
    assert "tiny has no encoder" in result.notices[0] and "average latent" in result.notices[0]
    # `wplus serve --encoder FILE`: an encoder of ours for this generator (untrained: it answers w_avg) ...
    enc = WEncoder(EncoderConfig(num_ws=G.num_ws, w_dim=G.w_dim, resolution=16, channels=(16, 32), stem=8, hidden=64))
    enc.w_avg.copy_(G.mapping.w_avg.expand_as(enc.w_avg))
    path = save_encoder(tmp_path / "enc.safetensors", enc)
    given = WebService(service.model, device=torch.device("cpu"), workdir=tmp_path / "work", encoder=path)
    result, events = _embed(given, tmp_path / "f.png", steps=2)
    assert [k for k, _ in events] == ["start", "step", "step"] and given.encoder_name == "enc.safetensors"
    target = _target(given, tmp_path / "f.png")
    with torch.no_grad():
        at_avg = G.synthesis(G.mapping.w_avg.reshape(1, 1, -1).expand(1, G.num_ws, -1), noise_mode="const")
    assert events[0][1].psnr == pytest.approx(float(psnr(at_avg, target)[0]), abs=1e-3)
    # ... and one for another generator is refused in one line, by the service and by the command.
    with pytest.raises(CheckpointError, match="cartoon-faces-64-encoder"):
        WebService(service.model, device=torch.device("cpu"), workdir=tmp_path / "work",
                   encoder=shipped_encoder_path("cartoon-faces-64"))  # fmt: skip
    r = CliRunner().invoke(cli, ["serve", "--model", str(model), "--encoder",
                                 str(shipped_encoder_path("cartoon-faces-64"))])  # fmt: skip
    assert r.exit_code == 1 and "cartoon-faces-64-encoder.safetensors" in r.output
    assert len(r.output.strip().splitlines()) == 1
