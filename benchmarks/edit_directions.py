"""Edit discovery on a CPU: how long SeFa, PCA and InterFaceGAN fitting take, and whether --variant rosinality agrees
with rosinality's own computation.

- SeFa on a random FFHQ-sized config-f StyleGAN2 (1024 px, 18 ws, 512-wide styles): target 1 s.
- ``--variant rosinality`` against a direct computation written from EDITING.md's account of
  ``closed_form_factorization.py`` (the ``g_ema`` keys with 'modulation' and 'weight' but not 'to_rgbs', stacked,
  ``torch.svd(W).V``), on the same generator written in rosinality's layout: |cos| of the top 10 (target >= 0.9999).
- PCA of 100 000 w of the shipped model (cartoon-faces-64): target 30 s.
- Sampling 20 000 seeded codes of the shipped model and fitting a boundary to planted scores (w·n + noise): target
  60 s for the fit; the cosine to the planted normal says whether it found it.

Usage: python benchmarks/edit_directions.py [--samples 100000] [--codes 20000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from wplus import directions as D
from wplus.formats import _testing as W
from wplus.loading import load_generator
from wplus.models.stylegan2 import StyleGAN2Config, random_generator


def timed(fn, repeat: int = 1):
    """(result of the last call, seconds of the first call, median seconds of the calls)."""
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return out, times[0], statistics.median(times)


def rosinality_direct(path: Path) -> torch.Tensor:
    """rosinality's computation as EDITING.md describes it, on the file itself: V [w_dim, w_dim], columns."""
    g_ema = torch.load(path, map_location="cpu", weights_only=True)["g_ema"]
    modulate = {k: v for k, v in g_ema.items() if "modulation" in k and "to_rgbs" not in k and "weight" in k}
    return torch.svd(torch.cat(list(modulate.values()), 0)).V


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=100_000, help="w vectors for the PCA")
    ap.add_argument("--codes", type=int, default=20_000, help="codes for the boundary fit")
    ap.add_argument("--repeat", type=int, default=5, help="SeFa runs (the median is reported)")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)

    start = time.perf_counter()
    G = random_generator(StyleGAN2Config(), w_avg_samples=100)  # config-f defaults: 1024 px, channel_base 32768
    print(f"random config-f generator: num_ws {G.num_ws}, built in {time.perf_counter() - start:.1f} s", flush=True)
    for variant in ("genforce", "rosinality"):
        r, first, median = timed(lambda v=variant: D.sefa(G, variant=v), args.repeat)
        channels = sum(a.weight.shape[0] for a in D.style_affines(G) if a.name in r.layer_names)
        print(f"SeFa {variant:10s}: {len(r.layer_names)} layers, {channels} channels -> {len(r.directions)} "
              f"directions; first call {first:.3f} s, median of {args.repeat} {median:.3f} s (target 1 s)",
              flush=True)  # fmt: skip

    with tempfile.TemporaryDirectory() as tmp:
        path = W.write_rosinality(G, Path(tmp) / "ffhq-f.pt", with_args=False)
        ours = D.sefa(load_generator(path), variant="rosinality", num=10).directions.double()
        ref = rosinality_direct(path)[:, :10].T.double()
    cos = (ours * ref).sum(1).abs() / (ours.norm(dim=1) * ref.norm(dim=1))
    print(
        f"rosinality variant vs the script's SVD on the .pt: |cos| of the top 10 min {float(cos.min()):.6f} "
        "(target >= 0.9999)",
        flush=True,
    )

    shipped = load_generator("cartoon-faces-64")
    r, seconds, _ = timed(lambda: D.pca(shipped, num_samples=args.samples, num_components=80))
    print(
        f"PCA of {args.samples} w (cartoon-faces-64, w_dim {shipped.w_dim}): {seconds:.1f} s (target 30 s), "
        f"80 components explain {100 * float(r.variance_ratio.sum()):.1f}%",
        flush=True,
    )

    codes, seconds, _ = timed(lambda: D.sample_codes(shipped, list(range(args.codes))))
    print(f"sampling {args.codes} seeded codes: {seconds:.1f} s", flush=True)
    w = codes.w.double().numpy()
    n = np.random.RandomState(0).randn(w.shape[1])
    n /= np.linalg.norm(n)
    scores = w @ n + 0.05 * (w @ n).std() * np.random.RandomState(1).randn(len(w))
    for ratio in (0.02, 0.2):  # InterFaceGAN's default, then ten times the codes per side
        b, seconds, _ = timed(lambda r=ratio: D.fit_boundary(w, scores, ratio=r))
        print(f"fit on {args.codes} codes (ratio {ratio}: {b.num_positive} per side): {seconds:.1f} s (target 60 s), "
              f"validation accuracy {b.val_accuracy:.3f}, cos to the planted normal {float((b.normal @ n)[0]):.3f}",
              flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
