"""``wplus weights``: make, fetch and inspect weight files."""

from __future__ import annotations

from pathlib import Path

import click

from wplus.cli.common import err, one_line_errors
from wplus.cli.help import WplusGroup
from wplus.errors import ConfigError
from wplus.io.checkpoint import save_generator
from wplus.models.stylegan2 import StyleGAN2Config, count_parameters, random_generator


@click.group("weights", cls=WplusGroup)
def weights_group() -> None:
    """Create, download and inspect weight files."""


def _resolution(value: int) -> int:
    """--resolution as the model config validates it, refused naming the flag."""
    try:
        StyleGAN2Config(img_resolution=value)
    except ConfigError as e:
        raise click.BadParameter(f"{e} (e.g. 16, 64, 256 or 1024)", param_hint="--resolution") from None
    return value


@weights_group.command("random")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--resolution",
    type=int,
    default=256,
    callback=lambda c, p, v: _resolution(v),
    help="Output side: a power of two >= 4.",
)
@click.option("--channel-base", type=click.IntRange(1), default=16384, help="channels(res) = min(base // res, max).")
@click.option("--channel-max", type=click.IntRange(1), default=512)
@click.option("--mapping-layers", type=click.IntRange(1), default=8)
@click.option("--w-dim", type=click.IntRange(1), default=512, help="Width of z and w.")
@click.option("--architecture", type=click.Choice(["skip", "orig", "resnet"]), default="skip")
@click.option("--noise-strength", type=float, default=0.0, help="Noise strength of every layer (0 at init).")
@click.option("--seed", type=int, default=0)
@one_line_errors
def random_cmd(
    out: Path,
    resolution: int,
    channel_base: int,
    channel_max: int,
    mapping_layers: int,
    w_dim: int,
    architecture: str,
    noise_strength: float,
    seed: int,
) -> None:
    """Write a randomly initialised StyleGAN2 generator to OUT (safetensors + JSON config; no pickle).

    For tests, benchmarks and bug reports: the same seed gives the same file.

    \b
    Example:
      wplus weights random --resolution 64 --channel-base 4096 tiny.safetensors
    """
    cfg = StyleGAN2Config(
        img_resolution=resolution,
        channel_base=channel_base,
        channel_max=channel_max,
        mapping_layers=mapping_layers,
        z_dim=w_dim,
        w_dim=w_dim,
        architecture=architecture,
    )
    G = random_generator(cfg, seed=seed, noise_strength=noise_strength)
    save_generator(G, out, metadata={"source": f"wplus weights random --seed {seed}"})
    err(f"wrote {out}: {resolution}px StyleGAN2, {count_parameters(G):,} parameters, num_ws={G.num_ws}")


# --------------------------------------------------------------------------------------------------------------------
# Foreign checkpoints and the model zoo: convert, list, download, verify, path, info.


def _generator_summary(info: object) -> dict:
    G = info.G  # type: ignore[attr-defined]
    return {
        "model_id": info.model_id,  # type: ignore[attr-defined]
        "path": str(info.path),  # type: ignore[attr-defined]
        "sha256": info.sha256,  # type: ignore[attr-defined]
        "arch": G.config.arch,
        "num_ws": G.num_ws,
        "parameters": count_parameters(G),
        "config": G.config.to_dict(),
    }


@weights_group.command("convert")
@click.argument("source", metavar="IN")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--with-d/--no-d",
    default=True,
    show_default=True,
    help="Also write IN's discriminator, when it stores one, as OUT-stem-D.safetensors (found by the D loss).",
)
@click.option(
    "--tuning",
    "tuning_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Bake this tuning.safetensors into OUT: one plain generator for tools that read no tunings.",
)
@click.option(
    "--anchor",
    is_flag=True,
    help="StyleGAN3: fix the input's rotation and shift at w_avg's, so codes cannot turn or move the image "
    "(project and edit with OUT).",
)
@one_line_errors
def convert_cmd(source: str, out: Path, with_d: bool, tuning_path: Path | None, anchor: bool) -> None:
    """Convert a checkpoint (NVIDIA .pkl, TF .pkl, rosinality .pt, registry name or URL) to OUT (.safetensors).

    Nothing in IN is executed; OUT loads without pickle. A discriminator stored in IN (NVIDIA snapshots, TF
    (G, D, Gs) pickles, rosinality training checkpoints) goes beside OUT as OUT-stem-D.safetensors.

    \b
    Examples:
      wplus weights convert ffhq.pkl ffhq.safetensors
      wplus weights convert stylegan2-ffhq-1024 ffhq1024.safetensors
      wplus weights convert --tuning out/photo/tuning.safetensors \\
          ffhq.safetensors photo-tuned.safetensors
      wplus weights convert --anchor stylegan3-t-ffhqu-256 sg3t.safetensors
    """
    from wplus.cli.tuning_options import apply_tuning_file
    from wplus.formats.dispatch import load_discriminator_for
    from wplus.io.checkpoint import save_discriminator
    from wplus.loading import load_generator_info

    if out.suffix.lower() != ".safetensors":
        raise click.BadParameter(f"got {out.name!r}, expected a .safetensors output file", param_hint="OUT")
    info = load_generator_info(source)
    meta = {"converted_from": info.model_id, "source_file": info.path.name, "source_sha256": info.sha256}
    G, tuning = apply_tuning_file(info.G, tuning_path)
    if tuning is not None:
        meta["tuning"] = tuning
    if anchor:
        from wplus.models.stylegan3 import anchor_latent_space

        if G.config.arch != "stylegan3":
            raise click.BadParameter(
                f"{info.path.name} is a {G.config.arch} generator; --anchor is for StyleGAN3 (its Fourier input)",
                param_hint="--anchor",
            )
        G = anchor_latent_space(G)
        meta["anchored"] = "input affine fixed at w_avg"
    save_generator(G, out, metadata=meta)
    baked = f", tuning {tuning_path.name} baked in" if tuning is not None else ""
    baked += ", latent space anchored" if anchor else ""
    err(f"wrote {out}: {G.img_resolution}px {G.config.arch}, num_ws={G.num_ws} (from {info.path.name}{baked})")
    if not with_d:
        return
    D = load_discriminator_for(info.path)
    if D is None:
        err(f"{info.path.name} stores no discriminator; wrote no D file")
        return
    d_out = save_discriminator(D, out.with_name(f"{out.stem}-D.safetensors"), metadata=meta)
    err(f"wrote {d_out}: {D.img_resolution}px discriminator (from {info.path.name})")


@weights_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
@one_line_errors
def list_cmd(as_json: bool) -> None:
    """List the models and weights wplus knows: the shipped model, then the registry (`--model NAME` takes them)."""
    from wplus.cli.common import echo_json
    from wplus.hub import cached_path, list_specs
    from wplus.shipped import (
        SHIPPED_DESCRIPTION,
        SHIPPED_LICENSE,
        SHIPPED_MODEL,
        SHIPPED_RESOLUTION,
        SHIPPED_SHA256,
        shipped_generator_path,
    )

    rows = [
        {
            "name": SHIPPED_MODEL,
            "kind": "stylegan2",
            "resolution": SHIPPED_RESOLUTION,
            "format": "wplus",
            "license": SHIPPED_LICENSE,
            "sha256": SHIPPED_SHA256,
            "status": "shipped",
            "cached": False,
            "path": str(shipped_generator_path()),
            "source": "docs/demo-model.md",
            "description": SHIPPED_DESCRIPTION,
        }
    ]
    for spec in list_specs():
        path = cached_path(spec)
        rows.append(
            {
                "name": spec.name,
                "kind": spec.kind,
                "resolution": spec.resolution,
                "format": spec.format,
                "license": spec.license,
                "sha256": spec.sha256,
                "status": "cached" if path.is_file() else "remote",
                "cached": path.is_file(),
                "path": str(path),
                "source": spec.source,
                "description": spec.description,
            }
        )
    if as_json:
        echo_json(rows)
        return
    table = [["NAME", "STATUS", "KIND", "RES", "FORMAT", "LICENCE", "DESCRIPTION"]]
    table += [
        [
            r["name"],
            r["status"],
            r["kind"],
            str(r["resolution"] or "-"),
            r["format"] or "-",
            r["license"],
            r["description"],
        ]
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]) - 1)]
    for row in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)) + "  " + row[-1])
    click.echo(
        "STATUS: shipped (inside wplus), cached (downloaded) or remote (fetched on first use, or by `wplus weights "
        "download NAME`); RES: output side in px; LICENCE: of the weights, NC = non-commercial use only; "
        "--json adds SHA-256, paths and sources."
    )


@weights_group.command("download")
@click.argument("names", nargs=-1, required=True)
@click.option("--force", is_flag=True, help="Download again even if cached.")
@one_line_errors
def download_cmd(names: tuple[str, ...], force: bool) -> None:
    """Download registered checkpoints into the cache (verified) and print their paths (the shipped one: its file)."""
    from wplus.cli.common import progress_enabled
    from wplus.hub import download
    from wplus.loading import model_file
    from wplus.shipped import SHIPPED_MODEL

    for name in names:
        path = model_file(name) if name == SHIPPED_MODEL else download(name, force=force, progress=progress_enabled())
        click.echo(str(path))


@weights_group.command("path")
@click.argument("name")
@one_line_errors
def path_cmd(name: str) -> None:
    """Print where NAME lives (the shipped model's file, or the place in the cache, downloaded or not)."""
    from wplus.loading import model_file

    click.echo(str(model_file(name)))


@weights_group.command("verify")
@click.argument("names", nargs=-1, required=True)
@one_line_errors
def verify_cmd(names: tuple[str, ...]) -> None:
    """Check local files against their SHA-256 (registry, first-use record or shipped) and that generators load."""
    from wplus.loading import is_generator_name, load_generator_info, verify_model

    for name in names:
        path = verify_model(name)
        what = "checksum ok"
        if is_generator_name(name):
            load_generator_info(path)
            what += ", loads"
        click.echo(f"{name}: {what} ({path})")


@weights_group.command("info")
@click.argument("source", metavar="FILE|NAME")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@one_line_errors
def info_cmd(source: str, as_json: bool) -> None:
    """Describe a checkpoint: inferred config, num_ws, parameter count, SHA-256. Runs nothing from the file."""
    from wplus.cli.common import echo_json
    from wplus.loading import load_generator_info

    summary = _generator_summary(load_generator_info(source))
    if as_json:
        echo_json(summary)
        return
    cfg = summary["config"]
    rows = [
        ("sha256", summary["sha256"]),
        ("arch", f"{summary['arch']}  {cfg['img_resolution']}px  num_ws={summary['num_ws']}"),
        ("parameters", f"{summary['parameters']:,}"),
    ]
    keys = ("z_dim", "w_dim", "c_dim", "mapping_layers", "channel_base", "channel_max", "architecture")
    rows += [(k, cfg[k]) for k in (*keys, "conv_kernel", "use_radial_filters") if k in cfg]  # last two: StyleGAN3
    rows.append(("conv_clamp", cfg["conv_clamp"]))
    width = max(len(k) for k, _ in rows)
    click.echo(f"{summary['path']}")
    for key, value in rows:
        click.echo(f"  {key:<{width}}  {value}")
