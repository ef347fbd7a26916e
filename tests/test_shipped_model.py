"""The shipped cartoon-face model itself: it loads, samples faces, embeds held-out faces and moves a smile (slow, CPU,
about 90 s).

The thresholds are regression guards a little below what the shipped model measured in these shortened runs (4 faces,
200 steps: median 26.8 dB; smile direction from 4 pairs projected jointly: 73 % of the change in the mouth box, where
the mean of independent projections gets 58 %). The full checks at the issue's settings are
`benchmarks/check_demo_model.py`; their figures are in docs/demo-model.md.
"""

from __future__ import annotations

import statistics

import pytest
import torch

from wplus.losses import DiscriminatorFeatures
from wplus.shipped import load_shipped_discriminator, load_shipped_generator, shipped_generator_path
from wplus.train.quality import CheckRun, projection_psnr, smile_fraction

pytestmark = pytest.mark.slow


def test_shipped_model_loads_and_is_small():
    G = load_shipped_generator()
    assert G.img_resolution == 64
    assert shipped_generator_path().stat().st_size < 20 * 2**20
    with torch.no_grad():
        img = G(torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(0)))
    assert img.shape == (2, 3, 64, 64) and torch.isfinite(img).all()


def test_shipped_model_embeds_held_out_faces():
    torch.set_num_threads(2)
    G = load_shipped_generator()
    loss = DiscriminatorFeatures(load_shipped_discriminator())
    scores = projection_psnr(G, loss, count=4, run=CheckRun(num_steps=200))
    assert statistics.median(scores) >= 25.0, scores


def test_shipped_model_smile_direction_is_mostly_in_the_mouth():
    torch.set_num_threads(2)
    G = load_shipped_generator()
    loss = DiscriminatorFeatures(load_shipped_discriminator())
    smile = smile_fraction(G, loss, num_pairs=4, num_faces=4, run=CheckRun(num_steps=200))
    assert smile.mean >= 0.6, smile.fractions
