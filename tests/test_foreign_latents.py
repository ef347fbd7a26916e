"""Latent files in the wild: NVIDIA projected_w.npz, toolkit .npy, rosinality projector .pt, e4e / PTI tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wplus.errors import CheckpointError, ShapeError
from wplus.formats.latents import load_foreign_latents
from wplus.io.latents import Latent, save_latent


def test_nvidia_projected_w_npz(tmp_path):
    w = np.random.default_rng(0).standard_normal((1, 18, 512)).astype(np.float32)
    np.savez(tmp_path / "projected_w.npz", w=w)
    (lat,) = load_foreign_latents(tmp_path / "projected_w.npz", num_ws=18)
    assert lat.ws.shape == (1, 18, 512) and np.array_equal(lat.ws.numpy(), w)


def test_toolkit_npy_and_batched_npy(tmp_path):
    w = np.random.default_rng(1).standard_normal((18, 512))
    np.save(tmp_path / "face.npy", w)
    (lat,) = load_foreign_latents(tmp_path / "face.npy", num_ws=18)
    assert lat.ws.dtype == torch.float32 and torch.allclose(lat.ws[0], torch.from_numpy(w).float())
    np.save(tmp_path / "many.npy", np.zeros((3, 14, 512), np.float32))
    assert len(load_foreign_latents(tmp_path / "many.npy", num_ws=14)) == 3


def test_rosinality_projector_dict_keeps_noise(tmp_path):
    noise = [torch.randn(1, 1, 4, 4), torch.randn(1, 1, 8, 8)]
    torch.save(
        {
            "a.png": {"img": torch.zeros(3, 8, 8), "latent": torch.randn(512), "noise": noise},
            "b.png": {"img": torch.zeros(3, 8, 8), "latent": torch.randn(14, 512), "noise": noise},
        },
        tmp_path / "proj.pt",
    )
    a, b = load_foreign_latents(tmp_path / "proj.pt", num_ws=14)
    assert a.source == "a.png" and a.ws.shape == (1, 14, 512)
    assert torch.equal(a.ws[0, 0], a.ws[0, 13])  # a single w is broadcast to every layer
    assert len(b.noise) == 2 and torch.equal(b.noise[1], noise[1])


def test_e4e_and_pti_tensors(tmp_path):
    torch.save(torch.randn(5, 18, 512), tmp_path / "latents.pt")
    assert len(load_foreign_latents(tmp_path / "latents.pt", num_ws=18)) == 5
    torch.save(torch.randn(1, 18, 512), tmp_path / "0.pt")
    assert load_foreign_latents(tmp_path / "0.pt", num_ws=18)[0].ws.shape == (1, 18, 512)


def test_our_latent_npz_round_trips(tmp_path):
    ws = torch.randn(1, 8, 32)
    save_latent(tmp_path / "latent.npz", Latent(ws=ws, noise=[torch.randn(1, 1, 4, 4)]))
    (lat,) = load_foreign_latents(tmp_path / "latent.npz", num_ws=8, w_dim=32)
    assert torch.equal(lat.ws, ws) and len(lat.noise) == 1
    (lat,) = load_foreign_latents(tmp_path / "latent.npy", num_ws=8, w_dim=32)
    assert torch.equal(lat.ws, ws)


def test_wrong_num_ws_says_what_was_expected(tmp_path):
    np.save(tmp_path / "w14.npy", np.zeros((14, 512), np.float32))
    with pytest.raises(ShapeError, match=r"w14\.npy.*\[14, 512\].*expected \[N, 18, 512\].*num_ws=18"):
        load_foreign_latents(tmp_path / "w14.npy", num_ws=18)


@pytest.mark.parametrize("name,content", [("empty.npy", b""), ("junk.npz", b"PK\x03\x04junk"), ("x.txt", b"1")])
def test_unreadable_latent_files_name_the_file(tmp_path, name, content):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(CheckpointError, match=name.replace(".", r"\.")):
        load_foreign_latents(tmp_path / name, num_ws=18)
