"""Shared fixtures: tiny seeded generators that run every algorithm on CPU in seconds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wplus.align.landmarks import FaceLandmarks
from wplus.models.stylegan2 import StyleGAN2Config, random_generator

torch.set_num_threads(2)


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
