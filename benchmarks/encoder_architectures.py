"""Encoder architectures compared at the same budget (docs/encoders.md): latent loss only, one shared pool of pairs.

Every variant trains ``STEPS`` AdamW steps (batch 32, lr 1e-3 with the training's schedule) on the same 512 pairs
(G(ws), ws) of the shipped model, then reports the whitened latent MSE and median PSNR of G(E(x)) on 64 fresh
generator samples, the median PSNR on 16 held-out drawn faces, its parameters and milliseconds per image.

Usage: python benchmarks/encoder_architectures.py [STEPS] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

import wplus
from wplus.metrics import psnr
from wplus.models.encoder import EncoderConfig, WEncoder
from wplus.train.encoder import _lr_at, code_spread, sample_pairs
from wplus.train.quality import held_out_faces

VARIANTS = {
    "flat head (4 stages, 1 res block each)": dict(head="flat"),
    "grouped heads 3/3/4 (1 res block each)": dict(head="grouped"),
    "grouped heads 3/3/4, no res blocks": dict(head="grouped", blocks=0),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("steps", type=int, nargs="?", default=100)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    G = wplus.load_generator("cartoon-faces-64").requires_grad_(False)
    pool_ws, pool_img = sample_pairs(G, 512, torch.Generator().manual_seed(1))
    val_ws, val_img = sample_pairs(G, 64, torch.Generator().manual_seed(2))
    faces = held_out_faces(1000, 16, 64)
    out = {}
    for name, kw in VARIANTS.items():
        torch.manual_seed(0)
        e = WEncoder(EncoderConfig(num_ws=G.num_ws, w_dim=G.w_dim, stem=16, hidden=256, **kw))
        e.w_avg.copy_(G.mapping.w_avg)
        e.w_std.copy_(code_spread(G, seed=0, mix_prob=0.5, psi_min=0.7))
        opt = torch.optim.AdamW(e.parameters(), lr=1e-3, weight_decay=1e-4)
        g = torch.Generator().manual_seed(3)
        t0 = time.time()
        for step in range(args.steps):
            for group in opt.param_groups:
                group["lr"] = _lr_at(step, args.steps, 1e-3)
            idx = torch.randint(len(pool_ws), (32,), generator=g)
            loss = F.mse_loss(e(pool_img[idx]), (pool_ws[idx] - e.w_avg) / e.w_std)
            opt.zero_grad()
            loss.backward()
            opt.step()
        secs = time.time() - t0
        e.eval()
        with torch.no_grad():
            val_latent = F.mse_loss(e(val_img), (val_ws - e.w_avg) / e.w_std).item()
            val_psnr = psnr(G.synthesis(e.encode(val_img), noise_mode="const"), val_img).median().item()
            face_psnr = psnr(G.synthesis(e.encode(faces), noise_mode="const"), faces).median().item()
            t = time.perf_counter()
            for _ in range(10):
                e.encode(faces[:1])
            ms = (time.perf_counter() - t) * 100
        out[name] = {"params_m": round(sum(p.numel() for p in e.parameters()) / 1e6, 2), "train_s": round(secs),
                     "val_latent": round(val_latent, 4), "val_psnr": round(val_psnr, 2),
                     "face_psnr": round(face_psnr, 2), "ms_per_image": round(ms, 1)}  # fmt: skip
        print(name, out[name], flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"steps": args.steps, "batch": 32, "pool": 512, "variants": out}, f, indent=1)


if __name__ == "__main__":
    main()
