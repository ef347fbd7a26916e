"""``wplus style``: the style space S — extract styles, per-channel statistics, channel edits, the channels behind
a region or an attribute, and part transfer between faces (docs/stylespace.md)."""

from __future__ import annotations

from pathlib import Path

import click
import torch

from wplus.cli.common import (
    DEVICE_CHOICES,
    INPUT_FILE,
    FiniteFloatRange,
    echo_json,
    err,
    one_line_errors,
    open_model,
    resolve_device,
)
from wplus.cli.edit_common import EditContext, edit_options, parse_floats, scale_option
from wplus.cli.help import ImageInputCommand, WplusCommand, WplusGroup
from wplus.edits.render import save_frames
from wplus.io.images import tensor_to_pil
from wplus.stylespace import (
    StylesFile,
    channel_label,
    channel_sigma,
    is_styles_file,
    load_styles,
    parse_channel_edit,
    render_styles,
    save_styles,
    style_layers,
    style_stats,
    sweep_channels,
    to_styles,
)
from wplus.stylespace.stats import DEFAULT_SAMPLES

# In σ. Measured on cartoon-faces-64 (4 codes, 8 random channels of every conv layer, both signs): the largest pixel
# change of a frame (median, 0-255 levels) is 13-21 at 5σ (hard to see), 25-43 at 10σ, 47-80 at 20σ (clearly seen,
# 4-16% of pixels move by more than 16 levels, the face intact) and 68-122 at 30σ; StyleSpace goes up to ±20σ too.
DEFAULT_STRENGTH = "-20:20:5"


@click.group("style", cls=WplusGroup)
def style_group() -> None:
    """The style space S: every style-affine output (StyleSpace), on any StyleGAN v1/v2/v3 wplus reads.

    \b
    Examples:
      wplus style extract me/latent.npz --model cartoon-faces-64 --outdir me/
      wplus style stats cartoon-faces-64 --samples 10000
      wplus style edit me/styles.npz --channel 6_35 --model cartoon-faces-64 \\
          --outdir e/
    """


def read_styles(ctx: EditContext, path: Path, role: str = "latent") -> StylesFile:
    """The styles of an input: a styles .npz as written, else a latent (or an image, projected first) turned into
    styles with ``to_styles``; recorded as an input of the command."""
    if is_styles_file(path):
        f = load_styles(path, ctx.G, model_sha256=ctx.info.sha256)
        ctx.add_input(path, role, kind="styles", codes=f.styles.batch)
        return StylesFile(f.styles.to(ctx.device), [n.to(ctx.device) for n in f.noise], f.model_id, f.model_sha256,
                          f.source)  # fmt: skip
    latent = ctx.load(path, role)
    with torch.no_grad():
        styles = to_styles(ctx.G, latent.ws)
    return StylesFile(styles, latent.noise, ctx.info.model_id, ctx.info.sha256, str(path))


@style_group.command("extract", cls=WplusCommand)
@click.argument("latent", type=INPUT_FILE)
@one_line_errors
@edit_options
def extract_cmd(latent: Path, ctx: EditContext) -> None:
    """Write OUTDIR/styles.npz: the S code of LATENT (a latent file, or an image projected first) — one array per
    style layer, keyed by module path, with the noise the code renders with; read by every `wplus style` command.

    \b
    Examples:
      wplus style extract me/latent.npz --model cartoon-faces-64 --outdir me/
      wplus style extract photo.png --model cartoon-faces-64 --steps 300 \\
          --outdir me/
    """
    f = read_styles(ctx, latent)
    out = save_styles(ctx.outdir / "styles.npz", f.styles.to("cpu"), noise=f.noise, model_id=ctx.info.model_id,
                      model_sha256=ctx.info.sha256, source=str(latent))  # fmt: skip
    layers = style_layers(ctx.G)
    ctx.record("style-extract", {"layers": len(layers), "channels": f.styles.dims}, [out], name="styles")


@style_group.command("stats", cls=WplusCommand)
@click.argument("model", required=False, default=None, metavar="MODEL")
@click.option("--samples", type=click.IntRange(1, 10_000_000), default=DEFAULT_SAMPLES, help="Generator samples.")
@click.option("--seed", type=click.IntRange(0), default=0, help="First seed (NVIDIA's RandomState convention).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Also write a CSV here.")
@click.option("--device", type=DEVICE_CHOICES, default="auto")
@click.option("--json", "as_json", is_flag=True, help="Print a summary as JSON.")
@one_line_errors
def stats_cmd(model: str | None, samples: int, seed: int, out: Path | None, device: str, as_json: bool) -> None:
    """Per-channel mean and std of S over generator samples (the unit of style edits), cached per model SHA-256.

    MODEL: a name, file or URL (default: --model's usual default). The CSV has one row per channel: name (StyleSpace
    L_C), layer, channel, kind, mean, std.

    \b
    Examples:
      wplus style stats cartoon-faces-64 --samples 10000
      wplus style stats ffhq.safetensors --samples 100000 --out stats.csv
    """
    dev = resolve_device(device)
    info = open_model(model, device=dev)
    st = style_stats(info.G, samples=samples, seed=seed, model_sha256=info.sha256, device=dev)
    layers = style_layers(info.G)
    if out is not None:
        import csv
        import io

        from wplus.io.atomic import atomic_write

        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["name", "layer", "channel", "kind", "mean", "std"])
        for layer in layers:
            m, s = st.mean[layer.name][0].tolist(), st.std[layer.name][0].tolist()
            for c in range(layer.channels):
                w.writerow([f"{layer.index}_{c}", layer.name, c, layer.kind, f"{m[c]:.6g}", f"{s[c]:.6g}"])
        atomic_write(out, lambda tmp: tmp.write_text(buf.getvalue()))
        err(f"wrote {out}")
    summary = {
        "model": {"path": str(info.path), "id": info.model_id, "sha256": info.sha256},
        "samples": samples,
        "seed": seed,
        "layers": [
            {
                "name": x.name,
                "index": x.index,
                "kind": x.kind,
                "channels": x.channels,
                "mean_std": float(st.std[x.name].mean()),
            }
            for x in layers
        ],  # fmt: skip
        "channels": sum(x.channels for x in layers),
    }
    if as_json:
        echo_json(summary)
    else:
        click.echo(f"{summary['channels']} style channels in {len(layers)} layers; statistics of {samples} samples")
        for x in summary["layers"]:
            click.echo(f"  {x['index']:>3}  {x['name']:<28} {x['kind']:<6} {x['channels']:>5} ch  mean std "
                       f"{x['mean_std']:.3f}")  # fmt: skip


@style_group.command("edit", cls=ImageInputCommand)
@click.argument("latent", type=INPUT_FILE)
@click.option(
    "--channel",
    "channels",
    multiple=True,
    required=True,
    help="A style channel to move, repeatable: StyleSpace's L_C (6_501: layer 6, ToRGB layers counted) or "
    "module.path:C (synthesis.b32.conv1:501); '*W' weights it (6_501*-1 moves it the other way).",
)
@click.option(
    "--strength",
    default=None,
    help=f"Steps α: '-10,0,10' or 'start:stop:count', in units of each channel's std over samples (StyleSpace's "
    f"α·σ) [default: {DEFAULT_STRENGTH}].",
)
@click.option("--raw", is_flag=True, help="Take --strength in raw style units instead of stds (no statistics).")
@click.option(
    "--samples",
    type=click.IntRange(1, 10_000_000),
    default=DEFAULT_SAMPLES,
    show_default=True,
    help="Generator samples of the stds (cached per model, as `wplus style stats`).",
)
@click.option("--fps", type=FiniteFloatRange(0, min_open=True), default=5.0, help="Frame rate of the GIF/MP4.")
@scale_option
@one_line_errors
@edit_options
def edit_cmd(
    latent: Path,
    channels: tuple[str, ...],
    strength: str | None,
    raw: bool,
    samples: int,
    fps: float,
    scale: int | None,
    ctx: EditContext,
) -> None:
    """Move style channels of LATENT (a styles .npz, a latent, or an image projected first) by α·σ each.

    Writes OUTDIR/style-edit.png (a frame per strength, captioned s=...), its GIF and MP4, the styles files
    OUTDIR/style-edit/s<k>.npz (an edit in S has no W+ code) and style-edit.json (the channels by both names,
    their stds, the strengths). σ is the channel's std over --samples samples of the model; with --tuning the
    styles are the tuned generator's, and σ stays the model's.

    \b
    Examples:
      wplus style edit me/styles.npz --channel 6_35 --model cartoon-faces-64 \\
          --outdir e/
      wplus style edit me/latent.npz --channel 6_35 --channel 8_12*-1 \\
          --strength -15:15:7 --model cartoon-faces-64 --outdir e/
      wplus style edit photo.png --channel synthesis.b16.conv1:35 --steps 300 \\
          --model cartoon-faces-64 --outdir e/
    """
    steps = parse_floats(strength or DEFAULT_STRENGTH, "--strength")
    layers = style_layers(ctx.G)
    parsed = [parse_channel_edit(layers, text) for text in channels]
    f = read_styles(ctx, latent)
    if f.styles.batch != 1:
        raise click.BadParameter(
            f"{latent} holds {f.styles.batch} codes; style edit takes one (extract it with `wplus style extract`)",
            param_hint="LATENT",
        )
    stats = None
    if not raw:
        stats = style_stats(ctx.info.G, samples=samples, model_sha256=ctx.info.sha256, device=ctx.device)
    edits = [(layer.name, c, w) for layer, c, w in parsed]
    for layer, c, _ in parsed:
        if stats is not None and channel_sigma(stats, layer.name, c) == 0:
            err(f"warning: --channel {channel_label(layer, c)}: its std over {samples} samples is 0, it does not move")
    batch = sweep_channels(f.styles, edits, stats, steps)
    noise = f.noise or ctx.G.noise_maps()
    frames = []
    with torch.no_grad():
        for start in range(0, batch.batch, 8):
            images = render_styles(ctx.G, batch.select(slice(start, start + 8)), noise)
            frames.extend(tensor_to_pil(img) for img in images)
    captions = [f"s={s:g}" for s in steps]
    outputs = save_frames(frames, ctx.outdir / "style-edit", fps=fps, captions=captions, scale=ctx.scale(scale))
    for k in range(batch.batch):
        outputs.append(
            save_styles(ctx.outdir / "style-edit" / f"s{k:02d}.npz", batch.select(k).to("cpu"), noise=f.noise,
                        model_id=ctx.info.model_id, model_sha256=ctx.info.sha256, source=str(latent))
        )  # fmt: skip
    params = {
        "channels": [
            {
                "name": channel_label(layer, c),
                "path": f"{layer.name}:{c}",
                "layer": layer.name,
                "index": layer.index,
                "channel": c,
                "kind": layer.kind,
                "weight": w,
                "std": None if stats is None else channel_sigma(stats, layer.name, c),
            }
            for layer, c, w in parsed
        ],  # fmt: skip
        "strength": steps,
        "units": "raw" if raw else "std",
        "stats": None if stats is None else {"samples": stats.samples, "seed": stats.seed, "model": "base"},
        "noise": "saved" if f.noise else "generator const",
        "scale": ctx.scale(scale),
    }
    ctx.record("style-edit", params, outputs)
