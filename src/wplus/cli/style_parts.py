"""``wplus style parts`` and ``wplus style transfer``: Editing in Style's parts and part transfer between faces."""

from __future__ import annotations

import time
from pathlib import Path

import click
import torch

from wplus.cli.common import (
    DEVICE_CHOICES,
    INPUT_FILE,
    FiniteFloatRange,
    err,
    one_line_errors,
    open_model,
    resolve_device,
)
from wplus.cli.edit_common import EditContext, edit_options
from wplus.cli.help import WplusCommand
from wplus.cli.style import read_styles, style_group
from wplus.errors import ConfigError
from wplus.io.atomic import write_json
from wplus.stylespace import parts as sp
from wplus.stylespace import render_styles, save_styles

_PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
            (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255),
            (170, 110, 40), (255, 250, 200), (128, 0, 0), (170, 255, 195), (128, 128, 0), (255, 215, 180),
            (0, 0, 128), (128, 128, 128)]  # fmt: skip


def _parse_names(text: str, k: int) -> dict[int, str]:
    out: dict[int, str] = {}
    for item in (x.strip() for x in text.split(",") if x.strip()):
        ids, sep, name = item.partition("=")
        name = name.strip()
        try:
            nums = [int(x) for x in ids.split("+")]
        except ValueError:
            nums = []
        if not sep or not nums or not name or name.isdigit() or any(not 0 <= j < k for j in nums):
            raise ConfigError(
                f"--names {item!r}: expected CLUSTER=NAME with a cluster number 0-{k - 1} (e.g. 0=mouth,3+4=eyes)"
            )
        for j in nums:
            out[j] = name
    return out


def _picture(G: torch.nn.Module, cat: sp.PartCatalogue, *, count: int = 6, seed: int = 0) -> object:
    """A few samples with their clusters coloured and numbered (at the centre of each cluster's pixels)."""
    from PIL import Image, ImageDraw

    from wplus.io.images import _font, captioned_grid, tensor_to_pil

    batch = next(sp._sample_batches(G, count, seed + 1, count, "cpu"))
    with torch.no_grad():
        images = render_styles(G, batch)
    masks = sp.part_masks(G, batch, cat)
    scale = max(1, 256 // G.img_resolution)
    side = G.img_resolution * scale
    frames = []
    for i in range(count):
        face = tensor_to_pil(images[i]).resize((side, side), Image.Resampling.NEAREST)
        ids = masks[i].argmax(0)
        colour = torch.tensor(_PALETTE * (cat.k // len(_PALETTE) + 1), dtype=torch.uint8)[ids]
        overlay = Image.fromarray(colour.numpy()).resize((side, side), Image.Resampling.NEAREST)
        out = Image.blend(face, overlay, 0.45)
        draw = ImageDraw.Draw(out)
        font = _font(max(10, side // 22))
        for j in ids.unique().tolist():
            ys, xs = (ids == j).nonzero(as_tuple=True)
            if len(ys) < 3:
                continue
            # the cluster's pixel nearest its mean (the mean itself may fall outside a ring)
            order = ((ys.float() - ys.float().mean()) ** 2 + (xs.float() - xs.float().mean()) ** 2).argsort()
            y, x = (int(ys[order[0]]) + 0.5) * side / cat.size, (int(xs[order[0]]) + 0.5) * side / cat.size
            draw.text((x, y), str(j), fill=(255, 255, 255), font=font, anchor="mm", stroke_width=2,
                      stroke_fill=(0, 0, 0))  # fmt: skip
        frames.append(out)
    legend = ", ".join(f"{j}={n}" for j, n in sorted(cat.names.items())) or "no names yet"
    return captioned_grid(frames, [legend[:40] if i == 0 else "" for i in range(count)], cols=min(count, 3))


@style_group.command("parts", cls=WplusCommand)
@click.argument("model", required=False, default=None, metavar="MODEL")
@click.option("--k", "k", type=click.IntRange(2, 256), default=sp.DEFAULT_K, show_default=True, help="Clusters.")
@click.option(
    "--layer",
    default=sp.DEFAULT_LAYER,
    show_default=True,
    help="Style layer (name or StyleSpace index) whose input feature maps are clustered.",
)
@click.option("--samples", type=click.IntRange(1, 100_000), default=sp.DEFAULT_SAMPLES, show_default=True,
              help="Generator samples clustered.")  # fmt: skip
@click.option("--seed", type=click.IntRange(0), default=0, help="Samples' seed (NVIDIA's RandomState convention).")
@click.option("--catalogue", type=INPUT_FILE, default=None, help="Rename the clusters of this catalogue instead.")
@click.option("--names", default=None, help="Cluster names: '17=mouth,0=left_eye,3+4=hair'.")
@click.option("--outdir", required=True, type=click.Path(file_okay=False, path_type=Path), help="Results folder.")
@click.option("--device", type=DEVICE_CHOICES, default="auto")
@one_line_errors
def parts_cmd(
    model: str | None,
    k: int,
    layer: str,
    samples: int,
    seed: int,
    catalogue: Path | None,
    names: str | None,
    outdir: Path,
    device: str,
) -> None:
    """Find parts: spherical k-means of one layer's per-pixel features over generator samples (Editing in Style).

    Writes OUTDIR/parts.npz (the catalogue `wplus style transfer --catalogue` reads), parts.png (samples with the
    clusters coloured and numbered) and parts.json (cluster ids, names, sizes). The shipped cartoon-faces-64's
    clusters are named automatically (mouth, left_eye, right_eye, eyes) from the drawn faces' boxes; name others
    with --names, on a new catalogue or an existing one (--catalogue). Built catalogues are cached per model
    SHA-256 and settings.

    \b
    Examples:
      wplus style parts cartoon-faces-64 --k 20 --outdir parts/
      wplus style parts cartoon-faces-64 --catalogue parts/parts.npz \\
          --names 17=mouth,0+16=eyes --outdir parts/
    """
    from wplus.shipped import SHIPPED_SHA256

    dev = resolve_device(device)
    info = open_model(model, device=dev)
    t0 = time.perf_counter()
    if catalogue is not None:
        cat, cached = sp.load_catalogue(catalogue, info.G, model_sha256=info.sha256), True
    else:
        cat, cached = sp.cached_catalogue(info.G, model_sha256=info.sha256, k=k, layer=layer, samples=samples,
                                          seed=seed, name_parts=info.sha256 == SHIPPED_SHA256, device=dev)  # fmt: skip
    seconds = time.perf_counter() - t0
    if names:
        cat.names.update(_parse_names(names, cat.k))
    out = sp.save_catalogue(outdir / "parts.npz", cat)
    pic = _picture(info.G, cat, seed=seed)
    pic_path = outdir / "parts.png"
    from wplus.io.images import save_image

    save_image(pic, pic_path)  # type: ignore[arg-type]
    area = cat.area if cat.area is not None else torch.zeros(cat.k)
    rec = {
        "command": "style-parts",
        "model": {"path": str(info.path), "id": info.model_id, "sha256": info.sha256},
        "catalogue": str(out),
        "from": str(catalogue) if catalogue else None,
        "layer": cat.layer,
        "k": cat.k,
        "samples": cat.samples,
        "seed": cat.seed,
        "mask_size": cat.size,
        "cached": cached,
        "seconds": round(seconds, 2),
        "clusters": [
            {"id": j, "name": cat.names.get(j), "share_of_pixels": round(float(area[j] / area.sum()), 4)}
            for j in range(cat.k)
        ],  # fmt: skip
        "parts": cat.parts(),
        "outputs": [str(out), str(pic_path)],
    }
    path = write_json(outdir / "parts.json", rec)
    for p in (out, pic_path, path):
        err(f"wrote {p}")


@style_group.command("transfer", cls=WplusCommand)
@click.argument("target", type=INPUT_FILE)
@click.argument("reference", type=INPUT_FILE)
@click.option("--part", default=None, help="A part name of the catalogue (mouth, eyes, ...) or clusters '3+5'.")
@click.option(
    "--region",
    default=None,
    help="Instead of --part: a mask image (white = inside), x0,y0,x1,y1, "
    "or a built-in box (mouth, left_eye, right_eye).",
)
@click.option("--catalogue", type=INPUT_FILE, default=None, help="From `wplus style parts` [default: built, cached].")
@click.option("--strength", type=FiniteFloatRange(0, 1), default=1.0, show_default=True,
              help="How far the chosen channels move to the reference's.")  # fmt: skip
@click.option("--form", type=click.Choice(sp.FORMS), default=sp.DEFAULT_FORM, show_default=True,
              help="Contribution: 'fraction' (Editing in Style) or 'ris' (softmax).")  # fmt: skip
@click.option("--rho", type=FiniteFloatRange(0, 1), default=None,
              help="Threshold on the contribution [default: the form's].")  # fmt: skip
@click.option("--epsilon", "eps", type=FiniteFloatRange(0, min_open=True), default=None,
              help="Editing in Style's cap on the running sum of (1 - M) [default: none].")  # fmt: skip
@click.option("--torgb", is_flag=True, help="Let ToRGB channels be taken too.")
@click.option("--select", type=click.Choice(["contribution", "effect"]), default="contribution", show_default=True,
              help="How channels are chosen: by their activations' contribution to the part (Editing in Style), "
              "or by where their measured effect falls (`wplus style locate`; --region only).")  # fmt: skip
@click.option(
    "--min-share",
    type=FiniteFloatRange(0, 1, min_open=True),
    default=0.4,
    show_default=True,
    help="--select effect: take channels with at least this share of their effect inside the region.",
)
@one_line_errors
@edit_options
def transfer_cmd(
    target: Path,
    reference: Path,
    part: str | None,
    region: str | None,
    catalogue: Path | None,
    strength: float,
    form: str,
    rho: float | None,
    eps: float | None,
    torgb: bool,
    select: str,
    min_share: float,
    ctx: EditContext,
) -> None:
    """Give TARGET the PART of REFERENCE (latents, styles files, or images projected first) by taking only the
    style channels that act there.

    Writes OUTDIR/transfer.png (target | reference | result), transfer/styles.npz (the result, with the target's
    noise) and transfer.json (channels taken per layer). Without --catalogue the default one is built once and
    cached (`wplus style parts`).

    \b
    Examples:
      wplus style transfer a/latent.npz b/latent.npz --part mouth \\
          --model cartoon-faces-64 --outdir t/
      wplus style transfer a.npz b.npz --region 16,36,48,56 --strength 0.5 \\
          --model cartoon-faces-64 --outdir t/
      wplus style transfer a.npz b.npz --region mouth --select effect \\
          --model cartoon-faces-64 --outdir t/
    """
    import math

    from wplus.io.images import captioned_grid, frame_scale, save_image, tensor_to_pil
    from wplus.shipped import SHIPPED_SHA256

    if (part is None) == (region is None):
        raise click.UsageError("give --part NAME or --region MASK.png|x0,y0,x1,y1 (one of them)")
    if select == "effect" and region is None:
        raise click.UsageError("--select effect needs --region (a built-in box such as mouth, x0,y0,x1,y1 or a mask)")
    G = ctx.G
    t0 = time.perf_counter()
    cat = None
    if select == "effect":  # no catalogue: the region is checked here, before anything is projected
        sp.region_mask(region, G.img_resolution, G.img_resolution)  # type: ignore[arg-type]
    elif catalogue is not None:
        cat = sp.load_catalogue(catalogue, G, model_sha256=ctx.info.sha256)
        ctx.add_input(catalogue, "catalogue")
    else:
        cat, _ = sp.cached_catalogue(G, model_sha256=ctx.info.sha256, name_parts=ctx.info.sha256 == SHIPPED_SHA256,
                                     device=ctx.device)  # fmt: skip
    mask = sp.region_mask(region, cat.size, G.img_resolution) if region is not None and cat is not None else None
    if part is not None and cat is not None:
        cat.resolve(part)  # an unknown name fails before anything is projected
    t_file = read_styles(ctx, target, "target")
    r_file = read_styles(ctx, reference, "reference")
    rho_v = sp.DEFAULT_RHO[form] if rho is None else rho
    eps_v = math.inf if eps is None else eps
    if select == "effect":
        from wplus.stylespace.locate import sample_effects

        effects, _ = sample_effects(G, model_sha256=ctx.info.sha256, device=ctx.device)
        full = sp.region_mask(region, G.img_resolution, G.img_resolution)  # type: ignore[arg-type]
        sel = sp.effect_selection(G, effects, full, min_share=min_share)
        result = sp.mix_selected(t_file.styles.select(0), r_file.styles.select(0), sel.mask, strength)
    else:
        assert cat is not None
        result, sel = sp.transfer_part(G, t_file.styles.select(0), r_file.styles.select(0), cat, part, region=mask,
                                       rho=rho_v, eps=eps_v, form=form, strength=strength, torgb=torgb,
                                       device=ctx.device)  # fmt: skip
    seconds = time.perf_counter() - t0
    t_noise = t_file.noise or None
    with torch.no_grad():
        frames = [render_styles(G, t_file.styles.select(0), t_noise),
                  render_styles(G, r_file.styles.select(0), r_file.noise or None),
                  render_styles(G, result, t_noise)]  # fmt: skip
    label = f"{part if part is not None else 'region'} x{strength:g}"
    captions = [target.stem, reference.stem, label]
    sheet = captioned_grid([tensor_to_pil(f[0]) for f in frames], captions, cols=3,
                           scale=frame_scale(G.img_resolution))  # fmt: skip
    outputs = [save_image(sheet, ctx.outdir / "transfer.png")]
    outputs.append(save_styles(ctx.outdir / "transfer" / "styles.npz", result.to("cpu"), noise=t_file.noise,
                               model_id=ctx.info.model_id, model_sha256=ctx.info.sha256,
                               source=f"transfer {target} <- {reference}"))  # fmt: skip
    params = {
        "part": part,
        "clusters": cat.resolve(part) if part is not None and cat is not None else None,
        "region": region,
        "catalogue": None if cat is None else str(catalogue) if catalogue else "cached default",
        "catalogue_layer": None if cat is None else cat.layer,
        "k": None if cat is None else cat.k,
        "form": None if cat is None else form,
        "rho": None if cat is None else rho_v,
        "eps": None if eps is None or cat is None else eps_v,
        "strength": strength,
        "torgb": torgb,
        "select": select,
        "min_share": min_share if select == "effect" else None,
        "channels_taken": sel.count,
        "channels_per_layer": {k: len(v) for k, v in sel.per_layer().items()},
        "channels": sel.per_layer(),
        "seconds": round(seconds, 3),
    }
    ctx.record("style-transfer", params, outputs, name="transfer")
