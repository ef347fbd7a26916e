"""Shared fixtures: tiny seeded generators that run every algorithm on CPU in seconds, and the device option.

``pytest --device cuda`` (default cpu) runs the tests that take the ``device`` fixture on that device; they carry the
``device`` marker, so ``pytest -m device --device cuda`` runs just them (benchmarks/gpu_check.py does).
"""

from __future__ import annotations

# wplus before torch: importing it sets OMP_WAIT_POLICY=PASSIVE while that still counts (wplus.runtime), so torch's idle
# OpenMP threads sleep instead of spinning. With spinning threads on 2 shared cores, tests/test_study.py took 24-67 s
# instead of about 9 s whenever other jobs ran.
import wplus  # noqa: F401
import copy

import numpy as np
import pytest
import torch

from wplus.align.landmarks import FaceLandmarks
from wplus.models.stylegan2 import StyleGAN2Config, random_generator

torch.set_num_threads(2)


def pytest_addoption(parser):
    parser.addoption(
        "--device",
        default="cpu",
        help="torch device of the device-parametrised tests (marker 'device'): cpu (default), cuda, cuda:1, mps",
    )


def pytest_configure(config):
    try:
        torch.device(config.getoption("--device"))
    except RuntimeError as e:
        raise pytest.UsageError(f"--device {config.getoption('--device')!r}: {e}") from None


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "device" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.device)


def _unavailable(device: torch.device) -> str | None:
    """Why ``device`` cannot run here, or None."""
    if device.type == "cuda":
        if not torch.cuda.is_available():
            built = f"built for CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
            return f"--device {device}: CUDA is not available here (torch {torch.__version__}, {built})"
        if device.index is not None and device.index >= torch.cuda.device_count():
            return f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) here"
    if device.type == "mps" and not torch.backends.mps.is_available():
        return f"--device {device}: MPS is not available here"
    return None


@pytest.fixture(scope="session")
def device(request) -> torch.device:
    """The device of ``--device``; its tests skip, saying why, when that device is missing (never on cpu)."""
    dev = torch.device(request.config.getoption("--device"))
    if (reason := _unavailable(dev)) is not None:
        pytest.skip(reason)
    if dev.type == "cuda":
        # The tests compare against float32/float64 references computed in full precision; TF32 (cuDNN's default for
        # convolutions) would fail them by design. Its speed is benchmarks/gpu_check.py's business.
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return dev


def on_device(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """A copy of ``module`` on ``device`` (the shared fixtures stay as they are)."""
    return copy.deepcopy(module).to(device)


def tiny_config(resolution: int = 16, **overrides) -> StyleGAN2Config:
    kw = dict(img_resolution=resolution, z_dim=32, w_dim=32, mapping_layers=2, channel_base=256, channel_max=32)
    kw.update(overrides)
    return StyleGAN2Config(**kw)


@pytest.fixture(scope="session")
def tiny_generator():
    """16 px, 32-wide StyleGAN2 with nonzero noise strengths (so noise handling is exercised)."""
    return random_generator(tiny_config(16), seed=1, noise_strength=0.1)


@pytest.fixture(scope="session")
def tiny_generator_32():
    return random_generator(tiny_config(32), seed=2, noise_strength=0.1)


@pytest.fixture(scope="session")
def tiny_generator_on(tiny_generator, device):
    """``tiny_generator`` on ``--device``."""
    return on_device(tiny_generator, device)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny renders: one thread avoids OpenMP spin-waits that make them 100x slower on a busy machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class MSELoss:
    """A VGG-free projection loss for tests: per-sample pixel MSE."""

    def prepare_target(self, target):
        return target

    def __call__(self, images, target):
        mse = (images - target).square().flatten(1).mean(1)
        return {"mse": mse, "total": mse}


@pytest.fixture
def mse_loss():
    return MSELoss()


class FakeDetector:
    """One face in the middle of any photo: align runs without dlib."""

    def __init__(self, **kwargs):
        pass

    def detect(self, image):
        w, h = image.size
        pts = np.zeros((68, 2))
        pts[36:42] = (w * 0.4, h * 0.45)
        pts[42:48] = (w * 0.6, h * 0.45)
        pts[48], pts[54] = (w * 0.42, h * 0.7), (w * 0.58, h * 0.7)
        return [FaceLandmarks(points=pts, box=(w * 0.3, h * 0.3, w * 0.7, h * 0.8))]


def fake_named_assets(folder, G, monkeypatch, names=("smile", "glasses")):
    """A stand-in assets folder: ``G`` as the shipped generator and one random direction per name in its index.

    ``wplus.shipped`` is pointed at the folder (``_asset``) and at G's file (``SHIPPED_SHA256``), so that
    ``cartoon-faces-64:<name>`` means these files while the test runs.
    """
    from wplus import shipped
    from wplus.edits.directions import save_direction
    from wplus.io.checkpoint import save_generator
    from wplus.loading import file_sha256

    model = save_generator(G, folder / f"{shipped.SHIPPED_MODEL}.safetensors")
    entries = []
    for i, name in enumerate(names):
        vector = torch.randn(1, G.w_dim, generator=torch.Generator().manual_seed(i)) * 2
        file = f"{shipped.SHIPPED_MODEL}-{name}.npz"
        save_direction(folder / file, vector, metadata={"name": name, "val_accuracy": 0.9 + i / 100})
        entries.append(shipped.NamedDirection(shipped.SHIPPED_MODEL, name, file, f"{name} test", (-2.0, 3.0), "test"))
    shipped.write_named_directions(folder, shipped.SHIPPED_MODEL, entries)
    monkeypatch.setattr(shipped, "_asset", lambda name: folder / name)
    monkeypatch.setattr(shipped, "SHIPPED_SHA256", file_sha256(model))
    return model
