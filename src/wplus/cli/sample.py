"""``wplus sample``: seeded codes (and optionally their renders) for a classifier to score."""

from __future__ import annotations

from pathlib import Path

import click
import torch

from wplus.cli.common import (
    DEVICE_CHOICES,
    FiniteFloatRange,
    class_label,
    err,
    one_line_errors,
    open_model,
    parse_seeds,
    resolve_device,
)
from wplus.cli.help import WplusCommand
from wplus.edits.discovery import sample_codes
from wplus.edits.discovery_io import save_samples
from wplus.io.images import save_image
from wplus.progress import progress


@click.command("sample", cls=WplusCommand)
@click.argument("model", type=str)
@click.option(
    "--seeds",
    required=True,
    callback=parse_seeds,
    help="Seeds, e.g. '0-19999' (0 to 2**32-1); z = np.random.RandomState(seed).randn(1, z_dim), NVIDIA's convention.",
)
@click.option("--out", "outdir", required=True, type=click.Path(file_okay=False, path_type=Path), help="Folder.")
@click.option(
    "--trunc",
    "truncation_psi",
    type=FiniteFloatRange(),
    default=1.0,
    show_default=True,
    help="Truncation psi applied to w (every row), so the stored w is exactly the code of the render.",
)
@click.option("--images", is_flag=True, help="Also render seedNNNN.png for each seed (const noise).")
@click.option("--class", "class_idx", type=click.IntRange(0), default=None, help="Class label (conditional models).")
@click.option("--batch", type=click.IntRange(1, 256), default=16, show_default=True, help="Images rendered at once.")
@click.option("--device", type=DEVICE_CHOICES, default="auto", show_default=True)
@one_line_errors
def sample_cmd(
    model: str,
    seeds: list[int],
    outdir: Path,
    truncation_psi: float,
    images: bool,
    class_idx: int | None,
    batch: int,
    device: str,
) -> None:
    """Write OUT/codes.npz (seeds [N], z [N, z_dim], w [N, w_dim]) for MODEL and, with --images, the renders.

    Score the renders with any classifier, then fit a direction: `wplus direction fit OUT/codes.npz scores.csv`
    (a CSV 'seed,score' or an .npy in seed order).

    \b
    Examples:
      wplus sample cartoon-faces-64 --seeds 0-19999 --out samples/
      wplus sample ffhq.pkl --seeds 0-999 --trunc 0.7 --images --out labelled/
    """
    dev = resolve_device(device)
    info = open_model(model, device=dev)
    G = info.G
    c = class_label(G, class_idx, dev)
    codes = sample_codes(G, seeds, truncation_psi=truncation_psi, c=c)
    meta = {"model_sha256": info.sha256, "model_id": info.model_id, "class": class_idx}
    path = save_samples(outdir / "codes.npz", codes, metadata=meta)
    err(f"wrote {path}: {len(seeds)} codes (z {list(codes.z.shape)}, w {list(codes.w.shape)})")
    if not images:
        return
    with progress(len(seeds), desc="render", unit="img") as bar, torch.no_grad():
        for start in range(0, len(seeds), batch):
            w = codes.w[start : start + batch].to(dev)
            imgs = G.synthesis(w[:, None].repeat(1, G.num_ws, 1), noise_mode="const")
            for seed, img in zip(seeds[start : start + batch], imgs, strict=True):
                save_image(img[None], outdir / f"seed{seed:04d}.png")
            bar.update(len(w))
    err(f"wrote {len(seeds)} images to {outdir}")
