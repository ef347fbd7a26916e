"""``wplus direction``: build an attribute direction from pairs of latents and save it in our format."""

from __future__ import annotations

from pathlib import Path

import click

from wplus.cli.common import echo_json, one_line_errors
from wplus.cli.edit_common import EditContext, edit_options
from wplus.edits.crossover import parse_layers
from wplus.edits.directions import direction_from_pairs, load_direction, save_direction
from wplus.errors import ConfigError


def read_pairs_file(path: Path) -> list[tuple[Path, Path]]:
    """Lines 'NEUTRAL EXPRESSIVE' (whitespace or comma separated; '#' comments); paths relative to the file."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read pairs file ({e})") from None
    pairs = []
    for n, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].replace(",", " ").split()
        if not text:
            continue
        if len(text) != 2:
            raise ConfigError(f"{path}:{n}: expected 'NEUTRAL EXPRESSIVE', got {line.strip()!r}")
        pairs.append((path.parent / text[0], path.parent / text[1]))
    return pairs


@click.group("direction")
def direction_group() -> None:
    """Attribute directions: build them from pairs of latents, inspect direction files."""


@direction_group.command("from-pairs")
@click.argument("latents", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--pairs-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Lines 'NEUTRAL EXPRESSIVE'."
)
@click.option("--name", default="direction", help="Output stem: OUTDIR/<name>.npz and <name>.json.")
@click.option("--layers", default=None, help="Rows the direction applies to by default (stored in its metadata).")
@one_line_errors
@edit_options
def from_pairs_cmd(
    latents: tuple[Path, ...], pairs_file: Path | None, name: str, layers: str | None, ctx: EditContext
) -> None:
    """Mean of (EXPRESSIVE - NEUTRAL) over pairs: LATENTS are NEUTRAL1 EXPRESSIVE1 NEUTRAL2 EXPRESSIVE2 ...

    Writes OUTDIR/<name>.npz (key 'direction' [num_ws, w_dim] + JSON 'metadata') and <name>.json; use it with
    `wplus edit --direction OUTDIR/<name>.npz`.

    \b
    Examples:
      wplus direction from-pairs n1.npz s1.npz n2.npz s2.npz --model ffhq.safetensors --outdir dirs/ --name smile
      wplus direction from-pairs --pairs-file pairs.txt --model ffhq.safetensors --outdir dirs/
    """
    if len(latents) % 2:
        raise click.UsageError(f"LATENTS must come in NEUTRAL EXPRESSIVE pairs, got {len(latents)} paths")
    pairs = list(zip(latents[::2], latents[1::2], strict=True)) + (read_pairs_file(pairs_file) if pairs_file else [])
    if not pairs:
        raise click.UsageError("give NEUTRAL EXPRESSIVE pairs as arguments or with --pairs-file")
    neutral = [ctx.load(n, f"neutral{i}").ws for i, (n, _) in enumerate(pairs)]
    expressive = [ctx.load(e, f"expressive{i}").ws for i, (_, e) in enumerate(pairs)]
    vector = direction_from_pairs(neutral, expressive)
    rows = parse_layers(layers, ctx.G.num_ws) if layers else None
    meta = {
        "method": "mean of expressive - neutral",
        "num_pairs": len(pairs),
        "model_sha256": ctx.info.sha256,
        "layers": rows,
    }
    out = save_direction(ctx.outdir / f"{name}.npz", vector, metadata=meta)
    norms = [round(float(x), 6) for x in vector.norm(dim=-1)]
    ctx.record("direction from-pairs", {"num_pairs": len(pairs), "layers": rows, "row_norms": norms}, [out], name=name)


@direction_group.command("info")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--component", type=click.IntRange(0), default=None, help="GANSpace component.")
@one_line_errors
def info_cmd(path: Path, component: int | None) -> None:
    """Print what a direction file holds: kind, shape, default rows, row norms."""
    d = load_direction(path, component=component)
    norms = [round(float(x), 6) for x in d.vector.norm(dim=-1)]
    echo_json(
        {
            "path": str(path),
            "kind": d.kind,
            "shape": list(d.vector.shape),
            "layers": d.layers,
            "row_norms": norms,
            "metadata": d.metadata,
        }
    )
