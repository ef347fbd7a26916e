"""``wplus style locate`` and ``wplus style find``: the channels behind an image region or an attribute."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

import click
import torch

from wplus.cli.common import DEVICE_CHOICES, FiniteFloatRange, one_line_errors, open_model, resolve_device
from wplus.cli.edit_common import EditContext, edit_options
from wplus.cli.help import WplusCommand
from wplus.cli.style import read_styles, style_group
from wplus.errors import ConfigError
from wplus.io.atomic import atomic_write
from wplus.stylespace import Styles, render_styles, style_layers, style_stats

SHEET_ROWS = 8  # channels shown in a contact sheet


def _write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows(rows)
    return atomic_write(path, lambda tmp: tmp.write_text(buf.getvalue(), encoding="utf-8"))


@torch.no_grad()
def _channel_sheet(
    G: torch.nn.Module,
    styles: Styles,
    std: Styles,
    channels: list[tuple[str, str, int, float]],
    strength: float,
    path: Path,
) -> Path:
    """A contact sheet: one row per channel (name, layer, channel, sign), for every face −s, 0, +s σ."""
    from wplus.io.images import captioned_grid, frame_scale, save_image, tensor_to_pil

    frames, captions = [], []
    base = render_styles(G, styles).cpu()
    faces = styles.batch
    for name, layer, c, sign in channels:
        step = sign * strength * float(std[layer][0, c])
        minus = render_styles(G, styles.with_channel(layer, c, -step)).cpu()
        plus = render_styles(G, styles.with_channel(layer, c, step)).cpu()
        for i in range(faces):
            frames += [tensor_to_pil(minus[i]), tensor_to_pil(base[i]), tensor_to_pil(plus[i])]
            captions += [f"{name} -{strength:g}", f"{name}" if i == 0 else "", f"{name} +{strength:g}"]
    sheet = captioned_grid(frames, captions, cols=3 * faces, scale=frame_scale(G.img_resolution, None, min_size=128))
    return save_image(sheet, path)


@style_group.command("locate", cls=WplusCommand)
@click.argument("model", required=False, default=None, metavar="MODEL")
@click.option(
    "--region",
    required=True,
    help="mouth, left_eye, right_eye (the drawn faces' boxes), a box x0,y0,x1,y1 in pixels (x1, y1 excluded) or "
    "a mask image of the model's size (white = inside).",
)
@click.option("--samples", type=click.IntRange(1, 10_000), default=8, show_default=True, help="Sample images.")
@click.option("--seed", type=click.IntRange(0), default=0, help="First sample seed.")
@click.option("--k", "k", type=FiniteFloatRange(0, 50, min_open=True), default=1.0, show_default=True,
              help="Finite-difference step: each channel moves by k σ.")  # fmt: skip
@click.option("--central", is_flag=True, help="Central differences (±k σ): closer to the Jacobian, 2x slower.")
@click.option("--top", type=click.IntRange(1), default=20, show_default=True, help="Channels printed.")
@click.option(
    "--rank-by",
    type=click.Choice(["share", "stylespace"]),
    default="share",
    show_default=True,
    help="share: of the squared change inside; stylespace: StyleSpace's vote.",
)
@click.option("--strength", type=FiniteFloatRange(0, min_open=True), default=5.0, show_default=True,
              help="Edit in the sheet, in σ.")  # fmt: skip
@click.option("--faces", type=click.IntRange(1, 8), default=2, show_default=True, help="Faces in the sheet.")
@click.option("--outdir", required=True, type=click.Path(file_okay=False, path_type=Path), help="Results folder.")
@click.option("--device", type=DEVICE_CHOICES, default="auto")
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON.")
@one_line_errors
def locate_cmd(
    model: str | None,
    region: str,
    samples: int,
    seed: int,
    k: float,
    central: bool,
    top: int,
    rank_by: str,
    strength: float,
    faces: int,
    outdir: Path,
    device: str,
    as_json: bool,
) -> None:
    """The style channels whose change stays inside a region (StyleSpace).

    Every conv channel is moved by k σ on --samples sample images; where
    the image changes (pooled to 32x32) is cached per model SHA-256 and
    settings, so another region is ranked at once. Writes OUTDIR/locate.csv (every
    channel: rank, name L_C, layer, channel, share of the squared change
    inside the region, StyleSpace's vote and localised flag, RMS change),
    locate.png (the top channels at -/0/+ --strength σ) and locate.json.

    \b
    Examples:
      wplus style locate cartoon-faces-64 --region mouth --outdir loc/
      wplus style locate cartoon-faces-64 --region 20,12,44,30 --outdir loc/
      wplus style locate G.safetensors --region mask.png --samples 16 \\
          --outdir loc/
    """
    from wplus.stylespace.locate import locate_region, parse_region, sample_effects

    dev = resolve_device(device)
    info = open_model(model, device=dev)
    G = info.G
    reg = parse_region(region, G.img_resolution)
    ctx = EditContext(info=info, outdir=outdir, device=dev, projection=None)
    if reg.path is not None:
        ctx.add_input(reg.path, "region mask")
    stats = style_stats(G, model_sha256=info.sha256, device=dev)
    start = time.perf_counter()
    from wplus.progress import progress

    total = sum(x.channels for x in style_layers(G) if x.modulates)
    with progress(total=total, desc="channels", unit="ch", leave=False) as bar:
        seen = [0]

        def callback(done: int, _total: int) -> None:
            bar.update(done - seen[0])
            seen[0] = done

        mode = "central" if central else "forward"
        eff, cached = sample_effects(G, samples=samples, seed=seed, k=k, mode=mode, stats=stats,
                                     model_sha256=info.sha256, device=dev, callback=callback)  # fmt: skip
    effect_seconds = time.perf_counter() - start
    ranking = locate_region(eff, reg.mask, others=reg.others, rank_by=rank_by)
    seconds = time.perf_counter() - start
    outdir.mkdir(parents=True, exist_ok=True)
    header = ["rank", "name", "layer", "layer_index", "channel", "share_inside", "stylespace_score", "runner_up",
              "localised", "rms_change"]  # fmt: skip
    rows = [[r.rank, r.name, r.layer, r.layer_index, r.channel, f"{r.share:.4f}", f"{r.score:.3f}",
             f"{r.runner_up:.3f}", int(r.localised), f"{r.rms:.5f}"] for r in ranking]  # fmt: skip
    out_csv = _write_csv(outdir / "locate.csv", header, rows)
    from wplus.stylespace.stats import sample_styles

    shown = sample_styles(G, faces, seed=seed, device=dev)
    chosen = [(r.name, r.layer, r.channel, 1.0) for r in ranking[: min(top, SHEET_ROWS)]]
    out_png = _channel_sheet(G, shown, stats.std, chosen, strength, outdir / "locate.png")
    n_loc = sum(r.localised for r in ranking)
    params = {
        "region": {"spec": region, "label": reg.label, "area": reg.area, "competing": sorted(reg.others)},
        "samples": samples,
        "seed": seed,
        "k": k,
        "differences": eff.mode,
        "pooled_size": eff.size,
        "rank_by": rank_by,
        "strength": strength,
        "channels": len(ranking),
        "localised_channels": n_loc,
        "cached_effects": cached,
        "seconds": round(seconds, 3),
        "effects_seconds": round(effect_seconds, 3),
        "top": [r.to_json() for r in ranking[:top]],
    }
    ctx.record("style-locate", params, [out_csv, out_png], name="locate", echo=as_json)
    if not as_json:
        how = "effects read from the cache" if cached else f"effects of {len(ranking)} channels computed"
        click.echo(f"{reg.label} ({100 * reg.area:.1f} % of the image): {how}, {seconds:.1f} s; "
                   f"{n_loc} channels localised by StyleSpace's rule")  # fmt: skip
        click.echo(f"{'rank':>4}  {'name':<8} {'inside':>7} {'vote':>5} {'loc':>3}  {'rms':>8}  layer")
        for r in ranking[:top]:
            loc = "yes" if r.localised else "no"
            click.echo(
                f"{r.rank:>4}  {r.name:<8} {100 * r.share:6.1f}% {r.score:5.2f} {loc:>3}  {r.rms:8.5f}  {r.layer}"
            )


@style_group.command("find", cls=WplusCommand)
@click.argument("positives", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--top", type=click.IntRange(1), default=10, show_default=True, help="Channels kept.")
@click.option("--include-torgb", is_flag=True, help="Keep ToRGB channels (StyleSpace drops them).")
@click.option("--strength", type=FiniteFloatRange(0, min_open=True), default=5.0, show_default=True,
              help="Edit in the sheet, in σ.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON.")
@one_line_errors
@edit_options
def find_cmd(
    positives: tuple[Path, ...], top: int, include_torgb: bool, strength: float, as_json: bool, ctx: EditContext
) -> None:
    """The style channels behind what POSITIVE examples share (StyleSpace).

    POSITIVE: at least 10 codes: latents, styles files (every code of a
    file counts) or images (projected first). Their styles are z-scored
    with the model's per-channel statistics; relevance = |mean z| / std z.
    Writes OUTDIR/find.csv, find.png (the top channels' edits of the first
    positive, in the direction that adds the attribute) and find.json.

    \b
    Examples:
      wplus style find smiling/*.npz --model cartoon-faces-64 --outdir smile/
      wplus style find s0.png s1.png s2.png s3.png s4.png s5.png s6.png \\
          s7.png s8.png s9.png --model cartoon-faces-64 --outdir smile/
    """
    from wplus.io.images import IMAGE_SUFFIXES
    from wplus.stylespace import is_styles_file, load_styles
    from wplus.stylespace.find import MIN_POSITIVES, find_channels

    count = 0
    for p in positives:  # count before projecting anything
        if p.suffix.lower() in IMAGE_SUFFIXES:
            count += 1
        elif is_styles_file(p):
            count += load_styles(p, ctx.G, model_sha256=ctx.info.sha256).styles.batch
        else:
            count += 1
    if count < MIN_POSITIVES:
        raise ConfigError(
            f"{count} positive{'s' if count != 1 else ''} given; StyleSpace's rule needs at least {MIN_POSITIVES} "
            "(latents, styles files or images)"
        )
    styles = Styles.cat([read_styles(ctx, p, "positive").styles.to("cpu") for p in positives])
    stats = style_stats(ctx.G, model_sha256=ctx.info.sha256, device=ctx.device)
    layers = style_layers(ctx.G)
    found = find_channels(styles, stats, top=top, include_torgb=include_torgb, layers=layers)
    ctx.outdir.mkdir(parents=True, exist_ok=True)
    header = ["rank", "name", "layer", "layer_index", "channel", "relevance", "mean_z", "std_z"]
    rows = [[r.rank, r.name, r.layer, r.layer_index, r.channel, f"{r.relevance:.4f}", f"{r.mean_z:.4f}",
             f"{r.std_z:.4f}"] for r in found]  # fmt: skip
    out_csv = _write_csv(ctx.outdir / "find.csv", header, rows)
    chosen = [(r.name, r.layer, r.channel, 1.0 if r.mean_z >= 0 else -1.0) for r in found[:SHEET_ROWS]]
    first = styles.select(0).to(ctx.device)
    out_png = _channel_sheet(ctx.G, first, stats.std, chosen, strength, ctx.outdir / "find.png")
    params = {"positives": count, "top": top, "include_torgb": include_torgb, "strength": strength,
              "statistics_samples": stats.samples, "channels": [r.to_json() for r in found]}  # fmt: skip
    ctx.record("style-find", params, [out_csv, out_png], name="find", echo=as_json)
    if not as_json:
        click.echo(f"{count} positives; the {len(found)} most relevant channels:")
        click.echo(f"{'rank':>4}  {'name':<8} {'relevance':>9} {'mean z':>7}  layer")
        for r in found:
            click.echo(f"{r.rank:>4}  {r.name:<8} {r.relevance:9.3f} {r.mean_z:+7.2f}  {r.layer}")
