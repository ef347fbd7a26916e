"""The demo behind ``wplus demo`` / ``make demo``: embed faces into W+, then morph, mix and add a smile.

Offline it uses the shipped cartoon-face model, held-out faces of the built-in dataset (seeds the model never saw)
and, because ImageNet VGG-16 weights cannot be downloaded, the shipped discriminator's features plus MSE as the
perceptual loss (:class:`wplus.losses.DiscriminatorFeatures`). The smile comes from the shipped smile direction
(``wplus/assets/cartoon-faces-64-smile.npz``, estimated from pairs of held-out faces projected jointly; see
docs/demo-model.md): one pair is not enough to separate a smile from the person. With a real checkpoint the first
face is the astronaut photo (scikit-image), the paper's VGG loss is used when its weights are present, and the smile
is the paper's one-pair expression transfer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageDraw

from wplus.data.faces import HELD_OUT_SEED_BASE, draw_face, sample_attributes, with_attribute
from wplus.edits import (
    Direction,
    apply_direction,
    expression_transfer,
    interpolate,
    load_direction,
    mix_styles,
    render,
    save_direction,
    save_frames,
)
from wplus.io.atomic import write_json
from wplus.io.images import center_crop_resize, image_grid, pil_to_tensor, save_image
from wplus.io.latents import Latent, save_latent
from wplus.metrics import psnr
from wplus.projection.project import ProjectionLoss, ProjectionStep, project
from wplus.shipped import SHIPPED_MODEL, named_directions, shipped_smile_direction_path
from wplus.text import plural

__all__ = [
    "DemoResult",
    "demo_targets",
    "run_demo",
    "astronaut_image",
    "shipped_smile_direction_path",
    "load_shipped_smile",
    "AttributeEdit",
    "load_attribute_edits",
    "even_picks",
]

# The demo's faces: two to morph, one to receive the smile, and one person drawn neutral and smiling.
DEMO_NAMES = ("a", "b", "target", "neutral", "smiling")

#: The shipped smile direction of the shipped model (our direction format), in ``wplus/assets/``.

#: Strengths of the smile direction in the demo's expression step (1 = the average neutral -> smiling difference).
SMILE_STRENGTHS = (0.0, 0.5, 1.0, 1.5, 2.0)


def load_shipped_smile(G: torch.nn.Module | None = None) -> Direction:
    """The shipped smile direction, checked against ``G`` when given (ShapeError if it does not fit)."""
    return load_direction(shipped_smile_direction_path(), G)


@dataclass(frozen=True)
class AttributeEdit:
    """A named direction as the demo's row of attribute edits uses it: shown at ``strengths`` (low, high)."""

    name: str
    direction: Direction
    strengths: tuple[float, float]


_SHEET_COLS = 2 * len(DEMO_NAMES)  # the contact sheet's widest row: the targets and their reconstructions


def load_attribute_edits(G: torch.nn.Module | None = None, model: str = SHIPPED_MODEL) -> list[AttributeEdit]:
    """Every named direction of the shipped ``model`` (``wplus direction list``), at its recommended strengths:
    the row grows by itself as directions are shipped."""
    return [AttributeEdit(d.name, load_direction(d.path, G), d.strength) for d in named_directions(model)]


def even_picks(count: int, k: int) -> list[int]:
    """``k`` indices spread evenly over ``range(count)``, always including the first and the last.

    Example:
        >>> even_picks(12, 6)
        [0, 2, 4, 7, 9, 11]
    """
    if count <= k:
        return list(range(count))
    if k == 1:
        return [count - 1]
    return [round(i * (count - 1) / (k - 1)) for i in range(k)]


@dataclass
class DemoResult:
    outdir: Path
    files: dict[str, Path]
    psnr: dict[str, float]
    loss_name: str
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def demo_targets(resolution: int, *, first: Image.Image | None = None) -> dict[str, Image.Image]:
    """Held-out dataset faces (seeds from HELD_OUT_SEED_BASE); ``first`` replaces face 'a' (e.g. a photo)."""
    base = HELD_OUT_SEED_BASE
    person = sample_attributes(base + 3)
    faces = {
        "a": draw_face(sample_attributes(base + 0), size=resolution),
        "b": draw_face(sample_attributes(base + 1), size=resolution),
        "target": draw_face(with_attribute(sample_attributes(base + 2), smile=0.0), size=resolution),
        "neutral": draw_face(with_attribute(person, smile=0.0), size=resolution),
        "smiling": draw_face(with_attribute(person, smile=1.0), size=resolution),
    }
    if first is not None:
        faces["a"] = center_crop_resize(first.convert("RGB"), resolution)
    return faces


def astronaut_image() -> Image.Image:
    """scikit-image's astronaut photo, cropped to her face (the demo's photo with a real checkpoint)."""
    from skimage import data

    return Image.fromarray(data.astronaut()).crop((130, 20, 330, 220))


def _labelled(img: Image.Image, text: str, scale: int) -> Image.Image:
    big = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    out = Image.new("RGB", (big.width, big.height + 14), (255, 255, 255))
    out.paste(big, (0, 14))
    ImageDraw.Draw(out).text((2, 1), text, fill=(0, 0, 0))
    return out


def _section(title: str, tiles: list[Image.Image], width: int) -> Image.Image:
    row = image_grid(tiles, cols=len(tiles), pad=4)
    out = Image.new("RGB", (max(width, row.width), row.height + 18), (255, 255, 255))
    ImageDraw.Draw(out).text((4, 3), title, fill=(0, 0, 0))
    out.paste(row, (0, 18))
    return out


def run_demo(
    G: torch.nn.Module,
    loss: ProjectionLoss,
    outdir: str | Path,
    *,
    targets: dict[str, Image.Image],
    loss_name: str,
    num_steps: int = 300,
    seed: int = 0,
    smile: Direction | None = None,
    smile_strengths: Sequence[float] = SMILE_STRENGTHS,
    attribute_edits: Sequence[AttributeEdit] = (),
    callback: Callable[[ProjectionStep], None] | None = None,
) -> DemoResult:
    """Project ``targets`` into W+ in one batch, then write the targets, reconstructions, a morph, a mixing grid, a
    smile strip and one contact sheet to ``outdir``.

    Args:
        G: The generator.
        loss: The projection loss (``DiscriminatorFeatures`` offline, ``PerceptualLoss`` with VGG weights).
        outdir: Output folder.
        targets: Images named as :data:`DEMO_NAMES` (see :func:`demo_targets`).
        loss_name: How the loss is described in ``summary.json`` and the contact sheet.
        num_steps: Projection steps.
        seed: Projection seed.
        smile: A smile direction for G (e.g. :func:`load_shipped_smile`): the expression step is then
            ``target + s * smile`` for each of ``smile_strengths``, and the direction is copied to
            ``outdir/smile.npz``. None: the paper's one-pair transfer ``target + s * (smiling - neutral)``.
        smile_strengths: Strengths of the smile direction.
        attribute_edits: Named directions (:func:`load_attribute_edits`): the target is rendered at each one's low
            and high strength, in ``attribute_edits.png`` and a row of the contact sheet (none: no such row).
        callback: Progress callback of :func:`wplus.project`.
    """
    import time

    t0 = time.perf_counter()
    outdir = Path(outdir)
    device = G.w_avg.device
    names = list(DEMO_NAMES)
    batch = torch.cat([pil_to_tensor(targets[n]) for n in names]).to(device)
    result = project(G, batch, loss=loss, space="w+", num_steps=num_steps, seed=seed, callback=callback)
    ws = {n: result.ws[i : i + 1] for i, n in enumerate(names)}
    scores = psnr(result.images, batch)
    files: dict[str, Path] = {}
    for n in names:
        files[f"target_{n}"] = save_image(targets[n], outdir / "targets" / f"{n}.png")
        files[f"latent_{n}"] = save_latent(
            outdir / "latents" / f"{n}.npz",
            Latent(ws=ws[n].cpu(), space="w+", noise=[x.cpu() for x in result.noise], source=f"demo face {n}"),
        )
    recon = render(G, result.ws)
    files["reconstructions"] = save_image(
        image_grid([targets[n] for n in names] + recon, cols=len(names), pad=2), outdir / "reconstructions.png"
    )
    scale = 3 if recon[0].width <= 128 else 1
    # Morph a -> b in W+ (linear interpolation, Image2StyleGAN sec. 4.1).
    ts = [i / 11 for i in range(12)]
    frames = render(G, torch.cat([interpolate(ws["a"], ws["b"], t) for t in ts]))
    morph_paths = save_frames(frames, outdir / "morph", fps=8)
    files["morph_gif"] = next(p for p in morph_paths if p.suffix == ".gif")
    files["morph_strip"] = next(p for p in morph_paths if p.suffix == ".png")
    # Style mixing: rows a, b keep their coarse layers and take the rest from each column's face.
    contents, styles = ["a", "b"], ["target", "smiling"]
    mix_rows = {}
    for layers in ("middle,fine", "fine"):
        mix_rows[layers] = [render(G, mix_styles(ws[c], ws[s], layers))[0] for c in contents for s in styles]
    blank = Image.new("RGB", recon[0].size, (255, 255, 255))
    tiles = [blank] + [recon[names.index(s)] for s in styles]
    for ci, c in enumerate(contents):
        tiles += [recon[names.index(c)]] + mix_rows["middle,fine"][ci * len(styles) : (ci + 1) * len(styles)]
    files["style_mixing"] = save_image(image_grid(tiles, cols=len(styles) + 1, pad=2), outdir / "style_mixing.png")
    if smile is not None:
        # The shipped direction: many pairs projected jointly, so it moves the mouth and little else.
        strengths = [float(s) for s in smile_strengths]
        expr = render(G, apply_direction(ws["target"], smile, strengths))
        files["smile_direction"] = save_direction(outdir / "smile.npz", smile.vector, metadata=smile.metadata)
        pairs = smile.metadata.get("num_pairs")
        how_many = plural(pairs, "pair") if pairs else "several pairs"
        expr_title = f"Smile direction ({how_many} projected jointly): target + s * smile"
        expr_first = [_labelled(targets["target"], "target", scale)]
        expr_labels = [f"s={s:g}" for s in strengths]
    else:
        # Expression transfer (sec. 4.3) from the one demo pair: target + lambda * (smiling - neutral).
        strengths = [0.0, 0.5, 1.0, 1.5]
        expr = render(
            G, expression_transfer(ws["target"], ws["neutral"], ws["smiling"], strength=strengths, threshold=0)
        )
        expr_title = "Expression transfer: target + l * (smiling - neutral)"
        expr_first = [_labelled(targets["neutral"], "neutral", scale), _labelled(targets["smiling"], "smiling", scale)]
        expr_labels = [f"l={s:g}" for s in strengths]
    files["expression"] = save_image(image_grid(expr, cols=len(expr), pad=2), outdir / "expression.png")
    attr_tiles, attr_labels = [], []
    for a in attribute_edits:  # the target moved along every named direction, to each end of its range
        attr_tiles += render(G, apply_direction(ws["target"], a.direction, list(a.strengths)))
        attr_labels += [f"{a.name} {s:+g}" for s in a.strengths]
    if attr_tiles:
        files["attribute_edits"] = save_image(
            image_grid(attr_tiles, cols=min(len(attr_tiles), 2 * _SHEET_COLS), pad=2), outdir / "attribute_edits.png"
        )
    # One contact sheet with everything; the morph row shows 6 of its frames, the first and the last included.
    picks = even_picks(len(frames), 6)
    psnr_d = {n: float(scores[i]) for i, n in enumerate(names)}
    sections = [
        ("Targets (held-out faces) and their W+ reconstructions, PSNR in dB",
         [_labelled(targets[n], n, scale) for n in names]
         + [_labelled(r, f"{psnr_d[n]:.1f} dB", scale) for n, r in zip(names, recon, strict=True)]),
        ("Morph a -> b in W+", [_labelled(frames[i], f"t={ts[i]:.2f}", scale) for i in picks]),
        ("Style mixing: a, b with middle+fine layers from target, smiling",
         [_labelled(mix_rows["middle,fine"][k], f"{contents[k // 2]}+{styles[k % 2]}", scale) for k in range(4)]),
        (expr_title, expr_first + [_labelled(e, s, scale) for e, s in zip(expr, expr_labels, strict=True)]),
    ]  # fmt: skip
    if attr_tiles:
        tiles = [_labelled(recon[names.index("target")], "target", scale)]
        tiles += [_labelled(t, label, scale) for t, label in zip(attr_tiles, attr_labels, strict=True)]
        title = "Attribute edits of target: each named direction at its low and high strength (wplus direction list)"
        for start in range(0, len(tiles), _SHEET_COLS):  # wrapped at the widest row above, not one very long strip
            sections.append((title if start == 0 else "", tiles[start : start + _SHEET_COLS]))
    width = max(image_grid(t, cols=len(t), pad=4).width for _, t in sections)
    parts = [_section(title, tiles, width) for title, tiles in sections]
    sheet = Image.new("RGB", (width, sum(p.height for p in parts) + 20), (255, 255, 255))
    ImageDraw.Draw(sheet).text((4, 4), f"wplus demo - loss: {loss_name}", fill=(0, 0, 0))
    y = 20
    for p in parts:
        sheet.paste(p, (0, y))
        y += p.height
    files["contact_sheet"] = save_image(sheet, outdir / "contact_sheet.png")
    extra = {
        "morph_sheet_t": [ts[i] for i in picks],
        "expression": expr_title,
        "strengths": strengths,
        "attribute_edits": [{"name": a.name, "strengths": list(a.strengths)} for a in attribute_edits],
    }
    res = DemoResult(
        outdir=outdir, files=files, psnr=psnr_d, loss_name=loss_name, seconds=time.perf_counter() - t0, extra=extra
    )
    write_json(
        outdir / "summary.json",
        {"loss": loss_name, "num_steps": num_steps, "psnr_db": psnr_d, "seconds": round(res.seconds, 1),
         **extra, "files": {k: str(v) for k, v in files.items()}},
    )  # fmt: skip
    return res
